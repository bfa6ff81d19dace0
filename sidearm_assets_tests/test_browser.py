"""Browser tests in Debian's headless Chromium (`apt-get install chromium`), driven by Playwright.

(a) `sidearm-web` shows a game in progress with the document's numbers and follows the stream by
    itself (no reload), also after a final when the game is replayed; an unknown game gets the 404 page.
(c) a goal posted through `sidearm-ingest` appears on the open page without a reload, and so
    does its correction; once more end to end through the daemon's live sensor (slow).
(b) `dagster-webserver` serving this code location shows the six assets and their lineage, and
    the box score's game-flow picture renders in the asset's metadata.

Playwright's own browser download is never used: `executable_path` points at the system
Chromium. Every server a test starts runs in its own session and is stopped by its pid (SIGTERM,
then SIGKILL after a grace period). Screenshots land in test-artifacts/browser/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from sidearm_assets import settings
from sidearm_assets.local import processes

CHROMIUM = os.environ.get("SIDEARM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts" / "browser"
GAME_LINES = (Path(__file__).parents[1] / "gamestream" / "games" / "default.txt").read_text().splitlines()
SIX_ASSETS = {"raw_gamestream", "reference_players", "reference_teams", "boxscore_doc", "players2", "teams2"}
LIVE_EDGES = {
    ("raw_gamestream", "boxscore_doc"),
    ("reference_teams", "boxscore_doc"),
    ("reference_players", "boxscore_doc"),
}
BIN = Path(sys.executable).parent
WAIT_MS = 60_000  # upper bound for a page to reach a state; the assertions never depend on time


class Server:
    """A server we start in its own session; stopped by its pid (and its session's children)."""

    def __init__(self, cmd: list[str], env: dict, log: Path):
        self.log = log
        self.proc = processes.spawn(cmd, log, env=env)
        self.pid = self.proc.pid

    def wait_for(self, predicate, what: str, timeout: float = 90.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{what}: server exited with {self.proc.returncode}:\n{self.tail()}")
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout:g} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        processes.stop(self.pid)  # the whole session: a webserver's code server goes too
        self.proc.wait(timeout=5)


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless system Chromium with a fresh profile; its processes are checked gone at the end."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's browser with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    before = processes.descendants(os.getpid())
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),  # Playwright passes it as --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1100},
        )
        started = processes.descendants(os.getpid()) - before  # Playwright's driver and the browser
        # The Dagster UI asks local users to join its community once; this is a test, not a user.
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        try:
            yield context
        finally:
            context.close()
    for pid in started:
        if processes.alive(pid):
            processes.stop(pid, group=False)
    assert not [pid for pid in started if processes.alive(pid)]


def _stack_env(embedded_stack: dict, **extra) -> dict:
    env = dict(os.environ)
    env.update(embedded_stack)
    env.update(extra)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _reference(env: dict):
    from sidearm_assets.domain.games import matchup
    from sidearm_assets.resources import ReferenceDatabase

    db = ReferenceDatabase(url=env[settings.SQL_URL.name])
    game = matchup(settings.DEFAULT_GAME_ID, db.games(), db.teams())
    return game, db.players()


# (a) the live box-score page

SHOWN_JS = """() => {
  const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : null; };
  const side = (s) => ({
    name: text(`#${s}-team .name`), conference: text(`#${s}-team .conference`),
    record: text(`#${s}-team .wins-losses`), score: text(`#${s}-team .score`), status: text(`#${s}-team .status`),
    rows: [...document.querySelectorAll(`#${s}-players tbody tr`)].map(tr => ({
      number: tr.dataset.number, off: tr.classList.contains('off-roster'),
      cells: [...tr.cells].map(td => td.textContent.trim()) })),
    totals: [...document.querySelectorAll(`#${s}-players tfoot td`)].map(td => td.textContent.trim()),
    quarters: [...document.querySelectorAll(`#quarters tr[data-side=${s}] td`)].map(td => td.textContent.trim()),
  });
  return { clock: text('#clock'), final: text('#final-badge'), live: text('#live-badge'), seq: text('#seq'),
           home: side('home'), away: side('away') };
}"""


