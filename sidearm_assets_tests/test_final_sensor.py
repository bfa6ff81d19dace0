"""The game-over sensor through its public API (build_sensor_context) on the embedded S3 and SQLite."""

from __future__ import annotations

import socket
import uuid

import pytest
from dagster import AssetKey, DagsterInstance, SkipReason, build_sensor_context
from sqlalchemy import insert

from sidearm_assets import reference_db, settings
from sidearm_assets.completed_games import list_archive, read_archive
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase
from sidearm_assets.sensors.final import GameOverCursor, game_over_sensor
from sidearm_assets_tests.final_fixtures import DEFAULT_GAME

DEFAULT_OVER = DEFAULT_GAME.read_bytes()  # ends with `71 00:00 0 0 0` at 10-11: over by the clock rule
IN_PROGRESS = b"0 59:51 205 6 1\n1 59:30 101 31 0\n"


@pytest.fixture
def stores(embedded_stack, tmp_path):
    store = GameStreamStore(
        endpoint_url=embedded_stack[settings.S3_ENDPOINT_URL.name],
        access_key=embedded_stack[settings.S3_ACCESS_KEY.name],
        secret_key=embedded_stack[settings.S3_SECRET_KEY.name],
        bucket=f"over-{uuid.uuid4().hex[:10]}",
    )
    store.ensure_bucket()
    db = ReferenceDatabase(url=f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    reference_db.reset_base_tables(db.engine())
    yield {"gamestreams": store, "sidearmdb": db}
    client = store.client()
    for obj in client.list_objects_v2(Bucket=store.bucket).get("Contents", []):
        client.delete_object(Bucket=store.bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=store.bucket)


def tick(stores, cursor=None):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor, resources=stores)
    return game_over_sensor(context)


def version_of(stores, game_id):
    return stores["gamestreams"].list_games()[game_id].version


def skip_message(result) -> str:
    if isinstance(result, SkipReason):
        return result.skip_message
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message


def test_empty_bucket_says_why(stores):
    result = tick(stores)
    assert "no game object changed (0 game(s)" in skip_message(result)


def test_game_in_progress_is_examined_once_and_not_requested(stores):
    stores["gamestreams"].write("gamestream", IN_PROGRESS)
    result = tick(stores)
    assert "gamestream: not over (2 lines, clock 59:30)" in skip_message(result)
    assert GameOverCursor.parse(result.cursor).versions == {"gamestream": version_of(stores, "gamestream")}
    assert list_archive(stores["gamestreams"]) == {}
    assert "no game object changed" in skip_message(tick(stores, result.cursor))


def test_completed_game_is_archived_and_requested_once_per_version(stores):
    stores["gamestreams"].write("gamestream", DEFAULT_OVER)
    version = version_of(stores, "gamestream")
    result = tick(stores)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.run_key == f"gamestream:{version}"
    assert list(request.asset_selection) == [AssetKey("players2"), AssetKey("teams2")]
    assert request.tags["sidearm/game_id"] == "gamestream"
    assert request.tags["sidearm/version"] == version
    assert request.tags["sidearm/over"] == "clock 00:00 not tied"
    assert read_archive(stores["gamestreams"], "gamestream")[0] == DEFAULT_OVER

    # The next tick, and a tick after a daemon restart (same stored cursor), request nothing.
    assert "no game object changed" in skip_message(tick(stores, result.cursor))
    restarted_cursor = GameOverCursor.parse(result.cursor).dump()
    assert "no game object changed" in skip_message(tick(stores, restarted_cursor))

    # A new version that is over (the `-1` line arrives) is requested again, under its own key.
    stores["gamestreams"].write("gamestream", DEFAULT_OVER + b"-1 00:00 0 0 0\n")
    newer = tick(stores, result.cursor)
    assert [r.run_key for r in newer.run_requests] == [f"gamestream:{version_of(stores, 'gamestream')}"]
    assert newer.run_requests[0].run_key != request.run_key


def test_replay_in_progress_keeps_the_archive_and_finishing_again_requests_again(stores):
    stores["gamestreams"].write("gamestream", DEFAULT_OVER)
    first = tick(stores)
    stores["gamestreams"].write("gamestream", IN_PROGRESS)  # replay restarted
    replaying = tick(stores, first.cursor)
    assert "not over" in skip_message(replaying)
    assert read_archive(stores["gamestreams"], "gamestream")[0] == DEFAULT_OVER
    stores["gamestreams"].write("gamestream", DEFAULT_OVER + b"-1 00:00 0 0 0\n")
    finished = tick(stores, replaying.cursor)
    assert len(finished.run_requests) == 1


def test_two_games_ending_together_give_two_requests(stores):
    with stores["sidearmdb"].engine().begin() as conn:
        conn.execute(insert(reference_db.games).values(game_id="rematch", home_teamid=205, away_teamid=101))
    stores["gamestreams"].write("gamestream", DEFAULT_OVER)
    stores["gamestreams"].write("rematch", b"0 30:00 205 9 1\n-1 00:00 0 0 0\n")
    result = tick(stores)
    assert sorted(r.tags["sidearm/game_id"] for r in result.run_requests) == ["gamestream", "rematch"]
    assert sorted(list_archive(stores["gamestreams"])) == ["gamestream", "rematch"]


def test_unscheduled_game_is_skipped_not_guessed(stores):
    stores["gamestreams"].write("pickup", b"0 30:00 7 9 1\n-1 00:00 0 0 0\n")
    result = tick(stores)
    assert "pickup: no row in the games table" in skip_message(result)
    assert list_archive(stores["gamestreams"]) == {}


def test_completed_game_with_unknown_team_is_requested_so_the_run_fails_loudly(stores):
    with stores["sidearmdb"].engine().begin() as conn:
        conn.execute(insert(reference_db.games).values(game_id="ghost-game", home_teamid=101, away_teamid=999))
    stores["gamestreams"].write("ghost-game", b"0 30:00 101 6 1\n-1 00:00 0 0 0\n")
    result = tick(stores)
    assert [r.tags["sidearm/game_id"] for r in result.run_requests] == ["ghost-game"]
    assert "999" in result.run_requests[0].tags["sidearm/over"]
    assert list_archive(stores["gamestreams"]) == {}  # never archived with unknown teams


def test_unreachable_s3_skips_with_the_error(stores):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    down = GameStreamStore(endpoint_url=f"http://127.0.0.1:{port}", access_key="a", secret_key="b", bucket="gamestreams")
    result = tick({"gamestreams": down, "sidearmdb": stores["sidearmdb"]}, cursor='{"versions": {"g": "v"}}')
    assert isinstance(result, SkipReason)
    assert result.skip_message.startswith("cannot list s3://gamestreams:")


def test_unreadable_cursor_starts_over():
    assert GameOverCursor.parse("not json").versions == {}
    assert GameOverCursor.parse('{"versions": {"a": "v1"}}').versions == {"a": "v1"}
