"""Final-tables faults, injected into the embedded stack with the Dagster daemon.

Each test starts a code server and `dagster-daemon run` against it (local/dagster_processes.py;
the daemon starts the run workers) on the project's local instance
(`local_instance.py`: run queue with one final-tables run at a time, run monitoring, run
retries), files completed games as the live path does (the completion inbox in sidearmdb, then the
archive), injects a fault, and checks the outcome in sidearmdb: every completed game
counted exactly once (the tables equal base + each game once, computed independently in plain
Python), nothing dropped, and at most one final-tables run working at any moment.

Everything started here is stopped by pid (`processes.stop`, SIGTERM then SIGKILL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.domain.final import completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.local.local_instance import write_local_instance
from sidearm_assets.local.dagster_processes import start_dagster
from sidearm_assets.local.local_stack import free_port, start_stack, stop_stack
from sidearm_assets.resources import GameStreamStore
from sidearm_assets_tests.helpers import random_game

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FINAL_TAG = "sidearm/final-tables"
WORKING = ("STARTING", "STARTED")
ROSTERS = {
    team: [p["number"] for p in reference_db.BASE_PLAYERS if p["teamid"] == team] for team in (101, 205)
}
# Run monitoring fails a run stuck in STARTING after this. Shorter than the local instance's 60 s to
# keep the crash test short, long enough that a run worker slow to load the code location on a
# busy two-core machine (15-20 s measured) is not failed while alive.
START_TIMEOUT = 30


class FinalWorld:
    """One test's bucket, sidearmdb, DAGSTER_HOME and daemon on an embedded stack."""

    def __init__(self, stack_env: dict, work: Path, spark: dict[str, str]):
        self.work = work
        self.sql_url = f"sqlite:///{work / 'sidearmdb.sqlite'}"
        self.home = write_local_instance(work / "dagster_home", start_timeout_seconds=START_TIMEOUT, poll_interval_seconds=2)
        self.env = {
            **os.environ, **stack_env,
            settings.SQL_URL.name: self.sql_url,
            "DAGSTER_HOME": str(self.home),
            **spark,  # the session's warm Spark Connect server: the faults are about Dagster and SQL
        }
        self.engine = reference_db.make_engine(self.sql_url)
        reference_db.reset_base_tables(self.engine)
        self.store = GameStreamStore(
            endpoint_url=stack_env[settings.S3_ENDPOINT_URL.name],
            access_key=stack_env[settings.S3_ACCESS_KEY.name],
            secret_key=stack_env[settings.S3_SECRET_KEY.name],
            bucket=stack_env[settings.S3_BUCKET.name],
        )
        self.store.ensure_bucket()
        self.games: dict[str, bytes] = {}
        self.daemon = None
        self._instance = None
        self.instance()  # create the instance's SQLite storage before any daemon process does
        self.max_working = 0
        self._watching = False
        self._watcher = None

    def start_daemon(self):
        self.daemon = start_dagster(self.work, self.env)

    def kill_daemon_group(self):
        """A container crash: the daemon, its code server and the run workers, SIGKILL at once."""
        self.daemon.crash()

    def stop(self):
        self._watching = False
        if self._watcher:
            self._watcher.join(timeout=5)
        if self.daemon is not None:
            pids = self.daemon.pids
            self.daemon.stop()
            assert not any(processes.alive(pid) for pid in pids)
        if self._instance is not None:
            self._instance.dispose()
        self.engine.dispose()

    def schedule(self, game_id: str, home: int = 101, away: int = 205):
        with self.engine.begin() as conn:
            conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=home, away_teamid=away))

    def finish(self, game_id: str, seed: int):
        """The live path publishes a final version: it files it in the inbox, then archives the bytes."""
        data = random_game(seed, 101, 205, ROSTERS, shots=40)
        self.games[game_id] = data
        final_tables_db.file_completions(self.engine, [final_tables_db.Completion(game_id, data)])
        self.store.archive(game_id, data)

    def expected(self):
        games, teams, players = (reference_db.read_rows(self.engine, t) for t in
                                 (reference_db.games, reference_db.teams, reference_db.players))
        done = []
        for game_id, data in sorted(self.games.items()):
            m = matchup(game_id, games, teams)
            done.append(completed_game(parse_stream(data, m.team_ids), m))
        final = season_totals(players, teams, done)
        return final.players, final.teams

    def counted_exactly_once(self) -> bool:
        try:
            record = final_tables_db.read_record(self.engine)
            return (
                final_tables_db.read_final_tables(self.engine) == self.expected()
                and {g: r.data for g, r in record.items()} == self.games
            )
        except Exception:  # locked, or not written yet
            return False

    def wait_counted(self, timeout: float, what: str):
        processes.wait_until(self.counted_exactly_once, timeout, interval=0.25, what=what + "\n" + self.log_tail())

    def log_tail(self) -> str:
        log = self.work / "daemon.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def instance(self):
        """The daemon's instance, read from the test process (the same SQLite run storage).
        Created once, before the daemon starts: two processes creating a fresh SQLite storage
        at once can stamp its schema twice (alembic "more than one head")."""
        from dagster import DagsterInstance

        if self._instance is None:
            self._instance = DagsterInstance.from_config(str(self.home))
        return self._instance

    def final_runs(self, instance):
        from dagster import RunsFilter

        return instance.get_runs(filters=RunsFilter(tags={FINAL_TAG: "game_over_sensor"}))

    def timeline(self, since: float) -> str:
        """Each final-tables run: status, attempt, created / started / ended, seconds after `since`
        (a time.time()); printed by the tests as their measured figures."""
        from dagster import RunsFilter

        records = self.instance().get_run_records(filters=RunsFilter(tags={FINAL_TAG: "game_over_sensor"}))
        lines = []
        for r in sorted(records, key=lambda r: r.create_timestamp):
            at = lambda t: f"{t - since:+.1f}" if t else "-"  # noqa: E731
            lines.append(
                f"run {r.dagster_run.run_id[:8]} {r.dagster_run.status.value} attempt "
                f"{r.dagster_run.tags.get('sidearm/attempt')} pending {r.dagster_run.tags.get('sidearm/pending_games')} "
                f"created {at(r.create_timestamp.timestamp())} started {at(r.start_time)} ended {at(r.end_time)}"
            )
        return "\n".join(lines)

    def wait_success(self, instance, timeout: float = 120):
        """The run that wrote the tables also finishes (its checks and events come after the write)."""
        processes.wait_until(
            lambda: any(r.status.value == "SUCCESS" for r in self.final_runs(instance)), timeout,
            interval=0.5, what="a successful final-tables run\n" + self.log_tail(),
        )

    def watch_concurrency(self):
        """Samples the final-tables runs every 0.1 s: the most ever STARTING/STARTED together."""
        self._watching = True
        instance = self.instance()

        def loop():
            while self._watching:
                try:
                    working = [r for r in self.final_runs(instance) if r.status.value in WORKING]
                    self.max_working = max(self.max_working, len(working))
                except Exception:
                    pass
                time.sleep(0.1)

        self._watcher = threading.Thread(target=loop, daemon=True)
        self._watcher.start()


