"""deploy/dagster.yaml and deploy/workspace.yaml, run for real without Docker.

The production instance configuration is loaded against the local PostgreSQL server, and the
three Dagster services are started with the commands and healthchecks of docker-compose.yaml
(only host names and ports are rewritten to loopback): the gRPC code server, the webserver that
loads it through the workspace file, and the daemon whose liveness check the game waits for.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from sidearm_assets.local import processes
from sidearm_assets_tests.conftest import throwaway_postgres_database

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
STARTUP_DEADLINE = 180.0  # seconds: loading the code location on a busy two-core machine
STOP_GRACE = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def instance_db():
    """A fresh PostgreSQL database for the Dagster instance, dropped afterwards."""
    try:
        import dagster_postgres  # noqa: F401  (the image installs it: deploy/Dockerfile)
    except ImportError:
        message = "dagster-postgres is not installed: pip install dagster-postgres==0.29.27"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with throwaway_postgres_database("sidearm_deploy") as url:
        yield url


@pytest.fixture(scope="module")
def deploy_env(instance_db, tmp_path_factory) -> dict[str, str]:
    """The environment the compose file gives the Dagster services, pointed at loopback."""
    home = tmp_path_factory.mktemp("dagster-home")
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDEARM_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_HOST=instance_db.host or "127.0.0.1",
        DAGSTER_POSTGRES_USER=instance_db.username or "postgres",
        DAGSTER_POSTGRES_PASSWORD=instance_db.password or "",
        DAGSTER_POSTGRES_DB=instance_db.database,
        # Stores on ports where nothing listens: the sensors find no game and launch no run.
        SIDEARM_S3_ENDPOINT_URL=closed_port_url(),
        SIDEARM_MONGO_URI=f"mongodb://127.0.0.1:{free_port()}",
        SIDEARM_SQL_URL=f"sqlite:///{home / 'sidearmdb.sqlite'}",
    )
    return env


def test_instance_from_deploy_dagster_yaml(deploy_env, monkeypatch):
    from dagster import DagsterInstance, QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    for key in ("DAGSTER_HOME", *[k for k in deploy_env if k.startswith("DAGSTER_POSTGRES_")]):
        monkeypatch.setenv(key, deploy_env[key])
    with DagsterInstance.get() as instance:
        assert type(instance.run_coordinator) is QueuedRunCoordinator
        coordinator = instance.run_coordinator
        assert coordinator.dequeue_interval_seconds == 1
        assert [(l["key"], l["limit"]) for l in coordinator.get_run_queue_config().tag_concurrency_limits] == [
            ("sidearm/final-tables", 1)
        ]
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 45
        assert instance.run_monitoring_cancel_timeout_seconds == 180
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 3
        assert instance.get_settings("nux") == {"enabled": False}
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert instance.get_settings("sensors") == {"use_threads": True, "num_workers": 4}
        assert instance.get_settings("telemetry") == {"enabled": False}
        assert instance.get_runs() == []
        assert Path(instance.storage_directory()) == Path(deploy_env["DAGSTER_HOME"]) / "storage"


def test_local_and_production_instances_agree_on_runs_and_sensors():
    """The embedded stack's dagster.yaml (local_instance.py) and deploy/dagster.yaml make the same
    choices for the final tables' guarantees; only storage and timeouts differ."""
    from sidearm_assets.assets.final import FINAL_RUN_TAG
    from sidearm_assets.local.local_instance import local_instance_config

    local = local_instance_config()
    production = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    for config in (local, production):
        assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
        assert config["run_coordinator"]["config"]["tag_concurrency_limits"] == [{"key": FINAL_RUN_TAG, "limit": 1}]
        assert config["run_monitoring"]["enabled"] is True
        assert config["run_monitoring"]["start_timeout_seconds"] > 0 and config["run_monitoring"]["cancel_timeout_seconds"] > 0
        assert config["run_retries"] == {"enabled": True, "max_retries": 3}
        assert config["sensors"]["use_threads"] is True and config["sensors"]["num_workers"] >= 2
        assert config["telemetry"] == {"enabled": False} and config["nux"] == {"enabled": False}
    assert local["run_monitoring"]["poll_interval_seconds"] <= 10


