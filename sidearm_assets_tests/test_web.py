"""The live box-score page, its JSON endpoint and its push channel, against the real embedded
MongoDB-wire server.

Documents are written by the pipeline's own functions (`live_update` + `BoxScoreStore.upsert`),
each test in its own database; the pages are requested through Starlette's test client, the push
channel over HTTP from a real `sidearm-web` (uvicorn) process, and the push hub on its own with a
counting fetch. The browser test (test_browser.py) covers the same page in Chromium, including
updates pushed without a reload.
"""

from __future__ import annotations

import json
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from sidearm_assets import settings
from sidearm_assets.domain.games import Matchup
from sidearm_assets.domain.live import live_update
from sidearm_assets.storage.reference_db import BASE_PLAYERS, BASE_TEAMS
from sidearm_assets.web.app import BoxScoreReader, create_app, jsonable

HOME, AWAY = (dict(t) for t in BASE_TEAMS)
PLAYERS = [dict(p) for p in BASE_PLAYERS]
GAME_LINES = (Path(__file__).parents[1] / "gamestream" / "games" / "default.txt").read_text().splitlines()


def write_version(store, lines, game_id="gamestream", home=HOME, away=AWAY, version=None):
    """One stream version through the live path; returns the document as stored."""
    game = Matchup(game_id, home, away)
    update = live_update(game, "\n".join(lines).encode(), version or f"v{len(lines)}",
                         "2025-04-12T18:00:00+00:00", PLAYERS)
    store.upsert(update.doc)
    return store.latest(game_id)


@pytest.fixture
def mongo(embedded_stack):
    """(BoxScoreStore, BoxScoreReader) on a fresh database of the embedded server; dropped after."""
    from sidearm_assets.storage import clients
    from sidearm_assets.resources import BoxScoreStore

    uri = embedded_stack[settings.MONGO_URI.name]
    database = f"web_{uuid.uuid4().hex[:10]}"
    store = BoxScoreStore(uri=uri, database=database)
    yield store, BoxScoreReader(uri, database)
    clients.mongo_client(uri).drop_database(database)


@pytest.fixture
def client(mongo):
    return TestClient(create_app(mongo[1]))


