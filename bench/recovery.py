"""Recovery of the live box scores after a fault, on the embedded stack with the daemon.

For each fault, a fresh stack and daemon (the fault tests' `Stack`, sidearm_assets_tests/
helpers.py) stream a small league; mid-stream the fault is injected and lifted; the
figure is the time from the moment it is lifted until every game's latest document reflects at
least the version that was in the bucket at that moment ("current again"). For the SQL lock the
figure is the longest any game's box score stood still while the lock was held.

    .venv/bin/python bench/recovery.py [--games 4] [--down 10]

Last line: mongo_s= s3_s= daemon_s= sql_lock_max_stall_s=
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gamestream.league import install_league, make_league, stream_league  # noqa: E402
from sidearm_assets.retrying import wait_until  # noqa: E402
from sidearm_assets.storage import clients  # noqa: E402
from sidearm_assets_tests.helpers import Stack  # noqa: E402

PUT_INTERVAL = (0.3, 0.6)


def run_with_fault(n_games: int, seed: int, fault) -> float:
    measured = threading.Event()  # set once the phase is over: the league's errors after it are expected
    with tempfile.TemporaryDirectory(prefix="sidearm-recovery-") as tmp:
        stack = Stack(Path(tmp))
        try:
            league = make_league(n_games, seed=seed)
            install_league(stack.engine, league)
            stack.start_daemon()
            stack.wait_for_watcher()
            last_put: dict[str, int] = {}
            lock = threading.Lock()

            def on_put(game_id, lines, sent, returned):
                with lock:
                    last_put[game_id] = lines

            def stream():
                try:
                    stream_league(s3=stack.s3, bucket=stack.bucket, league=league, put_interval=PUT_INTERVAL,
                                  on_put=on_put, log_puts=False)
                except Exception as exc:  # noqa: BLE001 - S3 down (the S3 phase), or the stack stopped after it
                    if not measured.is_set():
                        print(f"  (the league stopped during the phase: {exc})", file=sys.stderr)

            thread = threading.Thread(target=stream, daemon=True)
            thread.start()
            time.sleep(5)
            return fault(stack, league, last_put, lock)
        finally:
            measured.set()
            stack.close()


def caught_up(stack, targets: dict[str, int], since: float, timeout: float = 120) -> float:
    """Seconds from `since` until every game's document reaches its target `seq` (nan after `timeout`)."""
    try:
        wait_until(lambda: all(((stack.latest(g) or {}).get("seq") or 0) >= n for g, n in targets.items()),
                   timeout, interval=0.05, what="every game's document caught up")
    except TimeoutError:
        return float("nan")
    return time.monotonic() - since


def mongo_fault(down: float):
    def fault(stack, league, last_put, lock):
        back = stack.restart("mongo", down_seconds=down)
        with lock:
            targets = dict(last_put)
        return caught_up(stack, targets, back)
    return fault


def daemon_fault(down: float):
    def fault(stack, league, last_put, lock):
        stack.stop_daemon()
        time.sleep(down)
        stack.start_daemon()
        back = time.monotonic()
        with lock:
            targets = dict(last_put)
        return caught_up(stack, targets, back, timeout=180)
    return fault


def s3_fault(down: float):
    def fault(stack, league, last_put, lock):
        # moto restarts empty: the streams go on into a new bucket (the generator's puts fail meanwhile)
        back = stack.restart("s3", down_seconds=down)
        clients.ensure_bucket(stack.s3, stack.bucket)
        game = league.games[0]
        stack.s3.put_object(Bucket=stack.bucket, Key=game.key, Body=game.versions()[2])
        return caught_up(stack, {game.game_id: 3}, back)
    return fault


def sql_lock_fault(hold: float):
    def fault(stack, league, last_put, lock):
        path = stack.env["SIDEARM_SQL_URL"].removeprefix("sqlite:///")
        holder = sqlite3.connect(path, timeout=0)
        holder.execute("BEGIN EXCLUSIVE")
        stall, last_change = 0.0, {}
        started = time.monotonic()
        try:
            while time.monotonic() - started < hold:
                now = time.monotonic()
                for g in league.games:
                    seq = (stack.latest(g.game_id) or {}).get("seq")
                    prev = last_change.get(g.game_id)
                    if prev is None or prev[0] != seq:
                        last_change[g.game_id] = (seq, now)
                    elif seq != len(g.lines):  # a finished game standing still is not a stall
                        stall = max(stall, now - prev[1])
                time.sleep(0.05)
        finally:
            holder.rollback()
            holder.close()
        return stall
    return fault


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=4)
    parser.add_argument("--down", type=float, default=10.0, help="seconds each server stays down / the lock is held")
    args = parser.parse_args()
    figures = {
        "mongo_s": run_with_fault(args.games, 21, mongo_fault(args.down)),
        "s3_s": run_with_fault(args.games, 22, s3_fault(args.down)),
        "daemon_s": run_with_fault(args.games, 23, daemon_fault(args.down)),
        "sql_lock_max_stall_s": run_with_fault(args.games, 24, sql_lock_fault(args.down)),
    }
    print(" ".join(f"{k}={v:.2f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
