"""The Dagster UI's asset pages after a season: load time and the GraphQL requests each page makes.

Self-contained. Builds the state with bench/season.py's own run (a league of `--teams` teams, a
season of `--season` games counted by the backfill, then a game day of `--day-games` games through
the daemon), keeping its work folder: the stack's `sidearmdb` and DAGSTER_HOME survive the stack's
stop. Then every game of the schedule is added to the `games` dynamic partitions, as a season of
live games would have left them, so `boxscore_doc`'s page sees the season's partitions.

Then it starts `dagster-webserver -m sidearm_assets` on a free loopback port with that DAGSTER_HOME
and the stack's settings (DIR/stack/sidearm.env; the S3, Mongo and Spark servers stay stopped: the
asset pages read only Dagster's storage), and loads each asset page in headless Debian Chromium
driven by Playwright: cold (first load, fresh browser profile) and warm (the same page loaded
again). For each load it records every /graphql request with its operation name, duration (request
start to response end, Playwright's request timing) and response size, and two times from the
navigation's start: `shown_s`, until the page shows its asset (the overview with the latest
materialization's metadata table; the partitions tab with its count), and `load_s`, until the
last request of the page's first burst ended (network idle: icons and late queries included).

    nice -n 5 .venv/bin/python bench/ui_pages.py [--teams 1000 --season 5000 --day-games 5] [--state DIR]

`--state DIR` reuses a work folder an earlier run (or `bench/season.py --keep-dir DIR`) left.
One line per page and load; last line:
pages= worst_page_s= worst_shown_s= worst_graphql_s= slowest_operation= partitions= season_games=
Each run appends its figures to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.local.servers import free_port
from sidearm_assets.local.stack_state import HOST, env_path, sqlite_path

RESULTS = Path(__file__).with_name("results.jsonl")
BIN = Path(sys.executable).parent
ANALYTICS = ("scoring_leaders", "team_shooting_by_quarter", "lead_changes", "clutch_scorers")
# (page, path): each asset's overview, and boxscore_doc's partitions tab (every game of the season)
PAGES = (*((a, f"/assets/{a}") for a in ("players2", "teams2", "boxscore_doc", *ANALYTICS)),
         ("boxscore_doc partitions", "/assets/boxscore_doc?view=partitions"))
CHROMIUM = os.environ.get("SIDEARM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-quic", "--disable-component-update", "--disable-sync"]
TARGET_S = 1.0
# Records in window.__uiShown (ms after the navigation's start) when the page first shows its asset:
# the overview with its latest materialization's metadata table, or the partitions tab's count.
SHOWN_JS = """(() => {
  const timer = setInterval(() => {
    const text = document.body ? document.body.innerText : '';
    const shown = location.search.includes('view=partitions')
      ? /[\\d,]+ Partitions/.test(text)
      : text.includes('Latest materialization') && document.querySelector('table tbody tr td') !== null;
    if (shown) { window.__uiShown = performance.now(); clearInterval(timer); }
  }, 20);
})();"""
PAGE_TIMEOUT_MS = 120_000


def build_state(args, work: Path) -> None:
    """bench/season.py's run, its work folder kept in `work` (its figures go to results.jsonl too)."""
    cmd = [sys.executable, str(Path(__file__).with_name("season.py")), "--teams", str(args.teams),
           "--season", str(args.season), "--day-games", str(args.day_games), "--seed", str(args.seed),
           "--put-interval", args.put_interval, "--keep-dir", str(work)]
    print(f"building the season: {' '.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True)


def stack_env(work: Path) -> dict[str, str]:
    """The stack's settings and DAGSTER_HOME as sidearm.env wrote them."""
    env = dict(os.environ)
    for line in env_path(work / "stack").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def add_season_partitions(env: dict) -> tuple[int, int]:
    """Every scheduled game as a partition of `games`; returns (added, partitions)."""
    from dagster import DagsterInstance
    from sqlalchemy import select

    from sidearm_assets.partitions import games_partitions
    from sidearm_assets.storage import reference_db

    engine = reference_db.make_engine(env[settings.SQL_URL.name])
    try:
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(reference_db.games.c.game_id))]
    finally:
        engine.dispose()
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with DagsterInstance.get() as instance:
        have = set(instance.get_dynamic_partitions(games_partitions.name))
        new = [g for g in ids if g not in have]
        if new:
            instance.add_dynamic_partitions(games_partitions.name, new)
        return len(new), len(instance.get_dynamic_partitions(games_partitions.name))


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _location_loaded(base: str) -> bool:
    body = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries { "
                       "loadStatus locationOrLoadError { __typename } } } } }"}).encode()
    req = urllib.request.Request(base + "/graphql", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5) as resp:
            entries = json.loads(resp.read())["data"]["workspaceOrError"]["locationEntries"]
    except (urllib.error.URLError, OSError, KeyError, TypeError, ValueError):
        return False
    return bool(entries) and all(e["loadStatus"] == "LOADED" and (e["locationOrLoadError"] or {}).get("__typename")
                                 == "RepositoryLocation" for e in entries)


