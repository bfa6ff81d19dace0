"""The final tables `players2` and `teams2` (SPEC 6): base tables + every completed game, with PySpark."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from sidearm_assets.spark_resource import SparkSessionResource  # imports no pyspark, starts no JVM

from sidearm_assets import final_tables_db
from sidearm_assets.completed_games import (
    CompletedGamesError,
    archive_finished_live_games,
    load_archived_games,
)
from sidearm_assets.domain.final import FINAL_CHECKS, UnknownTeamError, check_teams, final_checks
from sidearm_assets.assets.checks import as_check_result
from sidearm_assets.domain.live import CheckOutcome
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase

# Checks the asset adds to those of domain/final.py (reports, not computations).
EXTRA_CHECKS = {
    "live_games_scheduled": (
        "teams2", "WARN",
        "Every game object in the bucket has a schedule row (an unscheduled game is never counted).",
    ),
}
ALL_CHECKS = {**FINAL_CHECKS, **EXTRA_CHECKS}


def new_generation() -> str:
    """A fixed-width UTC timestamp: later computations compare greater (final_tables_db)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    check_specs=[
        AssetCheckSpec(name, asset=asset, description=description)
        for name, (asset, _, description) in ALL_CHECKS.items()
    ],
)
def final_tables(
    context: AssetExecutionContext,
    gamestreams: GameStreamStore,
    sidearmdb: ReferenceDatabase,
    pyspark: SparkSessionResource,
):
    """players2 and teams2: the base tables plus every completed game, computed with PySpark and
    written in one transaction."""
    started = time.monotonic()
    # The JVM takes seconds to start: start it now, while the games are read and parsed.
    spark_start = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-session")
    session = spark_start.submit(lambda: pyspark.spark_session)
    spark_start.shutdown(wait=False)
    games, teams, players = sidearmdb.games(), sidearmdb.teams(), sidearmdb.players()

    # 1. Archive live games that are over now (the sensor archives what it saw already; a manual
    #    materialization must not depend on it).
    try:
        report = archive_finished_live_games(gamestreams, games, teams)
    except Exception as exc:
        raise Failure(description=f"cannot read the game objects in s3://{gamestreams.bucket}: {exc}") from exc
    if report.errors:
        raise Failure(
            description="completed game(s) whose teams are not in the teams table: " + "; ".join(report.errors),
            metadata={"games": report.errors},
        )

    # 2. Every archived completed game. The generation is taken before the listing: a later
    #    listing can only hold more (or newer) games, so a later generation is never staler.
    generation = new_generation()
    try:
        archived = load_archived_games(gamestreams, games, teams)
        check_teams(teams, archived.games)
    except (CompletedGamesError, UnknownTeamError) as exc:
        raise Failure(description=str(exc)) from exc
    except Exception as exc:
        raise Failure(description=f"cannot read the completed-games archive: {exc}") from exc
    read_seconds = time.monotonic() - started

    # 3. Spark.
    from sidearm_assets.final_spark import compute_final_tables

    spark_started = time.monotonic()
    spark = session.result()
    session_seconds = time.monotonic() - spark_started  # what the reads did not hide
    result = compute_final_tables(spark, players, teams, archived.games)
    spark_seconds = time.monotonic() - spark_started

    # 4. One transaction for both tables.
    write_started = time.monotonic()
    engine = sidearmdb.engine()
    game_versions = [f"{g}@{v}" for g, v in sorted(archived.versions.items())]
    written = final_tables_db.write_final_tables(
        engine, result.players, result.teams, generation, games=game_versions, run_id=context.run_id
    )
    write_seconds = time.monotonic() - write_started
    if written.written:
        stored = final_tables_db.read_final_tables(engine)
        checked_players, checked_teams = stored if stored else (result.players, result.teams)
        context.log.info(
            f"players2 ({written.players} rows) and teams2 ({written.teams} rows) written: "
            f"{len(archived.games)} completed game(s)"
        )
    else:
        checked_players, checked_teams = result.players, result.teams
        context.log.warning(
            f"not written: a newer computation (generation {written.current_generation}) is in the "
            f"tables already; this one (generation {generation}) is older"
        )

    # 5. Checks: the tables against an independent plain-Python computation.
    outcomes = final_checks(players, teams, archived.games, checked_players, checked_teams)
    unscheduled = report.unscheduled
    outcomes.append(
        (
            "teams2",
            CheckOutcome(
                "live_games_scheduled", not unscheduled, EXTRA_CHECKS["live_games_scheduled"][1],
                EXTRA_CHECKS["live_games_scheduled"][2], {"unscheduled_games": unscheduled},
            ),
        )
    )
    common = {
        "completed_games": len(archived.games),
        "games": MetadataValue.md(_games_markdown(archived.games)) if archived.games else "none",
        "archived_now": report.archived,
        "written": written.written,
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
        ],
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
            check_results=[as_check_result(o, asset) for a, o in outcomes if a == asset],
        )


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
