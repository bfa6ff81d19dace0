"""The embedded stack's Dagster storage: Dagster's own SQLite storage (same files, same schema,
same durability) whose connections are kept open between uses.

Dagster's SQLite storages build a new SQLAlchemy engine for every connection and close the
connection after each use. Closing the last connection to a WAL database checkpoints it, and a
new engine compiles every statement again. The daemon stores each runless event a live-sensor
tick reports through that path, several connections per event, in a burst once per daemon loop:
CPU that a scorer's post meets on a two-core machine. Here each database file has one engine
that keeps a connection open, for a fraction of the CPU per event (`bench/instance_events.py`
measures both; the README's Figures have the latest).

- Threads: a pooled connection serves one thread at a time (`check_same_thread` is off, as
  SQLAlchemy does for pooled SQLite); the event log still takes Dagster's own lock around each use.
- Processes: a forked child never uses its parent's connections (`os.register_at_fork` drops them
  in the child, without closing the parent's).
- Schemas: each database's schema is checked once per process, not by every instance opened.
- `dispose()` (an instance closed) and `wipe()` close them. The schedule storage, which Dagster
  never disposes, keeps its engine but not its connections.

Production keeps PostgreSQL storage (deploy/dagster.yaml), whose engines are pooled already.
`local_instance.local_instance_config` names `SidearmSqliteStorage` under `storage: custom`.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool, QueuePool

POOL_SIZE = 1  # connections kept open per database file (more are opened, then closed, when threads need them)
MAX_OVERFLOW = -1  # no limit on those, as with Dagster's engine per use (a webserver's threads)
# Engines kept for the event log's shards: the index (every asset event) and the runs in progress.
MAX_SHARD_ENGINES = 16

_ENGINES: weakref.WeakSet = weakref.WeakSet()  # every kept engine of this process
_CHECKED: set[str] = set()  # database files whose schema this process has checked (`_CheckedOnce`)


def kept_engine(conn_string: str, busy_timeout: float | None = None, pooled: bool = True):
    """An engine for one SQLite file whose connections stay open in a pool (or, not `pooled`,
    are closed after each use, as Dagster's are: the statement cache is kept all the same)."""
    connect_args = {"check_same_thread": False} if pooled else {}
    if busy_timeout is not None:
        connect_args["timeout"] = busy_timeout
    if not pooled:
        return create_engine(conn_string, poolclass=NullPool, connect_args=connect_args)
    engine = create_engine(conn_string, poolclass=QueuePool, pool_size=POOL_SIZE,
                           max_overflow=MAX_OVERFLOW, connect_args=connect_args)
    _ENGINES.add(engine)
    return engine


def _forget_parent_connections() -> None:
    """In a forked child: the pools start empty; the parent's connections are left to it."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


class _KeptEngine:
    """`connect()` on one kept engine, built on first use (for a storage with a `_conn_string`)."""

    _engine = None
    _engine_lock = threading.Lock()
    _pooled = True

    def _kept_engine(self):
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = kept_engine(self._conn_string, pooled=self._pooled)
        return self._engine

    @contextmanager
    def connect(self):
        with self._kept_engine().connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        super().dispose()


class _CheckedOnce:
    """`from_local` checks the database's schema (creating it when missing) once per process: the
    check loads all of Dagster's migration scripts, about 25 ms of CPU each time, and a code
    server opens an instance for every tick of a sensor that uses it (the game-over sensor's)."""

    _db_name: str

    @classmethod
    def from_local(cls, base_dir: str, inst_data=None):
        conn_string = create_db_conn_string(base_dir, cls._db_name)
        if conn_string in _CHECKED:
            return cls(conn_string, inst_data)
        storage = super().from_local(base_dir, inst_data=inst_data)
        _CHECKED.add(conn_string)
        return storage


class KeptEngineRunStorage(_KeptEngine, _CheckedOnce, SqliteRunStorage):
    """SqliteRunStorage (runs.db) on a kept engine."""

    _db_name = "runs"


class KeptEngineScheduleStorage(_KeptEngine, _CheckedOnce, SqliteScheduleStorage):
    """SqliteScheduleStorage (schedules.db: sensor ticks and cursors) on a kept engine without a
    pool: a DagsterInstance never disposes its schedule storage, so pooled connections would stay
    open as long as any instance object does (each sensor evaluation that opens one)."""

    _db_name = "schedules"
    _pooled = False


class KeptEngineEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage with a kept engine per shard (the index and each run's database), the
    least recently used disposed past `MAX_SHARD_ENGINES`."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, object] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    def _shard_engine(self, shard: str):
        """Under `self._db_lock`, as Dagster's `_connect` holds it."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = kept_engine(self.conn_string_for_shard(shard), SQLITE_BUSY_TIMEOUT_SECONDS)
        self._engines[shard] = engine
        while len(self._engines) > MAX_SHARD_ENGINES:
            _, old = self._engines.popitem(last=False)
            old.dispose()
        if shard not in self._initialized_dbs:  # emptied again by `upgrade()` and `wipe()`
            # The index is checked once per process (a run's own database, which a wipe deletes,
            # by every instance, as Dagster does).
            conn_string = self.conn_string_for_shard(shard)
            if shard != INDEX_SHARD_NAME or conn_string not in _CHECKED:
                self._initdb(engine)
            if shard == INDEX_SHARD_NAME:
                _CHECKED.add(conn_string)
            self._initialized_dbs.add(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            with self._shard_engine(shard).connect() as conn, conn.begin():
                yield conn

    def _close_shards(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_shards()  # Dagster deletes the run shards' files: no connection may stay on them
        super().wipe()

    def dispose(self) -> None:
        self._close_shards()
        super().dispose()


class SidearmSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (`storage: sqlite`, the same files under `base_dir`) on the
    kept-engine storages above."""

    def __init__(self, base_dir: str, inst_data=None):
        self.base_dir = base_dir
        self._run_storage = KeptEngineRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptEngineEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = KeptEngineScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)
