"""What every SQL module of the project shares: ids in chunks that keep a statement under every
backend's limit on bound parameters, and the timestamp the tables store."""

from __future__ import annotations

from datetime import datetime, timezone

CHUNK = 500  # ids per IN (...) list: SQL Server takes at most 2,100 parameters a statement


def chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def utc_now() -> str:
    """A fixed-width UTC timestamp: later moments compare greater as strings."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
