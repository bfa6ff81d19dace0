"""The live sensor and the live assets against the real embedded S3 and Mongo-wire servers."""

import time
from contextlib import contextmanager
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

from sidearm_assets.storage import reference_db
from sidearm_assets.assets.live import boxscore_doc, raw_gamestream
from sidearm_assets.assets.reference import reference_players, reference_teams
from sidearm_assets.resources import BoxScoreStore, GameStreamStore, ReferenceDatabase
from sidearm_assets.local import processes
from sidearm_assets.publishing.watcher import BucketWatcher
from sidearm_assets.sensors.live_cursor import LiveCursor
from sidearm_assets.domain.live import BOXSCORE_CHECKS
from sidearm_assets_tests.helpers import assert_matches, expected_document
from sidearm_assets_tests.live_tick import watch_bucket

PLAYERS = [dict(p) for p in reference_db.BASE_PLAYERS]
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


@contextmanager
def scheduled(stores, game_id: str, home: int = 101, away: int = 205):
    """A `games` row for another game of this test, removed afterwards."""
    engine = stores["sidearmdb"].engine()
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert().values(game_id=game_id, home_teamid=home, away_teamid=away))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == game_id))


def tick(stores, instance, cursor=None, watch=0.0, budget=10_000):
    context = build_sensor_context(instance=instance, cursor=cursor)
    return watch_bucket(context, stores["gamestreams"], stores["boxscores"], stores["sidearmdb"],
                        watch_seconds=watch, poll_seconds=0.05, budget=budget)


def put_and_poll(watcher, stores, game_id: str, data: bytes) -> None:
    """Write a version of the game and let the watcher handle it."""
    stores["gamestreams"].write(game_id, data)
    watcher.poll()
    assert watcher.idle()


def materializations(result, key):
    return [e for e in result.asset_events if getattr(e, "asset_key", None) == AssetKey(key)
            and type(e).__name__ == "AssetMaterialization"]


def checks_of(result):
    return [e for e in result.asset_events if type(e).__name__ == "AssetCheckEvaluation"]


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
    checks = {e.check_name: e for e in checks_of(result)}
    assert not checks["stream_lines_accepted"].passed and not checks["jerseys_on_roster"].passed
    assert checks["score_equals_player_goals"].passed and checks["roster_fully_listed"].passed
    assert checks["jerseys_on_roster"].severity.value == "WARN"
    assert "published 1 version(s) of 1 game(s)" in result.skip_reason.skip_message

    doc = stores["boxscores"].latest(game_id)
    lines = [line for line in GAME.decode().splitlines() if line != "bad line"]
    expected = expected_document(game_id, lines, {"id": 205}, {"id": 101}, PLAYERS)
    expected["seq"] = 5  # the rejected line is reflected in seq too
    home = next(t for t in reference_db.BASE_TEAMS if t["id"] == 205)
    assert doc["home"]["name"] == home["name"] and doc["_id"] == f"{game_id}:3"
    assert_matches(doc, expected)
    assert isinstance(doc["published_at"], float)

    _, version = stores["gamestreams"].read(game_id)
    assert LiveCursor.parse(result.cursor).versions == {game_id: version.version}


