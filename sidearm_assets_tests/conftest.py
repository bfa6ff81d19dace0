"""Shared fixtures: the real embedded stack and a throwaway PostgreSQL database.

`embedded_stack` starts moto's S3 server and nx-27017 once per test session, on free ports in a
temporary folder, through the same code as `sidearm-local up`; it yields the settings (a dict of
environment variables) and stops the two servers by pid at the end.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "SIDEARM_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def embedded_stack_info(tmp_path_factory):
    """The running embedded stack (`local_stack.StackInfo`): directory, pids, ports, settings."""
    from sidearm_assets.local import local_stack, processes

    directory = tmp_path_factory.mktemp("embedded-stack")
    # Free ports rather than 9000/27017: a developer's own stack or another test session may hold them.
    info = local_stack.start_stack(directory, local_stack.FREE_PORTS)
    try:
        yield info
    finally:
        local_stack.stop_stack(directory)
        left = [pid for pid in info.pids if processes.alive(pid)]
        assert not left, f"embedded stack pids still running after stop: {left}"


@pytest.fixture(scope="session")
def embedded_stack(embedded_stack_info) -> dict[str, str]:
    """Settings of the running embedded stack: every `SIDEARM_*` variable plus `DELAY`."""
    return dict(embedded_stack_info.env)


SHARED_SPARK_DIR = "spark-stack"  # under the run's base temp folder, shared by the xdist workers


@pytest.fixture(scope="session")
def spark_connect_url(tmp_path_factory, request) -> str:
    """`sc://127.0.0.1:<port>` of a warm Spark Connect server (20-120 s to start and warm)
    started through the same code as `sidearm-local up`, in a stack folder of its own (so the
    shared embedded stack is never restarted by it). One server serves the whole run: under
    pytest-xdist the first worker that needs it starts it (a file lock keeps the others waiting)
    and `pytest_sessionfinish` of the controller stops it by pid; without xdist this fixture
    stops it."""
    from filelock import FileLock

    from sidearm_assets.local import local_stack

    if not hasattr(request.config, "workerinput"):  # one process: start it here, stop it here
        directory = tmp_path_factory.mktemp(SHARED_SPARK_DIR)
        info = local_stack.start_stack(directory, local_stack.FREE_PORTS, spark=True)
        try:
            yield info.services[local_stack.SPARK].url
        finally:
            _stop_spark_stack(directory)
        return
    run_root = tmp_path_factory.getbasetemp().parent  # the controller's base temp folder
    with FileLock(str(run_root / f"{SHARED_SPARK_DIR}.lock")):
        directory = run_root / SHARED_SPARK_DIR
        url_file = directory / "url"
        if not url_file.exists():
            directory.mkdir(exist_ok=True)
            info = local_stack.start_stack(directory, local_stack.FREE_PORTS, spark=True)
            url_file.write_text(info.services[local_stack.SPARK].url)
        url = url_file.read_text()
    yield url  # the lock is released: the other workers reuse the server


def _stop_spark_stack(directory) -> None:
    from sidearm_assets.local import local_stack, processes
    from sidearm_assets.local.stack_state import read_state, services_from_state

    pids = [s.pid for s in services_from_state(read_state(directory)).values()]
    local_stack.stop_stack(directory)
    left = [pid for pid in pids if processes.alive(pid)]
    assert not left, f"Spark stack pids still running after stop: {left}"


def pytest_sessionfinish(session, exitstatus):
    """The controller of an xdist run stops the Spark Connect server its workers shared."""
    if hasattr(session.config, "workerinput") or not session.config.pluginmanager.hasplugin("xdist"):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    directory = factory.getbasetemp() / SHARED_SPARK_DIR
    if (directory / "url").exists():
        _stop_spark_stack(directory)


@pytest.fixture(scope="session")
def warm_spark(spark_connect_url) -> dict[str, str]:
    """The setting that points final-tables runs at the session's warm Spark Connect server, for the
    tests that run them through a daemon (as `sidearm-local up` does by default): a run then spends
    about a second in Spark instead of starting a local JVM in its run worker (8-20 s each)."""
    return {"SIDEARM_SPARK_REMOTE": spark_connect_url}


@pytest.fixture(scope="session")
def spark_resource_fixture():
    """dagster-pyspark's lazy resource with the project's Spark settings, local[2]: one Spark session
    for the whole test session (5-10 s to start), stopped at the end."""
    from sidearm_assets.storage.spark_resource import spark_resource

    resource = spark_resource("local[2]")
    try:
        yield resource
    finally:
        from pyspark import SparkContext

        if SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.stop()


@pytest.fixture(scope="session")
def spark(spark_resource_fixture):
    return spark_resource_fixture.spark_session


@pytest.fixture
def stack(tmp_path, warm_spark):
    """A stack and a daemon of the test's own, for tests that kill servers or stream a league
    through the daemon (`helpers.Stack`); final-tables runs on the warm Spark."""
    from sidearm_assets_tests.helpers import Stack

    s = Stack(tmp_path, extra_env=warm_spark)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def throwaway_postgres_database(prefix: str):
    """A fresh database on the local PostgreSQL server (its URL object), dropped afterwards.

    An unreachable server skips the test on a developer's machine and fails it in CI, where the
    server is part of the machine."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    shown = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {shown}: {str(exc).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a fresh database on the local PostgreSQL server, dropped at the end."""
    with throwaway_postgres_database("sidearm_test") as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_engine(tmp_path):
    """A SQLite sidearmdb in the test's folder."""
    from sidearm_assets.storage import reference_db

    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url):
    """The session's throwaway PostgreSQL database (foreign keys enforced), emptied first."""
    from sqlalchemy import text

    from sidearm_assets.storage import reference_db

    engine = reference_db.make_engine(postgres_url)
    with engine.begin() as conn:
        for name in ("notes", "players", "games", "teams"):
            conn.execute(text(f"DROP TABLE IF EXISTS {name} CASCADE"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    """`sqlite_engine`, then `postgres_engine`: a test that takes `engine` runs on both."""
    return request.getfixturevalue(f"{request.param}_engine")


# Test tiers (pytest.ini registers the markers). One place says which tier each module is in:
# `pytest -m unit` runs the pure-domain tests alone, in seconds. A module not listed is
# `integration`; a test id listed in TIER_OF_TEST overrides its module.
TIER_OF_MODULE = {
    "test_stream": "unit",
    "test_boxscore": "unit",
    "test_gameflow": "unit",
    "test_final_domain": "unit",
    "test_properties": "unit",
    "test_final_scheduling": "unit",
    "test_lake_events": "unit",
    "test_browser": "browser",
    "test_end_to_end": "e2e",
    "test_final_e2e": "e2e",
}
TIER_OF_TEST = {
    # builds the asset's metadata: imports Dagster
    "test_gameflow.py::test_box_score_metadata_carries_the_game_flow_picture": "integration",
}
SLOW_MODULES = {"test_end_to_end", "test_final_e2e", "test_final_spark"}
TIERS = ("unit", "integration", "browser", "e2e")


def pytest_ignore_collect(collection_path, config):
    """`-m unit` alone does not even import the other modules (Dagster, PySpark...): seconds
    saved. A module that marks some tests `unit` itself is still collected."""
    if config.getoption("markexpr", "") == "unit" and collection_path.name.startswith("test_"):
        if collection_path.suffix == ".py" and TIER_OF_MODULE.get(collection_path.stem) != "unit":
            if "mark.unit" not in collection_path.read_text(encoding="utf-8", errors="replace"):
                return True
    return None


# The modules that take longest, longest first. The test command runs two pytest-xdist workers
# that take whole modules (`--dist loadfile`) in collection order: these go first, so no long
# module starts last beside an idle worker.
LONGEST_MODULES = (
    "test_final_faults", "test_live_faults", "test_end_to_end", "test_ingest_api", "test_browser",
    "test_final_e2e", "test_local_stack", "test_final_assets", "test_ingest", "test_many_games",
    "test_spark_cluster", "test_final_spark", "test_notebook", "test_deploy",
)


def _module_name(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(_module_name(item), len(rank)))  # stable: file order otherwise
    for item in items:
        module = _module_name(item)
        test_id = f"{module}.py::{getattr(item, 'originalname', item.name)}"
        if not any(item.get_closest_marker(t) for t in TIERS):
            item.add_marker(TIER_OF_TEST.get(test_id) or TIER_OF_MODULE.get(module, "integration"))
        if module in SLOW_MODULES:
            item.add_marker("slow")


# Property-based tests (test_properties.py): a modest number of examples by default, so the unit
# tier stays fast; `--hypothesis-profile=deep` soaks each property with 10,000 examples. Failures
# print the seed and blob that reproduce them; no example database is written to the checkout.
def _hypothesis_profiles():
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings

    common = dict(deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
    hypothesis_settings.register_profile("fast", max_examples=40, **common)
    hypothesis_settings.register_profile("deep", max_examples=10_000, **common)
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


_hypothesis_profiles()
