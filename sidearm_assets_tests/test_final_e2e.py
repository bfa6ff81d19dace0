"""End to end: with the Dagster daemon running, the simulator's default game ends with players2 and
teams2 written without anyone asking, once; replaying the game changes nothing (the live path
files the same final bytes again: nothing new to count, so no run and no change).

Starts a code server and `dagster-daemon run` against it (throw-away DAGSTER_HOME, the embedded
stack's settings) and the `gamestream` simulator at a small DELAY, and stops them by pid.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.resources import GameStreamStore
from sidearm_assets.domain.final import completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.local.local_instance import write_local_instance
from sidearm_assets.local.dagster_processes import start_dagster
from sidearm_assets.sensors.final import SENSOR_NAME
from sidearm_assets.local.dagster_processes import log_size, wait_for_idle_tick
from sidearm_assets_tests.helpers import DEFAULT_GAME

BIN = Path(sys.executable).parent


def _expected(engine):
    games, teams, players = (reference_db.read_rows(engine, t) for t in
                             (reference_db.games, reference_db.teams, reference_db.players))
    m = matchup("gamestream", games, teams)
    data = DEFAULT_GAME.read_bytes().rstrip(b"\n") + b"\n-1 00:00 0 0 0\n"
    final = season_totals(players, teams, [completed_game(parse_stream(data, m.team_ids), m)])
    return final.players, final.teams


def _simulate(env, log: Path) -> None:
    proc = processes.spawn([str(BIN / "gamestream"), "--delay", "0.004"], log, env=env)
    try:
        assert proc.wait(timeout=180) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            processes.stop(proc.pid)


def _assert_final_runs_forked(home: Path) -> None:
    """The final-tables runs succeeded in run workers forked by the embedded stack's launcher, and
    each said when it had finished counting (the tag the game-over sensor queues the next run on)."""
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    from sidearm_assets.assets.final import COUNTED_TAG, FINAL_RUN_TAG
    from sidearm_assets.local.launcher import WORKER_PID_TAG

    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=RunsFilter(tags={FINAL_RUN_TAG: SENSOR_NAME}))
        assert runs and all(
            r.status.value == "SUCCESS" and r.tags.get(WORKER_PID_TAG) and r.tags.get(COUNTED_TAG) == r.run_id for r in runs
        ), [(r.run_id[:8], r.status.value, r.tags.get(WORKER_PID_TAG), r.tags.get(COUNTED_TAG)) for r in runs]
        for r in runs:  # the whole-table checks ran in the same run, after the season analytics
            started = {e.step_key: e.timestamp for e in instance.all_logs(r.run_id, of_type=DagsterEventType.STEP_START)}
            assert started["season_analytics"] < started["final_tables_checks"], started
            checked = {e.dagster_event.event_specific_data.check_name
                       for e in instance.all_logs(r.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)}
            assert {"player_totals_match_completed_games", "records_match_completed_games", "facts_match_games"} <= checked


@pytest.mark.timeout(600)
def test_daemon_writes_final_tables_when_the_default_game_ends(embedded_stack, warm_spark, tmp_path):
    sql_url = f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}"
    bucket = "e2e-final"
    env = {**os.environ, **embedded_stack, **warm_spark, settings.SQL_URL.name: sql_url, settings.S3_BUCKET.name: bucket,
           "DAGSTER_HOME": str(write_local_instance(tmp_path / "dagster_home"))}
    engine = reference_db.make_engine(sql_url)
    reference_db.reset_base_tables(engine)
    daemon = start_dagster(tmp_path, env)
    try:
        _simulate(env, tmp_path / "gamestream.log")  # creates the bucket, resets the base tables
        want = _expected(engine)
        processes.wait_until(lambda: final_tables_db.read_final_tables(engine) == want, timeout=240,
                             interval=0.2, what="players2/teams2 after the default game")
        state = final_tables_db.read_state(engine)
        assert state["completed_games"] == 1
        assert sorted(final_tables_db.read_record(engine)) == ["gamestream"]
        assert {t["id"]: (t["wins"], t["losses"]) for t in want[1]} == {101: (11, 3), 205: (10, 4)}

        # Replay the same game: the live path files its completion again.
        store = GameStreamStore(endpoint_url=env[settings.S3_ENDPOINT_URL.name], access_key=env[settings.S3_ACCESS_KEY.name],
                                secret_key=env[settings.S3_SECRET_KEY.name], bucket=bucket)
        filed = store.list_archive()["gamestream"]
        _simulate(env, tmp_path / "gamestream.log")
        processes.wait_until(lambda: store.list_archive()["gamestream"].last_modified > filed.last_modified,
                             timeout=120, interval=0.2, what="the replay's completion filed again")

        def settled():  # the record holds the version the archive holds: nothing left to count
            recorded = final_tables_db.read_record(engine).get("gamestream")
            return recorded is not None and recorded.etag == store.list_archive()["gamestream"].etag

        processes.wait_until(settled, timeout=240, interval=0.5, what="the replay's completion counted")
        settled_at = log_size(tmp_path / "daemon.log")
        for _ in range(2):  # a whole game-over tick after the replay was counted: nothing else requested
            settled_at = wait_for_idle_tick(tmp_path / "daemon.log", SENSOR_NAME, settled_at)
        assert final_tables_db.read_final_tables(engine) == want  # the same tables: counted once
        assert sorted(final_tables_db.read_record(engine)) == ["gamestream"]
        _assert_final_runs_forked(tmp_path / "dagster_home")
    finally:
        pids = daemon.pids
        daemon.stop()
        engine.dispose()
    assert not any(processes.alive(pid) for pid in pids)
