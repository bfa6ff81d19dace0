"""The live watcher: the loop that turns each new game-object version into its box-score document.

No Dagster import. `sensors/live.py` keeps a watcher per code-server process running
(`publishing/background.py`) and reports what it did to Dagster on each tick
(docs/live-latency.md has the design and the measurements).

One `poll()` lists the bucket once (top-level keys only: `completed/` and `lake/` are not
listed) and hands every game whose version changed to a pool of worker threads, which read the
object, build the document and publish it (`publishing/publish.py`). The poll does not wait for
them: a slow game (a huge object, a timeout) never holds up the next listing or the other games,
and a game is never worked on by two threads at once. What a version's handling can meet:

- **published**: the document is in MongoDB. A final version is also filed as completed
  (sidearmdb's inbox, the completed-games archive) and the game-over sensor is woken. Documents of a superseded stream
  (a replay from the start, a deleted line) are deleted, so the highest `seq` of a game is always
  the newest object version. Events whose own document was missed because MongoDB, S3 or the
  watcher was down meanwhile get one rebuilt from the newer bytes (`publishing/rebuild.py`; two
  puts that simply land between two listings are not rebuilt: under load that history would cost
  freshness).
- **skipped** on purpose (no schedule row, empty object): remembered, retried when the object
  changes.
- **failed** for good (an object over the size limit, a document too large to store, any error
  the domain raises): remembered with its reason and reported once; retried only when the
  object changes, so a hostile object costs nothing per poll.
- **transient** error (S3 read, MongoDB, the archive; a schedule row not in the cached reference
  data yet): retried with a growing back-off (0.5 s to 5 s), the version stays unhandled. After
  a store's error, every game looks for missed versions for `GAP_SECONDS`; a game that only
  waited for its schedule row looks for its own.

Reference data comes from `ReferenceCache` (`publishing/reference_cache.py`): never waited on
for more than a second, so a locked or slow `sidearmdb` never stalls the box scores.

Locking: one lock, `BucketWatcher._lock`, guards the per-game records (`_games` and every field
of each `GameState`), the counters of the next drain (`_drained`, `_errors`) and
`_unsettled_until`. It is held only to read or change them, never across I/O, and no other lock
is taken while it is held (the reference cache and the rebuilder keep their own state under
their own locks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.domain.live import live_update
from sidearm_assets.domain.stream import StreamParser
from sidearm_assets.publishing.publish import PublishError, publish_version
from sidearm_assets.publishing.rebuild import MissedEvents, Rebuilder
from sidearm_assets.publishing.records import Drained, NotScheduledYet, Outcome, TransientError, WatcherClosed
from sidearm_assets.publishing.reference_cache import ReferenceCache
from sidearm_assets.retrying import wait_until

log = logging.getLogger("sidearm.live")


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


@dataclass
class GameState:
    """What the watcher knows of one game (guarded by `BucketWatcher._lock`)."""

    version: str | None = None  # the version handled (published, skipped or failed for good): the cursor
    failure: str | None = None  # why `version` failed for good
    in_flight: bool = False  # a worker is handling the game
    retry_at: float = 0.0  # monotonic: not dispatched again before (after a transient error)
    backoff: float = 0.0  # the last back-off, doubled on the next transient error
    last_seq: int | None = None  # seq of the document this watcher published last
    outage: bool = False  # met a transient error since its last publication
    store_outage: bool = False  # ...and one was a store's, not only a schedule row still missing
    last_ok: float = float("-inf")  # monotonic time of its last publication
    # (bytes, team ids, parser) of the last version parsed, while the game is not final: a version
    # that only grew is parsed from where that one ended (`StreamParser.continued`)
    parse: tuple | None = None

    def due(self, version: str, now: float) -> bool:
        """Whether a listed `version` should be handled now."""
        return self.version != version and not self.in_flight and self.retry_at <= now


_UNSEEN = GameState()  # a game listed for the first time (read only: no record allocated per poll)


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
        failures = failures or {}
        self._games: dict[str, GameState] = {
            g: GameState(version=v, failure=failures.get(g)) for g, v in (versions or {}).items()
        }
        # Until then every publication looks for a gap: set when a game publishes again after an
        # outage, because right after a restart handling can stall (dead pooled connections) while
        # puts go by, and those versions would look like ordinary ones merged between two listings.
        self._unsettled_until = float("-inf")
        self._drained = Drained()
        self._errors: deque[str] = deque(maxlen=20)
        self._pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="sidearm-live")
        self._rebuilder = Rebuilder(boxscores, self.settings.backfill_max_lines, self._record_error)
        self.pause = self.settings.poll_seconds

    # The cursor: the version handled per game (published, skipped or failed for good).
    def versions(self) -> dict[str, str]:
        with self._lock:
            return {g: s.version for g, s in self._games.items() if s.version is not None}

    def failures(self) -> dict[str, str]:
        """Games whose current version failed for good, with the reason."""
        with self._lock:
            return {g: s.failure for g, s in self._games.items() if s.failure}

    def poll(self) -> int:
        """List once and dispatch the changed games; returns how many were dispatched.

        Raises TransientError when the bucket cannot be listed, WatcherClosed once closed."""
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
            for gone in set(self._games) - set(listing):  # deleted games cost nothing afterwards
                if self._games[gone].in_flight:  # its worker still reports; nothing else is kept
                    self._games[gone] = GameState(in_flight=True)
                else:
                    del self._games[gone]
            changed = [(g, obj) for g, obj in listing.items()
                       if self._games.get(g, _UNSEEN).due(obj.version, now)]
            for g, _ in changed:
                self._games.setdefault(g, GameState()).in_flight = True
            self._drained.listings += 1
            self._drained.listing_seconds += took
            self._drained.games_listed = len(listing)
        for n, (game_id, obj) in enumerate(changed):
            try:
                self._pool.submit(self._handle, game_id, obj)
            except RuntimeError as exc:  # the pool refuses work only once shut down (close, or exit)
                with self._lock:
                    for g, _ in changed[n:]:
                        self._games[g].in_flight = False
                raise WatcherClosed("the watcher is closed") from exc
        share = self.settings.listing_share
        self.pause = min(self.settings.max_pause_seconds, max(self.settings.poll_seconds, took * (1 - share) / share))
        return len(changed)

    def idle(self, timeout: float = 30.0) -> bool:
        """Wait until no game is being handled and no rebuild waits (False after `timeout` s)."""
        try:
            return wait_until(self._settled, timeout, interval=0.005, what="an idle watcher")
        except TimeoutError:
            return False

    def _settled(self) -> bool:
        with self._lock:
            handling = any(s.in_flight for s in self._games.values())
        # A worker queues its rebuild before it stops handling: checked in this order, a rebuild
        # queued by a finished worker is always seen.
        return not handling and not self._rebuilder.pending

    def drain(self) -> Drained:
        with self._lock:
            out, self._drained = self._drained, Drained()
            out.errors = list(self._errors)
            self._errors.clear()
            out.failures = {g: s.failure for g, s in self._games.items() if s.failure}
        out.rebuilt += self._rebuilder.take_rebuilt()
        out.reference_age = self.reference.age
        out.reference_error = self.reference.last_error
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._rebuilder.close()

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    def _error(self, message: str) -> None:
        log.warning(message)
        self._record_error(message)

    def _handle(self, game_id: str, listed) -> None:
        started = time.monotonic()
        try:
            outcome = self._publish(game_id, listed)
        except TransientError as exc:
            self._error(f"{game_id}: {exc}")
            with self._lock:
                state = self._games.setdefault(game_id, GameState())
                state.backoff = min(self.settings.retry_max_seconds,
                                    max(self.settings.retry_first_seconds, state.backoff * 2))
                state.retry_at = time.monotonic() + state.backoff
                state.outage = True  # versions may go by meanwhile: rebuild their documents after
                state.store_outage = state.store_outage or exc.store_outage
                state.in_flight = False
            return
        except Exception as exc:  # a bug or input nobody foresaw: this version fails, the others go on
            log.exception("%s: version %s failed", game_id, listed.version)
            outcome = Outcome(game_id, listed.version, time.time(),
                              failed=f"{type(exc).__name__}: {exc}"[:500])
        with self._lock:
            state = self._games.setdefault(game_id, GameState())
            state.retry_at, state.backoff = 0.0, 0.0
            state.version = outcome.version
            state.failure = outcome.failed
            state.in_flight = False
            self._drained.outcomes[game_id] = outcome
            self._drained.handle_seconds.append(time.monotonic() - started)
            if len(self._drained.handle_seconds) > 5000:
                del self._drained.handle_seconds[:2500]
            if outcome.published:
                self._drained.published += 1

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
                raise NotScheduledYet(f"not in the cached schedule yet; re-reading it ({exc})") from exc
            return Outcome(game_id, version.version, time.time(), skipped=f"{game_id} not scheduled: {exc}")
        rosters = reference.rosters(game.team_ids)
        parser = self._parser(game_id, data, game.team_ids)
        update = live_update(game, data, version.version, version.last_modified.isoformat(), rosters,
                             parsed=parser.parsed)
        doc = update.doc
        with self._lock:  # a final game is not expected to change again: its parse is not kept
            self._games.setdefault(game_id, GameState()).parse = (
                None if doc is not None and doc["final"] else (data, game.team_ids, parser))
        if doc is None:
            return Outcome(game_id, version.version, time.time(), len(data), update=update, skipped=update.skip_reason)
        doc["published_at"] = round(time.time(), 3)
        size = _bson_size(doc)
        if size > self.settings.max_document_bytes:
            return self._fail_once(game_id, version.version, f"its document would be {size:,} bytes, over the "
                                   f"{self.settings.max_document_bytes:,}-byte guard: not stored")
        now = time.monotonic()
        with self._lock:
            state = self._games.setdefault(game_id, GameState())
            previous = last_seq = state.last_seq
            if state.store_outage:  # the stores just came back: stalls may merge versions for a while
                self._unsettled_until = now + GAP_SECONDS
            after_gap = (previous is None or state.outage or now - state.last_ok >= GAP_SECONDS
                         or now < self._unsettled_until)
        # Superseding is needed only when the stream did not simply grow: when the store, or after a
        # gap what the store holds, has a document at or above this version's seq (a new game's
        # first document costs two MongoDB calls, not three).
        try:
            if after_gap:  # first time since this watcher started, or after an outage: what does the store hold?
                previous = self.boxscores.latest_seq(game_id)  # (a restarted server may have lost its last writes)
                supersede = previous is not None and doc["seq"] <= previous
            else:
                supersede = doc["seq"] <= last_seq
            deleted = publish_version(self.gamestreams, self.boxscores, self.sidearmdb, doc, data,
                                      supersede=supersede, version=version.version)
        except PublishError as exc:
            raise TransientError(str(exc)) from exc
        except Exception as exc:  # latest_seq
            raise TransientError(f"MongoDB: {exc}") from exc
        with self._lock:
            state = self._games.setdefault(game_id, GameState())
            state.last_seq = doc["seq"]
            state.last_ok = time.monotonic()
            state.outage = state.store_outage = False
            self._drained.superseded_deleted += deleted
        if after_gap and previous is not None and doc["seq"] - previous > 1:
            self._rebuilder.queue(MissedEvents(game_id, data, previous, doc, game, rosters, version))
        return Outcome(game_id, version.version, time.time(), len(data), update=update, published=True)

    def _parser(self, game_id: str, data: bytes, team_ids: tuple[int, int]) -> StreamParser:
        """The parse of `data`: the game's last parse continued when `data` only added lines to
        the bytes it read (an object that changed anywhere else is parsed whole)."""
        with self._lock:
            kept = self._games.get(game_id, _UNSEEN).parse
        if kept is not None:
            old, old_teams, parser = kept
            if old_teams == team_ids and (not old or old.endswith(b"\n")) and data.startswith(old):
                return parser if len(data) == len(old) else parser.continued(data[len(old):])
        return StreamParser(team_ids).feed_all(data)

    def _fail_once(self, game_id: str, version: str, reason: str) -> Outcome:
        log.error("%s: %s", game_id, reason)
        return Outcome(game_id, version, time.time(), failed=reason)


def _bson_size(doc: dict) -> int:
    import bson

    return len(bson.encode(doc))
