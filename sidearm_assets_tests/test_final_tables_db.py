"""players2/teams2 in sidearmdb: schema, one atomic write, the stale-write guard; on SQLite and on
the real PostgreSQL server, and compiled for SQL Server."""

from __future__ import annotations

import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.dialects import mssql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.storage.final_tables_db import (
    CountedGame,
    RecordedGameDropped,
    drop_final_tables,
    players2,
    read_final_tables,
    read_log,
    read_record,
    read_record_summary,
    read_state,
    record_digest,
    recount,
    teams2,
    uncount,
    write_final_tables,
)

BASE_PLAYERS = [dict(p) for p in reference_db.BASE_PLAYERS]
BASE_TEAMS = [dict(t) for t in reference_db.BASE_TEAMS]


def _game(game_id: str, etag: str, data: bytes = b"0 10:00 101 6 1\n-1 00:00 0 0 0\n") -> CountedGame:
    return CountedGame(game_id, etag, data, version=f"{etag}@t", over_reason="game-over line", home_teamid=101, away_teamid=205)


def _bumped(rows, column, by):
    return [{**r, column: r[column] + by} for r in rows]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    eng = reference_db.make_engine(url)
    drop_final_tables(eng)
    reference_db.reset_base_tables(eng)
    yield eng
    drop_final_tables(eng)
    eng.dispose()


def test_same_columns_as_players_and_teams(engine):
    write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z")
    insp = inspect(engine)
    for base, final in (("players", "players2"), ("teams", "teams2")):
        cols = [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(base)]
        assert [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(final)] == cols
        assert insp.get_pk_constraint(final)["constrained_columns"] == ["id"]
    fks = insp.get_foreign_keys("players2")
    assert [(fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) for fk in fks] == [
        (["teamid"], "teams2", ["id"])
    ]


def test_write_replaces_both_tables(engine):
    first = write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z", counted=[_game("a", "1")])
    assert first.written and (first.players, first.teams) == (20, 2)
    assert read_final_tables(engine) == (BASE_PLAYERS, BASE_TEAMS)
    players, teams = _bumped(BASE_PLAYERS, "goals", 2), _bumped(BASE_TEAMS, "wins", 1)
    second = write_final_tables(
        engine, players, teams, "2026-01-01T00:00:01.000000Z", counted=[_game("a", "1"), _game("b", "2")], run_id="r2"
    )
    assert second.written and second.recorded == ("b",)  # "a" was recorded at that version already
    assert read_final_tables(engine) == (players, teams)  # replaced, not appended
    state = read_state(engine)
    assert (state["generation"], state["completed_games"], state["games_digest"], state["run_id"]) == (
        "2026-01-01T00:00:01.000000Z", 2, record_digest({"a": "1", "b": "2"}), "r2",
    )


def test_an_older_computation_never_overwrites_a_newer_one(engine):
    newer = _bumped(BASE_PLAYERS, "shots", 5)
    assert write_final_tables(engine, newer, BASE_TEAMS, "2026-01-01T00:00:05.000000Z").written
    stale = write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:04.000000Z")
    assert not stale.written
    assert stale.current_generation == "2026-01-01T00:00:05.000000Z"
    assert read_final_tables(engine)[0] == newer
    # The same generation again (a retried run) is written: same inputs, same result.
    assert write_final_tables(engine, newer, BASE_TEAMS, "2026-01-01T00:00:05.000000Z").written


def test_a_failed_write_leaves_the_previous_tables_whole(engine):
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z").written
    teams = _bumped(BASE_TEAMS, "wins", 1)
    broken_players = _bumped(BASE_PLAYERS, "goals", 1) + [dict(BASE_PLAYERS[0])]  # duplicate id 1
    with pytest.raises(IntegrityError):
        write_final_tables(engine, broken_players, teams, "2026-01-01T00:00:01.000000Z")
    # teams2 had been replaced inside the transaction before players2 failed: rolled back too.
    assert read_final_tables(engine) == (BASE_PLAYERS, BASE_TEAMS)
    assert read_state(engine)["generation"] == "2026-01-01T00:00:00.000000Z"


def test_a_failed_first_write_creates_no_table(engine):
    broken_players = BASE_PLAYERS + [dict(BASE_PLAYERS[0])]
    with pytest.raises(IntegrityError):
        write_final_tables(engine, broken_players, BASE_TEAMS, "2026-01-01T00:00:00.000000Z")
    insp = inspect(engine)
    assert not insp.has_table("players2") and not insp.has_table("teams2")
    assert read_final_tables(engine) is None


