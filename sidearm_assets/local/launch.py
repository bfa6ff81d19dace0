"""Start servers of the embedded stack and wait until they answer: the ports they get, the
processes, and what a server that failed to start left in its log."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sidearm_assets.local import processes
from sidearm_assets.local.servers import KINDS, ServerKind, free_port, kind, port_free
from sidearm_assets.local.stack_state import Service, StackError

DEFAULT_PORTS = {name: k.default_port for name, k in KINDS.items()}
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
PORT_ATTEMPTS = 3  # a free port can be taken between our check and the server's bind


def say(message: str) -> None:
    """A message for people: stderr, so stdout carries only what scripts read."""
    print(f"sidearm-local: {message}", file=sys.stderr, flush=True)


def stop_pid(pid: int, grace: float) -> str:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the signal that ended it."""
    try:
        return processes.stop(pid, grace, group=False)
    except processes.ProcessError as exc:
        raise StackError(str(exc)) from exc


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@dataclass
class Launch:
    """One server being started: the process, where it should listen, and how to retry it."""

    kind: ServerKind
    directory: Path
    port: int
    may_fall_back: bool = False  # another free port may be used when this one was taken meanwhile
    attempts: int = 0
    proc: subprocess.Popen | None = None
    cmd: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.kind.log(self.directory)

    def start(self) -> None:
        cwd = self.kind.prepare(self.directory)
        self.cmd = self.kind.command(self.port, self.directory)
        env = self.kind.environment(self.port, self.directory)
        self.proc = processes.spawn(self.cmd, self.log, env=env, cwd=cwd, header=True)

    def lost_its_port(self) -> bool:
        text = tail(self.log, 40)
        return "Address already in use" in text or f"[Errno {errno.EADDRINUSE}]" in text

    def record(self) -> Service:
        ident = processes.identity(self.proc.pid, self.cmd)
        return Service(
            name=self.kind.name, pid=self.proc.pid, port=self.port, url=self.kind.url(self.port),
            cmdline=ident.cmdline, proc_start=ident.start,
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), log=str(self.log),
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(StackError):
                stop_pid(self.proc.pid, STOP_GRACE)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=1)


def _choose_port(name: str, wanted: int | None, previous: int | None) -> tuple[int, bool]:
    """(port, may fall back): an explicit port is used as is; otherwise the previous run's port,
    then the default, then any free port."""
    if wanted:
        return wanted, False
    if wanted == 0:
        return free_port(), True
    for candidate in (previous, DEFAULT_PORTS[name]):
        if candidate and port_free(candidate):
            return candidate, True
    port = free_port()
    say(f"port {DEFAULT_PORTS[name]} is taken; {name} uses {port}")
    return port, True


def start_servers(
    directory: Path, ports: Mapping[str, int | None], previous: dict[str, Service], timeouts: dict[str, float]
) -> dict[str, Service]:
    """Start the servers named in `timeouts` at once and wait until each is up within its own
    timeout; on failure stop what was started."""
    launches: dict[str, Launch] = {}
    services: dict[str, Service] = {}
    try:
        for name in (n for n in KINDS if n in timeouts):
            prev = previous.get(name)
            port, may_fall_back = _choose_port(name, ports.get(name), prev.port if prev else None)
            if not may_fall_back and not port_free(port):
                raise StackError(f"{name}: port {port} was asked for but is taken")
            launches[name] = Launch(kind(name), directory, port, may_fall_back)
            launches[name].start()
        began = time.monotonic()
        while len(services) < len(launches):
            for name, launch in launches.items():
                if name not in services:
                    _check(launch, services)
            if len(services) < len(launches):
                late = [n for n in launches if n not in services and time.monotonic() - began > timeouts[n]]
                if late:
                    logs = ", ".join(str(launches[n].log) for n in late)
                    waited = ", ".join(f"{timeouts[n]:g} s" for n in late)
                    raise StackError(f"{', '.join(late)} did not answer within {waited}; see {logs}")
                time.sleep(0.2)
        return {name: services[name] for name in launches}
    except BaseException:
        for launch in launches.values():
            launch.stop()
        raise


def _check(launch: Launch, services: dict[str, Service]) -> None:
    """Record the server once it is ready; start it again on another port when its port was taken
    between our check and its bind; StackError when it exited otherwise."""
    if launch.proc.poll() is None:
        if launch.kind.ready(launch.port):
            services[launch.kind.name] = launch.record()
        return
    launch.attempts += 1
    if launch.may_fall_back and launch.lost_its_port() and launch.attempts < PORT_ATTEMPTS:
        launch.port = free_port()
        say(f"{launch.kind.name}: port was taken meanwhile; retrying on {launch.port}")
        launch.start()
        return
    raise StackError(
        f"{launch.kind.name} server exited with code {launch.proc.returncode} before answering; "
        f"log {launch.log}:\n{tail(launch.log)}"
    )
