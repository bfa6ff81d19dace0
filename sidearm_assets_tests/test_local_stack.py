"""`sidearm-local` and the servers it runs (S3, Mongo wire, Spark Connect), against the real
processes (no mocks)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sidearm_assets import settings
from sidearm_assets.local import local_stack, processes
from sidearm_assets.storage import clients, reference_db

SETTING_NAMES = [s.name for s in settings.ALL_SETTINGS] + ["DAGSTER_HOME"]  # the local instance too


def sidearm_local(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "sidearm-local"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "sidearm_assets.local.local_stack"]
    return subprocess.run(
        cmd + list(args), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def parse_exports(stdout: str) -> dict[str, str]:
    """`export NAME=value` lines as a shell would read them; any other stdout line fails."""
    out = {}
    for line in stdout.splitlines():
        words = shlex.split(line)
        assert len(words) == 2 and words[0] == "export", f"not an export line: {line!r}"
        name, _, value = words[1].partition("=")
        assert name not in out, f"{name} exported twice"
        out[name] = value
    return out


def recorded_pids(directory: Path) -> dict[str, int]:
    state = json.loads((directory / local_stack.STATE_FILE).read_text())
    return {name: s["pid"] for name, s in state["services"].items()}


@pytest.fixture
def stack_dir(tmp_path):
    """A stack folder whose servers are stopped by pid whatever the test did."""
    directory = tmp_path / "stack"
    yield directory
    local_stack.stop_stack(directory)


def test_up_twice_status_and_down_through_the_cli(stack_dir):
    # The defaults with fallback, as a user runs it (another stack may hold 9000/27017: then free ports).
    # --no-spark: the stores only (the Spark Connect server has its own test below).
    first = sidearm_local("up", "--dir", str(stack_dir), "--no-spark", env={"DELAY": "0.5"})
    assert first.returncode == 0, first.stderr

    exports = parse_exports(first.stdout)
    assert list(exports) == SETTING_NAMES
    assert exports["DELAY"] == "0.5"
    assert exports["SIDEARM_SQL_URL"] == f"sqlite:///{stack_dir.resolve() / 'sidearmdb.sqlite'}"
    assert exports["SIDEARM_S3_BUCKET"] == "gamestreams"
    assert exports["SIDEARM_MONGO_DB"] == "sidearm"
    assert exports["SIDEARM_S3_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert exports["SIDEARM_MONGO_URI"].startswith("mongodb://127.0.0.1:")
    assert exports["SIDEARM_SPARK_REMOTE"] == ""  # no server: local Spark in the runs
    assert "QueuedRunCoordinator" in (stack_dir.resolve() / "dagster_home" / "dagster.yaml").read_text()
    assert exports["DAGSTER_HOME"] == str(stack_dir.resolve() / "dagster_home")
    env_file = (stack_dir / "sidearm.env").read_text().splitlines()
    assert dict(line.split("=", 1) for line in env_file if not line.startswith("#")) == exports

    pids = recorded_pids(stack_dir)
    assert set(pids) == {"s3", "mongo"} and all(processes.alive(p) for p in pids.values())
    # Really answering: the bucket exists, Mongo pings, sidearmdb holds the base data.
    s3 = clients.s3_client(exports["SIDEARM_S3_ENDPOINT_URL"], "any", "any")
    assert s3.head_bucket(Bucket="gamestreams")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert clients.mongo_client(exports["SIDEARM_MONGO_URI"]).admin.command("ping")["ok"] == 1
    engine = reference_db.make_engine(exports["SIDEARM_SQL_URL"])
    assert len(reference_db.read_rows(engine, reference_db.players)) == 20
    engine.dispose()

    second = sidearm_local("up", "--dir", str(stack_dir), "--no-spark", env={"DELAY": "0.5"})
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "reusing" in second.stderr
    assert recorded_pids(stack_dir) == pids

    status = sidearm_local("status", "--dir", str(stack_dir))
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert rows["s3"][1:] == [str(pids["s3"]), exports["SIDEARM_S3_ENDPOINT_URL"], "answering"]
    assert rows["mongo"][1:] == [str(pids["mongo"]), exports["SIDEARM_MONGO_URI"], "answering"]
    assert rows["spark"][1:] == ["-", "-", "off"]

    down = sidearm_local("down", "--dir", str(stack_dir))
    assert down.returncode == 0, down.stderr
    assert [p for p in pids.values() if processes.alive(p)] == []
    assert not (stack_dir / local_stack.STATE_FILE).exists()
    assert f"pid {pids['s3']}" in down.stderr and f"pid {pids['mongo']}" in down.stderr

    after = sidearm_local("status", "--dir", str(stack_dir))
    assert after.returncode == 1
    assert "not recorded" in after.stdout
    again = sidearm_local("down", "--dir", str(stack_dir))
    assert again.returncode == 0 and "nothing to stop" in again.stderr


def test_falls_back_to_a_free_port_when_the_default_is_taken(stack_dir):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like a server: a TIME_WAIT left by an earlier test's stack on 9000 must not stop the bind.
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            blocker.bind(("127.0.0.1", local_stack.DEFAULT_PORTS["s3"]))
            blocker.listen(1)
        except OSError:
            pass  # something else holds 9000 already: taken either way
        assert not local_stack.port_free(local_stack.DEFAULT_PORTS["s3"])

        info = local_stack.start_stack(stack_dir)
        s3_port = info.services["s3"].port
        assert s3_port != local_stack.DEFAULT_PORTS["s3"]
        assert info.env["SIDEARM_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{s3_port}"
        assert local_stack.answering("s3", info.env["SIDEARM_S3_ENDPOINT_URL"])
    finally:
        blocker.close()
    local_stack.stop_stack(stack_dir)
    assert [p for p in info.pids if processes.alive(p)] == []


def test_an_explicit_port_that_is_taken_is_an_error(stack_dir):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        with pytest.raises(local_stack.StackError, match=f"port {taken} was asked for but is taken"):
            local_stack.start_stack(stack_dir, {"s3": taken, "mongo": 0})
    assert not (stack_dir / local_stack.STATE_FILE).exists()


def test_up_restarts_a_half_dead_stack_and_down_spares_a_reused_pid(stack_dir):
    info = local_stack.start_stack(stack_dir, local_stack.FREE_PORTS)
    old = {name: s.pid for name, s in info.services.items()}
    processes.crash(old["mongo"], group=False)

    again = local_stack.start_stack(stack_dir, local_stack.FREE_PORTS)
    assert not again.reused
    assert set(again.pids).isdisjoint(old.values())
    assert not processes.alive(old["s3"])  # the surviving half was stopped, not leaked
    assert all(local_stack.answering(s.name, s.url) for s in again.services.values())

    # A recorded pid that now runs another program (pid reuse) must be left alone by `down`.
    stranger = processes.spawn(["sleep", "60"], stack_dir / "stranger.log")
    try:
        state = json.loads((stack_dir / local_stack.STATE_FILE).read_text())
        real_mongo = state["services"]["mongo"]["pid"]
        state["services"]["mongo"]["pid"] = stranger.pid
        (stack_dir / local_stack.STATE_FILE).write_text(json.dumps(state))

        report = local_stack.stop_stack(stack_dir)

        assert stranger.poll() is None, "down killed a process it did not start"
        assert any(str(stranger.pid) in line for line in report.skipped)
        assert not processes.alive(again.services["s3"].pid)
    finally:
        processes.stop(stranger.pid)
    # The real nx-27017 was unrecorded by the test above: stop it by its pid.
    processes.stop(real_mongo, group=False)


def test_mongo_wire_server_supports_project_calls(embedded_stack):
    """Every pymongo call the project makes, against the real nx-27017 (quirks: docs/embedded-stack.md)."""
    import pymongo
    from pymongo import ReplaceOne

    client = clients.mongo_client(embedded_stack["SIDEARM_MONGO_URI"])
    assert client.admin.command("ping")["ok"] == 1
    collection = client["sidearm_wire_test"]["boxscores"]
    collection.drop()

    # Index on (game_id, seq): created; nx-27017 renames it and reports every direction as 1.
    collection.create_index([("game_id", pymongo.ASCENDING), ("seq", pymongo.DESCENDING)], name="game_id_seq")
    collection.create_index([("game_id", 1), ("seq", -1)], name="game_id_seq")  # again: harmless
    keys = [list(ix["key"].items()) for ix in collection.list_indexes()]
    assert [("game_id", 1), ("seq", 1)] in keys

    # Idempotent upsert keyed by _id, with _id inside the replacement (what BoxScoreStore.upsert does).
    doc = {"_id": 55, "game_id": "gamestream", "event_id": 55, "seq": 56, "final": False,
           "home": {"teamid": 101, "score": 9, "players": [{"id": 1, "pct": 0.33}]}}
    first = collection.replace_one({"_id": 55}, doc, upsert=True)
    assert first.upserted_id == 55
    collection.replace_one({"_id": 55}, doc, upsert=True)
    assert list(collection.find({"_id": 55})) == [doc]
    assert collection.count_documents({}) == 1

    # The quirk the project works around: without _id in the replacement, an ObjectId is made up.
    quirk = collection.replace_one({"_id": 77}, {"game_id": "quirk", "seq": 1}, upsert=True)
    assert quirk.upserted_id != 77
    assert collection.find_one({"_id": 77}) is None
    assert collection.delete_many({"game_id": "quirk"}).deleted_count == 1

    # Bulk ReplaceOne upserts, string ids for other games, the -1 game-over id.
    ops = [ReplaceOne({"_id": i}, {"_id": i, "game_id": "gamestream", "event_id": i, "seq": i + 1}, upsert=True)
           for i in range(56, 60)]
    ops += [ReplaceOne({"_id": f"other:{i}"}, {"_id": f"other:{i}", "game_id": "other", "event_id": i, "seq": i + 1},
                       upsert=True) for i in range(3)]
    ops.append(ReplaceOne({"_id": -1}, {"_id": -1, "game_id": "gamestream", "event_id": -1, "seq": 70}, upsert=True))
    result = collection.bulk_write(ops)
    assert result.upserted_count == len(ops)
    assert collection.find_one({"_id": "other:2"})["seq"] == 3
    assert collection.find_one({"_id": -1})["event_id"] == -1

    # Latest document of a game: find_one with sort, and find with sort + limit.
    assert collection.find_one({"game_id": "gamestream"}, sort=[("seq", -1)])["_id"] == -1
    assert collection.find_one({"game_id": "other"}, sort=[("seq", -1)])["_id"] == "other:2"
    newest = collection.find({"game_id": "gamestream"}).sort("seq", pymongo.DESCENDING).limit(2)
    assert [d["_id"] for d in newest] == [-1, 59]
    assert [d["seq"] for d in collection.find({"game_id": "gamestream"}, sort=[("seq", 1)], limit=3)] == [56, 57, 58]

    # Projection: top-level fields work; nested paths come back flattened (a quirk).
    assert list(collection.find({"game_id": "other"}, {"_id": 1, "seq": 1}).sort("seq", 1)) == [
        {"_id": "other:0", "seq": 1}, {"_id": "other:1", "seq": 2}, {"_id": "other:2", "seq": 3}]
    assert collection.find_one({"_id": 55}, {"home": 0, "final": 0}) == {
        "_id": 55, "game_id": "gamestream", "event_id": 55, "seq": 56}

    assert collection.count_documents({"game_id": "gamestream"}) == 6
    assert collection.count_documents({"seq": {"$gte": 57}}) == 5
    assert collection.delete_many({"game_id": "other"}).deleted_count == 3
    assert collection.count_documents({}) == 6
    assert collection.find_one({"game_id": "nothing"}, sort=[("seq", -1)]) is None
    collection.drop()


def test_spark_connect_server_up_warm_reused_left_out_and_down(stack_dir):
    """`up` starts the Spark Connect server too (pid recorded, log in DIR, warmed), exports its
    URL; `up` again reuses it; `up --no-spark` stops it alone and exports an empty URL; `down`
    stops what is left. A stale SIDEARM_SPARK_REMOTE in the caller's shell is never re-exported."""
    stale = {"SIDEARM_SPARK_REMOTE": "sc://127.0.0.1:1"}
    up = sidearm_local("up", "--dir", str(stack_dir), "--s3-port", "0", "--mongo-port", "0", "--spark-port", "0",
                       env=stale, timeout=600)
    assert up.returncode == 0, up.stderr
    exports = parse_exports(up.stdout)
    remote = exports["SIDEARM_SPARK_REMOTE"]
    assert remote.startswith("sc://127.0.0.1:") and remote != stale["SIDEARM_SPARK_REMOTE"]
    assert "spark warm: the final-tables job took" in up.stderr
    pids = recorded_pids(stack_dir)
    assert set(pids) == {"s3", "mongo", "spark"} and all(processes.alive(p) for p in pids.values())
    cmdline = (Path(f"/proc/{pids['spark']}/cmdline").read_bytes().split(b"\0"))
    assert b"org.apache.spark.sql.connect.service.SparkConnectServer" in cmdline  # the JVM itself, not a shell
    assert "Spark Connect server started" in (stack_dir / "spark.log").read_text()

    # A real Connect session on it (what the `pyspark` resource makes when SIDEARM_SPARK_REMOTE is set).
    from sidearm_assets.storage.final_spark import close_session, is_connect
    from sidearm_assets.storage.spark_resource import spark_resource

    session = spark_resource(remote=remote).spark_session
    try:
        assert is_connect(session) and session.range(7).count() == 7
    finally:
        close_session(session)

    again = sidearm_local("up", "--dir", str(stack_dir), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stderr and "spark warm" not in again.stderr
    assert recorded_pids(stack_dir) == pids
    assert parse_exports(again.stdout)["SIDEARM_SPARK_REMOTE"] == remote

    status = sidearm_local("status", "--dir", str(stack_dir))
    assert status.returncode == 0, status.stdout
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert rows["spark"][1:] == [str(pids["spark"]), remote, "answering"]

    small = sidearm_local("up", "--dir", str(stack_dir), "--no-spark", env=stale)
    assert small.returncode == 0, small.stderr
    assert parse_exports(small.stdout)["SIDEARM_SPARK_REMOTE"] == ""
    assert f"stopped spark (pid {pids['spark']}" in small.stderr
    assert not processes.alive(pids["spark"])
    assert recorded_pids(stack_dir) == {"s3": pids["s3"], "mongo": pids["mongo"]}

    down = sidearm_local("down", "--dir", str(stack_dir))
    assert down.returncode == 0, down.stderr
    assert [p for p in pids.values() if processes.alive(p)] == []
