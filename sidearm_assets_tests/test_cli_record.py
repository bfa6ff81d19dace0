"""`sidearm-games uncount/recount/counted` against the embedded S3 and a SQLite sidearmdb (the
record, the inbox and the facts of storage/final_tables_db.py and record_log.py), and
`sidearm-games materialize`."""

from __future__ import annotations

import pytest

from sidearm_assets import settings
from sidearm_assets.domain.facts import game_facts
from sidearm_assets.local import cli
from sidearm_assets.storage import final_tables_db, record_log, reference_db
from sidearm_assets.storage.completed_games import CountingJob, reconcile_bucket
from sidearm_assets.storage.final_schema import COUNTED, PENDING, UNCOUNTED
from sidearm_assets_tests.final_counting import base_tables, expected_tables, file, states
from sidearm_assets_tests.helpers import bucket_store, remove_bucket

GAME = b"0 30:00 205 9 1\n-1 00:00 0 0 0\n"  # 205 wins 1-0, player 14 scores
G = "gamestream"


@pytest.fixture
def env(embedded_stack, tmp_path, monkeypatch):
    """A bucket and a sidearmdb where the live path filed and archived GAME and a run counted it."""
    store = bucket_store(embedded_stack, "cli")
    sql_url = f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}"
    for name, value in {**embedded_stack, settings.S3_BUCKET.name: store.bucket, settings.SQL_URL.name: sql_url}.items():
        monkeypatch.setenv(name, value)
    engine = reference_db.make_engine(sql_url)
    reference_db.reset_base_tables(engine)
    store.archive(G, GAME)
    assert file(engine, {G: GAME}) == [G]
    report = CountingJob(engine, game_facts, run_id="run-1").run()
    assert report.written.recorded == (G,)
    assert final_tables_db.read_final_tables(engine) == expected_tables(engine, {G: GAME}) != base_tables(engine)
    yield store, engine
    remove_bucket(store)
    engine.dispose()


def test_counted_lists_the_record(env, capsys):
    assert cli.main(["counted"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{G}\tetag {final_tables_db.digest_of(GAME)}\t") and "run run-1" in line


def test_uncount_needs_a_reason_and_a_counted_game(env, capsys):
    with pytest.raises(SystemExit):
        cli.main(["uncount", G])  # --reason is required
    assert cli.main(["uncount", "nope", "--reason", "typo"]) == 1
    assert "not counted" in capsys.readouterr().err
    assert cli.main(["recount", G, "--reason", "nothing to undo"]) == 1
    assert "no uncount" in capsys.readouterr().err
    assert sorted(final_tables_db.read_record(env[1])) == [G] and record_log.read_log(env[1]) == []


def test_uncount_logs_removes_record_and_archive_and_recount_restores(env, capsys):
    store, engine = env
    counted_tables = final_tables_db.read_final_tables(engine)
    assert cli.main(["uncount", G, "--reason", "entered twice", "--by", "alice"]) == 0
    out = capsys.readouterr().out
    assert f"uncounted {G}" in out and "alice" in out
    assert final_tables_db.read_record(engine) == {}
    assert store.list_archive() == {}
    assert states(engine) == {G: (final_tables_db.digest_of(GAME), UNCOUNTED)}
    assert final_tables_db.read_inbox(engine).stale  # a run is due
    assert cli.main(["counted"]) == 0
    listed = capsys.readouterr().out
    assert f"uncount {G}" in listed and "by alice: entered twice" in listed
    [entry] = record_log.read_log(engine)
    assert (entry.action, entry.actor, entry.reason, entry.data) == ("uncount", "alice", "entered twice", GAME)

    # The live path filing and archiving the same bytes again does not bring it back...
    store.archive(G, GAME)
    assert file(engine, {G: GAME}) == []
    assert reconcile_bucket(store, engine).filed_archive == []
    assert states(engine)[G][1] == UNCOUNTED
    # ... and the next run rebuilds the tables without it.
    report = CountingJob(engine, game_facts, run_id="run-2").run()
    assert report.games == [] and report.written.completed_games == 0
    assert final_tables_db.read_final_tables(engine) == base_tables(engine)
    assert not final_tables_db.read_inbox(engine).stale

    store.delete_archive(G)
    assert cli.main(["recount", G, "--reason", "it was right", "--by", "bob"]) == 0
    out = capsys.readouterr().out
    assert f"re-archived {G}" in out and f"recounted {G}" in out
    assert store.read_archive(G)[0] == GAME
    assert states(engine) == {G: (final_tables_db.digest_of(GAME), PENDING)}  # counted again next run
    assert [e.action for e in record_log.read_log(engine)] == ["uncount", "recount"]
    report = CountingJob(engine, game_facts, run_id="run-3").run()
    assert report.written.recorded == (G,)
    assert final_tables_db.read_final_tables(engine) == counted_tables
    assert states(engine)[G][1] == COUNTED


def test_recount_leaves_an_archive_that_is_there_alone(env, capsys):
    store, engine = env
    assert cli.main(["uncount", G, "--reason", "entered twice"]) == 0
    store.archive(G, GAME)
    capsys.readouterr()
    assert cli.main(["recount", G, "--reason", "undo"]) == 0
    assert "re-archived" not in capsys.readouterr().out
    assert states(engine)[G][1] == PENDING


def test_materialize_names_the_fix_for_an_unregistered_game_and_runs_dagster_for_a_registered_one(
    tmp_path, monkeypatch, capsys
):
    """`sidearm-games materialize GAME`: an unregistered game says to run
    `sidearm-games add GAME`; a registered one runs `dagster asset materialize` of its partition."""
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert cli.main(["materialize", "pickup"]) == 1
    assert "register it first: sidearm-games add pickup" in capsys.readouterr().err

    ran = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert cli.main(["add", "pickup"]) == 0
    assert cli.main(["materialize", "pickup"]) == 0
    dagster = str(Path(sys.executable).with_name("dagster"))
    assert ran == [[dagster, "asset", "materialize", "-m", "sidearm_assets", "--partition", "pickup",
                    "--select", "raw_gamestream,reference_players,reference_teams,boxscore_doc"]]
