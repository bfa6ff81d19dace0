"""Live box-score freshness: from each S3 put of the game object to a MongoDB document reflecting it.

Self-contained: starts the embedded stack and the Dagster daemon (this code location, a
throw-away DAGSTER_HOME), replays the default game with the simulator's own replay at
DELAY=0.05, and stops everything it started by pid.

A version counts as fresh at the first moment a document of the game with `seq` >= the
version's line count is readable (a later version's document reflects every earlier line too);
its latency runs from the moment the put returned (0 when the document was readable sooner).
A version never reflected within `--settle` seconds after the last put counts as never_fresh.

    .venv/bin/python bench/live_latency.py [--delay 0.05] [--mode watch|runs] [--keep-dir DIR]

Last line: fresh_p50=<s> fresh_p95=<s> fresh_max=<s> versions=<n> never_fresh=<n>
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from sidearm_assets.local import processes
from sidearm_assets.storage import clients, reference_db
from harness import embedded_daemon
from gamestream.simulator import default_game_path, plan_game, stream_game

GAME_ID = "gamestream"
WARMUP_GAME = "bench-warmup"


class RecordingS3:
    """The S3 client as the simulator sees it, noting when each put of the game object returned."""

    def __init__(self, client):
        self._client = client
        # (lines in the version, monotonic time the put was sent, time it returned)
        self.puts: list[tuple[int, float, float]] = []

    def put_object(self, **kwargs):
        sent = time.monotonic()
        out = self._client.put_object(**kwargs)
        self.puts.append((len(kwargs["Body"].splitlines()), sent, time.monotonic()))
        return out

    def __getattr__(self, name):
        return getattr(self._client, name)


class Watcher(threading.Thread):
    """Polls the latest document of the game; remembers when each seq was first readable."""

    def __init__(self, collection, game_id: str, interval: float = 0.005):
        super().__init__(daemon=True)
        self.collection, self.game_id, self.interval = collection, game_id, interval
        self.first_seen: dict[int, float] = {}
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            doc = self.collection.find_one({"game_id": self.game_id}, sort=[("seq", -1)], projection={"seq": 1})
            now = time.monotonic()
            if doc is not None:
                self.first_seen.setdefault(doc["seq"], now)
            time.sleep(self.interval)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--mode", choices=("watch", "runs"), default="watch",
                        help="the live sensor's mode (SIDEARM_LIVE_MODE): watch (default) or a run per version")
    parser.add_argument("--keep-dir", help="work in this folder and keep it (logs) instead of a temp one")
    args = parser.parse_args()
    os.environ["SIDEARM_LIVE_MODE"] = args.mode

    with embedded_daemon(args.keep_dir, "sidearm-live-bench-") as (work, env):
        engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == WARMUP_GAME))
            conn.execute(reference_db.games.insert().values(game_id=WARMUP_GAME, home_teamid=101, away_teamid=205))
        s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
        bucket = env["SIDEARM_S3_BUCKET"]
        collection = clients.mongo_client(env["SIDEARM_MONGO_URI"])[env["SIDEARM_MONGO_DB"]]["boxscores"]
        collection.delete_many({"game_id": {"$in": [GAME_ID, WARMUP_GAME]}})
        s3.put_object(Bucket=bucket, Key=f"{WARMUP_GAME}.txt", Body=b"0 59:00 101 6 1\n")
        processes.wait_until(
            lambda: collection.find_one({"game_id": WARMUP_GAME}), timeout=120, what="the live sensor's first document"
        )

        steps = plan_game(default_game_path().read_bytes(), (101, 205))
        watcher = Watcher(collection, GAME_ID)
        watcher.start()
        recorder = RecordingS3(s3)
        stream_game(recorder, bucket, f"{GAME_ID}.txt", steps, args.delay)
        last_seq = recorder.puts[-1][0]
        try:
            processes.wait_until(lambda: max(watcher.first_seen, default=0) >= last_seq, timeout=args.settle,
                                 interval=0.05, what="the final document")
        except TimeoutError:
            pass
        watcher.stop_event.set()
        watcher.join()

        fresh, never = [], 0
        wall = time.time() - time.monotonic()
        with open(work / "versions.tsv", "w") as out:
            out.write("seq\tput_at_utc\tfresh_s\n")
            for seq, sent, put_at in recorder.puts:
                # A document can show up before the put's response reaches us: that counts as 0 s.
                seen = [t for s, t in watcher.first_seen.items() if s >= seq and t >= sent]
                if seen:
                    fresh.append(max(0.0, min(seen) - put_at))
                else:
                    never += 1
                stamp = time.strftime("%H:%M:%S", time.gmtime(put_at + wall)) + f"{(put_at + wall) % 1:.3f}"[1:]
                out.write(f"{seq}\t{stamp}\t{fresh[-1] if seen else 'never'}\n")
        docs = list(collection.find({"game_id": GAME_ID}, projection={"seq": 1, "final": 1}))
        final_docs = [d for d in docs if d.get("final")]
        print(f"mode {args.mode}: {len(steps)} versions put at DELAY={args.delay}; {len(docs)} documents written, "
              f"{len(final_docs)} final", file=sys.stderr)
        if fresh:
            print(f"fresh mean={statistics.mean(fresh):.3f}s min={min(fresh):.3f}s", file=sys.stderr)
        p50 = percentile(fresh, 0.5) if fresh else float("nan")
        p95 = percentile(fresh, 0.95) if fresh else float("nan")
        top = max(fresh) if fresh else float("nan")
        print(f"fresh_p50={p50:.3f} fresh_p95={p95:.3f} fresh_max={top:.3f} versions={len(recorder.puts)} never_fresh={never}")
        return 0

if __name__ == "__main__":
    sys.exit(main())
