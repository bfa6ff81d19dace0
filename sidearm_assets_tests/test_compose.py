"""The production stack as far as it can be checked without a Docker engine (SPEC 1).

The compose file is read with PyYAML and held to the rules a `docker compose up -d` from a clean
clone depends on: every service present, healthchecks on every store, dependency conditions,
named volumes, pinned images, and every `${VAR}` documented in `.env.example` without a real
secret. Debian's `docker-compose` then validates and interpolates the file the way Compose does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sidearm_assets import settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
PLUGIN_DIR = ROOT / "drill-storage-plugins"

REQUIRED_SERVICES = {
    "mssql",
    "mssql-init",
    "minio",
    "mongodb",
    "drill",
    "drill-plugins",
    "jupyter",
    "gamestream",
    "dagster-postgres",
    "dagster-code",
    "dagster-webserver",
    "dagster-daemon",
    "web",
    "spark-master",
    "spark-worker",
    "spark-connect",
}
STORES = {"mssql", "minio", "mongodb", "dagster-postgres", "drill"}
ONE_SHOT = {"mssql-init", "minio-init", "drill-plugins", "gamestream"}
# Services that must not start before others are ready, and what they wait for.
REQUIRED_DEPENDENCIES = {
    "mssql-init": {"mssql": "service_healthy"},
    "gamestream": {"mssql-init": "service_completed_successfully", "minio": "service_healthy"},
    "dagster-code": {
        "dagster-postgres": "service_healthy",
        "mssql-init": "service_completed_successfully",
        "mongodb": "service_healthy",
    },
    "dagster-webserver": {"dagster-postgres": "service_healthy", "dagster-code": "service_healthy"},
    "dagster-daemon": {"dagster-postgres": "service_healthy", "dagster-code": "service_healthy"},
    "drill-plugins": {"drill": "service_healthy"},
    "web": {"mongodb": "service_healthy"},
    "spark-worker": {"spark-master": "service_healthy"},
    "spark-connect": {"spark-master": "service_healthy", "spark-worker": "service_healthy"},
}
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}")


def load_render_module():
    spec = importlib.util.spec_from_file_location("drill_render", PLUGIN_DIR / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_example_lines() -> dict[str, str]:
    """The raw (unexpanded) `KEY=value` pairs of .env.example."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example line without '=': {line!r}"
            assert key not in pairs, f"{key} is defined twice in .env.example"
            pairs[key] = value
    return pairs


def test_every_required_service_is_defined(services):
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"docker-compose.yaml lacks services: {sorted(missing)}"


def test_every_stateful_service_has_a_healthcheck(services):
    with_volume = {
        name
        for name, svc in services.items()
        if any(not str(v).startswith("./") for v in svc.get("volumes", []))
    }
    stateful = (STORES | with_volume) - ONE_SHOT
    for name in sorted(stateful):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} keeps state but has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
    # The Dagster services are waited on by others, so they need one too.
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_dependency_waits_on_a_condition(services):
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must be a map with conditions, got a list"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = (spec or {}).get("condition")
            assert condition in ("service_healthy", "service_completed_successfully"), (
                f"{name} -> {dep}: condition {condition!r}"
            )
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy, which has no healthcheck"
            else:
                assert services[dep].get("restart") == "no", f"{dep} is waited on to finish but restarts"


def test_start_order_is_carried_by_conditions(services):
    for name, wanted in REQUIRED_DEPENDENCIES.items():
        deps = services[name].get("depends_on", {})
        for dep, condition in wanted.items():
            assert deps.get(dep, {}).get("condition") == condition, f"{name} must wait for {dep} ({condition})"


