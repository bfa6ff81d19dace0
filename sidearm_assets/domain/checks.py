"""One shape for asset checks in the domain, for the live, the final and the lake checks alike.

A check table maps each check's name to its `CheckSpec` (the asset it checks, its severity, what
it asserts); a computation reports a `CheckOutcome` per check through `CheckSpec.outcome`. The
Dagster layer turns specs into `AssetCheckSpec`s and outcomes into `AssetCheckResult`s or
`AssetCheckEvaluation`s (`assets/checks.py`); the domain never imports Dagster.
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
    asset: str  # the asset the check belongs to


@dataclass(frozen=True)
class CheckSpec:
    """What one check is: the asset it checks, its severity, and what it asserts (the UI shows it)."""

    asset: str
    severity: str  # "ERROR" or "WARN"
    description: str

    def outcome(self, name: str, passed: bool, metadata: dict) -> CheckOutcome:
        return CheckOutcome(name, passed, self.severity, self.description, metadata, self.asset)
