"""Background processes we start, identify, and stop by pid: the one place that does it for the
embedded stack, the demo, the benchmarks and the tests (psutil underneath).

- `spawn` starts a command detached in its own session (it survives the shell's Ctrl-C, and
  stopping the session reaches the children it spawned: the Dagster daemon's code server, a
  webserver's workers), its output appended to a log file.
- `identity` / `is_same` tell whether a recorded pid still runs the very process that was started
  (same creation time and command line), so a reused pid is never signalled.
- `stop` sends SIGTERM (to the whole session when `group`), then SIGKILL after a grace period:
  processes here may ignore SIGTERM/SIGINT. `stop_leader` sends SIGTERM to a session leader alone
  that stops its own children (`dagster dev`), then to what they left. `crash` is SIGKILL at once,
  for fault tests.
- `descendants`, `children_of` and `session_members` find what a process started.
- `wait_until` (from `sidearm_assets.retrying`) polls a condition and fails naming what it waited for.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil

from sidearm_assets.retrying import wait_until

__all__ = [
    "Identity", "ProcessError", "alive", "children_of", "command_line", "crash", "descendants",
    "identity", "is_same", "session_members", "spawn", "stop", "stop_leader", "wait_until",
]

POLL = 0.05  # seconds between looks at a process that should end


class ProcessError(RuntimeError):
    """A process could not be stopped (it survived SIGKILL)."""


def spawn(
    cmd: list[str], log: Path, env: dict | None = None, cwd: str | Path | None = None, header: bool = False
) -> subprocess.Popen:
    """Start `cmd` detached in a new session, output appended to `log` (after a line naming the
    command and the time, when `header`); the caller records `.pid`."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        if header:
            out.write(f"--- {datetime.now(timezone.utc).isoformat()} {shlex.join(cmd)}\n".encode())
            out.flush()
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True, close_fds=True,
        )


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except (psutil.NoSuchProcess, ValueError):
        return None


def command_line(pid: int) -> list[str] | None:
    proc = _process(pid)
    if proc is None:
        return None
    try:
        return proc.cmdline()
    except psutil.Error:
        return None


@dataclass(frozen=True)
class Identity:
    """What proves a pid still runs the process we started."""

    start: float | None  # the process's creation time (seconds since the epoch, psutil)
    cmdline: list[str]


def identity(pid: int, fallback_cmd: list[str] | None = None) -> Identity:
    proc = _process(pid)
    if proc is None:
        return Identity(None, list(fallback_cmd or []))
    try:
        with proc.oneshot():
            return Identity(proc.create_time(), proc.cmdline() or list(fallback_cmd or []))
    except psutil.Error:
        return Identity(None, list(fallback_cmd or []))


def _reap(pid: int) -> None:
    """Collect the exit status when the pid is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """True while the pid runs (a zombie is not running)."""
    _reap(pid)
    proc = _process(pid)
    if proc is None:
        return False
    try:
        return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def is_same(pid: int, known: Identity) -> bool:
    """The pid still runs the very process recorded as `known`: same creation time and command line."""
    if not alive(pid):
        return False
    now = identity(pid)
    if now.start is None or (known.start is not None and now.start != known.start):
        return False
    return now.cmdline == known.cmdline


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    proc = _process(pid)
    if proc is None:
        return []
    with contextlib.suppress(psutil.Error):
        return [c.pid for c in proc.children()]
    return []


def descendants(pid: int) -> set[int]:
    """Every live descendant of `pid`."""
    proc = _process(pid)
    if proc is None:
        return set()
    with contextlib.suppress(psutil.Error):
        return {c.pid for c in proc.children(recursive=True)}
    return set()


def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (what `spawn` started there, and what those started)."""
    out = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            continue
        with contextlib.suppress(OSError):
            if os.getsid(proc.pid) == sid:
                out.append(proc.pid)
    return out


def _send(pid: int, sig: signal.Signals, group: bool) -> bool:
    """Send `sig` to the pid (or its process group); False when there is nothing left to signal."""
    try:
        (os.killpg if group else os.kill)(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        if not alive(pid):
            return False
        os.kill(pid, sig)  # the leader lives on but left its group: signal it alone
        return True


def _gone_within(pid: int, seconds: float) -> bool:
    try:
        wait_until(lambda: not alive(pid), seconds, interval=POLL, what=f"pid {pid} to end")
        return True
    except TimeoutError:
        return False


def stop(pid: int, grace: float = 5.0, group: bool = True) -> str:
    """SIGTERM (to the whole session when `group`), then SIGKILL after `grace` seconds; returns
    the name of the signal that ended it, or "already gone". ProcessError if it survives."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _send(pid, sig, group):
            return "already gone"
        if _gone_within(pid, grace):
            if group:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)  # what the leader left behind in its group
            return sig.name
    raise ProcessError(f"pid {pid} survived SIGKILL for {grace:g} s")


def stop_leader(pid: int, grace: float, rest_grace: float = 10.0) -> str:
    """Stop a session leader that shuts its own children down (`dagster dev` tells its webserver
    and daemon to stop, and waits for them): SIGTERM to the leader alone, SIGKILL to it after
    `grace` seconds. What of its session outlives it (code servers its children started) then gets
    SIGTERM, and SIGKILL after `rest_grace` seconds. Returns how each part ended."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    how = _wait_or_kill([pid], grace)
    left = [p for p in session_members(pid) if p != pid]
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    if left:
        how += f"; {len(left)} left in its session: {_wait_or_kill(left, rest_grace)}"
    return how


def _wait_or_kill(pids: list[int], grace: float) -> str:
    """Wait up to `grace` seconds for `pids` (already sent SIGTERM) to end, then SIGKILL the rest."""
    try:
        wait_until(lambda: not any(alive(p) for p in pids), grace, interval=POLL, what=f"pids {pids} to end")
        return "SIGTERM"
    except TimeoutError:
        pass
    stubborn = [p for p in pids if alive(p)]
    for p in stubborn:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in stubborn), 10, interval=POLL,
               what=f"pids {stubborn} to die of SIGKILL")
    return f"SIGKILL ({len(stubborn)} after {grace:g} s)"


def crash(pid: int, group: bool = True, timeout: float = 10.0) -> None:
    """SIGKILL at once (a crash, for fault tests), to the whole session when `group`, and wait
    until the pid is gone."""
    (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout, interval=POLL, what=f"pid {pid} to die of SIGKILL")
