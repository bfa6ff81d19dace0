"""The lake and the season analytics on the embedded stack (moto S3, SQLite and PostgreSQL).

Several completed games, one corrected after it was completed: every analytics table equals
the plain-Python computation of `lake_expected` from the streams, and the lake holds each game
exactly once, as its latest version.
"""

from __future__ import annotations

import uuid

import pytest
from dagster import AssetKey, DagsterInstance, materialize
from sqlalchemy import insert

from sidearm_assets import settings
from sidearm_assets.storage import reference_db
from sidearm_assets.assets.lake import game_events, season_analytics
from sidearm_assets.lake import analytics, store, tables
from sidearm_assets.lake.events import stream_digest
from sidearm_assets.resources import GameStreamStore, ReferenceDatabase
from sidearm_assets_tests.conftest import throwaway_postgres_database
from sidearm_assets_tests.helpers import DEFAULT_GAME, EXTRA_PLAYERS, EXTRA_TEAMS, random_game, tied_game
from sidearm_assets_tests.lake_expected import canonical, expected_tables

SEASON = 2026
ROSTERS = {
    101: [p["number"] for p in reference_db.BASE_PLAYERS if p["teamid"] == 101],
    205: [p["number"] for p in reference_db.BASE_PLAYERS if p["teamid"] == 205],
    300: [p["number"] for p in EXTRA_PLAYERS if p["teamid"] == 300],
    301: [p["number"] for p in EXTRA_PLAYERS if p["teamid"] == 301],
}

# Home 300 leads 3-0, away 301 comes back, leads, is caught, wins in overtime.
COMEBACK = (
    "0 55:00 300 1 1\n1 50:00 300 5 1\n2 40:00 300 9 1\n3 35:00 301 2 1\n4 31:00 301 2 1\n"
    "5 20:00 301 7 1\n6 16:00 301 7 1\n7 10:00 300 11 1\n8 00:00 0 0 0\n"
    "9 04:00 0 0 0\n10 03:00 300 23 0\n11 01:30 301 40 1\n-1 01:30 0 0 0\n"
)
GAMES = {
    "gamestream": (101, 205, DEFAULT_GAME.read_bytes().rstrip(b"\n") + b"\n-1 00:00 0 0 0\n"),
    "g-random": (205, 101, random_game(11, 205, 101, ROSTERS, shots=70, bad_lines=True)),
    "g-extra": (300, 301, random_game(12, 300, 301, ROSTERS, shots=50, off_roster=0.15)),
    "g-comeback": (300, 301, COMEBACK.encode()),
    "g-tie": (101, 300, tied_game(101, 300, "6", "5")),
}