def test_unchanged_object_is_not_read_again(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    first = tick(stores, instance)
    second = tick(stores, instance, cursor=first.cursor)
    assert second.asset_events == [] and second.dynamic_partitions_requests == []
    assert "published 0 version(s) of 0 game(s)" in second.skip_reason.skip_message


def test_each_new_version_gets_its_document_and_the_latest_is_reported(live):
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
    docs = list(stores["boxscores"].collection().find({"game_id": game_id}))
    assert sorted(d["seq"] for d in docs) == [1, 3, 4, 5]  # line 3 is rejected: same _id as seq 2, which it replaced
    # Dagster hears of each game's latest version once per tick (with its checks), not of every version
    assert [m.metadata["lines"].value for m in materializations(result, "boxscore_doc")] == [5]
    assert len(checks_of(result)) == len(BOXSCORE_CHECKS)


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


def test_a_final_version_is_filed_as_completed_and_wakes_the_game_over_sensor(live):
    from sidearm_assets.publishing import signals

    game_id, stores = live
    signals.clear()
    stores["gamestreams"].write(game_id, FINAL_BY_CLOCK + b"-1 00:00 0 0 0\n")
    result = tick(stores, DagsterInstance.ephemeral())
    assert [m.metadata["final"].value for m in materializations(result, "boxscore_doc")] == [True]
    assert stores["boxscores"].latest(game_id)["_id"] == f"{game_id}:-1"
    archived, _ = stores["gamestreams"].read_archive(game_id)
    assert archived == FINAL_BY_CLOCK + b"-1 00:00 0 0 0\n"
    assert signals.wait_for_completion(0)


def test_a_replay_from_the_start_after_a_final_supersedes_the_old_documents(live):
    """The one query returns the newest object version's document, not the old final."""
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, FINAL_BY_CLOCK + b"-1 00:00 0 0 0\n")
    first = tick(stores, instance)
    assert stores["boxscores"].latest(game_id)["final"] is True
    stores["gamestreams"].write(game_id, b"0 59:51 101 6 1\n")  # the game restarts
    tick(stores, instance, cursor=first.cursor)
    latest = stores["boxscores"].latest(game_id)
    assert (latest["seq"], latest["final"], latest["away"]["score"]) == (1, False, 1)
    assert stores["boxscores"].collection().count_documents({"game_id": game_id, "final": True}) == 0


