"""The in-process completion signal between the live sensor and the game-over sensor."""

from __future__ import annotations

import threading
import time

from sidearm_assets.publishing import signals


def test_wait_returns_false_without_a_signal_and_true_when_notified():
    signals.clear()
    assert signals.wait_for_completion(0) is False
    started = time.monotonic()
    assert signals.wait_for_completion(0.2) is False
    assert time.monotonic() - started >= 0.19

    timer = threading.Timer(0.1, signals.notify_completion)
    timer.start()
    started = time.monotonic()
    assert signals.wait_for_completion(5) is True
    assert time.monotonic() - started < 2  # woke at the notification, not at the timeout
    timer.join()


def test_a_signal_is_consumed_once_and_clear_forgets_it():
    signals.clear()
    signals.notify_completion()
    assert signals.wait_for_completion(0) is True
    assert signals.wait_for_completion(0) is False
    signals.notify_completion()
    signals.clear()
    assert signals.wait_for_completion(0) is False