class Lake:
    """One test's bucket and sidearmdb on the shared embedded stack."""

    def __init__(self, env: dict, sql_url: str):
        self.store = GameStreamStore(
            endpoint_url=env[settings.S3_ENDPOINT_URL.name],
            access_key=env[settings.S3_ACCESS_KEY.name],
            secret_key=env[settings.S3_SECRET_KEY.name],
            bucket=f"lake-{uuid.uuid4().hex[:10]}",
        )
        self.store.ensure_bucket()
        self.location = store.LakeLocation.of(self.store)
        self.db = ReferenceDatabase(url=sql_url)
        self.engine = self.db.engine()
        tables.drop_analytics_tables(self.engine)
        reference_db.reset_base_tables(self.engine)
        with self.engine.begin() as conn:
            conn.execute(insert(reference_db.teams), [dict(t) for t in EXTRA_TEAMS])
            conn.execute(insert(reference_db.players), [dict(p) for p in EXTRA_PLAYERS])
            for game_id, (home, away, _) in GAMES.items():
                if game_id != "gamestream":
                    conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=home, away_teamid=away))
        self.streams = {g: data for g, (_, _, data) in GAMES.items()}

    def complete(self, game_id: str, data: bytes) -> None:
        """The game's stream is over: its object and its completed record (the archive)."""
        self.store.write(game_id, data)
        self.store.archive(game_id, data)
        self.streams[game_id] = data

    def sync(self, game_ids):
        return store.sync_lake(
            self.store, [(g, self.streams[g]) for g in game_ids], schedule=self.db.games(),
            teams=self.db.teams(), players=self.db.players(), season=SEASON,
        )

    def expected(self):
        return expected_tables(self.streams, self.db.games(), self.db.teams(), self.db.players(), SEASON)

    def assert_each_game_once(self):
        import pyarrow.parquet as pq

        fs = self.location.filesystem()
        files = store.lake_files(self.location)
        events = store.read_events(self.location)
        per_file = {}
        for info in files:
            ids = set(pq.read_table(info.path, filesystem=fs, columns=["game_id"]).column("game_id").to_pylist())
            assert len(ids) == 1, (info.path, ids)
            per_file[info.path] = ids.pop()
        assert sorted(per_file.values()) == sorted(self.streams), per_file
        assert set(events.column("game_id").to_pylist()) == set(self.streams)
        digests = {}
        for gid, sha in zip(events.column("game_id").to_pylist(), events.column("stream_sha256").to_pylist()):
            digests.setdefault(gid, set()).add(sha)
        assert digests == {g: {stream_digest(d)} for g, d in self.streams.items()}

    def cleanup(self):
        client = self.store.client()
        for obj in client.list_objects_v2(Bucket=self.store.bucket).get("Contents", []):
            client.delete_object(Bucket=self.store.bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=self.store.bucket)


