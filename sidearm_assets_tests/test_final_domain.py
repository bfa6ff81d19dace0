"""The final tables in plain Python (domain/final.py): semantics and checks, no services."""

from __future__ import annotations

import pytest

from sidearm_assets.domain.boxscore import build_boxscore
from sidearm_assets.domain.final import (
    CompletedGame,
    Shot,
    UnknownTeamError,
    completed_game,
    credited_players,
    final_checks,
    season_totals,
)
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS
from sidearm_assets_tests.helpers import DEFAULT_GAME, EXTRA_PLAYERS, EXTRA_TEAMS, random_game, tied_game

PLAYERS = [dict(p) for p in BASE_PLAYERS]
TEAMS = [dict(t) for t in BASE_TEAMS]
GAMES = [dict(g) for g in BASE_GAMES]


def _game(game_id, data, games=GAMES, teams=TEAMS):
    m = matchup(game_id, games, teams)
    return completed_game(parse_stream(data, m.team_ids), m)


def test_default_game_adds_its_box_score_to_the_base():
    game = _game("gamestream", DEFAULT_GAME.read_bytes())
    final = season_totals(PLAYERS, TEAMS, [game])
    m = matchup("gamestream", GAMES, TEAMS)
    doc = build_boxscore("gamestream", parse_stream(DEFAULT_GAME.read_bytes(), m.team_ids), m.home, m.away, PLAYERS)
    assert doc["final"] is True
    base = {p["id"]: p for p in PLAYERS}
    after = {p["id"]: p for p in final.players}
    for side in ("home", "away"):
        for line in doc[side]["players"]:
            assert after[line["id"]]["shots"] - base[line["id"]]["shots"] == line["shots"]
            assert after[line["id"]]["goals"] - base[line["id"]]["goals"] == line["goals"]
    # 101 10 - 11 205: the away team won.
    assert (doc["home"]["score"], doc["away"]["score"]) == (10, 11)
    records = {t["id"]: (t["wins"], t["losses"]) for t in final.teams}
    assert records == {101: (11, 3), 205: (10, 4)}
    assert final.tied_games == [] and final.unknown_jerseys == []
    assert sum(p["goals"] for p in final.players) - sum(p["goals"] for p in PLAYERS) == 21


def test_a_game_counts_once_however_often_it_is_recomputed():
    game = _game("gamestream", DEFAULT_GAME.read_bytes())
    once = season_totals(PLAYERS, TEAMS, [game])
    again = season_totals(PLAYERS, TEAMS, [game])
    assert once == again


def test_tie_at_game_over_line_changes_no_record_and_is_reported():
    game = _game("gamestream", tied_game(101, 205, "6", "9"))
    assert game.over_reason == "game-over line" and not game.decided
    final = season_totals(PLAYERS, TEAMS, [game])
    assert [(t["wins"], t["losses"]) for t in final.teams] == [(11, 2), (9, 4)]
    assert final.tied_games == ["gamestream"]
    by_id = {p["id"]: p for p in final.players}
    assert (by_id[1]["shots"], by_id[1]["goals"]) == (48 + 2, 21 + 2)  # 101 #6 is Connor Walsh
    assert (by_id[14]["shots"], by_id[14]["goals"]) == (30 + 2, 11 + 2)  # 205 #9 is Kieran Boyle


def test_tie_at_clock_zero_is_not_over():
    data = b"0 50:00 101 6 1\n1 40:00 205 9 1\n2 00:00 0 0 0\n"
    m = matchup("gamestream", GAMES, TEAMS)
    parsed = parse_stream(data, m.team_ids)
    assert not parsed.is_over()
    with pytest.raises(ValueError, match="not over"):
        completed_game(parsed, m)


def test_jersey_not_on_roster_adds_to_no_player_but_counts_in_the_score():
    data = b"0 50:00 101 77 1\n1 40:00 101 77 0\n2 30:00 205 9 0\n3 00:00 0 0 0\n"
    game = _game("gamestream", data)
    assert (game.home_score, game.away_score, game.winner) == (1, 0, 101)
    final = season_totals(PLAYERS, TEAMS, [game])
    assert final.unknown_jerseys == [{"game_id": "gamestream", "teamid": 101, "jersey": "77", "shots": 2, "goals": 1}]
    added = sum(p["goals"] for p in final.players) - sum(p["goals"] for p in PLAYERS)
    assert added == 0
    assert [(t["wins"], t["losses"]) for t in final.teams] == [(12, 2), (9, 5)]


