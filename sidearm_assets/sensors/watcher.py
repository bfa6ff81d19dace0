"""The live watcher: the loop that turns each new game-object version into its box-score document.

No Dagster import. `sensors/live.py` owns a watcher per code-server process and reports what it
did to Dagster on each tick (docs/live-latency.md has the design and the measurements).

One `poll()` lists the bucket once (top-level keys only: `completed/` and `lake/` are not
listed) and hands every game whose version changed to a pool of worker threads, which read the
object, build the document and upsert it. The poll does not wait for them: a slow game (a huge
object, a timeout) never holds up the next listing or the other games, and a game is never
worked on by two threads at once. What a version's handling can meet:

- **published**: the document is in MongoDB. A final document's bytes are also filed in the
  completed-games archive and the game-over sensor is woken. Documents of a superseded stream
  (a replay from the start, a deleted line) are deleted, so the highest `seq` of a game is always
  the newest object version. Events whose own document was missed because MongoDB, S3 or the
  watcher was down meanwhile get one rebuilt from the newer bytes (two puts that simply land
  between two listings are not rebuilt: under load that history would cost freshness).
- **skipped** on purpose (no schedule row, empty object): remembered, retried when the object
  changes.
- **failed** for good (an object over the size limit, a document too large to store, any error
  the domain raises): remembered with its reason and reported once; retried only when the
  object changes, so a hostile object costs nothing per poll.
- **transient** error (S3 read, MongoDB, the archive): retried with a growing back-off (0.5 s to
  5 s), the version stays unhandled.

Reference data (`games`, `teams`, `players`) comes from `ReferenceCache`: refreshed in the
background every few seconds, never waited on for more than a second, so a locked or slow
`sidearmdb` never stalls the box scores (they keep the last good rows; the age is reported).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.domain.live import LiveUpdate, live_update
from sidearm_assets.sensors import signals

log = logging.getLogger("sidearm.live")


class PublishError(RuntimeError):
    """A store failed while a version was published; the message names which."""


def publish_version(gamestreams, boxscores, sidearmdb, doc: dict, data: bytes, supersede: bool,
                    version: str | None = None) -> int:
    """What publishing one version's document means, for the watcher and a hand-started
    `boxscore_doc` run alike: upsert it; when `supersede`, delete the game's documents of a stream
    it replaced (any other with a `seq` at or above its own: SPEC 5); for a final document, file the
    completion in sidearmdb's inbox (durable: the final tables count what is filed there), copy the
    bytes to the completed-games archive and wake the game-over sensor. Returns how many documents
    were deleted; raises `PublishError` naming the store that failed (the caller retries the
    version: every step is idempotent)."""
    try:
        boxscores.upsert(doc)
        deleted = boxscores.delete_superseded(doc["game_id"], doc["seq"], doc["_id"]) if supersede else 0
    except Exception as exc:
        raise PublishError(f"MongoDB: {exc}") from exc
    if doc["final"]:
        from sidearm_assets.storage.final_tables_db import Completion, file_completions

        try:
            file_completions(sidearmdb.filing_engine(), [Completion(doc["game_id"], data, version)])
        except Exception as exc:
            raise PublishError(f"final, but not filed in sidearmdb's completions: {exc}") from exc
        try:
            gamestreams.archive(doc["game_id"], data)
        except Exception as exc:
            raise PublishError(f"final, but not filed in the completed-games archive: {exc}") from exc
        signals.notify_completion()
    return deleted


@dataclass(frozen=True)
class WatchSettings:
    poll_seconds: float = 0.05  # shortest pause between two listings
    listing_share: float = 0.25  # listing may take at most this share of the time (the pause grows with it)
    max_pause_seconds: float = 0.3  # longest pause between two listings, however slow the listing
    workers: int = 16  # GET + upsert are mostly waiting on the stores: threads overlap them
    max_object_bytes: int = 1 << 20  # a game is ~2 KB; anything past this is not a lacrosse game
    max_document_bytes: int = 4 << 20  # MongoDB refuses 16 MiB; real documents are ~10 KB
    reference_refresh_seconds: float = 5.0
    reference_wait_seconds: float = 1.0
    retry_first_seconds: float = 0.5
    retry_max_seconds: float = 5.0
    backfill_max_lines: int = 200  # rebuild at most this many missed events' documents per version


# A game published nothing for this long (an outage, a store answering slowly): the versions put
# meanwhile get their documents rebuilt. Puts come 1-3 s apart, so ordinary merges stay below it.
GAP_SECONDS = 5.0
MAX_QUEUED_REBUILDS = 200  # games waiting for their missed documents; past this a gap stays, reported
REBUILD_RETRY_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # a rebuilt document's upsert retried after these pauses


class TransientError(RuntimeError):
    """Worth retrying soon: the version stays unhandled."""


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


@dataclass
class Outcome:
    """The latest thing that happened to a game, kept until a tick reports it."""

    game_id: str
    version: str
    at: float  # time.time()
    size: int = 0  # bytes of the version
    update: LiveUpdate | None = None  # parsed (and maybe published) version
    published: bool = False  # a document was written
    skipped: str | None = None  # on purpose: why
    failed: str | None = None  # for good until the object changes: why


@dataclass
class Drained:
    """What the watcher did since the previous drain (for one sensor tick)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)  # game -> latest outcome
    published: int = 0  # documents written (versions, not counting rebuilt missed events)
    rebuilt: int = 0  # documents rebuilt for missed events
    superseded_deleted: int = 0
    errors: list[str] = field(default_factory=list)  # transient errors (bounded)
    failures: dict[str, str] = field(default_factory=dict)  # game -> standing failure reason
    listings: int = 0
    listing_seconds: float = 0.0
    handle_seconds: list[float] = field(default_factory=list)
    games_listed: int = 0
    reference_age: float | None = None
    reference_error: str | None = None


