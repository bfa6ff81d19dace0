"""A completed game's accepted events as lake rows (SPEC 9): pure functions, no Dagster, no I/O.

One row per accepted line of the stream (`domain.stream.parse_stream` with the game's two
teams), so a rejected line is in the lake nowhere and a correction is a new set of rows. The
columns are `EVENT_COLUMNS` (docs/lake.md has the same table):

- `kind`: `shot` (a shot on goal, `goal` 0 or 1), `marker` (a team-0 line such as the final
  `00:00`) or `game_over` (the `-1` line). Only `shot` rows have a team, a jersey and a goal.
- `period`: 1-4 for the quarters (from the clock, as the box score counts them), 5, 6, ... for
  overtime. Overtime starts at the first line with time on the clock after a `00:00` line at a
  tie (SPEC 2); an overtime period is 4:00 (NCAA sudden victory), and a clock above 04:00 in
  overtime counts as the period's first second.
- `seconds_elapsed`: game time since the opening face-off (3600 at the end of regulation).
- `player_id`: the roster player holding that jersey on that team (the lowest id when a number
  repeats, as the box score credits); null for a jersey not on the roster.
- `home_score`/`away_score`: the score after the event.
- `stream_sha256`: the SHA-256 of the stream bytes the rows were made from (which version).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import GAME_OVER_EVENT_ID, GAME_SECONDS, parse_stream

OVERTIME_SECONDS = 4 * 60
REGULATION_PERIODS = 4

# (column, Arrow type): the lake's schema, in file order. Integers are int32 and text is UTF-8,
# which Spark, DuckDB and Drill all read without casts.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("season", "int32"),
    ("game_id", "string"),
    ("event_id", "int32"),
    ("line_no", "int32"),
    ("kind", "string"),
    ("period", "int32"),
    ("clock", "string"),
    ("seconds_left", "int32"),
    ("seconds_elapsed", "int32"),
    ("home_teamid", "int32"),
    ("away_teamid", "int32"),
    ("team_id", "int32"),
    ("jersey", "string"),
    ("player_id", "int32"),
    ("goal", "int32"),
    ("home_score", "int32"),
    ("away_score", "int32"),
    ("stream_sha256", "string"),
)
COLUMN_NAMES = tuple(name for name, _ in EVENT_COLUMNS)


class GameNotOverError(ValueError):
    """The stream is not a completed game (SPEC 2), so it has no place in the lake."""


@dataclass(frozen=True)
class GameEvents:
    """One completed game's lake rows and what they add up to."""

    game_id: str
    season: int
    home_teamid: int
    away_teamid: int
    rows: tuple[dict, ...]
    over_reason: str
    rejected_lines: int
    stream_sha256: str

    @property
    def home_score(self) -> int:
        return self.rows[-1]["home_score"] if self.rows else 0

    @property
    def away_score(self) -> int:
        return self.rows[-1]["away_score"] if self.rows else 0

    @property
    def shots(self) -> int:
        return sum(1 for r in self.rows if r["kind"] == "shot")


def stream_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def roster_lookup(players: list[dict], team_id: int) -> dict[str, int]:
    """Jersey -> player id for one team; a repeated number credits the lowest id (as the box score)."""
    out: dict[str, int] = {}
    for p in sorted((p for p in players if p["teamid"] == team_id), key=lambda p: p["id"]):
        out.setdefault(str(p["number"]), p["id"])
    return out


def game_event_rows(
    game_id: str,
    data: bytes,
    games: list[dict],
    teams: list[dict],
    players: list[dict],
    season: int,
) -> GameEvents:
    """The lake rows of one completed game from its stream bytes and the reference rows.

    Raises `domain.games.UnscheduledGameError` when the game has no schedule row (or its teams
    are not in `teams`) and `GameNotOverError` when the stream is not over: neither is guessed.
    """
    game = matchup(game_id, games, teams)
    home, away = game.team_ids
    parsed = parse_stream(data, game.team_ids)
    if not parsed.is_over():
        last = parsed.last_event
        where = f"last accepted clock {last.clock}" if last else "no accepted line"
        raise GameNotOverError(f"game {game_id!r} is not over ({parsed.line_count} lines, {where})")
    rosters = {home: roster_lookup(players, home), away: roster_lookup(players, away)}
    digest = stream_digest(data)
    score = {home: 0, away: 0}
    overtime = 0  # overtime periods started so far
    period_ended = False  # a 00:00 line at a tie ended the period; time on the clock starts the next
    rows = []
    for event in parsed.events:
        if period_ended and event.seconds_left > 0 and event.event_id != GAME_OVER_EVENT_ID:
            overtime += 1
            period_ended = False
        if overtime:
            period = REGULATION_PERIODS + overtime
            elapsed = GAME_SECONDS + OVERTIME_SECONDS * (overtime - 1) + max(0, OVERTIME_SECONDS - event.seconds_left)
        else:
            period = event.quarter
            elapsed = GAME_SECONDS - event.seconds_left
        if event.seconds_left == 0:
            period_ended = True
        if event.event_id == GAME_OVER_EVENT_ID:
            kind = "game_over"
        elif event.is_shot:
            kind = "shot"
            score[event.team_id] += event.goal
        else:
            kind = "marker"
        shot = kind == "shot"
        rows.append(
            {
                "season": season,
                "game_id": game_id,
                "event_id": event.event_id,
                "line_no": event.line_no,
                "kind": kind,
                "period": period,
                "clock": event.clock,
                "seconds_left": event.seconds_left,
                "seconds_elapsed": elapsed,
                "home_teamid": home,
                "away_teamid": away,
                "team_id": event.team_id if shot else None,
                "jersey": event.jersey if shot else None,
                "player_id": rosters[event.team_id].get(event.jersey) if shot else None,
                "goal": event.goal if shot else 0,
                "home_score": score[home],
                "away_score": score[away],
                "stream_sha256": digest,
            }
        )
    return GameEvents(
        game_id=game_id,
        season=season,
        home_teamid=home,
        away_teamid=away,
        rows=tuple(rows),
        over_reason=parsed.over_reason or "",
        rejected_lines=parsed.rejected_count,
        stream_sha256=digest,
    )
