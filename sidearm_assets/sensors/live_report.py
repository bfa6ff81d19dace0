"""What a live sensor tick tells Dagster: each changed game's latest outcome as runless events.

A tick turns what the watcher did since the previous tick (`Drained`) into a `SensorResult`:
runless materializations of `raw_gamestream` and `boxscore_doc` for the latest version of each
changed game (at most `budget` events per tick, finals and failures first; the others wait for
the next tick, so the daemon's work per tick is bounded whatever the number of games), check
evaluations when a game's check results change, an observation for a version that failed,
partitions for new games, the cursor, and a one-line summary as the tick's reason text.
"""

from __future__ import annotations

import time

from dagster import (
    AddDynamicPartitionsRequest,
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    SensorEvaluationContext,
    SensorResult,
)

from sidearm_assets.assets.live import boxscore_metadata
from sidearm_assets.domain.live import check_outcomes
from sidearm_assets.partitions import games_partitions
from sidearm_assets.publishing.records import Drained, Outcome, TransientError
from sidearm_assets.publishing.watcher import BucketWatcher
from sidearm_assets.sensors.live_cursor import LiveCursor

RAW, DOC = AssetKey("raw_gamestream"), AssetKey("boxscore_doc")


class Reporter:
    """What Dagster has been told, per game: the latest outcome not reported yet, check results."""

    def __init__(self, reported: dict[str, str] | None = None):
        self.pending: dict[str, Outcome] = {}
        self.reported: dict[str, str] = dict(reported or {})  # game -> version reported
        self.check_signature: dict[str, tuple] = {}
        self.failure_reported: dict[str, str] = {}  # game -> version whose failure was reported
        # games whose dynamic partition this reporter asked for (each once: the daemon skips one
        # that exists already), and what the last tick asked for, with the cursor it returned
        self.partitioned: set[str] = set()
        self._last_cursor: str | None = None
        self._last_requested: list[str] = []

    def merge(self, drained: Drained, handled: dict[str, str]) -> None:
        """Take in a drain; forget games no longer in the bucket."""
        self.pending.update(drained.outcomes)
        for gone in set(self.reported) - set(handled):
            self.reported.pop(gone, None)
            self.check_signature.pop(gone, None)
            self.failure_reported.pop(gone, None)
            self.partitioned.discard(gone)
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

    def unconfirmed(self, cursor: str | None) -> list[str]:
        """The partitions the previous tick asked for, when the daemon did not store that tick's
        result (this tick's cursor is not the one it returned): asked for again."""
        if self._last_cursor is None or cursor == self._last_cursor:
            return []
        return [g for g in self._last_requested if g in self.partitioned]

    def sent(self, cursor: str, requested: list[str]) -> None:
        self._last_cursor, self._last_requested = cursor, list(requested)

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
    events, chosen = [], []
    new_partitions = reporter.unconfirmed(context.cursor)
    for outcome in queue:
        if chosen and len(events) >= budget:
            break  # the rest waits for the next tick: the daemon stores every event before it goes on
        out = events_for(outcome, reporter, reference)
        reporter.mark_reported(outcome)
        chosen.append(outcome)
        if out and outcome.game_id not in reporter.partitioned and not outcome.failed:
            new_partitions.append(outcome.game_id)
            reporter.partitioned.add(outcome.game_id)
        events += out
    for outcome in chosen:
        if outcome.failed:
            context.log.error(f"{outcome.game_id}: version {outcome.version} not published: {outcome.failed}")
    # the summary is the tick's reason text, which the daemon logs: `context.log` would open the
    # instance in the code server on every tick
    summary = summarize(drained, len(chosen), len(reporter.pending), note, len(events))
    cursor = LiveCursor(reporter.cursor_versions(handled), watcher.failures()).dump()
    new_partitions = sorted(set(new_partitions))
    reporter.sent(cursor, new_partitions)
    return SensorResult(
        asset_events=events,
        dynamic_partitions_requests=(
            [AddDynamicPartitionsRequest(games_partitions.name, new_partitions)] if new_partitions else []
        ),
        cursor=cursor,
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