@pytest.fixture
def lake(embedded_stack, tmp_path):
    world = Lake(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    yield world
    world.cleanup()


def assert_tables_equal(actual: dict[str, list[dict]], expected: dict[str, list[dict]]):
    for name in analytics.ANALYTICS:
        assert canonical(actual[name]) == canonical(expected[name]), name


def test_sync_then_analytics_equal_the_plain_python_computation_and_a_correction_replaces_its_game(lake):
    for game_id in GAMES:
        lake.complete(game_id, lake.streams[game_id])
    report = lake.sync(list(GAMES))
    assert report.problems == []
    assert sorted(w.game_id for w in report.written) == sorted(GAMES)
    lake.assert_each_game_once()

    result = analytics.compute_analytics(lake.location, lake.db.teams(), lake.db.players())
    expected = lake.expected()
    assert_tables_equal(result.tables, expected)
    assert result.games == len(GAMES)
    # The same through a lazily scanned pyarrow dataset, and the lake read in chunks of 2 games.
    streamed = analytics.compute_analytics(store.events_dataset(lake.location), lake.db.teams(), lake.db.players())
    assert_tables_equal(streamed.tables, expected)
    chunks = list(store.iter_event_tables(lake.location, chunk_files=2))
    assert len(chunks) == 3 and sum(c.num_rows for c in chunks) == result.events
    comeback = next(r for r in result.tables["lead_changes"] if r["game_id"] == "g-comeback")
    assert (comeback["home_score"], comeback["away_score"], comeback["winner_teamid"]) == (4, 5, 301)
    assert (comeback["lead_changes"], comeback["times_tied"], comeback["winner_largest_deficit"]) == (1, 2, 3)
    tie = next(r for r in result.tables["lead_changes"] if r["game_id"] == "g-tie")
    assert tie["winner_teamid"] is None and tie["winner_largest_deficit"] == 0
    assert any(r["quarter"] == 5 for r in result.tables["team_shooting_by_quarter"] if r["team_id"] == 301)
    assert any(r["player_id"] is None for r in result.tables["scoring_leaders"])  # off-roster shooters count

    # A scorer corrects a completed game: its winning goal was a miss. Synced again (with
    # another game written twice in the same call), the lake holds the new version only.
    corrected = lake.streams["g-comeback"].replace(b"11 01:30 301 40 1\n-1 01:30 0 0 0\n", b"11 01:30 301 40 0\n-1 01:30 0 0 0\n")
    assert corrected != lake.streams["g-comeback"]
    lake.complete("g-comeback", corrected)
    report = lake.sync(["g-comeback", "gamestream", "gamestream"])
    assert sorted(w.game_id for w in report.written) == ["g-comeback", "gamestream"]
    lake.assert_each_game_once()
    again = analytics.compute_analytics(lake.location, lake.db.teams(), lake.db.players())
    assert_tables_equal(again.tables, lake.expected())
    tied_now = next(r for r in again.tables["lead_changes"] if r["game_id"] == "g-comeback")
    assert (tied_now["home_score"], tied_now["away_score"], tied_now["winner_teamid"]) == (4, 4, None)
    assert again.events == result.events  # the same lines, one goal fewer

    written = tables.write_analytics(lake.engine, again.tables, tables.new_generation(), games=again.games, events=again.events)
    assert written.written
    for name in analytics.ANALYTICS:
        assert canonical(tables.read_table(lake.engine, name)) == canonical(again.tables[name]), name
    stale = tables.write_analytics(lake.engine, result.tables, "2000-01-01T00:00:00.000000Z", games=1, events=1)
    assert not stale.written  # an older computation never overwrites a newer one
    assert canonical(tables.read_table(lake.engine, "lead_changes")) == canonical(again.tables["lead_changes"])


def test_games_that_are_not_over_or_not_scheduled_are_reported_not_written(lake):
    lake.streams["g-extra"] = b"0 59:00 300 1 1\n"  # scheduled, still playing
    lake.streams["nobody"] = b"0 59:00 101 6 1\n-1 00:00 0 0 0\n"
    report = lake.sync(["gamestream", "g-extra", "nobody"])
    assert [w.game_id for w in report.written] == ["gamestream"]
    assert len(report.problems) == 2
    assert any(p.startswith("g-extra: ") and "not over" in p for p in report.problems)
    assert any(p.startswith("nobody: ") and "no row in the games table" in p for p in report.problems)
    assert [i.path.rsplit("/", 1)[1] for i in store.lake_files(lake.location)] == ["game-gamestream.parquet"]


def test_checks_catch_a_stray_file_and_goals_that_do_not_add_up(lake):
    for game_id in ("gamestream", "g-extra"):
        lake.complete(game_id, lake.streams[game_id])
    lake.sync(["gamestream", "g-extra"])
    result = analytics.compute_analytics(lake.location, lake.db.teams(), lake.db.players())
    assert all(c.passed for c in analytics.lake_checks(result))

    # A copy of a game's file under another name: that game twice in the lake.
    fs = lake.location.filesystem()
    fs.copy_file(lake.location.path("g-extra"), f"{lake.location.root}/copy-of-g-extra.parquet")
    doubled = analytics.compute_analytics(lake.location, lake.db.teams(), lake.db.players())
    by_name = {c.name: c for c in analytics.lake_checks(doubled)}
    assert not by_name["lake_one_file_per_game"].passed
    assert by_name["lake_one_file_per_game"].metadata["files_not_named_for_their_game"] == ["copy-of-g-extra.parquet"]
    fs.delete_file(f"{lake.location.root}/copy-of-g-extra.parquet")

    result.tables["scoring_leaders"][0]["goals"] += 1
    by_name = {c.name: c for c in analytics.lake_checks(result)}
    assert not by_name["leader_goals_match_game_scores"].passed
    assert not by_name["quarters_match_leaders"].passed
    assert by_name["lake_one_file_per_game"].passed


def winner_scores_once_more(data: bytes, home: int, away: int) -> bytes:
    """The stream with the winner's first miss turned into a goal (still over, still decided)."""
    lines = data.decode().splitlines()
    score = {home: 0, away: 0}
    for line in lines:
        f = line.split()
        if len(f) == 5 and f[2] in (str(home), str(away)):
            score[int(f[2])] += int(f[4])
    winner = max(score, key=score.get)
    assert score[home] != score[away]
    for i, line in enumerate(lines):
        f = line.split()
        if len(f) == 5 and f[2] == str(winner) and f[4] == "0":
            lines[i] = " ".join(f[:4] + ["1"])
            return ("\n".join(lines) + "\n").encode()
    raise AssertionError("the winner never missed")


def test_the_snapshot_fetches_only_new_or_changed_files_and_never_goes_stale(lake):
    from sidearm_assets.lake import snapshot

    def compute(**kw):
        return analytics.compute_analytics(lake.location, lake.db.teams(), lake.db.players(), **kw)

    games = ["gamestream", "g-random", "g-extra"]
    for game_id in games:
        lake.complete(game_id, lake.streams[game_id])
    lake.sync(games)
    lake.streams = {g: lake.streams[g] for g in games}
    first = compute()
    assert (first.files_fetched, len(first.files), first.snapshot_note) == (3, 3, None)
    assert_tables_equal(first.tables, lake.expected())
    fs = lake.location.filesystem()
    assert fs.get_file_info(snapshot.snapshot_path(lake.location)).size > 0
    assert snapshot.snapshot_path(lake.location).endswith("/lake/_cache/events.parquet")
    assert not any("_cache" in i.path for i in store.lake_files(lake.location))  # not a game file

    again = compute()
    assert again.files_fetched == 0 and again.tables == first.tables

    # A correction (a miss of the winner becomes a goal), a new game,
    # a removed game.
    corrected = winner_scores_once_more(lake.streams["g-extra"], 300, 301)
    lake.complete("g-extra", corrected)
    lake.complete("g-comeback", GAMES["g-comeback"][2])
    assert lake.sync(["g-extra", "g-comeback"]).problems == []
    assert store.delete_game_events(lake.location, "g-random")
    del lake.streams["g-random"]
    changed = compute()
    assert changed.files_fetched == 2 and len(changed.files) == 3
    assert_tables_equal(changed.tables, lake.expected())
    assert_tables_equal(compute(use_snapshot=False).tables, lake.expected())

    # A damaged snapshot is ignored (the lake is read whole) and rewritten.
    with fs.open_output_stream(snapshot.snapshot_path(lake.location)) as out:
        out.write(b"not parquet")
    damaged = compute()
    assert damaged.files_fetched == 3 and "snapshot unreadable" in damaged.snapshot_note
    assert_tables_equal(damaged.tables, lake.expected())
    assert compute().files_fetched == 0


def test_empty_lake_gives_empty_tables(lake):
    result = analytics.compute_analytics(lake.location, lake.db.teams(), lake.db.players())
    assert result.events == 0 and all(rows == [] for rows in result.tables.values())


@pytest.fixture
def postgres_db():
    """A ReferenceDatabase on a fresh PostgreSQL database with the lake tests' teams and games."""
    with throwaway_postgres_database("sidearm_lake") as url:
        db = ReferenceDatabase(url=url.render_as_string(hide_password=False))
        reference_db.reset_base_tables(db.engine())
        with db.engine().begin() as conn:
            conn.execute(insert(reference_db.teams), [dict(t) for t in EXTRA_TEAMS])
            conn.execute(insert(reference_db.players), [dict(p) for p in EXTRA_PLAYERS])
            for game_id, (home, away, _) in GAMES.items():
                if game_id != "gamestream":
                    conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=home, away_teamid=away))
        yield db
        db.engine().dispose()


