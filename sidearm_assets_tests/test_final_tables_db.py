"""The final-tables path in sidearmdb: the completion inbox, counting games as per-game facts with
the record in one transaction, the set-based rebuild of players2/teams2, and the logged uncount and
recount; on SQLite and on the real PostgreSQL server, and compiled for SQL Server."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, event, inspect, select, text
from sqlalchemy.dialects import mssql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from gamestream import league as lg
from sidearm_assets.domain.facts import GameFacts, PlayerFact, game_facts, totals_of
from sidearm_assets.storage import final_schema, final_tables_db, record_log, reference_db
from sidearm_assets.storage.completed_games import CountingJob
from sidearm_assets.storage.final_schema import COUNTED, PENDING, UNCOUNTABLE, UNCOUNTED, players2, teams2
from sidearm_assets.storage.final_tables_db import (
    Completion,
    Uncountable,
    digest_of,
    drop_final_tables,
    read_final_tables,
    read_inbox,
    read_record,
    read_state,
    record_digest,
)
from sidearm_assets_tests.final_counting import (
    league_engine,
    base_tables,
    count,
    counted_game,
    expected_tables,
    facts_of,
    file,
    file_and_count,
    states,
    stored_facts,
    without_unknown,
)

A1 = b"0 10:00 101 6 1\n1 09:00 205 9 0\n-1 00:00 0 0 0\n"  # 101 wins 1-0: player 1 scores, 14 shoots
A2 = b"0 10:00 205 9 1\n1 09:00 205 4 1\n2 08:00 101 12 0\n-1 00:00 0 0 0\n"  # corrected: 205 wins 2-0
A3 = b"0 10:00 101 22 1\n-1 00:00 0 0 0\n"  # corrected again: 101 wins 1-0, player 3
LEAGUE = lg.make_league(6, seed=5)
SEASON = {g.game_id: g.final_bytes for g in LEAGUE.games}
G = "gamestream"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    yield from league_engine(request, tmp_path, LEAGUE)


# --- the inbox ---------------------------------------------------------------------------------


def test_a_new_version_is_pending_and_filing_it_twice_changes_nothing(engine):
    assert file(engine, {G: A1}, "2026-01-01T00:00:00.000000Z") == [G]
    [row] = read_inbox(engine, with_data=True).waiting
    assert (row.game_id, row.etag, row.state, row.data, row.filed_at) == (G, digest_of(A1), PENDING, A1, "2026-01-01T00:00:00.000000Z")
    assert read_inbox(engine).waiting[0].data is None  # the sensor's look carries no bytes
    assert file(engine, {G: A1}, "2026-01-01T00:00:09.000000Z") == []
    [again] = read_inbox(engine).waiting
    assert again.filed_at == "2026-01-01T00:00:00.000000Z"  # untouched, not re-filed
    # Two versions of one game in one call: the last one is filed.
    final_tables_db.file_completions(engine, [Completion(G, A2), Completion(G, A3)])
    assert states(engine) == {G: (digest_of(A3), PENDING)}


def test_the_counted_version_filed_again_stays_counted_and_a_new_version_is_pending(engine):
    file_and_count(engine, {G: A1})
    assert file(engine, {G: A1}) == [] and states(engine) == {G: (digest_of(A1), COUNTED)}
    assert file(engine, {G: A2}) == [G] and states(engine) == {G: (digest_of(A2), PENDING)}
    # The live path publishes the counted bytes again (a replay): nothing is left to count.
    assert file(engine, {G: A1}) == [] and states(engine) == {G: (digest_of(A1), COUNTED)}
    assert read_inbox(engine).waiting == []


def test_an_uncounted_version_stays_uncounted_and_a_new_version_is_pending(engine):
    file_and_count(engine, {G: A1})
    record_log.uncount(engine, G, "entered twice", "alice")
    assert states(engine) == {G: (digest_of(A1), UNCOUNTED)}
    assert file(engine, {G: A1}) == [] and states(engine) == {G: (digest_of(A1), UNCOUNTED)}
    assert file(engine, {G: A2}) == [G] and states(engine) == {G: (digest_of(A2), PENDING)}
    assert file(engine, {G: A1}) == [] and states(engine) == {G: (digest_of(A1), UNCOUNTED)}
    assert read_inbox(engine).waiting == []


# --- counting ----------------------------------------------------------------------------------


def test_tables_have_the_columns_of_players_and_teams_and_appear_with_the_first_count(engine):
    file(engine, {G: A1})
    assert read_final_tables(engine) is None and not inspect(engine).has_table("players2")
    count(engine, {G: A1})
    insp = inspect(engine)
    for base, final in (("players", "players2"), ("teams", "teams2")):
        cols = [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(base)]
        assert [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(final)] == cols
        assert insp.get_pk_constraint(final)["constrained_columns"] == ["id"]
    fks = insp.get_foreign_keys("players2")
    assert [(fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) for fk in fks] == [
        (["teamid"], "teams2", ["id"])
    ]


def test_counting_writes_facts_record_inbox_and_the_rebuilt_tables_together(engine):
    streams = {G: A1, **SEASON}
    assert sorted(file(engine, streams)) == sorted(streams)
    result = count(engine, streams, run_id="r1")
    assert result.recorded == tuple(sorted(streams)) and result.deferred == ()
    assert read_final_tables(engine) == expected_tables(engine, streams)
    assert (result.players, result.teams) == tuple(len(t) for t in expected_tables(engine, streams))
    etags = {g: digest_of(d) for g, d in streams.items()}
    assert result.completed_games == len(streams) and result.digest == record_digest(etags)
    state = read_state(engine)
    assert (state["completed_games"], state["games_digest"], state["run_id"], state["stale"]) == (len(streams), record_digest(etags), "r1", 0)
    assert {g: s for g, (_, s) in states(engine).items()} == {g: COUNTED for g in streams}
    assert read_inbox(engine).waiting == [] and read_inbox(engine).counted == len(streams)
    record = read_record(engine)
    assert {g: (r.etag, r.data, r.run_id) for g, r in record.items()} == {g: (etags[g], streams[g], "r1") for g in streams}
    games = [counted_game(engine, g, d)[0] for g, d in streams.items()]
    assert stored_facts(engine) == without_unknown(facts_of(engine, games))
    assert final_tables_db.facts_versions(engine) == (etags, etags)
    season = final_tables_db.read_season_facts(engine)
    totals = totals_of(facts_of(engine, games))
    assert (season.player_totals, season.team_totals, season.games, season.goals) == (
        totals.player_totals, totals.team_totals, len(streams), totals.goals)


def test_counting_the_same_versions_again_counts_them_once(engine):
    """A run requested twice, or retried after it wrote: same tables, the record untouched."""
    streams = {G: A1, **SEASON}
    file_and_count(engine, streams, run_id="r1")
    first = read_record(engine)
    again = count(engine, streams, run_id="r2")
    assert again.recorded == () and again.completed_games == len(streams)
    assert read_final_tables(engine) == expected_tables(engine, streams)
    assert {g: (r.counted_at, r.run_id) for g, r in read_record(engine).items()} == {
        g: (r.counted_at, r.run_id) for g, r in first.items()}


def test_a_correction_replaces_the_games_facts_whole(engine):
    other = dict(list(SEASON.items())[:2])
    file_and_count(engine, {G: A1, **other}, run_id="r1")
    others_facts = stored_facts(engine, set(other))
    assert file(engine, {G: A2}) == [G]
    result = count(engine, {G: A2}, run_id="r2")
    assert result.recorded == (G,)
    g2 = counted_game(engine, G, A2)[0]
    # Player 1 scored in the first version only: no row of it is left for the game.
    assert stored_facts(engine, {G}) == without_unknown(facts_of(engine, [g2]))
    assert 1 not in {f.player_id for f in stored_facts(engine, {G}).players}
    assert stored_facts(engine, set(other)) == others_facts
    assert read_final_tables(engine) == expected_tables(engine, {G: A2, **other})
    record = read_record(engine)
    assert (record[G].etag, record[G].data, record[G].run_id) == (digest_of(A2), A2, "r2")
    assert {record[g].run_id for g in other} == {"r1"}


def test_a_version_replaced_while_the_run_worked_is_left_for_the_next_run(engine):
    file_and_count(engine, {G: A1})
    before = read_final_tables(engine)
    file(engine, {G: A2})  # the run reads A2 ...
    file(engine, {G: A3})  # ... and A3 is filed before it writes
    result = count(engine, {G: A2})
    assert result.deferred == (G,) and result.recorded == ()
    assert read_final_tables(engine) == before  # A1 still counted, whole
    assert read_record(engine)[G].etag == digest_of(A1)
    assert stored_facts(engine, {G}) == without_unknown(facts_of(engine, [counted_game(engine, G, A1)[0]]))
    assert states(engine) == {G: (digest_of(A3), PENDING)}
    assert count(engine, {G: A3}).recorded == (G,)
    assert read_final_tables(engine) == expected_tables(engine, {G: A3})


def test_a_game_never_counted_and_replaced_meanwhile_is_not_written(engine):
    file(engine, {G: A1, **SEASON})
    file(engine, {G: A2})
    result = count(engine, {G: A1, **SEASON})
    assert result.deferred == (G,) and G not in read_record(engine)
    assert stored_facts(engine, {G}) == GameFacts([], [], [])
    assert read_final_tables(engine) == expected_tables(engine, SEASON)
    assert states(engine)[G] == (digest_of(A2), PENDING)


def test_an_older_version_never_overwrites_a_newer_one_counted_meanwhile(engine):
    """Two runs overlap (a manual run beside the sensor's): the slow one read A1, the fast one
    counted A2. The slow run's write must leave A2 counted."""
    file(engine, {G: A1})
    file_and_count(engine, {G: A2}, run_id="fast")
    result = count(engine, {G: A1}, run_id="slow")
    assert result.deferred == (G,)
    assert read_record(engine)[G].etag == digest_of(A2)
    assert read_final_tables(engine) == expected_tables(engine, {G: A2})


def test_a_game_uncounted_while_the_run_worked_is_not_counted_back(engine):
    file_and_count(engine, {G: A1, **SEASON})
    record_log.uncount(engine, G, "entered twice", "alice")
    result = count(engine, {G: A1, **SEASON})  # the run read A1 before the uncount
    assert result.deferred == (G,) and G not in read_record(engine)
    assert stored_facts(engine, {G}) == GameFacts([], [], [])
    assert read_final_tables(engine) == expected_tables(engine, SEASON)
    assert states(engine)[G] == (digest_of(A1), UNCOUNTED)
    assert not read_state(engine)["stale"]


def test_a_game_that_cannot_be_counted_is_marked_with_the_reason_and_never_blocks_others(engine):
    file(engine, {"nowhere": A1, G: A1})
    result = count(engine, {G: A1}, uncountable=[Uncountable("nowhere", digest_of(A1), "no row in the games table" + "!" * 2000)])
    assert result.recorded == (G,)
    [row] = read_inbox(engine).waiting
    assert (row.game_id, row.state, row.checked_at) == ("nowhere", UNCOUNTABLE, result.written_at)
    assert row.problem.startswith("no row in the games table") and len(row.problem) == 1000
    # A verdict about a version that is no longer the one filed, or about a counted one, marks nothing.
    file(engine, {"nowhere": A2})
    count(engine, {}, uncountable=[Uncountable("nowhere", digest_of(A1), "old"), Uncountable(G, digest_of(A1), "x")])
    assert states(engine) == {"nowhere": (digest_of(A2), PENDING), G: (digest_of(A1), COUNTED)}
    # Filing a new version clears the verdict.
    count(engine, {}, uncountable=[Uncountable("nowhere", digest_of(A2), "still no row")])
    file(engine, {"nowhere": A3})
    [row] = read_inbox(engine).waiting
    assert (row.state, row.problem, row.checked_at) == (PENDING, None, None)


def test_a_run_with_several_games_that_cannot_be_counted_marks_them_all_and_counts_the_rest(engine):
    """Two completed games with no schedule row and one scheduled game in one run."""
    file(engine, {"unscheduled-1": A1, "unscheduled-2": A2, G: A1})
    report = CountingJob(engine, game_facts, run_id="r").run()
    assert sorted(u.game_id for u in report.uncountable) == ["unscheduled-1", "unscheduled-2"]
    assert report.written.recorded == (G,)
    assert {r.game_id: r.state for r in read_inbox(engine).waiting} == {"unscheduled-1": UNCOUNTABLE, "unscheduled-2": UNCOUNTABLE}
    assert read_final_tables(engine) == expected_tables(engine, {G: A1})


def test_the_set_based_rebuild_equals_season_totals_of_the_counted_games(engine):
    """Counted in three runs, one of them a correction: the tables are always base + the counted
    versions, as domain.final.season_totals computes them from scratch."""
    games = list(SEASON.items())
    counted: dict[str, bytes] = {}
    for batch in (dict(games[:3]), {G: A1, **dict(games[3:])}, {G: A2}):
        file_and_count(engine, batch)
        counted.update(batch)
        assert read_final_tables(engine) == expected_tables(engine, counted)
    assert read_final_tables(engine) != base_tables(engine)


def test_a_counted_game_without_facts_gets_them_from_the_record_bytes(engine):
    """A record written before facts existed: the next run computes them from the logged bytes."""
    file_and_count(engine, {G: A1, **SEASON})
    some = sorted(SEASON)[:2]
    with engine.begin() as conn:
        for table in (final_schema.player_game_facts, final_schema.team_game_facts):
            conn.execute(delete(table).where(table.c.game_id.in_(some)))
    assert final_tables_db.games_without_facts(engine) == some
    report = CountingJob(engine, game_facts, run_id="refact").run()
    assert report.refacted == some and report.written.recorded == ()
    assert final_tables_db.games_without_facts(engine) == []
    assert read_final_tables(engine) == expected_tables(engine, {G: A1, **SEASON})


# --- transactions --------------------------------------------------------------------------------


def test_a_reader_during_the_write_sees_the_old_tables(engine):
    """Right before the new players2 rows are inserted (both tables already emptied and teams2
    refilled inside the transaction), another connection reads both tables: the old pair, whole."""
    file_and_count(engine, {G: A1})
    old = read_final_tables(engine)
    reader = reference_db.make_engine(engine.url.render_as_string(hide_password=False))
    seen = []

    def before(conn, clauseelement, multiparams, params, execution_options):
        if getattr(clauseelement, "table", None) is players2 and clauseelement.is_insert:
            seen.append(read_final_tables(reader))

    event.listen(engine, "before_execute", before)
    try:
        file(engine, {G: A2, **SEASON})
        count(engine, {G: A2, **SEASON})
    finally:
        event.remove(engine, "before_execute", before)
        reader.dispose()
    assert seen == [old]
    assert read_final_tables(engine) == expected_tables(engine, {G: A2, **SEASON}) != old


def _bookkeeping(engine):
    return (read_final_tables(engine), read_record(engine), stored_facts(engine), states(engine),
            read_state(engine), final_tables_db.read_season_facts(engine))


def test_a_failed_write_leaves_the_tables_the_record_and_the_inbox_as_they_were(engine):
    file_and_count(engine, {G: A1, **SEASON})
    file(engine, {G: A2})
    before = _bookkeeping(engine)
    g2 = counted_game(engine, G, A2)[0]
    facts = facts_of(engine, [g2])
    broken = GameFacts(facts.players + [facts.players[0]], facts.teams, facts.unknown)  # a duplicate key
    with pytest.raises(IntegrityError):
        count(engine, {G: A2}, facts=broken)
    assert _bookkeeping(engine) == before


def test_a_write_failing_at_its_last_statement_rolls_back_the_rebuilt_teams2(engine):
    file_and_count(engine, {G: A1})
    file(engine, {G: A2})
    before = _bookkeeping(engine)

    def fail(conn, clauseelement, *args):
        if getattr(clauseelement, "table", None) is players2 and clauseelement.is_insert:
            raise RuntimeError("database went away")

    event.listen(engine, "before_execute", fail)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            count(engine, {G: A2})
    finally:
        event.remove(engine, "before_execute", fail)
    assert _bookkeeping(engine) == before


def test_a_failed_first_write_creates_no_table(engine):
    file(engine, {G: A1})
    g1 = counted_game(engine, G, A1)[0]
    facts = facts_of(engine, [g1])
    with pytest.raises(IntegrityError):
        count(engine, {G: A1}, facts=GameFacts(facts.players * 2, facts.teams, []))
    insp = inspect(engine)
    assert not insp.has_table("players2") and not insp.has_table("teams2")
    assert read_final_tables(engine) is None and read_record(engine) == {}
    assert states(engine) == {G: (digest_of(A1), PENDING)}


def _count_at_once(engine, batches: list[dict], wait_before=None) -> list[Exception]:
    """Count each batch in its own thread, all at once; the errors raised."""
    import threading

    errors: list[Exception] = []

    def write(streams, run_id):
        try:
            count(engine, streams, run_id=run_id)
        except Exception as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, f"r{i}")) for i, s in enumerate(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_two_runs_writing_at_once_both_count(engine):
    """Games that end together, counted by two overlapping writers: the state row's lock
    serializes them and the last rebuild holds both."""
    file_and_count(engine, {G: A1})
    a, b = dict(list(SEASON.items())[:3]), dict(list(SEASON.items())[3:])
    file(engine, {**a, **b})
    assert _count_at_once(engine, [a, b]) == []
    assert read_final_tables(engine) == expected_tables(engine, {G: A1, **SEASON})
    assert read_state(engine)["completed_games"] == len(SEASON) + 1


def test_the_first_two_writes_at_once_both_count(postgres_url):
    """The very first writes of a fresh sidearmdb, made to overlap: both UPDATE the missing state
    row (no row, so no lock), then both INSERT it. SQLite serializes whole write transactions, so
    only PostgreSQL (and SQL Server) can interleave them like this."""
    import threading

    engine = reference_db.make_engine(postgres_url)
    drop_final_tables(engine)
    reference_db.reset_base_tables(engine)
    lg.install_league(engine, LEAGUE)
    a, b = dict(list(SEASON.items())[:3]), dict(list(SEASON.items())[3:])
    file(engine, {**a, **b})
    both_updated = threading.Barrier(2, timeout=10)

    def before(conn, clauseelement, *args):
        if getattr(clauseelement, "table", None) is final_schema.final_tables_state and clauseelement.is_insert:
            both_updated.wait()

    event.listen(engine, "before_execute", before)
    try:
        errors = _count_at_once(engine, [a, b])
    finally:
        event.remove(engine, "before_execute", before)
    try:
        assert errors == []
        assert read_final_tables(engine) == expected_tables(engine, SEASON)
    finally:
        drop_final_tables(engine)
        engine.dispose()


def test_base_tables_can_be_reset_while_final_tables_exist(engine):
    """players2 references teams2, not teams: the simulator's reset never trips over final rows."""
    file_and_count(engine, {G: A1})
    before = read_final_tables(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO teams (id, name, conference, wins, losses) VALUES (999, 'x', 'y', 0, 0)"))
    reference_db.reset_base_tables(engine)  # deletes team 999 and every base player
    assert read_final_tables(engine) == before


def test_a_state_table_of_an_earlier_layout_is_replaced(engine):
    """Before the record, final_tables_state held a 4,000-character `games` list and no digest."""
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE final_tables_state (name VARCHAR(50) PRIMARY KEY, generation VARCHAR(40) NOT NULL, "
            "completed_games INTEGER NOT NULL, games VARCHAR(4000), run_id VARCHAR(64), written_at VARCHAR(40))"
        ))
        conn.execute(text("INSERT INTO final_tables_state VALUES ('final', '2026-01-01T00:00:00.000000Z', 1, 'a@1', 'r0', 'x')"))
    file_and_count(engine, {G: A1})
    state = read_state(engine)
    assert "games" not in state and state["games_digest"] == record_digest({G: digest_of(A1)})


def test_the_demo_sees_the_final_tables_once_they_count_the_games_final_version(engine):
    """`scripts/demo.sh` waits on this: the record holds the game as the final object's bytes."""
    from sidearm_assets.local.demo import final_tables_hold

    assert final_tables_hold(engine, G, digest_of(A1)) is None  # nothing written yet
    file_and_count(engine, SEASON)
    assert final_tables_hold(engine, G, digest_of(A1)) is None  # written, but without the game
    file_and_count(engine, {G: A1})
    assert final_tables_hold(engine, G, digest_of(A1))["completed_games"] == len(SEASON) + 1
    assert final_tables_hold(engine, G, digest_of(A2)) is None  # another version of the game: not yet


# --- uncount and recount -----------------------------------------------------------------------


def test_uncount_needs_a_reason_and_a_counted_game(engine):
    file_and_count(engine, {G: A1})
    with pytest.raises(ValueError):
        record_log.uncount(engine, G, "  ", "me")
    with pytest.raises(LookupError):
        record_log.uncount(engine, "nope", "typo", "me")
    with pytest.raises(LookupError):
        record_log.recount(engine, G, "nothing to undo", "me")
    assert sorted(read_record(engine)) == [G] and record_log.read_log(engine) == []


def test_uncount_removes_the_game_whole_at_the_next_run_and_recount_brings_it_back(engine):
    file_and_count(engine, {G: A1, **SEASON})
    counted_before = read_final_tables(engine)
    entry = record_log.uncount(engine, G, "scorer entered the wrong game", "alice")
    assert (entry.game_id, entry.action, entry.etag, entry.actor, entry.data) == (G, "uncount", digest_of(A1), "alice", A1)
    # Record and facts are gone at once; the tables keep their last written pair until a run.
    assert G not in read_record(engine) and stored_facts(engine, {G}) == GameFacts([], [], [])
    assert read_final_tables(engine) == counted_before
    inbox = read_inbox(engine)
    assert inbox.stale and inbox.waiting == [] and read_state(engine)["stale"] == 1
    report = CountingJob(engine, game_facts, run_id="after-uncount").run()
    assert report.stale and report.games == []
    assert read_final_tables(engine) == expected_tables(engine, SEASON)
    assert not read_inbox(engine).stale and read_state(engine)["completed_games"] == len(SEASON)
    log = record_log.read_log(engine)
    assert [(e.game_id, e.action, e.reason, e.actor, e.data) for e in log] == [
        (G, "uncount", "scorer entered the wrong game", "alice", A1)]

    undone = record_log.recount(engine, G, "it was right after all", "bob")
    assert (undone.id, undone.data, undone.etag) == (entry.id, A1, digest_of(A1))
    assert states(engine)[G] == (digest_of(A1), PENDING)
    assert [e.action for e in record_log.read_log(engine)] == ["uncount", "recount"]
    with pytest.raises(LookupError):
        record_log.recount(engine, G, "twice", "bob")
    report = CountingJob(engine, game_facts, run_id="after-recount").run()
    assert [g.game_id for g in report.games] == [G]
    assert read_final_tables(engine) == counted_before


def test_recount_after_a_new_version_was_filed_leaves_the_new_version_to_count(engine):
    file_and_count(engine, {G: A1})
    record_log.uncount(engine, G, "wrong game", "alice")
    file(engine, {G: A2})
    record_log.recount(engine, G, "undo", "bob")
    assert states(engine) == {G: (digest_of(A2), PENDING)}
    CountingJob(engine, game_facts).run()
    assert read_record(engine)[G].etag == digest_of(A2)
    assert read_final_tables(engine) == expected_tables(engine, {G: A2})


def test_recount_of_a_game_the_inbox_lost_files_the_logged_bytes(engine):
    file_and_count(engine, {G: A1})
    record_log.uncount(engine, G, "wrong game", "alice")
    with engine.begin() as conn:
        conn.execute(delete(final_schema.completions))
    record_log.recount(engine, G, "undo", "bob")
    [row] = read_inbox(engine, with_data=True).waiting
    assert (row.game_id, row.etag, row.state, row.data) == (G, digest_of(A1), PENDING, A1)
    CountingJob(engine, game_facts).run()
    assert read_final_tables(engine) == expected_tables(engine, {G: A1})


# --- SQL Server ------------------------------------------------------------------------------------


def test_statements_compile_for_sql_server(tmp_path):
    """Every statement of filing, counting, uncount and recount, captured while it runs on SQLite,
    compiles for SQL Server."""
    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    reference_db.reset_base_tables(engine)
    captured = []
    event.listen(engine, "before_execute", lambda conn, el, *a, **k: captured.append(el))
    file_and_count(engine, {G: A1})
    file_and_count(engine, {G: A2})
    count(engine, {}, uncountable=[Uncountable("x", "e", "p")])
    record_log.uncount(engine, G, "test", "me")
    record_log.recount(engine, G, "test", "me")
    record_log.read_log(engine)
    read_inbox(engine, with_data=True)
    read_record(engine, [G])
    final_tables_db.games_without_facts(engine)
    final_tables_db.read_season_facts(engine)
    final_tables_db.facts_versions(engine)
    dialect = mssql.pyodbc.dialect(paramstyle="qmark")
    compiled = [str(el.compile(dialect=dialect)) for el in captured if hasattr(el, "compile")]
    for start in ("INSERT INTO completions", "UPDATE completions", "INSERT INTO counted_games", "DELETE FROM counted_games",
                  "INSERT INTO player_game_facts", "DELETE FROM team_game_facts", "INSERT INTO uncounted_games",
                  "DELETE FROM players2", "INSERT INTO teams2", "INSERT INTO players2", "UPDATE final_tables_state"):
        assert any(s.startswith(start) for s in compiled), start
    rebuild = next(s for s in compiled if s.startswith("INSERT INTO players2"))
    assert "coalesce" in rebuild and "GROUP BY player_game_facts.player_id" in rebuild
    ddl = {t.name: str(CreateTable(t).compile(dialect=dialect)) for t in (*final_schema.FINAL_TABLES, *final_schema.BOOKKEEPING)}
    assert "data VARBINARY(max) NOT NULL" in ddl["counted_games"] and "data VARBINARY(max) NOT NULL" in ddl["completions"]
    assert "id INTEGER NOT NULL IDENTITY" in ddl["uncounted_games"]
    assert "PRIMARY KEY (game_id, player_id)" in ddl["player_game_facts"]
    assert "FOREIGN KEY(teamid) REFERENCES teams2 (id)" in ddl["players2"]
    assert "number VARCHAR(3)" in ddl["players2"] and "name VARCHAR(50)" in ddl["teams2"]
    engine.dispose()


def test_players_facts_hold_only_players_credited_in_the_game(engine):
    """A roster player without a shot in the game has no fact row: a season's facts grow with
    the shots, not with the rosters."""
    file_and_count(engine, {G: A1})
    assert stored_facts(engine).players == [PlayerFact(G, 1, 101, 1, 1), PlayerFact(G, 14, 205, 1, 0)]
