"""The game-over sensor's rules as pure functions: the work waiting in the inbox, and when to
request a run for it."""

from __future__ import annotations

from dataclasses import dataclass

from sidearm_assets import final_scheduling
from sidearm_assets.final_scheduling import RunView, Work, backoff_seconds, decide, work_from

NOW = "2026-03-01T12:00:00.000000Z"


@dataclass(frozen=True)
class Row:
    """An inbox row as work_from reads it (final_tables_db.InboxRow has these fields)."""

    game_id: str
    etag: str
    state: str = "pending"
    checked_at: str | None = None


def _ago(seconds: float) -> str:
    from datetime import datetime, timedelta

    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    return (datetime.strptime(NOW, fmt) - timedelta(seconds=seconds)).strftime(fmt)


def test_pending_rows_are_the_work_and_its_digest_names_the_versions_only():
    w1, rest1 = work_from([Row("a", "1"), Row("b", "2")], False, NOW)
    w2, _ = work_from([Row("b", "2"), Row("a", "1")], False, _ago(3600))  # order and time: same work
    w3, _ = work_from([Row("a", "1"), Row("b", "3")], False, NOW)  # b corrected: other work
    assert set(w1.pending) == {"a", "b"} and rest1 == []
    assert w1.digest == w2.digest != w3.digest
    assert not w1.empty and not w1.stale_tables
    assert "2 game(s) to count (a, b)" == w1.describe()


def test_nothing_waiting_is_no_work_unless_the_tables_are_stale_after_an_uncount():
    idle, _ = work_from([], False, NOW)
    assert idle.empty and idle.describe() == "nothing"
    after_uncount, _ = work_from([], True, NOW)
    assert not after_uncount.empty and after_uncount.stale_tables
    assert after_uncount.digest != idle.digest
    assert "rebuild" in after_uncount.describe()


def test_uncountable_rows_rest_until_the_retry_delay_has_passed():
    delay = final_scheduling.UNCOUNTABLE_RETRY_SECONDS
    fresh = Row("fresh", "1", "uncountable", _ago(delay - 1))
    due = Row("due", "2", "uncountable", _ago(delay))
    never_checked = Row("unchecked", "3", "uncountable", None)
    work, resting = work_from([fresh, due, never_checked, Row("p", "4")], False, NOW)
    assert sorted(work.pending) == ["due", "p", "unchecked"]
    assert resting == [fresh]
    # Only uncountable rows wait: nothing pending but a resting row is no work at all.
    alone, resting = work_from([fresh], False, NOW)
    assert alone.empty and resting == [fresh]
    # A shorter delay given by the caller is honored.
    work, resting = work_from([fresh], False, NOW, retry_after=1)
    assert list(work.pending) == ["fresh"] and resting == []


def test_an_uncountable_row_judged_again_is_new_work():
    """Its digest carries when it was last judged: the retry after a run judged it again is not
    mistaken for the work that run already did (which would wait on the success backoff)."""
    delay = final_scheduling.UNCOUNTABLE_RETRY_SECONDS
    first, _ = work_from([Row("u", "1", "uncountable", _ago(delay + 10))], False, NOW)
    later, _ = work_from([Row("u", "1", "uncountable", _ago(delay + 5))], False, NOW)
    assert first.pending.keys() == later.pending.keys() and first.digest != later.digest


WORK = Work({"a": "1:"}, False)


def run(status, work=WORK.digest, attempt=1, will_retry=False, retried_by=None, end=100.0, run_id="run00001",
        counted=False):
    return RunView(run_id, status, work, attempt, will_retry, retried_by, end, counted)


def test_first_request_and_nothing_while_a_run_is_queued_or_working():
    first = decide(WORK, [], 0)
    assert first.request and first.attempt == 1 and "a" in first.reason
    for status in final_scheduling.IN_FLIGHT:
        d = decide(WORK, [run(status, work="other", end=None)], 1000)
        assert not d.request and status in d.reason and "a" in d.reason
    idle = decide(Work({}, False), [run("FAILURE")], 10_000)
    assert not idle.request and "counted" in idle.reason


