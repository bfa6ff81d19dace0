"""The lake and the season analytics on the embedded stack (moto S3, SQLite and PostgreSQL).

The record of counted games is filled directly (`counted_games` rows, as the final tables write
them); the lake follows it: one file per row, at the row's version, corrections and uncounts
included. Every analytics table equals the plain-Python computation of `lake_expected` from the
streams.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from sidearm_assets.assets.lake import season_analytics, season_lake
from sidearm_assets.lake import analytics, follow, season, store, tables
from sidearm_assets.resources import ReferenceDatabase
from sidearm_assets.storage import final_tables_db
from sidearm_assets_tests.conftest import throwaway_postgres_database
from sidearm_assets_tests.lake_expected import canonical
from sidearm_assets_tests.lake_world import GAMES, SEASON, Lake


@pytest.fixture
def lake(embedded_stack, tmp_path):
    world = Lake(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    yield world
    world.cleanup()


def assert_tables_equal(actual: dict[str, list[dict]], expected: dict[str, list[dict]]):
    for name in analytics.ANALYTICS:
        assert canonical(actual[name]) == canonical(expected[name]), name


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


def test_the_lake_follows_the_record_through_corrections_and_uncounts(lake):
    for game_id in GAMES:
        lake.count(game_id)
    first = lake.follow()
    assert sorted(w.game_id for w in first.written) == sorted(GAMES) and not first.problems
    assert first.reconciled and "no marker" in first.reconciled  # a new lake is listed once
    lake.assert_lake_follows_record()
    season.refresh_season(lake.engine)
    assert_tables_equal(lake.season_tables(), lake.expected())

    # Nothing changed: nothing written, nothing listed.
    again = lake.follow()
    assert (again.written, again.deleted, again.reconciled) == ([], [], None)

    # A correction rewrites exactly that game; an uncount removes exactly that game.
    lake.count("g-extra", winner_scores_once_more(GAMES["g-extra"][2], 300, 301))
    lake.uncount("g-random")
    changed = lake.follow()
    assert [w.game_id for w in changed.written] == ["g-extra"] and changed.deleted == ["g-random"]
    assert changed.reconciled is None
    lake.assert_lake_follows_record()
    season.refresh_season(lake.engine)
    assert_tables_equal(lake.season_tables(), lake.expected())
    with lake.engine.connect() as conn:
        for table in tables.FACT_TABLES.values():
            ids = {r[0] for r in conn.execute(table.select().with_only_columns(table.c.game_id))}
            assert ids == set(lake.streams), table.name


def test_a_store_that_lost_the_lake_is_repaired_by_the_next_run(lake):
    for game_id in ("gamestream", "g-comeback", "g-tie"):
        lake.count(game_id)
    lake.follow()
    client = lake.store.client()
    # Files lost and one replaced by another game's bytes behind the lake's back; the marker gone.
    client.delete_object(Bucket=lake.store.bucket, Key=lake.location.key("gamestream"))
    other = client.get_object(Bucket=lake.store.bucket, Key=lake.location.key("g-tie"))["Body"].read()
    client.put_object(Bucket=lake.store.bucket, Key=lake.location.key("g-comeback"), Body=other)
    client.put_object(Bucket=lake.store.bucket, Key=lake.location.key("stray"), Body=other)
    assert follow.follow_record(lake.location, lake.engine, SEASON).written == []  # marker there: not listed
    client.delete_object(Bucket=lake.store.bucket, Key=lake.location.marker_key)

    repaired = lake.follow()
    assert "no marker" in repaired.reconciled
    assert sorted(w.game_id for w in repaired.written) == ["g-comeback", "gamestream"]
    assert repaired.strays == [store.file_name("stray")]
    lake.assert_lake_follows_record()
    assert store.read_marker(lake.location) == tables.read_lake_id(lake.engine)


def test_counted_games_without_a_schedule_row_use_the_record_and_bad_ones_are_reported(lake):
    lake.count("gamestream")
    lake.count("g-comeback", teams=False)  # no teams in the record: the schedule's row
    lake.count("g-extra", b"0 59:00 300 1 1\n")  # not over: never guessed
    report = lake.follow()
    assert sorted(w.game_id for w in report.written) == ["g-comeback", "gamestream"]
    assert len(report.problems) == 1 and report.problems[0].startswith("g-extra:") and "not over" in report.problems[0]
    plan = follow.record.plan(lake.engine)
    check = analytics.lake_check(plan, store.read_marker(lake.location), tables.read_lake_id(lake.engine))
    assert not check.passed and check.metadata["first_games_without_their_file"] == ["g-extra"]


def test_the_table_checks_fail_when_the_facts_disagree(lake):
    for game_id in ("gamestream", "g-extra"):
        lake.count(game_id)
    lake.follow()
    season.refresh_season(lake.engine)
    assert all(c.passed for c in analytics.table_checks(season.season_totals(lake.engine)))
    with lake.engine.begin() as conn:
        t = tables.lake_shooter_games
        conn.execute(t.update().where(t.c.game_id == "g-extra").values(goals=t.c.goals + 1))
    season.refresh_season(lake.engine)
    by_name = {c.name: c for c in analytics.table_checks(season.season_totals(lake.engine))}
    assert not by_name["leader_goals_match_game_scores"].passed
    assert not by_name["quarters_match_leaders"].passed


def test_without_a_record_table_the_lake_is_left_alone(lake):
    lake.count("gamestream")
    lake.follow()
    final_tables_db.counted_games.drop(lake.engine)  # the wrong database, say: nothing to follow
    report = lake.follow(reconcile=True)
    assert report.written == [] and report.deleted == [] and report.strays == []
    assert report.problems and "no record of counted games" in report.problems[0]
    lake.assert_lake_follows_record()


def test_empty_record_gives_empty_tables(lake):
    report = lake.follow()
    assert report.written == [] and report.counted == 0
    written = season.refresh_season(lake.engine)
    assert written.games == 0 and all(n == 0 for n in written.rows.values())
    assert all(rows == [] for rows in lake.season_tables().values())


@pytest.fixture
def postgres_db():
    """A ReferenceDatabase on a fresh PostgreSQL database with the lake tests' teams and games."""
    with throwaway_postgres_database("sidearm_lake") as url:
        db = ReferenceDatabase(url=url.render_as_string(hide_password=False))
        yield db
        db.engine().dispose()


