"""The live box-score sensor: keeps a watcher on the bucket and reports what it published.

Design (docs/live-latency.md has the measurements and trade-offs). A run per change cannot make
a box score fresh within a second (the daemon evaluates sensors every 5 s and a run costs over a
second to start), and at 200 live games handing every version to the daemon as an event stalls it
for tens of seconds. So the work is split:

- **the watcher** (`publishing/watcher.py`) runs in the code server, in a thread the sensor starts
  and keeps alive with a lease it renews on every tick (`publishing/background.py`). It lists the
  bucket several times a second and publishes each changed game's document at once, with games
  handled in parallel.
- **each tick** (every ~5 s) renews the lease and reports what the watcher did since the last
  tick (`sensors/live_report.py`): about `SIDEARM_LIVE_EVENTS_PER_TICK` runless events per tick.

A steady tick never opens the Dagster instance in the code server (CPU on every tick; about 0.1 s
on Dagster's own SQLite storage, which loads its migration scripts each time): the sensor takes no Dagster resources (it builds them from the settings),
the summary goes to the tick's reason text (the daemon logs it) rather than to `context.log`, and
the reporter asks for each game's partition once instead of reading the partitions each tick.

The cursor (`sensors/live_cursor.py`) maps each game to the last version both handled and
reported: after a restart the new watcher re-publishes only what Dagster has not heard of (upserts
are idempotent). `SIDEARM_LIVE_MODE=runs` requests a run per version instead
(`sensors/live_runs.py`; seconds per change; kept for comparison and for deployments that want a
run log per version).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, sensor

from sidearm_assets import settings
from sidearm_assets.publishing.background import BackgroundWatcher, WatcherRegistry
from sidearm_assets.publishing.watcher import BucketWatcher, WatchSettings
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase, build_resources
from sidearm_assets.sensors.live_cursor import LiveCursor
from sidearm_assets.sensors.live_report import Reporter, tick_result
from sidearm_assets.sensors.live_runs import LIVE_RUN_ASSETS, request_runs

# When ticks stop coming (sensor turned off, daemon gone), the watcher stops after this long. Long
# enough to ride out a daemon busy storing a tick's events on a loaded machine (seen: 55 s).
LEASE_SECONDS = 120.0


@dataclass
class Watching:
    """A background watcher and what Dagster has been told of its work."""

    background: BackgroundWatcher
    reporter: Reporter


WATCHERS: WatcherRegistry[Watching] = WatcherRegistry()  # this code-server process's watchers


def watch_settings() -> WatchSettings:
    return WatchSettings(
        poll_seconds=float(settings.LIVE_POLL_SECONDS.value()),
        workers=int(settings.LIVE_WORKERS.value()),
        max_object_bytes=int(settings.LIVE_MAX_OBJECT_BYTES.value()),
    )


def background_tick(context, gamestreams: GameStreamStore, boxscores: BoxScoreStore,
                    sidearmdb: ReferenceDatabase, budget: int | None = None) -> SensorResult:
    """Keep this process's watcher alive and report what it did since the previous tick."""
    key = (gamestreams.endpoint_url, gamestreams.bucket, boxscores.uri, boxscores.database, sidearmdb.url)
    budget = int(settings.LIVE_EVENTS_PER_TICK.value()) if budget is None else budget
    def start() -> Watching:  # the cursor is read only when a watcher starts: it grows with the season
        cursor = LiveCursor.parse(context.cursor)
        watcher = BucketWatcher(gamestreams, boxscores, sidearmdb, versions=cursor.versions,
                                settings=watch_settings(), failures=cursor.failures)
        return Watching(BackgroundWatcher(watcher, LEASE_SECONDS), Reporter(cursor.versions))

    watching, started = WATCHERS.keep_alive(key, start)
    # a new reporter has heard of exactly the cursor's games
    note = f"watcher started from a cursor of {len(watching.reporter.reported)} game(s)" if started else ""
    if watching.background.last_error:
        note = "; ".join(filter(None, [note, f"last poll failed: {watching.background.last_error}"]))
    watcher = watching.background.watcher
    return tick_result(context, watcher, watching.reporter, watcher.drain(), budget, note)


@sensor(
    name="gamestream_sensor",
    asset_selection=LIVE_RUN_ASSETS,  # what `runs` mode requests; the watcher reports the same assets
    minimum_interval_seconds=1,  # the daemon's loop floor is 5 s; each tick renews the watcher's lease
    default_status=DefaultSensorStatus.RUNNING,
    description="Keeps a watcher on the game-stream bucket that publishes each new object version's box "
    "score at once; each tick reports what it published.",
)
def gamestream_sensor(context: SensorEvaluationContext):
    # The resources from the settings, as Definitions binds them: a sensor that declares resources
    # has Dagster open the instance to build them, every tick.
    stores = build_resources(resolved=True)
    if settings.LIVE_MODE.value() == "runs":
        return request_runs(context, stores["gamestreams"])
    return background_tick(context, stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
