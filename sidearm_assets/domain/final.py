"""The final tables (SPEC 6) in plain Python: the season after every completed game.

`players2`/`teams2` are recomputed from the base `players`/`teams` rows plus every completed
game, never incremented, so replaying a game, running twice or two games ending together
cannot double-count. The Spark job (`final_spark.py`) computes the same tables; this module is
the independent reference its results are checked against (asset checks, tests).

Rules (docs/final-tables.md):

- A completed game is a stream that parses as over (SPEC 2: its `-1` line, or a `00:00` line
  with the score not tied). Its shots are the accepted shot events of `parse_stream` with the
  game's two teams, so a bad line counts nowhere.
- A shot credits the roster player with that (team id, jersey); a number repeated within a team
  credits the lowest player id, as the box score does (and `final_spark.py`). A roster number
  that is not 1-3 ASCII digits is credited nothing (no accepted stream line can name it). A
  jersey not on the roster adds to no player and is reported; its goals still count in the
  game's score. The shot a `-1` line may carry is not counted (domain/stream.py).
- A game listed more than once counts once (`unique_games`); two different games under one
  id are an error (`DuplicateGameError`), never a guess.
- The team with more goals gets a win, the other a loss. A tie (possible only at a `-1` line)
  changes no record and is reported.
- A completed game whose teams are not in `teams` is an error (`UnknownTeamError`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sidearm_assets.domain.boxscore import roster_number
from sidearm_assets.domain.games import Matchup, UnscheduledGameError, matchup
from sidearm_assets.domain.checks import CheckOutcome, CheckSpec
from sidearm_assets.domain.stream import ParsedStream, is_jersey, parse_stream

# The columns of `players`/`teams` (SPEC 3), which `players2`/`teams2` share.
TEAM_COLUMNS = ("id", "name", "conference", "wins", "losses")
PLAYER_COLUMNS = ("id", "name", "number", "shots", "goals", "teamid")


class UnknownTeamError(ValueError):
    """A completed game names a team that is not in the base `teams` table."""


class DuplicateGameError(ValueError):
    """Two different completed games were given under one game id."""


@dataclass(frozen=True)
class Shot:
    teamid: int
    jersey: str
    goal: int


@dataclass(frozen=True)
class CompletedGame:
    """One completed game, reduced to what the final tables need."""

    game_id: str
    home_teamid: int
    away_teamid: int
    over_reason: str
    shots: tuple[Shot, ...]
    version: str | None = None  # the archived object's version, for metadata

    def score(self, teamid: int) -> int:
        return sum(s.goal for s in self.shots if s.teamid == teamid)

    @property
    def home_score(self) -> int:
        return self.score(self.home_teamid)

    @property
    def away_score(self) -> int:
        return self.score(self.away_teamid)

    @property
    def winner(self) -> int | None:
        if self.home_score == self.away_score:
            return None
        return self.home_teamid if self.home_score > self.away_score else self.away_teamid

    @property
    def loser(self) -> int | None:
        if self.winner is None:
            return None
        return self.away_teamid if self.winner == self.home_teamid else self.home_teamid

    @property
    def decided(self) -> bool:
        return self.winner is not None

    def summary(self) -> str:
        result = "tie" if not self.decided else f"winner {self.winner}"
        return (
            f"{self.game_id}: {self.home_teamid} {self.home_score} - {self.away_score} "
            f"{self.away_teamid} ({result}, {self.over_reason})"
        )


def completed_game(parsed: ParsedStream, game: Matchup, version: str | None = None) -> CompletedGame:
    """The completed game of a stream parsed with the game's teams; ValueError when not over."""
    if not parsed.is_over():
        raise ValueError(f"game {game.game_id} is not over ({parsed.line_count} lines)")
    shots = tuple(Shot(e.team_id, e.jersey, e.goal) for e in parsed.shots)
    home, away = game.team_ids
    return CompletedGame(game.game_id, home, away, parsed.over_reason or "", shots, version)


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
class FinalTables:
    """`players2` and `teams2` rows (ordered by id, columns as in `players`/`teams`) and what
    the computation reports."""

    players: list[dict]
    teams: list[dict]
    # {"game_id", "teamid", "jersey", "shots", "goals"} per off-roster jersey and game
    unknown_jerseys: list[dict] = field(default_factory=list)
    tied_games: list[str] = field(default_factory=list)


def unique_games(games: list[CompletedGame]) -> list[CompletedGame]:
    """Each game once, in first-listed order, however often it is listed (the version it was read
    from aside, the copies must agree); DuplicateGameError when one id holds two different games."""
    by_id: dict[str, CompletedGame] = {}
    for g in games:
        first = by_id.setdefault(g.game_id, g)
        if first is not g and _content(first) != _content(g):
            raise DuplicateGameError(
                f"game {g.game_id!r} is listed twice with different events or teams "
                f"({first.summary()} / {g.summary()}): counted neither way"
            )
    return list(by_id.values())


def _content(g: CompletedGame) -> tuple:
    return (g.home_teamid, g.away_teamid, g.over_reason, g.shots)


def credited_players(base_players: list[dict]) -> dict[tuple[int, str], int]:
    """(team id, jersey) -> the player id a shot credits: the lowest id holding that number.
    Roster numbers that are not jerseys (1-3 ASCII digits) credit nothing."""
    out: dict[tuple[int, str], int] = {}
    for p in sorted(base_players, key=lambda p: p["id"]):
        number = roster_number(p)
        if is_jersey(number):
            out.setdefault((p["teamid"], number), p["id"])
    return out


