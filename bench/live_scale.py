"""Many games at once: N league games streamed together through the embedded stack and the daemon.

Self-contained like the other benchmarks: starts the embedded stack and a Dagster daemon for this
code location (bench/harness.py), installs a league of N games beside the base data
(gamestream/league.py), streams them all at once (each game's puts 1-3 s apart, starts spread),
and stops everything it started by pid.

Freshness of a version: from the moment its put returned to the first moment a document of the
game with `seq` >= the version's line count was readable (a later document reflects every earlier
line too); 0 when it was readable before the put's response arrived. Documents are seen through a
change feed that polls `find({published_at: {$gt: t}})` every `--feed-interval` (0.05 s): one
indexed query for all games instead of one query per game, so the benchmark's own reads do not
load the Mongo-wire server; a document counts as readable when a poll returned it (the figures
are at most one interval late). A version never reflected within `--settle` seconds after its
game's last put is never_fresh.

final_after_last_s: from the last put that made a game final (by the pipeline's rule: for some
games the put before their last) to the moment the counted-games record, written in the same
transaction as players2/teams2, holds every game.
daemon_rss_mb: the daemon, its run workers and the code server (where the watcher runs), peak of
one-second samples. cpu_pct: the whole machine's busy share of its cores while
the league streamed.

    .venv/bin/python bench/live_scale.py --games 200 [--seed 1] [--put-interval 1 3] [--keep-dir DIR]

Last line: games= fresh_p50= fresh_p95= fresh_max= never_fresh= final_after_last_s= daemon_rss_mb= cpu_pct=
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from harness import cpu_seconds, embedded_daemon, process_tree

from gamestream.league import install_league, league_s3_client, make_league, stream_league
from sidearm_assets.local import processes
from sidearm_assets.storage import clients, reference_db

WARMUP_GAME = "bench-warmup"


class ChangeFeed(threading.Thread):
    """Notes when each (game, seq) document was first readable, from one indexed query per poll."""

    def __init__(self, collection, interval: float, overlap: float = 0.5):
        super().__init__(daemon=True)
        self.collection, self.interval, self.overlap = collection, interval, overlap
        self.first_seen: dict[str, dict[int, float]] = defaultdict(dict)
        self.stop_event = threading.Event()
        self.polls = 0

    def run(self):
        since = time.time() - 5
        while not self.stop_event.is_set():
            docs = list(self.collection.find({"published_at": {"$gt": since - self.overlap}},
                                             projection={"game_id": 1, "seq": 1, "published_at": 1}))
            now = time.monotonic()
            self.polls += 1
            for d in docs:
                self.first_seen[d["game_id"]].setdefault(d["seq"], now)
                since = max(since, d.get("published_at") or since)
            self.stop_event.wait(self.interval)

    def seen_at(self, game_id: str, seq: int, not_before: float) -> float | None:
        times = [t for s, t in self.first_seen.get(game_id, {}).items() if s >= seq and t >= not_before]
        return min(times) if times else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))
    return ordered[index]


def rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def components(work: Path, daemon: int | None) -> dict[str, list[int]]:
    """The processes whose CPU the run accounts for, by role."""
    from sidearm_assets.local import local_stack

    out: dict[str, list[int]] = {"bench (load generator + feed)": [os.getpid()]}
    state = local_stack.read_state(work / "stack") or {}
    for name, service in (state.get("services") or {}).items():
        out[{"s3": "S3 server (moto)", "mongo": "Mongo-wire server (nx-27017)", "spark": "Spark Connect server"}
            .get(name, name)] = [service["pid"]]
    if daemon:
        out["dagster-daemon and run workers"] = process_tree(daemon)
    code = find_process(work, b"code-server")
    if code:
        out["code server (the watcher)"] = process_tree(code)
    return out


def machine_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Sampler(threading.Thread):
    def __init__(self, pids: list[int | None]):
        super().__init__(daemon=True)
        self.pids, self.peak_rss = [p for p in pids if p], 0.0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            self.peak_rss = max(self.peak_rss, rss_mb([q for p in self.pids for q in process_tree(p)]))
            self.stop_event.wait(1.0)


def find_process(work: Path, marker: bytes) -> int | None:
    """The harness's process whose command line holds `marker`, run in the work folder."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "cmdline").read_bytes() and (proc / "cwd").resolve() == work:
                return int(proc.name)
        except OSError:
            continue
    return None


def daemon_pid(work: Path) -> int | None:
    return find_process(work, b"dagster-daemon")


