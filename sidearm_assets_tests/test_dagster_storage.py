"""The embedded stack's Dagster storage (local/dagster_storage.py): Dagster's SQLite files with
kept connections, readable by Dagster's own storage, safe across threads and a fork."""

from __future__ import annotations

import os
import threading

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from sidearm_assets.local import dagster_storage
from sidearm_assets.local.local_instance import write_local_instance

DOC = AssetKey("boxscore_doc")


def report(instance, game: str, seq: int) -> None:
    instance.report_runless_asset_event(AssetMaterialization(DOC, partition=game, metadata={"seq": seq}))


def latest_seq(instance, game: str | None = None) -> int:
    """The `seq` of the newest materialization (of `game`'s partition)."""
    records = instance.fetch_materializations(DOC, limit=1000).records  # newest first
    record = next(r for r in records if game is None or r.partition_key == game)
    return record.event_log_entry.asset_materialization.metadata["seq"].value


@pytest.fixture
def home(tmp_path):
    return write_local_instance(tmp_path / "dagster_home")


def test_the_local_instance_uses_the_kept_storages_over_dagsters_files(home):
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is dagster_storage.KeptEngineEventLogStorage
        assert type(instance.run_storage) is dagster_storage.KeptEngineRunStorage
        assert type(instance.schedule_storage) is dagster_storage.KeptEngineScheduleStorage
        instance.add_dynamic_partitions("games", ["g1", "g2"])
        for seq in range(5):
            report(instance, "g1", seq)
    assert (home / "history" / "runs" / "index.db").exists() and (home / "history" / "runs.db").exists()

    plain = home.parent / "plain_home"  # Dagster's default storage, pointed at the same files
    plain.mkdir()
    (plain / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    with DagsterInstance.from_config(str(plain)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert latest_seq(instance) == 4
        assert instance.get_dynamic_partitions("games") == ["g1", "g2"]
        report(instance, "g2", 7)  # written by Dagster's own storage, read back by ours
    with DagsterInstance.from_config(str(home)) as instance:
        assert latest_seq(instance, "g2") == 7 and latest_seq(instance, "g1") == 4


def test_threads_share_the_storage_and_every_event_is_stored(home):
    with DagsterInstance.from_config(str(home)) as instance:
        errors = []

        def write(game):
            try:
                for seq in range(40):
                    report(instance, game, seq)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(f"g{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(instance.fetch_materializations(DOC, limit=1000).records) == 160


def test_a_forked_child_opens_its_own_connections_and_the_parent_keeps_its_own(home):
    with DagsterInstance.from_config(str(home)) as instance:
        report(instance, "g1", 1)  # the parent now holds pooled connections
        engine = instance.event_log_storage._engines["index"]
        assert engine.pool.checkedin() >= 1
        pid = os.fork()
        if pid == 0:  # the child: the inherited instance, on connections of its own
            code = 1
            try:
                inherited = engine.pool.checkedin()  # the parent's connections: none may be used here
                report(instance, "g1", 2)
                code = 0 if inherited == 0 else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        report(instance, "g1", 3)  # the parent's connections still work after the child exits
        assert [r.event_log_entry.asset_materialization.metadata["seq"].value
                for r in instance.fetch_materializations(DOC, limit=10, ascending=True).records] == [1, 2, 3]


def test_dispose_closes_every_kept_connection_and_old_shards_are_let_go(home, monkeypatch):
    monkeypatch.setattr(dagster_storage, "MAX_SHARD_ENGINES", 3)
    instance = DagsterInstance.from_config(str(home))
    storage = instance.event_log_storage
    for n in range(5):  # five run shards and the index: only the three most recently used are kept
        with storage.run_connection(f"run-{n}") as conn:
            conn.exec_driver_sql("select 1")
    assert list(storage._engines) == ["run-2", "run-3", "run-4"]
    report(instance, "g1", 1)
    pools = [e.pool for e in storage._engines.values()] + [instance.run_storage._engine.pool]
    assert all(p.checkedin() >= 1 for p in pools)
    instance.dispose()  # closes what the pools hold (an engine's dispose(close=False) would not)
    assert all(p.checkedin() == 0 and p.checkedout() == 0 for p in pools)
    assert storage._engines == {}


def test_a_wipe_leaves_no_connection_on_the_deleted_run_files(home):
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        with storage.run_connection("run-1") as conn:
            conn.exec_driver_sql("select 1")
        report(instance, "g1", 1)
        storage.wipe()
        assert [f for f in open_files_under(home) if "run-1" in f] == []
        with storage.run_connection("run-1") as conn:  # the shard is made again, on a new file
            conn.exec_driver_sql("select 1")
        assert (home / "history" / "runs" / "run-1.db").exists()


def open_files_under(folder) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def test_instances_opened_and_closed_leave_no_database_open(home):
    """As the code server does for a sensor tick that needs the instance: open, use, close."""
    for _ in range(20):
        with DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs(limit=1)
            instance.all_instigator_state()
            instance.get_dynamic_partitions("games")
            report(instance, "g1", 1)
    assert open_files_under(home) == []


def test_schemas_are_checked_once_per_process_and_run_databases_by_every_instance(home, monkeypatch):
    """Checking a schema loads all of Dagster's migration scripts: the code server opens an
    instance for every game-over sensor tick."""
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.schedules.sqlite import sqlite_schedule_storage

    checked = []
    for module in (sqlite_event_log, sqlite_run_storage, sqlite_schedule_storage):
        real = module.check_alembic_revision
        monkeypatch.setattr(module, "check_alembic_revision",
                            lambda config, conn, real=real, name=module.__name__: checked.append(name) or real(config, conn))

    def use(instance):
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        report(instance, "g1", 1)
        with instance.event_log_storage.run_connection("run-1") as conn:
            conn.exec_driver_sql("select 1")

    with DagsterInstance.from_config(str(home)) as instance:
        use(instance)
    assert len(set(checked)) == 3  # runs.db, schedules.db, the event log's index and run databases
    checked.clear()
    with DagsterInstance.from_config(str(home)) as instance:
        use(instance)
    # only the runs' own databases: run-1's and the one runless events go to
    assert checked == ["dagster._core.storage.event_log.sqlite.sqlite_event_log"] * 2