def check_teams(base_teams: list[dict], games: list[CompletedGame]) -> None:
    """UnknownTeamError naming every completed game whose teams are not in `teams`."""
    known = {t["id"] for t in base_teams}
    bad = [
        f"{g.game_id} (teams {[t for t in (g.home_teamid, g.away_teamid) if t not in known]})"
        for g in games
        if g.home_teamid not in known or g.away_teamid not in known
    ]
    if bad:
        raise UnknownTeamError(
            "completed game(s) whose teams are not in the teams table: " + ", ".join(bad)
        )


def in_game_totals(
    base_players: list[dict], games: list[CompletedGame]
) -> tuple[dict[int, tuple[int, int]], list[dict]]:
    """Player id -> (shots, goals) over the completed games, and the off-roster jerseys."""
    credit = credited_players(base_players)
    totals: dict[int, tuple[int, int]] = {}
    unknown: dict[tuple[str, int, str], list[int]] = {}
    for g in games:
        for s in g.shots:
            pid = credit.get((s.teamid, s.jersey))
            if pid is None:
                shots_goals = unknown.setdefault((g.game_id, s.teamid, s.jersey), [0, 0])
                shots_goals[0] += 1
                shots_goals[1] += s.goal
                continue
            shots, goals = totals.get(pid, (0, 0))
            totals[pid] = (shots + 1, goals + s.goal)
    unknown_rows = [
        {"game_id": gid, "teamid": tid, "jersey": jersey, "shots": sg[0], "goals": sg[1]}
        for (gid, tid, jersey), sg in sorted(unknown.items())
    ]
    return totals, unknown_rows


def record_changes(games: list[CompletedGame]) -> tuple[Counter, Counter]:
    """Wins and losses added per team id by the decided games."""
    wins, losses = Counter(), Counter()
    for g in games:
        if g.decided:
            wins[g.winner] += 1
            losses[g.loser] += 1
    return wins, losses


def season_totals(
    base_players: list[dict], base_teams: list[dict], games: list[CompletedGame]
) -> FinalTables:
    """players2/teams2 = base + every completed game, each counted once (the pure-Python reference)."""
    games = unique_games(games)
    check_teams(base_teams, games)
    totals, unknown = in_game_totals(base_players, games)
    wins, losses = record_changes(games)
    players = []
    for p in sorted(base_players, key=lambda p: p["id"]):
        shots, goals = totals.get(p["id"], (0, 0))
        row = {c: p[c] for c in PLAYER_COLUMNS}
        row["shots"] = (p["shots"] or 0) + shots
        row["goals"] = (p["goals"] or 0) + goals
        players.append(row)
    teams = []
    for t in sorted(base_teams, key=lambda t: t["id"]):
        row = {c: t[c] for c in TEAM_COLUMNS}
        row["wins"] = (t["wins"] or 0) + wins[t["id"]]
        row["losses"] = (t["losses"] or 0) + losses[t["id"]]
        teams.append(row)
    tied = sorted(g.game_id for g in games if not g.decided)
    return FinalTables(players, teams, unknown, tied)


FINAL_CHECKS: dict[str, CheckSpec] = {
    "records_match_completed_games": CheckSpec(
        "teams2", "ERROR",
        "Per team, teams2 wins and losses equal the base record plus its decided counted games "
        "(the sum of its team facts).",
    ),
    "rows_match_base_teams": CheckSpec(
        "teams2", "ERROR", "teams2 holds exactly the base teams, names and conferences unchanged.",
    ),
    "completed_games_decided": CheckSpec(
        "teams2", "WARN", "No game this run counted ended tied (a tie at -1 changes no record).",
    ),
    "player_totals_match_completed_games": CheckSpec(
        "players2", "ERROR",
        "Per player, players2 minus players equals the sum of that player's shots and goals over "
        "the counted games (read back from the facts).",
    ),
    "goals_added_equal_final_scores": CheckSpec(
        "players2", "ERROR",
        "Goals added to players plus goals by jerseys not on a roster equal the sum of the "
        "counted games' final scores.",
    ),
    "rows_match_base_players": CheckSpec(
        "players2", "ERROR", "players2 holds exactly the base players, names, numbers and teams unchanged.",
    ),
    "jerseys_on_roster": CheckSpec(
        "players2", "WARN", "Every shot of the games this run counted is by a jersey on its team's roster.",
    ),
    "facts_match_games": CheckSpec(
        "players2", "ERROR",
        "The facts Spark computed for the games this run counted (per player shots and goals, per "
        "team result) equal those computed independently in plain Python.",
    ),
}


def final_checks(
    base_players: list[dict],
    base_teams: list[dict],
    games: list[CompletedGame],
    players2: list[dict],
    teams2: list[dict],
) -> list[CheckOutcome]:
    """The checks of players2/teams2 rows computed elsewhere, against base + `games` (each game
    once: `unique_games`), with the games' facts computed here (`domain.facts.facts_checks`)."""
    from sidearm_assets.domain.facts import facts_checks, game_facts, totals_of

    games = unique_games(games)
    check_teams(base_teams, games)
    facts = game_facts(games, base_players)
    return facts_checks(base_players, base_teams, players2, teams2, totals_of(facts), facts, facts)


def _row_diffs(base: list[dict], new: list[dict], columns: tuple[str, ...]) -> list[str]:
    base_by_id = {r["id"]: r for r in base}
    new_by_id = {r["id"]: r for r in new}
    diffs = [f"id {i} missing" for i in sorted(base_by_id.keys() - new_by_id.keys())]
    diffs += [f"id {i} not in the base table" for i in sorted(new_by_id.keys() - base_by_id.keys())]
    for i in sorted(base_by_id.keys() & new_by_id.keys()):
        for c in columns:
            if base_by_id[i][c] != new_by_id[i][c]:
                diffs.append(f"id {i}: {c} {new_by_id[i][c]!r}, base {base_by_id[i][c]!r}")
    return diffs[:50]
