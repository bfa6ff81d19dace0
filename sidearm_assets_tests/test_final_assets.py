"""players2/teams2 materialized with dagster.materialize against the real embedded services (moto
S3, SQLite and PostgreSQL) and one shared local Spark session."""

from __future__ import annotations

import pytest

from sidearm_assets.assets.final import FINAL_RUN_TAG
from sidearm_assets.settings import archive_key
from sidearm_assets.storage import final_tables_db, record_log, reference_db
from sidearm_assets_tests.final_world import World
from sidearm_assets_tests.helpers import DEFAULT_OVER, EXTRA_PLAYERS, EXTRA_TEAMS, random_game, tied_game

BASE_PLAYERS = [dict(p) for p in reference_db.BASE_PLAYERS]
BASE_TEAMS = [dict(t) for t in reference_db.BASE_TEAMS]


@pytest.fixture
def world(embedded_stack, spark_resource_fixture, tmp_path):
    w = World(embedded_stack, f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}", spark_resource_fixture)
    yield w
    w.cleanup()


def _checks(result) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _metadata(result, asset: str) -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == asset]
    assert len(mats) == 1
    return {k: v.value for k, v in mats[0].materialization.metadata.items()}


def test_after_a_game_equals_base_plus_game_and_twice_changes_nothing(world):
    world.put("gamestream", DEFAULT_OVER)
    result = world.materialize()
    assert result.success
    players, teams = world.tables()
    assert (players, teams) == world.expected({"gamestream": DEFAULT_OVER})
    assert {t["id"]: (t["wins"], t["losses"]) for t in teams} == {101: (11, 3), 205: (10, 4)}
    checks = _checks(result)
    assert set(checks) == {
        "records_match_completed_games", "rows_match_base_teams", "completed_games_decided",
        "player_totals_match_completed_games", "goals_added_equal_final_scores", "rows_match_base_players",
        "jerseys_on_roster", "live_games_scheduled", "counted_games_recorded", "completed_games_counted",
        "archive_holds_counted_games", "facts_match_games",
    }
    assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items() if not c.passed}
    meta = _metadata(result, "players2")
    assert meta["games_counted"] == 1 and meta["season_games"] == 1 and meta["filed_now"] == ["gamestream"]
    assert list(world.store.list_archive()) == ["gamestream"]

    again = world.materialize()
    assert again.success
    assert world.tables() == (players, teams)


def test_replaying_a_game_changes_nothing(world):
    world.put("gamestream", DEFAULT_OVER)
    assert world.materialize().success
    after_first = world.tables()
    # The replay restarts the live object at one line: the archived completion still counts.
    world.put("gamestream", b"0 59:51 205 6 0\n")
    replaying = world.materialize()
    assert replaying.success
    assert world.tables() == after_first
    assert _metadata(replaying, "teams2")["filed_now"] == []
    # ...and finishing it again replaces its own archive: still counted once.
    world.put("gamestream", DEFAULT_OVER)
    assert world.materialize().success
    assert world.tables() == after_first


def test_two_games_count_once_each(world):
    world.schedule("second", 300, 301, teams=EXTRA_TEAMS, players=EXTRA_PLAYERS)
    rosters = {t["id"]: [p["number"] for p in EXTRA_PLAYERS if p["teamid"] == t["id"]] for t in EXTRA_TEAMS}
    second = random_game(7, 300, 301, rosters, ending="minus1")
    world.put("gamestream", DEFAULT_OVER)
    world.put("second", second)
    result = world.materialize()
    assert result.success
    expected = world.expected({"gamestream": DEFAULT_OVER, "second": second})
    assert world.tables() == expected
    # Both games changed something, each once: materializing again is the same.
    assert world.materialize().success
    assert world.tables() == expected
    assert _metadata(result, "teams2")["season_games"] == 2


def test_a_game_in_progress_is_not_counted(world):
    world.put("gamestream", b"0 59:51 205 6 1\n1 59:30 101 31 0\n")
    result = world.materialize()
    assert result.success
    assert world.tables() == (BASE_PLAYERS, BASE_TEAMS)
    assert world.store.list_archive() == {}


def test_tie_at_game_over_line_changes_no_record_and_warns(world):
    world.put("gamestream", tied_game(101, 205, "6", "9"))
    result = world.materialize()
    assert result.success
    players, teams = world.tables()
    assert teams == BASE_TEAMS
    assert players != BASE_PLAYERS
    tie = _checks(result)["completed_games_decided"]
    assert not tie.passed and tie.severity.value == "WARN"
    assert _metadata(result, "teams2")["tied_games"] == ["gamestream"]


