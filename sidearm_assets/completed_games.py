"""The archive of completed games: what the final tables are recomputed from (SPEC 6).

A game's live object (`<game_id>.txt`) is rewritten from line one when the game is replayed, so
it cannot be the record of a completed game. When a live object parses as over (SPEC 2), its
bytes are copied to `completed/<game_id>.txt` in the same bucket; the final tables are then
base tables + every archived game. Copying is idempotent (same game, same bytes), a replay in
progress keeps counting through its archived completion, and a game finished again replaces
its own archive, never adds a second one. Keys under `completed/` are not games for the live
sensor (`settings.game_id_from_key` ignores keys with a `/`).

No Dagster import: the game-over sensor and the `players2`/`teams2` assets share these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidearm_assets import clients, settings
from sidearm_assets.domain.final import CompletedGame, completed_game
from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.domain.stream import parse_stream

ARCHIVE_PREFIX = "completed/"


class CompletedGamesError(RuntimeError):
    """A completed game cannot be counted (no schedule row, teams not in `teams`, not over)."""


def archive_key(game_id: str) -> str:
    return f"{ARCHIVE_PREFIX}{settings.key_for_game(game_id)}"


def game_id_from_archive_key(key: str) -> str | None:
    if not key.startswith(ARCHIVE_PREFIX):
        return None
    return settings.game_id_from_key(key[len(ARCHIVE_PREFIX):])


def list_archive(store) -> dict[str, clients.ObjectVersion]:
    """Archived game id -> object version (`store` is a GameStreamStore)."""
    client = store.client()
    out = {}
    token = None
    while True:
        kwargs = {"Bucket": store.bucket, "Prefix": ARCHIVE_PREFIX, **({"ContinuationToken": token} if token else {})}
        page = client.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            game_id = game_id_from_archive_key(obj["Key"])
            if game_id is not None:
                out[game_id] = clients.ObjectVersion(
                    obj["Key"], obj["ETag"].strip('"'), obj["LastModified"], obj["Size"]
                )
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def read_archive(store, game_id: str) -> tuple[bytes, clients.ObjectVersion]:
    return clients.get_object(store.client(), store.bucket, archive_key(game_id))


def archive(store, game_id: str, data: bytes) -> None:
    """Copy a completed game's bytes to its archive key (rewriting the same bytes is harmless)."""
    store.client().put_object(Bucket=store.bucket, Key=archive_key(game_id), Body=data)


@dataclass(frozen=True)
class GameOverCheck:
    """What one version of a live object says about the game's end."""

    game_id: str
    over: bool
    reason: str  # why it is (not) over, or why it cannot be judged
    scheduled: bool  # the game has a schedule row
    teams_known: bool  # both scheduled teams are in `teams`
    completed: CompletedGame | None = None  # when over with known teams


def judge(game_id: str, data: bytes, games: list[dict], teams: list[dict], version: str | None = None) -> GameOverCheck:
    """Is this version of a game over (SPEC 2)? Parsed with the scheduled teams when known."""
    row = next((g for g in games if g["game_id"] == game_id), None)
    if row is None:
        return GameOverCheck(game_id, False, "no row in the games table: skipped, never guessed", False, False)
    try:
        game = matchup(game_id, games, teams)
    except UnscheduledGameError as exc:
        # Teams missing from `teams`: judged without them, so a completed game still fails loudly.
        parsed = parse_stream(data, (row["home_teamid"], row["away_teamid"]))
        reason = parsed.over_reason or "not over"
        return GameOverCheck(game_id, parsed.is_over(), f"{reason}; {exc}", True, False)
    parsed = parse_stream(data, game.team_ids)
    if not parsed.is_over():
        last = parsed.last_event
        where = f"clock {last.clock}" if last else "no accepted line"
        return GameOverCheck(game_id, False, f"not over ({parsed.line_count} lines, {where})", True, True)
    return GameOverCheck(
        game_id, True, parsed.over_reason or "", True, True, completed_game(parsed, game, version)
    )


@dataclass
class ArchiveReport:
    archived: list[str] = field(default_factory=list)  # live objects over now, copied
    not_over: list[str] = field(default_factory=list)
    unscheduled: list[str] = field(default_factory=list)  # live games with no schedule row
    errors: list[str] = field(default_factory=list)  # over, but teams not in `teams`


def archive_finished_live_games(store, games: list[dict], teams: list[dict]) -> ArchiveReport:
    """Archive every live game whose current object is over (a manual materialization's first
    step; the game-over sensor archives the versions it sees itself)."""
    report = ArchiveReport()
    for game_id in sorted(store.list_games()):
        try:
            data, _ = store.read(game_id)
        except Exception as exc:  # deleted since the listing: nothing to archive
            report.not_over.append(f"{game_id} (unreadable: {exc})")
            continue
        verdict = judge(game_id, data, games, teams)
        if not verdict.scheduled:
            report.unscheduled.append(game_id)
        elif verdict.over and not verdict.teams_known:
            report.errors.append(f"{game_id}: {verdict.reason}")
        elif verdict.over:
            archive(store, game_id, data)
            report.archived.append(game_id)
        else:
            report.not_over.append(f"{game_id} ({verdict.reason})")
    return report


@dataclass
class ArchivedGames:
    games: list[CompletedGame]
    versions: dict[str, str]  # game id -> archive object version


def load_archived_games(store, games: list[dict], teams: list[dict]) -> ArchivedGames:
    """Every archived game, parsed with its scheduled teams; CompletedGamesError listing every
    game that cannot be counted (an archived game is counted or the computation stops)."""
    listing = list_archive(store)
    out: list[CompletedGame] = []
    versions: dict[str, str] = {}
    problems: list[str] = []
    for game_id in sorted(listing):
        data, _ = read_archive(store, game_id)
        verdict = judge(game_id, data, games, teams, version=listing[game_id].version)
        if not verdict.scheduled:
            problems.append(f"archived game {game_id!r} has no row in the games table")
        elif not verdict.teams_known:
            problems.append(f"completed game {game_id!r}: {verdict.reason}")
        elif not verdict.over:
            problems.append(
                f"archived game {game_id!r} is not over when parsed with its scheduled teams "
                f"({verdict.reason}); was its schedule row changed?"
            )
        else:
            out.append(verdict.completed)
            versions[game_id] = listing[game_id].version
    if problems:
        raise CompletedGamesError("; ".join(problems))
    return ArchivedGames(out, versions)
