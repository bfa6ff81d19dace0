"""The season lake (SPEC 9): counted games' events as Parquet, and season analytics over them.

`season_lake` follows the record of counted games that `players2`/`teams2` commit, so it runs
after them in the game-over sensor's runs; `season_analytics` aggregates the games' facts the
lake step keeps in sidearmdb. Both are unpartitioned: a run of the final tables cannot also
hold a partition per game (Dagster runs one partition set per run), and a run's work is
"whatever changed in the record", not one game.
"""

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from sidearm_assets import settings
from sidearm_assets.assets.checks import as_check_result, check_specs
from sidearm_assets.lake import analytics, follow, season as season_sql, store, tables
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase

LIST_CAP = 50  # games named in a materialization's metadata; the rest are counted


def season() -> int:
    """The season label for new lake files (SIDEARM_SEASON), checked."""
    text = settings.SEASON.value()
    try:
        return int(text)
    except ValueError:
        raise Failure(description=f"{settings.SEASON.name}={text!r} is not a year") from None


class LakeConfig(Config):
    reconcile: bool = False  # list the lake and repair it even when its marker is there
    rewrite: list[str] = []  # game ids to write again whatever their state; ["*"] = every counted game


@asset(
    group_name="lake",
    kinds={"s3", "parquet"},
    deps=["players2", "teams2", "reference_teams", "reference_players"],
)
def season_lake(context: AssetExecutionContext, config: LakeConfig, gamestreams: GameStreamStore,
                sidearmdb: ReferenceDatabase) -> MaterializeResult:
    """One Parquet file per counted game in s3://<bucket>/lake/events/, kept equal to the record of counted games."""
    location = store.LakeLocation.of(gamestreams)
    try:
        report = follow.follow_record(
            location, sidearmdb.engine(), season(), reconcile=config.reconcile, rewrite=config.rewrite or None,
            run_id=context.run_id, log=context.log.warning,
        )
    except Exception as exc:
        raise Failure(description=f"the lake at {location.url} could not follow the record: {exc}") from exc
    for problem in report.problems:
        context.log.error(f"not in the lake: {problem}")
    return MaterializeResult(metadata=lake_metadata(location, report))


def lake_metadata(location: store.LakeLocation, report: follow.FollowReport) -> dict:
    """This run's work (capped lists) and the lake's size, as numbers: nothing grows with the season."""
    return {
        "lake": location.url,
        "counted_games": report.counted,
        "files_written": len(report.written),
        "events_written": report.events,
        "bytes_written": sum(w.bytes for w in report.written),
        "written": MetadataValue.md(files_markdown(report.written)),
        "files_deleted": len(report.deleted) + len(report.strays),
        "deleted_games": report.deleted[:LIST_CAP],
        "not_written": len(report.problems),
        "first_not_written": report.problems[:20],
        "reconciled": report.reconciled or "no (marker present)",
        "seconds": round(report.seconds, 3),
    }


def files_markdown(written) -> str:
    if not written:
        return "no file written: the lake already followed the record"
    lines = ["| game | events | score | file | stream sha256 |", "|---|---|---|---|---|"]
    for w in written[:LIST_CAP]:
        lines.append(f"| {w.game_id} | {w.rows} | {w.home_score}-{w.away_score} | s3://{w.path} | {w.stream_sha256[:12]} |")
    if len(written) > LIST_CAP:
        lines.append(f"\n{len(written) - LIST_CAP} more file(s).")
    return "\n".join(lines)


ANALYTICS_DESCRIPTIONS = {
    "scoring_leaders": "Season scoring leaders: goals, shots, pct, games with a shot (sidearmdb.season_scoring_leaders).",
    "team_shooting_by_quarter": "Each team's shots, goals and pct by quarter, overtime as quarter 5 "
    "(sidearmdb.season_team_shooting_by_quarter).",
    "lead_changes": "Per counted game: lead changes, times tied and the deficit the winner came back from "
    "(sidearmdb.season_lead_changes).",
    "clutch_scorers": "Game-winning goals and late (4th quarter, overtime) tying or go-ahead goals per player "
    "(sidearmdb.season_clutch_scorers).",
}
METADATA_ROWS = 25


@multi_asset(
    name="season_analytics",
    specs=[
        AssetSpec(name, deps=["season_lake", "reference_teams", "reference_players"], group_name="lake",
                  kinds={"sql"}, description=ANALYTICS_DESCRIPTIONS[name])
        for name in analytics.ANALYTICS
    ],
    check_specs=check_specs(analytics.LAKE_CHECKS),
)
def season_analytics(context: AssetExecutionContext, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    """The season tables, one SQL aggregate each over the games' facts, written in one transaction."""
    engine = sidearmdb.engine()
    try:
        run = analytics.refresh(store.LakeLocation.of(gamestreams), engine, context.run_id)
    except Exception as exc:
        raise Failure(description=f"cannot refresh the season analytics in sidearmdb: {exc}") from exc
    for name in analytics.ANALYTICS:
        first = tables.read_table(engine, name, season_sql.ORDER[name], METADATA_ROWS) or []
        yield MaterializeResult(
            asset_key=name,
            check_results=[as_check_result(c) for c in run.checks if c.asset == name],
            metadata={
                "table": f"sidearmdb.{tables.TABLES[name].name}",
                "row_count": run.write.rows[name],
                "rows": MetadataValue.md(analytics.markdown_table(first, run.write.rows[name])),
                "games": run.write.games,
                "events": run.write.events,
                "generation": run.write.generation,
                "seconds_refresh": round(run.seconds_refresh, 3),
                "seconds_checks": round(run.seconds_checks, 3),
            },
        )
