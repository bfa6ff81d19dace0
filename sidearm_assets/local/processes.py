"""Background processes we start, identify, and stop by pid: the one place that does it for the
embedded stack, the demo, the benchmarks and the tests.

- `spawn` starts a command detached in its own session (it survives the shell's Ctrl-C, and
  stopping the session reaches the children it spawned: the Dagster daemon's code server, a
  webserver's workers), its output appended to a log file.
- `identity` / `is_same` tell whether a recorded pid still runs the very process that was started
  (same start time and command line), so a reused pid is never signalled.
- `stop` sends SIGTERM (to the whole session when `group`), then SIGKILL after a grace period:
  processes here may ignore SIGTERM/SIGINT. `stop_leader` sends SIGTERM to a session leader alone
  that stops its own children (`dagster dev`), then to what they left. `crash` is SIGKILL at once,
  for fault tests.
- `descendants`, `children_of` and `session_members` walk /proc for what a process started.
- `wait_until` polls a condition and fails naming what it waited for.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

PROC = Path("/proc")


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


def has_proc() -> bool:
    return (PROC / "self" / "stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (field 3 on); None when there is no such pid."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return raw[raw.rindex(")") + 2:].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def command_line(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


@dataclass(frozen=True)
class Identity:
    """What proves a pid still runs the process we started."""

    start: int | None  # /proc/PID/stat start time (clock ticks since boot); None off Linux
    cmdline: list[str]


def identity(pid: int, fallback_cmd: list[str] | None = None) -> Identity:
    if not has_proc():
        return Identity(None, list(fallback_cmd or []))
    fields = _stat_fields(pid)
    return Identity(int(fields[19]) if fields else None, command_line(pid) or list(fallback_cmd or []))


def _reap(pid: int) -> None:
    """Collect the exit status when the pid is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """True while the pid runs (a zombie is not running)."""
    _reap(pid)
    if has_proc():
        fields = _stat_fields(pid)
        return fields is not None and fields[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_same(pid: int, known: Identity) -> bool:
    """The pid still runs the very process recorded as `known`: same start time and command line."""
    if not alive(pid):
        return False
    if has_proc():
        now = identity(pid)
        if now.start is None or (known.start is not None and now.start != known.start):
            return False
        return now.cmdline == known.cmdline
    try:  # no /proc (macOS): compare the command line `ps` shows
        shown = subprocess.run(
            ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return False
    return shown == " ".join(known.cmdline)


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    return [p for p in _all_pids() if parent_of(p) == pid]


def descendants(pid: int) -> set[int]:
    """Every live descendant of `pid`."""
    parents: dict[int, list[int]] = {}
    for p in _all_pids():
        ppid = parent_of(p)
        if ppid is not None:
            parents.setdefault(ppid, []).append(p)
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _all_pids() -> list[int]:
    return [int(e.name) for e in PROC.iterdir() if e.name.isdigit()]


def stop(pid: int, grace: float = 5.0, group: bool = True) -> str:
    """SIGTERM (to the whole session when `group`), then SIGKILL after `grace` seconds; returns
    the name of the signal that ended it, or "already gone". ProcessError if it survives."""
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
    deadline = time.monotonic() + grace
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            stubborn = [p for p in pids if alive(p)]
            for p in stubborn:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            wait_until(lambda: not any(alive(p) for p in stubborn), 10, interval=0.05,
                       what=f"pids {stubborn} to die of SIGKILL")
            return f"SIGKILL ({len(stubborn)} after {grace:g} s)"
        time.sleep(0.05)
    return "SIGTERM"


def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (what `spawn` started there, and what those started)."""
    out = []
    for p in _all_pids():
        fields = _stat_fields(p)
        if fields and int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            out.append(p)
    return out


def crash(pid: int, group: bool = True, timeout: float = 10.0) -> None:
    """SIGKILL at once (a crash, for fault tests), to the whole session when `group`, and wait
    until the pid is gone."""
    (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout, interval=0.05, what=f"pid {pid} to die of SIGKILL")


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
