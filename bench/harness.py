"""What the benchmarks stand on: the embedded stack (with or without the warm Spark Connect server)
and a Dagster daemon for this code location, in a work folder, stopped by pid at the end whatever
happens."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sidearm_assets.local.dagster_processes import running_dagster, wait_for_idle_tick
from sidearm_assets.local.local_stack import FREE_PORTS, start_stack, stop_stack

LIVE_SENSOR = "gamestream_sensor"  # sensors/live.py (not imported here: it loads Dagster)


@contextmanager
def embedded_stack(keep_dir: str | None, prefix: str, spark: bool = False):
    """Yields (work folder, settings env with DAGSTER_HOME); `spark` adds the warm Spark Connect
    server (SIDEARM_SPARK_REMOTE in the env)."""
    work = Path(keep_dir or tempfile.mkdtemp(prefix=prefix)).resolve()
    try:
        stack = start_stack(work / "stack", FREE_PORTS, spark=spark)
        yield work, {**os.environ, **stack.env}
    finally:
        stop_stack(work / "stack")
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def daemon(work: Path, env: dict, log_name: str = "daemon.log"):
    """A code server for this code location and `dagster-daemon run` pointed at it
    (local/dagster_processes.py), both stopped by pid on exit; yields the daemon's process once the
    live sensor has ticked (its watcher is running), so a measurement starts on a daemon in its
    steady state, not on one still loading."""
    with running_dagster(work, env, daemon_log=log_name) as procs:
        print(f"daemon pid {procs.daemon.pid}, code server pid {procs.code_server.pid}, logs in {work}", file=sys.stderr)
        wait_for_idle_tick(work / log_name, LIVE_SENSOR, 0, timeout=120)
        yield procs.daemon


@contextmanager
def embedded_daemon(keep_dir: str | None, prefix: str, spark: bool = False):
    """Yields (work folder, settings env with DAGSTER_HOME); the daemon's log is work/daemon.log."""
    with embedded_stack(keep_dir, prefix, spark=spark) as (work, env), daemon(work, env):
        yield work, env


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc: each thread's `children`)."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
