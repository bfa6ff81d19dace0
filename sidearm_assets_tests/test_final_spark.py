"""The Spark job of the final tables: `final_spark.compute_game_facts` equals the plain-Python
facts (`domain.facts.game_facts`) and, summed onto the base rows, the box score's final totals;
for the default game and seeded random games, in a local Spark session (one for all) and on a
real Spark Connect server the suite starts. Then the asset itself on that server, and a stopped
server failing the run with a message naming it."""

from __future__ import annotations

import os

import pytest

from sidearm_assets.domain.boxscore import build_boxscore
from sidearm_assets.domain.facts import GameFacts, PlayerFact, TeamFact, UnknownJersey, apply_totals, game_facts, totals_of
from sidearm_assets.domain.final import CompletedGame, completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.storage import final_spark
from sidearm_assets.storage.final_spark import compute_game_facts
from sidearm_assets.storage.spark_resource import spark_resource
from sidearm_assets.local.local_stack import free_port
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS
from sidearm_assets_tests.helpers import DEFAULT_GAME, EXTRA_PLAYERS, EXTRA_TEAMS, random_game, tied_game

TEAMS = [dict(t) for t in BASE_TEAMS] + [dict(t) for t in EXTRA_TEAMS]
PLAYERS = [dict(p) for p in BASE_PLAYERS] + [dict(p) for p in EXTRA_PLAYERS]
GAMES = [dict(g) for g in BASE_GAMES] + [
    {"game_id": "r1", "home_teamid": 300, "away_teamid": 101},
    {"game_id": "r2", "home_teamid": 205, "away_teamid": 301},
    {"game_id": "r3", "home_teamid": 301, "away_teamid": 300},
    {"game_id": "r4", "home_teamid": 101, "away_teamid": 300},
    {"game_id": "r5", "home_teamid": 301, "away_teamid": 205},
]
ROSTERS = {t["id"]: [p["number"] for p in PLAYERS if p["teamid"] == t["id"]] for t in TEAMS}


def _completed(streams: dict[str, bytes]) -> list[CompletedGame]:
    out = []
    for gid, data in streams.items():
        m = matchup(gid, GAMES, TEAMS)
        out.append(completed_game(parse_stream(data, m.team_ids), m))
    return out


def _box_score_totals(streams: dict[str, bytes], roster: list[dict]):
    """Season totals built from the box scores' final documents alone."""
    players = {p["id"]: (p["shots"], p["goals"]) for p in roster}
    records = {t["id"]: (t["wins"], t["losses"]) for t in TEAMS}
    for gid, data in streams.items():
        m = matchup(gid, GAMES, TEAMS)
        doc = build_boxscore(gid, parse_stream(data, m.team_ids), m.home, m.away, roster)
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


def _assert_same(spark, streams, rosters=PLAYERS) -> GameFacts:
    """Spark's facts equal the plain-Python ones; base + their sums equal season_totals and the
    box scores' totals."""
    games = _completed(streams)
    by_spark = compute_game_facts(spark, games, rosters)
    by_python = game_facts(games, rosters)
    assert by_spark == by_python
    totals = totals_of(by_spark)
    players, teams = apply_totals(rosters, TEAMS, totals.player_totals, totals.team_totals)
    reference = season_totals(rosters, TEAMS, games)
    assert (players, teams) == (reference.players, reference.teams)
    assert sorted((u.game_id, u.teamid, u.jersey, u.shots, u.goals) for u in by_spark.unknown) == [
        tuple(u.values()) for u in reference.unknown_jerseys]
    box_players, box_records = _box_score_totals(streams, rosters)
    assert {p["id"]: (p["shots"], p["goals"]) for p in players} == box_players
    assert {t["id"]: (t["wins"], t["losses"]) for t in teams} == box_records
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
    facts = _assert_same(session, {"gamestream": DEFAULT_GAME.read_bytes()})
    assert [(t.teamid, t.wins, t.losses, t.ties) for t in facts.teams] == [(101, 0, 1, 0), (205, 1, 0, 0)]
    assert sum(f.goals for f in facts.players) + sum(t.unknown_goals for t in facts.teams) == sum(t.goals_for for t in facts.teams)


def test_no_game_gives_no_facts(session):
    assert compute_game_facts(session, [], PLAYERS) == GameFacts([], [], [])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_games(session, seed):
    streams = {
        "gamestream": random_game(seed, 101, 205, ROSTERS, bad_lines=True),
        "r1": random_game(seed + 10, 300, 101, ROSTERS, ending="minus1", off_roster=0.15),
        "r2": random_game(seed + 20, 205, 301, ROSTERS, shots=90),
        "r3": random_game(seed + 30, 301, 300, ROSTERS, ending="tie"),
    }
    facts = _assert_same(session, streams)
    assert [(t.teamid, t.ties) for t in facts.teams if t.game_id == "r3"] == [(300, 1), (301, 1)]


