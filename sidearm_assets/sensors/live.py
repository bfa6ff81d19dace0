"""The live box-score sensor: keeps a watcher on the bucket and reports what it published.

Design (docs/live-latency.md has the measurements and trade-offs). A run per change cannot make
a box score fresh within a second (the daemon evaluates sensors every 5 s and a run costs over a
second to start), and at 200 live games handing every version to the daemon as an event stalls it
for tens of seconds. So the work is split:

- **the watcher** (`sensors/watcher.py`) runs in the code server, in a thread the sensor starts and
  keeps alive with a lease it renews on every tick. It lists the bucket several times a second and
  publishes each changed game's document at once, with games handled in parallel.
- **each tick** (every ~5 s) renews the lease and turns what the watcher did since the last tick
  into a `SensorResult`: runless materializations of `raw_gamestream` and `boxscore_doc` for the
  latest version of each changed game (about `SIDEARM_LIVE_EVENTS_PER_TICK` events per tick, finals
  and failures first; the others wait for the next tick, so the daemon's work per tick is bounded
  whatever the number of games), check evaluations when a game's check results change, an
  observation for a version that failed, partitions for new games, the cursor, and a summary as
  the tick's reason text.

The cursor maps each game to the last version both handled and reported: after a restart the
new watcher re-publishes only what Dagster has not heard of (upserts are idempotent).
`SIDEARM_LIVE_MODE=runs` requests a run per version instead (seconds per change; kept for
comparison and for deployments that want a run log per version).
"""

from __future__ import annotations

import atexit
import gc
import json
import threading
import time
from dataclasses import dataclass, field

from dagster import (
    AddDynamicPartitionsRequest,
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sidearm_assets import settings
from sidearm_assets.assets.live import boxscore_metadata
from sidearm_assets.domain.live import check_outcomes
from sidearm_assets.partitions import games_partitions
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase
from sidearm_assets.sensors.watcher import (
    BackgroundWatcher,
    BucketWatcher,
    Drained,
    Outcome,
    TransientError,
    WatchSettings,
)

RAW, DOC = AssetKey("raw_gamestream"), AssetKey("boxscore_doc")
# When ticks stop coming (sensor turned off, daemon gone), the watcher stops after this long. Long
# enough to ride out a daemon busy storing a tick's events on a loaded machine (seen: 55 s).
LEASE_SECONDS = 120.0


def watch_settings() -> WatchSettings:
    return WatchSettings(
        poll_seconds=float(settings.LIVE_POLL_SECONDS.value()),
        workers=int(settings.LIVE_WORKERS.value()),
        max_object_bytes=int(settings.LIVE_MAX_OBJECT_BYTES.value()),
    )


@dataclass
class LiveCursor:
    """Per game, the last object version handled and reported to Dagster."""

    versions: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # game -> why its current version failed for good

    @classmethod
    def parse(cls, text: str | None) -> "LiveCursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(
                {str(k): str(v) for k, v in data.get("versions", {}).items()},
                {str(k): str(v) for k, v in data.get("failures", {}).items()},
            )
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor republishes current versions: writes are idempotent

    def dump(self) -> str:
        return json.dumps({"versions": self.versions, "failures": self.failures}, sort_keys=True)


class Reporter:
    """What Dagster has been told, per game: the latest outcome not reported yet, check results."""

    def __init__(self, reported: dict[str, str] | None = None):
        self.pending: dict[str, Outcome] = {}
        self.reported: dict[str, str] = dict(reported or {})  # game -> version reported
        self.check_signature: dict[str, tuple] = {}
        self.failure_reported: dict[str, str] = {}  # game -> version whose failure was reported

    def merge(self, drained: Drained, handled: dict[str, str]) -> None:
        """Take in a drain; forget games no longer in the bucket."""
        self.pending.update(drained.outcomes)
        for gone in set(self.reported) - set(handled):
            self.reported.pop(gone, None)
            self.check_signature.pop(gone, None)
            self.failure_reported.pop(gone, None)
        for gone in set(self.pending) - set(handled):
            self.pending.pop(gone, None)

    def queue(self) -> list[Outcome]:
        """Pending outcomes in reporting order: finals and failures first, then games never
        reported, then the longest waiting."""

        def priority(o: Outcome):
            final = bool(o.update and o.update.doc and o.update.doc["final"])
            return (0 if (final or o.failed) else 1, 0 if o.game_id not in self.reported else 1, o.at)

        return sorted(self.pending.values(), key=priority)

    def mark_reported(self, outcome: Outcome) -> None:
        self.pending.pop(outcome.game_id, None)
        self.reported[outcome.game_id] = outcome.version

    def cursor_versions(self, handled: dict[str, str]) -> dict[str, str]:
        """Handled versions whose outcome Dagster has heard of (the rest is re-handled after a restart)."""
        return {g: v for g, v in handled.items() if g not in self.pending and self.reported.get(g) == v}


