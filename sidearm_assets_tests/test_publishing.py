"""The live path's engine piece by piece, without services: the missed-events rebuild, the
per-game record, the rebuilder's counts, a closed watcher, the watcher registry and the cursor.
Publication itself runs against the real stores in test_live_sensor.py."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from sidearm_assets.domain.games import Matchup
from sidearm_assets.domain.live import live_update
from sidearm_assets.publishing.background import BackgroundWatcher, WatcherRegistry, interpreter_exiting
from sidearm_assets.publishing.rebuild import MissedEvents, Rebuilder, missed_documents
from sidearm_assets.publishing.records import WatcherClosed
from sidearm_assets.publishing.watcher import BucketWatcher, GameState
from sidearm_assets.sensors.live_cursor import LiveCursor

pytestmark = pytest.mark.unit

GAME = b"0 59:51 101 6 1\n1 58:00 205 12 1\nbad line\n2 50:00 205 77 1\n3 45:00 101 12 1\n"
HOME = {"id": 205, "name": "Home", "conference": "East", "wins": 1, "losses": 0}
AWAY = {"id": 101, "name": "Away", "conference": "East", "wins": 0, "losses": 1}
MATCHUP = Matchup("g1", HOME, AWAY)
VERSION = SimpleNamespace(version="etag@1", last_modified=datetime(2026, 3, 1, 12, tzinfo=timezone.utc))


def missed(previous, data=GAME, game_id="g1") -> MissedEvents:
    doc = live_update(MATCHUP, data, VERSION.version, VERSION.last_modified.isoformat(), []).doc
    doc["published_at"] = 1234.5
    return MissedEvents(game_id, data, previous, doc, MATCHUP, [], VERSION)


def test_missed_documents_are_the_prefixes_between_the_last_document_and_the_new_one():
    docs = list(missed_documents(missed(previous=1), max_lines=200))
    # lines 4 and 3 (seq 4, 3); line 2's document is line 3's: the rejected line 3 adds no event
    assert [d["seq"] for d in docs] == [4, 3]
    assert [d["_id"] for d in docs] == ["g1:2", "g1:1"]
    assert all(d["rebuilt"] is True and d["published_at"] == 1234.5 for d in docs)
    full = live_update(MATCHUP, GAME[: GAME.index(b"2 50")], VERSION.version, VERSION.last_modified.isoformat(), [])
    assert {k: v for k, v in docs[1].items() if k not in ("rebuilt", "published_at")} == full.doc


@pytest.mark.parametrize("previous, max_lines", [(None, 200), (4, 200), (5, 200), (1, 2)])
def test_no_missed_documents_without_a_gap_or_past_the_limit(previous, max_lines):
    assert list(missed_documents(missed(previous), max_lines)) == []


def test_a_game_is_due_when_its_version_changed_and_it_is_neither_handled_nor_backing_off():
    assert GameState().due("v1", now=10.0)
    assert not GameState(version="v1").due("v1", now=10.0)
    assert not GameState(version="v0", in_flight=True).due("v1", now=10.0)
    assert not GameState(version="v0", retry_at=11.0).due("v1", now=10.0)
    assert GameState(version="v0", retry_at=9.0).due("v1", now=10.0)


class ListStore:
    """A box-score store keeping upserted documents in a list; fails the first `failures` upserts."""

    def __init__(self, failures: int = 0):
        self.docs, self.failures = [], failures

    def upsert(self, doc):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("not yet")
        self.docs.append(doc)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_rebuilder_counts_what_it_wrote_once():
    store, reported = ListStore(), []
    rebuilder = Rebuilder(store, max_lines=200, report=reported.append)
    try:
        rebuilder.queue(missed(previous=1))
        wait_for(lambda: rebuilder.pending == 0)
        assert [d["seq"] for d in store.docs] == [4, 3] and not reported
        assert rebuilder.take_rebuilt() == 2 and rebuilder.take_rebuilt() == 0
    finally:
        rebuilder.close()
    rebuilder.queue(missed(previous=1))  # closed: refused, not counted as waiting
    assert rebuilder.pending == 0


def test_a_full_rebuild_backlog_is_reported_not_grown(monkeypatch):
    from sidearm_assets.publishing import rebuild

    monkeypatch.setattr(rebuild, "MAX_QUEUED_REBUILDS", 0)
    store, reported = ListStore(), []
    rebuilder = Rebuilder(store, max_lines=200, report=reported.append)
    try:
        rebuilder.queue(missed(previous=1))
        assert reported == ["g1: missed events' documents not rebuilt (rebuild backlog full)"]
        assert rebuilder.pending == 0 and store.docs == []
    finally:
        rebuilder.close()


class OneGameBucket:
    bucket = "b"

    def list_games(self):
        return {"g1": SimpleNamespace(version="v1", size=10)}


def test_a_closed_watcher_says_so_and_its_thread_stops_quietly():
    watcher = BucketWatcher(OneGameBucket(), ListStore(), sidearmdb=None)
    watcher.close()
    with pytest.raises(WatcherClosed):
        watcher.poll()
    assert watcher.idle(timeout=1.0)  # the refused game is not left as being handled
    background = BackgroundWatcher(watcher, lease_seconds=30.0)
    wait_for(lambda: not background.alive)
    assert background.last_error is None
    assert not interpreter_exiting()


class FakeBackground:
    def __init__(self):
        self.alive, self.renewals, self.stopped = True, 0, False

    def renew(self):
        self.renewals += 1

    def stop(self):
        self.stopped = True


def test_the_registry_keeps_one_watcher_per_key_and_restarts_one_whose_thread_ended():
    registry = WatcherRegistry()
    started = []

    def start():
        started.append(SimpleNamespace(background=FakeBackground()))
        return started[-1]

    first, new = registry.keep_alive("a", start)
    again, new_again = registry.keep_alive("a", start)
    assert new and not new_again and again is first and first.background.renewals == 2
    first.background.alive = False
    third, restarted = registry.keep_alive("a", start)
    assert restarted and third is not first and len(started) == 2
    other, _ = registry.keep_alive("b", start)
    assert registry.entries() == [third, other]
    registry.stop_all()
    assert third.background.stopped and other.background.stopped and registry.entries() == []


def test_the_cursor_round_trips_and_an_unreadable_one_starts_empty():
    cursor = LiveCursor({"g1": "v1", "g2": "v2"}, {"g2": "too big"})
    assert LiveCursor.parse(cursor.dump()) == cursor
    for text in (None, "", "not json", "[1, 2]", '{"versions": 3}'):
        assert LiveCursor.parse(text) == LiveCursor()


def test_concurrent_keep_alive_starts_one_watcher():
    registry, started = WatcherRegistry(), []
    barrier = threading.Barrier(8)

    def start():
        started.append(SimpleNamespace(background=FakeBackground()))
        return started[-1]

    def call():
        barrier.wait()
        registry.keep_alive("k", start)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1 and started[0].background.renewals == 8
