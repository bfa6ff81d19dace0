"""bench/ui_pages.py's pure parts: the stack's settings file and the GraphQL operation's name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).parents[1] / "bench" / "ui_pages.py"


@pytest.fixture(scope="module")
def ui_pages():
    spec = importlib.util.spec_from_file_location("ui_pages", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ui_pages"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("ui_pages", None)


@pytest.mark.unit
def test_stack_env_reads_sidearm_env(ui_pages, tmp_path):
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "sidearm.env").write_text("# written by sidearm-local up\nDAGSTER_HOME=/x/home\nSIDEARM_SQL_URL=sqlite:////x/db=1\n")
    env = ui_pages.stack_env(tmp_path)
    assert env["DAGSTER_HOME"] == "/x/home"
    assert env["SIDEARM_SQL_URL"] == "sqlite:////x/db=1"


@pytest.mark.unit
def test_operation_name_from_the_post_body(ui_pages):
    assert ui_pages._operation(SimpleNamespace(post_data='{"operationName": "AssetGraphLiveQuery", "query": "..."}')) \
        == "AssetGraphLiveQuery"
    assert ui_pages._operation(SimpleNamespace(post_data=None)) == "?"
    assert ui_pages._operation(SimpleNamespace(post_data="not json")) == "?"
