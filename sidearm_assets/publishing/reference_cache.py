"""Reference data (`games`, `teams`, `players`) for the watcher, refreshed in the background.

A locked or slow `sidearmdb` never stalls the box scores: they keep the last good rows (the age
is reported), and only the very first read is waited on, for at most a second.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sidearm_assets.publishing.records import TransientError

log = logging.getLogger("sidearm.live")


@dataclass(frozen=True)
class ReferenceRows:
    games: list[dict]
    teams: list[dict]
    players: list[dict]
    fetched_at: float  # time.time() of the read
    by_team: dict = field(default_factory=dict, compare=False)  # team id -> its roster rows

    def __post_init__(self):
        for p in self.players:
            self.by_team.setdefault(p.get("teamid"), []).append(p)

    def rosters(self, team_ids) -> list[dict]:
        """The players of these teams only: a league's thousands of players are not scanned per version."""
        return [p for t in team_ids for p in self.by_team.get(t, [])]

    @property
    def age(self) -> float:
        return time.time() - self.fetched_at


class ReferenceCache:
    """The last good reference rows, refreshed in the background (one refresh at a time).

    `rows()` returns at once when a snapshot exists, however stale (a refresh is started when it
    is older than `refresh_seconds`); the first call waits at most `wait_seconds`, then raises
    TransientError. A failed refresh keeps the old rows and is reported by `last_error`.
    """

    def __init__(self, sidearmdb, refresh_seconds: float = 5.0, wait_seconds: float = 1.0):
        self._db = sidearmdb
        self.refresh_seconds = refresh_seconds
        self.wait_seconds = wait_seconds
        self._rows: ReferenceRows | None = None
        self._lock = threading.Lock()
        self._refreshing: threading.Thread | None = None
        self._first = threading.Event()
        self.last_error: str | None = None

    def _refresh(self) -> None:
        try:
            started = time.time()
            rows = ReferenceRows(self._db.games(), self._db.teams(), self._db.players(), started)
            with self._lock:
                self._rows = rows
            self.last_error = None
        except Exception as exc:  # locked, down, or a schema problem: keep the last good rows
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("reference data not refreshed: %s", self.last_error)
        finally:
            self._first.set()
            with self._lock:
                self._refreshing = None

    def refresh_soon(self) -> None:
        with self._lock:
            if self._refreshing is not None:
                return
            self._refreshing = threading.Thread(target=self._refresh, name="sidearm-reference", daemon=True)
            self._refreshing.start()

    def rows(self, newer_than: float | None = None) -> ReferenceRows:
        """The current rows; `newer_than` (a time.time()) asks for a refresh if they are older."""
        current = self._rows
        if current is None or current.age > self.refresh_seconds or (
            newer_than is not None and current.fetched_at < newer_than
        ):
            self.refresh_soon()
        if current is None:
            self._first.wait(self.wait_seconds)
            current = self._rows
            if current is None:
                raise TransientError(f"no reference data yet ({self.last_error or 'sidearmdb slow to answer'})")
        return current

    @property
    def age(self) -> float | None:
        return self._rows.age if self._rows else None