def test_a_stream_that_shrinks_serves_the_shorter_version(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    first = tick(stores, instance, cursor=None)
    # a scorer deletes event 2 (a wrong goal): one line less, same last event id
    corrected = b"".join(line for line in GAME.splitlines(keepends=True) if not line.startswith(b"2 "))
    stores["gamestreams"].write(game_id, corrected)
    tick(stores, instance, cursor=first.cursor)
    latest = stores["boxscores"].latest(game_id)
    assert latest["seq"] == 4 and latest["home"]["score"] == 1 and latest["away"]["score"] == 2
    assert stores["boxscores"].collection().count_documents({"game_id": game_id, "seq": {"$gte": 4}}) == 1


def test_documents_of_missed_versions_are_rebuilt_after_the_watcher_restarts(live):
    """Versions put while no watcher ran still get their own document."""
    game_id, stores = live
    lines = GAME.splitlines(keepends=True)

    def one_watcher(data: bytes) -> int:
        stores["gamestreams"].write(game_id, data)
        watcher = BucketWatcher(stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
        try:
            watcher.poll()
            assert watcher.idle()
            return watcher.drain().rebuilt
        finally:
            watcher.close()

    assert one_watcher(lines[0]) == 0
    assert one_watcher(b"".join(lines)) == 2  # four lines at once, one rejected: events 1 and 2 rebuilt
    seqs = sorted(d["seq"] for d in stores["boxscores"].collection().find({"game_id": game_id}))
    assert seqs == [1, 3, 4, 5]  # the rejected line 3 shares event 1's document with line 2
    assert stores["boxscores"].collection().count_documents({"game_id": game_id, "rebuilt": True}) == 2


class StaleConnections:
    """The box-score store as right after a MongoDB restart: the first upserts of rebuilt documents
    fail the way a dead pooled connection does (pymongo's AutoReconnect), then the store answers."""

    def __init__(self, store, failures: int):
        self.store, self.failures = store, failures

    def upsert(self, doc):
        if doc.get("rebuilt") and self.failures:
            self.failures -= 1
            from pymongo.errors import AutoReconnect
            raise AutoReconnect("connection closed (a pooled socket of the server before its restart)")
        return self.store.upsert(doc)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_missed_documents_are_rebuilt_through_a_store_still_coming_back(live):
    """After a MongoDB restart: the rebuild waits out failing writes instead of
    leaving the gap."""
    game_id, stores = live
    lines = GAME.splitlines(keepends=True)
    flaky = StaleConnections(stores["boxscores"], failures=2)
    for data in (lines[0], b"".join(lines)):
        stores["gamestreams"].write(game_id, data)
        watcher = BucketWatcher(stores["gamestreams"], flaky, stores["sidearmdb"])
        try:
            watcher.poll()
            assert watcher.idle()
            drained = watcher.drain()
        finally:
            watcher.close()
    assert flaky.failures == 0 and drained.rebuilt == 2 and not drained.errors
    assert sorted(d["seq"] for d in stores["boxscores"].collection().find({"game_id": game_id})) == [1, 3, 4, 5]


def test_two_puts_between_two_listings_share_one_document(live):
    game_id, stores = live
    lines = GAME.splitlines(keepends=True)
    watcher = BucketWatcher(stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
    try:
        put_and_poll(watcher, stores, game_id, lines[0])
        put_and_poll(watcher, stores, game_id, b"".join(lines))
        assert watcher.drain().rebuilt == 0
        assert sorted(d["seq"] for d in stores["boxscores"].collection().find({"game_id": game_id})) == [1, 5]
    finally:
        watcher.close()


def test_a_game_scheduled_late_unsettles_no_other_game(live):
    """A game whose schedule row reaches the cached reference data after its first object waits
    (a transient error of its own), but the stores were fine: the other games do not start
    looking for missed versions, so two puts of theirs between two listings still share one
    document (after a store's outage they would be rebuilt)."""
    game_id, stores = live
    late = f"{game_id}-late"
    lines = GAME.splitlines(keepends=True)
    watcher = BucketWatcher(stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
    try:
        put_and_poll(watcher, stores, game_id, lines[0])
        put_and_poll(watcher, stores, late, GAME)  # written before its row: the cache is re-read
        assert any("not in the cached schedule yet" in e for e in watcher.drain().errors)
        with scheduled(stores, late):
            def late_published():
                watcher.poll()
                watcher.idle()
                return stores["boxscores"].latest(late)
            processes.wait_until(late_published, timeout=10, interval=0.1, what="the late game's document")
            put_and_poll(watcher, stores, game_id, b"".join(lines[:4]))  # two events at once
            assert watcher.drain().rebuilt == 0
            assert sorted(d["seq"] for d in stores["boxscores"].collection().find({"game_id": game_id})) == [1, 4]
    finally:
        watcher.close()


def test_a_grown_object_is_parsed_from_where_the_last_version_ended_and_a_changed_one_whole(live, monkeypatch):
    """The watcher continues a game's last parse when the object only grew; each document is the
    one a whole parse gives, also after a line in the middle changed and after the game ended."""
    from sidearm_assets.domain.games import matchup
    from sidearm_assets.domain.live import live_update
    from sidearm_assets.domain.stream import StreamParser

    game_id, stores = live
    continued = []
    real = StreamParser.continued
    monkeypatch.setattr(StreamParser, "continued", lambda self, more: continued.append(more) or real(self, more))
    lines = GAME.splitlines(keepends=True)
    versions = [
        b"".join(lines[:2]),  # first version: a whole parse
        b"".join(lines),  # grew by three lines (one bad): continued
        b"".join(lines).replace(b"58:00 205 12 1", b"58:00 205 12 0"),  # a line changed: whole again
        b"".join(lines).replace(b"58:00 205 12 1", b"58:00 205 12 0") + b"-1 00:00 0 0 0\n",  # grew, final
    ]
    watcher = BucketWatcher(stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
    try:
        for data in versions:
            put_and_poll(watcher, stores, game_id, data)
            published = stores["boxscores"].latest(game_id)
            reference = watcher.reference.rows()
            game = matchup(game_id, reference.games, reference.teams)
            whole = live_update(game, data, published["version"], published["updated_at"],
                                reference.rosters(game.team_ids)).doc
            assert {k: v for k, v in published.items() if k != "published_at"} == \
                {k: v for k, v in whole.items() if k != "published_at"}
        assert continued == [b"".join(lines[2:]), b"-1 00:00 0 0 0\n"]
        assert published["final"]
        with watcher._lock:
            assert watcher._games[game_id].parse is None  # a final game's parse is let go
    finally:
        watcher.close()


class CallLog:
    """The box-score store, recording the calls made to it by name."""

    def __init__(self, store):
        self.store, self.calls = store, []

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if name in ("upsert", "latest_seq", "delete_superseded"):
            def counted(*args, **kwargs):
                self.calls.append(name)
                return attr(*args, **kwargs)
            return counted
        return attr


def test_a_new_games_first_document_deletes_nothing_and_a_restart_on_a_shorter_stream_still_supersedes(live):
    game_id, stores = live
    lines = GAME.splitlines(keepends=True)
    counting = CallLog(stores["boxscores"])
    watcher = BucketWatcher(stores["gamestreams"], counting, stores["sidearmdb"])
    try:
        put_and_poll(watcher, stores, game_id, GAME)
    finally:
        watcher.close()
    assert counting.calls == ["latest_seq", "upsert"]  # the store held nothing: nothing to supersede
    counting.calls.clear()
    watcher = BucketWatcher(stores["gamestreams"], counting, stores["sidearmdb"])  # a restart, then a replay
    try:
        put_and_poll(watcher, stores, game_id, b"".join(lines[:2]))
    finally:
        watcher.close()
    assert counting.calls == ["latest_seq", "upsert", "delete_superseded"]
    assert [d["seq"] for d in stores["boxscores"].collection().find({"game_id": game_id})] == [2]


def test_unscheduled_game_is_skipped_and_reported_not_guessed(live):
    _, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write("nobody-scheduled", GAME)
    time.sleep(1.1)  # the schedule is read after the object was written: its answer is final
    result = tick(stores, instance)
    assert result.asset_events == [] and result.dynamic_partitions_requests == []
    assert "nobody-scheduled (nobody-scheduled not scheduled" in result.skip_reason.skip_message
    assert stores["boxscores"].latest("nobody-scheduled") is None
    # a later tick does not retry the same version
    again = tick(stores, instance, cursor=result.cursor)
    assert "published 0 version(s)" in again.skip_reason.skip_message
    assert "nobody-scheduled" not in again.skip_reason.skip_message


def test_objects_that_are_not_games_are_ignored(live):
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    client = stores["gamestreams"].client()
    client.put_object(Bucket=stores["gamestreams"].bucket, Key="notes.csv", Body=b"x")
    client.put_object(Bucket=stores["gamestreams"].bucket, Key=f"completed/{game_id}.txt", Body=GAME)
    result = tick(stores, instance)
    assert isinstance(result, SensorResult) and result.asset_events == []
    assert stores["gamestreams"].list_games() == {}  # the archive folder is not even listed


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
    with scheduled(stores, other):
        stores["gamestreams"].write(game_id, GAME)
        stores["gamestreams"].write(other, b"0 59:00 101 6 1\n")
        result = tick(stores, DagsterInstance.ephemeral())
        assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted([game_id, other])
        assert stores["boxscores"].latest(other)["home"]["score"] == 1
        assert stores["boxscores"].latest(game_id)["home"]["score"] == 2  # home is 205 in this game


class CountingStore(GameStreamStore):
    """The real S3 resource, counting reads per game (to show what a poll costs)."""

    def read(self, game_id):
        READS[game_id] = READS.get(game_id, 0) + 1
        return super().read(game_id)


READS: dict[str, int] = {}


def test_an_oversized_object_is_reported_once_and_never_read(live):
    """A hostile object costs nothing per poll and never slows the other games."""
    game_id, stores = live
    big = f"{game_id}-big"
    with scheduled(stores, big):
        s = stores["gamestreams"]
        counting = CountingStore(endpoint_url=s.endpoint_url, access_key=s.access_key, secret_key=s.secret_key,
                                 bucket=s.bucket)
        s.write(big, b"0 59:00 101 6 1\n" + b"x" * (2 << 20))
        s.write(game_id, GAME)
        instance = DagsterInstance.ephemeral()
        result = tick({**stores, "gamestreams": counting}, instance, watch=0.5)
        observations = [e for e in result.asset_events if type(e).__name__ == "AssetObservation"]
        assert [o.partition for o in observations] == [big]
        assert "limit" in observations[0].metadata["error"].value
        assert READS.get(big, 0) == 0 and stores["boxscores"].latest(big) is None
        assert stores["boxscores"].latest(game_id)["seq"] == 5  # the other game went on
        again = tick({**stores, "gamestreams": counting}, instance, cursor=result.cursor, watch=0.3)
        assert not [e for e in again.asset_events if type(e).__name__ == "AssetObservation"]
        assert "1 game(s) failing until their object changes" in again.skip_reason.skip_message
        assert READS.get(big, 0) == 0 and big in LiveCursor.parse(again.cursor).failures


def test_a_game_whose_handling_raises_fails_alone(live, monkeypatch):
    """One game's failure of any kind never fails the tick for the others."""
    from sidearm_assets.publishing import watcher as watcher_module

    game_id, stores = live
    other = f"{game_id}-ok"
    engine = stores["sidearmdb"].engine()
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert().values(game_id=other, home_teamid=101, away_teamid=205))
    real = watcher_module.live_update

    def exploding(game, data, *args, **kwargs):
        if game.game_id == game_id:
            raise ValueError("a rule nobody foresaw")
        return real(game, data, *args, **kwargs)

    monkeypatch.setattr(watcher_module, "live_update", exploding)
    try:
        stores["gamestreams"].write(game_id, GAME)
        stores["gamestreams"].write(other, GAME)
        result = tick(stores, DagsterInstance.ephemeral())
        assert stores["boxscores"].latest(other)["seq"] == 5
        assert stores["boxscores"].latest(game_id) is None
        assert f"{game_id}: ValueError: a rule nobody foresaw" in result.skip_reason.skip_message
        assert game_id in LiveCursor.parse(result.cursor).versions  # not retried until the object changes
    finally:
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == other))


def test_a_locked_reference_database_never_blocks_publishing(live, tmp_path):
    """The box scores keep flowing with the last good reference rows."""
    import sqlite3

    from sidearm_assets.publishing.reference_cache import ReferenceCache

    path = tmp_path / "ref.sqlite"
    url = f"sqlite:///{path}"
    engine = reference_db.make_engine(url)
    reference_db.create_schema(engine)
    reference_db.reset_base_tables(engine)
    db = ReferenceDatabase(url=url)
    cache = ReferenceCache(db, refresh_seconds=0.0, wait_seconds=1.0)
    first = cache.rows()
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # a writer holding the database: readers wait on it
    try:
        again = cache.rows()  # starts a refresh in the background, answers with the last good rows
        assert again is first and len(first.teams) == 2
    finally:
        holder.rollback()
        holder.close()


def test_background_watcher_publishes_between_ticks_and_stops_without_them(live):
    from sidearm_assets.sensors import live as live_module

    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(instance=instance)
    try:
        first = live_module.background_tick(context, stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
        assert "watcher started" in first.skip_reason.skip_message
        import gc

        assert gc.get_freeze_count() > 0  # the process's long-lived objects are out of full collections
        stores["gamestreams"].write(game_id, GAME)  # no tick runs: the watcher publishes on its own
        processes.wait_until(lambda: stores["boxscores"].latest(game_id), timeout=10, interval=0.02,
                             what="the watcher's own publication (no tick runs)")
        assert stores["boxscores"].latest(game_id)["seq"] == 5
        [owned] = live_module.WATCHERS.entries()
        assert owned.background.watcher.idle()
        second = live_module.background_tick(build_sensor_context(instance=instance, cursor=first.cursor),
                                             stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])
        assert [m.partition for m in materializations(second, "boxscore_doc")] == [game_id]
        assert game_id in LiveCursor.parse(second.cursor).versions
        owned.background.lease_seconds = 0.0
        owned.background.renew()  # a lease that ends now: the thread stops by itself
        processes.wait_until(lambda: not owned.background.alive, timeout=5, interval=0.02,
                             what="the watcher thread to stop when its lease ended")
    finally:
        live_module.WATCHERS.stop_all()


def test_steady_ticks_never_open_the_instance_in_the_code_server(live, embedded_stack, monkeypatch, tmp_path):
    """The code server's own evaluation path (dagster._grpc.impl): only a tick with a failure to
    log may open the instance; a new game's partition is asked for once, in the tick that first
    reports it."""
    from dagster._core.test_utils import instance_for_test
    from dagster._grpc.impl import get_external_sensor_execution

    from sidearm_assets import settings
    from sidearm_assets.definitions import defs
    from sidearm_assets.sensors import live as live_module

    game_id, stores = live
    for name, value in embedded_stack.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(settings.S3_BUCKET.name, stores["gamestreams"].bucket)
    monkeypatch.setenv(settings.MONGO_DB.name, stores["boxscores"].database)
    opened = []
    real_from_ref = DagsterInstance.from_ref
    monkeypatch.setattr(DagsterInstance, "from_ref", staticmethod(lambda ref: opened.append(ref) or real_from_ref(ref)))
    repo = defs.get_repository_def()

    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        cursor = None

        def tick():
            nonlocal cursor
            data = get_external_sensor_execution(repo, None, instance.get_ref(), "gamestream_sensor",
                                                 None, None, cursor, None, None)
            assert type(data).__name__ == "SensorExecutionData", data
            cursor = data.cursor
            return data

        try:
            assert "watcher started" in tick().skip_message
            requested = []
            for version in (GAME, GAME + b"4 44:00 101 6 1\n"):
                stores["gamestreams"].write(game_id, version)
                processes.wait_until(lambda: (stores["boxscores"].latest(game_id) or {}).get("seq") == version.count(b"\n"),
                                     timeout=10, interval=0.02, what="the watcher's publication")
                data = tick()
                assert [m.partition for m in materializations(data, "boxscore_doc")] == [game_id]
                requested.append([k for r in data.dynamic_partitions_requests for k in r.partition_keys])
            assert requested == [[game_id], []]
            assert opened == []
        finally:
            live_module.WATCHERS.stop_all()


def test_partitions_are_asked_for_again_after_a_restart_and_after_a_tick_the_daemon_lost(live):
    """A restarted watcher asks for the partition of each game it reports (the cursor also holds
    games whose partition was never asked for: skipped or failed versions); a tick whose result
    the daemon did not store (the next tick starts from the cursor before it) has its partition
    requests sent again."""
    from sidearm_assets.sensors import live as live_module

    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    lines = GAME.splitlines(keepends=True)

    def tick_on(cursor):
        return live_module.background_tick(build_sensor_context(instance=instance, cursor=cursor),
                                           stores["gamestreams"], stores["boxscores"], stores["sidearmdb"])

    def publish(data: bytes) -> None:
        stores["gamestreams"].write(game_id, data)
        processes.wait_until(lambda: (stores["boxscores"].latest(game_id) or {}).get("seq") == data.count(b"\n"),
                             timeout=10, interval=0.02, what="the watcher's publication")

    def requested(result) -> list[str]:
        return [k for r in result.dynamic_partitions_requests for k in r.partition_keys]

    try:
        start = tick_on(None)
        publish(b"".join(lines[:1]))
        assert requested(tick_on(start.cursor)) == [game_id]  # the daemon fails to store this tick
        publish(b"".join(lines[:2]))
        retried = tick_on(start.cursor)  # so the next one starts from the cursor before it
        assert requested(retried) == [game_id]
        publish(b"".join(lines[:4]))
        steady = tick_on(retried.cursor)
        assert requested(steady) == []
        live_module.WATCHERS.stop_all()  # a code-server restart: a new watcher, from the cursor
        restarted = tick_on(steady.cursor)
        publish(GAME)
        assert requested(tick_on(restarted.cursor)) == [game_id]
    finally:
        live_module.WATCHERS.stop_all()


def test_reporting_is_bounded_per_tick_and_the_cursor_only_holds_what_was_reported(live):
    game_id, stores = live
    others = [f"{game_id}-{n}" for n in range(3)]
    engine = stores["sidearmdb"].engine()
    with engine.begin() as conn:
        for g in others:
            conn.execute(reference_db.games.insert().values(game_id=g, home_teamid=101, away_teamid=205))
    try:
        for g in others:
            stores["gamestreams"].write(g, GAME)
        stores["gamestreams"].write(game_id, FINAL_BY_CLOCK)
        # a new game's first report is raw + doc + every check: a budget just above one game's events
        result = tick(stores, DagsterInstance.ephemeral(), budget=len(BOXSCORE_CHECKS) + 3)
        reported = [m.partition for m in materializations(result, "boxscore_doc")]
        assert len(reported) == 2 and reported[0] == game_id  # the final goes first
        assert set(LiveCursor.parse(result.cursor).versions) == set(reported)
        assert "2 waiting" in result.skip_reason.skip_message
        assert all(stores["boxscores"].latest(g) is not None for g in others)  # published all the same
    finally:
        with engine.begin() as conn:
            for g in others:
                conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == g))


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
    before = stores["boxscores"].collection().find_one({"_id": f"{game_id}:3"}, {"published_at": 0})
    assert materialize([raw_gamestream, boxscore_doc, reference_teams, reference_players], resources=stores,
                       instance=instance, partition_key=game_id).success
    # the same document but for `published_at`, the moment it was written (SPEC 5's publication order)
    assert stores["boxscores"].collection().find_one({"_id": f"{game_id}:3"}, {"published_at": 0}) == before
    assert stores["boxscores"].collection().count_documents({"game_id": game_id}) == 1