@pytest.fixture
def world(embedded_stack, warm_spark, tmp_path):
    w = FinalWorld({**embedded_stack, settings.S3_BUCKET.name: f"faults-{tmp_path.name[-20:].lower().replace('_', '-')}"},
                   tmp_path, warm_spark)
    try:
        yield w
    finally:
        w.stop()


@pytest.mark.timeout(600)
def test_games_ending_together_coalesce_into_one_run_at_a_time_each_counted_once(world):
    """12 games end within seconds; most of them while a final run is in flight."""
    game_ids = [f"together-{i:02d}" for i in range(12)]
    for game_id in game_ids:
        world.schedule(game_id)
    world.start_daemon()
    world.watch_concurrency()
    instance = world.instance()
    first_at = time.time()
    for i, game_id in enumerate(game_ids[:3]):
        world.finish(game_id, seed=100 + i)
    processes.wait_until(
        lambda: any(r.status.value == "STARTED" for r in world.final_runs(instance)), 240, interval=0.1,
        what="the first final run working\n" + world.log_tail(),
    )
    for i, game_id in enumerate(game_ids[3:], start=3):  # these end while that run works
        world.finish(game_id, seed=100 + i)
        time.sleep(1.0)
    started = time.monotonic()
    world.wait_counted(300, "all 12 games counted once")
    print(f"all counted {time.monotonic() - started:.1f} s after the last game ended")
    world.wait_success(instance)
    print(world.timeline(first_at))
    runs = world.final_runs(instance)
    assert world.max_working == 1, world.max_working
    # Most games ended while a run worked: that run's next rounds or a next run counted them,
    # together (coalesced: fewer runs than games; on a slow machine one run's rounds take all).
    assert 1 <= len(runs) < 12, [r.status for r in runs]
    assert final_tables_db.read_state(world.engine)["completed_games"] == 12
    assert len(final_tables_db.read_record(world.engine)) == 12