def expected_shown(doc: dict) -> dict:
    """What the page must show for `doc`: its values, formatted, nothing computed."""

    def side(t):
        return {
            "name": t["name"], "conference": t["conference"], "record": f"{t['wins']}-{t['losses']}",
            "score": str(t["score"]), "status": t["status"],
            "rows": [
                {
                    "number": p["number"], "off": not p["on_roster"],
                    "cells": [p["number"], p["name"] if p["on_roster"] else "not on roster",
                              str(p["shots"]), str(p["goals"]), f"{p['pct']:.2f}"],
                }
                for p in t["players"]
            ],
            "totals": ["", "Team", str(t["shots"]), str(t["score"]), f"{t['pct']:.2f}"],
            "quarters": [str(g) for g in t["score_by_quarter"]] + [str(t["score"])],
        }

    return {
        "clock": None if doc["final"] else doc["timestamp"],
        "final": "Final" if doc["final"] else None,
        "live": None if doc["final"] else "Live",
        "seq": str(doc["seq"]),
        "home": side(doc["home"]),
        "away": side(doc["away"]),
    }


def test_live_page_shows_the_document_and_follows_the_stream(embedded_stack, browser, tmp_path):
    from sidearm_assets.domain.live import live_update
    from sidearm_assets.resources import BoxScoreStore

    database = f"browser_{uuid.uuid4().hex[:10]}"  # the session's stack is shared with other tests
    env = _stack_env(embedded_stack, **{settings.MONGO_DB.name: database})
    store = BoxScoreStore(uri=env[settings.MONGO_URI.name], database=database)
    game, players = _reference(env)

    def publish(lines: list[str]) -> dict:
        update = live_update(game, "\n".join(lines).encode(), f"v{len(lines)}", None, players)
        store.upsert(update.doc)
        return store.latest(game.game_id)

    first = publish(GAME_LINES[:30])
    assert not first["final"] and first["seq"] == 30
    web = Server([str(BIN / "sidearm-web"), "--port", "0", "--poll-seconds", "1"], env, tmp_path / "web.log")
    try:
        url = web.wait_for(
            lambda: next(iter(re.findall(r"^(http://127\.0\.0\.1:\d+/)$", web.log.read_text(), re.M)), None),
            "sidearm-web URL",
        )
        page = browser.new_page()
        loads = []
        page.on("load", lambda _: loads.append(page.url))
        resp = page.goto(url + "games/gamestream")
        assert resp.status == 200
        shown = page.evaluate(SHOWN_JS)
        assert shown == expected_shown(first)
        # spot checks against the stream text itself, not only against the document
        assert (shown["home"]["score"], shown["away"]["score"]) == ("6", "5")
        walsh = next(r for r in shown["home"]["rows"] if r["number"] == "6")
        assert walsh["cells"][1:] == ["Connor Walsh", "3", "1", "0.33"]  # lines 9, 17, 20: one goal
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "boxscore_page.png"), full_page=True)

        # A newer version, with a shooter not on the roster: the open page follows without a reload.
        lines = GAME_LINES[:45] + ["45 25:20 205 77 1"]
        second = publish(lines)
        assert second["seq"] == 46
        page.wait_for_function("document.getElementById('seq').textContent === '46'", timeout=WAIT_MS)
        shown = page.evaluate(SHOWN_JS)
        assert shown == expected_shown(second)
        assert loads == [url + "games/gamestream"]  # one page load: re-rendered in place
        unknown = [r for r in shown["away"]["rows"] if r["off"]]
        assert [r["cells"] for r in unknown] == [["77", "not on roster", "1", "1", "1.00"]]
        page.screenshot(path=str(ARTIFACTS / "boxscore_page_updated.png"), full_page=True)

        # The page rendered by the server for the same document shows exactly the same.
        fresh = browser.new_page()
        fresh.goto(url + "games/gamestream")
        assert fresh.evaluate(SHOWN_JS) == shown
        fresh.close()

        # The game ends: the Final badge replaces the clock, and the page keeps listening.
        final = publish(GAME_LINES)
        assert final["final"]
        page.wait_for_selector("#final-badge", timeout=WAIT_MS)
        assert page.evaluate(SHOWN_JS) == expected_shown(final)
        assert page.text_content("#refresh-state") == "final (a correction would still show here)"
        assert page.get_attribute("#boxscore", "data-final") == "true"
        page.screenshot(path=str(ARTIFACTS / "boxscore_page_final.png"), full_page=True)

        # The game is replayed after its final: the live path writes the new play's
        # document and deletes the longer play's; the open page follows, back to Live.
        replay = live_update(game, "\n".join(GAME_LINES[:4]).encode(), "replay-4", None, players).doc
        store.upsert(replay)
        store.collection().delete_many({"game_id": game.game_id, "_id": {"$ne": replay["_id"]}})
        page.wait_for_function("document.getElementById('seq').textContent === '4'", timeout=WAIT_MS)
        assert page.evaluate(SHOWN_JS) == expected_shown(replay)
        assert page.text_content("#live-badge") == "Live"
        assert loads == [url + "games/gamestream"]

        # A browser without EventSource falls back to polling the JSON endpoint, and still follows.
        old_browser = browser.new_page()
        old_browser.add_init_script("delete window.EventSource")
        old_browser.goto(url + "games/gamestream")
        old_browser.wait_for_function("document.getElementById('refresh-state').textContent === 'polling every 1 s'",
                                      timeout=WAIT_MS)
        sixth = publish(GAME_LINES[:6])
        for shown_on in (old_browser, page):
            shown_on.wait_for_function("document.getElementById('seq').textContent === '6'", timeout=WAIT_MS)
            assert shown_on.evaluate(SHOWN_JS) == expected_shown(sixth)
        old_browser.close()

        missing = page.goto(url + "games/no-such-game")
        assert missing.status == 404
        assert page.text_content("h1") == "No such game"
        assert "no-such-game" in page.text_content("#error-message")
        page.screenshot(path=str(ARTIFACTS / "boxscore_page_404.png"))
        page.close()
    finally:
        web.stop()
        from sidearm_assets.storage import clients

        clients.mongo_client(env[settings.MONGO_URI.name]).drop_database(database)
    assert not processes.alive(web.pid)


