"""The game-over sensor's rules as pure functions: what is pending, and when to request a run."""

from __future__ import annotations

from sidearm_assets import final_scheduling
from sidearm_assets.storage.completed_games import plan_counting
from sidearm_assets.final_scheduling import RunView, Work, backoff_seconds, decide, work_from


def test_plan_reads_only_new_or_changed_versions_and_keeps_what_the_archive_lost():
    plan = plan_counting(
        record={"a": "e1", "b": "e1", "lost": "e9"},
        archived={"a": "e1", "b": "e2", "new": "e3", "gone-on-purpose": "e4"},
        uncounted={"gone-on-purpose": "e4"},
    )
    assert plan.read == ("b", "new")
    assert plan.from_record == ("a",)
    assert plan.missing == ("lost",)
    assert plan.uncounted == ("gone-on-purpose",)
    assert plan.pending == ("b", "lost", "new")


def test_an_uncounted_game_counts_again_when_its_object_changes():
    plan = plan_counting(record={}, archived={"g": "new-etag"}, uncounted={"g": "old-etag"})
    assert plan.read == ("g",) and plan.uncounted == ()


def test_work_digest_depends_on_the_pending_versions_only():
    empty = "E"
    w1 = work_from(plan_counting({}, {"a": "1", "b": "2"}), {"a": "1", "b": "2"}, empty, None, empty)
    w2 = work_from(plan_counting({}, {"b": "2", "a": "1"}), {"b": "2", "a": "1"}, empty, None, empty)
    w3 = work_from(plan_counting({}, {"a": "1", "b": "3"}), {"a": "1", "b": "3"}, empty, None, empty)
    assert w1.digest == w2.digest != w3.digest
    assert not w1.stale_tables and not w1.empty
    counted = work_from(plan_counting({"a": "1"}, {"a": "1"}), {"a": "1"}, "R", "R", empty)
    assert counted.empty
    after_uncount = work_from(plan_counting({}, {}), {}, empty, "R", empty)
    assert after_uncount.stale_tables and not after_uncount.empty


WORK = Work({"a": "1"}, False, "R")


def run(status, work=WORK.digest, attempt=1, will_retry=False, retried_by=None, end=100.0, run_id="run00001"):
    return RunView(run_id, status, work, attempt, will_retry, retried_by, end)


def test_first_request_and_nothing_while_a_run_is_queued_or_working():
    assert decide(WORK, [], 0) == final_scheduling.Decision(True, 1, decide(WORK, [], 0).reason)
    for status in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"):
        d = decide(WORK, [run(status, work="other", end=None)], 1000)
        assert not d.request and status in d.reason and "a" in d.reason
    assert not decide(Work({}, False, "R"), [], 0).request


def test_failed_runs_are_requested_again_with_backoff_and_a_higher_attempt():
    failed = [run("FAILURE", attempt=1, end=100.0)]
    assert not decide(WORK, failed, 100.0 + backoff_seconds(1) - 1).request
    d = decide(WORK, failed, 100.0 + backoff_seconds(1) + 0.1)
    assert d.request and d.attempt == 2
    canceled = [run("CANCELED", attempt=2, end=200.0, run_id="run00002"), run("FAILURE", attempt=1, end=100.0)]
    assert not decide(WORK, canceled, 200.0 + backoff_seconds(2) - 1).request
    assert decide(WORK, canceled, 200.0 + backoff_seconds(2) + 0.1).attempt == 3
    assert backoff_seconds(1) == 5 and backoff_seconds(2) == 10 and backoff_seconds(20) == final_scheduling.BACKOFF_MAX_SECONDS


def test_dagster_run_retries_go_first_but_are_not_waited_for_forever():
    pending_retry = [run("FAILURE", will_retry=True, end=100.0)]
    assert not decide(WORK, pending_retry, 130.0).request
    assert "run retry" in decide(WORK, pending_retry, 130.0).reason
    assert decide(WORK, pending_retry, 100.0 + final_scheduling.RETRY_GRACE_SECONDS + 1).request
    retried = [run("FAILURE", attempt=1, will_retry=False, end=300.0, run_id="retry001"),
               run("FAILURE", attempt=1, will_retry=True, retried_by="retry001", end=100.0)]
    d = decide(WORK, retried, 300.0 + backoff_seconds(2) + 1)
    assert d.request and d.attempt == 2


def test_a_success_for_the_same_work_stops_requests_until_the_work_changes():
    d = decide(WORK, [run("SUCCESS")], 10_000)
    assert not d.request and "succeeded for this work" in d.reason
    assert decide(Work({"a": "1", "b": "2"}, False, "R"), [run("SUCCESS")], 10_000).request
