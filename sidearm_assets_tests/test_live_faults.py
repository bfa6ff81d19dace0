"""Faults injected into the embedded stack while games stream through the daemon.

Each test starts its own stack and `dagster-daemon` (nothing shared, since servers are killed),
streams a small league with the project's load generator, injects one fault, and checks the
outcome: every game ends with its correct final document, the live box score is current again
within 10 s of recovery, and every event put while the fault lasted has its own document.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from sidearm_assets.local import processes
from sidearm_assets.storage import clients
from sidearm_assets_tests.helpers import assert_every_game_ends_final, start_league, wait_until_playing

pytestmark = [pytest.mark.slow]

class PutLog:
    """The league's puts as they returned: (game id, line count, monotonic time)."""

    def __init__(self):
        self.puts: list[tuple[str, int, float]] = []
        self.lock = threading.Lock()

    def __call__(self, game_id, lines, sent, returned):
        with self.lock:
            self.puts.append((game_id, lines, returned))

    def last(self) -> dict[str, int]:
        with self.lock:
            return {g: n for g, n, _ in self.puts}

    def between(self, t0: float, t1: float) -> list[tuple[str, int]]:
        with self.lock:
            return [(g, n) for g, n, t in self.puts if t0 <= t <= t1]


def assert_documents_for_puts(stack, league, puts: list[tuple[str, int]]):
    """Every event put while the fault lasted has its own document (rebuilt after the outage)."""
    wanted = {f"{g}:{league.game(g).lines[n - 1].split()[0]}" for g, n in puts}

    def missing():
        have = {d["_id"] for d in stack.boxscores.find({"game_id": {"$in": sorted({g for g, _ in puts})}}, {"_id": 1})}
        return wanted - have

    try:
        processes.wait_until(lambda: not missing(), timeout=15, interval=0.2, what="the missed events' documents")
    except TimeoutError:
        games = sorted({g for g, _ in puts})
        held = {g: sorted((d["seq"], d["_id"]) for d in stack.boxscores.find({"game_id": g}, {"seq": 1}))[-30:]
                for g in games}
        rebuilt = {g: sorted(d["seq"] for d in stack.boxscores.find({"game_id": g, "rebuilt": True}, {"seq": 1}))
                   for g in games}
        pytest.fail(f"no document for {sorted(missing())[:5]} of the {len(wanted)} events put during the fault; "
                    f"puts {puts}; documents held {held}; rebuilt {rebuilt}")


def test_mongo_killed_mid_game_recovers_and_rebuilds_the_missed_documents(stack):
    log = PutLog()
    league, done, errors = start_league(stack, 3, 11, on_put=log)
    wait_until_playing(stack, league)
    killed = time.monotonic()
    back = stack.restart("mongo", down_seconds=6)
    before = log.last()  # what was in the bucket when MongoDB came back
    try:  # current again within 10 s of recovery
        processes.wait_until(
            lambda: all(((stack.latest(g) or {}).get("seq") or 0) >= n for g, n in before.items()),
            timeout=10, interval=0.1, what="every game's box score current again")
    except TimeoutError:
        pytest.fail(f"not current 10 s after MongoDB came back: {before} vs "
                    f"{ {g: (stack.latest(g) or {}).get('seq') for g in before} }")
    assert done.wait(120), "the league was still streaming after 120 s"
    assert not errors
    assert_every_game_ends_final(stack, league, timeout=60)
    assert killed < back
    assert_documents_for_puts(stack, league, log.between(killed, back))  # rebuilt after the outage


def test_s3_restarted_empty_and_a_game_restreamed_serves_the_new_play(stack):
    league, done, errors = start_league(stack, 2, 12)
    assert done.wait(120), "the league was still streaming after 120 s"
    assert not errors
    assert_every_game_ends_final(stack, league, timeout=60)
    stack.restart("s3", down_seconds=2)  # moto keeps objects in memory: the bucket is gone
    clients.ensure_bucket(stack.s3, stack.bucket)
    game = league.games[0]
    replay = game.versions()[4]  # the game restarts: five lines so far
    stack.s3.put_object(Bucket=stack.bucket, Key=game.key, Body=replay)
    processes.wait_until(lambda: (stack.latest(game.game_id) or {}).get("seq") == 5, timeout=30, interval=0.2,
                         what="the replay's document to be the latest")
    assert stack.latest(game.game_id)["final"] is False
    assert stack.boxscores.count_documents({"game_id": game.game_id, "final": True}) == 0


def test_a_locked_sidearmdb_never_freezes_the_box_scores(stack):
    path = stack.env["SIDEARM_SQL_URL"].removeprefix("sqlite:///")
    league, done, errors = start_league(stack, 2, 13)
    wait_until_playing(stack, league)
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # every reader and writer of sidearmdb waits
    try:
        before = {g.game_id: (stack.latest(g.game_id) or {}).get("seq", 0) for g in league.games}
        time.sleep(8)
        during = {g.game_id: (stack.latest(g.game_id) or {}).get("seq", 0) for g in league.games}
        assert all(during[g] > before[g] for g in before), f"box scores froze during the lock: {before} -> {during}"
    finally:
        holder.rollback()
        holder.close()
    assert done.wait(120), "the league was still streaming after 120 s"
    assert not errors
    assert_every_game_ends_final(stack, league, timeout=60)


def test_the_daemon_killed_mid_game_resumes_from_its_cursor(stack):
    log = PutLog()
    league, done, errors = start_league(stack, 2, 14, on_put=log)
    wait_until_playing(stack, league)
    stack.stop_daemon()  # daemon, code server and watcher gone together
    stopped = time.monotonic()
    time.sleep(3)
    stack.start_daemon()
    restarted = time.monotonic()
    assert done.wait(120), "the league was still streaming after 120 s"
    assert not errors
    assert_every_game_ends_final(stack, league, timeout=120)
    during = log.between(stopped + 0.5, restarted)  # put while no watcher ran
    assert during
    assert_documents_for_puts(stack, league, during)