# (c) a goal posted through the scorer API reaches the open page, no reload

INGEST_TOKEN = "browser-test-scorer-token"


def _ingest_setup(embedded_stack, tmp_path, prefix: str):
    """A bucket, a database and a scheduled game of this test's own; env with a scorer token."""
    from sqlalchemy import insert

    from sidearm_assets.storage import clients, reference_db

    tag = uuid.uuid4().hex[:10]
    game_id, bucket, database = f"{prefix}-{tag}", f"{prefix}-{tag}", f"{prefix}_{tag}"
    env = _stack_env(embedded_stack, **{
        settings.S3_BUCKET.name: bucket, settings.MONGO_DB.name: database,
        settings.INGEST_TOKENS.name: f"game:{game_id}={INGEST_TOKEN}",
    })
    s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                           env[settings.S3_SECRET_KEY.name])
    clients.ensure_bucket(s3, bucket)
    engine = reference_db.make_engine(env[settings.SQL_URL.name])
    with engine.begin() as conn:
        conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=101, away_teamid=205))
    engine.dispose()
    return game_id, env, s3


def _url_of(server: Server, name: str) -> str:
    return server.wait_for(
        lambda: next(iter(re.findall(r"^(http://127\.0\.0\.1:\d+/)$", server.log.read_text(), re.M)), None),
        f"{name} URL",
    )


def _post(url: str, body: dict | None = None, method: str = "POST") -> dict:
    import json

    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=30) as resp:
        assert resp.status in (200, 201)
        return json.loads(resp.read())


SCORE_JS = "() => [document.querySelector('#home-team .score').textContent.trim(), document.querySelector('#away-team .score').textContent.trim()]"


def _wait_score(page, home: int, away: int) -> None:
    page.wait_for_function(f"() => ({SCORE_JS})().join('-') === '{home}-{away}'", timeout=WAIT_MS)


