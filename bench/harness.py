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

from sidearm_assets import processes
from sidearm_assets.local_stack import start_stack, stop_stack


@contextmanager
def embedded_stack(keep_dir: str | None, prefix: str, spark: bool = False):
    """Yields (work folder, settings env with DAGSTER_HOME); `spark` adds the warm Spark Connect
    server (SIDEARM_SPARK_REMOTE in the env)."""
    work = Path(keep_dir or tempfile.mkdtemp(prefix=prefix)).resolve()
    try:
        stack = start_stack(work / "stack", s3_port=0, mongo_port=0, spark=spark, spark_port=0)
        yield work, {**os.environ, **stack.env}
    finally:
        stop_stack(work / "stack")
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)


@contextmanager
def daemon(work: Path, env: dict, log_name: str = "daemon.log"):
    """`dagster-daemon run` for this code location with `env`, stopped by pid on exit."""
    daemon_bin = str(Path(sys.executable).with_name("dagster-daemon"))
    proc = processes.spawn([daemon_bin, "run", "-m", "sidearm_assets"], work / log_name, env=env, cwd=work)
    print(f"daemon pid {proc.pid}, log {work / log_name}", file=sys.stderr)
    try:
        yield proc
    finally:
        processes.stop(proc.pid)


@contextmanager
def embedded_daemon(keep_dir: str | None, prefix: str, spark: bool = False):
    """Yields (work folder, settings env with DAGSTER_HOME); the daemon's log is work/daemon.log."""
    with embedded_stack(keep_dir, prefix, spark=spark) as (work, env), daemon(work, env):
        yield work, env
