"""`sidearm-games uncount/recount/counted` against the embedded S3 and a SQLite sidearmdb, and
`sidearm-games materialize`."""

from __future__ import annotations

import uuid

import pytest

from sidearm_assets import settings
from sidearm_assets.local import cli
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.storage.completed_games import plan_counting
from sidearm_assets.storage.final_tables_db import CountedGame
from sidearm_assets.resources import GameStreamStore

GAME = b"0 30:00 205 9 1\n-1 00:00 0 0 0\n"


@pytest.fixture
def env(embedded_stack, tmp_path, monkeypatch):
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    sql_url = f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}"
    for name, value in {**embedded_stack, settings.S3_BUCKET.name: bucket, settings.SQL_URL.name: sql_url}.items():
        monkeypatch.setenv(name, value)
    store = GameStreamStore(
        endpoint_url=embedded_stack[settings.S3_ENDPOINT_URL.name],
        access_key=embedded_stack[settings.S3_ACCESS_KEY.name],
        secret_key=embedded_stack[settings.S3_SECRET_KEY.name],
        bucket=bucket,
    )
    store.ensure_bucket()
    engine = reference_db.make_engine(sql_url)
    reference_db.reset_base_tables(engine)
    etag = store.archive("gamestream", GAME)
    final_tables_db.write_final_tables(
        engine, [dict(p) for p in reference_db.BASE_PLAYERS], [dict(t) for t in reference_db.BASE_TEAMS],
        final_tables_db.utc_now(), counted=[CountedGame("gamestream", etag, GAME, home_teamid=101, away_teamid=205)],
    )
    yield store, engine
    client = store.client()
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
    engine.dispose()


def test_uncount_needs_a_reason_and_a_counted_game(env, capsys):
    with pytest.raises(SystemExit):
        cli.main(["uncount", "gamestream"])  # --reason is required
    assert cli.main(["uncount", "nope", "--reason", "typo"]) == 1
    assert "not counted" in capsys.readouterr().err
    assert sorted(final_tables_db.read_record(env[1])) == ["gamestream"]


def test_uncount_logs_removes_record_and_archive_and_recount_restores(env, capsys):
    store, engine = env
    assert cli.main(["uncount", "gamestream", "--reason", "entered twice", "--by", "alice"]) == 0
    out = capsys.readouterr().out
    assert "uncounted gamestream" in out and "alice" in out
    assert final_tables_db.read_record(engine) == {}
    assert store.list_archive() == {}
    summary = final_tables_db.read_record_summary(engine)
    assert summary.tables_digest != final_tables_db.record_digest(summary.record)  # a run is due
    assert cli.main(["counted"]) == 0
    listed = capsys.readouterr().out
    assert "uncount gamestream" in listed and "by alice: entered twice" in listed
    [entry] = final_tables_db.read_log(engine)
    assert (entry.action, entry.actor, entry.reason, entry.data) == ("uncount", "alice", "entered twice", GAME)
    # The live path filing the same bytes again does not bring it back...
    store.archive("gamestream", GAME)
    summary = final_tables_db.read_record_summary(engine)
    assert plan_counting(summary.record, {g: o.etag for g, o in store.list_archive().items()}, summary.uncounted).pending == ()

    store.delete_archive("gamestream")
    assert cli.main(["recount", "gamestream", "--reason", "it was right", "--by", "bob"]) == 0
    assert "re-archived gamestream" in capsys.readouterr().out
    summary = final_tables_db.read_record_summary(engine)
    archived = {g: o.etag for g, o in store.list_archive().items()}
    assert plan_counting(summary.record, archived, summary.uncounted).pending == ("gamestream",)  # counted again next run
    assert [e.action for e in final_tables_db.read_log(engine)] == ["uncount", "recount"]


def test_materialize_names_the_fix_for_an_unregistered_game_and_runs_dagster_for_a_registered_one(
    tmp_path, monkeypatch, capsys
):
    """`sidearm-games materialize GAME` (issue 11.11): an unregistered game says to run
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
