"""The final tables `players2` and `teams2` (SPEC 6, 8): base tables + the facts of every counted
game; a run computes with PySpark the facts of the games it counts (storage/completed_games.py).

The checks about the run's own games are the asset's; the checks that read the whole tables back
(`final_tables_checks`) are a step of their own, ordered after the season lake and analytics in
the same run (a lower step priority), so the analytics never wait for them."""

import time

from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
    multi_asset_check,
)

from sidearm_assets.assets.checks import as_check_result, check_specs
from sidearm_assets.domain.checks import CheckOutcome, CheckSpec
from sidearm_assets.domain.facts import RUN_CHECK_NAMES, SeasonTotals, run_checks, table_checks
from sidearm_assets.domain.final import FINAL_CHECKS
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.storage.completed_games import (
    CompletedGamesError,
    CountingJob,
    CountingReport,
    reconcile_bucket,
    restore_archive_if_lost,
)
from sidearm_assets.storage.spark_resource import SparkSessionResource  # imports no pyspark, starts no JVM

# The run tag the game-over sensor puts on its runs; the instance's run queue lets one run with
# it work at a time (local_instance.py, deploy/dagster.yaml).
FINAL_RUN_TAG = "sidearm/final-tables"
# Added to a run when it has finished counting, valued with its own run id (a retry copies its
# parent's tags but has another id): the game-over sensor may queue the next run behind it.
COUNTED_TAG = "sidearm/counted"
LIST_LIMIT = 50  # entries of any list in the metadata; the rest is a count

EXTRA_CHECKS = {
    "live_games_scheduled": CheckSpec(
        "teams2", "WARN",
        "Every game object in the bucket has a schedule row (an unscheduled game is never counted).",
    ),
    "counted_games_recorded": CheckSpec(
        "teams2", "ERROR",
        "The tables count exactly the games in sidearmdb.counted_games, version for version (each "
        "counted game has its facts, of that version, and no other game has facts).",
    ),
    "completed_games_counted": CheckSpec(
        "teams2", "ERROR",
        "Every completion filed before this run is counted (a game that cannot be counted is named "
        "here and the others are counted without it).",
    ),
    "archive_holds_counted_games": CheckSpec(
        "teams2", "WARN",
        "Every counted game is in the archive of completed games: nothing had to be put back (the "
        "archive marker reveals a store that lost its contents; a manual materialization checks "
        "every game).",
    ),
}
ALL_CHECKS = {**FINAL_CHECKS, **EXTRA_CHECKS}
# The asset's checks: the games this run counted, and the archive it may have put back.
ASSET_CHECKS = {n: ALL_CHECKS[n] for n in (*RUN_CHECK_NAMES, "archive_holds_counted_games")}
TABLE_CHECKS = {n: spec for n, spec in ALL_CHECKS.items() if n not in ASSET_CHECKS}


