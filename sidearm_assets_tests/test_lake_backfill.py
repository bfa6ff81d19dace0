"""`sidearm-lake backfill` and the lake after the object store restarted empty.

The record of counted games is filled directly; the lake follows it. The restart is the real
embedded S3 server stopped by pid and started again, empty, on the same port.
"""

from __future__ import annotations

import io

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from sidearm_assets import settings
from sidearm_assets.assets.lake import season_analytics, season_lake
from sidearm_assets.lake import analytics, store, tables
from sidearm_assets.local import lake_cli
from sidearm_assets.local.local_stack import free_port, start_stack, stop_stack
from sidearm_assets_tests.lake_expected import canonical
from sidearm_assets_tests.lake_world import GAMES, SEASON, Lake


def _env(world: Lake, home) -> dict[str, str]:
    return {
        settings.S3_ENDPOINT_URL.name: world.store.endpoint_url,
        settings.S3_ACCESS_KEY.name: world.store.access_key,
        settings.S3_SECRET_KEY.name: world.store.secret_key,
        settings.S3_BUCKET.name: world.store.bucket,
        settings.SQL_URL.name: world.db.url,
        settings.SEASON.name: str(SEASON),
        "DAGSTER_HOME": str(home),
    }


@pytest.fixture
def lake_env(embedded_stack, tmp_path, monkeypatch):
    world = Lake(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    for name, value in _env(world, home).items():
        monkeypatch.setenv(name, value)
    yield world
    world.cleanup()


def assert_season_tables(lake: Lake):
    expected = lake.expected()
    for name in analytics.ANALYTICS:
        assert canonical(tables.read_table(lake.engine, name)) == canonical(expected[name]), name


def test_backfill_repairs_the_lake_from_the_record_and_runs_twice_without_duplicates(lake_env):
    lake = lake_env
    for game_id in GAMES:
        lake.count(game_id)
    out = io.StringIO()
    assert lake_cli.backfill(out=out) == 0, out.getvalue()
    assert f"{len(GAMES)} counted game(s), {len(GAMES)} file(s) written, 0 deleted" in out.getvalue()
    lake.assert_lake_follows_record()
    assert_season_tables(lake)

    # Behind the lake's back (its marker still there, so a run would not notice): a file lost,
    # another game's file under a game's name, a stray file.
    client, bucket = lake.store.client(), lake.store.bucket
    client.delete_object(Bucket=bucket, Key=lake.location.key("g-random"))
    other = client.get_object(Bucket=bucket, Key=lake.location.key("g-tie"))["Body"].read()
    client.put_object(Bucket=bucket, Key=lake.location.key("g-extra"), Body=other)
    client.put_object(Bucket=bucket, Key=lake.location.key("gone"), Body=other)
    lake.uncount("g-comeback")
    out = io.StringIO()
    assert lake_cli.main(["backfill"]) == 0
    assert lake_cli.backfill(out=out) == 0  # the second one has nothing to do
    assert f"{len(GAMES) - 1} counted game(s), 0 file(s) written, 0 deleted" in out.getvalue()
    lake.assert_lake_follows_record()
    assert_season_tables(lake)

    instance = DagsterInstance.get()
    lakes = instance.fetch_materializations(AssetKey("season_lake"), limit=10).records
    assert [r.asset_materialization.metadata["files_written"].value for r in lakes] == [0, 2, len(GAMES)]
    assert len(instance.fetch_materializations(AssetKey("scoring_leaders"), limit=10).records) == 3

    out = io.StringIO()
    assert lake_cli.backfill(["*"], analytics=False, out=out) == 0  # --rewrite-all
    assert f"{len(GAMES) - 1} file(s) written" in out.getvalue()


def test_backfill_reports_counted_games_it_cannot_write(lake_env):
    lake = lake_env
    lake.count("gamestream")
    lake.count("g-extra", b"0 59:00 300 1 1\n")  # counted but not over: never guessed
    out = io.StringIO()
    assert lake_cli.backfill(analytics=False, out=out) == 1
    text = out.getvalue()
    assert "not written: g-extra:" in text and "not over" in text
    assert [i.path.rsplit("/", 1)[1] for i in store.lake_files(lake.location)] == ["game-gamestream.parquet"]
    assert tables.read_season_state(lake.engine) is None  # --no-analytics


@pytest.mark.timeout(300)
def test_the_object_store_restarted_empty_gets_its_lake_back_in_the_next_run(tmp_path):
    """The real embedded S3 server stopped and started again, empty: the analytics' check fails
    until the next run of the lake, which finds the marker gone and rewrites every counted game."""
    stack_dir = tmp_path / "stack"
    s3_port, mongo_port = free_port(), free_port()
    stack = start_stack(stack_dir, {"s3": s3_port, "mongo": mongo_port})
    try:
        lake = Lake(dict(stack.env), f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
        for game_id in GAMES:
            lake.count(game_id)
        resources = {"gamestreams": lake.store, "sidearmdb": lake.db}
        instance = DagsterInstance.ephemeral()
        assert materialize([season_lake, season_analytics], resources=resources, instance=instance).success
        lake.assert_lake_follows_record()

        stop_stack(stack_dir, only=("s3",))
        start_stack(stack_dir, {"s3": s3_port, "mongo": mongo_port})  # a new, empty S3 on the same port
        buckets = [b["Name"] for b in lake.store.client().list_buckets().get("Buckets", [])]
        assert lake.store.bucket not in buckets  # empty: the lake's run recreates the bucket

        alone = materialize([season_analytics], resources=resources, instance=instance)
        check = next(c for c in alone.get_asset_check_evaluations() if c.check_name == "lake_follows_record")
        assert not check.passed and check.metadata["marker"].value == "missing"

        result = materialize([season_lake, season_analytics], resources=resources, instance=instance)
        assert result.success
        meta = next(m.materialization.metadata for m in result.get_asset_materialization_events()
                    if m.asset_key.to_user_string() == "season_lake")
        assert meta["files_written"].value == len(GAMES) and "no marker" in meta["reconciled"].value
        lake.assert_lake_follows_record()
        assert all(c.passed for c in result.get_asset_check_evaluations())
        assert_season_tables(lake)
    finally:
        stop_stack(stack_dir)