def test_goal_posted_through_the_api_appears_on_the_open_page(embedded_stack, browser, tmp_path):
    """The push part with the live path's own functions standing in for the daemon (the end-to-end
    run through the daemon is the slow test below)."""
    from sidearm_assets.storage import clients
    from sidearm_assets.domain.games import matchup
    from sidearm_assets.domain.live import live_update
    from sidearm_assets.resources import BoxScoreStore, ReferenceDatabase

    game_id, env, s3 = _ingest_setup(embedded_stack, tmp_path, "push")
    db = ReferenceDatabase(url=env[settings.SQL_URL.name])
    game, players = matchup(game_id, db.games(), db.teams()), db.players()
    store = BoxScoreStore(uri=env[settings.MONGO_URI.name], database=env[settings.MONGO_DB.name])

    def live_path() -> dict:
        data, version = clients.get_object(s3, env[settings.S3_BUCKET.name], f"{game_id}.txt")
        doc = live_update(game, data, version.version, None, players).doc
        store.upsert(doc)
        store.collection().delete_many({"game_id": game_id, "_id": {"$ne": doc["_id"]}})  # a correction's leftovers
        return doc

    ingest = Server([str(BIN / "sidearm-ingest"), "--port", "0"], env, tmp_path / "ingest.log")
    web = Server([str(BIN / "sidearm-web"), "--port", "0"], env, tmp_path / "web.log")
    try:
        api, site = _url_of(ingest, "sidearm-ingest"), _url_of(web, "sidearm-web")
        for clock, team, jersey, goal in (("59:40", 101, "6", 1), ("58:20", 205, "9", 0), ("57:02", 205, "12", 1)):
            _post(f"{api}games/{game_id}/events", {"clock": clock, "team_id": team, "jersey": jersey, "goal": goal})
        live_path()
        page = browser.new_page()
        loads = []
        page.on("load", lambda _: loads.append(page.url))
        assert page.goto(f"{site}games/{game_id}").status == 200
        assert page.evaluate(SCORE_JS) == ["1", "1"]
        page.wait_for_function("() => document.getElementById('refresh-state').textContent.startsWith('live')",
                               timeout=WAIT_MS)

        answer = _post(f"{api}games/{game_id}/events",
                       {"clock": "55:10", "team_id": 205, "jersey": "9", "goal": 1, "client_event_id": "tablet:4"})
        doc = live_path()
        _wait_score(page, 1, 2)
        shown = page.evaluate(SHOWN_JS)
        assert shown == expected_shown(doc)
        kieran = next(r for r in shown["away"]["rows"] if r["number"] == "9")
        assert kieran["cells"][1:] == ["Kieran Boyle", "2", "1", "0.50"]
        page.screenshot(path=str(ARTIFACTS / "boxscore_page_pushed_goal.png"), full_page=True)

        # The scorer takes the goal back (a correction): the page follows, still without a reload.
        _post(f"{api}games/{game_id}/events/{answer['event_id']}", method="DELETE")
        live_path()
        _wait_score(page, 1, 1)
        assert loads == [f"{site}games/{game_id}"]
        page.close()
    finally:
        ingest.stop()
        web.stop()
        clients.mongo_client(env[settings.MONGO_URI.name]).drop_database(env[settings.MONGO_DB.name])
    assert not processes.alive(ingest.pid) and not processes.alive(web.pid)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_goal_posted_through_the_api_reaches_the_page_through_the_daemon(embedded_stack, browser, tmp_path):
    """End to end: sidearm-ingest -> bucket -> the daemon's live sensor -> MongoDB -> pushed to the page."""
    from sidearm_assets.storage import clients
    from sidearm_assets.local.dagster_processes import start_dagster
    from sidearm_assets.local.local_instance import write_local_instance

    game_id, env, s3 = _ingest_setup(embedded_stack, tmp_path, "e2e-push")
    env["DAGSTER_HOME"] = str(write_local_instance(tmp_path / "dagster_home"))
    daemon = start_dagster(tmp_path, env)  # a code server and the daemon against it
    ingest = Server([str(BIN / "sidearm-ingest"), "--port", "0"], env, tmp_path / "ingest.log")
    web = Server([str(BIN / "sidearm-web"), "--port", "0"], env, tmp_path / "web.log")
    try:
        api, site = _url_of(ingest, "sidearm-ingest"), _url_of(web, "sidearm-web")
        _post(f"{api}games/{game_id}/events", {"clock": "59:40", "team_id": 101, "jersey": "6", "goal": 1})
        page = browser.new_page()
        # the first document comes from the daemon: the page exists once it is there
        deadline = time.monotonic() + 240
        while page.goto(f"{site}games/{game_id}").status != 200:
            assert time.monotonic() < deadline, f"no document from the daemon:\n{(tmp_path / 'daemon.log').read_text()[-3000:]}"
            time.sleep(0.3)
        loads = [page.url]
        page.on("load", lambda _: loads.append(page.url))
        assert page.evaluate(SCORE_JS) == ["1", "0"]
        _post(f"{api}games/{game_id}/events", {"clock": "58:00", "team_id": 205, "jersey": "12", "goal": 1})
        _wait_score(page, 1, 1)
        _post(f"{api}games/{game_id}/events", {"clock": "57:00", "team_id": 205, "jersey": "9", "goal": 1})
        _wait_score(page, 1, 2)
        assert loads == [f"{site}games/{game_id}"]
        page.close()
    finally:
        for server in (web, ingest):
            server.stop()
        daemon.stop()
        clients.mongo_client(env[settings.MONGO_URI.name]).drop_database(env[settings.MONGO_DB.name])


