"""Background processes we start, stop by pid, and never leave behind.

Processes here may ignore SIGTERM/SIGINT, so stopping escalates to SIGKILL after a grace
period. Each process is started in its own session, so stopping also reaches the children it
spawned (the Dagster daemon's code server, a webserver's workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def spawn(cmd: list[str], log: Path, env: dict | None = None, cwd: str | Path | None = None) -> subprocess.Popen:
    """Start `cmd` detached in a new session, output to `log`; the caller records `.pid`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )


def alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own exited child so it does not linger as a zombie
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop(pid: int, grace: float = 5.0, group: bool = True) -> str:
    """SIGTERM (to the whole session when `group`), then SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            if not alive(pid):
                return "already gone"
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not alive(pid):
                if group:
                    _kill_group_leftovers(pid)
                return sig.name
            time.sleep(0.05)
    raise RuntimeError(f"pid {pid} survived SIGKILL for {grace:g} s")


def _kill_group_leftovers(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