def test_jersey_not_on_roster_warns_and_adds_to_nobody(world):
    data = b"0 50:00 101 77 1\n1 40:00 205 9 0\n2 00:00 0 0 0\n"
    world.put("gamestream", data)
    result = world.materialize()
    assert result.success
    players, teams = world.tables()
    assert players == BASE_PLAYERS[:13] + [{**BASE_PLAYERS[13], "shots": 31}] + BASE_PLAYERS[14:]
    assert {t["id"]: (t["wins"], t["losses"]) for t in teams} == {101: (12, 2), 205: (9, 5)}
    checks = _checks(result)
    assert not checks["jerseys_on_roster"].passed and checks["jerseys_on_roster"].severity.value == "WARN"
    assert checks["goals_added_equal_final_scores"].passed
    assert _metadata(result, "players2")["unknown_jerseys"] == ["gamestream: team 101 #77 (1 shots, 1 goals)"]


def test_completed_game_with_unknown_teams_is_reported_and_does_not_block_the_others(world):
    world.schedule("ghost-game", 101, 999)  # SQLite does not enforce the foreign key: team 999 is missing
    world.put("gamestream", DEFAULT_OVER)
    world.store.archive("ghost-game", b"0 50:00 101 6 1\n1 00:00 0 0 0\n")  # filed by the live path
    result = world.materialize()
    assert result.success
    assert world.tables() == world.expected({"gamestream": DEFAULT_OVER})
    check = _checks(result)["completed_games_counted"]
    assert not check.passed and check.severity.value == "ERROR"
    [problem] = check.metadata["not_counted"].value
    assert problem.startswith("ghost-game:") and "999" in problem
    assert sorted(final_tables_db.read_record(world.engine)) == ["gamestream"]


def test_object_store_emptied_keeps_counted_games_from_the_record(world):
    """S3 restarted empty, then another game ends: the counted game stays."""
    world.schedule("second", 300, 301, teams=EXTRA_TEAMS, players=EXTRA_PLAYERS)
    rosters = {t["id"]: [p["number"] for p in EXTRA_PLAYERS if p["teamid"] == t["id"]] for t in EXTRA_TEAMS}
    second = random_game(11, 300, 301, rosters, ending="minus1")
    world.put("gamestream", DEFAULT_OVER)
    assert world.materialize().success
    for obj in world.store.client().list_objects_v2(Bucket=world.store.bucket).get("Contents", []):
        world.store.client().delete_object(Bucket=world.store.bucket, Key=obj["Key"])  # S3 lost everything
    world.put("second", second)
    result = world.materialize()
    assert result.success
    assert world.tables() == world.expected({"gamestream": DEFAULT_OVER, "second": second})
    assert world.store.read_archive("gamestream")[0] == DEFAULT_OVER  # put back from the record
    checks = _checks(result)
    assert not checks["archive_holds_counted_games"].passed
    assert checks["archive_holds_counted_games"].metadata["rearchived"].value == ["gamestream"]
    assert checks["counted_games_recorded"].passed
    meta = _metadata(result, "teams2")
    assert meta["rearchived"] == ["gamestream"] and meta["season_games"] == 2 and meta["games_counted"] == 1
    # The next run finds everything in place: nothing re-archived, nothing new to count.
    again = world.materialize()
    assert (_metadata(again, "teams2")["games_counted"], _metadata(again, "teams2")["season_games"]) == (0, 2)
    assert all(c.passed for n, c in _checks(again).items() if n != "jerseys_on_roster")


def test_a_sensor_run_counts_only_what_is_filed_and_a_correction_replaces_its_game(world):
    tags = {FINAL_RUN_TAG: "game_over_sensor"}
    world.file("gamestream", DEFAULT_OVER)
    world.put("gamestream", b"0 59:51 205 6 1\n")  # the live object: never read by a sensor run
    first = world.materialize(tags=tags)
    assert first.success
    meta = _metadata(first, "teams2")
    assert (meta["games_counted"], meta["season_games"], meta["filed_now"]) == (1, 1, [])
    assert world.tables() == world.expected({"gamestream": DEFAULT_OVER})
    # A scorer corrects a past line after the end: the live path files the new version.
    corrected = DEFAULT_OVER.replace(b" 1\n", b" 0\n", 1)  # the first goal was a save
    assert corrected != DEFAULT_OVER
    world.file("gamestream", corrected)
    second = world.materialize(tags=tags)
    meta = _metadata(second, "teams2")
    assert meta["corrected"] == ["gamestream"] and (meta["games_counted"], meta["season_games"]) == (1, 1)
    assert world.tables() == world.expected({"gamestream": corrected})
    assert final_tables_db.read_record(world.engine)["gamestream"].data == corrected


