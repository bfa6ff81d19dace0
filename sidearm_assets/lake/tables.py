"""The season analytics in sidearmdb: one table per query, replaced together in one transaction.

The web team reads a table with one query (`SELECT * FROM season_scoring_leaders WHERE
season = 2026 ORDER BY rank_goals`). The write follows `final_tables_db`: a guarded UPDATE of
the `season_analytics_state` row claims the write only when no newer computation (`generation`,
the moment the lake was listed) has been written, then every table is emptied and filled in
the same transaction, so a reader sees the previous set of tables or the new one, never a mix
or an empty table. Core SQLAlchemy only: SQLite, PostgreSQL and SQL Server run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, delete, insert, select, update

lake_metadata = MetaData()


def _table(name: str, *columns: Column) -> Table:
    return Table(name, lake_metadata, *columns)


def _int(name: str, **kw) -> Column:
    return Column(name, Integer, **kw)


def _str(name: str, length: int, **kw) -> Column:
    return Column(name, String(length), **kw)


# Analytics name (analytics.QUERIES) -> its table; the columns are the query's, in order.
TABLES: dict[str, Table] = {
    "scoring_leaders": _table(
        "season_scoring_leaders",
        _int("season"), _int("rank_goals"), _int("player_id"), _str("player_name", 50), _int("team_id"),
        _str("team_name", 50), _str("jersey", 3), _int("goals"), _int("shots"), Column("pct", Float), _int("games"),
    ),
    "team_shooting_by_quarter": _table(
        "season_team_shooting_by_quarter",
        _int("season"), _int("team_id"), _str("team_name", 50), _int("quarter"), _int("shots"), _int("goals"),
        Column("pct", Float), _int("games"),
    ),
    "lead_changes": _table(
        "season_lead_changes",
        _int("season"), _str("game_id", 100), _int("home_teamid"), _str("home_name", 50), _int("away_teamid"),
        _str("away_name", 50), _int("home_score"), _int("away_score"), _int("winner_teamid"), _int("lead_changes"),
        _int("times_tied"), _int("winner_largest_deficit"),
    ),
    "clutch_scorers": _table(
        "season_clutch_scorers",
        _int("season"), _int("player_id"), _str("player_name", 50), _int("team_id"), _str("team_name", 50),
        _str("jersey", 3), _int("game_winning_goals"), _int("late_tying_or_go_ahead_goals"), _int("goals"),
    ),
}

state_table = Table(
    "season_analytics_state",
    lake_metadata,
    Column("name", String(50), primary_key=True),
    Column("generation", String(40), nullable=False),
    Column("games", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("run_id", String(64)),
    Column("written_at", String(40)),
)
STATE_NAME = "season_analytics"


@dataclass(frozen=True)
class AnalyticsWrite:
    written: bool  # False when a newer computation had been written already
    rows: dict[str, int]
    generation: str
    current_generation: str | None


def new_generation() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_analytics(
    engine: Engine, tables: dict[str, list[dict]], generation: str, *, games: int, events: int, run_id: str | None = None
) -> AnalyticsWrite:
    """Replace the tables named in `tables` in one transaction, unless a newer generation is in."""
    from sqlalchemy.exc import IntegrityError

    lake_metadata.create_all(engine, tables=[state_table])
    try:
        with engine.begin() as conn:
            if conn.scalar(select(state_table.c.name).where(state_table.c.name == STATE_NAME)) is None:
                conn.execute(insert(state_table).values(name=STATE_NAME, generation="", games=0, events=0))
    except IntegrityError:
        pass  # a concurrent writer inserted it first
    with engine.begin() as conn:
        claimed = conn.execute(
            update(state_table)
            .where(state_table.c.name == STATE_NAME)
            .where(state_table.c.generation <= generation)
            .values(
                generation=generation, games=games, events=events, run_id=run_id,
                written_at=datetime.now(timezone.utc).isoformat(),
            )
        ).rowcount
        if claimed != 1:
            current = conn.scalar(select(state_table.c.generation).where(state_table.c.name == STATE_NAME))
            return AnalyticsWrite(False, {}, generation, current)
        targets = [TABLES[name] for name in tables]
        lake_metadata.create_all(conn, tables=targets)
        counts = {}
        for name, rows in tables.items():
            table = TABLES[name]
            conn.execute(delete(table))
            if rows:
                conn.execute(insert(table), [{c.name: r.get(c.name) for c in table.columns} for r in rows])
            counts[name] = len(rows)
    return AnalyticsWrite(True, counts, generation, None)


def read_table(engine: Engine, name: str) -> list[dict] | None:
    """The rows of one analytics table (None before its first write), in no particular order."""
    from sqlalchemy import inspect

    table = TABLES[name]
    if not inspect(engine).has_table(table.name):
        return None
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def read_state(engine: Engine) -> dict | None:
    from sqlalchemy import inspect

    if not inspect(engine).has_table(state_table.name):
        return None
    with engine.connect() as conn:
        row = conn.execute(select(state_table).where(state_table.c.name == STATE_NAME)).first()
    return dict(row._mapping) if row else None


def drop_analytics_tables(engine: Engine) -> None:
    lake_metadata.drop_all(engine, tables=[*TABLES.values(), state_table])
