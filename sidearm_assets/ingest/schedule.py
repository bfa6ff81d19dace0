"""The schedule as the ingest API sees it: the `games` and `teams` tables, cached, never in the way.

A known game costs no query and never waits: lookups read an immutable snapshot, and when the
snapshot is older than `ttl` a background thread reads the tables again while requests go on with
the old copy. An unknown game waits for a read of the tables that started after it asked, so a
game added to the schedule is found at once; such reads are shared by everyone waiting and start
at most once per `min_interval` seconds, however many requests name games that do not exist. No
read of the schedule ever happens under a game's posting lock (the service looks the game up
before it takes that lock), and only an authenticated request can cause one. A slow or locked
database never fails a post for a game already known.
"""

from __future__ import annotations

import threading
import time

from sidearm_assets.domain.games import Matchup, UnscheduledGameError, matchup
from sidearm_assets.ingest.errors import NotFound, unavailable


class Schedule:
    def __init__(self, sql_url: str, ttl: float = 30.0, min_interval: float = 0.25):
        self.sql_url = sql_url
        self.ttl = ttl
        self.min_interval = min_interval
        self._snapshot: tuple[list[dict], list[dict]] | None = None
        self._read_at = float("-inf")  # when the snapshot's read started
        self._started_at = float("-inf")  # when the newest read started (it may have failed)
        self._reading = threading.Lock()  # one read at a time; never held by a lookup of a known game
        self._engine = None
        self.reads = 0

    def _read(self) -> None:
        """Read the tables (caller holds `_reading`); raises what the database raises."""
        from sidearm_assets.storage import reference_db

        self._started_at = started = time.monotonic()
        self.reads += 1
        if self._engine is None:
            self._engine = reference_db.make_engine(self.sql_url)
        games = reference_db.read_rows(self._engine, reference_db.games)
        teams = reference_db.read_rows(self._engine, reference_db.teams)
        self._snapshot, self._read_at = (games, teams), started

    def load(self) -> None:
        """Read the tables now (the API does before it serves); raises what the database raises."""
        with self._reading:
            self._read()

    def _refresh_in_background(self) -> None:
        if not self._reading.acquire(blocking=False):
            return  # a read is under way

        def run():
            try:
                self._read()
            except Exception:  # noqa: BLE001 - the old copy serves; the next lookup tries again
                pass
            finally:
                self._reading.release()

        threading.Thread(target=run, name="schedule-refresh", daemon=True).start()

    def _read_since(self, asked: float) -> None:
        """Wait for a read that started at or after `asked` (sharing one with other waiters)."""
        with self._reading:
            if self._started_at >= asked:
                return  # someone read while we waited for the lock
            pause = self._started_at + self.min_interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._read()

    def matchup(self, game_id: str) -> Matchup:
        asked = time.monotonic()
        snapshot = self._snapshot
        if snapshot is not None:
            if asked - self._read_at > self.ttl:
                self._refresh_in_background()
            try:
                return matchup(game_id, *snapshot)
            except UnscheduledGameError:
                pass
        try:
            self._read_since(asked)
        except Exception as exc:  # the database: answer from the last good copy when there is one
            if self._snapshot is None:
                raise unavailable("reference database", exc) from exc
        try:
            return matchup(game_id, *self._snapshot)
        except UnscheduledGameError as exc:
            raise NotFound("unscheduled game", str(exc), "game_id") from None
