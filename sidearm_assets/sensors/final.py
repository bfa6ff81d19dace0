"""The game-over sensor: one final-tables run at a time, counting every completed game (SPEC 6, 7).

The live path files each completed game version in sidearmdb's inbox (`completions`) as it
publishes it, and signals it in-process (`publishing/signals.py`). Each tick of this sensor:

1. reads the completions waiting and the tables' stale mark from sidearmdb (no bytes, nothing of
   the counted season), with a bounded wait: a locked or unreachable database skips the tick with
   the reason within ~1.5 s, it never hangs;
2. fails a STARTED final-tables run whose run worker process is gone (its pid is in the run's
   first engine event), so its retry or the next request counts the games within a minute
   instead of at the run's maximum runtime;
3. works out the pending work (`final_scheduling.work_from`) and decides from the recent
   final-tables runs (`final_scheduling.decide`): nothing while one is queued or working (unless
   the working one has finished counting: then the next run is queued behind it), one run for
   everything otherwise, again after a failure or a run that left the work pending (new run key
   `final:<work digest>:<attempt>`, on a backoff);
4. when there is nothing to do, waits up to `wait_seconds` for the live path's signal and looks
   again at once, so a game filed during the wait is requested within a fraction of a second.

No cursor: everything is derived from the inbox and the run history, so a daemon restart, a lost
tick or a lost signal changes nothing.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sidearm_assets.storage import final_tables_db, sql_common
from sidearm_assets.assets.final import FINAL_RUN_TAG, has_counted
from sidearm_assets.final_scheduling import IN_FLIGHT, RunView, decide, work_from
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase
from sidearm_assets.publishing import signals

FINAL_ASSETS = [AssetKey("players2"), AssetKey("teams2")]
# The season lake follows the record the final tables commit, and the analytics follow the lake, in the same run.
SEASON_ASSETS = [
    AssetKey(n) for n in ("season_lake", "scoring_leaders", "team_shooting_by_quarter", "lead_changes", "clutch_scorers")
]
RUN_ASSETS = FINAL_ASSETS + SEASON_ASSETS
MINIMUM_INTERVAL_SECONDS = 2  # the daemon's loop runs every >= 5 s anyway; never slower than that
SENSOR_NAME = "game_over_sensor"
RECORD_READ_TIMEOUT_SECONDS = 1.5
# A final-tables run takes 5-30 s; one still STARTED after this is failed by run monitoring
# (the DefaultRunLauncher cannot tell that its worker died) and the work is requested again.
FINAL_RUN_MAX_RUNTIME_SECONDS = 600
RECENT_RUNS = 50


class _BoundedRecordReader:
    """Reads the record summary in a helper thread and waits at most `timeout` seconds.

    A read stuck behind a database lock keeps its thread until the lock goes; meanwhile later
    ticks skip at once instead of stacking more stuck threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._stuck: tuple[Future, float] | None = None

    def read(self, engine, timeout: float) -> final_tables_db.InboxSummary:
        with self._lock:
            if self._stuck is not None:
                future, since = self._stuck
                if not future.done():
                    raise TimeoutError(f"an earlier read has waited {time.monotonic() - since:.0f} s so far")
                self._stuck = None
            future: Future = Future()

            def run():
                try:
                    future.set_result(final_tables_db.read_inbox(engine))
                except BaseException as exc:  # handed to the caller
                    future.set_exception(exc)

            threading.Thread(target=run, name="record-read", daemon=True).start()
            try:
                return future.result(timeout=timeout)
            except TimeoutError:
                self._stuck = (future, time.monotonic())
                raise TimeoutError(f"no answer within {timeout:g} s (locked?)") from None


_reader = _BoundedRecordReader()


def _run_view(record) -> RunView:
    tags = record.dagster_run.tags
    try:
        attempt = int(tags.get("sidearm/attempt", "0"))
    except ValueError:
        attempt = 0
    return RunView(
        run_id=record.dagster_run.run_id,
        status=record.dagster_run.status.value,
        work=tags.get("sidearm/work"),
        attempt=attempt,
        will_retry=tags.get("dagster/will_retry") == "true",
        retried_by=tags.get("dagster/auto_retry_run_id"),
        end_time=record.end_time or (record.update_timestamp.timestamp() if record.update_timestamp else None),
        counted=has_counted(record.dagster_run),
    )


_WORKER_PIDS: dict[str, int] = {}  # run id -> its run worker's pid, read once from its event log


def run_worker_pid(instance, run_id: str) -> int | None:
    """The pid of a run's worker process: the run worker logs it in its first engine event
    ("Started process for run (pid: N)"); None before it does."""
    if run_id in _WORKER_PIDS:
        return _WORKER_PIDS[run_id]
    from dagster import DagsterEventType

    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = event.engine_event_data if event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None and (event.message or entry.user_message or "").startswith("Started process for run"):
            _WORKER_PIDS[run_id] = int(pid.value)
            if len(_WORKER_PIDS) > 200:
                _WORKER_PIDS.pop(next(iter(_WORKER_PIDS)))
            return _WORKER_PIDS[run_id]
    return None


