"""Faults injected into the embedded stack while games stream through the daemon (issue 14 rows 4, 5, 9).

Each test starts its own stack and `dagster-daemon` (nothing shared, since servers are killed),
streams a small league with the project's load generator, injects one fault, and checks the
outcome: every game ends with its correct final document, the live box score is current again
within 10 s of recovery, and every event put while the fault lasted has its own document.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from gamestream.league import install_league, league_s3_client, make_league, stream_league
from sidearm_assets.local import local_stack, processes
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.live import live_update

pytestmark = [pytest.mark.slow]

PUT_INTERVAL = (0.15, 0.3)


class Stack:
    def __init__(self, directory: Path, extra_env: dict[str, str] | None = None):
        self.directory = directory
        self.info = local_stack.start_stack(directory / "stack", local_stack.FREE_PORTS)
        self.env = {**__import__("os").environ, **self.info.env, **(extra_env or {})}
        self.daemon = None
        self.engine = reference_db.make_engine(self.env["SIDEARM_SQL_URL"])
        self.s3 = league_s3_client(self.env["SIDEARM_S3_ENDPOINT_URL"], self.env["SIDEARM_S3_ACCESS_KEY"],
                                   self.env["SIDEARM_S3_SECRET_KEY"], max_pool_connections=16)
        self.bucket = self.env["SIDEARM_S3_BUCKET"]
        self.boxscores = clients.mongo_client(self.env["SIDEARM_MONGO_URI"], timeout_ms=1000)[
            self.env["SIDEARM_MONGO_DB"]]["boxscores"]

    def start_daemon(self):
        """A code server and `dagster-daemon` pointed at it, as `dagster dev` and production run them (a
        daemon started with `-m` would replace its code server, and the watcher, every 60 s)."""
        bin_dir = Path(sys.executable).parent
        port = local_stack.free_port()
        self.code_server = processes.spawn(
            [str(bin_dir / "dagster"), "code-server", "start", "-m", "sidearm_assets", "-h", "127.0.0.1",
             "-p", str(port)], self.directory / "code_server.log", env=self.env, cwd=self.directory)
        processes.wait_until(lambda: local_stack.listening(port), timeout=120, what="the code server")
        workspace = self.directory / "workspace.yaml"
        workspace.write_text("load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                             f"      port: {port}\n      location_name: sidearm_assets\n")
        self.daemon = processes.spawn([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
                                      self.directory / "daemon.log", env=self.env, cwd=self.directory)

    def stop_daemon(self):
        """Daemon, run workers, code server and its watcher gone together (a container crash)."""
        if self.daemon is not None:
            processes.stop(self.daemon.pid)
            self.daemon = None
        if getattr(self, "code_server", None) is not None:
            processes.stop(self.code_server.pid)
            self.code_server = None

    def wait_for_watcher(self):
        with self.engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == "warmup"))
            conn.execute(reference_db.games.insert().values(game_id="warmup", home_teamid=101, away_teamid=205))
        self.s3.put_object(Bucket=self.bucket, Key="warmup.txt", Body=b"0 59:00 101 6 1\n")
        processes.wait_until(lambda: self._find_one({"game_id": "warmup"}), timeout=180,
                             what="the live sensor's first document")

    def _find_one(self, query):
        try:
            return self.boxscores.find_one(query)
        except Exception:
            return None

    def latest(self, game_id):
        try:
            return self.boxscores.find_one({"game_id": game_id}, sort=[("seq", -1)])
        except Exception:
            return None

    def restart(self, name: str, down_seconds: float) -> float:
        """Kill one server by pid, keep it down, start it again on the same port; returns when it answers
        (monotonic time)."""
        local_stack.restart_service(self.directory / "stack", name, down_seconds=down_seconds, grace=1.0)
        return time.monotonic()

    def close(self):
        self.stop_daemon()
        local_stack.stop_stack(self.directory / "stack")


def expected_final(engine, game) -> dict:
    games = reference_db.read_rows(engine, reference_db.games)
    teams = reference_db.read_rows(engine, reference_db.teams)
    players = reference_db.read_rows(engine, reference_db.players)
    return live_update(matchup(game.game_id, games, teams), game.final_bytes, "v", None, players).doc


def stream_in_background(stack, league, on_put=None):
    done = threading.Event()
    errors = []

    def run():
        try:
            stream_league(stack.s3, stack.bucket, league, put_interval=PUT_INTERVAL, log_puts=False, on_put=on_put)
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, errors


def start_league(stack, n_games: int, seed: int, on_put=None):
    """Install a league, start the daemon, wait for the watcher, stream the league in the background."""
    league = make_league(n_games, seed=seed)
    install_league(stack.engine, league)
    stack.start_daemon()
    stack.wait_for_watcher()
    done, errors = stream_in_background(stack, league, on_put)
    return league, done, errors


def assert_every_game_ends_final(stack, league, timeout: float):
    deadline = time.monotonic() + timeout
    for game in league.games:
        processes.wait_until(
            lambda: (stack.latest(game.game_id) or {}).get("seq") == len(game.lines),
            timeout=max(1.0, deadline - time.monotonic()), interval=0.2,
            what=f"{game.game_id}'s final document",
        )
        latest = stack.latest(game.game_id)
        expected = expected_final(stack.engine, game)
        assert latest["final"] and {k: latest[k] for k in ("home", "away")} == {k: expected[k] for k in ("home", "away")}


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
    time.sleep(4)
    killed = time.monotonic()
    back = stack.restart("mongo", down_seconds=6)
    before = log.last()  # what was in the bucket when MongoDB came back
    try:  # current again within 10 s of recovery (issue 14 item 8)
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
    time.sleep(3)
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
    time.sleep(4)
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
