"""One shape for an asset check's result in the domain, for the live and the final checks alike.

The Dagster layer turns it into an `AssetCheckResult` or `AssetCheckEvaluation`
(`assets/checks.py`); the domain never imports Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check's result, before it becomes a Dagster check result."""

    name: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str
    metadata: dict
