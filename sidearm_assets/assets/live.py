"""The live path: a game's stream object and its box-score document (SPEC 2, 5)."""


from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)

from sidearm_assets import settings
from sidearm_assets.domain.boxscore import markdown_boxscore
from sidearm_assets.domain.gameflow import flow_from_stream, flow_markdown
from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.assets.checks import as_check_result
from sidearm_assets.domain.live import BOXSCORE_CHECKS, LiveUpdate, check_outcomes, live_update
from sidearm_assets.partitions import games_partitions
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase


@asset(partitions_def=games_partitions, group_name="live", kinds={"s3"})
def raw_gamestream(context: AssetExecutionContext, gamestreams: GameStreamStore) -> Output[dict]:
    """The game's stream object as it is in the bucket now (one partition per game)."""
    game_id = context.partition_key
    try:
        data, version = gamestreams.read(game_id)
    except Exception as exc:  # botocore's NoSuchKey, connection errors: say which object
        raise Failure(
            description=f"cannot read s3://{gamestreams.bucket}/{settings.key_for_game(game_id)}: {exc}"
        ) from exc
    snapshot = {
        "game_id": game_id,
        "data": data,
        "version": version.version,
        "updated_at": version.last_modified.isoformat(),
    }
    return Output(snapshot, metadata=raw_metadata(game_id, data, version.version))


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
    ins={
        "raw_gamestream": AssetIn(),
        "reference_teams": AssetIn(),
        "reference_players": AssetIn(),
    },
    check_specs=[AssetCheckSpec(name, asset="boxscore_doc", description=desc)
                 for name, (_, desc) in BOXSCORE_CHECKS.items()],
)
def boxscore_doc(
    context: AssetExecutionContext,
    raw_gamestream: dict,
    reference_teams: list[dict],
    reference_players: list[dict],
    boxscores: BoxScoreStore,
    sidearmdb: ReferenceDatabase,
) -> MaterializeResult:
    """The game's live box score, upserted into MongoDB sidearm.boxscores (one document per version)."""
    game_id = context.partition_key
    try:
        game = matchup(game_id, sidearmdb.games(), reference_teams)
    except UnscheduledGameError as exc:
        raise Failure(description=str(exc)) from exc
    update = live_update(
        game, raw_gamestream["data"], raw_gamestream["version"], raw_gamestream["updated_at"], reference_players
    )
    if update.doc is not None:
        boxscores.upsert(update.doc)
    else:
        context.log.warning(f"{game_id}: {update.skip_reason}")
    return MaterializeResult(
        metadata=boxscore_metadata(update),
        check_results=[as_check_result(o) for o in check_outcomes(update, reference_players)],
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
