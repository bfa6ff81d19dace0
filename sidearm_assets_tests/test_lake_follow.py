"""The lake step's pure rules: when to list the lake, what to repair, and the lake check."""

from __future__ import annotations

from sidearm_assets.lake import analytics, follow, record, season, store


def test_the_lake_is_listed_only_without_its_marker_or_when_asked():
    assert follow.reconcile_reason("abc", "abc", asked=False) is None
    assert "no marker" in follow.reconcile_reason(None, "abc", asked=False)
    assert "no marker" in follow.reconcile_reason(None, None, asked=False)  # a new lake
    assert "names lake other" in follow.reconcile_reason("other", "abc", asked=False)
    assert follow.reconcile_reason("abc", "abc", asked=True) == "asked (backfill)"


def test_files_to_repair_are_the_missing_the_foreign_and_the_strays():
    counted = {"a": "e1", "b": "e2", "c": "e3", "d": "e4"}
    recorded = {"a": ("e1", "m1"), "b": ("e2", "m2"), "c": ("e3", None)}
    listed = {
        store.file_name("a"): "m1",  # as written
        store.file_name("b"): "other",  # someone else's bytes under b's name
        store.file_name("c"): "whatever",  # no ETag recorded: its presence is all we know
        store.file_name("x y"): "m9",  # a game that is not counted
    }
    repair, strays = follow.files_to_repair(counted, recorded, listed)
    assert repair == {"b": "e2", "d": "e4"}
    assert strays == [store.file_name("x y")]
    assert follow.files_to_repair({}, {}, {}) == ({}, [])


def test_the_lake_check_names_what_is_missing_and_the_marker():
    plan = record.LakePlan(to_write={f"g{i:02d}": "e" for i in range(30)}, gone=["old"], counted=40)
    failed = analytics.lake_check(plan, None, "abc")
    assert not failed.passed and failed.severity == "ERROR" and failed.asset == "lead_changes"
    assert failed.metadata["games_without_their_file"] == 30
    assert failed.metadata["first_games_without_their_file"] == [f"g{i:02d}" for i in range(20)]
    assert failed.metadata["first_files_of_games_not_counted"] == ["old"]
    assert failed.metadata["marker"] == "missing"
    assert not analytics.lake_check(record.LakePlan(counted=3), "other", "abc").passed
    assert analytics.lake_check(record.LakePlan(counted=3), None, "abc", "unreadable: down").metadata["marker"] == (
        "unreadable: down")
    assert analytics.lake_check(record.LakePlan(counted=3), "abc", "abc").passed


def test_the_table_checks_compare_goals_and_team_totals():
    good = season.SeasonTotals(10, 40, 10, {(2026, 1): (40, 10)}, {(2026, 1): (40, 10)})
    assert all(c.passed for c in analytics.table_checks(good))
    bad = season.SeasonTotals(11, 40, 10, {(2026, 1): (40, 11)}, {(2026, 1): (40, 10), (2026, 2): (1, 0)})
    by_name = {c.name: c for c in analytics.table_checks(bad)}
    assert not by_name["leader_goals_match_game_scores"].passed
    assert not by_name["quarters_match_leaders"].passed and by_name["quarters_match_leaders"].metadata["mismatches"] == 2
