"""Blocking waits and retries, one way for the whole project.

- `wait_until(predicate, timeout, interval, what)` polls until `predicate()` returns a truthy
  value and returns it; an exception from `predicate` counts as "not yet". TimeoutError naming
  `what` when the time is up.
- `retry_call(fn, pauses, retry_on, on_retry)` calls `fn()` until it returns, sleeping the given
  pauses between attempts (len(pauses) + 1 attempts in all); the last failure is raised as is.
  A plain loop, not tenacity: it wraps every S3 request of the scorer API and the live watcher,
  where tenacity's per-call set-up took 5-7 % of those processes' CPU (py-spy, bench/ingest_load.py).

Nothing here imports the rest of the project, so every layer may use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import tenacity

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `predicate` every `interval` seconds until it returns a truthy value; TimeoutError
    naming `what` after `timeout` seconds."""

    def attempt():
        try:
            return predicate()
        except Exception:
            return None

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_result(lambda value: not value),
        retry_error_callback=lambda state: _timed_out(timeout, what),
    )
    return retrying(attempt)


def _timed_out(timeout: float, what: str):
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def retry_call(
    fn: Callable[[], T],
    pauses: Sequence[float],
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """`fn()`, tried again after each pause in `pauses` while it raises `retry_on`; the last
    attempt's exception propagates. `on_retry(exc, pause)` is called before each pause."""
    for pause in pauses:
        try:
            return fn()
        except retry_on as exc:
            if on_retry is not None:
                on_retry(exc, pause)
            if pause > 0:
                time.sleep(pause)
    return fn()