def test_assets_write_the_lake_and_the_sidearmdb_tables(lake, postgres_db):
    """game_events per partition, then season_analytics, through dagster.materialize; the
    analytics written to PostgreSQL this time."""
    pg = postgres_db
    for game_id in GAMES:
        lake.complete(game_id, lake.streams[game_id])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("games", [*GAMES, "live"])
    resources = {"gamestreams": lake.store, "sidearmdb": pg}
    for game_id in GAMES:
        result = materialize([game_events], resources=resources, instance=instance, partition_key=game_id)
        assert result.success
        [mat] = result.get_asset_materialization_events()
        assert mat.materialization.metadata["games_written"].value == 1
    lake.assert_each_game_once()

    # A game that is not completed: a clear failure, nothing written.
    lake.store.write("live", b"0 59:00 101 6 1\n")
    failed = materialize([game_events], resources=resources, instance=instance, partition_key="live", raise_on_error=False)
    assert not failed.success
    lake.assert_each_game_once()

    result = materialize([season_analytics], resources=resources, instance=instance)
    assert result.success
    expected = lake.expected()
    for name in analytics.ANALYTICS:
        assert canonical(tables.read_table(pg.engine(), name)) == canonical(expected[name]), name
    mats = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
    assert set(mats) == set(analytics.ANALYTICS)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == set(analytics.LAKE_CHECKS)
    assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items()}
    assert checks["lake_one_file_per_game"].metadata["files"].value == len(GAMES)
    leaders = mats["scoring_leaders"]
    assert leaders["row_count"].value == len(expected["scoring_leaders"])
    assert leaders["games"].value == len(GAMES)
    assert leaders["rows"].value.startswith("| season | rank_goals |")
    assert tables.read_state(pg.engine())["games"] == len(GAMES)