class Page(HTMLParser):
    """Just enough of the page: text by element id, table rows by table id, classes by row."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.tables: dict[str, list[dict]] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of open elements with text capture
        self._texts: dict[str, list[str]] = {}
        self._table: str | None = None
        self._row: dict | None = None
        self._cell: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self._texts[a["id"]] = []
        self._open.append((tag, a.get("id")))
        if tag == "table":
            self._table = a.get("id")
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table and "data-number" in a:
            self._row = {"number": a["data-number"], "class": a.get("class") or ""}
        elif tag == "td" and self._row is not None:
            classes = [c for c in (a.get("class") or "").split() if c != "num"]
            self._cell = classes[0] if classes else None
            if self._cell:
                self._row[self._cell] = ""

    def handle_endtag(self, tag):
        while self._open:
            t, i = self._open.pop()
            if i:
                self.by_id[i] = " ".join("".join(self._texts.pop(i, [])).split())
            if t == tag:
                break
        if tag == "td":
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        for _, i in self._open:
            if i in self._texts:
                self._texts[i].append(data)
        if self._row is not None and self._cell:
            self._row[self._cell] = (self._row[self._cell] + data.strip()).strip()


def test_page_shows_the_latest_document_of_the_game(client, mongo):
    store, _ = mongo
    write_version(store, GAME_LINES[:30])
    doc = write_version(store, GAME_LINES[:40])
    write_version(store, GAME_LINES[:5], game_id="othergame")  # another game does not leak in

    resp = client.get("/games/gamestream")
    assert resp.status_code == 200
    page = Page(resp.text)
    assert page.by_id["clock"] == doc["timestamp"] == "26:53"
    assert page.by_id["seq"] == "40"
    assert "final-badge" not in page.by_id and page.by_id["live-badge"] == "Live"
    for side in ("home", "away"):
        team = doc[side]
        card = page.by_id[f"{side}-team"]
        for shown in (team["name"], team["conference"], f"Record {team['wins']}-{team['losses']}",
                      str(team["score"]), team["status"]):
            assert shown in card
        rows = page.tables[f"{side}-players"]
        assert [
            (r["number"], r["player"], r["shots"], r["goals"], r["pct"]) for r in rows
        ] == [
            (p["number"], p["name"], str(p["shots"]), str(p["goals"]), f"{p['pct']:.2f}") for p in team["players"]
        ]
    # independent of the document: the first 40 lines of the default game
    home_goals = sum(1 for line in GAME_LINES[:40] if line.split()[2] == "101" and line.endswith(" 1"))
    away_goals = sum(1 for line in GAME_LINES[:40] if line.split()[2] == "205" and line.endswith(" 1"))
    assert (doc["home"]["score"], doc["away"]["score"]) == (home_goals, away_goals) == (7, 5)
    assert "7" in page.by_id["home-team"].split() and "5" in page.by_id["away-team"].split()


def test_json_endpoint_returns_the_same_document_and_304_when_unchanged(client, mongo):
    store, _ = mongo
    doc = write_version(store, GAME_LINES[:12])
    resp = client.get("/api/games/gamestream")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json() == jsonable(doc)
    assert resp.json()["_id"] == 11 and resp.json()["seq"] == 12
    assert list(resp.json()) == list(doc)  # the document's own field order
    etag = resp.headers["ETag"]
    again = client.get("/api/games/gamestream", headers={"If-None-Match": etag})
    assert again.status_code == 304
    write_version(store, GAME_LINES[:13])
    newer = client.get("/api/games/gamestream", headers={"If-None-Match": etag})
    assert newer.status_code == 200 and newer.json()["seq"] == 13


def test_unknown_game_is_a_404_page_and_a_404_json(client, mongo):
    resp = client.get("/games/no-such-game")
    assert resp.status_code == 404
    html = resp.text
    assert "No such game" in html and "no-such-game" in html
    api = client.get("/api/games/no-such-game")
    assert api.status_code == 404 and api.json()["error"] == "not found"
    assert client.get("/nothing/here").status_code == 404
    assert client.get("/api/nothing").json()["error"] == "not found"


def test_mongodb_down_is_a_503_with_a_clear_message():
    from sidearm_assets.local.local_stack import free_port

    reader = BoxScoreReader(f"mongodb://127.0.0.1:{free_port()}", "sidearm", timeout_ms=300)
    client = TestClient(create_app(reader))
    for path in ("/games/gamestream", "/"):
        resp = client.get(path)
        assert resp.status_code == 503
        assert "box-score store is unreachable" in resp.text
    api = client.get("/api/games/gamestream")
    assert api.status_code == 503 and api.json()["error"] == "box-score store unavailable"


def test_all_text_is_escaped(client, mongo):
    store, _ = mongo
    home = dict(HOME, name="<script>alert('home')</script>", conference="A & B")
    write_version(store, GAME_LINES[:8], home=home)
    html = client.get("/games/gamestream").text
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;home&#39;)&lt;/script&gt;" in html
    assert "A &amp; B" in html


def test_players_not_on_the_roster_are_flagged(client, mongo):
    store, _ = mongo
    doc = write_version(store, GAME_LINES[:10] + ["10 50:00 205 77 1"])
    assert [p["number"] for p in doc["away"]["players"] if not p["on_roster"]] == ["77"]
    page = Page(client.get("/games/gamestream").text)
    row = next(r for r in page.tables["away-players"] if r["number"] == "77")
    assert "off-roster" in row["class"] and row["player"] == "not on roster"
    assert (row["shots"], row["goals"], row["pct"]) == ("1", "1", "1.00")
    assert not [r for r in page.tables["home-players"] if "off-roster" in r["class"]]


def test_final_game_shows_the_badge_and_keeps_following(client, mongo):
    store, _ = mongo
    doc = write_version(store, GAME_LINES + ["-1 00:00 0 0 0"])
    assert doc["final"] and doc["_id"] == -1
    html = client.get("/games/gamestream").text
    page = Page(html)
    assert page.by_id["final-badge"] == "Final"
    assert "clock" not in page.by_id and "live-badge" not in page.by_id
    assert 'data-final="true"' in html
    assert page.by_id["refresh-state"] == "final (a correction would still show here)"
    assert 'data-push="/api/games/gamestream/events"' in html


def test_index_lists_the_latest_document_of_every_game(client, mongo):
    store, _ = mongo
    write_version(store, GAME_LINES[:20])
    write_version(store, GAME_LINES[:25])
    write_version(store, GAME_LINES[:6], game_id="second")
    html = client.get("/").text
    assert html.index('data-game="gamestream"') < html.index('data-game="second"')
    assert 'href="/games/gamestream"' in html and 'href="/games/second"' in html
    latest = store.latest("gamestream")
    assert f"{latest['home']['score']} - {latest['away']['score']}" in html
    assert latest["seq"] == 25


def test_empty_index_says_so(client):
    html = client.get("/").text
    assert 'id="no-games"' in html


def test_each_page_request_is_one_query(mongo):
    from pymongo import MongoClient, monitoring

    class Commands(monitoring.CommandListener):
        def __init__(self):
            self.names = []

        def started(self, event):
            self.names.append(event.command_name)

        def succeeded(self, event):
            pass

        def failed(self, event):
            pass

    store, reader = mongo
    write_version(store, GAME_LINES[:15])
    listener = Commands()
    watched = MongoClient(reader.uri, event_listeners=[listener], serverSelectionTimeoutMS=3000)

    class WatchedReader(BoxScoreReader):
        def collection(self):
            return watched[self.database][self.collection_name]

    client = TestClient(create_app(WatchedReader(reader.uri, reader.database)))
    try:
        for path, command in (("/games/gamestream", "find"), ("/api/games/gamestream", "find"),
                              ("/games/unknown", "find"), ("/", "aggregate")):
            listener.names.clear()
            assert client.get(path).status_code in (200, 404)
            assert listener.names == [command], path
    finally:
        watched.close()


def test_static_script_and_styles_are_served(client):
    js = client.get("/static/boxscore.js")
    assert js.status_code == 200 and b"textContent" in js.content and b"innerHTML" not in js.content.replace(
        b"(never innerHTML)", b""
    )
    assert client.get("/static/boxscore.css").status_code == 200


def test_cli_rejects_a_port_in_use(capsys):
    import socket

    from sidearm_assets.web.app import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["--port", str(busy.getsockname()[1])]) == 1
    assert "cannot listen" in capsys.readouterr().err


# Push: one watcher per game, every open page told at once


@pytest.mark.unit
def test_push_hub_shares_one_watcher_per_game_and_sends_only_changes():
    import asyncio

    from sidearm_assets.web.push import PushHub

    docs = {"a": {"seq": 1, "home": 0}, "b": {"seq": 1, "home": 0}}
    reads: list[str] = []

    def fetch(game_id):
        reads.append(game_id)
        if game_id == "down":
            raise ConnectionError("no server")
        return docs.get(game_id)

    async def scenario():
        hub = PushHub(fetch, interval=0.01)
        queues = [hub.subscribe("a") for _ in range(50)] + [hub.subscribe("b")]
        first = [await asyncio.wait_for(q.get(), 2) for q in queues]
        assert {m.event for m in first} == {"boxscore"} and json.loads(first[0].data) == docs["a"]
        assert hub.stats()["watchers"] == 2 and hub.stats()["clients"] == 51
        await asyncio.sleep(0.1)
        assert all(q.empty() for q in queues)  # nothing changed: nothing sent, however often read
        reads_a = hub.watchers["a"].reads
        assert reads_a >= 3 and reads.count("a") == reads_a  # one read per interval for 50 pages
        # a correction: same seq, other numbers; then a replay after a final: a lower seq
        for doc in ({"seq": 1, "home": 1}, {"seq": 9, "final": True}, {"seq": 2, "home": 0}):
            docs["a"] = doc
            got = [json.loads((await asyncio.wait_for(q.get(), 2)).data) for q in queues[:50]]
            assert got == [doc] * 50
        # a page that does not read keeps only the newest document
        slow = hub.subscribe("a")
        await asyncio.wait_for(slow.get(), 2)
        for n in range(3, 6):
            docs["a"] = {"seq": n}
            await asyncio.sleep(0.05)
        assert slow.qsize() == 1 and json.loads(slow.get_nowait().data) == {"seq": 5}
        late = hub.subscribe("a")  # a page opened now gets the current document at once
        assert json.loads(late.get_nowait().data) == {"seq": 5}
        missing = hub.subscribe("nothing-here")
        assert (await asyncio.wait_for(missing.get(), 2)).event == "missing"
        down = hub.subscribe("down")
        assert (await asyncio.wait_for(down.get(), 2)).event == "unavailable"
        for q in queues[:50] + [slow, late]:
            hub.unsubscribe("a", q)
        for game, q in (("b", queues[50]), ("nothing-here", missing), ("down", down)):
            hub.unsubscribe(game, q)
        assert hub.stats()["watchers"] == 0
        before = len(reads)
        await asyncio.sleep(0.1)
        assert len(reads) <= before + 4  # at most the reads in flight when the watchers stopped

    asyncio.run(scenario())


class SSE:
    """A push connection read over a raw socket: the events as (name, data) pairs."""

    def __init__(self, base: str, game_id: str):
        import socket
        from urllib.parse import urlparse

        url = urlparse(base)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=10)
        self.sock.sendall(f"GET /api/games/{game_id}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head, head

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("push connection closed")
            self.buffer += chunk
        out, self.buffer = self.buffer.split(marker, 1)
        return out

    def next_event(self) -> tuple[str, str]:
        """The next named event (chunked transfer framing and comments skipped)."""
        while True:
            block = self._until(b"\n\n").decode()
            name, data = None, []
            for line in block.splitlines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
            if name:
                return name, "\n".join(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def web_server(mongo, tmp_path):
    """A real `sidearm-web` process (uvicorn) on the test's database; its base URL."""
    import os
    import re
    import sys

    from sidearm_assets.local import processes

    store, reader = mongo
    env = {**os.environ, settings.MONGO_URI.name: reader.uri, settings.MONGO_DB.name: reader.database,
           settings.WEB_PUSH_POLL_SECONDS.name: "0.05"}
    log = tmp_path / "web.log"
    proc = processes.spawn([sys.executable, "-m", "sidearm_assets.web.app", "--port", "0"], log, env=env)
    try:
        url = processes.wait_until(
            lambda: next(iter(re.findall(r"^(http://127\.0\.0\.1:\d+)/$", log.read_text(), re.M)), None),
            timeout=60, what="sidearm-web URL")
        yield url
    finally:
        processes.stop(proc.pid)
        proc.wait(timeout=5)


