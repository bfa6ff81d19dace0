"""The game-over sensor: requests players2/teams2 once per completed game version (SPEC 6, 7).

Each tick lists the bucket once. For every game whose object version (ETag@LastModified) is new
since the cursor, it reads the object and judges it (SPEC 2: the `-1` line, or `00:00` not
tied). A version that is over is archived (`completed/<game_id>.txt`, the bytes the sensor
judged) and a run of players2/teams2 is requested with run key `<game_id>:<version>`, so a
version is requested once even if a tick is retried. The cursor maps each game to the last
version examined; it is saved with the tick's result, so a daemon restart neither loses nor
repeats a game. The run recomputes from the whole archive, so runs are idempotent anyway.
"""

import json
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from sidearm_assets.completed_games import archive, judge
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase

FINAL_ASSETS = [AssetKey("players2"), AssetKey("teams2")]
MINIMUM_INTERVAL_SECONDS = 2  # the daemon's loop runs every >= 5 s anyway; never slower than that


@dataclass
class GameOverCursor:
    """Per game, the last object version examined (judged, archived if over, requested)."""

    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "GameOverCursor":
        if not text:
            return cls()
        try:
            return cls({str(k): str(v) for k, v in json.loads(text).get("versions", {}).items()})
        except (ValueError, AttributeError, TypeError):
            # An unreadable cursor re-examines current versions: run keys dedupe the requests.
            return cls()

    def dump(self) -> str:
        return json.dumps({"versions": self.versions}, sort_keys=True)


def evaluate_game_over(context, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    cursor = GameOverCursor.parse(context.cursor)
    try:
        listing = gamestreams.list_games()
    except Exception as exc:
        return SkipReason(f"cannot list s3://{gamestreams.bucket}: {exc}")

    changed = {g: obj for g, obj in sorted(listing.items()) if cursor.versions.get(g) != obj.version}
    # Forget games whose object is gone, so the cursor does not grow for ever.
    for gone in set(cursor.versions) - set(listing):
        del cursor.versions[gone]
    if not changed:
        return SensorResult(
            cursor=cursor.dump(),
            skip_reason=f"no game object changed ({len(listing)} game(s) in s3://{gamestreams.bucket})",
        )

    try:
        games, teams = sidearmdb.games(), sidearmdb.teams()
    except Exception as exc:
        return SkipReason(f"cannot read the schedule from sidearmdb: {exc}")

    requests, notes = [], []
    for game_id, listed in changed.items():
        try:
            data, read_version = gamestreams.read(game_id)
        except Exception as exc:  # deleted since the listing, or S3 down: the next tick decides
            notes.append(f"{game_id}: cannot read ({exc})")
            continue
        if read_version.etag != listed.etag:
            notes.append(f"{game_id}: changed while being read; judged next tick")
            continue  # these bytes are not the listed version; the next listing has the new one
        version = listed.version
        verdict = judge(game_id, data, games, teams, version=version)
        if verdict.over and verdict.teams_known:
            try:
                archive(gamestreams, game_id, data)
            except Exception as exc:
                notes.append(f"{game_id}: over, but archiving failed ({exc}); retried next tick")
                continue
        if verdict.over:
            # Teams not in `teams`: still requested, so the run fails loudly with the game id.
            requests.append(
                RunRequest(
                    run_key=f"{game_id}:{version}",
                    asset_selection=FINAL_ASSETS,
                    tags={"sidearm/game_id": game_id, "sidearm/version": version, "sidearm/over": verdict.reason},
                )
            )
            context.log.info(f"{game_id} is over ({verdict.reason}) at version {version}")
        else:
            notes.append(f"{game_id}: {verdict.reason}")
        cursor.versions[game_id] = version

    if not requests:
        return SensorResult(cursor=cursor.dump(), skip_reason="no completed game: " + "; ".join(notes))
    return SensorResult(run_requests=requests, cursor=cursor.dump())


@sensor(
    name="game_over_sensor",
    asset_selection=FINAL_ASSETS,
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests players2/teams2 once per completed game version (run key game_id:version).",
)
def game_over_sensor(context: SensorEvaluationContext, gamestreams: GameStreamStore, sidearmdb: ReferenceDatabase):
    return evaluate_game_over(context, gamestreams, sidearmdb)