@pytest.mark.timeout(600)
def test_crash_while_the_final_run_is_starting_is_failed_by_monitoring_and_counted_once(world):
    """Daemon, code server and run worker killed together while the run is STARTING."""
    world.schedule("crash-game")
    world.start_daemon()
    instance = world.instance()
    world.finish("crash-game", seed=7)
    starting = processes.wait_until(
        lambda: next((r for r in world.final_runs(instance) if r.status.value == "STARTING"), None),
        240, interval=0.02, what="a final-tables run in STARTING\n" + world.log_tail(),
    )
    world.kill_daemon_group()
    killed_at, killed_wall = time.monotonic(), time.time()
    assert instance.get_run_by_id(starting.run_id).status.value in ("STARTING", "STARTED")
    world.start_daemon()  # the container restarts
    world.wait_counted(300, "the game counted after the crash")
    recovered = time.monotonic() - killed_at
    print(f"counted {recovered:.1f} s after the crash (start timeout {START_TIMEOUT} s)")
    lost = instance.get_run_by_id(starting.run_id)
    assert lost.status.value == "FAILURE", lost.status
    world.wait_success(instance)
    print(world.timeline(killed_wall))
    assert sorted(final_tables_db.read_record(world.engine)) == ["crash-game"]


@pytest.mark.timeout(600)
def test_a_locked_sidearmdb_fails_the_run_which_is_retried_and_counts_the_last_game(world):
    """sidearmdb locked while the final run works; it is the last game to end."""
    world.schedule("locked-game")
    world.start_daemon()
    instance = world.instance()
    world.finish("locked-game", seed=11)
    processes.wait_until(
        lambda: any(r.status.value == "STARTED" for r in world.final_runs(instance)),
        240, interval=0.05, what="the final run STARTED\n" + world.log_tail(),
    )
    locker = sqlite3.connect(world.sql_url[len("sqlite:///"):], timeout=10)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds sidearmdb
    try:
        failed = processes.wait_until(
            lambda: next((r for r in world.final_runs(instance) if r.status.value == "FAILURE"), None),
            120, interval=0.2, what="the final run failing on the lock\n" + world.log_tail(),
        )
        lock_seconds_after_failure = 3
        time.sleep(lock_seconds_after_failure)
    finally:
        locker.rollback()
        locker.close()
    released, released_wall = time.monotonic(), time.time()
    world.wait_counted(300, "the game counted after the lock went")
    print(f"counted {time.monotonic() - released:.1f} s after the lock went")
    world.wait_success(instance)
    print(world.timeline(released_wall))
    assert failed.run_id in {r.run_id for r in world.final_runs(instance)}
    assert sorted(final_tables_db.read_record(world.engine)) == ["locked-game"]


@pytest.mark.timeout(600)
def test_object_store_restarted_empty_never_drops_a_counted_game(warm_spark, tmp_path):
    """S3 restarts empty (moto keeps objects in memory), then a game restreams."""
    stack_dir = tmp_path / "stack"
    s3_port, mongo_port = free_port(), free_port()
    stack = start_stack(stack_dir, {"s3": s3_port, "mongo": mongo_port})
    world = FinalWorld(dict(stack.env), tmp_path, warm_spark)
    try:
        world.schedule("first")
        world.schedule("second")
        world.start_daemon()
        world.finish("first", seed=21)
        world.wait_counted(300, "the first game counted")

        stop_stack(stack_dir, only=("s3",))
        start_stack(stack_dir, {"s3": s3_port, "mongo": mongo_port})  # a new, empty S3 on the same port
        world.store.ensure_bucket()
        assert world.store.list_archive() == {}
        world.finish("second", seed=22)  # the game restreamed after the restart ends
        restarted, restarted_wall = time.monotonic(), time.time()
        world.wait_counted(300, "both games counted after S3 came back empty")
        print(f"both counted {time.monotonic() - restarted:.1f} s after the second game ended")

        from dagster import AssetKey

        def teams2_metadata():
            records = world.instance().fetch_materializations(AssetKey("teams2"), limit=20).records
            return [r.asset_materialization.metadata for r in records]

        # The run that put it back reports it (its materialization follows the committed write).
        processes.wait_until(
            lambda: any(m["rearchived"].value == ["first"] for m in teams2_metadata()), 120, interval=0.5,
            what="the re-archiving reported in the teams2 metadata\n" + world.log_tail(),
        )
        # The run put it back after its commit (the archive marker was gone with the store).
        assert world.store.read_archive("first")[0] == world.games["first"]
        processes.wait_until(
            lambda: teams2_metadata()[0]["season_games"].value == 2, 120, interval=0.5,
            what="the last run's metadata",
        )
        print(world.timeline(restarted_wall))
    finally:
        world.stop()
        stop_stack(stack_dir)