@contextmanager
def webserver(work: Path, env: dict):
    """`dagster-webserver -m sidearm_assets` on a free port until its code location has loaded;
    stopped by pid (its session, with the code server it started; SIGKILL after the grace)."""
    port = free_port()
    log = work / "webserver.log"
    proc = processes.spawn([str(BIN / "dagster-webserver"), "-m", "sidearm_assets", "-h", HOST, "-p", str(port)],
                           log, env=env, cwd=work)
    base = f"http://{HOST}:{port}"
    try:
        processes.wait_until(lambda: proc.poll() is not None or (_http_ok(base + "/server_info") and _location_loaded(base)),
                             timeout=180, interval=0.5, what=f"dagster-webserver on {base} (log {log})")
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {proc.returncode}; log {log}")
        print(f"dagster-webserver pid {proc.pid} on {base}, log {log}", file=sys.stderr)
        yield base
    finally:
        processes.stop(proc.pid)


@contextmanager
def browser():
    """A headless system Chromium with a fresh profile (Playwright's own browser is never used)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="ui-pages-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        # The Dagster UI asks local users to join its community once; this is a benchmark, not a user.
        context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
        context.add_init_script(SHOWN_JS)
        try:
            yield context
        finally:
            context.close()


def _operation(request) -> str:
    try:
        body = json.loads(request.post_data or "{}")
    except ValueError:
        return "?"
    return body.get("operationName") or "?"


def load(page, url: str) -> dict:
    """One navigation to `url`: until network idle; when the asset was shown, when the last request
    ended, and every /graphql request it made."""
    finished = []

    def on_finished(request):
        finished.append(request)

    page.on("requestfinished", on_finished)
    try:
        page.goto(url, wait_until="networkidle", timeout=PAGE_TIMEOUT_MS)
        origin = page.evaluate("performance.timeOrigin")  # ms since the epoch, the navigation's start
        shown = page.evaluate("window.__uiShown || null")
    finally:
        page.remove_listener("requestfinished", on_finished)
    calls, last_end = [], 0.0
    for req in finished:
        t = req.timing
        end = t["startTime"] + t["responseEnd"] if t["responseEnd"] >= 0 else t["startTime"]
        last_end = max(last_end, end - origin)
        if "/graphql" in req.url:
            calls.append({"op": _operation(req), "s": round(max(t["responseEnd"], 0) / 1000, 3),
                          "kb": round(req.sizes()["responseBodySize"] / 1024, 1), "body": req.post_data})
    calls.sort(key=lambda c: -c["s"])
    return {"shown_s": round(shown / 1000, 3) if shown else None, "load_s": round(last_end / 1000, 3),
            "graphql": calls}


def replay(base: str, calls: list[dict]) -> None:
    """Each request again, alone and one after the other (`alone_s`): what the webserver spends on
    it when it is not sharing its process with the page's other requests."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for call in calls:
        req = urllib.request.Request(base + "/graphql", data=(call.pop("body") or "").encode(),
                                     headers={"Content-Type": "application/json"})
        started = time.monotonic()
        with opener.open(req, timeout=60) as resp:
            resp.read()
        call["alone_s"] = round(time.monotonic() - started, 3)