def test_a_repeated_number_credits_the_lowest_player_id(session):
    """Team 300 lists #5 twice (ids 102 and 111): every shot by #5 credits 102. Roster numbers that
    are not jerseys credit nothing, and a stream cannot name them."""
    messy = PLAYERS + [{"id": 5000, "name": "No Number", "number": None, "shots": 0, "goals": 0, "teamid": 300},
                       {"id": 5001, "name": "Text", "number": "5a", "shots": 0, "goals": 0, "teamid": 300},
                       {"id": 99, "name": "Low Id", "number": "40", "shots": 0, "goals": 0, "teamid": 301}]
    stream = b"0 50:00 300 5 1\n1 40:00 300 5 0\n2 30:00 101 6 1\n3 20:00 300 5 1\n-1 00:00 0 0 0\n"
    facts = _assert_same(session, {"r1": stream}, messy)
    assert [f for f in facts.players if f.teamid == 300] == [PlayerFact("r1", 102, 300, 3, 2)]
    # 301 #40 is held by ids 99 and 110: the lowest id, even when the roster lists it last.
    r5 = b"0 50:00 301 40 1\n-1 00:00 0 0 0\n"
    facts = _assert_same(session, {"r5": r5}, messy)
    assert facts.players == [PlayerFact("r5", 99, 301, 1, 1)]


def test_tie_off_roster_jerseys_and_a_game_without_a_shot(session):
    streams = {
        "gamestream": tied_game(101, 205, "6", "77"),  # 205 #77 is not on the roster
        "r4": b"-1 00:00 0 0 0\n",  # over at once, 0-0
    }
    facts = _assert_same(session, streams)
    assert facts.unknown == [UnknownJersey("gamestream", 205, "77", 2, 2)]
    assert facts.teams == [
        TeamFact("gamestream", 101, 2, 2, 0, 0, 1), TeamFact("gamestream", 205, 2, 2, 0, 0, 1, 2, 2),
        TeamFact("r4", 101, 0, 0, 0, 0, 1), TeamFact("r4", 300, 0, 0, 0, 0, 1),
    ]
    assert facts.players == [PlayerFact("gamestream", 1, 101, 2, 2)]


def test_more_games_than_one_job_holds_are_counted_in_several_jobs(session, monkeypatch):
    streams = {gid: random_game(40 + i, g["home_teamid"], g["away_teamid"], ROSTERS, ending="minus1", off_roster=0.1)
               for i, g in enumerate(GAMES) for gid in [g["game_id"]]}
    jobs = []
    real_job = final_spark._facts_job
    monkeypatch.setattr(final_spark, "GAMES_PER_JOB", 2)
    monkeypatch.setattr(final_spark, "_facts_job", lambda spark, games, roster: jobs.append(len(games)) or real_job(spark, games, roster))
    _assert_same(session, streams)
    assert jobs == [2, 2, 2]


def test_connect_session_leaves_local_sessions_possible(connect_session, spark):
    """The Connect session is made without pyspark's process-wide Connect switch, so the local
    session of the same process still works, and each gets its own kind of columns."""
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ
    assert not final_spark.is_connect(spark)
    assert connect_session.range(4).count() == 4 and spark.range(3).count() == 3


def test_the_asset_on_the_spark_connect_server(embedded_stack, spark_connect_url, tmp_path):
    """final_tables materialized with the `pyspark` resource pointed at the server: the tables
    equal the plain-Python computation."""
    from sidearm_assets_tests.final_world import World
    from sidearm_assets_tests.helpers import DEFAULT_OVER

    resource = spark_resource(remote=spark_connect_url)
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
    from sidearm_assets_tests.final_world import World
    from sidearm_assets_tests.helpers import DEFAULT_OVER

    url = f"sc://127.0.0.1:{free_port()}"
    with pytest.raises(final_spark.SparkUnavailableError, match=url):
        final_spark.connect_session(url)
    world = World(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}", spark_resource(remote=url))
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


def test_runs_share_the_hours_server_session_and_replace_it_once_the_server_closed_it(spark_connect_url):
    """Each run attaches to the hour's shared session (the server's per-session set-up is paid
    once) and leaves it on the server; once the server has closed it, a run gets a session of its
    own, which it releases."""
    import uuid

    shared = f"{spark_connect_url}/;session_id={uuid.uuid4()}"
    first = final_spark.connect_session(shared)
    first_id = first.session_id
    final_spark.close_session(first)
    second = final_spark.connect_session(shared)
    assert second.session_id == first_id and not second.release_session_on_close
    assert second.range(3).count() == 3
    second.client.release_session()  # as the server's idle timeout would
    final_spark.close_session(second)

    third = final_spark.connect_session(shared)
    assert third.session_id != first_id and third.release_session_on_close
    assert third.range(2).count() == 2
    final_spark.close_session(third)


def test_the_shared_session_id_changes_every_hour_and_with_the_server():
    hour = 3600 * 490_000
    url = "sc://spark.example:15002"
    assert final_spark.shared_session_id(url, hour) == final_spark.shared_session_id(url, hour + 3599)
    assert final_spark.shared_session_id(url, hour) != final_spark.shared_session_id(url, hour + 3600)
    assert final_spark.shared_session_id(url, hour) != final_spark.shared_session_id("sc://other:15002", hour)
    assert final_spark._with_session_id(url, "x") == f"{url}/;session_id=x"
    assert final_spark._with_session_id(f"{url}/;token=t", "x") == f"{url}/;token=t;session_id=x"
    assert final_spark._with_session_id(f"{url}/;session_id=y", "x") == f"{url}/;session_id=y"
    assert final_spark._without_session_id(f"{url}/;session_id=y") == url
    assert final_spark._without_session_id(f"{url}/;token=t;session_id=y;use_ssl=true") == f"{url}/;token=t;use_ssl=true"
