"""Push each new box-score document to the open pages: one shared watcher per game.

However many pages follow a game, one asyncio task per game reads the game's latest document
(the one query of SPEC 5, on a worker thread) every `interval` seconds, and hands every change
to each page's queue. A page's queue holds only the newest document: a slow client skips
versions it had no time to show, it never makes the others wait or the server buffer. The
watcher stops when its last page leaves.

A change is any difference in the document, not only a higher `seq`: a correction rewrites a
line (same `seq`), a replay starts over (lower `seq`, after a final), and the page follows both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    """One server-sent event: `boxscore` (data: the document), `missing` (no document) or
    `unavailable` (the store did not answer; the watcher keeps trying)."""

    event: str
    data: str

    def encode(self) -> bytes:
        return f"event: {self.event}\ndata: {self.data}\n\n".encode()


@dataclass
class Watcher:
    game_id: str
    queues: set[asyncio.Queue] = field(default_factory=set)
    latest: Message | None = None
    task: asyncio.Task | None = None
    reads: int = 0
    pushes: int = 0


def offer(queue: asyncio.Queue, message: Message) -> None:
    """Put `message` in a one-slot queue, replacing what the client has not taken yet."""
    while True:
        try:
            queue.put_nowait(message)
            return
        except asyncio.QueueFull:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                pass


class PushHub:
    """`fetch(game_id)` returns the game's latest document as JSON-ready values, or None; it may
    block (it runs on a worker thread) and may raise (reported as `unavailable`)."""

    def __init__(self, fetch: Callable[[str], dict | None], interval: float = 0.1):
        self.fetch = fetch
        self.interval = interval
        self.watchers: dict[str, Watcher] = {}
        self.reads = 0

    def stats(self) -> dict:
        return {
            "watchers": len(self.watchers),
            "clients": sum(len(w.queues) for w in self.watchers.values()),
            "reads": self.reads,
            "games": {g: {"clients": len(w.queues), "reads": w.reads, "pushes": w.pushes}
                      for g, w in self.watchers.items()},
        }

    def subscribe(self, game_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        watcher = self.watchers.get(game_id)
        if watcher is None:
            watcher = self.watchers[game_id] = Watcher(game_id)
            watcher.task = asyncio.get_running_loop().create_task(self._watch(watcher), name=f"watch:{game_id}")
        elif watcher.latest is not None:
            offer(queue, watcher.latest)  # a new page gets the current document at once
        watcher.queues.add(queue)
        return queue

    def unsubscribe(self, game_id: str, queue: asyncio.Queue) -> None:
        watcher = self.watchers.get(game_id)
        if watcher is None:
            return
        watcher.queues.discard(queue)
        if not watcher.queues:
            self.watchers.pop(game_id, None)
            if watcher.task is not None:
                watcher.task.cancel()

    def _read(self, game_id: str) -> Message:
        try:
            doc = self.fetch(game_id)
        except Exception as exc:  # the store is down: say so, keep watching
            return Message("unavailable", json.dumps({"detail": f"box-score store unreachable ({type(exc).__name__})"}))
        if doc is None:
            return Message("missing", json.dumps({"game_id": game_id}))
        return Message("boxscore", json.dumps(doc, separators=(",", ":")))

    async def _watch(self, watcher: Watcher) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            message = await asyncio.to_thread(self._read, watcher.game_id)
            watcher.reads += 1
            self.reads += 1
            if message != watcher.latest:
                watcher.latest = message
                watcher.pushes += 1
                for queue in list(watcher.queues):
                    offer(queue, message)
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
