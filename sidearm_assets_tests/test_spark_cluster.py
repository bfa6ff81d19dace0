"""The final tables' Spark job on a real standalone cluster (sidearm_assets/local/spark_cluster.py):
a master and two workers on loopback, and a Spark Connect server submitting to the master, as
docker-compose.yaml's spark services. Starting four JVMs takes a minute or more on two cores."""

from __future__ import annotations

import pytest

from gamestream import season as gs
from sidearm_assets.domain.final import CompletedGame, Shot, judge
from sidearm_assets.local import processes, spark_cluster

pytestmark = pytest.mark.slow

WORKERS = 2


def spark_game_facts(session, games, rosters):
    """The final-tables computation on Spark: the one place naming its entry point."""
    from sidearm_assets.storage import final_spark

    return final_spark.compute_game_facts(session, games, rosters)


def python_game_facts(games, rosters):
    """The plain-Python reference of the same computation."""
    from sidearm_assets.domain.facts import game_facts

    return game_facts(games, rosters)


@pytest.fixture
def cluster(tmp_path):
    """A cluster for the test; stopped afterwards, and every process of it, the executors the
    workers started included, must be gone."""
    started = spark_cluster.start_cluster(tmp_path, workers=WORKERS)
    executors = [p for d in started.daemons if d.name.startswith("worker") for p in processes.descendants(d.pid)]
    try:
        yield started
    finally:
        how = started.stop()
        left = [pid for pid in started.pids() + executors if processes.alive(pid)]
        assert not left, f"cluster processes still running after stop ({how}): {left}"
        assert executors, "the workers ran no executor"


def season_games() -> tuple[list[CompletedGame], list[dict]]:
    """Twenty completed games of a generated season, one with a shot by a jersey on no roster."""
    season = gs.make_season(8, 20, seed=12)
    teams, rows = list(season.teams), season.game_rows()
    games = [judge(g.game_id, g.final_bytes(), rows, teams).completed for g in season.games]
    first = games[0]
    games[0] = CompletedGame(first.game_id, first.home_teamid, first.away_teamid, first.over_reason,
                             first.shots + (Shot(first.home_teamid, "0", 1),), first.version)
    return games, list(season.players)


def completed_tasks_on_workers(cluster) -> int:
    return sum(e["completedTasks"] for e in cluster.executors() if e["id"] != "driver")


def test_the_final_tables_job_runs_on_the_workers_and_matches_the_python_reference(cluster):
    from sidearm_assets.storage import final_spark

    games, rosters = season_games()
    assert all(g is not None for g in games)
    status = cluster.master_status()
    assert [w["state"] for w in status["workers"]] == ["ALIVE"] * WORKERS
    assert len(status["activeapps"]) == 1 and status["activeapps"][0]["state"] == "RUNNING"
    executors = [e for e in cluster.executors() if e["id"] != "driver"]
    assert len(executors) == WORKERS and all(e["hostPort"].startswith("127.0.0.1:") for e in executors)
    before = completed_tasks_on_workers(cluster)

    session = final_spark.connect_session(cluster.connect_url, timeout=10.0)
    try:
        got = spark_game_facts(session, games, rosters)
    finally:
        final_spark.close_session(session)

    want = python_game_facts(games, rosters)
    assert got == want
    assert any(u.jersey == "0" for u in got.unknown)
    assert len(got.teams) == 2 * len(games)
    assert completed_tasks_on_workers(cluster) > before, "no task of the job ran on a worker's executor"
