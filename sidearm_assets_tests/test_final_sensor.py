"""The game-over sensor through its public API (build_sensor_context) on SQLite.

The sensor works from the completions waiting in sidearmdb's inbox and the run history; runs are
created on the sensor's instance with `materialize` of a stand-in asset carrying the sensor's tags,
and a successful run's effect is made by the counting job itself (with plain-Python facts).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import pytest
from dagster import AssetKey, DagsterInstance, Failure, SkipReason, asset, build_sensor_context, materialize

from sidearm_assets import final_scheduling
from sidearm_assets.domain.facts import game_facts
from sidearm_assets.storage import final_tables_db, record_log, reference_db
from sidearm_assets.assets.final import FINAL_RUN_TAG
from sidearm_assets.storage.completed_games import CountingJob
from sidearm_assets.resources import ReferenceDatabase
from sidearm_assets.publishing import signals
from sidearm_assets.sensors.final import SEASON_ASSETS, SENSOR_NAME, evaluate_game_over
from sidearm_assets_tests.helpers import DEFAULT_GAME, bucket_store, remove_bucket

DEFAULT_OVER = DEFAULT_GAME.read_bytes()  # ends with `71 00:00 0 0 0` at 10-11: over by the clock rule
REMATCH = b"0 30:00 205 9 1\n-1 00:00 0 0 0\n"


@pytest.fixture
def stores(embedded_stack, tmp_path):
    store = bucket_store(embedded_stack, "over")
    db = ReferenceDatabase(url=f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    reference_db.reset_base_tables(db.engine())
    yield {"gamestreams": store, "sidearmdb": db}
    remove_bucket(store)


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


def tick(stores, instance, wait=0.0):
    context = build_sensor_context(instance=instance, resources=stores)
    return evaluate_game_over(context, stores["gamestreams"], stores["sidearmdb"], wait_seconds=wait)


def skip_message(result) -> str:
    if isinstance(result, SkipReason):
        return result.skip_message
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message


def only_request(result):
    assert not isinstance(result, SkipReason), result.skip_message
    [request] = result.run_requests
    return request


def file(stores, game_id: str, data: bytes) -> None:
    """What the live path does when it publishes a final version."""
    final_tables_db.file_completions(stores["sidearmdb"].engine(), [final_tables_db.Completion(game_id, data)])


def count(stores) -> None:
    """What a successful final-tables run leaves in sidearmdb (facts computed in plain Python)."""
    CountingJob(stores["sidearmdb"].engine(), game_facts).run()


def past_run(instance, request, fail: bool):
    """A finished run carrying the request's tags, as the daemon would have launched it."""

    @asset(name=f"stand_in_{uuid.uuid4().hex[:6]}")
    def stand_in():
        if fail:
            raise Failure("database is locked")

    result = materialize([stand_in], instance=instance, tags=request.tags, raise_on_error=False)
    assert result.success is not fail
    return result.run_id


def test_an_empty_inbox_says_why(stores, instance):
    assert skip_message(tick(stores, instance)) == "all 0 counted game(s) are in the tables; nothing waiting"


def test_games_ending_together_share_one_request_and_repeat_it_until_counted(stores, instance):
    file(stores, "gamestream", DEFAULT_OVER)
    file(stores, "rematch", REMATCH)
    request = only_request(tick(stores, instance))
    assert request.run_key.startswith("final:") and request.run_key.endswith(":1")
    assert list(request.asset_selection) == [AssetKey("players2"), AssetKey("teams2")] + SEASON_ASSETS
    assert request.tags[FINAL_RUN_TAG] == SENSOR_NAME
    assert request.tags["sidearm/pending_games"] == "2" and request.tags["sidearm/attempt"] == "1"
    assert request.tags["dagster/max_runtime"] == "600"
    # A tick repeated before the run exists (or after a daemon restart) asks for the same run key:
    # the daemon launches it once.
    assert only_request(tick(stores, instance)).run_key == request.run_key

    with stores["sidearmdb"].engine().begin() as conn:  # the rematch is scheduled now
        conn.execute(reference_db.games.insert().values(game_id="rematch", home_teamid=101, away_teamid=205))
    count(stores)
    assert skip_message(tick(stores, instance)).startswith("all 2 counted game(s) are in the tables")


def test_a_game_ending_after_a_counted_one_is_new_work(stores, instance):
    file(stores, "gamestream", DEFAULT_OVER)
    first = only_request(tick(stores, instance))
    count(stores)
    file(stores, "rematch", REMATCH)
    second = only_request(tick(stores, instance))
    assert second.tags["sidearm/work"] != first.tags["sidearm/work"]
    assert second.tags["sidearm/pending_games"] == "1"


def test_a_correction_of_a_counted_game_is_requested_once_more(stores, instance):
    file(stores, "gamestream", DEFAULT_OVER)
    count(stores)
    file(stores, "gamestream", DEFAULT_OVER)  # the same bytes again: nothing new
    assert skip_message(tick(stores, instance)).startswith("all 1 counted game(s) are in the tables")
    file(stores, "gamestream", DEFAULT_OVER + b"-1 00:00 0 0 0\n")
    assert only_request(tick(stores, instance)).tags["sidearm/pending_games"] == "1"


