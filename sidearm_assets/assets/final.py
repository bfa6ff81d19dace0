"""The final tables `players2` and `teams2` (SPEC 6): base tables + every completed game, with PySpark."""

import time
from concurrent.futures import ThreadPoolExecutor

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from sidearm_assets.storage.spark_resource import SparkSessionResource  # imports no pyspark, starts no JVM

from sidearm_assets.storage import final_tables_db
from sidearm_assets.storage.completed_games import (
    CompletedGamesError,
    archive_finished_live_games,
    load_completed_games,
)
from sidearm_assets.domain.final import FINAL_CHECKS, UnknownTeamError, check_teams, final_checks
from sidearm_assets.assets.checks import as_check_result, check_specs
from sidearm_assets.domain.checks import CheckOutcome, CheckSpec
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase

# The run tag the game-over sensor puts on its runs; the instance's run queue lets one run with
# it work at a time (local_instance.py, deploy/dagster.yaml).
FINAL_RUN_TAG = "sidearm/final-tables"

# Checks the asset adds to those of domain/final.py (the record, and reports).
EXTRA_CHECKS = {
    "live_games_scheduled": CheckSpec(
        "teams2", "WARN",
        "Every game object in the bucket has a schedule row (an unscheduled game is never counted).",
    ),
    "counted_games_recorded": CheckSpec(
        "teams2", "ERROR",
        "The games the written tables count are exactly the games in sidearmdb.counted_games, "
        "version for version (a counted game leaves only through `sidearm-games uncount`).",
    ),
    "completed_games_counted": CheckSpec(
        "teams2", "ERROR",
        "Every completed game in the archive is counted (a game that cannot be counted is named "
        "here and the others are counted without it).",
    ),
    "archive_holds_counted_games": CheckSpec(
        "teams2", "WARN",
        "Every counted game is in the archive of completed games (a game the object store lost is "
        "counted from the record and re-archived).",
    ),
}
ALL_CHECKS = {**FINAL_CHECKS, **EXTRA_CHECKS}


def new_generation() -> str:
    """A fixed-width UTC timestamp: later computations compare greater (final_tables_db)."""
    return final_tables_db.utc_now()


