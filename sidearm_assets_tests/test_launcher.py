"""The embedded stack's run launcher: run workers forked from a warm fork server run the run as
`dagster api execute_run` would, are cancelled by `terminate`, pick up changed code, and anything
it cannot fork goes the default way.

A throw-away code location (a package written under tmp_path) and a local instance configured with
`WarmRunLauncher`; no daemon: the test calls the launcher as the daemon's run queue does."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

from sidearm_assets.local import processes
from sidearm_assets.local.launcher import WORKER_PID_TAG, CodeKey, ForkServer, ForkServerError, WarmRunLauncher

JOBS = '''
import os, time
from dagster import Definitions, in_process_executor, job, op

VERSION = {version}

@op
def write_marker():
    with open(os.environ["MARKER"], "a") as f:
        f.write(f"{{VERSION}} {{os.getpid()}}\\n")

@op
def wait_forever():
    time.sleep(600)

@job
def marker_job():
    write_marker()

@job
def waiting_job():
    wait_forever()

defs = Definitions(jobs=[marker_job, waiting_job], executor=in_process_executor)
'''


def _write_jobs(root, version: int) -> None:
    package = root / "warmjobs"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(JOBS.format(version=version)))


@pytest.fixture
def world(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    _write_jobs(code, 1)
    monkeypatch.setenv("MARKER", str(tmp_path / "marker.txt"))
    monkeypatch.syspath_prepend(str(code))
    (tmp_path / "home").mkdir()
    instance = DagsterInstance.local_temp(
        str(tmp_path / "home"),
        overrides={"run_launcher": {"module": "sidearm_assets.local.launcher", "class": "WarmRunLauncher"},
                   "telemetry": {"enabled": False}},
    )
    yield instance, code, tmp_path / "marker.txt"
    instance.dispose()


def _origin(code, job_name: str, executable: str = sys.executable) -> JobPythonOrigin:
    pointer = ModuleCodePointer("warmjobs", "defs", str(code))
    return JobPythonOrigin(job_name, RepositoryPythonOrigin(executable, pointer, None, None, None))


def _launch(instance, code, job_name: str):
    import warmjobs

    job_def = warmjobs.defs.get_job_def(job_name)
    run = instance.create_run_for_job(job_def=job_def, job_code_origin=_origin(code, job_name))
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run.run_id


def _wait_status(instance, run_id: str, statuses, timeout: float = 120):
    processes.wait_until(lambda: instance.get_run_by_id(run_id).status in statuses, timeout=timeout,
                         interval=0.1, what=f"run {run_id[:8]} to reach {statuses}")
    return instance.get_run_by_id(run_id)


def test_forked_worker_runs_the_run_and_changed_code_restarts_the_server(world):
    instance, code, marker = world
    launcher = instance.run_launcher
    assert isinstance(launcher, WarmRunLauncher)

    first = _launch(instance, code, "marker_job")
    run = _wait_status(instance, first, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE})
    assert run.status == DagsterRunStatus.SUCCESS
    version, pid = marker.read_text().split()
    assert version == "1" and int(run.tags[WORKER_PID_TAG]) == int(pid)
    server_pid = launcher._server.process.pid
    assert int(pid) in processes.descendants(server_pid) or not processes.alive(int(pid))

    _launch(instance, code, "marker_job")  # the same code: the same fork server
    processes.wait_until(lambda: len(marker.read_text().splitlines()) == 2, timeout=60, what="the second run")
    assert launcher._server.process.pid == server_pid

    _write_jobs(code, 2)  # changed code: a new fork server loads it, the old one is stopped
    later = time.time() + 5  # a newer mtime even where the file system's clock is coarse
    os.utime(code / "warmjobs" / "__init__.py", (later, later))
    _launch(instance, code, "marker_job")
    processes.wait_until(lambda: len(marker.read_text().splitlines()) == 3, timeout=60, what="the third run")
    assert marker.read_text().splitlines()[-1].split()[0] == "2"
    assert launcher._server.process.pid != server_pid and not processes.alive(server_pid)

    server = launcher._server
    instance.run_launcher.dispose()
    assert not server.alive


def test_terminate_cancels_a_forked_run(world):
    instance, code, _ = world
    run_id = _launch(instance, code, "waiting_job")
    run = _wait_status(instance, run_id, {DagsterRunStatus.STARTED})
    pid = int(run.tags[WORKER_PID_TAG])
    processes.wait_until(lambda: instance.get_run_stats(run_id).steps_succeeded == 0 and any(
        e.step_key == "wait_forever" for e in instance.all_logs(run_id)), timeout=60, what="the step to start")
    assert instance.run_launcher.terminate(run_id)
    assert _wait_status(instance, run_id, {DagsterRunStatus.CANCELED}).status == DagsterRunStatus.CANCELED
    processes.wait_until(lambda: not processes.alive(pid), timeout=30, what="the worker to exit")
    assert not instance.run_launcher.terminate(run_id)  # finished: nothing to terminate


def test_code_of_another_interpreter_goes_the_default_way(world):
    instance, code, _ = world
    import warmjobs

    job_def = warmjobs.defs.get_job_def("marker_job")
    run = instance.create_run_for_job(job_def=job_def, job_code_origin=_origin(code, "marker_job", "/usr/bin/python3"))
    assert instance.run_launcher._code_key(run) is None
    assert WarmRunLauncher(enabled=False)._code_key(run) is None
    here = instance.create_run_for_job(job_def=job_def, job_code_origin=_origin(code, "marker_job"))
    assert instance.run_launcher._code_key(here) == CodeKey(sys.executable, "warmjobs", "defs", str(code))


def test_fork_server_that_cannot_load_the_code_says_why(tmp_path):
    with pytest.raises(ForkServerError, match="no_such_module"):
        ForkServer(CodeKey(sys.executable, "no_such_module", "defs", str(tmp_path)))
