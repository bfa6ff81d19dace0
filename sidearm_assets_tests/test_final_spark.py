"""Cross-check (issue 4, item 6): the PySpark final tables equal the plain-Python ones and the box
score's final totals, for the default game and seeded random games. One Spark session for all."""

from __future__ import annotations

import pytest

from sidearm_assets.domain.boxscore import build_boxscore
from sidearm_assets.domain.final import CompletedGame, completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.final_spark import compute_final_tables
from sidearm_assets.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS
from sidearm_assets_tests.final_fixtures import (  # noqa: F401  (fixtures)
    DEFAULT_GAME,
    EXTRA_PLAYERS,
    EXTRA_TEAMS,
    random_game,
    spark,
    spark_resource_fixture,
    tied_game,
)

TEAMS = [dict(t) for t in BASE_TEAMS] + [dict(t) for t in EXTRA_TEAMS]
PLAYERS = [dict(p) for p in BASE_PLAYERS] + [dict(p) for p in EXTRA_PLAYERS]
GAMES = [dict(g) for g in BASE_GAMES] + [
    {"game_id": "r1", "home_teamid": 300, "away_teamid": 101},
    {"game_id": "r2", "home_teamid": 205, "away_teamid": 301},
    {"game_id": "r3", "home_teamid": 301, "away_teamid": 300},
]
ROSTERS = {t["id"]: [p["number"] for p in PLAYERS if p["teamid"] == t["id"]] for t in TEAMS}


def _completed(streams: dict[str, bytes]) -> list[CompletedGame]:
    out = []
    for gid, data in streams.items():
        m = matchup(gid, GAMES, TEAMS)
        out.append(completed_game(parse_stream(data, m.team_ids), m))
    return out


def _box_score_totals(streams: dict[str, bytes]):
    """Season totals built from the box scores' final documents alone."""
    players = {p["id"]: (p["shots"], p["goals"]) for p in PLAYERS}
    records = {t["id"]: (t["wins"], t["losses"]) for t in TEAMS}
    for gid, data in streams.items():
        m = matchup(gid, GAMES, TEAMS)
        doc = build_boxscore(gid, parse_stream(data, m.team_ids), m.home, m.away, PLAYERS)
        assert doc["final"], gid
        for side in ("home", "away"):
            team = doc[side]
            for line in team["players"]:
                if line["on_roster"]:
                    s, g = players[line["id"]]
                    players[line["id"]] = (s + line["shots"], g + line["goals"])
            w, lo = records[team["teamid"]]
            records[team["teamid"]] = (w + (team["status"] == "winning"), lo + (team["status"] == "losing"))
    return players, records


def _assert_same(spark, streams):
    games = _completed(streams)
    by_spark = compute_final_tables(spark, PLAYERS, TEAMS, games)
    by_python = season_totals(PLAYERS, TEAMS, games)
    assert by_spark.players == by_python.players
    assert by_spark.teams == by_python.teams
    assert by_spark.unknown_jerseys == by_python.unknown_jerseys
    assert by_spark.tied_games == by_python.tied_games
    box_players, box_records = _box_score_totals(streams)
    assert {p["id"]: (p["shots"], p["goals"]) for p in by_spark.players} == box_players
    assert {t["id"]: (t["wins"], t["losses"]) for t in by_spark.teams} == box_records
    return by_spark


def test_default_game(spark):
    result = _assert_same(spark, {"gamestream": DEFAULT_GAME.read_bytes()})
    assert {t["id"]: (t["wins"], t["losses"]) for t in result.teams}[205] == (10, 4)


def test_no_completed_game_gives_the_base_tables(spark):
    result = compute_final_tables(spark, PLAYERS, TEAMS, [])
    assert result.players == sorted(PLAYERS, key=lambda p: p["id"])
    assert result.teams == sorted(TEAMS, key=lambda t: t["id"])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_games(spark, seed):
    streams = {
        "gamestream": random_game(seed, 101, 205, ROSTERS, bad_lines=True),
        "r1": random_game(seed + 10, 300, 101, ROSTERS, ending="minus1", off_roster=0.15),
        "r2": random_game(seed + 20, 205, 301, ROSTERS, shots=90),
        "r3": random_game(seed + 30, 301, 300, ROSTERS, ending="tie"),
    }
    result = _assert_same(spark, streams)
    assert "r3" in result.tied_games


def test_tie_and_off_roster_jerseys(spark):
    streams = {
        "gamestream": tied_game(101, 205, "6", "77"),  # 205 #77 is not on the roster
    }
    result = _assert_same(spark, streams)
    assert result.tied_games == ["gamestream"]
    assert result.unknown_jerseys == [
        {"game_id": "gamestream", "teamid": 205, "jersey": "77", "shots": 2, "goals": 2}
    ]