# (b) the Dagster UI

NODES_JS = """() => [...document.querySelectorAll('svg foreignObject')]
  .filter(f => !f.classList.contains('group') && f.textContent)
  .map(f => { const r = f.getBoundingClientRect();
    return { text: f.textContent, x: +f.getAttribute('x'), y: +f.getAttribute('y'),
             w: +f.getAttribute('width'), h: +f.getAttribute('height'),
             onScreen: r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight }; })"""
EDGES_JS = """() => [...document.querySelectorAll('svg path[stroke*="lineage-edge"]')].map(p => p.getAttribute('d'))"""
GRAPH_HEIGHT_JS = """() => { const r = [...document.querySelectorAll('svg foreignObject.group')]
  .map(f => f.getBoundingClientRect()); return Math.max(...r.map(b => b.bottom)) - Math.min(...r.map(b => b.top)); }"""
GROUPS_JS = """() => [...document.querySelectorAll('svg foreignObject.group')].map(f => f.textContent.trim())"""


def declared_graph():
    """Assets and edges as the code location declares them (public `Definitions` API)."""
    from sidearm_assets.definitions import defs

    specs = defs.resolve_all_asset_specs()
    names = {s.key.to_user_string() for s in specs}
    edges = {(d.asset_key.to_user_string(), s.key.to_user_string()) for s in specs for d in s.deps}
    return names, edges, specs


def graph_from_page(nodes: list[dict], paths: list[str], names: set[str]) -> tuple[dict, set]:
    """Name each node box, then each edge by the boxes its two ends touch (right side -> left side)."""
    boxes = {}
    for n in nodes:
        matches = [name for name in names if n["text"].startswith(name)]
        if matches:
            boxes[max(matches, key=len)] = n
    edges = set()
    for d in paths:
        numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
        (sx, sy), (ex, ey) = numbers[:2], numbers[-2:]

        def nearest(px, py, side):
            best = None
            for name, b in boxes.items():
                if not (b["y"] - 2 <= py <= b["y"] + b["h"] + 2):
                    continue
                gap = abs((b["x"] + b["w"] if side == "right" else b["x"]) - px)
                if gap <= 15 and (best is None or gap < best[0]):
                    best = (gap, name)
            return best[1] if best else None

        edges.add((nearest(sx, sy, "right"), nearest(ex, ey, "left")))
    return boxes, edges


