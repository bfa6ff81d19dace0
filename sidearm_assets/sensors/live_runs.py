"""`SIDEARM_LIVE_MODE=runs`: the live sensor requests one run of the live assets per new version.

Slower than the watcher (the daemon's 5 s loop plus a run's process start: seconds per change,
see docs/live-latency.md) but every version gets a run with its own logs and retries.
"""

from __future__ import annotations

from dagster import AddDynamicPartitionsRequest, AssetKey, RunRequest, SensorEvaluationContext, SensorResult, SkipReason

from sidearm_assets.partitions import games_partitions
from sidearm_assets.resources import GameStreamStore
from sidearm_assets.sensors.live_cursor import LiveCursor

LIVE_RUN_ASSETS = [
    AssetKey("reference_teams"), AssetKey("reference_players"), AssetKey("raw_gamestream"), AssetKey("boxscore_doc"),
]


def request_runs(context: SensorEvaluationContext, gamestreams: GameStreamStore) -> SensorResult | SkipReason:
    """One run of the live assets per new object version. The run key is `<game_id>:<ETag@LastModified>`; the run reads the object as it is when it starts, so
    under a fast stream one run may reflect a later version than its key (its metadata says which).
    """
    cursor = LiveCursor.parse(context.cursor)
    try:
        listing = gamestreams.list_games()
    except Exception as exc:
        return SkipReason(f"cannot list s3://{gamestreams.bucket}: {exc}")
    known = set(context.instance.get_dynamic_partitions(games_partitions.name))
    requests, new_partitions = [], []
    for game_id, obj in sorted(listing.items()):
        if cursor.versions.get(game_id) == obj.version:
            continue
        if game_id not in known:
            new_partitions.append(game_id)
        requests.append(
            RunRequest(
                run_key=f"{game_id}:{obj.version}",
                partition_key=game_id,
                asset_selection=LIVE_RUN_ASSETS,
                tags={"sidearm/game_id": game_id, "sidearm/version": obj.version},
            )
        )
        cursor.versions[game_id] = obj.version
    for gone in set(cursor.versions) - set(listing):
        del cursor.versions[gone]
    if not requests:
        return SkipReason(f"no game object changed ({len(listing)} game(s) in s3://{gamestreams.bucket})")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=(
            [AddDynamicPartitionsRequest(games_partitions.name, new_partitions)] if new_partitions else []
        ),
        cursor=cursor.dump(),
    )