def test_the_object_store_losing_everything_changes_nothing_for_the_sensor(stores, instance):
    file(stores, "gamestream", DEFAULT_OVER)
    stores["gamestreams"].archive("gamestream", DEFAULT_OVER)
    stores["gamestreams"].delete_archive("gamestream")  # S3 restarted empty before any run
    assert only_request(tick(stores, instance)).tags["sidearm/pending_games"] == "1"  # the inbox has it
    count(stores)
    assert skip_message(tick(stores, instance)).startswith("all 1 counted game(s)")


def test_an_uncount_asks_for_a_rebuild_and_the_version_stays_uncounted(stores, instance):
    file(stores, "gamestream", DEFAULT_OVER)
    count(stores)
    record_log.uncount(stores["sidearmdb"].engine(), "gamestream", "test", "tester")
    request = only_request(tick(stores, instance))  # the tables still count it
    assert request.tags["sidearm/pending_games"] == "0"
    count(stores)
    file(stores, "gamestream", DEFAULT_OVER)  # the live object filed again: the same version
    assert skip_message(tick(stores, instance)).startswith("all 0 counted game(s) are in the tables")


def test_a_failed_run_is_requested_again_after_a_backoff_with_a_new_key(stores, instance, monkeypatch):
    file(stores, "gamestream", DEFAULT_OVER)
    first = only_request(tick(stores, instance))
    failed = past_run(instance, first, fail=True)
    message = skip_message(tick(stores, instance))
    assert f"run {failed[:8]} FAILURE (1 run(s) so far left it pending); attempt 2 in" in message
    monkeypatch.setattr(final_scheduling, "BACKOFF_BASE_SECONDS", 0.0)
    again = only_request(tick(stores, instance))
    assert again.run_key == first.run_key[: -len(":1")] + ":2"
    assert again.tags["sidearm/work"] == first.tags["sidearm/work"]


def test_a_run_that_succeeded_without_counting_is_requested_again_on_a_backoff(stores, instance, monkeypatch):
    """A run that ended as if it had counted (it had not: the work is the same) never leaves the
    game waiting for another game to end."""
    file(stores, "gamestream", DEFAULT_OVER)
    first = only_request(tick(stores, instance))
    done = past_run(instance, first, fail=False)  # succeeded, but nothing was counted
    assert f"run {done[:8]} SUCCESS (1 run(s) so far left it pending); attempt 2 in" in skip_message(tick(stores, instance))
    monkeypatch.setattr(final_scheduling, "BACKOFF_BASE_SECONDS", 0.0)
    assert only_request(tick(stores, instance)).run_key.endswith(":2")


def test_a_game_that_cannot_be_counted_rests_and_is_tried_again_later(stores, instance, monkeypatch):
    file(stores, "ghost-game", REMATCH)  # no schedule row
    request = only_request(tick(stores, instance))
    past_run(instance, request, fail=False)
    count(stores)  # the run marks it uncountable, with the reason
    message = skip_message(tick(stores, instance))
    assert "1 completed game(s) cannot be counted" in message and "ghost-game" in message
    # Another game ending is new work: requested without the resting one.
    file(stores, "gamestream", DEFAULT_OVER)
    assert only_request(tick(stores, instance)).tags["sidearm/pending_games"] == "1"
    monkeypatch.setattr(final_scheduling, "UNCOUNTABLE_RETRY_SECONDS", 0.0)
    assert only_request(tick(stores, instance)).tags["sidearm/pending_games"] == "2"  # its time has come


def test_a_started_run_whose_worker_is_gone_is_failed(stores, instance):
    """A STARTED final-tables run whose run worker process is dead is failed at the next look (run
    monitoring cannot tell for the default run launcher), so Dagster's retry counts the games. The
    run here works in this process, which logged no worker pid: alive until one names a dead pid."""
    import subprocess
    import sys

    from dagster import DagsterRunStatus, RunsFilter

    file(stores, "gamestream", DEFAULT_OVER)
    request = only_request(tick(stores, instance))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    release = threading.Event()

    @asset(name=f"stand_in_{uuid.uuid4().hex[:6]}")
    def working():
        release.wait(30)  # a run at work, in this process

    worker = threading.Thread(target=materialize, args=([working],),
                              kwargs={"instance": instance, "tags": request.tags, "raise_on_error": False})
    worker.start()
    try:
        def started():
            runs = instance.get_runs(filters=RunsFilter(tags={FINAL_RUN_TAG: SENSOR_NAME}, statuses=[DagsterRunStatus.STARTED]))
            return runs[0] if runs else None

        deadline = time.monotonic() + 30
        while started() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run = started()
        assert run is not None
        assert "no run for" not in skip_message(tick(stores, instance))  # alive: nothing is failed
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
        # The run worker of a launched run logs its pid first thing; here it names a dead process.
        from dagster._core.events import EngineEventData

        instance.report_engine_event(f"Started process for run (pid: {dead.pid}).", run, EngineEventData.in_process(dead.pid))
        skip_message(tick(stores, instance))
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    finally:
        release.set()
        worker.join()