def test_a_reader_during_the_write_sees_the_old_tables(engine):
    """Right before the new players2 rows are inserted (old rows already deleted inside the
    transaction), another connection reads both tables: it sees the old pair, whole."""
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z").written
    reader = reference_db.make_engine(engine.url.render_as_string(hide_password=False))
    seen = []

    def before(conn, clauseelement, multiparams, params, execution_options):
        if getattr(clauseelement, "table", None) is players2 and clauseelement.is_insert:
            with reader.connect() as rc:
                seen.append(
                    (
                        rc.execute(select(players2).order_by(players2.c.id)).mappings().all(),
                        rc.execute(select(teams2).order_by(teams2.c.id)).mappings().all(),
                    )
                )

    event.listen(engine, "before_execute", before)
    try:
        new_players, new_teams = _bumped(BASE_PLAYERS, "goals", 3), _bumped(BASE_TEAMS, "losses", 1)
        assert write_final_tables(engine, new_players, new_teams, "2026-01-01T00:00:01.000000Z").written
    finally:
        event.remove(engine, "before_execute", before)
        reader.dispose()
    assert len(seen) == 1
    players_seen, teams_seen = seen[0]
    assert [dict(r) for r in players_seen] == BASE_PLAYERS
    assert [dict(r) for r in teams_seen] == BASE_TEAMS
    assert read_final_tables(engine) == (new_players, new_teams)


def test_base_tables_can_be_reset_while_final_tables_exist(engine):
    """players2 references teams2, not teams: the simulator's reset never trips over final rows."""
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z").written
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO teams (id, name, conference, wins, losses) VALUES (999, 'x', 'y', 0, 0)"))
    reference_db.reset_base_tables(engine)  # deletes team 999 and every player
    assert read_final_tables(engine) == (BASE_PLAYERS, BASE_TEAMS)


def test_statements_compile_for_sql_server(tmp_path):
    """Every statement of a write, captured while it runs on SQLite, compiles for SQL Server."""
    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    reference_db.reset_base_tables(engine)
    captured = []
    event.listen(engine, "before_execute", lambda conn, el, *a, **k: captured.append(el))
    write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z")
    dialect = mssql.pyodbc.dialect(paramstyle="qmark")
    write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:01.000000Z", counted=[_game("a", "1")])
    write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:02.000000Z", counted=[_game("a", "2")])
    uncount(engine, "a", "test", "me")
    recount(engine, "a", "test", "me")
    read_record(engine)
    read_record_summary(engine)
    compiled = [str(el.compile(dialect=dialect)) for el in captured if hasattr(el, "compile")]
    assert any(s.startswith("UPDATE final_tables_state") and "generation <= ?" in s for s in compiled)
    assert any(s.startswith("INSERT INTO counted_games") for s in compiled)
    assert any(s.startswith("DELETE FROM counted_games") for s in compiled)
    assert any(s.startswith("INSERT INTO uncounted_games") for s in compiled)
    assert any(s.startswith("DELETE FROM players2") for s in compiled)
    assert any(s.startswith("INSERT INTO teams2") for s in compiled)
    ddl = {
        t.name: str(CreateTable(t).compile(dialect=dialect))
        for t in (players2, teams2, final_tables_db.final_tables_state, *final_tables_db.RECORD_TABLES)
    }
    assert "data VARBINARY(max) NOT NULL" in ddl["counted_games"]
    assert "id INTEGER NOT NULL IDENTITY" in ddl["uncounted_games"]
    assert "FOREIGN KEY(teamid) REFERENCES teams2 (id)" in ddl["players2"]
    assert "number VARCHAR(3)" in ddl["players2"] and "name VARCHAR(50)" in ddl["teams2"]


def test_the_record_follows_the_tables_in_the_same_transaction(engine):
    a1, b1 = _game("a", "1"), _game("b", "1", b"0 10:00 205 9 1\n-1 00:00 0 0 0\n")
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z", counted=[a1, b1], run_id="r1").written
    record = read_record(engine)
    assert sorted(record) == ["a", "b"] and record["b"].data == b1.data and record["a"].run_id == "r1"
    first_counted_at = record["a"].counted_at
    # A correction of "a" (a new version) replaces its row; "b" keeps its row untouched.
    a2 = _game("a", "2", b"0 10:00 101 6 0\n-1 00:00 0 0 0\n")
    result = write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:01.000000Z", counted=[a2, b1], run_id="r2")
    assert result.recorded == ("a",)
    record = read_record(engine)
    assert (record["a"].etag, record["a"].data, record["a"].run_id) == ("2", a2.data, "r2")
    assert record["b"].run_id == "r1" and record["a"].counted_at > first_counted_at
    summary = read_record_summary(engine)
    assert summary.record == {"a": "2", "b": "1"} and summary.tables_digest == record_digest(summary.record)


