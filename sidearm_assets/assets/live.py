"""The live path: a game's stream object and its box-score document (SPEC 2, 5)."""


import time

from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from sidearm_assets import settings
from sidearm_assets.publishing.publish import PublishError, publish_version
from sidearm_assets.domain.boxscore import markdown_boxscore
from sidearm_assets.domain.gameflow import flow_from_stream, flow_markdown
from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.assets.checks import as_check_result, check_specs
from sidearm_assets.domain.live import BOXSCORE_CHECKS, LiveUpdate, check_outcomes, live_update
from sidearm_assets.partitions import games_partitions
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase


def read_stream(gamestreams: GameStreamStore, game_id: str):
    """The game's object now, or a Failure that says which object and what to do."""
    try:
        return gamestreams.read(game_id)
    except Exception as exc:  # botocore's NoSuchKey, connection errors: say which object
        raise Failure(
            description=f"cannot read s3://{gamestreams.bucket}/{settings.key_for_game(game_id)}: {exc}"
        ) from exc


@asset(partitions_def=games_partitions, group_name="live", kinds={"s3"})
def raw_gamestream(context: AssetExecutionContext, gamestreams: GameStreamStore) -> MaterializeResult:
    """The game's stream object in the bucket (one partition per game); the bucket is its storage."""
    game_id = context.partition_key
    data, version = read_stream(gamestreams, game_id)
    return MaterializeResult(metadata=raw_metadata(game_id, data, version.version))


def raw_metadata(game_id: str, data: bytes, version: str) -> dict:
    return {
        "game_id": game_id,
        "version": version,
        "bytes": len(data),
        "lines": len(data.splitlines()),
    }


@asset(
    partitions_def=games_partitions,
    group_name="live",
    kinds={"mongodb"},
    # Dependencies, not loaded inputs: the stream and the reference rows are read from their own
    # stores when this runs, so a materialization never sees an older run's snapshot, also after the
    # watcher reported `raw_gamestream` without a run (docs/live-latency.md).
    deps=["raw_gamestream", "reference_teams", "reference_players"],
    check_specs=check_specs(BOXSCORE_CHECKS),
)
def boxscore_doc(
    context: AssetExecutionContext,
    gamestreams: GameStreamStore,
    boxscores: BoxScoreStore,
    sidearmdb: ReferenceDatabase,
) -> MaterializeResult:
    """The game's live box score, upserted into MongoDB sidearm.boxscores (one document per version)."""
    game_id = context.partition_key
    data, version = read_stream(gamestreams, game_id)
    teams, players = sidearmdb.teams(), sidearmdb.players()
    try:
        game = matchup(game_id, sidearmdb.games(), teams)
    except UnscheduledGameError as exc:
        raise Failure(description=str(exc)) from exc
    update = live_update(game, data, version.version, version.last_modified.isoformat(), players)
    if update.doc is not None:
        update.doc["published_at"] = round(time.time(), 3)
        try:  # a manual run does not know what was published before: it always supersedes
            publish_version(gamestreams, boxscores, sidearmdb, update.doc, data, supersede=True, version=version.version)
        except PublishError as exc:
            raise Failure(description=f"{game_id}: {exc}") from exc
    else:
        context.log.warning(f"{game_id}: {update.skip_reason}")
    return MaterializeResult(
        metadata=boxscore_metadata(update),
        check_results=[as_check_result(o) for o in check_outcomes(update, players)],
    )


def boxscore_metadata(update: LiveUpdate) -> dict:
    """What the Dagster UI shows for one box-score version (also used by the live sensor)."""
    meta: dict = dict(update.summary())
    if update.doc is not None:
        meta["boxscore"] = MetadataValue.md(markdown_boxscore(update.doc))
        flow = flow_from_stream(update.game_id, update.parsed, update.doc["home"], update.doc["away"])
        meta["game_flow"] = MetadataValue.md(flow_markdown(flow))  # an SVG data URI, ~3 KB
    else:
        meta["skipped"] = update.skip_reason
    return meta
