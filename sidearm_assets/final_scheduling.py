"""When the game-over sensor requests a final-tables run (SPEC 6, 7): pure rules, no Dagster.

The sensor works from two facts: the completions waiting in sidearmdb's inbox (pending, or
uncountable before; ids, digests and states only: nothing of the counted season) with the
tables' stale mark, and the recent final-tables runs. From them:

- **work**: the pending completions, the uncountable ones due for another try
  (`UNCOUNTABLE_RETRY_SECONDS` after a run last judged them), and "rebuild the tables" after an
  uncount. Its digest names the work: the same pending set gives the same digest, tick after tick.
- **coalescing**: while any final-tables run is queued or working, nothing is requested; games
  that end meanwhile wait for the next run, which counts everything (the tables are recomputed
  from the record and the archive, so a run counts each game once however many runs there are).
  One exception: once the working run has finished counting (its `sidearm/counted` tag; it still
  checks the tables and writes the season lake and analytics), the next run for new work is
  requested at once and waits in the queue behind it, so its planning is done when it may start.
- **at least once**: when the last run for the same work failed or was canceled (or was lost
  and failed by Dagster's run monitoring), the work is requested again under a new run key
  (`final:<digest>:<attempt>`) after a backoff, unless Dagster's own run retries are about to
  re-execute it.
- **never idle with work pending**: when a run for the same work succeeded and the same games are
  still pending, the work is requested again on the same backoff (5 s up to 60 s), whether or
  not another game ends. A game a run could not count (no schedule row, teams unknown) leaves the
  work as `uncountable`, named by the run's `completed_games_counted` check, and is tried again
  every `UNCOUNTABLE_RETRY_SECONDS`, so a fixed schedule row is picked up without a run loop.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
FAILED = ("FAILURE", "CANCELED")
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 60.0
# How long a failed run marked `dagster/will_retry` may wait for Dagster's retry before the
# sensor re-requests the work itself (the retry daemon may be down).
RETRY_GRACE_SECONDS = 60.0
UNCOUNTABLE_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class Work:
    """What a run would be for: completions to count (game id -> digest), and a stale-tables mark."""

    pending: dict[str, str]
    stale_tables: bool

    @property
    def empty(self) -> bool:
        return not self.pending and not self.stale_tables

    @property
    def digest(self) -> str:
        body = json.dumps({"pending": self.pending, "stale": self.stale_tables}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def describe(self, limit: int = 10) -> str:
        names = sorted(self.pending)
        shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
        parts = [f"{len(names)} game(s) to count ({shown})"] if names else []
        if self.stale_tables:
            parts.append("tables to rebuild after an uncount")
        return "; ".join(parts) or "nothing"


def work_from(waiting, stale: bool, now: str, retry_after: float | None = None) -> tuple[Work, list]:
    """(the work, the uncountable completions not yet due) from the inbox rows waiting (objects with
    game_id, etag, state, checked_at; `checked_at` and `now` are storage/sql_common.utc_now() strings)."""
    from datetime import datetime

    retry_after = UNCOUNTABLE_RETRY_SECONDS if retry_after is None else retry_after

    def age(stamp: str | None) -> float:
        if not stamp:
            return float("inf")
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        return (datetime.strptime(now, fmt) - datetime.strptime(stamp, fmt)).total_seconds()

    pending, resting = {}, []
    for row in waiting:
        if row.state == "pending" or age(row.checked_at) >= retry_after:
            pending[row.game_id] = f"{row.etag}:{row.checked_at or ''}"
        else:
            resting.append(row)
    return Work(pending, stale), resting


@dataclass(frozen=True)
class RunView:
    """A final-tables run as the rules need it (built from a Dagster run record)."""

    run_id: str
    status: str  # a DagsterRunStatus value
    work: str | None  # its `sidearm/work` tag
    attempt: int  # its `sidearm/attempt` tag
    will_retry: bool  # `dagster/will_retry`: Dagster's run retries will re-execute it
    retried_by: str | None  # `dagster/auto_retry_run_id`: the retry exists
    end_time: float | None
    counted: bool = False  # `sidearm/counted`: it has finished counting (checks and season assets follow)


@dataclass(frozen=True)
class Decision:
    request: bool
    attempt: int  # the attempt to request (when request)
    reason: str  # why: the skip reason, or the log line for the request


def backoff_seconds(failures: int) -> float:
    return min(BACKOFF_BASE_SECONDS * 2 ** max(failures - 1, 0), BACKOFF_MAX_SECONDS)


def decide(work: Work, runs: list[RunView], now: float) -> Decision:
    """Request a run for `work` or not; `runs` are the recent final-tables runs, newest first."""
    if work.empty:
        return Decision(False, 0, "every completed game is counted")
    flying = [r for r in runs if r.status in IN_FLIGHT]
    mine = [r for r in runs if r.work == work.digest]
    if flying:
        r = flying[0]
        if len(flying) == 1 and r.status == "STARTED" and r.counted and not mine:
            return Decision(True, 1, f"run {r.run_id[:8]} has finished counting; requesting the next run, "
                                     f"queued behind it: {work.describe()}")
        return Decision(False, 0, f"run {r.run_id[:8]} is {r.status}; it or the next run counts: {work.describe()}")
    if not mine:
        return Decision(True, 1, f"requesting a final-tables run: {work.describe()}")
    last = mine[0]
    failures = sum(1 for r in mine if r.status in FAILED or r.status == "SUCCESS")
    attempt = max(r.attempt for r in mine) + 1
    since = now - last.end_time if last.end_time else None
    if last.will_retry and not last.retried_by and (since is None or since < RETRY_GRACE_SECONDS):
        return Decision(False, 0, f"run {last.run_id[:8]} {last.status}; Dagster's run retry re-executes it: {work.describe()}")
    wait = backoff_seconds(failures)
    if since is not None and since < wait:
        return Decision(
            False, 0,
            f"run {last.run_id[:8]} {last.status} ({failures} run(s) so far left it pending); attempt {attempt} in "
            f"{wait - since:.0f} s: {work.describe()}",
        )
    return Decision(True, attempt, f"run {last.run_id[:8]} {last.status}: requesting attempt {attempt}: {work.describe()}")