def test_a_write_that_drops_a_recorded_game_is_refused_and_changes_nothing(engine):
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z", counted=[_game("a", "1"), _game("b", "1")]).written
    with pytest.raises(RecordedGameDropped, match=r"\['b'\]"):
        write_final_tables(engine, _bumped(BASE_PLAYERS, "goals", 1), BASE_TEAMS, "2026-01-01T00:00:01.000000Z", counted=[_game("a", "1")])
    assert read_final_tables(engine) == (BASE_PLAYERS, BASE_TEAMS)
    assert sorted(read_record(engine)) == ["a", "b"]
    assert read_state(engine)["generation"] == "2026-01-01T00:00:00.000000Z"


def test_uncount_is_logged_refuses_older_runs_and_recount_undoes_it(engine):
    b = _game("b", "7", b"0 10:00 205 9 1\n-1 00:00 0 0 0\n")
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z", counted=[_game("a", "1"), b]).written
    with pytest.raises(ValueError):
        uncount(engine, "b", "  ", "me")
    with pytest.raises(LookupError):
        uncount(engine, "nope", "typo", "me")
    entry = uncount(engine, "b", "scorer entered the wrong game", "alice")
    assert (entry.game_id, entry.etag, entry.actor, entry.data) == ("b", "7", "alice", b.data)
    summary = read_record_summary(engine)
    assert summary.record == {"a": "1"} and summary.uncounted == {"b": "7"}
    assert summary.tables_digest != record_digest(summary.record)  # the tables still count b: a run is due
    # A run that read the record before the uncount cannot write b back.
    stale = write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:01.000000Z", counted=[_game("a", "1"), b])
    assert not stale.written and sorted(read_record(engine)) == ["a"]
    log = read_log(engine)
    assert [(e.game_id, e.action, e.reason, e.actor) for e in log] == [("b", "uncount", "scorer entered the wrong game", "alice")]

    undone = recount(engine, "b", "it was right after all", "bob")
    assert undone.data == b.data and undone.etag == "7"
    assert read_record_summary(engine).uncounted == {}
    assert [e.action for e in read_log(engine)] == ["uncount", "recount"]
    with pytest.raises(LookupError):
        recount(engine, "b", "twice", "bob")


def test_a_state_table_of_the_earlier_layout_is_replaced_by_the_next_write(engine):
    """Before the record, final_tables_state held a 4,000-character `games` list and no digest."""
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE final_tables_state (name VARCHAR(50) PRIMARY KEY, generation VARCHAR(40) NOT NULL, "
            "completed_games INTEGER NOT NULL, games VARCHAR(4000), run_id VARCHAR(64), written_at VARCHAR(40))"
        ))
        conn.execute(text(
            "INSERT INTO final_tables_state VALUES ('final', '2026-01-01T00:00:00.000000Z', 1, 'a@1', 'r0', 'x')"
        ))
    assert write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:01.000000Z", counted=[_game("a", "1")]).written
    state = read_state(engine)
    assert "games" not in state and state["games_digest"] == record_digest({"a": "1"})


def test_the_demo_sees_the_final_tables_once_they_count_the_games_final_version(engine):
    """`scripts/demo.sh` waits on this: the record holds the game as the final object's bytes (it
    once looked for a `games` column the state no longer has and waited forever; then for a write
    after the game, which a second demo, replaying the same bytes, never causes)."""
    from sidearm_assets.local.demo import final_tables_hold

    assert final_tables_hold(engine, "gamestream", "2") is None  # nothing written yet
    write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:00.000000Z", counted=[_game("other", "1")])
    assert final_tables_hold(engine, "gamestream", "2") is None  # written, but without the game
    write_final_tables(engine, BASE_PLAYERS, BASE_TEAMS, "2026-01-01T00:00:01.000000Z", counted=[_game("other", "1"), _game("gamestream", "2")])
    assert final_tables_hold(engine, "gamestream", "2")["completed_games"] == 2
    assert final_tables_hold(engine, "gamestream", "3") is None  # another version of the game: not yet
