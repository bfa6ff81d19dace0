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
result and writes nothing. The ids live with the object: its user metadata lists the newest
ones (`events.RECENT_HEADER`, in the same atomic put as the line they name), and before an id
leaves that bounded list it is merged into the game's ledger object
`ingest-ledger/<game_id>.json` (conditional put, merged on conflict). So an id is always in the
object's metadata or in the ledger, whichever process wrote it, also across a crash between
two writes. A put whose response was lost is recognised by the write id it stored in the metadata.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

from sidearm_assets.domain.games import Matchup, UnscheduledGameError, matchup
from sidearm_assets.ingest import events as ev
from sidearm_assets.ingest.auth import Tokens
from sidearm_assets.storage.s3http import Conflict, SignedS3
from sidearm_assets.settings import archive_key, key_for_game

LEDGER_PREFIX = "ingest-ledger/"
MAX_ATTEMPTS = 50


def ledger_threshold(game_id: str) -> int:
    """How many client ids a game's object holds that its ledger does not, before the next write
    merges them into the ledger: between 16 and 27, fixed per game. Games that start together
    then do not all write their ledgers on the same post (measured: 50 games started at once all
    flushed on their 33rd post, and the extra 50 PUTs within ~0.2 s made those posts the run's
    p99, 100-120 ms against ~10 ms), and every id is in the ledger well before the metadata's
    bounded list (`events.RECENT_MAX_ENTRIES`, 32) lets it go."""
    return 16 + zlib.crc32(game_id.encode()) % 12


def unavailable(what: str, exc: Exception) -> ev.IngestError:
    return ev.IngestError(503, f"{what} unavailable", f"{what} did not answer ({type(exc).__name__}); nothing "
                                                       f"was written by this request unless it says so; retry")


@dataclass
class StoredObject:
    data: bytes
    etag: str | None  # None: no such object
    metadata: dict[str, str] = field(default_factory=dict)


class Schedule:
    """The `games` and `teams` tables, cached: a known game costs no query; an unknown one re-reads
    the tables (once for all the requests waiting on the same read), so a game added to the
    schedule is found at once; a slow or locked database never fails a post for a game already known."""

    def __init__(self, sql_url: str, ttl: float = 30.0):
        self.sql_url = sql_url
        self.ttl = ttl
        self._games: list[dict] = []
        self._teams: list[dict] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self._engine = None

    def _refresh(self) -> None:
        from sidearm_assets.storage import reference_db

        if self._engine is None:
            self._engine = reference_db.make_engine(self.sql_url)
        games = reference_db.read_rows(self._engine, reference_db.games)
        teams = reference_db.read_rows(self._engine, reference_db.teams)
        self._games, self._teams, self._read_at = games, teams, time.monotonic()

    def load(self) -> None:
        """Read the tables now (the API does before it serves); raises what the database raises."""
        with self._lock:
            self._refresh()

    def matchup(self, game_id: str) -> Matchup:
        asked = time.monotonic()
        with self._lock:
            try:
                if asked - self._read_at > self.ttl:
                    self._refresh()
                try:
                    return matchup(game_id, self._games, self._teams)
                except UnscheduledGameError:
                    if self._read_at >= asked:
                        raise  # read since this request came in: the game is not scheduled
                    self._refresh()
                    return matchup(game_id, self._games, self._teams)
            except UnscheduledGameError as exc:
                raise ev.IngestError(404, "unscheduled game", str(exc), "game_id") from None
            except Exception as exc:  # the database: serve from the last good copy when there is one
                if self._teams:
                    try:
                        return matchup(game_id, self._games, self._teams)
                    except UnscheduledGameError as missing:
                        raise ev.IngestError(404, "unscheduled game", str(missing), "game_id") from None
                raise unavailable("reference database", exc) from exc


@dataclass
class GameState:
    stream: StoredObject
    ledger: dict[str, int]
    ledger_etag: str | None

    @property
    def recent(self) -> dict[str, int]:
        return ev.decode_recent(self.stream.metadata.get(ev.RECENT_HEADER))

    @property
    def high_water(self) -> int | None:
        value = self.stream.metadata.get(ev.NEXT_ID_HEADER, "")
        return int(value) if value.isascii() and value.isdigit() else None

    def client_event(self, client_event_id: str | None) -> int | None:
        if client_event_id is None:
            return None
        found = self.recent.get(client_event_id)
        return found if found is not None else self.ledger.get(client_event_id)


@dataclass(frozen=True)
class Result:
    status: int
    body: dict


