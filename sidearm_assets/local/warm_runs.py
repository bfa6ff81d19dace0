"""A fork server for Dagster run workers: Dagster and the code location imported once, a run worker
forked per run (`launcher.WarmRunLauncher` starts it and talks to it).

A run worker started the default way is a fresh interpreter that imports Dagster and loads the
definitions before the run does anything: with the instance's first opening and the run's first
imports, about 2.5 s of a final-tables run on a two-core machine. Forked from this process, the same worker starts in milliseconds and runs exactly what
`dagster api execute_run` runs.

Protocol, one JSON object per line: on start the server writes `{"ready": pid}` (or `{"error": ...}`
and exits); then for each request `{"args": <serialized ExecuteRunArgs>, "cwd": dir}` read from
stdin it writes `{"pid": <worker pid>}`. It exits when stdin closes (its launcher is gone); the
workers it forked run on. It never starts a thread, so forking it is safe, and it ignores SIGCHLD,
so the kernel reaps its workers and a dead worker's pid is gone at once.

    python -m sidearm_assets.local.warm_runs MODULE [ATTRIBUTE] [--preload MODULE ...]

With SIDEARM_WARM_INSTANCE_REF (a serialized InstanceRef: in the environment, not on the command
line, as it may hold a storage password) it opens that instance once before forking.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sys
import threading
import traceback

INSTANCE_REF_ENV = "SIDEARM_WARM_INSTANCE_REF"


def preload(module: str, attribute: str | None, extra: list[str] = (), instance_ref: str | None = None) -> None:
    """Import the run command, the `extra` modules the runs will import (one that is not installed
    is left to the run), and the code location, and build its repository (cached on `defs`); open
    the instance once and close it (its storage modules loaded; no connection is kept)."""
    importlib.import_module("dagster._cli.api")
    for name in extra:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if instance_ref:
        from dagster import DagsterInstance
        from dagster._serdes import deserialize_value
        from dagster._core.instance.ref import InstanceRef

        with DagsterInstance.from_ref(deserialize_value(instance_ref, InstanceRef)) as instance:
            instance.get_runs(limit=1)
    loaded = importlib.import_module(module)
    target = getattr(loaded, attribute) if attribute else None
    if hasattr(target, "get_repository_def"):
        target.get_repository_def()


def _reply(out, message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def run_worker(args: str, cwd: str | None) -> int:
    """In the forked child: `dagster api execute_run ARGS`; returns its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the worker waits for its own children
    random.seed()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # the run's stdout goes where the server's stderr goes (the daemon's log)
    if cwd:
        os.chdir(cwd)
    sys.argv = ["dagster", "api", "execute_run", args]
    from dagster._cli.api import execute_run_command

    try:
        execute_run_command.main(args=[args], prog_name="dagster api execute_run", standalone_mode=False)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        return 1


def serve(module: str, attribute: str | None, extra: list[str] = (), instance_ref: str | None = None,
          requests=None, out=None) -> int:
    requests = requests or sys.stdin
    out = out or sys.stdout
    try:
        preload(module, attribute, extra, instance_ref)
    except Exception as exc:
        _reply(out, {"error": f"cannot load {module}: {exc!r}"})
        return 1
    if threading.active_count() != 1:  # native pools (numpy's, Arrow's) reset themselves at fork
        _reply(out, {"error": f"loading {module} started Python threads: forking is not safe"})
        return 1
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    _reply(out, {"ready": os.getpid()})
    for line in requests:
        try:
            request = json.loads(line)
            args, cwd = request["args"], request.get("cwd")
        except (ValueError, KeyError, TypeError) as exc:
            _reply(out, {"error": f"bad request: {exc!r}"})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_worker(args, cwd)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _reply(out, {"pid": pid})
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module")
    parser.add_argument("attribute", nargs="?")
    parser.add_argument("--preload", action="append", default=[], help="a module the runs import (repeatable)")
    args = parser.parse_args(argv)
    return serve(args.module, args.attribute, args.preload, os.environ.pop(INSTANCE_REF_ENV, None))


if __name__ == "__main__":
    sys.exit(main())
