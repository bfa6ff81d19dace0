"""Put -> page updated: from each S3 put of the game object to the open page showing it, in
headless Chromium, while other clients hold push connections to the same game.

Self-contained: starts the embedded stack and the Dagster daemon (bench/harness.py) and
`sidearm-web` (uvicorn), opens `--clients` server-sent-event connections to the game (each
reading every event, like a page would), opens the game's page in Debian's Chromium (Playwright,
never its own browser download), then puts `--versions` versions of the default game, one every
`--every` seconds, as the simulator does. For each version the page records when it rendered
it (`window.sidearmRendered`, the browser's clock, the same machine's); the latency runs from
just before the put to that moment, so it holds the live path (sensor -> MongoDB) and the push
(watcher -> page). A version not shown within 10 s counts as missed.

    .venv/bin/python bench/page_push.py [--clients 200] [--versions 40] [--every 0.4]

Last line: versions=<n> p50_s= p95_s= max_s= missed= clients=<connected> client_events_min=
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from pathlib import Path

from harness import embedded_daemon

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.storage import clients

CHROMIUM = os.environ.get("SIDEARM_TEST_CHROMIUM", "/usr/bin/chromium")
GAME_ID = settings.DEFAULT_GAME_ID
LINES = (Path(__file__).parents[1] / "gamestream" / "games" / "default.txt").read_text().splitlines()
BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Holders(threading.Thread):
    """`count` push connections to one game, each reading and counting every event it is sent."""

    def __init__(self, host: str, port: int, game_id: str, count: int):
        super().__init__(daemon=True)
        self.host, self.port, self.game_id, self.count = host, port, game_id, count
        self.events = [0] * count
        self.connected = 0
        self.failed: list[str] = []
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def _hold(self, n: int):
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(f"GET /api/games/{self.game_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise ConnectionError(head[:60])
            self.connected += 1
            if self.connected == self.count:
                self.ready.set()
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed by the server")
                self.events[n] += chunk.count(b"event: boxscore")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported at the end
            self.failed.append(f"{type(exc).__name__}: {exc}")
            self.ready.set()

    def run(self):
        self.loop = asyncio.new_event_loop()

        async def all_of_them():
            await asyncio.gather(*(self._hold(n) for n in range(self.count)), return_exceptions=True)

        try:
            self.loop.run_until_complete(all_of_them())
        except RuntimeError:
            pass  # stopped

    def stop(self):
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)


class StoreWatcher(threading.Thread):
    """When each `seq` of the game was first readable in MongoDB (the live path's share of the lag)."""

    def __init__(self, collection, game_id: str, interval: float = 0.01):
        super().__init__(daemon=True)
        self.collection, self.game_id, self.interval = collection, game_id, interval
        self.first_seen: dict[int, float] = {}
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            doc = self.collection.find_one({"game_id": self.game_id}, sort=[("seq", -1)], projection={"seq": 1})
            if doc is not None:
                self.first_seen.setdefault(doc["seq"], time.time())
            time.sleep(self.interval)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="other push connections held open")
    parser.add_argument("--versions", type=int, default=40)
    parser.add_argument("--every", type=float, default=0.4, help="seconds between two puts")
    parser.add_argument("--keep-dir", help="work in this folder and keep it (logs)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2

    with embedded_daemon(args.keep_dir, "sidearm-push-bench-") as (work, env):
        s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                               env[settings.S3_SECRET_KEY.name])
        bucket = env[settings.S3_BUCKET.name]
        key = settings.key_for_game(GAME_ID)
        clients.ensure_bucket(s3, bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(LINES[:1]) + "\n").encode())
        collection = clients.mongo_client(env[settings.MONGO_URI.name])[env[settings.MONGO_DB.name]]["boxscores"]
        processes.wait_until(lambda: collection.find_one({"game_id": GAME_ID}), timeout=180,
                             what="the live sensor's first document")

        web = processes.spawn([str(BIN / "sidearm-web"), "--port", "0"], work / "web.log", env=env)
        holders = None
        try:
            port = int(processes.wait_until(
                lambda: next(iter(re.findall(r"^http://127\.0\.0\.1:(\d+)/$", (work / "web.log").read_text(), re.M)), None),
                timeout=60, what="sidearm-web URL"))
            holders = Holders("127.0.0.1", port, GAME_ID, args.clients)
            holders.start()
            holders.ready.wait(60)

            from playwright.sync_api import sync_playwright

            lags: list[float] = []
            store_lags: list[float] = []  # put -> readable in MongoDB
            push_lags: list[float] = []  # readable in MongoDB -> rendered on the page
            missed = 0
            store = StoreWatcher(collection, GAME_ID)
            store.start()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--headless"])
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/games/{GAME_ID}")
                page.wait_for_function("() => document.getElementById('refresh-state').textContent.startsWith('live')",
                                       timeout=30_000)
                for k in range(2, 2 + min(args.versions, len(LINES) - 1)):
                    body = ("\n".join(LINES[:k]) + "\n").encode()
                    put_at = time.time()
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
                    try:
                        page.wait_for_function(f"() => window.sidearmRendered && window.sidearmRendered.seq >= {k}",
                                               timeout=10_000, polling=10)
                        rendered = page.evaluate("() => window.sidearmRendered")
                        lags.append(max(0.0, rendered["at"] / 1000 - put_at))
                        seen = [t for seq, t in store.first_seen.items() if seq >= k and t >= put_at]
                        if seen:
                            store_lags.append(min(seen) - put_at)
                            push_lags.append(max(0.0, rendered["at"] / 1000 - min(seen)))
                    except Exception:  # noqa: BLE001 - a version never shown
                        missed += 1
                    time.sleep(max(0.0, put_at + args.every - time.time()))
                browser.close()
            store.stop_event.set()
            time.sleep(0.5)
            events = holders.events
            import json
            import urllib.request

            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
                push = json.loads(resp.read())["push"]
            print(f"server: {push['watchers']} watcher(s) for {push['clients']} open connection(s), "
                  f"{push['reads']} MongoDB reads in all", file=sys.stderr)
            print(f"{len(lags) + missed} versions put every {args.every:g} s; {holders.connected} other push "
                  f"connections ({len(holders.failed)} failed {holders.failed[:3]}), events each "
                  f"min={min(events)} max={max(events)}; logs in {work}", file=sys.stderr)
            print(f"of which put -> MongoDB (the live path, read every 0.01 s): p50={percentile(store_lags, 0.5):.3f} "
                  f"p95={percentile(store_lags, 0.95):.3f}; MongoDB -> page (the push): p50={percentile(push_lags, 0.5):.3f} "
                  f"p95={percentile(push_lags, 0.95):.3f} s", file=sys.stderr)
            print(f"versions={len(lags) + missed} p50_s={percentile(lags, 0.5):.3f} p95_s={percentile(lags, 0.95):.3f} "
                  f"max_s={max(lags, default=float('nan')):.3f} missed={missed} clients={holders.connected} "
                  f"client_events_min={min(events)}")
        finally:
            if holders is not None:
                holders.stop()
            processes.stop(web.pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
