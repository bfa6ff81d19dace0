"""A game as the write protocol sees it: its stream object and its ledger of client event ids.

The newest client ids travel in the stream object's metadata (`events.RECENT_HEADER`); before
one leaves that bounded list it is merged into the ledger object `ingest-ledger/<game_id>.json`
(a conditional put, merged on conflict). `GameReader` reads both and writes the ledger;
`ingest/service.py` holds the protocol that uses them.
"""

from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass

from sidearm_assets.ingest import events as ev
from sidearm_assets.ingest.errors import Broken, StateConflict, Unavailable
from sidearm_assets.settings import archive_key, key_for_game
from sidearm_assets.storage.objects import StoredObject
from sidearm_assets.storage.s3http import Conflict, SignedS3

LEDGER_PREFIX = "ingest-ledger/"
LEDGER_ATTEMPTS = 50


def ledger_key(game_id: str) -> str:
    return f"{LEDGER_PREFIX}{game_id}.json"


def ledger_threshold(game_id: str) -> int:
    """How many client ids a game's object holds that its ledger does not, before the next write
    merges them into the ledger: between 16 and 27, fixed per game. Games that start together
    then do not all write their ledgers on the same post (measured: 50 games started at once all
    flushed on their 33rd post, and the extra 50 PUTs within ~0.2 s made those posts the run's
    p99, 100-120 ms against ~10 ms), and every id is in the ledger well before the metadata's
    bounded list (`events.RECENT_MAX_ENTRIES`, 32) lets it go."""
    return 16 + zlib.crc32(game_id.encode()) % 12


def decode_ledger(data: bytes) -> dict[str, int]:
    return {str(k): int(v) for k, v in json.loads(data)["clients"].items()}


class Stats:
    """Counters of the write protocol, updated from the request threads under one lock."""

    NAMES = ("writes", "conflicts", "write_errors", "verify_retries", "ledger_writes", "duplicates")

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


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

    def unledgered(self) -> dict[str, int]:
        return {c: e for c, e in self.recent.items() if self.ledger.get(c) != e}


class GameReader:
    """Reads a game's object and ledger, and merges client ids into the ledger."""

    def __init__(self, store: SignedS3, stats: Stats):
        self.store = store
        self.stats = stats

    def load(self, game_id: str, archived: bool | None = None, known: GameState | None = None) -> GameState:
        """The game's object and ledger, read now. `archived`: whether its archived completion
        exists, when the caller has just looked (else it is looked up if the object is missing).
        `known`: a state this process had; its ledger is kept, unread, when the object says it was
        written against that same ledger version (`events.LEDGER_HEADER`): every id the object's
        writers dropped from its list is in that version, so reading it again would change nothing."""
        stream = self.store.read(key_for_game(game_id))
        if known is not None and known.ledger_etag is not None and \
                stream.metadata.get(ev.LEDGER_HEADER) == known.ledger_etag:
            return GameState(stream, known.ledger, known.ledger_etag)
        if archived is None and stream.etag is None:
            archived = self.store.read(archive_key(game_id)).etag is not None
        if stream.etag is None and archived:
            # Retired (storage/retire.py): a write now would start an empty stream over a finished game.
            raise StateConflict("game retired", f"game {game_id!r} ended and its object was retired from the "
                                f"bucket's top level; restore it first: sidearm-games restore {game_id}")
        ledger = self.store.read(ledger_key(game_id))
        clients = {}
        if ledger.etag is not None:
            try:
                clients = decode_ledger(ledger.data)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise Broken("unreadable ledger", f"{ledger_key(game_id)} is not a ledger; move it away to "
                                                  f"start a new one") from None
        return GameState(stream, clients, ledger.etag)

    def open_new(self, game_id: str) -> GameState:
        """A game this process has not written yet, for an append: presumed to have no object.

        A day's first post of each game then costs one lookup (its archived completion: a retired
        game must be restored first) and the put, instead of three lookups and the put: measured,
        50 games opened at once waited ~240 ms for their first post. The presumption is checked by
        the put itself: `If-None-Match: *` fails (412) when the object exists, and the normal path
        then reads the object and its ledger and builds again. (A game whose object was deleted
        starts over without the deleted stream's ledger of client ids.)"""
        if self.store.read(archive_key(game_id)).etag is not None:
            return self.load(game_id, archived=True)  # over (or retired): read what there is
        return GameState(StoredObject(b"", None), {}, None)

    def flush_ledger(self, game_id: str, state: GameState, add: dict[str, int]) -> None:
        """Merge `add` into the ledger object (conditional; re-read and merged on conflict)."""
        merged = {**state.ledger, **add}
        etag = state.ledger_etag
        for _ in range(LEDGER_ATTEMPTS):
            body = json.dumps({"game_id": game_id, "clients": merged}, sort_keys=True).encode()
            try:
                etag = self.store.put(ledger_key(game_id), body, etag, {}, "application/json")
            except Conflict:
                fresh = self.store.read(ledger_key(game_id))
                etag = fresh.etag
                if fresh.etag is not None:
                    merged = {**decode_ledger(fresh.data), **merged}
                continue
            self.stats.add("ledger_writes")
            state.ledger, state.ledger_etag = merged, etag
            return
        raise Unavailable("contention", f"the ledger of game {game_id!r} kept changing; retry")