class BucketWatcher:
    """Publishes the box score of every game whose object changed; see the module docstring."""

    def __init__(self, gamestreams, boxscores, sidearmdb, versions: dict[str, str] | None = None,
                 settings: WatchSettings | None = None, failures: dict[str, str] | None = None):
        self.gamestreams, self.boxscores, self.sidearmdb = gamestreams, boxscores, sidearmdb
        self.settings = settings or WatchSettings()
        self.reference = ReferenceCache(
            sidearmdb, self.settings.reference_refresh_seconds, self.settings.reference_wait_seconds
        )
        self._lock = threading.Lock()
        self._versions: dict[str, str] = dict(versions or {})
        self._failures: dict[str, str] = {g: r for g, r in (failures or {}).items() if g in self._versions}
        self._in_flight: set[str] = set()
        self._retry: dict[str, tuple[float, float]] = {}  # game -> (not before monotonic, last back-off)
        self._last_seq: dict[str, int] = {}  # game -> seq of the document this watcher published last
        self._outage: set[str] = set()  # games that met a transient error since their last publication
        self._last_ok: dict[str, float] = {}  # game -> monotonic time of its last publication
        # Until then every publication looks for a gap: set when a game publishes again after an
        # outage, because right after a restart handling can stall (dead pooled connections) while
        # puts go by, and those versions would look like ordinary ones merged between two listings.
        self._unsettled_until = float("-inf")
        self._drained = Drained()
        self._errors: deque[str] = deque(maxlen=20)
        self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="sidearm-live")
        # Missed events' documents are rebuilt one game at a time, after the newest is published:
        # history never competes with freshness, and a backlog is dropped rather than grown.
        self._rebuilds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidearm-rebuild")
        self._rebuilds_queued = 0
        self.pause = self.settings.poll_seconds

    # The cursor: the version handled per game (published, skipped or failed for good).
    def versions(self) -> dict[str, str]:
        with self._lock:
            return dict(self._versions)

    def failures(self) -> dict[str, str]:
        """Games whose current version failed for good, with the reason."""
        with self._lock:
            return dict(self._failures)

    def poll(self) -> int:
        """List once and dispatch the changed games; returns how many were dispatched."""
        started = time.monotonic()
        try:
            listing = self.gamestreams.list_games()
        except Exception as exc:
            self._error(f"cannot list s3://{self.gamestreams.bucket}: {exc}")
            self.pause = self.settings.retry_first_seconds
            raise TransientError(f"cannot list s3://{self.gamestreams.bucket}: {exc}") from exc
        took = time.monotonic() - started
        now = time.monotonic()
        with self._lock:
            for gone in set(self._versions) - set(listing):  # deleted games cost nothing afterwards
                self._versions.pop(gone, None)
                self._failures.pop(gone, None)
                self._last_seq.pop(gone, None)
                self._outage.discard(gone)
                self._last_ok.pop(gone, None)
                self._retry.pop(gone, None)
            changed = [
                (g, obj) for g, obj in listing.items()
                if self._versions.get(g) != obj.version and g not in self._in_flight
                and self._retry.get(g, (0.0, 0.0))[0] <= now
            ]
            self._in_flight.update(g for g, _ in changed)
            self._drained.listings += 1
            self._drained.listing_seconds += took
            self._drained.games_listed = len(listing)
        for game_id, obj in changed:
            self._pool.submit(self._handle, game_id, obj)
        share = self.settings.listing_share
        self.pause = min(self.settings.max_pause_seconds, max(self.settings.poll_seconds, took * (1 - share) / share))
        return len(changed)

    def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no game is being handled and no rebuild waits (tests and the in-tick mode)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._in_flight and not self._rebuilds_queued:
                    return True
            time.sleep(0.005)
        return False

    def drain(self) -> Drained:
        with self._lock:
            out, self._drained = self._drained, Drained()
            out.errors = list(self._errors)
            self._errors.clear()
            out.failures = dict(self._failures)
        out.reference_age = self.reference.age
        out.reference_error = self.reference.last_error
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._rebuilds.shutdown(wait=False, cancel_futures=True)

    def _error(self, message: str) -> None:
        log.warning(message)
        with self._lock:
            self._errors.append(message)

    def _handle(self, game_id: str, listed) -> None:
        started = time.monotonic()
        try:
            outcome = self._publish(game_id, listed)
        except TransientError as exc:
            self._error(f"{game_id}: {exc}")
            with self._lock:
                _, last = self._retry.get(game_id, (0.0, 0.0))
                backoff = min(self.settings.retry_max_seconds, max(self.settings.retry_first_seconds, last * 2))
                self._retry[game_id] = (time.monotonic() + backoff, backoff)
                self._outage.add(game_id)  # versions may go by meanwhile: rebuild their documents after
                self._in_flight.discard(game_id)
            return
        except Exception as exc:  # a bug or input nobody foresaw: this version fails, the others go on
            log.exception("%s: version %s failed", game_id, listed.version)
            outcome = Outcome(game_id, listed.version, time.time(),
                              failed=f"{type(exc).__name__}: {exc}"[:500])
        with self._lock:
            self._retry.pop(game_id, None)
            self._versions[game_id] = outcome.version
            if outcome.failed:
                self._failures[game_id] = outcome.failed
            else:
                self._failures.pop(game_id, None)
            self._drained.outcomes[game_id] = outcome
            self._drained.handle_seconds.append(time.monotonic() - started)
            if len(self._drained.handle_seconds) > 5000:
                del self._drained.handle_seconds[:2500]
            if outcome.published:
                self._drained.published += 1
            self._in_flight.discard(game_id)

    def _publish(self, game_id: str, listed) -> Outcome:
        limit = self.settings.max_object_bytes
        if listed.size > limit:
            return self._fail_once(game_id, listed.version, f"object is {listed.size:,} bytes, over the "
                                   f"{limit:,}-byte limit (SIDEARM_LIVE_MAX_OBJECT_BYTES): skipped until it changes")
        try:
            data, version = self.gamestreams.read(game_id)
        except Exception as exc:
            raise TransientError(f"cannot read its object: {exc}") from exc
        if len(data) > limit:
            return self._fail_once(game_id, version.version, f"object is {len(data):,} bytes, over the "
                                   f"{limit:,}-byte limit (SIDEARM_LIVE_MAX_OBJECT_BYTES): skipped until it changes")
        reference = self.reference.rows()
        try:
            game = matchup(game_id, reference.games, reference.teams)
        except UnscheduledGameError as exc:
            if reference.fetched_at < version.last_modified.timestamp() + 1:
                # The row may have been added after our last read: look again before skipping.
                self.reference.rows(newer_than=version.last_modified.timestamp() + 1)
                raise TransientError(f"not in the cached schedule yet; re-reading it ({exc})") from exc
            return Outcome(game_id, version.version, time.time(), skipped=f"{game_id} not scheduled: {exc}")
        update = live_update(game, data, version.version, version.last_modified.isoformat(),
                             reference.rosters(game.team_ids))
        doc = update.doc
        if doc is None:
            return Outcome(game_id, version.version, time.time(), len(data), update=update, skipped=update.skip_reason)
        doc["published_at"] = round(time.time(), 3)
        size = _bson_size(doc)
        if size > self.settings.max_document_bytes:
            return self._fail_once(game_id, version.version, f"its document would be {size:,} bytes, over the "
                                   f"{self.settings.max_document_bytes:,}-byte guard: not stored")
        previous = self._last_seq.get(game_id)
        now = time.monotonic()
        quiet_for = now - self._last_ok.get(game_id, float("-inf"))
        if game_id in self._outage:  # the stores just came back: stalls may merge versions for a while
            self._unsettled_until = now + GAP_SECONDS
        after_gap = (previous is None or game_id in self._outage or quiet_for >= GAP_SECONDS
                     or now < self._unsettled_until)
        try:
            if after_gap:  # first time since this watcher started, or after an outage: what does the store hold?
                previous = self.boxscores.latest_seq(game_id)  # (a restarted server may have lost its last writes)
            deleted = publish_version(self.gamestreams, self.boxscores, self.sidearmdb, doc, data,
                                      supersede=self._supersedes(game_id, doc), version=version.version)
        except PublishError as exc:
            raise TransientError(str(exc)) from exc
        except Exception as exc:  # latest_seq
            raise TransientError(f"MongoDB: {exc}") from exc
        self._last_seq[game_id] = doc["seq"]
        self._last_ok[game_id] = time.monotonic()
        with self._lock:
            self._drained.superseded_deleted += deleted
        self._outage.discard(game_id)
        if after_gap and previous is not None and doc["seq"] - previous > 1:
            self._queue_rebuild(game_id, data, previous, doc, game, reference, version)
        return Outcome(game_id, version.version, time.time(), len(data), update=update, published=True)

    def _fail_once(self, game_id: str, version: str, reason: str) -> Outcome:
        log.error("%s: %s", game_id, reason)
        return Outcome(game_id, version, time.time(), failed=reason)

    def _supersedes(self, game_id: str, doc: dict) -> bool:
        """Whether this document may supersede a stream: any other document of the game with a seq at
        or above the new one must go. Needed only when the stream did not simply grow: the first
        publication since this watcher started (it does not know what was there) and any version
        with fewer lines than the last."""
        last = self._last_seq.get(game_id)
        return last is None or doc["seq"] <= last

    def _queue_rebuild(self, game_id, *args) -> None:
        with self._lock:
            if self._rebuilds_queued >= MAX_QUEUED_REBUILDS:
                self._errors.append(f"{game_id}: missed events' documents not rebuilt (rebuild backlog full)")
                return
            self._rebuilds_queued += 1
        try:
            self._rebuilds.submit(self._run_rebuild, game_id, *args)
        except RuntimeError:  # shutting down
            with self._lock:
                self._rebuilds_queued -= 1

    def _run_rebuild(self, game_id, *args) -> None:
        try:
            written = self._rebuild_missed(game_id, *args)
        except Exception as exc:  # history only: reported, never fatal
            self._error(f"{game_id}: missed events' documents not rebuilt: {exc}")
            written = 0
        with self._lock:
            self._rebuilds_queued -= 1
            self._drained.rebuilt += written

    def _rebuild_missed(self, game_id, data, previous, doc, game, reference, version) -> int:
        """Documents for the lines between the game's last document and this version (versions put while
        MongoDB, S3 or the watcher was down), built from the new bytes:
        each is the box score of a prefix of the current stream, so it is right whatever came before."""
        if previous is None or doc["seq"] - previous <= 1:
            return 0
        missing = range(previous + 1, doc["seq"])
        if len(missing) > self.settings.backfill_max_lines:
            return 0
        lines = data.splitlines(keepends=True)
        written, seen_ids = 0, {doc["_id"]}
        for count in reversed(missing):
            prefix = b"".join(lines[:count])
            older = live_update(game, prefix, version.version, version.last_modified.isoformat(),
                                reference.rosters(game.team_ids))
            if older.doc is None:
                break
            if older.doc["_id"] in seen_ids:
                continue  # a rejected line: its count maps to a document already there
            seen_ids.add(older.doc["_id"])
            older.doc["published_at"] = doc["published_at"]
            older.doc["rebuilt"] = True
            if not self._upsert_patiently(game_id, older.doc):
                break
            written += 1
        return written

    def _upsert_patiently(self, game_id: str, doc: dict) -> bool:
        """Upsert one rebuilt document, retrying through a store that is still coming back.

        Right after a MongoDB restart the client's pooled connections are dead, and a standalone
        server has no retryable writes: each stale connection fails its first operation. The newest
        document got through on one connection; this thread may draw another. History is not urgent,
        so it waits (REBUILD_RETRY_SECONDS, about 8 s in all) rather than leaving the gap."""
        for pause in (*REBUILD_RETRY_SECONDS, None):
            try:
                self.boxscores.upsert(doc)
                return True
            except Exception as exc:
                if pause is None:  # the newest is stored already: the history gap stays, reported
                    self._error(f"{game_id}: missed events' documents not rebuilt: {exc}")
                    return False
                log.info("%s: rebuilding %s: %s; again in %.2f s", game_id, doc["_id"], exc, pause)
                time.sleep(pause)
        raise AssertionError("unreachable: the last pause is None")


def _bson_size(doc: dict) -> int:
    import bson

    return len(bson.encode(doc))


class BackgroundWatcher:
    """A watcher polling in its own thread for as long as its lease is renewed.

    The live sensor renews the lease on every tick; when ticks stop (the sensor is turned off,
    the daemon is gone), the thread stops by itself after `lease_seconds`.
    """

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
            except RuntimeError as exc:
                if "shutdown" in str(exc):  # the interpreter is exiting (code server stopped): stop quietly
                    break
                log.exception("live watcher poll failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let the thread die silently
                log.exception("live watcher poll failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.watcher.pause)
        self._stop.set()
        self.watcher.close()
