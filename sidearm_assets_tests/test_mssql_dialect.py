"""The SQL Server path of the reference database, as far as it goes without a SQL Server.

Every statement the project's reference-database code issues is captured while it really runs
(on SQLite), then compiled for SQL Server's dialect; the DDL is emitted for SQL Server the way
`create_all` would; and the production URL of `.env.example` builds an `mssql+pyodbc` engine
whose ODBC connection string is checked (no connection is opened: no server runs here).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import create_mock_engine, event, make_url
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateTable, DDLElement
from sqlalchemy.sql import ClauseElement

from sidearm_assets.storage import reference_db

ROOT = Path(__file__).resolve().parents[1]


def production_sql_url() -> str:
    spec = importlib.util.spec_from_file_location("drill_render", ROOT / "drill-storage-plugins" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return render.read_env_file(ROOT / ".env.example", environ={})["SIDEARM_SQL_URL"]


def compile_mssql(element) -> str:
    # qmark: the parameter style pyodbc declares, which the engine would pick up from it.
    return str(element.compile(dialect=mssql.pyodbc.dialect(paramstyle="qmark")))


def squash(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


@pytest.fixture(scope="module")
def project_statements(tmp_path_factory) -> list[ClauseElement]:
    """Every Core statement and DDL element reference_db runs: schema, two resets, reads."""
    url = f"sqlite:///{tmp_path_factory.mktemp('mssql-dialect') / 'sidearmdb.sqlite'}"
    engine = reference_db.make_engine(url)
    seen: list[ClauseElement] = []

    @event.listens_for(engine, "before_execute")
    def capture(conn, clauseelement, multiparams, params, execution_options):
        if isinstance(clauseelement, (ClauseElement, DDLElement)):
            seen.append(clauseelement)

    reference_db.create_schema(engine)
    first = reference_db.reset_base_tables(engine)
    second = reference_db.reset_base_tables(engine)  # the simulator resets on every start
    assert (first.players, second.players) == (20, 20)
    for table in (reference_db.teams, reference_db.players, reference_db.games):
        assert reference_db.read_rows(engine, table)
    engine.dispose()
    return seen


def test_ddl_compiles_for_sql_server_without_identity_columns():
    ddl = {t.name: squash(compile_mssql(CreateTable(t))) for t in reference_db.metadata.sorted_tables}
    assert set(ddl) >= {"teams", "players", "games"}
    assert ddl["teams"] == (
        "CREATE TABLE teams ( id INTEGER NOT NULL, name VARCHAR(50) NULL, conference VARCHAR(50) NULL, "
        "wins INTEGER NULL, losses INTEGER NULL, PRIMARY KEY (id) )"
    )
    assert "number VARCHAR(3) NULL" in ddl["players"]
    assert "FOREIGN KEY(teamid) REFERENCES teams (id)" in ddl["players"]
    assert "game_id VARCHAR(100) NOT NULL" in ddl["games"]
    assert "FOREIGN KEY(home_teamid) REFERENCES teams (id)" in ddl["games"]
    # SQL Server refuses explicit ids in IDENTITY columns; the base roster inserts its own ids.
    for name, sql in ddl.items():
        assert "IDENTITY" not in sql, f"{name} would get an IDENTITY column on SQL Server: {sql}"


def test_create_all_emits_tables_in_dependency_order_for_sql_server():
    emitted: list[str] = []
    engine = create_mock_engine(
        "mssql+pyodbc://", lambda sql, *a, **kw: emitted.append(squash(str(sql.compile(dialect=engine.dialect))))
    )
    reference_db.metadata.create_all(engine, checkfirst=False)
    created = [re.match(r"CREATE TABLE (\w+)", s).group(1) for s in emitted if s.startswith("CREATE TABLE")]
    assert created.index("teams") < created.index("players")
    assert created.index("teams") < created.index("games")


def test_every_statement_the_project_runs_compiles_for_sql_server(project_statements):
    compiled = [squash(compile_mssql(s)) for s in project_statements]
    kinds = {s.split(" ")[0] for s in compiled}
    assert {"DELETE", "UPDATE", "INSERT", "SELECT"} <= kinds, kinds
    # pyodbc takes qmark parameters; nothing SQLite-specific leaks into the statements.
    for sql in compiled:
        assert "PRAGMA" not in sql and "AUTOINCREMENT" not in sql, sql
    # the base reset deletes every player row outside the league's reserved id range (league rows stay)
    assert any(s.startswith("DELETE FROM players WHERE") for s in compiled), [s for s in compiled if "DELETE" in s]
    assert any(
        s.startswith("INSERT INTO players (id, name, number, shots, goals, teamid) VALUES (?, ?, ?, ?, ?, ?)")
        for s in compiled
    )
    assert any(s.startswith("UPDATE teams SET") and s.endswith("WHERE teams.id = ?") for s in compiled)
    assert any(s.startswith("SELECT players.id,") and s.endswith("ORDER BY players.id") for s in compiled)


def test_limit_style_reads_use_top_on_sql_server():
    # Readers that take the first rows (e.g. latest-first lists) must become TOP, not LIMIT.
    from sqlalchemy import select

    stmt = select(reference_db.players.c.name).order_by(reference_db.players.c.goals.desc()).limit(3)
    sql = squash(compile_mssql(stmt))
    assert sql.startswith("SELECT TOP __[POSTCOMPILE_param_1] players.name") and "LIMIT" not in sql


def test_production_url_selects_pyodbc_with_odbc_driver_18():
    url = make_url(production_sql_url())
    assert (url.get_backend_name(), url.get_driver_name()) == ("mssql", "pyodbc")
    assert (url.host, url.port, url.database, url.username) == ("mssql", 1433, "sidearmdb", "sa")
    # The connection string pyodbc would receive, from SQLAlchemy's own dialect.
    args, kwargs = mssql.pyodbc.dialect().create_connect_args(url)
    conn_str = args[0]
    assert "DRIVER={ODBC Driver 18 for SQL Server}" in conn_str
    assert "Server=mssql,1433" in conn_str
    assert "Database=sidearmdb" in conn_str
    assert "TrustServerCertificate=yes" in conn_str
    assert "UID=sa" in conn_str and "PWD=Change-me-1" in conn_str


def test_project_engine_for_the_production_url():
    try:
        import pyodbc  # noqa: F401
    except ImportError as exc:
        # The wheel needs unixODBC's libodbc.so.2 (Debian: apt-get install -y unixodbc).
        message = f"pyodbc (the `mssql` extra) does not import: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    engine = reference_db.make_engine(production_sql_url())
    try:
        assert engine.dialect.name == "mssql"
        assert engine.dialect.driver == "pyodbc"
        assert engine.dialect.paramstyle == "qmark"
        assert engine.pool._pre_ping is True
        assert engine.url.render_as_string(hide_password=True).startswith("mssql+pyodbc://sa:***@mssql:1433/sidearmdb")
    finally:
        engine.dispose()