def test_next_run_is_queued_behind_a_working_run_that_has_finished_counting():
    counted = run("STARTED", work="other", end=None, counted=True)
    d = decide(WORK, [counted], 1000)
    assert d.request and d.attempt == 1 and "finished counting" in d.reason and "a" in d.reason
    # Not while it still counts, nor when a run is already queued behind it, nor twice for the same work.
    assert not decide(WORK, [run("STARTED", work="other", end=None)], 1000).request
    queued = run("QUEUED", end=None, run_id="run00002")
    assert not decide(WORK, [queued, counted], 1000).request
    assert not decide(WORK, [counted, run("SUCCESS", end=900.0, run_id="run00000")], 1000).request
    # A run that counted but is being canceled or is starting again (a retry) is not "working".
    for status in ("CANCELING", "STARTING", "QUEUED"):
        assert not decide(WORK, [run(status, work="other", end=None, counted=True)], 1000).request
    assert not decide(Work({}, False), [counted], 1000).request  # nothing waiting: nothing to queue


def test_failed_runs_are_requested_again_with_backoff_and_a_higher_attempt():
    failed = [run("FAILURE", attempt=1, end=100.0)]
    assert not decide(WORK, failed, 100.0 + backoff_seconds(1) - 1).request
    d = decide(WORK, failed, 100.0 + backoff_seconds(1) + 0.1)
    assert d.request and d.attempt == 2
    canceled = [run("CANCELED", attempt=2, end=200.0, run_id="run00002"), run("FAILURE", attempt=1, end=100.0)]
    assert not decide(WORK, canceled, 200.0 + backoff_seconds(2) - 1).request
    assert decide(WORK, canceled, 200.0 + backoff_seconds(2) + 0.1).attempt == 3
    assert backoff_seconds(1) == 5 and backoff_seconds(2) == 10 and backoff_seconds(3) == 20
    assert backoff_seconds(20) == final_scheduling.BACKOFF_MAX_SECONDS


def test_dagster_run_retries_go_first_but_are_not_waited_for_forever():
    pending_retry = [run("FAILURE", will_retry=True, end=100.0)]
    assert not decide(WORK, pending_retry, 130.0).request
    assert "run retry" in decide(WORK, pending_retry, 130.0).reason
    assert decide(WORK, pending_retry, 100.0 + final_scheduling.RETRY_GRACE_SECONDS + 1).request
    retried = [run("FAILURE", attempt=1, will_retry=False, end=300.0, run_id="retry001"),
               run("FAILURE", attempt=1, will_retry=True, retried_by="retry001", end=100.0)]
    d = decide(WORK, retried, 300.0 + backoff_seconds(2) + 1)
    assert d.request and d.attempt == 2


def test_a_success_that_left_the_same_work_pending_is_requested_again_on_the_backoff():
    """A run succeeded, yet the same versions are still pending (it deferred them: a newer version
    was filed while it worked, then that run was lost...): the sensor must not idle forever."""
    one = [run("SUCCESS", attempt=1, end=100.0)]
    waiting = decide(WORK, one, 100.0 + backoff_seconds(1) - 1)
    assert not waiting.request and "attempt 2" in waiting.reason
    again = decide(WORK, one, 100.0 + backoff_seconds(1) + 0.1)
    assert again.request and again.attempt == 2
    # Every success that leaves it pending widens the backoff, up to the cap, and it never stops.
    many = [run("SUCCESS", attempt=k, end=1000.0 + k, run_id=f"run{k:05d}") for k in range(12, 0, -1)]
    assert not decide(WORK, many, 1012.0 + final_scheduling.BACKOFF_MAX_SECONDS - 1).request
    late = decide(WORK, many, 1012.0 + final_scheduling.BACKOFF_MAX_SECONDS + 0.1)
    assert late.request and late.attempt == 13


def test_a_success_for_other_work_does_not_delay_new_work():
    d = decide(Work({"a": "1:", "b": "2:"}, False), [run("SUCCESS", end=100.0)], 100.5)
    assert d.request and d.attempt == 1
