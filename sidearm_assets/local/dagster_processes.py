"""A Dagster code server for this code location and `dagster-daemon run` pointed at it, as
production and `dagster dev` run them; for the tests, the benchmarks and drills.

A daemon started with `-m` instead manages its own code server and replaces it every 60 s
(RELOAD_WORKSPACE_INTERVAL in dagster/_daemon/controller.py), and the live watcher, which lives
in the code server, with it. Each process runs in its own session (processes.spawn), so stopping
the daemon reaches the run workers it started, and stopping the code server reaches its children.
"""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sidearm_assets.local import processes
from sidearm_assets.local.servers import free_port, listening
from sidearm_assets.local.stack_state import HOST

CODE_SERVER_TIMEOUT = 120.0  # seconds for the code server to load the definitions on a busy machine
LOCATION = "sidearm_assets"


def workspace_yaml(port: int, location: str = LOCATION) -> str:
    """A workspace naming one gRPC code server on this machine."""
    return (f"load_from:\n  - grpc_server:\n      host: {HOST}\n"
            f"      port: {port}\n      location_name: {location}\n")


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@dataclass
class DagsterProcesses:
    """The running code server and daemon, with their logs in `work`."""

    work: Path
    env: dict
    code_server: subprocess.Popen
    port: int
    daemon: subprocess.Popen | None = None
    daemon_log: str = "daemon.log"

    @property
    def workspace(self) -> Path:
        return self.work / "workspace.yaml"

    def start_daemon(self) -> subprocess.Popen:
        """Start `dagster-daemon run` against the code server (again, after `stop_daemon` or `crash_daemon`)."""
        self.daemon = processes.spawn([_bin("dagster-daemon"), "run", "-w", str(self.workspace)],
                                      self.work / self.daemon_log, env=self.env, cwd=self.work)
        return self.daemon

    def stop_daemon(self) -> None:
        """SIGTERM to the daemon's session (the daemon and its run workers), SIGKILL after a grace period."""
        if self.daemon is not None:
            processes.stop(self.daemon.pid)
            self.daemon = None

    def crash_daemon(self) -> None:
        """SIGKILL to the daemon's session at once: the daemon and its run workers (a crash)."""
        if self.daemon is not None:
            processes.crash(self.daemon.pid)
            self.daemon = None

    def crash(self) -> None:
        """SIGKILL at once to the daemon's and the code server's sessions (a container crash)."""
        self.crash_daemon()
        if self.code_server is not None:
            processes.crash(self.code_server.pid)
            self.code_server = None

    def stop(self) -> None:
        """Daemon, run workers, code server and what it started, gone together."""
        self.stop_daemon()
        if self.code_server is not None:
            processes.stop(self.code_server.pid)
            self.code_server = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self.daemon, self.code_server) if p is not None]


def start_dagster(work: Path, env: dict, daemon: bool = True, daemon_log: str = "daemon.log",
                  timeout: float = CODE_SERVER_TIMEOUT) -> DagsterProcesses:
    """Start the code server (log work/code_server.log), wait until it listens, write
    work/workspace.yaml, and start the daemon against it unless `daemon` is False."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    code = processes.spawn(
        [_bin("dagster"), "code-server", "start", "-m", LOCATION, "-h", HOST, "-p", str(port)],
        work / "code_server.log", env=env, cwd=work,
    )
    procs = DagsterProcesses(work, env, code, port, daemon_log=daemon_log)
    try:
        processes.wait_until(lambda: listening(port) or code.poll() is not None, timeout=timeout,
                             what=f"the code server on port {port} (log {work / 'code_server.log'})")
        if code.poll() is not None:
            raise RuntimeError(f"the code server exited with code {code.returncode}; log {work / 'code_server.log'}")
        procs.workspace.write_text(workspace_yaml(port))
        if daemon:
            procs.start_daemon()
    except BaseException:
        procs.stop()
        raise
    return procs


@contextmanager
def running_dagster(work: Path, env: dict, daemon_log: str = "daemon.log"):
    """`start_dagster` for a `with` block: both processes stopped by pid on exit, whatever happens."""
    procs = start_dagster(work, env, daemon_log=daemon_log)
    try:
        yield procs
    finally:
        procs.stop()


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def wait_for_idle_tick(daemon_log: Path, sensor: str, after: int, timeout: float = 60) -> int:
    """Until the daemon logs a tick of `sensor` that requested no run, past byte `after` of its log
    (a tick that began before `after` may still be the one logged: call it again from the offset
    returned to be sure a whole tick ran after that point). Returns the byte offset past that line."""
    idle = re.compile(rb"(No run requests returned for " + sensor.encode() + rb", skipping|Sensor "
                      + sensor.encode() + rb" skipped)")

    def found():
        with open(daemon_log, "rb") as fh:
            fh.seek(after)
            match = idle.search(fh.read())
        return after + match.end() if match else None

    return processes.wait_until(found, timeout=timeout, interval=0.2, what=f"an idle tick of {sensor} in {daemon_log}")
