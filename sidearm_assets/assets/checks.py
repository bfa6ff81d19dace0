"""Turning the domain's check specs and outcomes into Dagster's (one place for every asset)."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from sidearm_assets.domain.checks import CheckOutcome, CheckSpec


def check_specs(table: dict[str, CheckSpec]) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(name, asset=spec.asset, description=spec.description) for name, spec in table.items()]


def as_check_result(outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=outcome.asset, check_name=outcome.name, passed=outcome.passed,
        severity=AssetCheckSeverity(outcome.severity), description=outcome.description, metadata=outcome.metadata,
    )
