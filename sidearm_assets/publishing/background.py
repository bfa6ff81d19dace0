"""The watcher's own thread, kept alive by a lease, and the watchers of this process.

The live sensor renews a watcher's lease on every tick; when ticks stop (the sensor is turned off,
the daemon is gone), the thread stops by itself after `lease_seconds`. A code-server process keeps
one watcher per set of stores (`WatcherRegistry`), and the first one it starts freezes the
process's long-lived objects out of full garbage collections (`freeze_long_lived_objects`).
"""

from __future__ import annotations

import atexit
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from sidearm_assets.publishing.records import TransientError, WatcherClosed
from sidearm_assets.publishing.watcher import BucketWatcher

log = logging.getLogger("sidearm.live")


def interpreter_exiting() -> bool:
    """True once the process is shutting down: the main thread has ended (the code server was
    stopped) or the interpreter is finalizing. Thread pools refuse work from then on."""
    return sys.is_finalizing() or not threading.main_thread().is_alive()


class BackgroundWatcher:
    """A watcher polling in its own thread for as long as its lease is renewed."""

    def __init__(self, watcher: BucketWatcher, lease_seconds: float):
        self.watcher = watcher
        self.lease_seconds = lease_seconds
        self._lease_until = time.monotonic() + lease_seconds
        self._stop = threading.Event()
        self.started_at = time.time()
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="sidearm-live-watcher", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        self._lease_until = time.monotonic() + self.lease_seconds

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.watcher.close()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._lease_until:
            try:
                self.watcher.poll()
                self.last_error = None
            except TransientError as exc:
                self.last_error = str(exc)
            except WatcherClosed:  # closed, or the interpreter is exiting: stop quietly
                break
            except Exception as exc:  # never let the thread die silently
                if interpreter_exiting():  # (the code server stopped mid-poll): stop quietly
                    break
                log.exception("live watcher poll failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.watcher.pause)
        self._stop.set()
        self.watcher.close()


class _HasBackground(Protocol):
    background: BackgroundWatcher


Entry = TypeVar("Entry", bound=_HasBackground)


class WatcherRegistry(Generic[Entry]):
    """This process's background watchers, one per key (the stores it watches and writes to).

    Each entry holds a `BackgroundWatcher` as `.background` plus whatever its owner keeps beside it.
    `_lock` guards `_entries`; a lease is renewed under it, so an entry found alive is not let go
    between the look-up and the renewal."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[Hashable, Entry] = {}

    def keep_alive(self, key: Hashable, start: Callable[[], Entry]) -> tuple[Entry, bool]:
        """The live entry for `key`, started with `start()` if there is none or its thread ended;
        its lease renewed. Returns the entry and whether it was started now."""
        with self._lock:
            entry = self._entries.get(key)
            started = entry is None or not entry.background.alive
            if started:
                freeze_long_lived_objects()
                entry = self._entries[key] = start()
            entry.background.renew()
        return entry, started

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def stop_all(self) -> None:
        """Stop every watcher (tests; a watcher also stops when its lease ends)."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.background.stop()


_frozen = False


def freeze_long_lived_objects() -> None:
    """Once per process (when its first background watcher starts; `web/serving.py` before it
    serves): leave the objects alive now
    (Dagster, gRPC, the code location: ~140,000 of them in the code server) out of Python's
    full garbage collections. Measured at 200 games (bench/live_scale.py): the code server ran
    17 full collections in 150 s, 145-245 ms each, and every watcher thread waited through them;
    frozen, 33 collections of the ~80,000 objects made later, 25-155 ms (median ~55), and
    fresh_p95 0.31-0.35 s against 0.37-0.38 s. Objects made later are collected as usual; a
    collection first, so nothing already garbage is kept."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        # At exit they go back, so the interpreter's last collection sees them (native
        # extensions such as duckdb's report instances never freed otherwise).
        atexit.register(gc.unfreeze)
        _frozen = True