def measure(context, base: str, name: str, path: str) -> dict:
    """Cold (first) and warm (second) load of one asset page; the partitions the page says."""
    page = context.new_page()
    try:
        cold = load(page, base + path)
        warm = load(page, base + path)
        said = re.findall(r"([\d,]+) Partitions", page.inner_text("body"))
    finally:
        page.close()
    for f in (cold, warm):
        replay(base, f["graphql"])
    return {"page": name, "partitions_shown": int(said[0].replace(",", "")) if said else None, "cold": cold, "warm": warm}


def describe(page: dict, which: str) -> str:
    f = page[which]
    calls = f["graphql"]
    top = ", ".join(f"{c['op']} {c['s']:.2f}s (alone {c['alone_s']:.2f}s)/{c['kb']:.0f}KB" for c in calls[:3])
    extra = f" partitions_shown={page['partitions_shown']}" if page["partitions_shown"] else ""
    return (f"{page['page']:<24} {which:<4} shown_s={f['shown_s']} load_s={f['load_s']:.2f} graphql={len(calls)} "
            f"graphql_kb={sum(c['kb'] for c in calls):.0f}{extra} slowest: {top}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, default=1000)
    parser.add_argument("--season", type=int, default=5000, help="games already played (the backfill)")
    parser.add_argument("--day-games", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--put-interval", default="0.2,0.5", help="seconds between two puts of a day game")
    parser.add_argument("--state", help="reuse this work folder (left by an earlier run or season.py --keep-dir)")
    parser.add_argument("--keep-dir", help="build the state here and keep it (default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    if args.state:
        work = Path(args.state).resolve()
    else:
        work = Path(args.keep_dir or tempfile.mkdtemp(prefix="sidearm-ui-pages-")).resolve()
        build_state(args, work)
    try:
        env = stack_env(work)
        added, partitions = add_season_partitions(env)
        from sidearm_assets.storage import final_tables_db, reference_db

        engine = reference_db.make_engine(f"sqlite:///{sqlite_path(work / 'stack')}")
        state = final_tables_db.read_state(engine)
        engine.dispose()
        season_games = state["completed_games"] if state else 0
        print(f"{partitions} partitions of games ({added} added), {season_games} games counted", file=sys.stderr)

        pages = []
        with webserver(work, env) as base, browser() as context:
            context.new_page().close()  # the browser's own start is not a page's
            for name, path in PAGES:
                pages.append(measure(context, base, name, path))
                for which in ("cold", "warm"):
                    print(describe(pages[-1], which), flush=True)
    finally:
        if not args.state and not args.keep_dir:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    both = ("cold", "warm")
    loads = [(p[w]["load_s"], p["page"], w) for p in pages for w in both]
    shown = [(p[w]["shown_s"] if p[w]["shown_s"] is not None else float("inf"), p["page"], w) for p in pages for w in both]
    calls = [(c["s"], c["op"], p["page"], w) for p in pages for w in both for c in p[w]["graphql"]]
    alone = [(c["alone_s"], c["op"], p["page"]) for p in pages for w in both for c in p[w]["graphql"]]
    worst_load, worst_shown, worst_call, worst_alone = max(loads), max(shown), max(calls), max(alone)
    line = {
        "pages": len(pages), "worst_page_s": worst_load[0], "worst_shown_s": worst_shown[0],
        "worst_graphql_s": worst_call[0], "slowest_operation": worst_call[1], "partitions": partitions,
        "season_games": season_games,
    }
    record = {"bench": "ui_pages", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **line,
              "worst_page": f"{worst_load[1]} ({worst_load[2]})", "worst_shown": f"{worst_shown[1]} ({worst_shown[2]})",
              "slowest_operation_on": f"{worst_call[2]} ({worst_call[3]})",
              "slowest_alone": f"{worst_alone[1]} {worst_alone[0]} s on {worst_alone[2]}",
              "over_1s": [f"{a} ({w})" for s, a, w in loads if s > TARGET_S],
              "shown_over_1s": [f"{a} ({w})" for s, a, w in shown if s > TARGET_S],
              "pages_s": {p["page"]: {w: {"shown_s": p[w]["shown_s"], "load_s": p[w]["load_s"]} for w in both} for p in pages},
              "graphql": {p["page"]: {w: p[w]["graphql"] for w in both} for p in pages}}
    with RESULTS.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(" ".join(f"{k}={v}" for k, v in line.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
