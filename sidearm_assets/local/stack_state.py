"""The embedded stack's folder: where each file lives, the state file recording the servers we
started (`stack.json`), and the lock that lets one `up`/`down` work on a folder at a time."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
STATE_FILE = "stack.json"
ENV_FILE = "sidearm.env"
SQLITE_FILE = "sidearmdb.sqlite"
LOCK_FILE = ".stack.lock"


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says why and where the logs are."""


@dataclass
class Service:
    """One server we started: enough to find it, reach it and prove a pid is still ours."""

    name: str
    pid: int
    port: int
    url: str
    cmdline: list[str]  # as the system showed it once the server answered
    proc_start: float | None  # the process's creation time (psutil), None when it was not readable
    started_at: str  # ISO time, for people
    log: str


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def env_path(directory: Path) -> Path:
    return directory / ENV_FILE


def sqlite_path(directory: Path) -> Path:
    return directory / SQLITE_FILE


def read_state(directory: str | os.PathLike) -> dict | None:
    path = state_path(Path(directory).resolve())
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise StackError(f"{path} is not valid JSON ({exc}); remove it after checking no server runs")


def write_state(directory: Path, services: dict[str, Service], env: dict[str, str]) -> None:
    state = {
        "version": 1,
        "dir": str(directory),
        "host": HOST,
        "services": {name: asdict(s) for name, s in services.items()},
        "env": env,
    }
    path = state_path(directory)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def services_from_state(state: dict | None) -> dict[str, Service]:
    if not state:
        return {}
    return {name: Service(**raw) for name, raw in state.get("services", {}).items()}


def write_env_file(directory: Path, env: dict[str, str]) -> None:
    lines = [f"# written by sidearm-local up --dir {directory}; `sidearm-local down` stops the stack"]
    lines += [f"{name}={value}" for name, value in env.items()]
    env_path(directory).write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def locked(directory: Path):
    """One `up`/`down` at a time per DIR."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