def test_local_instance_loads_with_the_queue_monitoring_and_retries(tmp_path, monkeypatch):
    from dagster import DagsterInstance, QueuedRunCoordinator

    from sidearm_assets.local.local_instance import write_local_instance

    monkeypatch.setenv("DAGSTER_HOME", str(write_local_instance(tmp_path / "home", start_timeout_seconds=15)))
    with DagsterInstance.get() as instance:
        assert type(instance.run_coordinator) is QueuedRunCoordinator
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 15
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 3
        assert instance.get_settings("sensors") == {"use_threads": True, "num_workers": 4}
        assert type(instance.run_launcher).__name__ == "WarmRunLauncher"
        assert instance.run_launcher.preload == ["sidearm_assets.local.run_warmup"]


class Service:
    """A process started for the test, stopped by its pid (its own session)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.proc = processes.spawn(argv, self.log, env=env, cwd=log_dir)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.alive():
            processes.stop(self.proc.pid, grace=STOP_GRACE)
        self.proc.wait(timeout=STOP_GRACE)


def wait_until(what: str, ok, services: list[Service]) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while not ok():
        for s in services:
            assert s.alive(), f"{s.name} exited while waiting for {what}:\n{s.tail()}"
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
            pytest.fail(f"gave up waiting for {what}\n{logs}")
        time.sleep(1)


def runs_ok(argv: list[str], env: dict[str, str]) -> bool:
    return subprocess.run(argv, env=env, capture_output=True, timeout=60).returncode == 0


def rewrite(argv: list[str], replacements: dict[str, str]) -> list[str]:
    """A compose command for loopback: the executable from this venv, hosts and ports swapped."""
    out = []
    for i, arg in enumerate(argv):
        for old, new in replacements.items():
            arg = arg.replace(old, new)
        if i == 0 and (BIN / arg).exists():
            arg = str(BIN / arg)
        out.append(arg)
    return out


def test_dagster_services_start_and_pass_their_healthchecks(deploy_env, tmp_path):
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    grpc_port, web_port = free_port(), free_port()
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert (server["host"], server["port"]) == ("dagster-code", 4000)
    server.update(host="127.0.0.1", port=grpc_port)
    workspace_file = tmp_path / "workspace.yaml"
    workspace_file.write_text(yaml.safe_dump(workspace))

    swap = {
        "0.0.0.0": "127.0.0.1",
        "4000": str(grpc_port),
        "3000": str(web_port),
        "/opt/dagster/home/workspace.yaml": str(workspace_file),
    }
    services: list[Service] = []
    try:
        code = Service("dagster-code", rewrite(compose["dagster-code"]["command"], swap), deploy_env, tmp_path)
        services.append(code)
        code_check = rewrite(compose["dagster-code"]["healthcheck"]["test"][1:], swap)
        wait_until("the code server's healthcheck", lambda: runs_ok(code_check, deploy_env), services)

        web = Service("dagster-webserver", rewrite(compose["dagster-webserver"]["command"], swap), deploy_env, tmp_path)
        daemon = Service("dagster-daemon", rewrite(compose["dagster-daemon"]["command"], swap), deploy_env, tmp_path)
        services += [web, daemon]
        web_check = rewrite(compose["dagster-webserver"]["healthcheck"]["test"][1:], swap)
        web_check[0] = sys.executable if web_check[0] == "python" else web_check[0]
        wait_until("the webserver's healthcheck", lambda: runs_ok(web_check, deploy_env), services)

        # The webserver reached the code location through the workspace file.
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
        assert [(e["name"], e["locationOrLoadError"]["__typename"]) for e in entries] == [
            (server["location_name"], "RepositoryLocation")
        ], entries

        daemon_check = rewrite(compose["dagster-daemon"]["healthcheck"]["test"][1:], swap)
        wait_until("the daemon's liveness check", lambda: runs_ok(daemon_check, deploy_env), services)
    finally:
        for s in reversed(services):
            s.stop()
    for s in services:
        assert not s.alive()