def _worker_gone(pid: int) -> str | None:
    """Why the run worker `pid` is gone, or None while it lives. Run workers are started by the
    code server that also evaluates this sensor (the default run launcher), so they share a host."""
    import psutil

    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # killed, not reaped yet
            return f"its run worker (pid {pid}) is dead"
    except psutil.NoSuchProcess:
        return f"its run worker (pid {pid}) is gone"
    except psutil.Error:
        pass
    return None


def fail_lost_runs(context, records) -> list[str]:
    """Fail the STARTED final-tables runs whose worker is gone (what run monitoring cannot tell for
    the default run launcher); Dagster's run retries then re-execute them."""
    failed = []
    for record in records:
        run = record.dagster_run
        if run.status.value != "STARTED":
            continue
        pid = run_worker_pid(context.instance, run.run_id)
        why = _worker_gone(pid) if pid is not None else None
        if why is None:
            continue
        message = f"final-tables run {run.run_id[:8]} lost: {why}; failed so that it is retried"
        context.log.warning(message)
        context.instance.report_run_failed(run, message)
        failed.append(run.run_id)
    return failed


def _look(context, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    """One look at the inbox and the runs: (result, idle, id of a final-tables run in flight while
    work waits for the next run, else None)."""
    try:
        inbox = _reader.read(sidearmdb.filing_engine(), RECORD_READ_TIMEOUT_SECONDS)  # 1 s busy timeout on SQLite
    except Exception as exc:
        return SkipReason(
            f"cannot read the completions waiting in sidearmdb: {exc}; nothing is lost (asked again next tick)"
        ), False, None
    work, resting = work_from(inbox.waiting, inbox.stale, sql_common.utc_now())
    notes = []
    if resting:
        notes.append(
            f"{len(resting)} completed game(s) cannot be counted and are tried again later: "
            + "; ".join(f"{r.game_id}: {r.problem}" for r in resting[:5])
        )
    if work.empty:
        reason = f"all {inbox.counted} counted game(s) are in the tables; nothing waiting"
        return SkipReason("; ".join([reason, *notes])), True, None

    records = context.instance.get_run_records(
        filters=RunsFilter(tags={FINAL_RUN_TAG: SENSOR_NAME}), limit=RECENT_RUNS
    )
    if fail_lost_runs(context, records):
        records = context.instance.get_run_records(
            filters=RunsFilter(tags={FINAL_RUN_TAG: SENSOR_NAME}), limit=RECENT_RUNS
        )
    views = [_run_view(r) for r in records]
    decision = decide(work, views, time.time())
    if not decision.request:
        flying = next((v.run_id for v in views if v.status in IN_FLIGHT), None)
        return SkipReason("; ".join([decision.reason, *notes])), False, flying
    context.log.info(decision.reason)
    request = RunRequest(
        run_key=f"final:{work.digest}:{decision.attempt}",
        asset_selection=RUN_ASSETS,
        tags={
            FINAL_RUN_TAG: SENSOR_NAME,
            "sidearm/work": work.digest,
            "sidearm/attempt": str(decision.attempt),
            "sidearm/pending_games": str(len(work.pending)),
            "dagster/max_runtime": str(FINAL_RUN_MAX_RUNTIME_SECONDS),
            "dagster/priority": "10",  # ahead of any live box-score run in the queue
        },
    )
    return SensorResult(run_requests=[request]), False, None


def evaluate_game_over(
    context, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase, wait_seconds: float = signals.DEFAULT_WAIT_SECONDS
):
    """One tick. With nothing to do it waits up to `wait_seconds` for a completion signal; while
    a run is in flight and games wait for the next one, it watches that run for as long and looks
    again the moment it ends, so the next run is requested without waiting for the next tick.
    A loop of its own, not `retrying.wait_until`: it waits on a signal or a run, whichever applies."""
    deadline = time.monotonic() + wait_seconds
    signals.clear()  # the listing below sees every game filed before now
    while True:
        result, idle, flying = _look(context, gamestreams, sidearmdb)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return result
        if idle:
            if not signals.wait_for_completion(remaining):
                return result
        elif flying is None or not _wait_for_run_end(context.instance, flying, deadline):
            return result


def _wait_for_run_end(instance, run_id: str, deadline: float, poll: float = 0.25) -> bool:
    """Poll a run until it leaves the in-flight states or finishes counting (True: look again; the
    next run may be queued behind it), or the deadline (False). Not `retrying.wait_until`: the last
    look falls on the deadline and the instance's errors fail the tick."""
    run = instance.get_run_by_id(run_id)
    counted_before = run is not None and has_counted(run)
    while time.monotonic() < deadline:
        time.sleep(min(poll, max(deadline - time.monotonic(), 0)))
        run = instance.get_run_by_id(run_id)
        if run is None or run.status.value not in IN_FLIGHT:
            return True
        if not counted_before and has_counted(run):
            return True
    return False


@sensor(
    name=SENSOR_NAME,
    asset_selection=RUN_ASSETS,
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests one players2/teams2 run at a time counting every completed game not yet "
    "counted; re-requests failed or lost runs (run key final:<work digest>:<attempt>).",
)
def game_over_sensor(context: SensorEvaluationContext, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    return evaluate_game_over(context, gamestreams, sidearmdb)
