"""docs/drill.md's lake queries (Drill SQL) give the pipeline's analytics tables.

Drill needs Docker, so the queries run on DuckDB with Drill's names translated (`lake.root.events`
-> `events`, `mssql.sidearmdb.dbo.teams` -> `teams`, backticks -> double quotes) over the lake
rows of the test games; each must equal the pipeline's table (built from the games' facts in
sidearmdb, as a run builds it) on the columns it selects.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from sidearm_assets.storage import reference_db
from sidearm_assets.lake import analytics, facts, season, store, tables
from sidearm_assets.lake.events import game_event_rows
from sidearm_assets_tests.helpers import EXTRA_PLAYERS, EXTRA_TEAMS
from sidearm_assets_tests.lake_expected import canonical
from sidearm_assets_tests.lake_world import GAMES, SEASON

DRILL_MD = Path(__file__).resolve().parents[1] / "docs" / "drill.md"
QUERY = re.compile(r"<!-- lake-query: (\w+) -->\n```sql\n(.*?)```", re.S)
DRILL_NAMES = {
    "lake.root.events": "events",
    "mssql.sidearmdb.dbo.teams": "teams",
    "mssql.sidearmdb.dbo.players": "players",
}


def drill_queries() -> dict[str, str]:
    return dict(QUERY.findall(DRILL_MD.read_text()))


def to_duckdb(sql: str) -> str:
    for drill, local in DRILL_NAMES.items():
        sql = sql.replace(drill, local)
    return sql.replace("`", '"').strip().rstrip(";")


@pytest.fixture(scope="module")
def lake_and_pipeline(tmp_path_factory):
    """(DuckDB connection with `events`, `teams`, `players`; the pipeline's season tables)."""
    import duckdb
    from sqlalchemy import insert

    teams = [dict(t) for t in reference_db.BASE_TEAMS + EXTRA_TEAMS]
    players = [dict(p) for p in reference_db.BASE_PLAYERS + EXTRA_PLAYERS]
    schedule = [{"game_id": g, "home_teamid": h, "away_teamid": a} for g, (h, a, _) in GAMES.items()]
    rows = [r for g, (_, _, data) in GAMES.items() for r in game_event_rows(g, data, schedule, teams, players, SEASON).rows]
    events = pa.Table.from_pylist(rows, schema=store.arrow_schema())

    engine = reference_db.make_engine(f"sqlite:///{tmp_path_factory.mktemp('drill') / 'sidearmdb.sqlite'}")
    reference_db.create_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(reference_db.teams), teams)
        conn.execute(insert(reference_db.players), players)
    tables.create_tables(engine)
    tables.replace_games(engine, facts.game_facts(events), {g: ("etag", "file") for g in GAMES})
    season.refresh_season(engine)
    pipeline = {name: tables.read_table(engine, name) for name in analytics.ANALYTICS}

    con = duckdb.connect()
    con.register("events", events)
    con.register("teams", pa.Table.from_pylist([{"id": t["id"], "name": t["name"]} for t in teams]))
    con.register("players", pa.Table.from_pylist([{"id": p["id"], "name": p["name"], "teamid": p["teamid"]}
                                                  for p in players]))
    yield con, pipeline
    con.close()
    engine.dispose()


def test_docs_hold_every_analytics_query():
    assert set(drill_queries()) == set(analytics.ANALYTICS)


@pytest.mark.parametrize("name", analytics.ANALYTICS)
def test_drill_query_equals_the_pipeline_table(lake_and_pipeline, name):
    con, pipeline = lake_and_pipeline
    cursor = con.execute(to_duckdb(drill_queries()[name]))
    columns = [d[0] for d in cursor.description]
    from_docs = [dict(zip(columns, row)) for row in cursor.fetchall()]
    assert pipeline[name], name
    assert canonical(from_docs) == canonical([{c: r[c] for c in columns} for r in pipeline[name]])


def test_the_notebooks_leaders_query_over_the_events_equals_the_pipeline_table(lake_and_pipeline):
    con, pipeline = lake_and_pipeline
    cursor = con.execute(analytics.QUERIES["scoring_leaders"])
    columns = [d[0] for d in cursor.description]
    over_events = [dict(zip(columns, row)) for row in cursor.fetchall()]
    assert columns == [c.name for c in tables.TABLES["scoring_leaders"].columns]
    assert canonical(over_events) == canonical(pipeline["scoring_leaders"])
