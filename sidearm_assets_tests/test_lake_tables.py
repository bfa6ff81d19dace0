"""The lake's sidearmdb SQL on SQL Server, as far as it goes without a server: the DDL compiled for
its dialect, and the statements of a real lake write and season refresh (on SQLite) captured and
compiled for it."""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import event, select
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from sidearm_assets.lake import facts, season, store, tables
from sidearm_assets.lake.events import game_event_rows
from sidearm_assets.storage import reference_db


def test_ddl_compiles_for_sql_server_with_the_reference_column_sizes():
    with_pct = {name for name, table in tables.TABLES.items() if "pct" in table.columns}
    assert with_pct == {"scoring_leaders", "team_shooting_by_quarter"}
    for table in tables.lake_metadata.sorted_tables:
        ddl = str(CreateTable(table).compile(dialect=mssql.dialect()))
        assert ddl.startswith(f"\nCREATE TABLE {table.name} ("), ddl
        assert ("pct FLOAT" in ddl) == (table.name in {tables.TABLES[n].name for n in with_pct}), ddl
    sizes = {c.name: c.type.length for c in reference_db.players.columns if hasattr(c.type, "length")}
    assert tables.TABLES["scoring_leaders"].c.player_name.type.length == sizes["name"]
    assert tables.lake_shooter_games.c.jersey.type.length == sizes["number"]
    assert tables.lake_games.c.game_id.type.length == reference_db.games.c.game_id.type.length


def test_each_season_select_has_its_tables_columns_and_each_fact_query_its_tables():
    for name, build in season.SELECTS.items():
        assert [c.name for c in build().selected_columns] == [c.name for c in tables.TABLES[name].columns], name
    empty = facts.game_facts(store.arrow_schema().empty_table())
    assert set(empty) == set(tables.FACT_TABLES) and all(rows == [] for rows in empty.values())


def test_pct_is_rounded_half_up_in_integers():
    engine = reference_db.make_engine("sqlite://")
    with engine.connect() as conn:
        for goals, shots, expected in ((1, 8, 0.13), (1, 3, 0.33), (2, 3, 0.67), (0, 5, 0.0), (5, 5, 1.0), (1, 200, 0.01)):
            assert conn.scalar(select(season.pct(goals, shots))) == expected


def test_the_write_statements_compile_for_sql_server(tmp_path):
    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    reference_db.reset_base_tables(engine)
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(context.compiled.statement if context.compiled else None)

    event.listen(engine, "before_cursor_execute", capture)
    data = b"0 59:00 101 6 1\n1 30:00 205 12 1\n2 10:00 101 6 1\n-1 00:00 0 0 0\n"
    schedule = [{"game_id": "g", "home_teamid": 101, "away_teamid": 205}]
    built = game_event_rows("g", data, schedule, reference_db.read_rows(engine, reference_db.teams),
                            reference_db.read_rows(engine, reference_db.players), 2026)
    game_facts = facts.game_facts(pa.Table.from_pylist(list(built.rows), schema=store.arrow_schema()))
    tables.create_tables(engine)
    tables.replace_games(engine, game_facts, {"g": ("etag-1", "file-1")})
    written = season.refresh_season(engine)
    assert written.games == 1 and written.rows["lead_changes"] == 1 and written.rows["scoring_leaders"] == 2
    compiled = [str(s.compile(dialect=mssql.dialect())) for s in statements if s is not None]
    assert any(c.startswith("UPDATE lake_state") for c in compiled)
    assert any(c.startswith("DELETE FROM lake_shooter_games") for c in compiled)
    assert any(c.startswith("UPDATE season_analytics_state") for c in compiled)
    leaders = next(c for c in compiled if c.startswith("INSERT INTO season_scoring_leaders"))
    assert "rank() OVER (PARTITION BY" in leaders and "SELECT" in leaders
