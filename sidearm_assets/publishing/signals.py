"""A game was filed as completed: the live path tells the game-over sensor, in-process.

Both sensors are evaluated by the same code-server process, so a threading.Event is enough to
let the game-over sensor's tick, when it has nothing to do, wait a few seconds and wake the
moment the live path archives a final version, instead of adding a whole daemon loop to the
final tables' latency. A lost signal costs at most one wait: the game-over sensor always lists
the archive itself, so the signal is a hint, never the record.

No Dagster import.
"""

from __future__ import annotations

import threading

# How long an idle game-over tick waits for a completion before it returns its skip reason.
# Short of the daemon's ~5 s sensor loop, so a tick never holds a daemon worker for long.
DEFAULT_WAIT_SECONDS = 4.0

_completed = threading.Event()


def notify_completion() -> None:
    """A game's final version was just archived (`GameStreamStore.archive`)."""
    _completed.set()


def clear() -> None:
    """Forget earlier signals (the caller is about to list the archive itself)."""
    _completed.clear()


def wait_for_completion(timeout: float = DEFAULT_WAIT_SECONDS) -> bool:
    """Wait up to `timeout` seconds for a completion; True if one came (the signal is consumed)."""
    if timeout <= 0:
        signalled = _completed.is_set()
    else:
        signalled = _completed.wait(timeout)
    if signalled:
        _completed.clear()
    return signalled