def test_assets_in_a_run_on_postgresql(embedded_stack, postgres_db):
    """`season_lake` then `season_analytics` through dagster.materialize, sidearmdb on PostgreSQL."""
    from sidearm_assets import defs
    from sidearm_assets.sensors.final import RUN_ASSETS

    lake = Lake(embedded_stack, postgres_db.url)
    try:
        for game_id in GAMES:
            lake.count(game_id)
        resources = {"gamestreams": lake.store, "sidearmdb": lake.db}
        instance = DagsterInstance.ephemeral()
        result = materialize([season_lake, season_analytics], resources=resources, instance=instance)
        assert result.success
        lake.assert_lake_follows_record()
        assert_tables_equal(lake.season_tables(), lake.expected())
        mats = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
        assert set(mats) == {"season_lake", *analytics.ANALYTICS}
        assert mats["season_lake"]["files_written"].value == len(GAMES)
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(checks) == set(analytics.LAKE_CHECKS)
        assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items()}
        leaders = mats["scoring_leaders"]
        assert leaders["row_count"].value == len(lake.expected()["scoring_leaders"])
        assert leaders["games"].value == len(GAMES)
        assert leaders["rows"].value.startswith("| season | rank_goals |")
        top = tables.read_table(lake.engine, "scoring_leaders", season.ORDER["scoring_leaders"], 1)[0]
        assert top["rank_goals"] == 1 and top["goals"] == max(r["goals"] for r in lake.expected()["scoring_leaders"])

        # A correction in the next run: one file written, the tables follow.
        lake.count("g-extra", winner_scores_once_more(GAMES["g-extra"][2], 300, 301))
        result = materialize([season_lake, season_analytics], resources=resources, instance=instance)
        mats = {m.asset_key.to_user_string(): m.materialization.metadata for m in result.get_asset_materialization_events()}
        assert mats["season_lake"]["files_written"].value == 1
        assert_tables_equal(lake.season_tables(), lake.expected())
    finally:
        lake.cleanup()
    # The game-over sensor's runs hold the lake after the final tables, the analytics after the lake.
    keys = [k.to_user_string() for k in RUN_ASSETS]
    assert keys.index("season_lake") > max(keys.index("players2"), keys.index("teams2"))
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert {"players2", "teams2"} <= {d.asset_key.to_user_string() for d in specs["season_lake"].deps}
    for name in analytics.ANALYTICS:
        assert "season_lake" in {d.asset_key.to_user_string() for d in specs[name].deps}