def main() -> int:
    # `kill` (SIGTERM) unwinds like Ctrl-C, so the harness stops the stack and the daemon by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--put-interval", type=float, nargs=2, default=(1.0, 3.0), metavar=("LO", "HI"))
    parser.add_argument("--feed-interval", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--final-timeout", type=float, default=180.0)
    parser.add_argument("--keep-dir", help="work in this folder and keep it (logs) instead of a temp one")
    parser.add_argument("--no-spark", action="store_true",
                        help="no warm Spark Connect server: the final tables start a local Spark per run")
    args = parser.parse_args()

    league = make_league(args.games, seed=args.seed)
    with embedded_daemon(args.keep_dir, "sidearm-scale-bench-", spark=not args.no_spark) as (work, env):
        engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
        install_league(engine, league)
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == WARMUP_GAME))
            conn.execute(reference_db.games.insert().values(game_id=WARMUP_GAME, home_teamid=101, away_teamid=205))
        s3 = league_s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"],
                              env["SIDEARM_S3_SECRET_KEY"], max_pool_connections=64)
        bucket = env["SIDEARM_S3_BUCKET"]
        collection = clients.mongo_client(env["SIDEARM_MONGO_URI"])[env["SIDEARM_MONGO_DB"]]["boxscores"]
        s3.put_object(Bucket=bucket, Key=f"{WARMUP_GAME}.txt", Body=b"0 59:00 101 6 1\n")
        processes.wait_until(lambda: collection.find_one({"game_id": WARMUP_GAME}), timeout=180,
                             what="the live sensor's first document")
        s3.delete_object(Bucket=bucket, Key=f"{WARMUP_GAME}.txt")

        pid = daemon_pid(work)
        sampler = Sampler([pid, find_process(work, b"code-server")]) if pid else None
        if sampler:
            sampler.start()
        feed = ChangeFeed(collection, args.feed_interval)
        feed.start()
        puts: list[tuple[str, int, float, float]] = []
        lock = threading.Lock()

        def on_put(game_id, line_count, sent, returned):
            with lock:
                puts.append((game_id, line_count, sent, returned))

        roles = components(work, pid)
        cpu0 = {role: sum(cpu_seconds(p) for p in pids) for role, pids in roles.items()}
        busy0, total0 = machine_busy()
        streamed = stream_league(s3, bucket, league, put_interval=tuple(args.put_interval), on_put=on_put,
                                 log_puts=False)
        busy1, total1 = machine_busy()
        cpu1 = {role: sum(cpu_seconds(p) for p in pids) for role, pids in roles.items()}
        # the put that made each game final (by the pipeline's rule; a game can end a put before its last)
        final_puts = {g.game_id: g.final_line_count() for g in league.games}
        last_put = max(r for g, n, _, r in puts if n == final_puts[g])
        finals = {g.game_id: len(g.lines) for g in league.games}

        def all_final_seen():
            return all(max(feed.first_seen.get(g, {0: 0}), default=0) >= n for g, n in finals.items())

        try:
            processes.wait_until(all_final_seen, timeout=args.settle, interval=0.1, what="every final document")
        except TimeoutError:
            pass
        league_ids = list(finals)

        def counted() -> int:
            from sqlalchemy import text

            try:
                with engine.connect() as conn:
                    return conn.execute(text(
                        "select count(*) from counted_games where game_id like 'league-%'")).scalar() or 0
            except Exception:
                return 0

        try:
            processes.wait_until(lambda: counted() >= len(league_ids), args.final_timeout, interval=0.2,
                                 what="every game counted")
            final_after = time.monotonic() - last_put
        except TimeoutError:
            final_after = float("nan")
        feed.stop_event.set()
        if sampler:
            sampler.stop_event.set()

        fresh, never = [], 0
        with open(work / "versions.tsv", "w") as out:
            out.write("game_id\tseq\tfresh_s\n")
            for game_id, seq, sent, returned in puts:
                seen = feed.seen_at(game_id, seq, sent)
                if seen is None:
                    never += 1
                    out.write(f"{game_id}\t{seq}\tnever\n")
                else:
                    fresh.append(max(0.0, seen - returned))
                    out.write(f"{game_id}\t{seq}\t{fresh[-1]:.3f}\n")
        cpu_pct = 100.0 * (busy1 - busy0) / max(1, total1 - total0)
        print(f"{args.games} games, {streamed.puts} puts in {streamed.seconds:.0f} s "
              f"({streamed.puts / max(streamed.seconds, 1e-9):.0f} puts/s, slowest put {streamed.slowest_put:.2f} s); "
              f"feed polls {feed.polls}; counted {counted()} of {len(league_ids)}; work folder {work}",
              file=sys.stderr)
        if fresh:
            print(f"fresh mean={statistics.mean(fresh):.3f}s", file=sys.stderr)
        print(f"CPU while streaming ({streamed.seconds:.0f} s), share of one core:", file=sys.stderr)
        for role in roles:
            print(f"  {role}: {100 * (cpu1[role] - cpu0[role]) / max(streamed.seconds, 1e-9):.0f}%", file=sys.stderr)
        p50 = percentile(fresh, 0.5) if fresh else float("nan")
        p95 = percentile(fresh, 0.95) if fresh else float("nan")
        top = max(fresh) if fresh else float("nan")
        rss = sampler.peak_rss if sampler else float("nan")
        print(f"games={args.games} fresh_p50={p50:.3f} fresh_p95={p95:.3f} fresh_max={top:.3f} never_fresh={never} "
              f"final_after_last_s={final_after:.1f} daemon_rss_mb={rss:.0f} cpu_pct={cpu_pct:.0f}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