def test_same_jersey_on_both_teams_credits_the_shooting_team_player():
    # #6 plays for both teams: 101 #6 is id 1, 205 #6 is id 11.
    data = b"0 50:00 205 6 1\n1 00:00 0 0 0\n"
    final = season_totals(PLAYERS, TEAMS, [_game("gamestream", data)])
    by_id = {p["id"]: p for p in final.players}
    assert (by_id[11]["shots"], by_id[11]["goals"]) == (46, 20)
    assert (by_id[1]["shots"], by_id[1]["goals"]) == (48, 21)


def test_repeated_number_within_a_team_credits_the_lowest_id():
    players = PLAYERS + [dict(p) for p in EXTRA_PLAYERS]
    credit = credited_players(players)
    fives = sorted(p["id"] for p in EXTRA_PLAYERS if p["teamid"] == 300 and p["number"] == "5")
    assert credit[(300, "5")] == fives[0]


def test_unknown_team_fails_with_the_game_id():
    game = CompletedGame("g-unknown", 101, 999, "game-over line", (Shot(999, "1", 1),))
    with pytest.raises(UnknownTeamError, match="g-unknown"):
        season_totals(PLAYERS, TEAMS, [game])


@pytest.mark.parametrize("seed", range(8))
def test_random_games_match_their_box_scores(seed):
    teams = TEAMS + [dict(t) for t in EXTRA_TEAMS]
    players = PLAYERS + [dict(p) for p in EXTRA_PLAYERS]
    games = GAMES + [
        {"game_id": "r1", "home_teamid": 300, "away_teamid": 101},
        {"game_id": "r2", "home_teamid": 205, "away_teamid": 301},
    ]
    rosters = {t["id"]: [p["number"] for p in players if p["teamid"] == t["id"]] for t in teams}
    streams = {
        "gamestream": random_game(seed, 101, 205, rosters, bad_lines=True),
        "r1": random_game(seed + 100, 300, 101, rosters, ending="minus1"),
        "r2": random_game(seed + 200, 205, 301, rosters, off_roster=0.2),
    }
    completed = [_game(gid, data, games, teams) for gid, data in streams.items()]
    final = season_totals(players, teams, completed)
    expected_players = {p["id"]: [p["shots"], p["goals"]] for p in players}
    expected_records = {t["id"]: [t["wins"], t["losses"]] for t in teams}
    final_score_total = 0
    for gid, data in streams.items():
        m = matchup(gid, games, teams)
        doc = build_boxscore(gid, parse_stream(data, m.team_ids), m.home, m.away, players)
        assert doc["final"]
        for side in ("home", "away"):
            final_score_total += doc[side]["score"]
            for line in doc[side]["players"]:
                if line["on_roster"]:
                    expected_players[line["id"]][0] += line["shots"]
                    expected_players[line["id"]][1] += line["goals"]
            if doc[side]["status"] == "winning":
                expected_records[doc[side]["teamid"]][0] += 1
            elif doc[side]["status"] == "losing":
                expected_records[doc[side]["teamid"]][1] += 1
    assert {p["id"]: [p["shots"], p["goals"]] for p in final.players} == expected_players
    assert {t["id"]: [t["wins"], t["losses"]] for t in final.teams} == expected_records
    outcomes = final_checks(players, teams, completed, final.players, final.teams)
    errors = [o for o in outcomes if o.severity == "ERROR" and not o.passed]
    assert errors == []
    goals = next(o for o in outcomes if o.name == "goals_added_equal_final_scores")
    assert goals.metadata["sum_of_final_scores"] == final_score_total


def test_checks_catch_wrong_tables():
    game = _game("gamestream", DEFAULT_GAME.read_bytes())
    final = season_totals(PLAYERS, TEAMS, [game])
    bad_players = [dict(p) for p in final.players]
    bad_players[0]["goals"] += 1
    bad_teams = [dict(t) for t in final.teams]
    bad_teams[0]["wins"] += 1
    bad_teams[1]["name"] = "Renamed"
    outcomes = {o.name: o for o in final_checks(PLAYERS, TEAMS, [game], bad_players, bad_teams)}
    assert not outcomes["player_totals_match_completed_games"].passed
    assert not outcomes["goals_added_equal_final_scores"].passed
    assert not outcomes["records_match_completed_games"].passed
    assert not outcomes["rows_match_base_teams"].passed
    assert outcomes["rows_match_base_players"].passed
    good = {o.name: o for o in final_checks(PLAYERS, TEAMS, [game], final.players, final.teams)}
    assert all(o.passed for o in good.values()), {n: o.metadata for n, o in good.items() if not o.passed}