@multi_asset(
    name="final_tables",
    specs=[
        AssetSpec(
            "players2",
            deps=["reference_players", "raw_gamestream"],
            group_name="final",
            kinds={"spark", "sql"},
            description="Season shots and goals per player after every completed game "
            "(sidearmdb.players2, same columns as players).",
        ),
        AssetSpec(
            "teams2",
            deps=["reference_teams", "raw_gamestream"],
            group_name="final",
            kinds={"spark", "sql"},
            description="Season wins and losses per team after every completed game "
            "(sidearmdb.teams2, same columns as teams).",
        ),
    ],
    check_specs=check_specs(ALL_CHECKS),
)
def final_tables(
    context: AssetExecutionContext,
    gamestreams: GameStreamStore,
    sidearmdb: ReferenceDatabase,
    pyspark: SparkSessionResource,
):
    """players2 and teams2: the base tables plus every counted game (the record in sidearmdb
    UNION the archive), computed with PySpark and written with the record in one transaction."""
    started = time.monotonic()
    _stop_if_given_up(context)
    # The JVM takes seconds to start: start it now, while the games are read and parsed.
    spark_start = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-session")
    session = spark_start.submit(lambda: pyspark.spark_session)
    spark_start.shutdown(wait=False)
    engine = sidearmdb.engine()
    try:
        games, teams, players = sidearmdb.games(), sidearmdb.teams(), sidearmdb.players()
    except Exception as exc:
        raise Failure(description=f"cannot read the reference tables from sidearmdb: {exc}") from exc

    # 1. A manual materialization first archives the live games that are over now; the
    #    game-over sensor's runs skip it (the live path files completions as it publishes them,
    #    and GETting every live object is what made runs slow at scale).
    manual = FINAL_RUN_TAG not in context.run.tags
    report = None
    try:
        if manual:
            report = archive_finished_live_games(gamestreams, games, teams)
        live_games = set(gamestreams.list_games())
    except Exception as exc:
        raise Failure(description=f"cannot read the game objects in s3://{gamestreams.bucket}: {exc}") from exc
    scheduled = {g["game_id"] for g in games}
    unscheduled = sorted(live_games - scheduled)

    # 2. Record UNION archive. The generation is taken before both are read: a later reading can
    #    only hold more (or newer) games, and an uncount moves the generation past this one.
    generation = new_generation()
    try:
        record = final_tables_db.read_record(engine)
        uncounted = final_tables_db.read_record_summary(engine).uncounted
    except Exception as exc:
        raise Failure(description=f"cannot read the record of counted games from sidearmdb: {exc}") from exc
    try:
        loaded = load_completed_games(gamestreams, record, games, teams, uncounted)
        check_teams(teams, loaded.games)
    except (CompletedGamesError, UnknownTeamError) as exc:
        raise Failure(description=str(exc)) from exc
    except Exception as exc:
        raise Failure(description=f"cannot read the completed-games archive: {exc}") from exc
    for warning in loaded.warnings:
        context.log.warning(warning)
    for problem in loaded.uncountable:
        context.log.error(f"not counted: {problem}")
    read_seconds = time.monotonic() - started

    # 3. Spark.
    from sidearm_assets.storage.final_spark import compute_final_tables

    _stop_if_given_up(context)
    spark_started = time.monotonic()
    try:
        spark = session.result()
    except Exception as exc:
        raise Failure(description=f"cannot start the Spark session: {exc}") from exc
    session_seconds = time.monotonic() - spark_started  # what the reads did not hide
    result = compute_final_tables(spark, players, teams, loaded.games)
    spark_seconds = time.monotonic() - spark_started

    # 4. One transaction for both tables and the record.
    write_started = time.monotonic()
    try:
        written = final_tables_db.write_final_tables(
            engine, result.players, result.teams, generation, counted=loaded.record, run_id=context.run_id
        )
    except final_tables_db.RecordedGameDropped as exc:
        raise Failure(description=str(exc)) from exc
    write_seconds = time.monotonic() - write_started
    if written.written:
        stored = final_tables_db.read_final_tables(engine)
        checked_players, checked_teams = stored if stored else (result.players, result.teams)
        context.log.info(
            f"players2 ({written.players} rows) and teams2 ({written.teams} rows) written: "
            f"{len(loaded.games)} counted game(s), {len(loaded.read_from_s3)} read from the archive, "
            f"{len(loaded.from_record)} from the record"
        )
    else:
        checked_players, checked_teams = result.players, result.teams
        context.log.warning(
            f"not written: a newer computation or uncount (generation {written.current_generation}) "
            f"is in the tables already; this one (generation {generation}) is older"
        )

    # 5. The season lake: the games this run read anew (new or corrected) get their Parquet file,
    #    replaced whole (SPEC 9); the analytics assets, in the same run, read the lake after this.
    lake = _sync_lake(context, gamestreams, loaded, games, teams, players) if written.written else None

    # 6. Checks: the tables against an independent plain-Python computation, and the record.
    outcomes = final_checks(players, teams, loaded.games, checked_players, checked_teams)
    outcomes += record_checks(engine, loaded, unscheduled, written.written)
    common = {
        "completed_games": len(loaded.games),
        "games_digest": written.digest,
        "games": MetadataValue.md(_games_markdown(loaded.games)) if loaded.games else "none",
        "archived_now": report.archived if report else [],
        "read_from_archive": len(loaded.read_from_s3),
        "counted_from_record": len(loaded.from_record),
        "newly_recorded": list(written.recorded),
        "corrected": loaded.corrected,
        "rearchived": loaded.rearchived,
        "not_counted": loaded.uncountable,
        "uncounted_versions_ignored": loaded.uncounted,
        "written": written.written,
        "lake_files_written": [w.game_id for w in lake.written] if lake else [],
        "lake_problems": lake.problems if lake else [],
        "generation": generation,
        "seconds_read": round(read_seconds, 3),
        "seconds_waiting_for_spark_session": round(session_seconds, 3),
        "seconds_spark_total": round(spark_seconds, 3),
        "seconds_write": round(write_seconds, 3),
    }
    players_meta = {
        **common,
        "row_count": len(result.players),
        "unknown_jerseys": [
            f"{u['game_id']}: team {u['teamid']} #{u['jersey']} ({u['shots']} shots, {u['goals']} goals)"
            for u in result.unknown_jerseys
        ][:200],
        "changes": MetadataValue.md(_player_changes_markdown(players, checked_players)),
    }
    teams_meta = {
        **common,
        "row_count": len(result.teams),
        "tied_games": result.tied_games,
        "records": MetadataValue.md(_records_markdown(teams, checked_teams)),
    }
    for asset, meta in (("players2", players_meta), ("teams2", teams_meta)):
        yield MaterializeResult(
            asset_key=asset,
            metadata=meta,
            check_results=[as_check_result(o) for o in outcomes if o.asset == asset],
        )


def _stop_if_given_up(context) -> None:
    """A run worker that started after run monitoring failed its run (too slow to start on a busy
    machine) stops instead of working beside the retry: one final-tables run works at a time.
    (Were it to go on, its write would be harmless: an older generation never overwrites a newer.)"""
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status.value in ("FAILURE", "CANCELED", "CANCELING"):
        raise Failure(
            description=f"run {context.run_id[:8]} was marked {run.status.value} (run monitoring) before it "
            "could work; its retry or the game-over sensor's next run counts the games"
        )


