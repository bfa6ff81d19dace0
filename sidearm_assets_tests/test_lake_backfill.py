"""`python -m sidearm_assets.lake backfill` on the embedded stack: the lake and the analytics
rebuilt from the completed games, recorded on a Dagster instance, run twice without duplicates."""

from __future__ import annotations

import io

import pytest
from dagster import AssetKey, DagsterInstance

from sidearm_assets import settings
from sidearm_assets.lake import analytics, backfill, store, tables
from sidearm_assets.lake.events import game_event_rows
from sidearm_assets_tests.lake_expected import canonical
from sidearm_assets_tests.test_lake import GAMES, SEASON, Lake


@pytest.fixture
def lake_env(embedded_stack, tmp_path, monkeypatch):
    world = Lake(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        settings.S3_ENDPOINT_URL.name: world.store.endpoint_url,
        settings.S3_ACCESS_KEY.name: world.store.access_key,
        settings.S3_SECRET_KEY.name: world.store.secret_key,
        settings.S3_BUCKET.name: world.store.bucket,
        settings.SQL_URL.name: world.db.url,
        settings.SEASON.name: str(SEASON),
        "DAGSTER_HOME": str(home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield world
    world.cleanup()


def test_backfill_rebuilds_everything_once_and_prunes_only_when_asked(lake_env):
    lake = lake_env
    for game_id in GAMES:
        lake.complete(game_id, lake.streams[game_id])
    # A stray file of a game that is not completed (its archive was removed by `uncount`).
    stray = game_event_rows("gone", lake.streams["gamestream"], [{"game_id": "gone", "home_teamid": 101,
                            "away_teamid": 205}], lake.db.teams(), lake.db.players(), SEASON)
    store.write_game_events(lake.location, stray)

    out = io.StringIO()
    assert backfill.backfill(out=out) == 0, out.getvalue()
    assert f"{len(GAMES)} game file(s) written" in out.getvalue()
    assert "pruned" not in out.getvalue()
    names = sorted(i.path.rsplit("/", 1)[1] for i in store.lake_files(lake.location))
    assert names == sorted([store.file_name(g) for g in GAMES] + ["game-gone.parquet"])

    # The stray game is in the lake, so in the tables, until it is pruned.
    assert "gone" in {r["game_id"] for r in tables.read_table(lake.engine, "lead_changes")}
    assert backfill.main(["backfill", "--prune"]) == 0
    expected = lake.expected()
    lake.assert_each_game_once()
    for name in analytics.ANALYTICS:
        assert canonical(tables.read_table(lake.engine, name)) == canonical(expected[name]), name

    instance = DagsterInstance.get()
    assert set(instance.get_dynamic_partitions("games")) == set(GAMES)
    records = instance.fetch_materializations(AssetKey("game_events"), limit=100).records
    assert sorted({r.partition_key for r in records}) == sorted(GAMES)
    assert len(records) == 2 * len(GAMES)  # two backfills, one materialization per game each
    leaders = instance.fetch_materializations(AssetKey("scoring_leaders"), limit=10).records
    assert len(leaders) == 2


def test_backfill_of_named_games_reports_what_it_cannot_write(lake_env):
    lake = lake_env
    lake.complete("gamestream", lake.streams["gamestream"])
    lake.store.archive("g-extra", b"0 59:00 300 1 1\n")  # archived but not over: never guessed
    out = io.StringIO()
    assert backfill.backfill(["gamestream", "g-extra", "never-played"], analytics=False, out=out) == 1
    text = out.getvalue()
    assert "never-played: not a completed game" in text
    assert "not written: g-extra:" in text and "not over" in text
    assert [i.path.rsplit("/", 1)[1] for i in store.lake_files(lake.location)] == ["game-gamestream.parquet"]
    assert tables.read_state(lake.engine) is None  # --no-analytics
