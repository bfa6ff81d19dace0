"""Load test of the scorer ingest API: many games posting at once, like a weekend of scorers' tables.

Self-contained: starts the embedded stack, schedules `--games` games, starts the Dagster daemon
(bench/harness.py: measuring begins after the live sensor's first tick), starts `sidearm-ingest`
(uvicorn) with a scorer token, and posts `--events` events per game from one scorer per game,
all games at once, at `--rate` events/s in all (open loop: each post is sent on its schedule
whatever the earlier ones took, so the latencies include any queueing). A share of the posts (`--retry-share`) is sent a second time with the same client
event id, as a scorer's table does after a dropped connection.

Afterwards every game's object is read from the bucket and parsed with the pipeline's parser:
`lost_events` are accepted posts whose line is not there, `duplicate_events` lines beyond one per
accepted post. With the daemon running (default), it also waits for each game's box score to
reflect all its lines and reports how long after the game's last accepted post that took.

    .venv/bin/python bench/ingest_load.py [--games 50] [--events 40] [--rate 250] [--processes 1] [--no-daemon]
                                          [--samples FILE]

It prints each process's CPU time per request (API, S3 server, MongoDB server, the code server
with the live watcher, the daemon, the load generator), and `--samples FILE` writes every request
(send time, latency, status) for a look at when the slow ones were sent.

`--processes N` runs N API processes on the same bucket and sends each game's posts to them in
turn, so every game is written by all of them at once (conditional puts racing across processes).

Last line: requests=<n> rps=<accepted events/s> p50_ms= p99_ms= lost_events= duplicate_events= refused=<answers not 200/201>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.domain.stream import parse_stream

sys.path.insert(0, str(Path(__file__).parent))
from harness import cpu_seconds, process_tree  # noqa: E402 - bench/ beside this script

TOKEN = "bench-scorer-token-" + uuid.uuid4().hex[:8]
BIN = Path(sys.executable).parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))
    return ordered[index]


class Connection:
    """A keep-alive HTTP/1.1 connection over asyncio streams: the client stays light on a 2-core box."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(
                    f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
                )
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                payload = await self.reader.readexactly(length)
                return status, json.loads(payload)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


class Pool:
    """Kept connections to one API process; a post takes an idle one or opens another."""

    def __init__(self, host: str, port: int):
        self.host, self.port, self.idle = host, port, []

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        conn = self.idle.pop() if self.idle else Connection(self.host, self.port)
        try:
            return await conn.request(method, path, body)
        finally:
            self.idle.append(conn)


async def post(pools, turn, game_id, cid, body, sends, out):
    """One post (and its resend with the same client id, after the first answer)."""
    loop = asyncio.get_running_loop()
    for resend in range(sends):
        sent = loop.time()
        pool = pools[(turn + resend) % len(pools)]
        try:
            status, answer = await pool.request("POST", f"/games/{game_id}/events", body)
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            status, answer = 0, {"error": type(exc).__name__}
        out.append((game_id, cid, resend, status, answer, loop.time() - sent, time.monotonic()))


async def scorer(pools, game_id, events, interval, start, retry_share, out, rng):
    """One game's table: `events` posts, one every `interval` s from `start` (loop time), each sent
    on its schedule whatever the earlier ones took, spread over the API processes in turn as a load
    balancer without stickiness does (a resend goes to the next process, as after a dropped connection)."""
    loop = asyncio.get_running_loop()
    turn = rng.randrange(len(pools))
    team_jerseys = [(101, "6"), (101, "12"), (205, "9"), (205, "22")]
    posts = []
    for n in range(events):
        await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
        team, jersey = rng.choice(team_jerseys)
        clock = f"{59 - n // 60:02d}:{59 - n % 60:02d}"
        cid = f"{game_id}:{n}"
        body = json.dumps({"clock": clock, "team_id": team, "jersey": jersey, "goal": rng.randint(0, 1),
                           "client_event_id": cid}).encode()
        sends = 2 if rng.random() < retry_share else 1
        posts.append(asyncio.create_task(post(pools, turn + n, game_id, cid, body, sends, out)))
    await asyncio.gather(*posts)


async def load(host, ports, games, events, rate, retry_share, seed):
    out: list = []
    rng = random.Random(seed)
    interval = len(games) / rate  # per game, so all games together post `rate` events/s
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    await asyncio.gather(*(
        scorer([Pool(host, port) for port in ports], g, events, interval, start + i * interval / len(games), retry_share, out,
               random.Random(rng.random()))
        for i, g in enumerate(games)
    ))
    return out, loop.time() - start


