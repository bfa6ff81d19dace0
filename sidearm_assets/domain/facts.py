"""A counted game's contribution to the final tables, as fact rows keyed by the game (SPEC 6, 8).

`players2` = `players` + the sum of every counted game's player facts, `teams2` = `teams` + the
sum of its team facts. A game's facts are computed once, when it is counted, and replaced whole
when it is corrected or removed when it is uncounted; so a run that counts k games does the work
of k games, whatever the season already holds. The Spark job (`storage/final_spark.py`) computes
the facts of the games a run counts; this module is the independent plain-Python reference it is
checked against, and the rules it follows:

- a shot credits the roster player with that (team id, jersey); a number repeated within a team
  credits the lowest player id (`domain.final.credited_players`, as the box score does);
- a jersey on no roster credits nobody: its shots and goals are kept on the team's fact
  (`unknown_shots`, `unknown_goals`), so the game's score is still whole;
- the team with more goals gets a win, the other a loss; a tie (possible only at `-1`) gives
  each team a tie, which changes no record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sidearm_assets.domain.checks import CheckOutcome
from sidearm_assets.domain.final import CompletedGame, credited_players


@dataclass(frozen=True, order=True)
class PlayerFact:
    """One player's shots and goals in one counted game (only players with a credited shot)."""

    game_id: str
    player_id: int
    teamid: int
    shots: int
    goals: int


@dataclass(frozen=True, order=True)
class TeamFact:
    """One team's result in one counted game; `unknown_*` are its shots by off-roster jerseys."""

    game_id: str
    teamid: int
    goals_for: int
    goals_against: int
    wins: int
    losses: int
    ties: int
    unknown_shots: int = 0
    unknown_goals: int = 0


@dataclass(frozen=True, order=True)
class UnknownJersey:
    """Shots of one game by a jersey on no roster of its team (reported, credited to nobody)."""

    game_id: str
    teamid: int
    jersey: str
    shots: int
    goals: int

    def describe(self) -> str:
        return f"{self.game_id}: team {self.teamid} #{self.jersey} ({self.shots} shots, {self.goals} goals)"


@dataclass
class GameFacts:
    """The fact rows of a set of counted games, each list ordered."""

    players: list[PlayerFact]
    teams: list[TeamFact]
    unknown: list[UnknownJersey]

    def normalized(self) -> "GameFacts":
        return GameFacts(sorted(self.players), sorted(self.teams), sorted(self.unknown))


def game_facts(games: list[CompletedGame], rosters: list[dict]) -> GameFacts:
    """The facts of `games` with the players of `rosters` (at least the games' teams' players)."""
    credit = credited_players(rosters)
    players: list[PlayerFact] = []
    teams: list[TeamFact] = []
    unknown: list[UnknownJersey] = []
    for g in games:
        per_player: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        per_unknown: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
        owner: dict[int, int] = {}
        for s in g.shots:
            pid = credit.get((s.teamid, s.jersey))
            tally = per_unknown[(s.teamid, s.jersey)] if pid is None else per_player[pid]
            tally[0] += 1
            tally[1] += s.goal
            if pid is not None:
                owner[pid] = s.teamid
        players += [PlayerFact(g.game_id, pid, owner[pid], sg[0], sg[1]) for pid, sg in per_player.items()]
        unknown += [UnknownJersey(g.game_id, t, j, sg[0], sg[1]) for (t, j), sg in per_unknown.items()]
        home, away = g.home_score, g.away_score
        for teamid, scored, conceded in ((g.home_teamid, home, away), (g.away_teamid, away, home)):
            off_roster = [sg for (t, _), sg in per_unknown.items() if t == teamid]
            teams.append(TeamFact(
                g.game_id, teamid, scored, conceded,
                wins=int(scored > conceded), losses=int(scored < conceded), ties=int(scored == conceded),
                unknown_shots=sum(sg[0] for sg in off_roster), unknown_goals=sum(sg[1] for sg in off_roster),
            ))
    return GameFacts(players, teams, unknown).normalized()


def facts_differences(expected: GameFacts, got: GameFacts, limit: int = 20) -> list[str]:
    """What differs between two sets of facts of the same games (empty when equal)."""
    out: list[str] = []
    for name in ("players", "teams", "unknown"):
        want, have = set(getattr(expected, name)), set(getattr(got, name))
        out += [f"{name}: missing {r}" for r in sorted(want - have)]
        out += [f"{name}: unexpected {r}" for r in sorted(have - want)]
    return out[:limit]


def apply_totals(base_players: list[dict], base_teams: list[dict],
                 player_totals: dict[int, tuple[int, int]], team_totals: dict[int, tuple[int, int]]):
    """players2/teams2 rows: the base rows plus summed facts (player id -> (shots, goals), team id ->
    (wins, losses)); the reference for what the set-based rebuild in sidearmdb must produce."""
    players = []
    for p in sorted(base_players, key=lambda p: p["id"]):
        shots, goals = player_totals.get(p["id"], (0, 0))
        players.append({**p, "shots": (p["shots"] or 0) + shots, "goals": (p["goals"] or 0) + goals})
    teams = []
    for t in sorted(base_teams, key=lambda t: t["id"]):
        wins, losses = team_totals.get(t["id"], (0, 0))
        teams.append({**t, "wins": (t["wins"] or 0) + wins, "losses": (t["losses"] or 0) + losses})
    return players, teams


