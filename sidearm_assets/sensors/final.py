"""The game-over sensor: one final-tables run at a time, counting every completed game (SPEC 6, 7).

The live path files each completed game version in the archive (`completed/<game_id>.txt`) as it
publishes it and signals it in-process (`sensors/signals.py`). Each tick of this sensor:

1. lists the archive once (no GET: the bytes are read by the run, and only the new ones);
2. reads the record of counted games from sidearmdb (ETags only), with a bounded wait: a locked
   or unreachable database skips the tick with the reason within ~1.5 s, it never hangs;
3. works out the pending work (`completed_games.plan_counting`, `final_scheduling.work_from`) and
   decides from the recent final-tables runs (`final_scheduling.decide`): nothing while one is
   queued or working, one run for everything otherwise, again after a failure (new run key
   `final:<work digest>:<attempt>`), never in a loop for a game that cannot be counted;
4. when there is nothing to do, waits up to `wait_seconds` for the live path's signal and looks
   again at once, so a game filed during the wait is requested within a fraction of a second.

No cursor: everything is derived from the archive, the record and the run history, so a daemon
restart, a lost tick or a lost signal changes nothing. Runs are tagged `sidearm/final-tables`
(the instance's run queue lets one such run work at a time), `sidearm/work`,
`sidearm/attempt`, and `dagster/max_runtime`, so a run whose worker died while STARTED is failed
by run monitoring and requested again.
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

from sidearm_assets.storage import final_tables_db
from sidearm_assets.assets.final import FINAL_RUN_TAG
from sidearm_assets.storage.completed_games import plan_counting
from sidearm_assets.final_scheduling import IN_FLIGHT, RunView, decide, work_from
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase
from sidearm_assets.sensors import signals

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

    def read(self, engine, timeout: float) -> final_tables_db.RecordSummary:
        with self._lock:
            if self._stuck is not None:
                future, since = self._stuck
                if not future.done():
                    raise TimeoutError(f"an earlier read has waited {time.monotonic() - since:.0f} s so far")
                self._stuck = None
            future: Future = Future()

            def run():
                try:
                    future.set_result(final_tables_db.read_record_summary(engine))
                except BaseException as exc:  # handed to the caller
                    future.set_exception(exc)

            threading.Thread(target=run, name="record-read", daemon=True).start()
            try:
                return future.result(timeout=timeout)
            except TimeoutError:
                self._stuck = (future, time.monotonic())
                raise TimeoutError(f"no answer within {timeout:g} s (locked?)") from None


_reader = _BoundedRecordReader()


def _engine(sidearmdb: ReferenceDatabase):
    """The sensor's own engine: on SQLite a 1 s busy timeout instead of the 30 s of the runs."""
    url = sidearmdb.url
    if url.startswith("sqlite:///"):
        return _sqlite_engine(url)
    return sidearmdb.engine()


_sqlite_engines: dict = {}


def _sqlite_engine(url: str):
    if url not in _sqlite_engines:
        from sqlalchemy import create_engine

        _sqlite_engines[url] = create_engine(url, connect_args={"timeout": 1.0})
    return _sqlite_engines[url]


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
    )


def _look(context, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    """One look at the archive, the record and the runs: (result, idle, id of a final-tables run
    in flight while work waits for the next run, else None)."""
    try:
        listing = gamestreams.list_archive()
    except Exception as exc:
        return SkipReason(f"cannot list s3://{gamestreams.bucket}/completed/: {exc}"), False, None
    archived = {g: o.etag for g, o in listing.items()}
    try:
        summary = _reader.read(_engine(sidearmdb), RECORD_READ_TIMEOUT_SECONDS)
    except Exception as exc:
        return SkipReason(
            f"cannot read the record of counted games from sidearmdb: {exc}; "
            f"{len(archived)} archived game(s) wait, nothing is lost (asked again next tick)"
        ), False, None

    plan = plan_counting(summary.record, archived, summary.uncounted)
    digest = final_tables_db.record_digest(summary.record)
    work = work_from(plan, archived, digest, summary.tables_digest, final_tables_db.record_digest({}))
    notes = []
    if plan.missing:
        notes.append(
            f"{len(plan.missing)} counted game(s) missing from the archive (object store emptied?): "
            f"{', '.join(plan.missing[:10])}; the run counts them from the record and re-archives them"
        )
        context.log.warning(notes[-1])
    if plan.uncounted:
        notes.append(f"uncounted, ignored until their object changes: {', '.join(plan.uncounted[:10])}")
    if work.empty:
        reason = f"all {len(summary.record)} completed game(s) counted (record {digest})"
        return SkipReason("; ".join([reason, *notes])), True, None

    records = context.instance.get_run_records(
        filters=RunsFilter(tags={FINAL_RUN_TAG: SENSOR_NAME}), limit=RECENT_RUNS
    )
    views = [_run_view(r) for r in records]
    decision = decide(work, views, time.time())
    if not decision.request:
        # Games that cannot be counted keep a run's work pending after its success: loud, but
        # idle (waiting for a completion is what can change the work).
        idle = "succeeded for this work" in decision.reason
        if idle:
            context.log.error(decision.reason)
        flying = next((v.run_id for v in views if v.status in IN_FLIGHT), None)
        return SkipReason("; ".join([decision.reason, *notes])), idle, flying
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
    again the moment it ends, so the next run is requested without waiting for the next tick."""
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
    """Poll a run's status until it leaves the in-flight states (True) or the deadline (False)."""
    while time.monotonic() < deadline:
        time.sleep(min(poll, max(deadline - time.monotonic(), 0)))
        run = instance.get_run_by_id(run_id)
        if run is None or run.status.value not in IN_FLIGHT:
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