@contextmanager
def client_gc_paused():
    """No garbage collection in the load generator while it measures. It stands in for 50 scorers'
    devices; its own full collections (boto3's models and every answer so far: 66-95 ms) held
    every request in flight and showed up as the API's latency, in the same second of each run."""
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def write_counters(port: int) -> dict:
    """An API process's write counters (its /healthz, with a token)."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as resp:
        return json.loads(resp.read()).get("counters", {})


def process_kind(argv: list[str]) -> str | None:
    """What a process of the run is, from its arguments (not from paths: the work folder's name
    may contain any of these words)."""
    names = [Path(a).name for a in argv[:3]]
    if "sidearm-ingest" in names:
        return "ingest"
    if "sidearm_assets.local.local_s3" in argv[:3]:
        return "s3"
    if "nx-27017" in names:
        return "mongo"
    if "dagster-daemon" in names:
        return "daemon"
    if argv[1:4] == ["-m", "dagster", "api"] or ("dagster" in names and "code-server" in argv[:4]):
        return "watcher"  # the code server and its gRPC child, where the live watcher runs
    return None


def stack_processes(work: Path) -> dict[str, list[int]]:
    """This run's processes by kind: the stack's servers (from its state file) and every
    descendant of this process (the code server and its gRPC child, the daemon, the API)."""
    from sidearm_assets.local.local_stack import read_state

    found: dict[str, list[int]] = {}
    for name, service in ((read_state(work / "stack") or {}).get("services") or {}).items():
        if service.get("pid"):
            found.setdefault(name, []).append(service["pid"])
    for pid in process_tree(os.getpid())[1:]:
        try:
            kind = process_kind(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"))
        except OSError:
            continue
        if kind and pid not in found.get(kind, []):
            found.setdefault(kind, []).append(pid)
    return found


@contextmanager
def ingest_servers(env: dict, work: Path, count: int):
    """`count` sidearm-ingest processes on one bucket: [(port, pid)]."""
    procs = []
    try:
        for n in range(count):
            log = work / f"ingest-{n}.log"
            procs.append((processes.spawn([str(BIN / "sidearm-ingest"), "--port", "0"], log, env=env), log))
        yield [(int(processes.wait_until(
            lambda: next(iter(re.findall(r"^http://127\.0\.0\.1:(\d+)/$", log.read_text(), re.M)), None),
            timeout=60, what="sidearm-ingest URL")), proc.pid) for proc, log in procs]
    finally:
        for proc, _ in procs:
            processes.stop(proc.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=50)
    parser.add_argument("--events", type=int, default=40, help="events per game")
    parser.add_argument("--rate", type=float, default=250.0, help="events/s over all games (open loop)")
    parser.add_argument("--retry-share", type=float, default=0.05, help="share of posts sent twice (same client id)")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to wait for the box scores after the load")
    parser.add_argument("--processes", type=int, default=1,
                        help="API processes on the same bucket, every game's posts spread over all of them")
    parser.add_argument("--no-daemon", action="store_true", help="the API and the stack only, no live sensor")
    parser.add_argument("--verify-writes", choices=("0", "1"), default=None,
                        help="SIDEARM_INGEST_VERIFY_WRITES for the API (default: the setting's, 0)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep-dir", help="work in this folder and keep it (logs)")
    parser.add_argument("--samples", help="write one JSON line per request here: sent_at_s (from the first send), ms, status, game, "
                        "sent_monotonic (time.monotonic(), to line up with other records of the run)")
    args = parser.parse_args()

    from harness import daemon, embedded_stack

    with embedded_stack(args.keep_dir, "sidearm-ingest-bench-") as (work, env), ExitStack() as running:
        # The day's games are scheduled before the daemon starts, as a game day's are: the live
        # watcher reads the schedule when it starts.
        tag = uuid.uuid4().hex[:6]
        games = [f"load-{tag}-{i:03d}" for i in range(args.games)]
        engine = reference_db.make_engine(env[settings.SQL_URL.name])
        with engine.begin() as conn:
            conn.execute(reference_db.games.insert(), [
                {"game_id": g, "home_teamid": 101, "away_teamid": 205} for g in games])
        if not args.no_daemon:
            running.enter_context(daemon(work, env))
        env = {**env, settings.INGEST_TOKENS.name: ",".join(f"game:{g}={TOKEN}" for g in games)}
        if args.verify_writes is not None:
            env[settings.INGEST_VERIFY_WRITES.name] = args.verify_writes
        s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                               env[settings.S3_SECRET_KEY.name])
        bucket = env[settings.S3_BUCKET.name]
        clients.ensure_bucket(s3, bucket)
        with ingest_servers(env, work, args.processes) as servers:
            pids = {**stack_processes(work), "client": [os.getpid()]}
            cpu_before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
            with client_gc_paused():
                results, elapsed = asyncio.run(load("127.0.0.1", [port for port, _ in servers], games, args.events,
                                                    args.rate, args.retry_share, args.seed))
            cpu_used = {name: sum(map(cpu_seconds, pids[name])) - before for name, before in cpu_before.items()}
            counters = [write_counters(port) for port, _ in servers]

            accepted = {(g, cid): a["event_id"] for g, cid, resend, st, a, _, _ in results if st in (200, 201)}
            first_posts = [r for r in results if r[2] == 0]
            errors = [r for r in results if r[3] not in (200, 201)]
            retried_dupes = sum(1 for r in results if r[2] == 1 and r[3] == 200 and r[4].get("duplicate"))
            latencies = [r[5] * 1000 for r in results]
            created = [r for r in results if r[3] == 201]

            lost = duplicated = 0
            last_post = {g: max((r[6] for r in results if r[0] == g and r[3] in (200, 201)), default=None) for g in games}
            line_counts = {}
            for g in games:
                data = s3.get_object(Bucket=bucket, Key=f"{g}.txt")["Body"].read()
                parsed = parse_stream(data, (101, 205))
                ids = [e.event_id for e in parsed.events]
                want = sorted(eid for (game, _), eid in accepted.items() if game == g)
                lost += len(set(want) - set(ids))
                duplicated += len(ids) - len(set(ids)) + len(set(ids) - set(want)) + len(parsed.rejected)
                line_counts[g] = parsed.line_count

            fresh_line = ""
            if not args.no_daemon:
                collection = clients.mongo_client(env[settings.MONGO_URI.name])[env[settings.MONGO_DB.name]]["boxscores"]
                caught_up: dict[str, float] = {}
                deadline = time.monotonic() + args.settle
                while len(caught_up) < len(games) and time.monotonic() < deadline:
                    for g in games:
                        if g not in caught_up:
                            doc = collection.find_one({"game_id": g}, sort=[("seq", -1)], projection={"seq": 1})
                            if doc and doc["seq"] >= line_counts[g]:
                                caught_up[g] = time.monotonic()
                    time.sleep(0.02)
                lags = [caught_up[g] - last_post[g] for g in caught_up if last_post[g] is not None]
                fresh_line = (f"box scores: {len(caught_up)}/{len(games)} games reflect every accepted event; "
                              f"last post -> document p50={percentile(lags, 0.5):.3f}s max={max(lags, default=float('nan')):.3f}s "
                              f"(polled every 0.02 s over {len(games)} games, so up to ~{0.002 * len(games):.2f} s late)")

        health_file = work / "ingest-0.log"
        print(f"{args.processes} API process(es); {args.games} games x {args.events} events at {args.rate:g}/s offered; {len(results)} requests "
              f"({len(results) - len(first_posts)} resent with the same client id, {retried_dupes} answered as "
              f"duplicates), {len(errors)} errors {sorted({r[3] for r in errors})}; load took {elapsed:.1f} s; "
              f"logs {health_file}", file=sys.stderr)
        per_request = " ".join(f"{name}={1000 * used / max(1, len(results)):.2f}" for name, used in cpu_used.items())
        print(f"CPU ms per request, by process (what else runs on the machine does not count): {per_request}; "
              f"machine load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        if fresh_line:
            print(fresh_line, file=sys.stderr)
        for r in errors[:3]:
            print(f"refused: status {r[3]} {json.dumps(r[4])[:300]}", file=sys.stderr)
        totals = {k: sum(c.get(k, 0) for c in counters) for k in ("writes", "conflicts", "write_errors", "ledger_writes")}
        print("API write counters: " + " ".join(f"{k}={v}" for k, v in totals.items()), file=sys.stderr)
        # Where the tail is: each game's first post (a new connection, the game's first read of its
        # object and ledger, the schedule) against the posts after it, and when the slowest were sent.
        first_of_game = [min((r for r in results if r[0] == g), key=lambda r: r[6])
                         for g in games if any(r[0] == g for r in results)]
        firsts = {id(r) for r in first_of_game}
        later = [r[5] * 1000 for r in results if id(r) not in firsts]
        t0 = min(r[6] - r[5] for r in results)
        slowest = sorted(results, key=lambda r: -r[5])[:5]
        print(f"first post of each game p50_ms={percentile([r[5] * 1000 for r in first_of_game], 0.5):.1f} "
              f"max_ms={max(r[5] * 1000 for r in first_of_game):.1f}; later posts p50_ms={percentile(later, 0.5):.1f} "
              f"p99_ms={percentile(later, 0.99):.1f}; slowest sent at "
              + ", ".join(f"{r[6] - r[5] - t0:.2f}s ({r[5] * 1000:.0f} ms)" for r in slowest), file=sys.stderr)
        print(f"requests={len(results)} rps={len(created) / elapsed:.1f} p50_ms={percentile(latencies, 0.5):.1f} "
              f"p99_ms={percentile(latencies, 0.99):.1f} lost_events={lost} duplicate_events={duplicated} "
              f"refused={len(errors)}")
        if args.samples:
            with open(args.samples, "w") as out:
                for r in sorted(results, key=lambda r: r[6] - r[5]):
                    out.write(json.dumps({"sent_at_s": round(r[6] - r[5] - t0, 4), "ms": round(r[5] * 1000, 2),
                                          "status": r[3], "game": r[0],
                                          "sent_monotonic": round(r[6] - r[5], 4)}) + "\n")
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