@dataclass(frozen=True)
class SeasonTotals:
    """The sums of every counted game's facts (read back from sidearmdb, or computed here)."""

    player_totals: dict[int, tuple[int, int]]  # player id -> (shots, goals)
    team_totals: dict[int, tuple[int, int]]  # team id -> (wins, losses)
    goals: int  # every goal of the counted games
    unknown_goals: int  # of which by jerseys on no roster


def totals_of(facts: GameFacts) -> SeasonTotals:
    players: dict[int, tuple[int, int]] = {}
    for f in facts.players:
        s, g = players.get(f.player_id, (0, 0))
        players[f.player_id] = (s + f.shots, g + f.goals)
    teams: dict[int, tuple[int, int]] = {}
    for f in facts.teams:
        w, l = teams.get(f.teamid, (0, 0))
        teams[f.teamid] = (w + f.wins, l + f.losses)
    return SeasonTotals(players, teams, sum(f.goals_for for f in facts.teams), sum(f.unknown_goals for f in facts.teams))


# The checks of `domain.final.FINAL_CHECKS` about a run's own games (the rest are about the tables).
RUN_CHECK_NAMES = ("completed_games_decided", "jerseys_on_roster", "facts_match_games")


def facts_checks(
    base_players: list[dict], base_teams: list[dict], players2: list[dict], teams2: list[dict],
    totals: SeasonTotals, expected: GameFacts, computed: GameFacts, limit: int = 50,
) -> list[CheckOutcome]:
    """The checks of `domain.final.FINAL_CHECKS`: `table_checks` and `run_checks`."""
    return table_checks(base_players, base_teams, players2, teams2, totals, limit) + run_checks(expected, computed, limit)


def _outcome(out: list[CheckOutcome], name: str, passed: bool, metadata: dict) -> None:
    from sidearm_assets.domain.final import FINAL_CHECKS

    out.append(FINAL_CHECKS[name].outcome(name, passed, metadata))


def table_checks(
    base_players: list[dict], base_teams: list[dict], players2: list[dict], teams2: list[dict],
    totals: SeasonTotals, limit: int = 50,
) -> list[CheckOutcome]:
    """The tables against base + `totals` (the sums of every counted game's facts)."""
    from sidearm_assets.domain.final import _row_diffs

    out: list[CheckOutcome] = []

    def outcome(name: str, passed: bool, metadata: dict) -> None:
        _outcome(out, name, passed, metadata)

    want_players, want_teams = apply_totals(base_players, base_teams, totals.player_totals, totals.team_totals)
    got_teams = {t["id"]: t for t in teams2}
    bad_records = [
        f"team {t['id']}: {got_teams[t['id']]['wins']}-{got_teams[t['id']]['losses']}, expected {t['wins']}-{t['losses']}"
        for t in want_teams
        if t["id"] in got_teams and (got_teams[t["id"]]["wins"], got_teams[t["id"]]["losses"]) != (t["wins"], t["losses"])
    ]
    outcome("records_match_completed_games", not bad_records, {"mismatches": bad_records[:limit], "mismatched_teams": len(bad_records)})
    team_diffs = _row_diffs(base_teams, teams2, ("name", "conference"))
    outcome("rows_match_base_teams", not team_diffs, {"differences": team_diffs})

    got_players = {p["id"]: p for p in players2}
    base_by_id = {p["id"]: p for p in base_players}
    bad_players, goals_added = [], 0
    for p in want_players:
        got = got_players.get(p["id"])
        if got is None:
            continue
        goals_added += (got["goals"] or 0) - (base_by_id[p["id"]]["goals"] or 0)
        if (got["shots"], got["goals"]) != (p["shots"], p["goals"]):
            bad_players.append(f"player {p['id']} (team {p['teamid']} #{p['number']}): {got['shots']} shots "
                               f"{got['goals']} goals, expected {p['shots']} and {p['goals']}")
    outcome("player_totals_match_completed_games", not bad_players,
            {"mismatches": bad_players[:limit], "mismatched_players": len(bad_players)})
    outcome("goals_added_equal_final_scores", goals_added + totals.unknown_goals == totals.goals, {
        "goals_added_to_players": goals_added, "goals_by_jerseys_off_roster": totals.unknown_goals,
        "sum_of_final_scores": totals.goals,
    })
    player_diffs = _row_diffs(base_players, players2, ("name", "number", "teamid"))
    outcome("rows_match_base_players", not player_diffs, {"differences": player_diffs})
    return out


def run_checks(expected: GameFacts, computed: GameFacts, limit: int = 50) -> list[CheckOutcome]:
    """The games a run counted: none tied, every shot's jersey on a roster, and the facts Spark
    computed (`computed`) equal to those computed in plain Python (`expected`)."""
    out: list[CheckOutcome] = []

    def outcome(name: str, passed: bool, metadata: dict) -> None:
        _outcome(out, name, passed, metadata)

    tied = sorted({f.game_id for f in expected.teams if f.ties})
    outcome("completed_games_decided", not tied, {"tied_games": tied[:limit], "tied_this_run": len(tied)})
    outcome("jerseys_on_roster", not expected.unknown, {
        "unknown_jerseys": [u.describe() for u in expected.unknown[:limit]], "unknown_this_run": len(expected.unknown)})
    diffs = facts_differences(expected, computed)
    outcome("facts_match_games", not diffs, {"differences": diffs, "games": len({f.game_id for f in expected.teams})})
    return out