def events_for(outcome: Outcome, reporter: Reporter, reference) -> list:
    """The runless events that tell Dagster about one game's latest outcome: `boxscore_doc`'s
    materialization always; `raw_gamestream`'s for a game new to this process and for a final
    version (its version and size are in `boxscore_doc`'s metadata too); the checks when their
    results changed or the game is final."""
    game_id, update = outcome.game_id, outcome.update
    if outcome.failed:
        if reporter.failure_reported.get(game_id) == outcome.version:
            return []
        reporter.failure_reported[game_id] = outcome.version
        return [AssetObservation(DOC, partition=game_id, description=f"{game_id}: not published",
                                 metadata={"game_id": game_id, "version": outcome.version, "error": outcome.failed})]
    if update is None:  # skipped before parsing (not scheduled): the tick's text says so
        return []
    final = bool(update.doc and update.doc["final"])
    events = []
    if final or game_id not in reporter.reported:
        events.append(AssetMaterialization(RAW, partition=game_id, metadata={
            "game_id": game_id, "version": outcome.version, "bytes": outcome.size, "lines": update.parsed.line_count,
        }))
    events.append(AssetMaterialization(DOC, partition=game_id, metadata={
        **boxscore_metadata(update), "bytes": outcome.size,
        "published_at": time.strftime("%H:%M:%S", time.gmtime(outcome.at)),
    }))
    if reference is None:
        return events
    doc = update.doc
    players = reference.rosters((doc["home"]["teamid"], doc["away"]["teamid"])) if doc else []
    outcomes = check_outcomes(update, players)
    signature = tuple((o.name, o.passed) for o in outcomes)
    if final or reporter.check_signature.get(game_id) != signature:
        reporter.check_signature[game_id] = signature
        # Without `partition=`: Dagster 1.13.27 stores a second runless evaluation of the same check
        # and partition as a duplicate row and fails the whole tick (UNIQUE constraint on
        # asset_check_executions). The game and version are in the metadata and description.
        events += [
            AssetCheckEvaluation(
                asset_key=DOC, check_name=o.name, passed=o.passed,
                metadata={"game_id": game_id, "version": outcome.version, **o.metadata},
                severity=AssetCheckSeverity(o.severity), description=f"{game_id}: {o.description}",
            )
            for o in outcomes
        ]
    return events


def tick_result(context: SensorEvaluationContext, watcher: BucketWatcher, reporter: Reporter,
                drained: Drained, budget: int, note: str = "") -> SensorResult:
    handled = watcher.versions()
    reporter.merge(drained, handled)
    queue = reporter.queue()
    try:
        reference = watcher.reference.rows()
    except TransientError:
        reference = None
    known = set(context.instance.get_dynamic_partitions(games_partitions.name)) if queue else set()
    events, new_partitions, chosen = [], [], []
    for outcome in queue:
        if chosen and len(events) >= budget:
            break  # the rest waits for the next tick: the daemon stores every event before it goes on
        out = events_for(outcome, reporter, reference)
        reporter.mark_reported(outcome)
        chosen.append(outcome)
        if out and outcome.game_id not in known and not outcome.failed:
            new_partitions.append(outcome.game_id)
        events += out
    for outcome in chosen:
        if outcome.failed:
            context.log.error(f"{outcome.game_id}: version {outcome.version} not published: {outcome.failed}")
    summary = summarize(drained, len(chosen), len(reporter.pending), note, len(events))
    context.log.info(summary)
    return SensorResult(
        asset_events=events,
        dynamic_partitions_requests=(
            [AddDynamicPartitionsRequest(games_partitions.name, sorted(new_partitions))] if new_partitions else []
        ),
        cursor=LiveCursor(reporter.cursor_versions(handled), watcher.failures()).dump(),
        skip_reason=summary,
    )


