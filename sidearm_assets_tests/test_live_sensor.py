"""The live sensor and the live assets against the real embedded S3 and Mongo-wire servers."""

import time
import uuid

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)

from sidearm_assets import clients, reference_db
from sidearm_assets.assets.live import boxscore_doc, raw_gamestream
from sidearm_assets.assets.reference import reference_players, reference_teams
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase
from sidearm_assets.sensors.live import LiveCursor, watch_bucket
from sidearm_assets_tests.test_boxscore import PLAYERS, assert_matches, expected_document

GAME = b"0 59:51 101 6 1\n1 58:00 205 12 1\nbad line\n2 50:00 205 77 1\n3 45:00 101 12 1\n"


@pytest.fixture
def live(embedded_stack):
    """Resources on a bucket and Mongo database of this test's own, with a scheduled game."""
    suffix = uuid.uuid4().hex[:8]
    stores = {
        "gamestreams": GameStreamStore(
            endpoint_url=embedded_stack["SIDEARM_S3_ENDPOINT_URL"],
            access_key=embedded_stack["SIDEARM_S3_ACCESS_KEY"],
            secret_key=embedded_stack["SIDEARM_S3_SECRET_KEY"],
            bucket=f"test-{suffix}",
        ),
        "boxscores": BoxScoreStore(uri=embedded_stack["SIDEARM_MONGO_URI"], database=f"test_{suffix}"),
        "sidearmdb": ReferenceDatabase(url=embedded_stack["SIDEARM_SQL_URL"]),
    }
    stores["gamestreams"].ensure_bucket()
    game_id = f"game-{suffix}"
    engine = stores["sidearmdb"].engine()
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert().values(game_id=game_id, home_teamid=205, away_teamid=101))
    yield game_id, stores
    with engine.begin() as conn:
        conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == game_id))


def tick(stores, instance, cursor=None, watch=0.0, min_tick=0.0):
    context = build_sensor_context(instance=instance, cursor=cursor)
    return watch_bucket(context, stores["gamestreams"], stores["boxscores"], stores["sidearmdb"],
                        watch_seconds=watch, poll_seconds=0.05, min_tick_seconds=min_tick)


def materializations(result, key):
    return [e for e in result.asset_events if getattr(e, "asset_key", None) == AssetKey(key)
            and type(e).__name__ == "AssetMaterialization"]


