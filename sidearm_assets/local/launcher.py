"""The embedded stack's run launcher: run workers forked from a warm process instead of spawned.

`WarmRunLauncher` is Dagster's `DefaultRunLauncher` with one change: when the run's code runs on
this machine with the daemon's own interpreter (the embedded stack: `dagster dev`, the tests and
benchmarks), its run worker is forked from a fork server (`warm_runs.py`) that has Dagster and
the code location already loaded, and runs what `dagster api execute_run` runs. That saves the
fresh interpreter's imports, definitions and first opening of the instance (about 2.5 s of a
final-tables run on a two-core machine). Anything else, or a fork server that cannot start, goes
the default way through the code server. Production (compose) keeps `DefaultRunLauncher`: there the run
workers belong to the code server's container, which has Java and the ODBC driver.

The fork server is started on the first launch and again when a file of the code location's
package changed (a run always runs the code on disk, as a fresh worker would); it is stopped by
pid (SIGKILL after a grace period) when the instance is disposed, and exits by itself when the
daemon's end of its pipe closes. Forked workers run in the daemon's session, so stopping the
daemon's session stops them; `terminate` sends SIGTERM, which the run command turns into a
cancellation. A custom run launcher is Dagster's extension point for this; it reads the run's
origin and builds `ExecuteRunArgs` as Dagster's own launchers (dagster-docker) do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from dagster import DefaultRunLauncher, Field

from sidearm_assets.local.warm_runs import INSTANCE_REF_ENV

WORKER_PID_TAG = "sidearm/run_worker_pid"
START_TIMEOUT_SECONDS = 60.0  # loading Dagster and the definitions on a busy two-core machine
STOP_GRACE_SECONDS = 2.0


class ForkServerError(RuntimeError):
    """The fork server could not start or did not answer."""


def code_fingerprint(module: str) -> tuple:
    """(number of .py files, newest mtime) of the package holding `module`: changes when its code does."""
    spec = importlib.util.find_spec(module.split(".")[0])
    if spec is None or spec.origin is None:
        return ()
    root = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
    files = [root] if root.is_file() else list(root.rglob("*.py"))
    return len(files), max((f.stat().st_mtime_ns for f in files), default=0)


@dataclass(frozen=True)
class CodeKey:
    """What a fork server has loaded: the interpreter, the module and attribute, the directory."""

    executable: str
    module: str
    attribute: str | None
    working_directory: str | None


class ForkServer:
    """One `warm_runs` process; `start_worker` is safe to call from several threads."""

    def __init__(self, key: CodeKey, preload: list[str] = (), instance_ref: str | None = None,
                 timeout: float = START_TIMEOUT_SECONDS):
        self.key = key
        self.fingerprint = code_fingerprint(key.module)
        cmd = [key.executable, "-m", "sidearm_assets.local.warm_runs", key.module,
               *([key.attribute] if key.attribute else []), *(f"--preload={m}" for m in preload)]
        env = {**os.environ, **({INSTANCE_REF_ENV: instance_ref} if instance_ref else {})}
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1,
            cwd=key.working_directory or None, close_fds=True, env=env,
        )
        reply = self._read(timeout)
        if "ready" not in reply:
            self.stop()
            raise ForkServerError(reply.get("error", f"unexpected answer {reply!r}"))

    def _read(self, timeout: float) -> dict:
        result: dict = {}

        def read():
            line = self.process.stdout.readline()
            try:
                result.update(json.loads(line) if line else {"error": f"exited with code {self.process.wait()}"})
            except ValueError:
                result["error"] = f"unreadable answer {line!r}"

        reader = threading.Thread(target=read, name="fork-server-reply", daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self.stop()
            return {"error": f"no answer within {timeout:g} s"}
        return result

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def start_worker(self, serialized_args: str, cwd: str | None, timeout: float = 30.0) -> int:
        with self._lock:
            if not self.alive:
                raise ForkServerError(f"the fork server exited with code {self.process.returncode}")
            try:
                self.process.stdin.write(json.dumps({"args": serialized_args, "cwd": cwd}) + "\n")
                self.process.stdin.flush()
            except OSError as exc:
                raise ForkServerError(f"cannot reach the fork server: {exc}") from exc
            reply = self._read(timeout)
        if "pid" not in reply:
            raise ForkServerError(reply.get("error", f"unexpected answer {reply!r}"))
        return int(reply["pid"])

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Close its pipe (it exits), then SIGTERM and SIGKILL by pid if it lingers."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.alive:
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


class WarmRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers are forked from a warm process when the code runs
    here (module docstring)."""

    def __init__(self, inst_data=None, enabled: bool = True, preload: list[str] = ()):
        super().__init__(inst_data=inst_data)
        self.enabled = enabled
        self.preload = list(preload)
        self._server: ForkServer | None = None
        self._server_lock = threading.Lock()

    @classmethod
    def config_type(cls):
        return {
            "enabled": Field(bool, is_required=False, default_value=True),
            "preload": Field([str], is_required=False, default_value=[],
                             description="modules the runs import, loaded once in the fork server"),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, enabled=config_value.get("enabled", True),
                   preload=config_value.get("preload", []))

    def _code_key(self, run) -> CodeKey | None:
        """The run's code as a fork server key, or None when it must go the default way."""
        origin = run.job_code_origin
        if not self.enabled or origin is None:
            return None
        pointer = origin.repository_origin.code_pointer
        module = getattr(pointer, "module", None)
        if not module or origin.repository_origin.container_image:
            return None
        if os.path.realpath(origin.executable_path) != os.path.realpath(sys.executable):
            return None
        return CodeKey(origin.executable_path, module, getattr(pointer, "fn_name", None),
                       getattr(pointer, "working_directory", None))

    def _fork_server(self, key: CodeKey, instance_ref) -> ForkServer:
        with self._server_lock:
            server = self._server
            if server is not None and (server.key != key or not server.alive
                                       or server.fingerprint != code_fingerprint(key.module)):
                server.stop()
                server = self._server = None
            if server is None:
                from dagster._serdes import serialize_value

                server = self._server = ForkServer(key, self.preload, serialize_value(instance_ref))
            return server

    def launch_run(self, context) -> None:
        from dagster._grpc.types import ExecuteRunArgs
        from dagster._serdes import serialize_value

        run = context.dagster_run
        key = self._code_key(run)
        if key is None:
            return super().launch_run(context)
        instance_ref = self._instance.get_ref()
        args = ExecuteRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                              instance_ref=instance_ref, set_exit_code_on_failure=True)
        try:
            pid = self._fork_server(key, instance_ref).start_worker(serialize_value(args), key.working_directory)
        except ForkServerError as exc:
            self._instance.report_engine_event(
                f"run worker not forked ({exc}); launching it through the code server", run, cls=self.__class__)
            return super().launch_run(context)
        self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(pid)})
        self._run_ids.add(run.run_id)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        if run is None or WORKER_PID_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(run.tags[WORKER_PID_TAG]), signal.SIGTERM)  # the run command cancels the run
        except (ProcessLookupError, ValueError):
            return False
        return True

    def dispose(self) -> None:
        with self._server_lock:
            if self._server is not None:
                self._server.stop()
                self._server = None
        super().dispose()