@multi_asset(
    name="final_tables",
    specs=[
        AssetSpec(
            "players2", deps=["reference_players", "raw_gamestream"], group_name="final", kinds={"spark", "sql"},
            description="Season shots and goals per player: players + the facts of every counted game "
            "(sidearmdb.players2, same columns as players).",
        ),
        AssetSpec(
            "teams2", deps=["reference_teams", "raw_gamestream"], group_name="final", kinds={"spark", "sql"},
            description="Season wins and losses per team: teams + the facts of every counted game "
            "(sidearmdb.teams2, same columns as teams).",
        ),
    ],
    check_specs=check_specs(ASSET_CHECKS),
)
def final_tables(
    context: AssetExecutionContext,
    gamestreams: GameStreamStore,
    sidearmdb: ReferenceDatabase,
    pyspark: SparkSessionResource,
):
    """Count the completions waiting in sidearmdb's inbox: their facts with PySpark, then facts,
    record and the rebuilt players2/teams2 in one transaction."""
    _stop_if_given_up(context)
    engine = sidearmdb.engine()
    reconciled = None
    if FINAL_RUN_TAG not in context.run.tags:  # a manual materialization: reconcile the bucket first
        try:
            reconciled = reconcile_bucket(gamestreams, engine)
        except Exception as exc:
            raise Failure(description=f"cannot reconcile s3://{gamestreams.bucket} with the inbox: {exc}") from exc
    session_wait = {}

    def before_spark():
        _stop_if_given_up(context)
        started = time.monotonic()
        pyspark.spark_session  # starts (or reaches) the session; a failure names the server
        session_wait["seconds"] = time.monotonic() - started

    def compute(games, rosters):
        from sidearm_assets.storage.final_spark import compute_game_facts

        return compute_game_facts(pyspark.spark_session, games, rosters)

    try:
        report = CountingJob(engine, compute, run_id=context.run_id).run_until_done(before_spark=before_spark)
    except (CompletedGamesError, final_tables_db.CountedGameDropped) as exc:
        raise Failure(description=str(exc)) from exc
    if FINAL_RUN_TAG in context.run.tags:
        context.instance.add_run_tags(context.run_id, {COUNTED_TAG: context.run_id})
    for warning in report.warnings:
        context.log.warning(warning)
    for u in report.uncountable:
        context.log.error(f"not counted: {u.game_id}: {u.problem}")
    written = report.written
    context.log.info(
        f"players2 ({written.players} rows) and teams2 ({written.teams} rows) written: {len(report.games)} "
        f"game(s) counted by this run ({report.rounds} round(s)), {written.completed_games} in the season"
    )
    archive_missing = reconciled.rearchived if reconciled else _restore_archive(context, gamestreams, engine)
    outcomes = run_checks(report.expected, report.facts, limit=LIST_LIMIT)
    outcomes.append(_extra("archive_holds_counted_games", not archive_missing, {"rearchived": archive_missing[:LIST_LIMIT]}))
    yield from _results(report, reconciled, session_wait, outcomes, archive_missing)


@multi_asset_check(
    name="final_tables_checks",
    specs=check_specs(TABLE_CHECKS),
    op_tags={"dagster/priority": "-1"},  # after the season lake and analytics of the same run
    description="players2/teams2 read back against base + the sum of every counted game's facts, and "
    "the record against the facts, the inbox and the bucket.",
)
def final_tables_checks(context: AssetCheckExecutionContext, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    engine = sidearmdb.engine()
    outcomes = read_back_checks(engine) + record_checks(engine, gamestreams)
    for outcome in outcomes:
        yield as_check_result(outcome)


def has_counted(run) -> bool:
    """Whether `run` (a DagsterRun) has finished counting: its own COUNTED_TAG, not a copied one."""
    return run.tags.get(COUNTED_TAG) == run.run_id


def _stop_if_given_up(context) -> None:
    """A run worker that started after run monitoring failed its run (too slow to start on a busy
    machine) stops instead of working beside the retry: one final-tables run works at a time."""
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status.value in ("FAILURE", "CANCELED", "CANCELING"):
        raise Failure(
            description=f"run {context.run_id[:8]} was marked {run.status.value} (run monitoring) before it "
            "could work; its retry or the game-over sensor's next run counts the games"
        )


def read_back_checks(engine) -> list[CheckOutcome]:
    """The tables read back against base + the sum of the facts read back (no tables yet: every
    check fails saying so)."""
    tables = final_tables_db.read_final_tables(engine)
    if tables is None:
        return [spec.outcome(name, False, {"problem": "players2/teams2 are not written yet"})
                for name, spec in FINAL_CHECKS.items() if name not in RUN_CHECK_NAMES]
    players, teams = reference_db.read_rows(engine, reference_db.players), reference_db.read_rows(engine, reference_db.teams)
    season = final_tables_db.read_season_facts(engine)
    # Goals credited to players who have left `players` count with the off-roster ones.
    totals = SeasonTotals(season.player_totals, season.team_totals, season.goals, season.unknown_goals + season.orphan_goals)
    return table_checks(players, teams, *tables, totals, limit=LIST_LIMIT)


def _restore_archive(context, gamestreams, engine) -> list[str]:
    """The archive is a copy (the record in sidearmdb is what counts), written by the live path
    before the game reaches a run: one HEAD of its marker per run tells whether the store lost its
    contents, and then every counted game is put back from the record. A store that does not
    answer is a warning, never a failed run after the tables are committed."""
    try:
        restored = restore_archive_if_lost(gamestreams, engine)
    except Exception as exc:
        context.log.warning(f"archive marker not checked: {exc}")
        return []
    if restored:
        context.log.warning(f"the object store lost the archive: {len(restored)} counted game(s) put back from the record")
    return restored


def _extra(name: str, passed: bool, metadata: dict) -> CheckOutcome:
    return EXTRA_CHECKS[name].outcome(name, passed, metadata)


def record_checks(engine, gamestreams) -> list[CheckOutcome]:
    """The record against the facts, the completions filed before the tables' last write, and the
    bucket's games against the schedule."""
    record, facts = final_tables_db.facts_versions(engine)
    without = sorted(g for g in record if facts.get(g) != record[g])
    orphan = sorted(set(facts) - set(record))
    inbox = final_tables_db.read_inbox(engine)
    state = final_tables_db.read_state(engine) or {}
    written_at = state.get("written_at") or ""
    waiting = [r for r in inbox.waiting if r.filed_at < written_at]
    try:
        unscheduled = _unscheduled_live_games(engine, gamestreams)
    except Exception as exc:
        unscheduled = [f"(bucket not listed: {exc})"]
    return [
        _extra("live_games_scheduled", not unscheduled, {"unscheduled_games": unscheduled[:LIST_LIMIT]}),
        _extra("counted_games_recorded", not (without or orphan), {
            "recorded_games": len(record), "recorded_without_facts": without[:LIST_LIMIT],
            "facts_not_recorded": orphan[:LIST_LIMIT], "games_digest": state.get("games_digest") or "",
        }),
        _extra("completed_games_counted", not waiting, {
            "not_counted": [f"{r.game_id}: {r.problem or r.state}" for r in waiting[:LIST_LIMIT]],
            "not_counted_count": len(waiting),
        }),
    ]


def _unscheduled_live_games(engine, gamestreams) -> list[str]:
    live = sorted(gamestreams.list_games())
    scheduled = {g["game_id"] for g in reference_db.rows_by_keys(engine, reference_db.games, reference_db.games.c.game_id, live)}
    return [g for g in live if g not in scheduled]


def _capped(items: list, limit: int = LIST_LIMIT) -> list:
    return list(items[:limit]) + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])


