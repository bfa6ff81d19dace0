"""The house rules the code itself can check: the import contracts of `.importlinter` (layers
point one way, the plain-Python rooms import no Dagster, the simulator and the package keep to
their side), and test modules that share code through helper modules, never through each other.
No service, no Dagster: it reads the source."""

from __future__ import annotations

import ast

import pytest

from sidearm_assets_tests.helpers import REPO

pytestmark = pytest.mark.unit

TESTS = REPO / "sidearm_assets_tests"


def test_the_import_contracts_are_kept(capsys, monkeypatch):
    """`lint-imports` on `.importlinter`; its report is the failure message."""
    from importlinter.cli import lint_imports

    monkeypatch.chdir(REPO)
    exit_code = lint_imports(config_filename=str(REPO / ".importlinter"), no_cache=True)
    report = capsys.readouterr().out
    assert exit_code == 0, report


def _imported_modules(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = "sidearm_assets_tests" if node.level else (node.module or "")
            module = f"{package}.{node.module}" if node.level and node.module else package
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_test_module_imports_another():
    """What two test modules share lives in a helper module (helpers.py, final_world.py, ...)."""
    offenders = {}
    for path in sorted(TESTS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        test_modules = sorted({
            ".".join(name.split(".")[:2]) if name.startswith("sidearm_assets_tests.") else name.split(".")[0]
            for name in _imported_modules(tree)
            if name.startswith(("sidearm_assets_tests.test_", "test_"))
        })
        if test_modules:
            offenders[path.name] = test_modules
    assert not offenders, f"test modules imported by other modules: {offenders}"