def test_every_store_has_a_named_volume(compose, services):
    declared = set(compose.get("volumes") or {})
    mounts = {
        "mssql": "/var/opt/mssql",
        "minio": "/data",
        "mongodb": "/data/db",
        "dagster-postgres": "/var/lib/postgresql/data",
        "drill": "/tmp/drill",
        "dagster-code": "/opt/dagster/home/storage",
    }
    for name, target in mounts.items():
        named = [
            str(v).split(":")[0]
            for v in services[name].get("volumes", [])
            if str(v).split(":")[1] == target
        ]
        assert named, f"{name} mounts nothing at {target}"
        assert named[0] in declared, f"{name}: {named[0]} is not a named volume of the compose file"
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith(("./", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def _image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_every_image_is_pinned(services):
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            assert "build" in svc, f"{name} has neither an image nor a build"
            continue
        assert "${" not in image, f"{name}: image tag must be in the file, not a variable: {image}"
        assert _image_is_pinned(image), f"{name}: image {image!r} is not pinned to a tag"


def test_every_dockerfile_base_is_pinned(services):
    dockerfiles = {ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "drill.Dockerfile"}
    for svc in services.values():
        build = svc.get("build")
        if isinstance(build, dict):
            dockerfiles.add((ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve())
    checked = 0
    for path in sorted(dockerfiles):
        if not path.exists():
            # gamestream/Dockerfile is owned elsewhere; docker-compose config checks it exists.
            continue
        stages = set()
        for line in path.read_text().splitlines():
            match = re.match(r"\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            if match:
                base, stage = match.groups()
                if base not in stages:
                    assert _image_is_pinned(base), f"{path.relative_to(ROOT)}: FROM {base} is not pinned"
                    checked += 1
                if stage:
                    stages.add(stage)
    assert checked >= 2


def test_no_latest_tag_anywhere():
    for path in [COMPOSE_FILE, *ROOT.joinpath("deploy").glob("*Dockerfile")]:
        assert not re.search(r":latest\b", path.read_text()), f"{path.name} uses a latest tag"


def compose_variables() -> set[str]:
    text = "\n".join(
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    return set(VAR_REF.findall(text.replace("$$", "")))


def test_every_compose_and_template_variable_is_in_env_example():
    defined = set(env_example_lines())
    used = compose_variables()
    assert used, "found no ${VAR} in docker-compose.yaml"
    missing = used - defined
    assert not missing, f"docker-compose.yaml uses variables .env.example lacks: {sorted(missing)}"

    render = load_render_module()
    template_vars = set().union(*(render.placeholders(t) for t in render.load_templates(PLUGIN_DIR).values()))
    missing = template_vars - defined
    assert not missing, f"drill templates use variables .env.example lacks: {sorted(missing)}"


def test_env_example_documents_every_project_setting():
    defined = env_example_lines()
    for s in settings.ALL_SETTINGS:
        assert s.name in defined, f"{s.name} (sidearm_assets/settings.py) is missing from .env.example"


def test_env_example_references_resolve_in_order():
    seen: set[str] = set()
    for key, value in env_example_lines().items():
        for ref in VAR_REF.findall(value):
            assert ref in seen, f".env.example: {key} refers to {ref}, which is not defined above it"
        seen.add(key)


def test_env_example_holds_no_real_secret():
    pairs = env_example_lines()
    secret_names = [k for k in pairs if re.search(r"PASSWORD|SECRET|TOKEN", k)]
    secret_names += [s.name for s in settings.ALL_SETTINGS if s.secret]
    assert len(secret_names) >= 6
    for key in secret_names:
        value = pairs[key]
        literal = VAR_REF.sub("", value)
        # A URL may carry credentials only through references to the placeholders above.
        userinfo = re.search(r"//([^/@]*)@", literal)
        assert not (userinfo and userinfo.group(1).strip(":")), f"{key} embeds a literal credential: {value}"
        if not VAR_REF.search(value):
            assert "change-me" in value.lower(), f"{key}={value!r} does not look like a placeholder"
    # Placeholders are what `cp .env.example .env` starts with, so SQL Server must accept its own.
    password = pairs["MSSQL_SA_PASSWORD"]
    classes = sum(bool(re.search(p, password)) for p in ("[a-z]", "[A-Z]", "[0-9]", "[^A-Za-z0-9]"))
    assert len(password) >= 8 and classes >= 3, "MSSQL_SA_PASSWORD placeholder fails SQL Server's policy"
    assert len(pairs["MINIO_ROOT_PASSWORD"]) >= 8, "MinIO needs a root password of 8+ characters"


def test_env_example_expands_to_the_urls_the_services_use():
    render = load_render_module()
    env = render.read_env_file(ENV_EXAMPLE, environ={})
    assert env["SIDEARM_SQL_URL"] == (
        "mssql+pyodbc://sa:Change-me-1@mssql:1433/sidearmdb"
        "?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
    )
    assert env["SIDEARM_MONGO_URI"] == "mongodb://sidearm:change-me-mongo@mongodb:27017/?authSource=admin"
    assert env["SIDEARM_S3_SECRET_KEY"] == env["MINIO_ROOT_PASSWORD"] == "change-me-minio"
    assert env["SIDEARM_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["SIDEARM_SPARK_MASTER"] == "local[*]"


# Read only by the service that needs them (a scorer token has no business in the code server).
SERVICE_ONLY_SETTINGS = {
    settings.INGEST_TOKENS.name: "ingest",
    settings.INGEST_VERIFY_WRITES.name: "ingest",
    settings.WEB_PUSH_POLL_SECONDS.name: "web",
}


def test_services_that_run_the_code_get_every_setting(services):
    needed = {s.name for s in settings.ALL_SETTINGS} - {"DELAY"} - set(SERVICE_ONLY_SETTINGS)
    for name in ("dagster-code", "jupyter", "gamestream", "minio-init"):
        env = services[name].get("environment", {})
        assert isinstance(env, dict), f"{name}: environment must be a map"
        missing = needed - set(env)
        assert not missing, f"{name} lacks settings {sorted(missing)}"
    assert "DELAY" in services["gamestream"]["environment"]


def test_page_and_ingest_run_on_uvicorn_behind_healthchecks(services):
    """A production server (never werkzeug's development one), a healthcheck on each,
    and each service gets exactly the settings it reads (the scorer tokens only the API)."""
    from sidearm_assets.ingest.app import main as ingest_main  # noqa: F401 - the entry points exist
    from sidearm_assets.web.app import main as web_main  # noqa: F401

    for name, binary, port in (("web", "sidearm-web", "8080"), ("ingest", "sidearm-ingest", "8081")):
        svc = services[name]
        assert svc["command"][0] == binary and svc["command"][svc["command"].index("--port") + 1] == port
        assert "--host" in svc["command"] and svc["command"][svc["command"].index("--host") + 1] == "0.0.0.0"
        check = " ".join(svc["healthcheck"]["test"])
        assert f"localhost:{port}/healthz" in check, name
        assert svc["restart"] == "unless-stopped"
        for setting, owner in SERVICE_ONLY_SETTINGS.items():
            assert (setting in svc["environment"]) == (owner == name), (name, setting)
    for name, svc in services.items():
        if name not in ("web", "ingest"):
            assert settings.INGEST_TOKENS.name not in (svc.get("environment") or {}), f"{name} gets the scorer tokens"
    source = (ROOT / "sidearm_assets" / "web" / "serving.py").read_text()
    assert "uvicorn" in source and "werkzeug" not in (ROOT / "sidearm_assets" / "web" / "app.py").read_text()


def test_dagster_services_share_the_instance_and_the_workspace(services):
    code = services["dagster-code"]
    assert code["command"][:3] == ["dagster", "api", "grpc"]
    assert code["command"][code["command"].index("-p") + 1] == "4000"
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert (server["host"], server["port"]) == ("dagster-code", 4000)
    for name in ("dagster-code", "dagster-webserver", "dagster-daemon"):
        env = services[name]["environment"]
        for var in ("DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"):
            assert var in env, f"{name} lacks {var}"
        assert services[name]["image"] == code["image"], f"{name} runs another image than dagster-code"
    assert "/opt/dagster/home/workspace.yaml" in services["dagster-webserver"]["command"]
    assert "/opt/dagster/home/workspace.yaml" in services["dagster-daemon"]["command"]


def test_published_ports(services):
    published = {}
    for name, svc in services.items():
        for port in svc.get("ports", []):
            host_port = str(port).split(":")[-2]
            assert host_port not in published, f"port {host_port} published twice"
            published[host_port] = name
    for port, name in {
        "3000": "dagster-webserver",
        "9001": "minio",
        "8888": "jupyter",
        "8047": "drill",
        "8080": "web",
        "8081": "ingest",
    }.items():
        assert published.get(port) == name, f"{name} should publish {port}"


def _docker_compose() -> str | None:
    found = shutil.which("docker-compose")
    if found is None:
        message = "the docker-compose tool is missing: bash scripts/setup.sh --for tests installs it (Debian's, without the engine)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_docker_compose_config_accepts_the_file(tmp_path):
    binary = _docker_compose()
    # Variables of the calling shell override .env files in Compose; leave only the file's.
    documented = set(env_example_lines())
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(ENV_EXAMPLE), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k not in documented},
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) >= REQUIRED_SERVICES
    code_env = resolved["services"]["dagster-code"]["environment"]
    assert code_env["SIDEARM_SQL_URL"].startswith("mssql+pyodbc://sa:Change-me-1@mssql:1433/sidearmdb?")
    assert code_env["DAGSTER_POSTGRES_HOST"] == "dagster-postgres"
    # Compose reports unset variables ("... is not set. Defaulting to a blank string.") there.
    assert result.stderr.strip() == "", result.stderr


def test_spark_cluster_and_connect_server(services):
    """A master, a scalable worker and a Spark Connect server submitting to the master,
    on the official image at the pyspark client's version; the code server (where runs execute)
    points at the Connect server."""
    from importlib.metadata import version

    spark = ("spark-master", "spark-worker", "spark-connect")
    images = {services[name]["image"] for name in spark}
    assert images == {f"spark:{version('pyspark')}-scala2.13-java17-ubuntu"}, images
    for name in spark:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    worker = services["spark-worker"]
    assert "ports" not in worker and "container_name" not in worker, "spark-worker must stay scalable"
    assert worker["command"][-1] == "spark://spark-master:7077"
    connect = services["spark-connect"]["command"]
    assert connect[connect.index("--class") + 1] == "org.apache.spark.sql.connect.service.SparkConnectServer"
    assert connect[connect.index("--master") + 1] == "${SPARK_CONNECT_MASTER}"
    assert "spark.connect.grpc.binding.port=15002" in connect
    assert "spark.driver.host=spark-connect" in connect
    assert services["dagster-code"]["environment"]["SIDEARM_SPARK_REMOTE"] == "${SIDEARM_SPARK_REMOTE}"
    pairs = env_example_lines()
    assert pairs["SIDEARM_SPARK_REMOTE"] == "sc://spark-connect:15002"
    assert pairs["SPARK_CONNECT_MASTER"] == "spark://spark-master:7077"