def summarize(d: Drained, reported: int, waiting: int, note: str = "", events: int = 0) -> str:
    """One line for the tick's reason text: what was published, what waits, what failed."""
    parts = [note] if note else []
    skipped = sorted(f"{o.game_id} ({o.skipped})" for o in d.outcomes.values() if o.skipped)
    parts.append(f"published {d.published} version(s) of {sum(1 for o in d.outcomes.values() if o.published)} "
                 f"game(s) ({d.games_listed} in the bucket, {d.listings} listing(s))")
    if d.handle_seconds:
        ordered = sorted(d.handle_seconds)
        parts.append(f"handling p50 {ordered[len(ordered) // 2] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    if d.rebuilt:
        parts.append(f"{d.rebuilt} missed event document(s) rebuilt")
    if d.superseded_deleted:
        parts.append(f"{d.superseded_deleted} superseded document(s) deleted")
    parts.append(f"reported {reported} game(s) to Dagster ({events} event(s)), {waiting} waiting")
    if skipped:
        parts.append("skipped: " + "; ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
    if d.failures:
        shown = [f"{g}: {r}" for g, r in sorted(d.failures.items())[:5]]
        parts.append(f"{len(d.failures)} game(s) failing until their object changes: " + "; ".join(shown))
    if d.errors:
        parts.append(f"{len(d.errors)} transient error(s), retried: " + "; ".join(d.errors[-3:]))
    if d.reference_error:
        age = f"{d.reference_age:.0f} s old" if d.reference_age is not None else "none yet"
        parts.append(f"reference data not refreshed ({d.reference_error}); using rows {age}")
    return "; ".join(parts)


@dataclass
class _Owned:
    background: BackgroundWatcher
    reporter: Reporter


_WATCHERS: dict[tuple, _Owned] = {}
_WATCHERS_LOCK = threading.Lock()


_FROZEN = False


def _freeze_long_lived_objects() -> None:
    """Once per process, when its first background watcher starts: leave the objects alive now
    (Dagster, gRPC, the code location: ~140,000 of them in the code server) out of Python's
    full garbage collections. Measured at 200 games (bench/live_scale.py): the code server ran
    17 full collections in 150 s, 145-245 ms each, and every watcher thread waited through them;
    frozen, 33 collections of the ~80,000 objects made later, 25-155 ms (median ~55), and
    fresh_p95 0.31-0.35 s against 0.37-0.38 s. Objects made later are collected as usual; a
    collection first, so nothing already garbage is kept."""
    global _FROZEN
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        # At exit they go back, so the interpreter's last collection sees them (native
        # extensions such as duckdb's report instances never freed otherwise).
        atexit.register(gc.unfreeze)
        _FROZEN = True


def stop_watchers() -> None:
    """Stop every background watcher of this process (tests; a watcher also stops when its lease ends)."""
    with _WATCHERS_LOCK:
        owned = list(_WATCHERS.values())
        _WATCHERS.clear()
    for o in owned:
        o.background.stop()


def background_tick(context, gamestreams: GameStreamStore, boxscores: BoxScoreStore,
                    sidearmdb: ReferenceDatabase, budget: int | None = None) -> SensorResult:
    """Keep this process's watcher alive and report what it did since the previous tick."""
    key = (gamestreams.endpoint_url, gamestreams.bucket, boxscores.uri, boxscores.database, sidearmdb.url)
    budget = int(settings.LIVE_EVENTS_PER_TICK.value()) if budget is None else budget
    note = ""
    with _WATCHERS_LOCK:
        owned = _WATCHERS.get(key)
        if owned is None or not owned.background.alive:
            cursor = LiveCursor.parse(context.cursor)
            watcher = BucketWatcher(gamestreams, boxscores, sidearmdb, versions=cursor.versions,
                                    settings=watch_settings(), failures=cursor.failures)
            _freeze_long_lived_objects()
            owned = _WATCHERS[key] = _Owned(BackgroundWatcher(watcher, LEASE_SECONDS), Reporter(cursor.versions))
            note = f"watcher started from a cursor of {len(cursor.versions)} game(s)"
        owned.background.renew()
    if owned.background.last_error:
        note = "; ".join(filter(None, [note, f"last poll failed: {owned.background.last_error}"]))
    return tick_result(context, owned.background.watcher, owned.reporter, owned.background.watcher.drain(),
                       budget, note)


def watch_bucket(
    context: SensorEvaluationContext,
    gamestreams: GameStreamStore,
    boxscores: BoxScoreStore,
    sidearmdb: ReferenceDatabase,
    watch_seconds: float = 0.0,
    poll_seconds: float = 0.05,
    budget: int = 10_000,
) -> SensorResult | SkipReason:
    """The same watcher, within one call: poll for `watch_seconds` (at least once), wait for every
    dispatched game, and report. For tests and one-off use; the daemon uses `background_tick`."""
    cursor = LiveCursor.parse(context.cursor)
    watcher = BucketWatcher(gamestreams, boxscores, sidearmdb, versions=cursor.versions,
                            settings=WatchSettings(poll_seconds=poll_seconds), failures=cursor.failures)
    try:
        deadline = time.monotonic() + watch_seconds
        first = True
        while True:
            try:
                watcher.poll()
            except TransientError as exc:
                if first:
                    return SkipReason(str(exc))
                break
            first = False
            watcher.idle()
            if time.monotonic() + watcher.pause >= deadline:
                break
            time.sleep(watcher.pause)
        return tick_result(context, watcher, Reporter(cursor.versions), watcher.drain(), budget)
    finally:
        watcher.close()


LIVE_RUN_ASSETS = [
    AssetKey("reference_teams"), AssetKey("reference_players"), RAW, DOC,
]


def request_runs(context: SensorEvaluationContext, gamestreams: GameStreamStore) -> SensorResult | SkipReason:
    """`SIDEARM_LIVE_MODE=runs`: one run of the live assets per new object version instead.

    Slower (the daemon's 5 s loop plus a run's process start: seconds per change, see
    docs/live-latency.md) but every version gets a run with its own logs and retries. The run
    key is `<game_id>:<ETag@LastModified>`; the run reads the object as it is when it starts, so
    under a fast stream one run may reflect a later version than its key (its metadata says which).
    """
    cursor = LiveCursor.parse(context.cursor)
    try:
        listing = gamestreams.list_games()
    except Exception as exc:
        return SkipReason(f"cannot list s3://{gamestreams.bucket}: {exc}")
    known = set(context.instance.get_dynamic_partitions(games_partitions.name))
    requests, new_partitions = [], []
    for game_id, obj in sorted(listing.items()):
        if cursor.versions.get(game_id) == obj.version:
            continue
        if game_id not in known:
            new_partitions.append(game_id)
        requests.append(
            RunRequest(
                run_key=f"{game_id}:{obj.version}",
                partition_key=game_id,
                asset_selection=LIVE_RUN_ASSETS,
                tags={"sidearm/game_id": game_id, "sidearm/version": obj.version},
            )
        )
        cursor.versions[game_id] = obj.version
    for gone in set(cursor.versions) - set(listing):
        del cursor.versions[gone]
    if not requests:
        return SkipReason(f"no game object changed ({len(listing)} game(s) in s3://{gamestreams.bucket})")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=(
            [AddDynamicPartitionsRequest(games_partitions.name, new_partitions)] if new_partitions else []
        ),
        cursor=cursor.dump(),
    )


@sensor(
    name="gamestream_sensor",
    asset_selection=LIVE_RUN_ASSETS,  # what `runs` mode requests; the watcher reports the same assets
    minimum_interval_seconds=1,  # the daemon's loop floor is 5 s; each tick renews the watcher's lease
    default_status=DefaultSensorStatus.RUNNING,
    description="Keeps a watcher on the game-stream bucket that publishes each new object version's box "
    "score at once; each tick reports what it published.",
)
def gamestream_sensor(
    context: SensorEvaluationContext,
    gamestreams: GameStreamStore,
    boxscores: BoxScoreStore,
    sidearmdb: ReferenceDatabase,
):
    if settings.LIVE_MODE.value() == "runs":
        return request_runs(context, gamestreams)
    return background_tick(context, gamestreams, boxscores, sidearmdb)