def test_a_recorded_game_that_cannot_be_counted_any_more_fails_the_run_and_keeps_the_tables(world):
    world.schedule("second", 300, 301, teams=EXTRA_TEAMS, players=EXTRA_PLAYERS)
    data = b"0 50:00 300 1 1\n1 00:00 0 0 0\n"
    world.store.archive("second", data)
    assert world.materialize().success
    before = world.tables()
    with world.engine.begin() as conn:  # someone deletes a team of a counted game
        conn.execute(reference_db.players.delete().where(reference_db.players.c.teamid == 301))
        conn.execute(reference_db.teams.delete().where(reference_db.teams.c.id == 301))
    result = world.materialize(raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    message = str(failures[0].step_failure_data.user_failure_data or failures[0].step_failure_data.error)
    assert "second" in message and "uncount" in message
    assert world.tables() == before
    assert sorted(final_tables_db.read_record(world.engine)) == ["second"]


def test_uncount_then_a_run_drops_the_game_and_the_same_version_never_comes_back(world):
    world.put("gamestream", DEFAULT_OVER)
    assert world.materialize().success
    record_log.uncount(world.engine, "gamestream", "test game", "tester")
    world.store.delete_archive("gamestream")
    result = world.materialize()  # a manual run re-archives the live object (same bytes, same ETag)...
    assert result.success
    assert world.tables() == (BASE_PLAYERS, BASE_TEAMS)  # ...which stays uncounted
    assert _metadata(result, "teams2")["rebuilt_after_uncount"] is True
    assert final_tables_db.read_record(world.engine) == {}


def test_unscheduled_game_is_skipped_and_reported(world):
    world.put("gamestream", DEFAULT_OVER)
    world.put("pickup", b"0 50:00 7 6 1\n1 00:00 0 0 0\n")
    result = world.materialize()
    assert result.success
    assert world.tables() == world.expected({"gamestream": DEFAULT_OVER})
    check = _checks(result)["live_games_scheduled"]
    assert not check.passed and check.metadata["unscheduled_games"].value == ["pickup"]
    assert archive_key("pickup") not in {o.key for o in world.store.list_archive().values()}


def test_on_postgresql(embedded_stack, spark_resource_fixture, postgres_url):
    w = World(embedded_stack, postgres_url, spark_resource_fixture)
    try:
        w.put("gamestream", DEFAULT_OVER)
        result = w.materialize()
        assert result.success
        assert w.tables() == w.expected({"gamestream": DEFAULT_OVER})
        assert all(c.passed for c in _checks(result).values())
        assert w.materialize().success
        assert w.tables() == w.expected({"gamestream": DEFAULT_OVER})
    finally:
        final_tables_db.drop_final_tables(w.engine)
        w.cleanup()


def test_the_record_check_fails_when_the_tables_and_the_record_disagree(tmp_path):
    """counted_games_recorded compares the record with the facts the tables are built from, version
    for version; completed_games_counted names a completion left waiting (no Spark needed)."""
    from sidearm_assets.assets.final import record_checks
    from sidearm_assets.domain.facts import game_facts
    from sidearm_assets.storage.completed_games import CountingJob
    from sidearm_assets.storage.final_schema import team_game_facts

    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    reference_db.reset_base_tables(engine)
    final_tables_db.file_completions(engine, [final_tables_db.Completion("gamestream", DEFAULT_OVER)])
    CountingJob(engine, game_facts).run()
    by_name = lambda outcomes: {o.name: o for o in record_checks(engine, _NoBucket())}  # noqa: E731

    agree = by_name(None)
    assert agree["counted_games_recorded"].passed and agree["completed_games_counted"].passed
    assert not agree["live_games_scheduled"].passed  # the bucket could not be listed: said so

    with engine.begin() as conn:  # facts of another version than the record's
        conn.execute(team_game_facts.update().values(etag="other"))
    wrong = by_name(None)["counted_games_recorded"]
    assert not wrong.passed and wrong.severity == "ERROR" and wrong.metadata["recorded_without_facts"] == ["gamestream"]

    with engine.begin() as conn:  # a completion filed before the run is still waiting
        conn.execute(team_game_facts.update().values(etag=final_tables_db.digest_of(DEFAULT_OVER)))
    final_tables_db.file_completions(engine, [final_tables_db.Completion("gamestream", DEFAULT_OVER + b"\n")],
                                     filed_at="2000-01-01T00:00:00.000000Z")
    waiting = by_name(None)["completed_games_counted"]
    assert not waiting.passed and waiting.metadata["not_counted"] == ["gamestream: pending"]


class _NoBucket:
    def list_games(self):
        raise ConnectionError("no bucket in this test")
