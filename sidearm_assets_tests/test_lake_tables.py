"""The analytics tables' SQL on SQL Server, as far as it goes without a server: the DDL compiled
for its dialect, and the statements of a real write (on SQLite) captured and compiled for it."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable

from sidearm_assets.storage import reference_db
from sidearm_assets.lake import analytics, tables


def test_ddl_compiles_for_sql_server_with_the_reference_column_sizes():
    with_pct = {name for name, table in tables.TABLES.items() if "pct" in table.columns}
    assert with_pct == {"scoring_leaders", "team_shooting_by_quarter"}
    for name, table in tables.TABLES.items():
        ddl = str(CreateTable(table).compile(dialect=mssql.dialect()))
        assert ddl.startswith(f"\nCREATE TABLE {table.name} ("), ddl
        assert ("pct FLOAT" in ddl) == (name in with_pct), ddl
    sizes = {c.name: c.type.length for c in reference_db.players.columns if hasattr(c.type, "length")}
    assert tables.TABLES["scoring_leaders"].c.player_name.type.length == sizes["name"]
    assert tables.TABLES["scoring_leaders"].c.jersey.type.length == sizes["number"]
    assert tables.TABLES["lead_changes"].c.game_id.type.length == reference_db.games.c.game_id.type.length


def test_table_columns_are_the_queries_columns():
    # The column lists here and in analytics.QUERIES are written twice; they must agree.
    from sidearm_assets.lake import store

    con, _, _ = analytics.connect(store.arrow_schema().empty_table(), [], [])
    for name in analytics.ANALYTICS:
        cursor = con.execute(analytics.QUERIES[name])
        assert [d[0] for d in cursor.description] == [c.name for c in tables.TABLES[name].columns], name
    con.close()


def test_the_write_statements_compile_for_sql_server(tmp_path):
    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append(context.compiled.statement if context.compiled else None)

    event.listen(engine, "before_cursor_execute", capture)
    row = {"season": 2026, "rank_goals": 1, "player_id": 1, "player_name": "A", "team_id": 101, "team_name": "T",
           "jersey": "6", "goals": 2, "shots": 8, "pct": 0.25, "games": 1}
    written = tables.write_analytics(
        engine, {"scoring_leaders": [row], "clutch_scorers": []}, "2026-01-01T00:00:00.000000Z", games=1, events=10
    )
    assert written.written and written.rows == {"scoring_leaders": 1, "clutch_scorers": 0}
    assert tables.read_table(engine, "scoring_leaders") == [row]
    compiled = [str(s.compile(dialect=mssql.dialect())) for s in statements if s is not None]
    assert any(c.startswith("UPDATE season_analytics_state") for c in compiled)
    assert any(c.startswith("DELETE FROM season_scoring_leaders") for c in compiled)
    assert any(c.startswith("INSERT INTO season_scoring_leaders") for c in compiled)