def test_a_writer_holding_sidearmdb_does_not_block_the_sensor(stores, instance):
    """SQLite in WAL mode: readers never wait for a writer, even one holding an exclusive transaction."""
    file(stores, "gamestream", DEFAULT_OVER)
    path = stores["sidearmdb"].url[len("sqlite:///"):]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    locker = sqlite3.connect(path, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        assert only_request(tick(stores, instance)).tags["sidearm/pending_games"] == "1"
        assert time.monotonic() - started < 2.5
    finally:
        locker.rollback()
        locker.close()


def test_a_locked_sidearmdb_skips_within_two_seconds_and_never_stacks_waits(stores, instance, postgres_url):
    """On PostgreSQL an ACCESS EXCLUSIVE table lock blocks readers too: the tick skips within the
    bounded wait, and while the first read is stuck the next ticks skip at once."""
    from sqlalchemy import create_engine, text

    stores = {**stores, "sidearmdb": ReferenceDatabase(url=postgres_url)}
    reference_db.reset_base_tables(stores["sidearmdb"].engine())
    file(stores, "gamestream", DEFAULT_OVER)
    locker = create_engine(postgres_url).connect()
    locker.begin()
    locker.execute(text("LOCK TABLE completions IN ACCESS EXCLUSIVE MODE"))
    try:
        started = time.monotonic()
        message = skip_message(tick(stores, instance))
        assert time.monotonic() - started < 2.5
        assert message.startswith("cannot read the completions waiting in sidearmdb")
        assert "nothing is lost" in message
        started = time.monotonic()  # still locked: the next tick skips as fast
        assert "an earlier read has waited" in skip_message(tick(stores, instance))
        assert time.monotonic() - started < 2.5
    finally:
        locker.rollback()
        locker.close()
    deadline = time.monotonic() + 10
    while True:
        result = tick(stores, instance)
        if not isinstance(result, SkipReason) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert only_request(result).tags["sidearm/pending_games"] == "1"


def test_an_idle_tick_wakes_when_the_live_path_files_a_game(stores, instance):
    """The tick waits on the live path's signal (the daemon's sensor waits up to 4 s; this test 30 s, so
    waking at the signal cannot be mistaken for the end of the wait on a loaded machine)."""
    def live_path_files_a_game():
        file(stores, "gamestream", DEFAULT_OVER)
        signals.notify_completion()

    timer = threading.Timer(0.5, live_path_files_a_game)
    timer.start()
    started = time.monotonic()
    result = tick(stores, instance, wait=30.0)  # a wait far longer than any machine's delay
    elapsed = time.monotonic() - started
    timer.join()
    assert only_request(result).tags["sidearm/pending_games"] == "1"
    assert 0.4 < elapsed < 15.0  # woke at the signal (0.5 s), not at the end of the 30 s wait

    count(stores)
    started = time.monotonic()
    assert skip_message(tick(stores, instance, wait=0.5)).startswith("all 1 counted game(s) are in the tables")
    assert time.monotonic() - started >= 0.45  # idle: waited for a signal that never came


def test_watching_a_run_in_flight_returns_when_it_ends_or_at_the_deadline():
    from types import SimpleNamespace

    from sidearm_assets.sensors.final import _wait_for_run_end

    from sidearm_assets.assets.final import COUNTED_TAG, has_counted

    class Runs:  # a stand-in for the instance: the run is STARTED for its first three looks
        def __init__(self, final_status, counted_from=None):
            self.looks, self.final_status, self.counted_from = 0, final_status, counted_from

        def get_run_by_id(self, run_id):
            self.looks += 1
            status = "STARTED" if self.looks <= 3 else self.final_status
            counted = self.counted_from is not None and self.looks >= self.counted_from
            return SimpleNamespace(run_id="r", status=SimpleNamespace(value=status), tags={COUNTED_TAG: "r"} if counted else {})

    started = time.monotonic()
    assert _wait_for_run_end(Runs("SUCCESS"), "r", time.monotonic() + 5, poll=0.05) is True
    assert time.monotonic() - started < 1
    started = time.monotonic()
    assert _wait_for_run_end(Runs("STARTED"), "r", time.monotonic() + 0.4, poll=0.05) is False
    assert 0.35 < time.monotonic() - started < 1
    # Still STARTED, but it has finished counting: look again (the next run may be queued behind it).
    counting = Runs("STARTED", counted_from=3)
    assert _wait_for_run_end(counting, "r", time.monotonic() + 5, poll=0.05) is True and counting.looks == 3
    # It had counted before the watch began: only its end counts.
    assert _wait_for_run_end(Runs("STARTED", counted_from=1), "r", time.monotonic() + 0.3, poll=0.05) is False
    # A retry carries its parent's tag (another run's id): it has not counted yet.
    retry = SimpleNamespace(run_id="retry", tags={COUNTED_TAG: "r"})
    assert not has_counted(retry) and has_counted(SimpleNamespace(run_id="r", tags={COUNTED_TAG: "r"}))
