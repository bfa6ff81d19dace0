"""The archive of completed games: what the final tables are recomputed from (SPEC 6).

A game's live object (`<game_id>.txt`) is rewritten from line one when the game is replayed, so
it cannot be the record of a completed game. When a live object parses as over (SPEC 2), its
bytes are copied to `completed/<game_id>.txt` in the same bucket; the final tables are then
base tables + every archived game. Copying is idempotent (same game, same bytes), a replay in
progress keeps counting through its archived completion, and a game finished again replaces
its own archive, never adds a second one. Keys under `completed/` are not games for the live
sensor (`settings.game_id_from_key` ignores keys with a `/`).

The archive is the inbox, the record in sidearmdb (`final_tables_db.counted_games`) is the
memory: a run counts record UNION archive (`plan_counting`, `load_completed_games`), reads from
S3 only the archive objects whose version the record does not hold, and re-archives a recorded
game the archive lost.

No Dagster import: the game-over sensor and the `players2`/`teams2` assets share these functions.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sidearm_assets.storage import clients
from sidearm_assets.storage.final_tables_db import CountedGame
from sidearm_assets.domain.final import CompletedGame, GameOverCheck, judge

class CompletedGamesError(RuntimeError):
    """A completed game cannot be counted (no schedule row, teams not in `teams`, not over)."""


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
            store.archive(game_id, data)
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
    listing = store.list_archive()
    out: list[CompletedGame] = []
    versions: dict[str, str] = {}
    problems: list[str] = []
    for game_id in sorted(listing):
        data, _ = store.read_archive(game_id)
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


READ_WORKERS = 8  # parallel GETs of changed archive objects (I/O bound)


@dataclass(frozen=True)
class CountingPlan:
    """What a run must do with each game, from the record's and the archive's ETags alone."""

    read: tuple[str, ...]  # archived, and new or a new version (a correction): GET from S3
    from_record: tuple[str, ...]  # recorded, same version archived: counted from the record's bytes
    missing: tuple[str, ...]  # recorded, absent from the archive (S3 lost it): counted and re-archived
    uncounted: tuple[str, ...]  # archived at a version explicitly uncounted: not counted

    @property
    def pending(self) -> tuple[str, ...]:
        """Games whose counting is not yet in the record (what a run is for)."""
        return tuple(sorted(self.read + self.missing))


def plan_counting(
    record: dict[str, str], archived: dict[str, str], uncounted: dict[str, str] | None = None
) -> CountingPlan:
    """record: game id -> counted ETag; archived: game id -> archive ETag; uncounted: game id ->
    ETag of its active uncount. Pure: the sensor and the run share it."""
    uncounted = uncounted or {}
    read, from_record, skipped = [], [], []
    for game_id, etag in sorted(archived.items()):
        if record.get(game_id) == etag:
            from_record.append(game_id)
        elif game_id not in record and uncounted.get(game_id) == etag:
            skipped.append(game_id)
        else:
            read.append(game_id)
    missing = sorted(set(record) - set(archived))
    # A recorded game with a changed archive version is read; if that read fails it falls back
    # to the record, so it is never dropped.
    return CountingPlan(tuple(read), tuple(sorted(from_record)), tuple(missing), tuple(skipped))


@dataclass
class LoadedGames:
    """The games a run counts, each with its record row, and everything worth reporting."""

    games: list[CompletedGame] = field(default_factory=list)
    record: list[CountedGame] = field(default_factory=list)
    read_from_s3: list[str] = field(default_factory=list)
    from_record: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)  # recorded games counted at a new version
    rearchived: list[str] = field(default_factory=list)  # recorded games S3 had lost, put back
    uncountable: list[str] = field(default_factory=list)  # new archived games not counted, and why
    uncounted: list[str] = field(default_factory=list)  # archived at an uncounted version
    warnings: list[str] = field(default_factory=list)


def _judge_recorded(row: CountedGame, games: list[dict], teams: list[dict]) -> GameOverCheck:
    """A recorded game judged with its schedule row, or with the teams recorded when it was
    counted if the row has gone (a counted game is not dropped by a schedule edit)."""
    if any(g["game_id"] == row.game_id for g in games) or row.home_teamid is None:
        return judge(row.game_id, row.data, games, teams, version=row.version)
    fallback = [{"game_id": row.game_id, "home_teamid": row.home_teamid, "away_teamid": row.away_teamid}]
    return judge(row.game_id, row.data, fallback, teams, version=row.version)


def _record_row(verdict: GameOverCheck, data: bytes, obj: clients.ObjectVersion) -> CountedGame:
    game = verdict.completed
    return CountedGame(
        game_id=verdict.game_id, etag=obj.etag, data=data, version=obj.version,
        over_reason=verdict.reason, home_teamid=game.home_teamid, away_teamid=game.away_teamid,
    )


def load_completed_games(
    store,
    record: dict[str, CountedGame],
    games: list[dict],
    teams: list[dict],
    uncounted: dict[str, str] | None = None,
    listing: dict[str, clients.ObjectVersion] | None = None,
) -> LoadedGames:
    """Every game to count: record UNION archive. CompletedGamesError when a recorded game cannot
    be counted any more (its teams left `teams`): the run must not write tables that drop it.
    A new archived game that cannot be counted is skipped and reported (`uncountable`), so it
    never blocks the others."""
    listing = store.list_archive() if listing is None else listing
    plan = plan_counting({g: r.etag for g, r in record.items()}, {g: o.etag for g, o in listing.items()}, uncounted)
    out = LoadedGames(uncounted=list(plan.uncounted))

    def fetch(game_id):
        try:
            return game_id, store.read_archive(game_id), None
        except Exception as exc:  # deleted or replaced since the listing, S3 down
            return game_id, None, exc

    fetched = []
    if plan.read:
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(plan.read)), thread_name_prefix="archive-read") as pool:
            fetched = list(pool.map(fetch, plan.read))

    counted: dict[str, tuple[CompletedGame, CountedGame]] = {}
    problems: list[str] = []
    use_record: list[str] = list(plan.from_record)
    for game_id, got, exc in fetched:
        recorded = record.get(game_id)
        if got is None:
            if recorded is not None:
                out.warnings.append(f"{game_id}: new archive version unreadable ({exc}); counted from the record")
                use_record.append(game_id)
            else:
                out.uncountable.append(f"{game_id}: archive unreadable ({exc}); counted by a later run")
            continue
        data, obj = got
        verdict = judge(game_id, data, games, teams, version=obj.version)
        if verdict.over and verdict.completed is not None:
            counted[game_id] = (verdict.completed, _record_row(verdict, data, obj))
            out.read_from_s3.append(game_id)
            if recorded is not None:
                out.corrected.append(game_id)
        elif recorded is not None:
            out.warnings.append(
                f"{game_id}: archive version {obj.version} cannot be counted ({verdict.reason}); "
                "the recorded version stays counted"
            )
            use_record.append(game_id)
        else:
            out.uncountable.append(f"{game_id}: {verdict.reason}")

    for game_id in sorted(set(use_record) | set(plan.missing)):
        row = record[game_id]
        verdict = _judge_recorded(row, games, teams)
        if not (verdict.over and verdict.completed is not None):
            problems.append(f"counted game {game_id!r} cannot be counted any more: {verdict.reason}")
            continue
        completed = CompletedGame(**{**verdict.completed.__dict__, "version": row.version})
        counted[game_id] = (completed, row)
        out.from_record.append(game_id)

    if problems:
        raise CompletedGamesError(
            "; ".join(problems) + " (fix the reference data, or remove it explicitly with "
            "`sidearm-games uncount GAME --reason TEXT`)"
        )

    for game_id in plan.missing:
        completed, row = counted[game_id]
        try:
            etag = store.archive(game_id, row.data)
        except Exception as exc:
            out.warnings.append(f"{game_id}: missing from the archive, re-archiving failed ({exc}); counted from the record")
            continue
        out.rearchived.append(game_id)
        out.warnings.append(f"{game_id}: counted but missing from the archive (object store lost it?); re-archived from the record")
        if etag and etag != row.etag:  # a store whose ETag is not the MD5: follow the new object
            counted[game_id] = (completed, CountedGame(**{**row.__dict__, "etag": etag}))

    for game_id in sorted(counted):
        completed, row = counted[game_id]
        out.games.append(completed)
        out.record.append(row)
    return out