def _get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_every_open_page_is_pushed_each_new_document_through_one_watcher(mongo, web_server):
    store, _ = mongo
    first = write_version(store, GAME_LINES[:20])
    pages = [SSE(web_server, "gamestream") for _ in range(30)]
    try:
        for page in pages:
            name, data = page.next_event()
            assert name == "boxscore" and json.loads(data) == jsonable(first)
        health = _get_json(f"{web_server}/healthz")["push"]
        assert health["watchers"] == 1 and health["clients"] == 30
        newer = write_version(store, GAME_LINES[:21])
        for page in pages:
            name, data = page.next_event()
            assert name == "boxscore" and json.loads(data)["seq"] == newer["seq"] == 21
        # the page and the JSON endpoint still answer through the same server
        assert _get_json(f"{web_server}/api/games/gamestream")["seq"] == 21
        for page in pages[10:]:
            page.close()
        processes_left = processes_wait(lambda: _get_json(f"{web_server}/healthz")["push"]["clients"] == 10)
        assert processes_left
    finally:
        for page in pages:
            page.close()
    assert processes_wait(lambda: _get_json(f"{web_server}/healthz")["push"]["watchers"] == 0)


def processes_wait(predicate, timeout: float = 10.0) -> bool:
    from sidearm_assets.local import processes

    return bool(processes.wait_until(predicate, timeout=timeout, interval=0.05, what="push connections to close"))


def test_a_replay_after_a_final_reaches_an_open_page(mongo, web_server):
    """The page follows a game replayed after its final (superseded documents deleted)."""
    store, _ = mongo
    final = write_version(store, GAME_LINES + ["-1 00:00 0 0 0"])
    assert final["final"]
    page = SSE(web_server, "gamestream")
    try:
        name, data = page.next_event()
        assert json.loads(data)["final"] is True
        # the replay starts over: the live path writes its document, then deletes the longer play's
        game = Matchup("gamestream", HOME, AWAY)
        replay = live_update(game, "\n".join(GAME_LINES[:3]).encode(), "replay-3", None, PLAYERS).doc
        store.upsert(replay)
        store.collection().delete_many({"game_id": "gamestream", "seq": {"$gte": 3}, "_id": {"$ne": replay["_id"]}})
        name, data = page.next_event()
        assert name == "boxscore" and json.loads(data)["seq"] == replay["seq"] == 3
        assert json.loads(data)["final"] is False
        store.collection().delete_many({"game_id": "gamestream"})
        assert page.next_event()[0] == "missing"
    finally:
        page.close()
