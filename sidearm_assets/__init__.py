"""Dagster code location for live lacrosse box scores: `dagster dev -m sidearm_assets`.

`defs` is loaded on first access, so the simulator, `sidearm-local` and `sidearm-web`, which
import only plain modules of this package, start without importing Dagster.
"""

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from sidearm_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'sidearm_assets' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "defs"])