def test_a_game_listed_several_times_counts_once():
    from sidearm_assets.domain.final import unique_games

    game = _game("gamestream", DEFAULT_GAME.read_bytes())
    copy = _game("gamestream", DEFAULT_GAME.read_bytes())
    relabelled = CompletedGame(game.game_id, game.home_teamid, game.away_teamid, game.over_reason, game.shots, "v2")
    once = season_totals(PLAYERS, TEAMS, [game])
    assert season_totals(PLAYERS, TEAMS, [game, copy, relabelled, game]) == once
    assert unique_games([game, copy, relabelled]) == [game]
    outcomes = final_checks(PLAYERS, TEAMS, [game, game], once.players, once.teams)
    assert all(o.passed for o in outcomes if o.severity == "ERROR")


def test_two_different_games_under_one_id_are_an_error_not_a_guess():
    from sidearm_assets.domain.final import DuplicateGameError

    game = _game("gamestream", DEFAULT_GAME.read_bytes())
    other = _game("gamestream", tied_game(101, 205, "6", "9"))
    with pytest.raises(DuplicateGameError, match="'gamestream' is listed twice"):
        season_totals(PLAYERS, TEAMS, [game, other])


def test_messy_roster_numbers_credit_as_the_box_score_does():
    """A shared number credits the lowest id; a number that is not 1-3 ASCII digits credits
    nothing (no accepted jersey can name it): the box score and the final tables agree."""
    players = PLAYERS + [
        {"id": 901, "name": "Second Six", "number": "6", "shots": 5, "goals": 1, "teamid": 101},
        {"id": 902, "name": "Super Five", "number": "\u2075", "shots": 0, "goals": 0, "teamid": 101},
        {"id": 903, "name": "No Number", "number": None, "shots": 0, "goals": 0, "teamid": 205},
        {"id": 904, "name": "Padded", "number": "05", "shots": 0, "goals": 0, "teamid": 205},
    ]
    credit = credited_players(players)
    assert credit[(101, "6")] == 1 and (101, "\u2075") not in credit and (205, "05") in credit
    assert not any(number in ("None", "") for _, number in credit)
    data = b"0 50:00 101 6 1\n1 45:00 101 5 1\n2 40:00 205 05 1\n3 35:00 205 5 0\n4 00:00 0 0 0\n"
    game = _game("gamestream", data)
    final = season_totals(players, TEAMS, [game])
    m = matchup("gamestream", GAMES, TEAMS)
    doc = build_boxscore("gamestream", parse_stream(data, m.team_ids), m.home, m.away, players)
    base = {p["id"]: p for p in players}
    added = {p["id"]: (p["shots"] - base[p["id"]]["shots"], p["goals"] - base[p["id"]]["goals"]) for p in final.players}
    in_doc = {p["id"]: (p["shots"], p["goals"]) for s in ("home", "away") for p in doc[s]["players"] if p["on_roster"]}
    assert added == in_doc
    assert added[1] == (1, 1) and added[901] == (0, 0) and added[904] == (1, 1)
    assert sorted((u["teamid"], u["jersey"]) for u in final.unknown_jerseys) == [(101, "5"), (205, "5")]


def test_a_shot_on_the_game_over_line_counts_nowhere():
    data = b"0 50:00 101 6 1\n-1 00:00 205 9 1\n"
    game = _game("gamestream", data)
    assert (game.home_score, game.away_score, game.winner) == (1, 0, 101)
    final = season_totals(PLAYERS, TEAMS, [game])
    by_id = {p["id"]: p for p in final.players}
    assert (by_id[14]["shots"], by_id[14]["goals"]) == (30, 11)  # 205 #9: unchanged


def test_the_domain_columns_are_the_reference_tables():
    from sidearm_assets.storage import reference_db
    from sidearm_assets.domain import final

    assert final.PLAYER_COLUMNS == reference_db.PLAYER_COLUMNS
    assert final.TEAM_COLUMNS == reference_db.TEAM_COLUMNS


def test_the_domain_imports_no_dagster_settings_sqlalchemy_or_spark():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import sidearm_assets.domain.boxscore, sidearm_assets.domain.checks, sidearm_assets.domain.final\n"
        "import sidearm_assets.domain.gameflow, sidearm_assets.domain.games, sidearm_assets.domain.live\n"
        "import sidearm_assets.domain.stream\n"
        "heavy = ('dagster', 'sqlalchemy', 'pyspark', 'pyarrow', 'duckdb', 'pymongo', 'boto3', 'sidearm_assets.settings')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
