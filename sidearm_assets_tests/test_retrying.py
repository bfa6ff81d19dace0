"""retrying.py: the project's one way to retry a call and to wait for a condition."""

import pytest

from sidearm_assets.retrying import retry_call, wait_until

pytestmark = pytest.mark.unit


class Flaky:
    """Fails `failures` times with `error`, then returns how many calls it took."""

    def __init__(self, failures: int, error: type[BaseException] = OSError):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls


def test_a_call_that_succeeds_is_made_once_and_never_waits():
    calls = Flaky(0)
    assert retry_call(calls, [5.0, 5.0]) == 1


def test_failures_are_retried_after_each_pause_and_reported_before_it(monkeypatch):
    slept, told = [], []
    monkeypatch.setattr("sidearm_assets.retrying.time.sleep", slept.append)
    calls = Flaky(2)
    assert retry_call(calls, [0.25, 0.5, 1.0], on_retry=lambda exc, pause: told.append((str(exc), pause))) == 3
    assert slept == [0.25, 0.5]
    assert told == [("failure 1", 0.25), ("failure 2", 0.5)]


def test_the_last_attempts_exception_propagates_as_is(monkeypatch):
    monkeypatch.setattr("sidearm_assets.retrying.time.sleep", lambda s: None)
    calls = Flaky(5)
    with pytest.raises(OSError, match="failure 3"):
        retry_call(calls, [0.0, 0.0])
    assert calls.calls == 3  # len(pauses) + 1 attempts


def test_no_pauses_means_one_attempt():
    with pytest.raises(OSError, match="failure 1"):
        retry_call(Flaky(1), [])


def test_an_exception_not_retried_propagates_at_once():
    calls = Flaky(1, error=ValueError)
    with pytest.raises(ValueError):
        retry_call(calls, [0.0, 0.0], retry_on=OSError)
    assert calls.calls == 1


def test_wait_until_returns_the_first_truthy_value_and_names_what_timed_out():
    values = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(values), timeout=5, interval=0.001) == "ready"
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="the moon")