def test_one_run_over_a_range_of_game_partitions_writes_the_completed_ones(lake):
    """What `dagster asset materialize --select game_events --partition-range A...B` and a UI
    backfill do (single-run backfill policy): one run; a game not completed yet is skipped."""
    for game_id in GAMES:
        lake.complete(game_id, lake.streams[game_id])
    lake.store.write("live", b"0 59:00 101 6 1\n")  # streaming, not completed
    order = ["gamestream", "g-random", "live", "g-extra", "g-comeback", "g-tie"]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("games", order)
    result = materialize(
        [game_events], resources={"gamestreams": lake.store, "sidearmdb": lake.db}, instance=instance,
        tags={"dagster/asset_partition_range_start": order[0], "dagster/asset_partition_range_end": order[-1]},
    )
    assert result.success
    assert len(instance.get_run_records()) == 1
    mats = result.get_asset_materialization_events()
    assert sorted(m.partition for m in mats) == sorted(order)  # Dagster records the whole range
    meta = mats[0].materialization.metadata
    assert meta["games_written"].value == len(GAMES)
    assert meta["not_completed"].value == ["live"]
    lake.assert_each_game_once()


def test_hookup_sync_lake_then_the_analytics_assets_in_a_run(lake):
    """The game-over path's hookup: `sync_lake` of the games a final-tables run counted, then
    `season_analytics` in the same run (its specs depend on players2/teams2, so it runs after
    the final-tables step). Here: sync_lake, then a run of the analytics on the embedded stack."""
    from sidearm_assets import defs

    counted = ["gamestream", "g-comeback", "g-tie"]
    for game_id in counted:
        lake.complete(game_id, lake.streams[game_id])
    lake.streams = {g: lake.streams[g] for g in counted}
    report = store.sync_lake(
        lake.store, [(g, lake.streams[g]) for g in counted], schedule=lake.db.games(), teams=lake.db.teams(),
        players=lake.db.players(), season=SEASON,
    )
    assert sorted(w.game_id for w in report.written) == sorted(counted) and not report.problems
    result = materialize([season_analytics], resources={"gamestreams": lake.store, "sidearmdb": lake.db},
                         instance=DagsterInstance.ephemeral())
    assert result.success
    expected = lake.expected()
    for name in analytics.ANALYTICS:
        assert canonical(tables.read_table(lake.engine, name)) == canonical(expected[name]), name
    graph = defs.get_repository_def().asset_graph
    for name in analytics.ANALYTICS:
        parents = {k.to_user_string() for k in graph.get(AssetKey(name)).parent_keys}
        assert {"game_events", "players2", "teams2"} <= parents