def _results(report: CountingReport, reconciled, session_wait: dict, outcomes: list[CheckOutcome],
             archive_missing: list[str]):
    written = report.written
    common = {
        "games_counted": len(report.games),
        "rounds": report.rounds,
        "games": MetadataValue.md(_games_markdown(report.games)) if report.games else "none",
        "season_games": written.completed_games,
        "games_digest": written.digest,
        "corrected": _capped(report.corrected),
        "facts_rebuilt": _capped(report.refacted),
        "not_counted": _capped([f"{u.game_id}: {u.problem}" for u in report.uncountable]),
        "deferred": _capped(list(written.deferred)),
        "rebuilt_after_uncount": report.stale,
        "rearchived": _capped(archive_missing),
        "filed_now": _capped((reconciled.filed_live + reconciled.filed_archive) if reconciled else []),
        "seconds_read": round(report.seconds.get("read", 0), 3),
        "seconds_waiting_for_spark_session": round(session_wait.get("seconds", 0), 3),
        "seconds_spark_total": round(report.seconds.get("spark", 0), 3),
        "seconds_write": round(report.seconds.get("write", 0), 3),
    }
    changed_players = {f.player_id for f in report.facts.players}
    changed_teams = {f.teamid for f in report.facts.teams}
    players_meta = {
        **common, "row_count": written.players, "players_changed": len(changed_players),
        "unknown_jerseys": _capped([u.describe() for u in report.facts.unknown]),
    }
    teams_meta = {
        **common, "row_count": written.teams, "teams_changed": len(changed_teams),
        "tied_games": _capped(sorted({f.game_id for f in report.facts.teams if f.ties})),
    }
    for asset, meta in (("players2", players_meta), ("teams2", teams_meta)):
        yield MaterializeResult(
            asset_key=asset, metadata=meta,
            check_results=[as_check_result(o) for o in outcomes if o.asset == asset],
        )


def _games_markdown(games, limit: int = LIST_LIMIT) -> str:
    lines = ["| game | home | score | away | result |", "|---|---|---|---|---|"]
    for g in games[:limit]:
        result = f"{g.winner} wins" if g.decided else "**tie** (no record changed)"
        lines.append(f"| {g.game_id} | {g.home_teamid} | {g.home_score}-{g.away_score} | {g.away_teamid} | {result}, {g.over_reason} |")
    if len(games) > limit:
        lines.append(f"\n... and {len(games) - limit} more game(s)")
    return "\n".join(lines)
