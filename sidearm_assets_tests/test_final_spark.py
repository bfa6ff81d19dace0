"""Cross-check (issue 4, item 6): the PySpark final tables equal the plain-Python ones and the box
score's final totals, for the default game and seeded random games, both in a local Spark session
(one for all) and on a real Spark Connect server the suite starts (issue 13). Then the asset
itself on that server, and a stopped server failing the run with a message naming it."""

from __future__ import annotations

import os

import pytest

from sidearm_assets.domain.boxscore import build_boxscore
from sidearm_assets.domain.final import CompletedGame, completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.storage import final_spark
from sidearm_assets.storage.final_spark import compute_final_tables
from sidearm_assets.local.local_stack import free_port
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS
from sidearm_assets_tests.helpers import DEFAULT_GAME, EXTRA_PLAYERS, EXTRA_TEAMS, random_game, tied_game

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


@pytest.fixture(scope="module")
def connect_session(spark_connect_url):
    """One Spark Connect session on the suite's server, released at the end."""
    session = final_spark.connect_session(spark_connect_url)
    yield session
    final_spark.close_session(session)


@pytest.fixture(params=["local", "connect"])
def session(request):
    """Each test runs in the local session and on the Spark Connect server."""
    if request.param == "local":
        return request.getfixturevalue("spark")
    session = request.getfixturevalue("connect_session")
    assert final_spark.is_connect(session)
    return session


def test_default_game(session):
    result = _assert_same(session, {"gamestream": DEFAULT_GAME.read_bytes()})
    assert {t["id"]: (t["wins"], t["losses"]) for t in result.teams}[205] == (10, 4)


def test_no_completed_game_gives_the_base_tables(session):
    result = compute_final_tables(session, PLAYERS, TEAMS, [])
    assert result.players == sorted(PLAYERS, key=lambda p: p["id"])
    assert result.teams == sorted(TEAMS, key=lambda t: t["id"])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_games(session, seed):
    streams = {
        "gamestream": random_game(seed, 101, 205, ROSTERS, bad_lines=True),
        "r1": random_game(seed + 10, 300, 101, ROSTERS, ending="minus1", off_roster=0.15),
        "r2": random_game(seed + 20, 205, 301, ROSTERS, shots=90),
        "r3": random_game(seed + 30, 301, 300, ROSTERS, ending="tie"),
    }
    result = _assert_same(session, streams)
    assert "r3" in result.tied_games


def test_tie_and_off_roster_jerseys(session):
    streams = {
        "gamestream": tied_game(101, 205, "6", "77"),  # 205 #77 is not on the roster
    }
    result = _assert_same(session, streams)
    assert result.tied_games == ["gamestream"]
    assert result.unknown_jerseys == [
        {"game_id": "gamestream", "teamid": 205, "jersey": "77", "shots": 2, "goals": 2}
    ]


def test_connect_session_leaves_local_sessions_possible(connect_session, spark):
    """The Connect session is made without pyspark's process-wide Connect switch, so the local
    session of the same process still works, and each gets its own kind of columns."""
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ
    assert not final_spark.is_connect(spark)
    assert connect_session.range(4).count() == 4 and spark.range(3).count() == 3


def test_the_asset_on_the_spark_connect_server(embedded_stack, spark_connect_url, tmp_path):
    """final_tables materialized with the `pyspark` resource pointed at the server: the tables
    equal the plain-Python computation."""
    from sidearm_assets_tests.test_final_assets import DEFAULT_OVER, World

    resource = final_spark.spark_resource(remote=spark_connect_url)
    world = World(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}", resource)
    try:
        world.put("gamestream", DEFAULT_OVER)
        result = world.materialize()
        assert result.success
        assert world.tables() == world.expected({"gamestream": DEFAULT_OVER})
    finally:
        world.cleanup()


def test_a_stopped_server_fails_the_run_naming_it(embedded_stack, tmp_path):
    """No server on the port: the session fails at once (no ten minutes of client retries) and
    the run fails with the server's URL in its message; nothing is written."""
    from sidearm_assets_tests.test_final_assets import DEFAULT_OVER, World

    url = f"sc://127.0.0.1:{free_port()}"
    with pytest.raises(final_spark.SparkUnavailableError, match=url):
        final_spark.connect_session(url)
    world = World(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}", final_spark.spark_resource(remote=url))
    try:
        world.put("gamestream", DEFAULT_OVER)
        result = world.materialize(raise_on_error=False)
        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failures and url in str(failures[0].event_specific_data.error), failures
        assert world.tables() is None
    finally:
        world.cleanup()


def test_a_remote_url_that_is_not_spark_connect_is_refused():
    with pytest.raises(ValueError, match="not a Spark Connect URL"):
        final_spark.parse_remote("http://127.0.0.1:15002")
    assert final_spark.parse_remote("sc://spark-connect:15002/;user_id=dagster") == ("spark-connect", 15002)
    assert final_spark.parse_remote("sc://example") == ("example", 15002)
