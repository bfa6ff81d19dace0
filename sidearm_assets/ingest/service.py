"""The ingest service: posted events appended to the game's object, safely under concurrent writers.

**No lost event.** Every write is a conditional put: `If-Match: <etag>` of the version the new
body was built from (`If-None-Match: *` for a game's first line). A writer that lost the race
gets 412, re-reads the object and builds again. Within one process a lock per game orders the
writers, so they never race each other; the conditional put protects against every other writer
(a second API process, a scorer's second device behind another instance, the simulator).

MinIO, S3 and the embedded server (`local/local_s3.py`, which locks each key's writes) check
`If-Match` and store as one step. Plain `moto_server` does not (a lock-free check, then the
store): behind it set `SIDEARM_INGEST_VERIFY_WRITES=1`, and a writer reads the object back after
its put and starts over if its line is not there.

**No duplicate.** A post may carry a client event id; the same id posted again returns the first
result and writes nothing. The ids live with the object (`ingest/gamestate.py`): its metadata
lists the newest, the game's ledger object every one that left that list. A put whose response
was lost is recognised by the write id it stored in the metadata.

Refusals are `ingest.errors` exceptions; the HTTP layer (`app.py`) turns them into status codes.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass

from sidearm_assets.domain.games import Matchup
from sidearm_assets.ingest import events as ev
from sidearm_assets.ingest.auth import Grant, Tokens, Writer
from sidearm_assets.ingest.errors import IngestError, StateConflict, Unavailable, unavailable
from sidearm_assets.ingest.gamestate import GameReader, GameState, Stats, ledger_threshold
from sidearm_assets.ingest.schedule import Schedule
from sidearm_assets.ingest.writes import Append, Correct, End, Write
from sidearm_assets.settings import key_for_game
from sidearm_assets.storage.objects import StoredObject
from sidearm_assets.storage.s3http import Conflict, S3Error, SignedS3

RETRY_SECONDS = 10.0  # how long a write keeps trying against other writers before it answers "contention"


@dataclass(frozen=True)
class Result:
    status: int
    body: dict


class IngestService:
    def __init__(self, store: SignedS3, schedule: Schedule, tokens: Tokens, verify_writes: bool = False,
                 max_object_bytes: int = 1 << 20, retry_seconds: float = RETRY_SECONDS):
        self.store = store
        self.max_object_bytes = max_object_bytes
        self.schedule = schedule
        self.tokens = tokens
        self.verify_writes = verify_writes
        self.retry_seconds = retry_seconds
        self.stats = Stats()
        self.reader = GameReader(store, self.stats)
        self._states: dict[str, GameState] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def warm(self) -> list[str]:
        """Before the first request: read the schedule and open the S3 path (imports, signer, a
        connection), so the first posts of a game day do not pay for it all at once (measured: 50
        scorers starting together waited ~1 s each for their first post). Problems are returned,
        not raised: the API still starts and each request reports what it meets."""
        problems = []
        try:
            self.schedule.load()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            problems.append(f"reference database: {type(exc).__name__}: {exc}")
        try:
            self.store.head_bucket()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            problems.append(f"object store: {exc}")
        return problems

    def healthy(self) -> bool:
        try:
            self.store.head_bucket()
        except Exception:  # noqa: BLE001 - any failure is "not healthy"
            return False
        return True

    # What a request may do

    def authenticate(self, token: str | None) -> Grant:
        """The token's scopes, checked before anything else is read or looked up."""
        return self.tokens.authenticate(token)

    def _writer(self, game_id: str, grant: Grant) -> tuple[Matchup, Writer]:
        game = self.schedule.matchup(game_id)
        return game, grant.writer_for(game_id, game.team_ids)

    # The writes: fields first (no lookup), then the schedule, the scope, the rules that need both

    def post_event(self, game_id: str, body, grant: Grant) -> Result:
        ev.check_game_id(game_id)
        event = ev.parse_event_fields(body)
        game, writer = self._writer(game_id, grant)
        ev.check_teams(event, game.team_ids)
        writer.check_line(event.team_id, "posting")
        return self._commit(game, Append(event))

    def end_game(self, game_id: str, body, grant: Grant) -> Result:
        ev.check_game_id(game_id)
        clock = ev.parse_end_body(body)
        game, writer = self._writer(game_id, grant)
        writer.check_line(0, "ending the game", None)
        return self._commit(game, End(clock))

    def correct_event(self, game_id: str, event_id: str, body, grant: Grant) -> Result:
        ev.check_game_id(game_id)
        number = ev.check_event_id(event_id)
        event = ev.parse_event_fields(body, ev.CORRECTION_FIELDS)
        game, writer = self._writer(game_id, grant)
        ev.check_teams(event, game.team_ids)
        writer.check_line(event.team_id, "correcting")
        return self._commit(game, Correct(number, event, writer))

    def delete_event(self, game_id: str, event_id: str, grant: Grant) -> Result:
        ev.check_game_id(game_id)
        number = ev.check_event_id(event_id)
        game, writer = self._writer(game_id, grant)
        if number == ev.GAME_OVER_EVENT_ID:
            writer.check_line(0, "reopening the game", "event_id")
        return self._commit(game, Correct(number, None, writer))

    def read_stream(self, game_id: str) -> StoredObject:
        ev.check_game_id(game_id)
        try:
            return self.store.read(key_for_game(game_id))
        except Exception as exc:
            raise unavailable("object store", exc) from exc

    # The write protocol

    def _lock(self, game_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(game_id, threading.Lock())

    def _commit(self, game: Matchup, write: Write) -> Result:
        with self._lock(game.game_id):
            try:
                return self._commit_locked(game, write)
            except IngestError:
                raise
            except Exception as exc:
                self._states.pop(game.game_id, None)  # whatever happened, read the object again next time
                raise unavailable("object store", exc) from exc

    def _commit_locked(self, game: Matchup, write: Write) -> Result:
        """Attempts until one lands or the write is settled otherwise; other writers get their
        turn between two attempts (jittered, growing), so busy writers do not keep invalidating
        each other. Only a game that keeps changing for `retry_seconds` answers "contention"."""
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            try:
                state = self._states.get(game.game_id)
                if state is None and write.presume_new and attempt == 0:
                    state = self.reader.open_new(game.game_id)  # a presumption: checked by the put, not cached
                elif state is None:
                    state = self._states[game.game_id] = self.reader.load(game.game_id)
                result = self._attempt(game, write, state)
            except S3Error as exc:
                # The store answered 5xx (busy, or a read racing a write in an embedded server): like a
                # lost race, read again and retry within the deadline. Anything else is an answer.
                if exc.status < 500 or time.monotonic() > deadline:
                    raise
                self._states.pop(game.game_id, None)
                self.stats.add("write_errors")
                result = None
            if result is not None:
                return result
            attempt += 1
            if time.monotonic() > deadline:
                raise Unavailable("contention", f"game {game.game_id!r} kept changing for {self.retry_seconds:g} s "
                                                f"({attempt} attempts); retry with the same client event id")
            time.sleep(random.uniform(0, 0.002 * min(attempt, 10)))

    def _attempt(self, game: Matchup, write: Write, state: GameState) -> Result | None:
        """One try against `state`: the answer, or None when another writer got there first."""
        game_id = game.game_id
        known = state.client_event(write.client_event_id)
        if known is not None:
            self.stats.add("duplicates")
            return Result(200, {"game_id": game_id, "event_id": known, "client_event_id": write.client_event_id,
                                "duplicate": True, "detail": "this client event id was applied before"})
        change = write.build(state, game.team_ids)
        if change is None:
            return Result(200, {"game_id": game_id, "event_id": ev.GAME_OVER_EVENT_ID, "duplicate": True,
                                "detail": "the game already has its -1 line"})
        if len(change.data) > self.max_object_bytes and len(change.data) > len(state.stream.data):
            # The live path does not read objects over this size: a line past it would never show.
            raise StateConflict("object too large", f"the game's object would pass {self.max_object_bytes} bytes "
                                f"(SIDEARM_LIVE_MAX_OBJECT_BYTES), which the live box score does not read; "
                                f"correct or remove lines first")
        metadata, write_id = self._metadata(game_id, state, write.client_event_id, change)
        etag = self._put(game_id, state, change, metadata, write_id)
        if etag is None:
            return None
        self.stats.add("writes")
        return Result(write.created, {"game_id": game_id, "event_id": change.event_id, "line": change.line,
                                      "seq": change.seq, "client_event_id": write.client_event_id,
                                      "duplicate": False, "version": etag})

    def _metadata(self, game_id: str, state: GameState, client_event_id: str | None,
                  change: ev.Change) -> tuple[dict[str, str], str]:
        """The new version's metadata (and its write id); the ledger first when ids would leave it."""
        recent = dict(state.recent)
        if client_event_id is not None:
            recent[client_event_id] = change.event_id
        kept, dropped = ev.trim_recent(recent)
        if any(state.ledger.get(c) != e for c, e in dropped.items()) or \
                len(state.unledgered()) >= ledger_threshold(game_id):
            # Ids are about to leave the metadata: put them (and every committed recent one) in the
            # ledger first. Never the new id: its line is not written yet. Usually this happens
            # earlier, at a number of ids that differs by game (`ledger_threshold`).
            self.reader.flush_ledger(game_id, state, state.recent)
        write_id = uuid.uuid4().hex[:16]
        metadata = {
            ev.NEXT_ID_HEADER: str(max(change.next_event_id, state.high_water or 0)),
            ev.RECENT_HEADER: ev.encode_recent(kept),
            ev.WRITES_HEADER: ev.add_write(state.stream.metadata.get(ev.WRITES_HEADER), write_id),
        }
        if state.ledger_etag is not None:  # after the flush above: the ledger holds every id dropped so far
            metadata[ev.LEDGER_HEADER] = state.ledger_etag
        return metadata, write_id

    def _put(self, game_id: str, state: GameState, change: ev.Change, metadata: dict[str, str],
             write_id: str) -> str | None:
        """The conditional put; the version's ETag once it landed, None when another writer won."""
        key = key_for_game(game_id)
        try:
            etag = self.store.put(key, change.data, state.stream.etag, metadata, "text/plain; charset=utf-8")
        except Exception as exc:
            # A 412, or no answer at all: whether our put landed (a lost response, a retried
            # request) is in the object's list of writes, ours or the ones built on it.
            fresh = self._states[game_id] = self.reader.load(game_id, known=state)
            if not ev.has_write(fresh.stream.metadata.get(ev.WRITES_HEADER), write_id):
                self.stats.add("conflicts" if isinstance(exc, Conflict) else "write_errors")
                return None
            return fresh.stream.etag  # the cache now holds what is there, maybe writes on top of ours
        self._states[game_id] = GameState(StoredObject(change.data, etag, metadata), state.ledger, state.ledger_etag)
        if self.verify_writes and not self._landed(game_id, key, etag, write_id, state):
            self.stats.add("verify_retries")
            return None
        return etag

    def _landed(self, game_id: str, key: str, etag: str, write_id: str, built_on: GameState) -> bool:
        """After a put on a store whose conditional check is not atomic: is our version there, or one
        built on it? Neither means a racing put replaced ours: start over."""
        fresh = self.store.read(key)
        if fresh.etag == etag:
            return True
        landed = ev.has_write(fresh.metadata.get(ev.WRITES_HEADER), write_id)
        # Either way the cache must hold what is there now, never our version under a newer ETag.
        self._states[game_id] = GameState(fresh, built_on.ledger, built_on.ledger_etag)
        return landed