def test_boxscore_doc_alone_after_a_watching_tick_reads_the_current_stream(live):
    """No loaded input, so no older run's snapshot and no missing stored value."""
    game_id, stores = live
    instance = DagsterInstance.ephemeral()
    stores["gamestreams"].write(game_id, GAME)
    first = tick(stores, instance)  # the watcher reports raw_gamestream without a run
    instance.add_dynamic_partitions("games", [game_id])
    stores["gamestreams"].write(game_id, FINAL_BY_CLOCK)  # a newer version the tick has not seen
    result = materialize([boxscore_doc], resources=stores, instance=instance, partition_key=game_id)
    assert result.success and first.cursor
    latest = stores["boxscores"].latest(game_id)
    assert latest["seq"] == 7 and latest["final"] is True


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
    """Register the partition without the daemon, then `dagster asset materialize`;
    before it is registered, `sidearm-games materialize` says how to register it."""
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

    unregistered = subprocess.run([str(bin_dir / "sidearm-games"), "materialize", "gamestream"], env=env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert unregistered.returncode == 1
    assert "register it first: sidearm-games add gamestream" in unregistered.stderr, unregistered.stderr[-3000:]

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
    from sidearm_assets.sensors.live_runs import LIVE_RUN_ASSETS, request_runs

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


def test_a_deleted_game_is_forgotten_and_a_finished_one_is_not_read_again(live):
    """Games that ended or were deleted cost nothing afterwards (no read, no cursor entry)."""
    game_id, stores = live
    ended = f"{game_id}-ended"
    with scheduled(stores, ended):
        s = stores["gamestreams"]
        counting = CountingStore(endpoint_url=s.endpoint_url, access_key=s.access_key, secret_key=s.secret_key,
                                 bucket=s.bucket)
        s.write(game_id, GAME)
        s.write(ended, FINAL_BY_CLOCK + b"-1 00:00 0 0 0\n")
        watcher = BucketWatcher(counting, stores["boxscores"], stores["sidearmdb"])
        try:
            watcher.poll()
            assert watcher.idle()
            reads = dict(READS)
            for _ in range(5):  # nothing changed: no object is read again
                watcher.poll()
                assert watcher.idle()
            assert {g: READS.get(g) for g in (game_id, ended)} == {g: reads.get(g) for g in (game_id, ended)}
            s.client().delete_object(Bucket=s.bucket, Key=f"{game_id}.txt")
            watcher.poll()
            assert watcher.idle()
            assert set(watcher.versions()) == {ended}
        finally:
            watcher.close()
