"""Documents of events missed during an outage, rebuilt from a newer version's bytes.

When a game publishes after MongoDB, S3 or the watcher was down, the versions put meanwhile had
no document. Each missed event's document is the box score of a prefix of the current stream, so
it is right whatever came before. Rebuilds run one game at a time in their own thread, after the
newest document is published: history never competes with freshness, and a backlog is dropped
(reported) rather than grown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sidearm_assets.domain.live import live_update
from sidearm_assets.retrying import retry_call

log = logging.getLogger("sidearm.live")

MAX_QUEUED_REBUILDS = 200  # games waiting for their missed documents; past this a gap stays, reported
REBUILD_RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # a rebuilt document's upsert retried after these pauses


@dataclass(frozen=True)
class MissedEvents:
    """A published version whose game's last document was `previous` events behind it."""

    game_id: str
    data: bytes  # the published version's bytes
    previous: int | None  # seq of the game's last document before this one
    doc: dict  # the published document
    game: object  # domain.games.Matchup
    rosters: list[dict]  # the two teams' players
    version: object  # the object version (`.version`, `.last_modified`)


def missed_documents(missed: MissedEvents, max_lines: int) -> Iterator[dict]:
    """The documents of the events between `previous` and the published one, newest first; none
    when more than `max_lines` are missing. A rejected line maps to the document of the event
    before it, so it yields nothing of its own."""
    doc, previous = missed.doc, missed.previous
    if previous is None or doc["seq"] - previous <= 1:
        return
    missing = range(previous + 1, doc["seq"])
    if len(missing) > max_lines:
        return
    lines = missed.data.splitlines(keepends=True)
    seen_ids = {doc["_id"]}
    for count in reversed(missing):
        prefix = b"".join(lines[:count])
        older = live_update(missed.game, prefix, missed.version.version,
                            missed.version.last_modified.isoformat(), missed.rosters)
        if older.doc is None:
            return
        if older.doc["_id"] in seen_ids:
            continue  # a rejected line: its count maps to a document already there
        seen_ids.add(older.doc["_id"])
        older.doc["published_at"] = doc["published_at"]
        older.doc["rebuilt"] = True
        yield older.doc


class Rebuilder:
    """Rebuilds missed documents in one background thread; counts what it wrote.

    `report` records an error for the caller's next report (it does not log). `_lock` guards
    `_queued` and `_rebuilt` only; no other lock is taken while it is held.
    """

    def __init__(self, boxscores, max_lines: int, report: Callable[[str], None]):
        self.boxscores, self.max_lines, self._report = boxscores, max_lines, report
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidearm-rebuild")
        self._lock = threading.Lock()
        self._queued = 0  # rebuilds submitted and not finished
        self._rebuilt = 0  # documents written since the last `take_rebuilt`

    @property
    def pending(self) -> int:
        with self._lock:
            return self._queued

    def take_rebuilt(self) -> int:
        """Documents rebuilt since the previous call."""
        with self._lock:
            rebuilt, self._rebuilt = self._rebuilt, 0
            return rebuilt

    def queue(self, missed: MissedEvents) -> None:
        with self._lock:
            full = self._queued >= MAX_QUEUED_REBUILDS
            if not full:
                self._queued += 1
        if full:
            self._report(f"{missed.game_id}: missed events' documents not rebuilt (rebuild backlog full)")
            return
        try:
            self._pool.submit(self._run, missed)
        except RuntimeError:  # the pool refuses work only once it is shut down
            with self._lock:
                self._queued -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, missed: MissedEvents) -> None:
        written = 0
        try:
            for doc in missed_documents(missed, self.max_lines):
                if not self._upsert_patiently(missed.game_id, doc):
                    break
                written += 1
        except Exception as exc:  # history only: reported, never fatal (and nothing counted)
            self._warn(f"{missed.game_id}: missed events' documents not rebuilt: {exc}")
            written = 0
        with self._lock:
            self._queued -= 1
            self._rebuilt += written

    def _warn(self, message: str) -> None:
        log.warning(message)
        self._report(message)

    def _upsert_patiently(self, game_id: str, doc: dict) -> bool:
        """Upsert one rebuilt document, retrying through a store that is still coming back.

        Right after a MongoDB restart the client's pooled connections are dead, and a standalone
        server has no retryable writes: each stale connection fails its first operation. The newest
        document got through on one connection; this thread may draw another. History is not urgent,
        so it waits (REBUILD_RETRY_SECONDS, about 8 s in all) rather than leaving the gap."""
        def again(exc: BaseException, pause: float) -> None:
            log.info("%s: rebuilding %s: %s; again in %.2f s", game_id, doc["_id"], exc, pause)

        try:
            retry_call(lambda: self.boxscores.upsert(doc), REBUILD_RETRY_SECONDS, on_retry=again)
            return True
        except Exception as exc:  # the newest is stored already: the history gap stays, reported
            self._warn(f"{game_id}: missed events' documents not rebuilt: {exc}")
            return False
