"""A live sensor tick within one call, for tests: the watcher polls, every dispatched game is
waited for, and the result is what a background tick would report."""

from __future__ import annotations

import time

from dagster import SensorEvaluationContext, SensorResult, SkipReason

from sidearm_assets.publishing.records import TransientError
from sidearm_assets.publishing.watcher import BucketWatcher, WatchSettings
from sidearm_assets.sensors.live_cursor import LiveCursor
from sidearm_assets.sensors.live_report import Reporter, tick_result


def watch_bucket(
    context: SensorEvaluationContext,
    gamestreams,
    boxscores,
    sidearmdb,
    watch_seconds: float = 0.0,
    poll_seconds: float = 0.05,
    budget: int = 10_000,
) -> SensorResult | SkipReason:
    """Poll for `watch_seconds` (at least once), wait for every dispatched game, and report; a
    first listing that fails is a SkipReason with the error."""
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