def test_dagster_ui_shows_the_six_assets_their_lineage_and_the_game_flow(embedded_stack, browser, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from sidearm_assets.storage import clients
    from sidearm_assets.local.local_stack import free_port

    names, declared_edges, specs = declared_graph()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    bucket, database = f"ui-{uuid.uuid4().hex[:10]}", f"ui_{uuid.uuid4().hex[:10]}"
    env = _stack_env(
        embedded_stack, DAGSTER_HOME=str(home),
        **{settings.S3_BUCKET.name: bucket, settings.MONGO_DB.name: database},
    )
    s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                           env[settings.S3_SECRET_KEY.name])
    clients.ensure_bucket(s3, bucket)
    s3.put_object(Bucket=bucket, Key="gamestream.txt", Body="\n".join(GAME_LINES[:40]).encode())
    # One box-score materialization through the CLI, so the UI has metadata to show.
    for cmd in (
        [str(BIN / "sidearm-games"), "add", "gamestream"],
        [str(BIN / "dagster"), "asset", "materialize", "-m", "sidearm_assets", "--partition", "gamestream",
         "--select", "raw_gamestream,reference_players,reference_teams,boxscore_doc"],
    ):
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{cmd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    port = free_port()
    ui = Server([str(BIN / "dagster-webserver"), "-m", "sidearm_assets", "-h", "127.0.0.1", "-p", str(port)],
                env, tmp_path / "webserver.log")
    base = f"http://127.0.0.1:{port}"
    try:
        ui.wait_for(lambda: _http_ok(base + "/server_info"), "dagster-webserver /server_info", timeout=120)
        page = browser.new_page()
        page.set_viewport_size({"width": 1700, "height": 1100})
        groups = sorted({s.group_name for s in specs})
        graph_url = f"{base}/asset-groups?expanded=" + ",".join(f"global@global:{g}" for g in groups)
        rendered = f"() => ({NODES_JS})().length >= {len(names)} && ({EDGES_JS})().length >= {len(declared_edges)}"
        # The graph opens zoomed to fit its width and draws only the nodes on screen: make the window
        # taller until every node is drawn, then tall enough for the whole graph (and the screenshot).
        # With the lake's group the open graph is ~3,400 px tall at this width: windows of 1,100 and
        # 2,200 px only ever waited out their 15 s each, so the first try is 4,400 px.
        for height in (4400, 8800):
            page.set_viewport_size({"width": 1700, "height": height})
            page.goto(graph_url)
            try:
                page.wait_for_function(rendered, timeout=WAIT_MS if height == 8800 else 15_000)
                break
            except PlaywrightTimeout:
                continue
        height = page.evaluate(GRAPH_HEIGHT_JS)
        page.set_viewport_size({"width": 1700, "height": max(1100, int(height) + 260)})
        page.goto(graph_url)
        page.wait_for_function(rendered, timeout=WAIT_MS)
        page.wait_for_function(f"() => ({NODES_JS})().every(n => n.onScreen)", timeout=WAIT_MS)
        page.wait_for_function(  # node statuses filled in, for a screenshot worth keeping
            f"() => ({NODES_JS})().every(n => !n.text.includes('Loading...'))", timeout=WAIT_MS
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dagster_asset_graph.png"))
        boxes, shown_edges = graph_from_page(page.evaluate(NODES_JS), page.evaluate(EDGES_JS), names)

        assert set(page.evaluate(GROUPS_JS)) == set(groups) >= {"live", "reference", "final"}
        assert set(boxes) == names >= SIX_ASSETS, f"assets shown {sorted(boxes)}, declared {sorted(names)}"
        assert [n for n, b in boxes.items() if not b["onScreen"]] == []
        assert shown_edges == declared_edges
        assert LIVE_EDGES <= shown_edges
        assert {dst for _, dst in shown_edges} >= {"boxscore_doc", "players2", "teams2"}

        # The box score's game-flow picture, from the metadata of the materialization above.
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{base}/assets/boxscore_doc?partition=gamestream")
        row = page.locator("tr", has_text="game_flow")
        row.get_by_text("Show Markdown").click()
        image = page.locator('img[alt^="game flow"]')
        image.wait_for(timeout=WAIT_MS)
        page.wait_for_function(
            "() => { const i = document.querySelector('img[alt^=\"game flow\"]'); return i && i.complete; }",
            timeout=WAIT_MS,
        )
        assert image.get_attribute("src").startswith("data:image/svg+xml;base64,")
        assert page.evaluate("document.querySelector('img[alt^=\"game flow\"]').naturalWidth") == 520
        assert "Hartwell Hawks" in image.get_attribute("alt")
        assert page.get_by_text("Goals: 53:50 Millbrook Miners 0-1").count() == 1
        page.screenshot(path=str(ARTIFACTS / "dagster_game_flow.png"))
        page.close()
    finally:
        ui.stop()
        clients.mongo_client(env[settings.MONGO_URI.name]).drop_database(database)
    assert not processes.alive(ui.pid)


def test_every_asset_has_a_description_a_group_and_a_kind():
    """What the UI shows beside each asset: one-line description, group, storage kind."""
    _, _, specs = declared_graph()
    by_name = {s.key.to_user_string(): s for s in specs}
    assert set(by_name) >= SIX_ASSETS
    for name, spec in by_name.items():  # the six below, and every asset added since (the lake's)
        assert spec.group_name and spec.kinds and spec.description and "\n" not in spec.description.strip(), name
    expected = {
        "raw_gamestream": ("live", "s3"),
        "boxscore_doc": ("live", "mongodb"),
        "reference_players": ("reference", "sql"),
        "reference_teams": ("reference", "sql"),
        "players2": ("final", "spark"),
        "teams2": ("final", "spark"),
    }
    for name, (group, kind) in expected.items():
        spec = by_name[name]
        assert spec.group_name == group, name
        assert kind in spec.kinds, (name, spec.kinds)
        assert spec.description and "\n" not in spec.description.strip(), name