def test_new_game_is_published_with_its_partition_and_cursor(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    result = tick(stores, instance)
    assert isinstance(result, SensorResult)
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [[game_id]]
    docs = materializations(result, "boxscore_doc")
    assert [m.partition for m in docs] == [game_id]
    assert docs[0].metadata["score"].value == "2-2" and docs[0].metadata["lines_rejected"].value == 1
    assert len(materializations(result, "raw_gamestream")) == 1
    checks = {e.check_name: e for e in result.asset_events if type(e).__name__ == "AssetCheckEvaluation"}
    assert not checks["stream_lines_accepted"].passed and not checks["jerseys_on_roster"].passed
    assert checks["score_equals_player_goals"].passed and checks["roster_fully_listed"].passed
    assert checks["jerseys_on_roster"].severity.value == "WARN"

    doc = stores["boxscores"].latest(game_id)
    lines = [line for line in GAME.decode().splitlines() if line != "bad line"]
    expected = expected_document(game_id, lines, {"id": 205}, {"id": 101}, PLAYERS)
    expected["seq"] = 5  # the rejected line is reflected in seq too
    home = next(t for t in reference_db.BASE_TEAMS if t["id"] == 205)
    assert doc["home"]["name"] == home["name"] and doc["_id"] == f"{game_id}:3"
    assert_matches(doc, expected)

    _, version = stores["gamestreams"].read(game_id)
    assert LiveCursor.parse(result.cursor).versions == {game_id: version.version}
    assert LiveCursor.parse(result.cursor).next_watch is None


def test_unchanged_object_skips_with_a_reason(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    first = tick(stores, instance)
    second = tick(stores, instance, cursor=first.cursor)
    assert second.asset_events == [] and second.dynamic_partitions_requests == []
    assert "no game object changed" in second.skip_reason.skip_message


def test_each_new_version_is_published_once_within_a_watching_tick(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    import threading

    lines = GAME.splitlines(keepends=True)

    def writer():
        for n in range(1, len(lines) + 1):
            stores["gamestreams"].write(game_id, b"".join(lines[:n]))
            time.sleep(0.3)

    thread = threading.Thread(target=writer)
    thread.start()
    result = tick(stores, instance, watch=2.5)
    thread.join()
    seen = [m.metadata["lines"].value for m in materializations(result, "boxscore_doc")]
    assert seen == [1, 2, 3, 4, 5]
    docs = list(stores["boxscores"].collection().find({"game_id": game_id}))
    assert sorted(d["seq"] for d in docs) == [1, 3, 4, 5]  # line 3 is rejected: same _id as seq 2, which it replaced
    # checks are reported once per game per tick, for the latest version
    assert len([e for e in result.asset_events if type(e).__name__ == "AssetCheckEvaluation"]) == 4


def test_replaying_identical_bytes_later_is_a_new_version(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    first = tick(stores, instance)
    time.sleep(1.1)  # LastModified has one-second precision: the ETag alone would not change
    stores["gamestreams"].write(game_id, GAME)
    second = tick(stores, instance, cursor=first.cursor)
    assert len(materializations(second, "boxscore_doc")) == 1
    assert second.cursor != first.cursor


FINAL_BY_CLOCK = GAME + b"4 20:00 101 6 1\n5 00:00 0 0 0\n"  # 3-2 at 00:00: over; the -1 line follows


def test_game_going_final_ends_the_tick_after_a_grace_for_the_minus_one_line(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, FINAL_BY_CLOCK)
    import threading

    later = threading.Timer(0.2, stores["gamestreams"].write, (game_id, FINAL_BY_CLOCK + b"-1 00:00 0 0 0\n"))
    later.start()
    started = time.monotonic()
    result = tick(stores, instance, watch=5.0, min_tick=4.0)  # no other game live: min_tick does not apply
    elapsed = time.monotonic() - started
    later.join()
    assert 0.4 < elapsed < 2.0  # the 0.5 s grace, not the 5 s watch
    assert [m.metadata["final"].value for m in materializations(result, "boxscore_doc")] == [True, True]
    assert stores["boxscores"].latest(game_id)["_id"] == f"{game_id}:-1"
    cursor = LiveCursor.parse(result.cursor)
    assert cursor.final_games == {game_id}
    # the next tick is brief, so the game-over sensor gets its turn whatever the daemon's order
    assert cursor.next_watch == 1.0
    started = time.monotonic()
    following = tick(stores, instance, cursor=result.cursor, watch=5.0)
    assert 0.9 < time.monotonic() - started < 2.0
    assert LiveCursor.parse(following.cursor).next_watch is None


def test_with_another_game_live_an_early_end_waits_for_one_daemon_loop(live):
    game_id, stores = live
    other = f"{game_id}-live"
    engine = stores["sidearmdb"].engine()
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert().values(game_id=other, home_teamid=101, away_teamid=205))
    try:
        stores["gamestreams"].write(other, b"0 59:00 101 6 1\n")
        stores["gamestreams"].write(game_id, FINAL_BY_CLOCK + b"-1 00:00 0 0 0\n")
        started = time.monotonic()
        result = tick(stores, DagsterInstance.ephemeral(), watch=5.0, min_tick=1.5)
        assert 1.4 < time.monotonic() - started < 2.5  # the other game stays watched a whole loop
        cursor = LiveCursor.parse(result.cursor)
        assert cursor.final_games == {game_id} and cursor.next_watch == 1.5
    finally:
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == other))


def test_unscheduled_game_is_skipped_and_reported_not_guessed(live):
    _, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write("nobody-scheduled", GAME)
    result = tick(stores, instance)
    assert result.asset_events == [] and result.dynamic_partitions_requests == []
    assert "nobody-scheduled not scheduled" in result.skip_reason.skip_message
    assert stores["boxscores"].latest("nobody-scheduled") is None
    # a later tick does not retry the same version
    again = tick(stores, instance, cursor=result.cursor)
    assert "no game object changed" in again.skip_reason.skip_message


def test_objects_that_are_not_games_are_ignored(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    client = stores["gamestreams"].client()
    client.put_object(Bucket=stores["gamestreams"].bucket, Key="notes.csv", Body=b"x")
    client.put_object(Bucket=stores["gamestreams"].bucket, Key=f"completed/{game_id}.txt", Body=GAME)
    result = tick(stores, instance)
    assert isinstance(result, SensorResult) and result.asset_events == []


def test_empty_object_is_recorded_without_a_document(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, b"")
    result = tick(stores, instance)
    doc_event = materializations(result, "boxscore_doc")[0]
    assert "empty object" in doc_event.metadata["skipped"].value
    assert stores["boxscores"].latest(game_id) is None


def test_s3_unreachable_is_a_skip_with_the_error(live):
    _, stores = live
    dead = GameStreamStore(endpoint_url="http://127.0.0.1:9", access_key="a", secret_key="b", bucket="x")
    result = tick({**stores, "gamestreams": dead}, DagsterInstance.ephemeral())
    assert isinstance(result, SkipReason)
    assert "cannot list s3://x" in result.skip_message


def test_mongo_down_keeps_the_version_for_the_next_tick(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    down = BoxScoreStore(uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300", database="x")
    failed = tick({**stores, "boxscores": down}, instance)
    assert failed.asset_events == []
    assert f"{game_id}: MongoDB" in failed.skip_reason.skip_message
    assert game_id not in LiveCursor.parse(failed.cursor).versions
    recovered = tick(stores, instance, cursor=failed.cursor)
    assert len(materializations(recovered, "boxscore_doc")) == 1
    assert stores["boxscores"].latest(game_id)["seq"] == 5


def test_two_games_in_one_listing(live, embedded_stack):
    game_id, stores = live
    other = f"{game_id}-b"
    engine = stores["sidearmdb"].engine()
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert().values(game_id=other, home_teamid=101, away_teamid=205))
    try:
        stores["gamestreams"].write(game_id, GAME)
        stores["gamestreams"].write(other, b"0 59:00 101 6 1\n")
        result = tick(stores, DagsterInstance.ephemeral())
        assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted([game_id, other])
        assert stores["boxscores"].latest(other)["home"]["score"] == 1
        assert stores["boxscores"].latest(game_id)["home"]["score"] == 2  # home is 205 in this game
    finally:
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == other))


def test_materializing_the_live_assets_gives_the_document_and_checks(live):
    game_id, stores = live
    stores["gamestreams"].write(game_id, GAME)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("games", [game_id])
    result = materialize(
        [reference_teams, reference_players, raw_gamestream, boxscore_doc],
        resources=stores, instance=instance, partition_key=game_id,
    )
    assert result.success
    doc = stores["boxscores"].latest(game_id)
    assert doc["_id"] == f"{game_id}:3" and doc["home"]["score"] == 2 and doc["away"]["score"] == 2
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["stream_lines_accepted"].passed is False
    assert checks["stream_lines_accepted"].severity.value == "WARN"
    assert checks["stream_lines_accepted"].metadata["lines"].value == ["line 3: 'bad line' (expected 5 fields, got 2)"]
    assert checks["score_equals_player_goals"].passed and checks["roster_fully_listed"].passed
    mat = [m for m in result.asset_materializations_for_node("boxscore_doc")][0]
    assert mat.metadata["score"].value == "2-2"
    assert "| 77 | **not on roster** | 1 | 1 | 1.00 |" in mat.metadata["boxscore"].value
    # materializing the same version again writes the same document (idempotent)
    before = stores["boxscores"].collection().find_one({"_id": f"{game_id}:3"})
    assert materialize([raw_gamestream, boxscore_doc, reference_teams, reference_players], resources=stores,
                       instance=instance, partition_key=game_id).success
    assert stores["boxscores"].collection().find_one({"_id": f"{game_id}:3"}) == before
    assert stores["boxscores"].collection().count_documents({"game_id": game_id}) == 1


def test_materializing_a_missing_object_fails_with_a_clear_error(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("games", [game_id])
    result = materialize([raw_gamestream], resources=stores, instance=instance, partition_key=game_id,
                         raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert f"cannot read s3://{stores['gamestreams'].bucket}/{game_id}.txt" in failure.event_specific_data.error.message \
        or f"{game_id}.txt" in str(failure.event_specific_data.error)


LEAD_CHANGES = (
    "0 59:40 101 6 1\n"      # 1-0 home
    "1 55:10 205 12 1\n"     # 1-1
    "2 50:00 205 6 1\n"      # 1-2 away leads
    "3 47:30 101 99 1\n"     # 2-2, jersey 99 is not on the home roster
    "4 40:05 101 22 x\n"     # malformed: goal is not an integer
    "5 31:00 101 12 1\n"     # 3-2 home leads again
    "6 22:00 205 19 0\n"
    "7 12:41 205 19 1\n"     # 3-3
)


def test_cli_materialize_of_a_registered_partition_equals_the_independent_document(embedded_stack, tmp_path):
    """Issue 3, done when: register the partition without the daemon, then `dagster asset materialize`."""
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    env = {**__import__("os").environ, **embedded_stack, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    stores = GameStreamStore(endpoint_url=env["SIDEARM_S3_ENDPOINT_URL"], access_key=env["SIDEARM_S3_ACCESS_KEY"],
                             secret_key=env["SIDEARM_S3_SECRET_KEY"], bucket=env["SIDEARM_S3_BUCKET"])
    stores.write("gamestream", LEAD_CHANGES.encode())
    boxscores = BoxScoreStore(uri=env["SIDEARM_MONGO_URI"], database=env["SIDEARM_MONGO_DB"])
    boxscores.collection().delete_many({"game_id": "gamestream"})

    for cmd in (
        [str(bin_dir / "sidearm-games"), "add", "gamestream"],
        [str(bin_dir / "dagster"), "asset", "materialize", "-m", "sidearm_assets", "--partition", "gamestream",
         "--select", "raw_gamestream,reference_players,reference_teams,boxscore_doc"],
    ):
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    doc = boxscores.latest("gamestream")
    good = [line for line in LEAD_CHANGES.splitlines() if not line.startswith("4 ")]
    expected = expected_document("gamestream", good, {"id": 101}, {"id": 205}, PLAYERS)
    expected["seq"] = 8
    assert_matches(doc, expected)
    assert doc["_id"] == 7 and doc["home"]["score"] == 3 and doc["away"]["score"] == 3
    assert doc["issues"]["unknown_jerseys"] == [{"teamid": 101, "number": "99", "shots": 1, "goals": 1}]
    assert doc["issues"]["rejected_lines"] == [
        {"line": 5, "text": "4 40:05 101 22 x", "reason": "goal 'x' is not an integer"}]


def test_run_mode_requests_a_run_per_version_keyed_by_game_and_version(live):
    from sidearm_assets.sensors.live import LIVE_RUN_ASSETS, request_runs

    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    _, version = stores["gamestreams"].read(game_id)
    result = request_runs(build_sensor_context(instance=instance), stores["gamestreams"])
    [request] = result.run_requests
    assert request.run_key == f"{game_id}:{version.version}"
    assert request.partition_key == game_id and list(request.asset_selection) == LIVE_RUN_ASSETS
    assert result.dynamic_partitions_requests[0].partition_keys == [game_id]
    again = request_runs(build_sensor_context(instance=instance, cursor=result.cursor), stores["gamestreams"])
    assert isinstance(again, SkipReason) and "no game object changed" in again.skip_message
    time.sleep(1.1)
    stores["gamestreams"].write(game_id, GAME)  # the same bytes replayed later: a new run key
    replay = request_runs(build_sensor_context(instance=instance, cursor=result.cursor), stores["gamestreams"])
    assert replay.run_requests[0].run_key != request.run_key
    assert replay.run_requests[0].run_key.startswith(f"{game_id}:{version.etag}@")
