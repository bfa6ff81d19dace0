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

from sidearm_assets.local import processes
from sidearm_assets.local.local_stack import FREE_PORTS, start_stack, stop_stack


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
    """A code server for this code location and `dagster-daemon run` pointed at it (work/workspace.yaml),
    both stopped by pid on exit.

    The topology of `dagster dev` and of production: a daemon started with `-m` manages its own code
    server and replaces it every 60 s (RELOAD_WORKSPACE_INTERVAL in dagster/_daemon/controller.py),
    and the live watcher, which lives in the code server, with it."""
    from sidearm_assets.local.local_stack import free_port, listening

    bin_dir = Path(sys.executable).parent
    port = free_port()
    code = processes.spawn(
        [str(bin_dir / "dagster"), "code-server", "start", "-m", "sidearm_assets", "-h", "127.0.0.1", "-p", str(port)],
        work / "code_server.log", env=env, cwd=work,
    )
    proc = None
    try:
        processes.wait_until(lambda: listening(port), timeout=120, what="the code server")
        (work / "workspace.yaml").write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {port}\n      location_name: sidearm_assets\n"
        )
        proc = processes.spawn([str(bin_dir / "dagster-daemon"), "run", "-w", str(work / "workspace.yaml")],
                               work / log_name, env=env, cwd=work)
        print(f"daemon pid {proc.pid}, code server pid {code.pid}, logs in {work}", file=sys.stderr)
        yield proc
    finally:
        if proc is not None:
            processes.stop(proc.pid)
        processes.stop(code.pid)


@contextmanager
def embedded_daemon(keep_dir: str | None, prefix: str, spark: bool = False):
    """Yields (work folder, settings env with DAGSTER_HOME); the daemon's log is work/daemon.log."""
    with embedded_stack(keep_dir, prefix, spark=spark) as (work, env), daemon(work, env):
        yield work, env
