"""What both benchmarks stand on: the embedded stack and a Dagster daemon for this code location,
in a work folder, stopped by pid at the end whatever happens."""

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
def embedded_daemon(keep_dir: str | None, prefix: str):
    """Yields (work folder, settings env with DAGSTER_HOME); the daemon's log is work/daemon.log."""
    work = Path(keep_dir or tempfile.mkdtemp(prefix=prefix)).resolve()
    daemon = None
    try:
        stack = start_stack(work / "stack", s3_port=0, mongo_port=0)
        env = {**os.environ, **stack.env}
        daemon_bin = str(Path(sys.executable).with_name("dagster-daemon"))
        daemon = processes.spawn([daemon_bin, "run", "-m", "sidearm_assets"], work / "daemon.log", env=env, cwd=work)
        print(f"daemon pid {daemon.pid}, logs in {work}", file=sys.stderr)
        yield work, env
    finally:
        if daemon is not None:
            processes.stop(daemon.pid)
        stop_stack(work / "stack")
        if not keep_dir:
            shutil.rmtree(work, ignore_errors=True)