def _extra(name: str, passed: bool, metadata: dict) -> CheckOutcome:
    return EXTRA_CHECKS[name].outcome(name, passed, metadata)


def record_checks(engine, loaded, unscheduled: list[str], written: bool) -> list[CheckOutcome]:
    """The record's checks, read back from sidearmdb after the write. When this run's write was
    refused (a newer one is in), the tables in place must match the record in place."""
    summary = final_tables_db.read_record_summary(engine)
    record_digest = final_tables_db.record_digest(summary.record)
    counted = {r.game_id: r.etag for r in loaded.record}
    missing = sorted(set(summary.record) - set(counted))
    extra = sorted(set(counted) - set(summary.record))
    other_version = sorted(g for g in set(counted) & set(summary.record) if counted[g] != summary.record[g])
    consistent = summary.tables_digest == record_digest
    if written:
        consistent = consistent and not (missing or extra or other_version)
    return [
        _extra("live_games_scheduled", not unscheduled, {"unscheduled_games": unscheduled}),
        _extra(
            "counted_games_recorded",
            consistent,
            {
                "recorded_games": len(summary.record),
                "tables_digest": summary.tables_digest or "",
                "record_digest": record_digest,
                "recorded_not_counted": missing,
                "counted_not_recorded": extra,
                "other_version": other_version,
                "this_run_written": written,
            },
        ),
        _extra("completed_games_counted", not loaded.uncountable, {"not_counted": loaded.uncountable}),
        _extra("archive_holds_counted_games", not loaded.rearchived, {"rearchived": loaded.rearchived}),
    ]


def _sync_lake(context, gamestreams, loaded, games, teams, players):
    """Write the lake files of the games read anew, and record each as a `game_events` materialization.

    A lake that cannot be written never undoes the final tables (they are committed): the problem is
    logged and in the metadata, the analytics' `lake_one_file_per_game` check shows the gap, and
    `python -m sidearm_assets.lake backfill` rebuilds it."""
    from dagster import AssetMaterialization

    from sidearm_assets.assets.lake import season
    from sidearm_assets.lake.store import SyncReport, sync_lake

    fresh = set(loaded.read_from_s3)
    todo = [(g.game_id, g.data) for g in loaded.record if g.game_id in fresh]
    if not todo:
        return SyncReport()
    try:
        report = sync_lake(gamestreams, todo, schedule=games, teams=teams, players=players, season=season())
    except Exception as exc:
        context.log.error(f"season lake not written for {len(todo)} game(s): {exc}")
        return SyncReport(problems=[f"lake not written: {exc}"])
    for w in report.written:
        context.log_event(AssetMaterialization(
            asset_key="game_events", partition=w.game_id,
            metadata={"path": w.path, "rows": w.rows, "bytes": w.bytes, "score": f"{w.home_score}-{w.away_score}",
                      "stream_sha256": w.stream_sha256, "written_by": "final tables run"},
        ))
    for problem in report.problems:
        context.log.warning(f"season lake: {problem}")
    return report


def _games_markdown(games) -> str:
    lines = ["| game | home | score | away | result |", "|---|---|---|---|---|"]
    for g in games:
        result = f"{g.winner} wins" if g.decided else "**tie** (no record changed)"
        lines.append(
            f"| {g.game_id} | {g.home_teamid} | {g.home_score}-{g.away_score} | {g.away_teamid} | "
            f"{result}, {g.over_reason} |"
        )
    return "\n".join(lines)


def _records_markdown(base: list[dict], new: list[dict]) -> str:
    by_id = {t["id"]: t for t in base}
    lines = ["| id | team | before | after |", "|---|---|---|---|"]
    for t in new:
        b = by_id.get(t["id"], {})
        lines.append(f"| {t['id']} | {t['name']} | {b.get('wins')}-{b.get('losses')} | {t['wins']}-{t['losses']} |")
    return "\n".join(lines)


def _player_changes_markdown(base: list[dict], new: list[dict]) -> str:
    by_id = {p["id"]: p for p in base}
    lines = ["| id | team | # | player | shots | goals |", "|---|---|---|---|---|---|"]
    changed = 0
    for p in new:
        b = by_id.get(p["id"])
        if b is None or (b["shots"], b["goals"]) == (p["shots"], p["goals"]):
            continue
        changed += 1
        lines.append(
            f"| {p['id']} | {p['teamid']} | {p['number']} | {p['name']} | "
            f"{b['shots']} → {p['shots']} | {b['goals']} → {p['goals']} |"
        )
    return "\n".join(lines) if changed else "no player changed (no completed game yet)"
