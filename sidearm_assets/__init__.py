"""Dagster code location for live lacrosse box scores: `dagster dev -m sidearm_assets`."""

from sidearm_assets.definitions import defs

__all__ = ["defs"]
