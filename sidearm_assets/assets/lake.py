"""The season lake (SPEC 9): completed games' events as Parquet, and season analytics over them."""

import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    BackfillPolicy,
    BetaWarning,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from sidearm_assets import settings
from sidearm_assets.assets.checks import as_check_result, check_specs
from sidearm_assets.lake import analytics, store, tables
from sidearm_assets.partitions import games_partitions
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase


def season() -> int:
    """The season label for new lake files (SIDEARM_SEASON), checked."""
    text = settings.SEASON.value()
    try:
        return int(text)
    except ValueError:
        raise Failure(description=f"{settings.SEASON.name}={text!r} is not a year") from None


# `backfill_policy` is beta in Dagster 1.13 (a warning at every load of the code location); the
# single-run backfill it gives is what a season rebuild wants.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=BetaWarning)

    @asset(
        partitions_def=games_partitions,
        group_name="lake",
        kinds={"s3", "parquet"},
        deps=["raw_gamestream", "reference_teams", "reference_players"],
        # A backfill over many games is one run that writes their files in parallel.
        backfill_policy=BackfillPolicy.single_run(),
    )
    def game_events(
        context: AssetExecutionContext, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase
    ) -> MaterializeResult:
        """The completed game's accepted events, one Parquet file in s3://<bucket>/lake/events/ (replaced on a correction)."""
        game_ids = list(context.partition_keys)
        location = store.LakeLocation.of(gamestreams)
        try:
            completed = gamestreams.list_archive()
            wanted = [g for g in game_ids if g in completed]
            not_completed = [g for g in game_ids if g not in completed]
            with ThreadPoolExecutor(max_workers=16, thread_name_prefix="archive-read") as pool:
                streams = list(zip(wanted, (data for data, _ in pool.map(lambda g: gamestreams.read_archive(g), wanted))))
        except Exception as exc:
            raise Failure(description=f"cannot read the completed games in s3://{gamestreams.bucket}: {exc}") from exc
        if len(game_ids) == 1 and not_completed:
            raise Failure(
                description=f"game {game_ids[0]!r} is not completed (no completed/{game_ids[0]}.txt in "
                f"s3://{gamestreams.bucket}): the lake holds completed games only"
            )
        report = store.sync_lake(
            location, streams, schedule=sidearmdb.games(), teams=sidearmdb.teams(), players=sidearmdb.players(), season=season()
        )
        for w in report.written:
            context.log.info(f"{w.game_id}: {w.rows} events, {w.home_score}-{w.away_score} -> s3://{w.path}")
        if not_completed:
            context.log.warning(f"not completed, not in the lake: {', '.join(not_completed)}")
        if report.problems:
            raise Failure(
                description="completed game(s) not written to the lake: " + "; ".join(report.problems),
                metadata={"written": [w.game_id for w in report.written]},
            )
        return MaterializeResult(
            metadata={
                "lake": location.url,
                "games_written": len(report.written),
                "events": report.events,
                "bytes": sum(w.bytes for w in report.written),
                "files": MetadataValue.md(_files_markdown(report.written)),
                "not_completed": not_completed,
            }
        )


def _files_markdown(written) -> str:
    lines = ["| game | events | score | file | stream sha256 |", "|---|---|---|---|---|"]
    for w in written[:50]:
        lines.append(f"| {w.game_id} | {w.rows} | {w.home_score}-{w.away_score} | s3://{w.path} | {w.stream_sha256[:12]} |")
    if len(written) > 50:
        lines.append(f"\n{len(written) - 50} more file(s).")
    return "\n".join(lines)


ANALYTICS_DESCRIPTIONS = {
    "scoring_leaders": "Season scoring leaders from the lake: goals, shots, pct, games with a shot "
    "(sidearmdb.season_scoring_leaders).",
    "team_shooting_by_quarter": "Each team's shots, goals and pct by quarter, overtime as quarter 5 "
    "(sidearmdb.season_team_shooting_by_quarter).",
    "lead_changes": "Per completed game: lead changes, times tied and the deficit the winner came back from "
    "(sidearmdb.season_lead_changes).",
    "clutch_scorers": "Game-winning goals and late (4th quarter, overtime) tying or go-ahead goals per player "
    "(sidearmdb.season_clutch_scorers).",
}


@multi_asset(
    name="season_analytics",
    specs=[
        AssetSpec(
            name,
            # After the final tables in a run that selects both: the game-over path writes the
            # lake files of the games it counts in that step (docs/lake.md, hookup).
            deps=["game_events", "reference_teams", "reference_players", "players2", "teams2"],
            group_name="lake",
            kinds={"duckdb", "sql"},
            description=ANALYTICS_DESCRIPTIONS[name],
        )
        for name in analytics.ANALYTICS
    ],
    check_specs=check_specs(analytics.LAKE_CHECKS),
)
def season_analytics(context: AssetExecutionContext, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    """The season business queries over every lake file, written to sidearmdb in one transaction."""
    location = store.LakeLocation.of(gamestreams)
    generation = tables.new_generation()  # before the listing: a later listing is never staler
    started = time.monotonic()
    try:
        result = analytics.compute_analytics(location, sidearmdb.teams(), sidearmdb.players())
    except Exception as exc:
        raise Failure(description=f"cannot read the lake at {location.url}: {exc}") from exc
    compute_seconds = time.monotonic() - started
    written = tables.write_analytics(
        sidearmdb.engine(), result.tables, generation, games=result.games, events=result.events, run_id=context.run_id
    )
    if result.snapshot_note:
        context.log.warning(result.snapshot_note)
    if not written.written:
        context.log.warning(
            f"not written: a newer computation (generation {written.current_generation}) is in the tables already"
        )
    checks = analytics.lake_checks(result)
    for name in analytics.ANALYTICS:
        rows = result.tables[name]
        yield MaterializeResult(
            asset_key=name,
            check_results=[as_check_result(c) for c in checks if c.asset == name],
            metadata={
                "table": f"sidearmdb.{tables.TABLES[name].name}",
                "row_count": len(rows),
                "rows": MetadataValue.md(analytics.markdown_table(rows)),
                "games": result.games,
                "events": result.events,
                "written": written.written,
                "generation": generation,
                "lake_files": len(result.files or ()),
                "lake_files_fetched": result.files_fetched,  # the rest came from the snapshot
                "seconds_scan_lake": round(result.seconds_scan, 3),
                "seconds_query": round(result.seconds_queries[name], 3),
                "seconds_total": round(compute_seconds, 3),
            },
        )
