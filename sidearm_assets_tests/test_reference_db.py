"""The reference database resets identically on SQLite and on the real PostgreSQL server (SPEC 3, 4)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select, update

from sidearm_assets.storage import reference_db
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS, games, players, teams


def contents(engine) -> dict[str, list[dict]]:
    return {t.name: reference_db.read_rows(engine, t) for t in (teams, players, games)}


BASE = {
    "teams": [dict(t) for t in BASE_TEAMS],
    "players": [dict(p) for p in BASE_PLAYERS],
    "games": [dict(g) for g in BASE_GAMES],
}


def test_reset_gives_identical_contents_on_sqlite_and_postgresql(sqlite_engine, postgres_engine):
    sqlite_summary = reference_db.reset_base_tables(sqlite_engine)
    postgres_summary = reference_db.reset_base_tables(postgres_engine)

    assert sqlite_summary == postgres_summary == reference_db.ResetSummary(teams=2, players=20, games_added=1)
    assert contents(sqlite_engine) == contents(postgres_engine) == BASE
    assert postgres_engine.dialect.name == "postgresql"


def test_base_data_is_the_authored_roster(sqlite_engine):
    reference_db.reset_base_tables(sqlite_engine)
    rows = contents(sqlite_engine)

    assert [t["id"] for t in rows["teams"]] == [101, 205]
    assert {p["teamid"] for p in rows["players"]} == {101, 205}
    assert sum(p["teamid"] == 101 for p in rows["players"]) == 10
    assert rows["games"] == [{"game_id": "gamestream", "home_teamid": 101, "away_teamid": 205}]
    # Jerseys repeat across teams, never within one.
    for team in (101, 205):
        numbers = [p["number"] for p in rows["players"] if p["teamid"] == team]
        assert len(numbers) == len(set(numbers))


def test_reset_twice_is_harmless_and_undoes_changes(engine):
    first = reference_db.reset_base_tables(engine)
    with engine.begin() as conn:
        conn.execute(update(players).where(players.c.id == 1).values(shots=999, goals=500))
        conn.execute(update(teams).where(teams.c.id == 205).values(wins=0, losses=30))
        conn.execute(delete(players).where(players.c.id == 20))
        conn.execute(insert(players).values(id=99, name="Walk On", number="99", shots=1, goals=1, teamid=101))

    second = reference_db.reset_base_tables(engine)
    third = reference_db.reset_base_tables(engine)

    assert first.games_added == 1
    assert second.games_added == third.games_added == 0
    assert contents(engine) == BASE


def test_reset_leaves_other_tables_and_schedule_rows_alone(engine):
    reference_db.reset_base_tables(engine)
    notes = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String(100)))
    notes.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(teams).values(id=300, name="Dunmore Dukes", conference="Ind", wins=1, losses=1))
        conn.execute(insert(teams).values(id=400, name="Unscheduled", conference="Ind", wins=0, losses=0))
        conn.execute(insert(games).values(game_id="dukes-hawks", home_teamid=300, away_teamid=101))
        conn.execute(insert(notes), [{"id": 1, "body": "keep me"}, {"id": 2, "body": "me too"}])

    reference_db.reset_base_tables(engine)

    with engine.connect() as conn:
        assert conn.execute(select(notes.c.body).order_by(notes.c.id)).scalars().all() == ["keep me", "me too"]
    rows = contents(engine)
    assert rows["games"] == [
        {"game_id": "dukes-hawks", "home_teamid": 300, "away_teamid": 101},
        {"game_id": "gamestream", "home_teamid": 101, "away_teamid": 205},
    ]
    # A team a schedule row points at stays (the row stays valid); an unreferenced extra team goes.
    assert [t["id"] for t in rows["teams"]] == [101, 205, 300]
    assert rows["players"] == BASE["players"]


def test_ddl_and_reset_statements_compile_for_sql_server():
    from sqlalchemy.dialects import mssql
    from sqlalchemy.schema import CreateTable

    dialect = mssql.dialect()
    ddl = {t.name: str(CreateTable(t).compile(dialect=dialect)) for t in (teams, players, games)}

    assert "CREATE TABLE teams" in ddl["teams"]
    assert "name VARCHAR(50)" in ddl["teams"]
    assert "number VARCHAR(3)" in ddl["players"]
    assert "FOREIGN KEY(teamid) REFERENCES teams (id)" in ddl["players"]
    assert "game_id VARCHAR(100) NOT NULL" in ddl["games"]
    # Ids are data, not generated: SQL Server must not make them IDENTITY columns.
    assert "IDENTITY" not in ddl["teams"] + ddl["players"]

    statements = [
        delete(players),
        insert(players).values(**BASE_PLAYERS[0]),
        update(teams).where(teams.c.id == 101).values(**BASE_TEAMS[0]),
        select(games.c.home_teamid),
    ]
    compiled = [str(s.compile(dialect=dialect)) for s in statements]
    assert compiled[0] == "DELETE FROM players"
    assert compiled[1].startswith("INSERT INTO players (id, name, number, shots, goals, teamid)")


def test_reset_keeps_rows_in_the_league_ranges_and_only_those(engine):
    """League rows (gamestream --games) sit beside the base data in reserved id ranges."""
    reference_db.reset_base_tables(engine)
    league_team = {"id": 10_001, "name": "Ashford Otters", "conference": "Patriot Valley", "wins": 5, "losses": 6}
    league_player = {"id": 1_000_101, "name": "Aaron Abbott", "number": "6", "shots": 30, "goals": 9, "teamid": 10_001}
    stray = {"id": 1_000_202, "name": "Not League", "number": "77", "shots": 1, "goals": 0, "teamid": 101}
    league_game = {"game_id": "league-0001", "home_teamid": 10_001, "away_teamid": 101}
    summary = reference_db.install_league_rows(engine, [league_team], [league_player], [])
    with engine.begin() as conn:
        conn.execute(insert(players).values(**stray))  # a league-range id on a base team is not a league row
        conn.execute(insert(games).values(**league_game))
        conn.execute(insert(teams).values(id=20_000, name="Past the range", conference="Ind", wins=0, losses=0))

    reference_db.reset_base_tables(engine)
    rows = contents(engine)

    assert summary == reference_db.LeagueInstallSummary(teams=1, players=1, games=0, players_removed=0)
    assert rows["teams"] == BASE["teams"] + [league_team]
    assert rows["players"] == BASE["players"] + [league_player]
    assert rows["games"] == BASE["games"] + [league_game]
    assert reference_db.is_league_team(10_001) and not reference_db.is_league_team(20_000)
    assert not reference_db.is_league_team(101) and not reference_db.is_league_player(20)


def test_the_league_keeping_reset_compiles_for_sql_server():
    from sqlalchemy.dialects import mssql

    compiled = str(delete(players).where(reference_db._not_reserved_player()).compile(dialect=mssql.dialect()))
    assert compiled.startswith("DELETE FROM players WHERE (players.id < ")
    assert "players.teamid IS NULL" in compiled
