"""Turning the domain's check outcomes into Dagster check results (one place for both assets)."""

from dagster import AssetCheckResult, AssetCheckSeverity

from sidearm_assets.domain.live import CheckOutcome


def as_check_result(outcome: CheckOutcome, asset_key: str | None = None) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key, check_name=outcome.name, passed=outcome.passed,
        severity=AssetCheckSeverity(outcome.severity), description=outcome.description, metadata=outcome.metadata,
    )