class IngestService:
    def __init__(self, store: SignedS3, schedule: Schedule, tokens: Tokens, verify_writes: bool = False,
                 max_object_bytes: int = 1 << 20):
        self.store = store
        self.max_object_bytes = max_object_bytes
        self.schedule = schedule
        self.tokens = tokens
        self.verify_writes = verify_writes
        self._states: dict[str, GameState] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.stats = {"writes": 0, "conflicts": 0, "write_errors": 0, "verify_retries": 0, "ledger_writes": 0,
                      "duplicates": 0}

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

    def authorize(self, game_id: str, token: str | None) -> Matchup:
        game = self.schedule.matchup(ev.check_game_id(game_id))
        if self.tokens.empty:
            raise ev.IngestError(401, "unauthorized", "no scorer token is configured (SIDEARM_INGEST_TOKENS), so "
                                                      "this API accepts no writes")
        if not self.tokens.allows(token, game_id, game.team_ids):
            raise ev.IngestError(401, "unauthorized", f"a valid scorer token for game {game_id!r} or one of its "
                                                      f"teams is required (Authorization: Bearer <token>)")
        return game

    def post_event(self, game_id: str, body, token: str | None) -> Result:
        game = self.authorize(game_id, token)
        event = ev.parse_event_body(body, game.team_ids)
        return self._commit(
            game, event.client_event_id,
            lambda st: ev.append_event(st.stream.data, event, game.team_ids, st.high_water),
            created=201, presume_new=True,
        )

    def end_game(self, game_id: str, body, token: str | None) -> Result:
        game = self.authorize(game_id, token)
        clock = ev.parse_end_body(body)
        return self._commit(game, None, lambda st: ev.end_game(st.stream.data, clock, game.team_ids, st.high_water),
                            created=201)

    def correct_event(self, game_id: str, event_id: str, body, token: str | None) -> Result:
        game = self.authorize(game_id, token)
        number = self._event_id(event_id)
        event = ev.parse_event_body(body, game.team_ids, allowed=ev.CORRECTION_FIELDS)
        return self._commit(
            game, None, lambda st: ev.correct_event(st.stream.data, number, event, game.team_ids, st.high_water)
        )

    def delete_event(self, game_id: str, event_id: str, token: str | None) -> Result:
        game = self.authorize(game_id, token)
        number = self._event_id(event_id)
        return self._commit(
            game, None, lambda st: ev.correct_event(st.stream.data, number, None, game.team_ids, st.high_water)
        )

    def read_stream(self, game_id: str) -> StoredObject:
        ev.check_game_id(game_id)
        try:
            return self.store.read(key_for_game(game_id))
        except Exception as exc:
            raise unavailable("object store", exc) from exc

    @staticmethod
    def _event_id(text: str) -> int:
        if not (text.isascii() and (text.isdigit() or (text.startswith("-") and text[1:].isdigit()))) or len(text) > 18:
            raise ev.IngestError(400, "invalid event id", f"event id {text!r} is not an integer", "event_id")
        return int(text)

    def _lock(self, game_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(game_id, threading.Lock())

    def _load(self, game_id: str, archived: bool | None = None) -> GameState:
        """The game's object and ledger, read now. `archived`: whether its archived completion
        exists, when the caller has just looked (else it is looked up if the object is missing)."""
        stream = self.store.read(key_for_game(game_id))
        if archived is None and stream.etag is None:
            archived = self.store.read(archive_key(game_id)).etag is not None
        if stream.etag is None and archived:
            # Retired (storage/retire.py): a write now would start an empty stream over a finished game.
            raise ev.IngestError(409, "game retired", f"game {game_id!r} ended and its object was retired from "
                                 f"the bucket's top level; restore it first: sidearm-games restore {game_id}")
        ledger = self.store.read(LEDGER_PREFIX + f"{game_id}.json")
        clients = {}
        if ledger.etag is not None:
            try:
                clients = {str(k): int(v) for k, v in json.loads(ledger.data)["clients"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ev.IngestError(500, "unreadable ledger", f"{LEDGER_PREFIX}{game_id}.json is not a ledger; "
                                                                "move it away to start a new one") from None
        state = GameState(stream, clients, ledger.etag)
        self._states[game_id] = state
        return state

    def _open_new(self, game_id: str) -> GameState:
        """A game this process has not written yet, for an append: presumed to have no object.

        A day's first post of each game then costs one lookup (its archived completion: a retired
        game must be restored first) and the put, instead of three lookups and the put: measured,
        50 games opened at once waited ~240 ms for their first post. The presumption is checked by
        the put itself: `If-None-Match: *` fails (412) when the object exists, and the normal path
        then reads the object and its ledger and builds again. (A game whose object was deleted
        starts over without the deleted stream's ledger of client ids.)"""
        if self.store.read(archive_key(game_id)).etag is not None:
            return self._load(game_id, archived=True)  # over (or retired): read what there is
        return GameState(StoredObject(b"", None), {}, None)

    def _flush_ledger(self, game_id: str, state: GameState, add: dict[str, int]) -> None:
        """Merge `add` into the ledger object (conditional; re-read and merged on conflict)."""
        merged = {**state.ledger, **add}
        etag = state.ledger_etag
        key = LEDGER_PREFIX + f"{game_id}.json"
        for _ in range(MAX_ATTEMPTS):
            body = json.dumps({"game_id": game_id, "clients": merged}, sort_keys=True).encode()
            try:
                etag = self.store.put(key, body, etag, {}, "application/json")
                self.stats["ledger_writes"] += 1
                state.ledger, state.ledger_etag = merged, etag
                return
            except Conflict:
                fresh = self.store.read(key)
                etag = fresh.etag
                if fresh.etag is not None:
                    merged = {**{str(k): int(v) for k, v in json.loads(fresh.data)["clients"].items()}, **merged}
        raise ev.IngestError(503, "contention", f"the ledger of game {game_id!r} kept changing; retry")

    def _commit(self, game: Matchup, client_event_id: str | None, build, created: int = 200,
                presume_new: bool = False) -> Result:
        game_id = game.game_id
        key = key_for_game(game_id)
        with self._lock(game_id):
            try:
                return self._commit_locked(game_id, key, client_event_id, build, created, presume_new)
            except ev.IngestError:
                raise
            except Exception as exc:
                self._states.pop(game_id, None)  # whatever happened, read the object again next time
                raise unavailable("object store", exc) from exc

    def _commit_locked(self, game_id, key, client_event_id, build, created, presume_new=False) -> Result:
        for attempt in range(MAX_ATTEMPTS):
            state = self._states.get(game_id)
            if state is None:
                state = self._open_new(game_id) if presume_new and attempt == 0 else self._load(game_id)
            known = state.client_event(client_event_id)
            if known is not None:
                self.stats["duplicates"] += 1
                return Result(200, {"game_id": game_id, "event_id": known, "client_event_id": client_event_id,
                                    "duplicate": True, "detail": "this client event id was applied before"})
            change = build(state)
            if change is None:
                return Result(200, {"game_id": game_id, "event_id": ev.GAME_OVER_EVENT_ID, "duplicate": True,
                                    "detail": "the game already has its -1 line"})
            if len(change.data) > self.max_object_bytes and len(change.data) > len(state.stream.data):
                # The live path does not read objects over this size: a line past it would never show.
                raise ev.IngestError(409, "object too large", f"the game's object would pass "
                                     f"{self.max_object_bytes} bytes (SIDEARM_LIVE_MAX_OBJECT_BYTES), which the live "
                                     f"box score does not read; correct or remove lines first")
            recent = dict(state.recent)
            if client_event_id is not None:
                recent[client_event_id] = change.event_id
            kept, dropped = ev.trim_recent(recent)
            unledgered = {c: e for c, e in state.recent.items() if state.ledger.get(c) != e}
            if any(state.ledger.get(c) != e for c, e in dropped.items()) or \
                    len(unledgered) >= ledger_threshold(game_id):
                # Ids are about to leave the metadata: put them (and every committed recent one) in the
                # ledger first. Never the new id: its line is not written yet. Usually this happens
                # earlier, at a number of ids that differs by game (`ledger_threshold`).
                self._flush_ledger(game_id, state, state.recent)
            write_id = uuid.uuid4().hex[:16]
            metadata = {
                ev.NEXT_ID_HEADER: str(max(change.next_event_id, state.high_water or 0)),
                ev.RECENT_HEADER: ev.encode_recent(kept),
                ev.WRITES_HEADER: ev.add_write(state.stream.metadata.get(ev.WRITES_HEADER), write_id),
            }
            try:
                etag = self.store.put(key, change.data, state.stream.etag, metadata, "text/plain; charset=utf-8")
            except Exception as exc:
                # A 412, or no answer at all: whether our put landed (a lost response, a retried
                # request) is in the object's list of writes, ours or the ones built on it.
                fresh = self._load(game_id)
                if not ev.has_write(fresh.stream.metadata.get(ev.WRITES_HEADER), write_id):
                    self.stats["conflicts" if isinstance(exc, Conflict) else "write_errors"] += 1
                    # Another process won (or the put was lost on the way): let it finish its turn
                    # before trying again (jittered, growing), so busy writers do not keep
                    # invalidating each other. An S3 that stays down fails the reload above.
                    time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                    continue
                etag = fresh.stream.etag  # the cache now holds what is there, maybe writes on top of ours
            else:
                self._states[game_id] = GameState(StoredObject(change.data, etag, metadata), state.ledger,
                                                  state.ledger_etag)
                if self.verify_writes and not self._landed(game_id, key, etag, write_id, state):
                    self.stats["verify_retries"] += 1
                    continue
            self.stats["writes"] += 1
            return Result(created, {"game_id": game_id, "event_id": change.event_id, "line": change.line,
                                    "seq": change.seq, "client_event_id": client_event_id, "duplicate": False,
                                    "version": etag})
        raise ev.IngestError(503, "contention", f"game {game_id!r} kept changing under {MAX_ATTEMPTS} attempts; retry")

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
