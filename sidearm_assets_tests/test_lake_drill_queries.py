"""docs/drill.md's lake queries (Drill SQL) give the pipeline's analytics tables.

Drill needs Docker, so the queries run on DuckDB with Drill's names translated (`lake.root.events`
-> `events`, `mssql.sidearmdb.dbo.teams` -> `teams`, backticks -> double quotes) over the lake
rows of the test games; each must equal the pipeline's table on the columns it selects.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from sidearm_assets.storage import reference_db
from sidearm_assets.lake import analytics, store
from sidearm_assets.lake.events import game_event_rows
from sidearm_assets_tests.helpers import EXTRA_PLAYERS, EXTRA_TEAMS
from sidearm_assets_tests.lake_expected import canonical
from sidearm_assets_tests.test_lake import GAMES, SEASON

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
def lake_connection():
    teams = [dict(t) for t in reference_db.BASE_TEAMS + EXTRA_TEAMS]
    players = [dict(p) for p in reference_db.BASE_PLAYERS + EXTRA_PLAYERS]
    schedule = [{"game_id": g, "home_teamid": h, "away_teamid": a} for g, (h, a, _) in GAMES.items()]
    rows = [r for g, (_, _, data) in GAMES.items() for r in game_event_rows(g, data, schedule, teams, players, SEASON).rows]
    con, count, _ = analytics.connect(pa.Table.from_pylist(rows, schema=store.arrow_schema()), teams, players)
    assert count == len(rows)
    yield con
    con.close()


def test_docs_hold_every_analytics_query():
    assert set(drill_queries()) == set(analytics.ANALYTICS)


@pytest.mark.parametrize("name", analytics.ANALYTICS)
def test_drill_query_equals_the_pipeline_table(lake_connection, name):
    cursor = lake_connection.execute(to_duckdb(drill_queries()[name]))
    columns = [d[0] for d in cursor.description]
    from_docs = [dict(zip(columns, row)) for row in cursor.fetchall()]
    pipeline = analytics.run_query(lake_connection, name)
    assert pipeline, name
    assert canonical(from_docs) == canonical([{c: r[c] for c in columns} for r in pipeline])