class ThrottlingS3Proxy:
    """An HTTP forwarder on loopback in front of the S3 server: while `throttling` is set it answers
    503 SlowDown (what S3 and MinIO answer when overloaded) to every request under `completed/`."""

    def __init__(self, upstream: str):
        import http.client
        import http.server
        from urllib.parse import urlparse

        target = urlparse(upstream)
        proxy = self
        self.throttling = threading.Event()
        self.throttled = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b""  # pyarrow's S3 client (the lake) sends chunked bodies
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()

            def _forward(self):
                body = self._body()
                if proxy.throttling.is_set() and "/completed/" in self.path:
                    proxy.throttled += 1
                    reply = b'<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("transfer-encoding", "expect", "content-length")}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client closing its kept connection
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.timeout(600)
def test_a_throttling_object_store_never_leaves_a_published_final_uncounted(embedded_stack, warm_spark, tmp_path):
    """The S3 server answers 503 SlowDown to every archive request for a few seconds while the live
    path publishes the last game of the day and its final-tables run works: the game is counted
    exactly once within 60 s of the throttling ending, with no other game ending."""
    proxy = ThrottlingS3Proxy(embedded_stack[settings.S3_ENDPOINT_URL.name])
    env = {**embedded_stack, settings.S3_BUCKET.name: f"throttle-{tmp_path.name[-16:].lower().replace('_', '-')}",
           settings.S3_ENDPOINT_URL.name: proxy.url}
    world = FinalWorld(env, tmp_path, warm_spark)
    try:
        world.schedule("last-game")
        world.start_daemon()
        data = random_game(31, 101, 205, ROSTERS, shots=40)
        world.games["last-game"] = data
        proxy.throttling.set()
        world.store.write("last-game", data)  # the live path finds it final: files, archives (throttled)
        instance = world.instance()
        processes.wait_until(lambda: proxy.throttled >= 3, 120, interval=0.1, what="archive requests throttled")
        time.sleep(2.0)  # the fault's duration: S3 throttles for two more seconds
        proxy.throttling.clear()
        ended = time.monotonic()
        world.wait_counted(60, "the last game counted within 60 s of the throttling ending")
        print(f"counted {time.monotonic() - ended:.1f} s after the throttling ended ({proxy.throttled} requests throttled)")
        world.wait_success(instance)
        assert sorted(final_tables_db.read_record(world.engine)) == ["last-game"]
    finally:
        world.stop()
        proxy.close()


@pytest.mark.timeout(600)
def test_object_store_restarted_empty_while_runs_are_in_flight_loses_no_completed_game(warm_spark, tmp_path):
    """Two games end; while the final-tables run for them is STARTING the S3 server restarts empty:
    the completions are in sidearmdb's inbox, so both are counted once within 60 s."""
    stack_dir = tmp_path / "stack"
    s3_port, mongo_port = free_port(), free_port()
    stack = start_stack(stack_dir, {"s3": s3_port, "mongo": mongo_port})
    world = FinalWorld(dict(stack.env), tmp_path, warm_spark)
    try:
        for game_id in ("pair-a", "pair-b"):
            world.schedule(game_id)
        world.start_daemon()
        instance = world.instance()
        world.finish("pair-a", seed=41)
        world.finish("pair-b", seed=42)
        processes.wait_until(
            lambda: any(r.status.value in ("STARTING", "STARTED") for r in world.final_runs(instance)),
            240, interval=0.02, what="a final-tables run in flight\n" + world.log_tail(),
        )
        stop_stack(stack_dir, only=("s3",))
        start_stack(stack_dir, {"s3": s3_port, "mongo": mongo_port})  # a new, empty S3 on the same port
        restarted = time.monotonic()
        world.wait_counted(60, "both games counted within 60 s of S3 coming back empty")
        print(f"both counted {time.monotonic() - restarted:.1f} s after S3 came back empty")
        world.wait_success(instance)
    finally:
        world.stop()
        stop_stack(stack_dir)


@pytest.mark.timeout(600)
def test_a_run_worker_killed_while_started_is_failed_and_the_game_counted_within_a_minute(world):
    """The run worker dies (killed with its container) after it started and before its write: the
    game-over sensor sees its process gone and fails the run, whose retry counts the game."""
    from sidearm_assets.sensors.final import run_worker_pid

    world.schedule("lost-worker")
    world.start_daemon()
    instance = world.instance()
    world.finish("lost-worker", seed=51)
    run = processes.wait_until(
        lambda: next((r for r in world.final_runs(instance) if r.status.value == "STARTED"), None),
        240, interval=0.01, what="a STARTED final-tables run\n" + world.log_tail(),
    )
    pid = processes.wait_until(lambda: run_worker_pid(instance, run.run_id), 30, interval=0.01, what="its worker's pid")
    for child in __import__("psutil").Process(pid).children(recursive=True):  # its step processes die with it
        child.kill()
    os.kill(pid, 9)
    killed = time.monotonic()
    world.wait_counted(60, "the game counted within 60 s of its run worker's death")
    print(f"counted {time.monotonic() - killed:.1f} s after the run worker was killed")
    assert instance.get_run_by_id(run.run_id).status.value == "FAILURE"
    world.wait_success(instance)
    assert sorted(final_tables_db.read_record(world.engine)) == ["lost-worker"]
