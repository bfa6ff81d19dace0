"""`players2` and `teams2` in sidearmdb (SPEC 6): schema and one atomic write, through SQLAlchemy.

Both tables have the columns of `players` and `teams` (copied from reference_db, so they cannot
drift); `players2.teamid` references `teams2.id`, the final tables' own team table, so resetting
the base tables never trips over a final row.

The write is one transaction that, in order:

1. claims the `final_tables_state` row with a guarded UPDATE: it succeeds only when no newer
   computation has been written already (`generation`, the moment the writer listed the
   completed games). The row lock it takes serializes concurrent writers on every backend, and
   a computation that lost a race to a fresher one is dropped instead of overwriting it;
2. creates `teams2`/`players2` if they do not exist yet;
3. replaces both tables' rows (DELETE + INSERT).

SQLite, PostgreSQL and SQL Server all run DDL and DML inside a transaction, so a reader sees
the old pair of tables or the new pair, never one without the other, never an empty or
half-written table. No dialect-specific SQL: the same statements compile for `mssql+pyodbc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from sidearm_assets import reference_db

final_metadata = MetaData()


def _copy_table(source: Table, name: str, references: dict[str, str]) -> Table:
    """`source`'s columns under a new name; foreign keys retargeted through `references`."""
    columns = []
    for c in source.columns:
        fks = [ForeignKey(references.get(fk.target_fullname, fk.target_fullname)) for fk in c.foreign_keys]
        columns.append(
            Column(
                c.name, c.type, *fks,
                primary_key=c.primary_key, nullable=c.nullable, autoincrement=False,
            )
        )
    return Table(name, final_metadata, *columns)


teams2 = _copy_table(reference_db.teams, "teams2", {})
players2 = _copy_table(reference_db.players, "players2", {"teams.id": "teams2.id"})

# Bookkeeping for the writes: one row per set of final tables (name "final").
final_tables_state = Table(
    "final_tables_state",
    final_metadata,
    Column("name", String(50), primary_key=True),
    Column("generation", String(40), nullable=False),  # ISO UTC time the games were listed
    Column("completed_games", Integer, nullable=False),
    Column("games", String(4000)),  # "game_id@version" list, for people reading the table
    Column("run_id", String(64)),
    Column("written_at", String(40)),
)

STATE_NAME = "final"


@dataclass(frozen=True)
class WriteResult:
    written: bool  # False when a fresher computation had been written already
    players: int
    teams: int
    generation: str
    current_generation: str | None  # what the table held when the write was refused


def create_state_table(engine: Engine) -> None:
    """The state table alone, outside the write: an empty state row is harmless to readers."""
    final_metadata.create_all(engine, tables=[final_tables_state])


def write_final_tables(
    engine: Engine,
    players_rows: list[dict],
    teams_rows: list[dict],
    generation: str,
    games: list[str] | None = None,
    run_id: str | None = None,
) -> WriteResult:
    """Replace players2 and teams2 in one transaction, unless a newer generation is written."""
    create_state_table(engine)
    _ensure_state_row(engine)
    games = games or []
    written_at = datetime.now(timezone.utc).isoformat()
    with engine.begin() as conn:
        claimed = conn.execute(
            update(final_tables_state)
            .where(final_tables_state.c.name == STATE_NAME)
            .where(final_tables_state.c.generation <= generation)
            .values(
                generation=generation,
                completed_games=len(games),
                games=", ".join(games)[:4000],
                run_id=run_id,
                written_at=written_at,
            )
        ).rowcount
        if claimed != 1:
            current = conn.scalar(
                select(final_tables_state.c.generation).where(final_tables_state.c.name == STATE_NAME)
            )
            return WriteResult(False, 0, 0, generation, current)
        final_metadata.create_all(conn, tables=[teams2, players2])  # checkfirst, in the transaction
        conn.execute(delete(players2))
        conn.execute(delete(teams2))
        if teams_rows:
            conn.execute(insert(teams2), [{c: t[c] for c in reference_db.TEAM_COLUMNS} for t in teams_rows])
        if players_rows:
            conn.execute(
                insert(players2), [{c: p[c] for c in reference_db.PLAYER_COLUMNS} for p in players_rows]
            )
    return WriteResult(True, len(players_rows), len(teams_rows), generation, None)


def _ensure_state_row(engine: Engine) -> None:
    """Insert the state row once; a concurrent writer inserting it first is fine."""
    from sqlalchemy.exc import IntegrityError

    with engine.connect() as conn:
        if conn.scalar(select(final_tables_state.c.name).where(final_tables_state.c.name == STATE_NAME)):
            return
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(final_tables_state).values(
                    name=STATE_NAME, generation="", completed_games=0, games="", run_id=None, written_at=None
                )
            )
    except IntegrityError:
        pass


def read_final_tables(engine: Engine) -> tuple[list[dict], list[dict]] | None:
    """(players2, teams2) rows read in one transaction, or None before the first write."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table("players2"):
        return None
    with engine.connect() as conn:
        players_rows = [dict(r._mapping) for r in conn.execute(select(players2).order_by(players2.c.id))]
        teams_rows = [dict(r._mapping) for r in conn.execute(select(teams2).order_by(teams2.c.id))]
    return players_rows, teams_rows


def read_state(engine: Engine) -> dict | None:
    from sqlalchemy import inspect

    if not inspect(engine).has_table("final_tables_state"):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(final_tables_state).where(final_tables_state.c.name == STATE_NAME)
        ).first()
    return dict(row._mapping) if row else None


def drop_final_tables(engine: Engine) -> None:
    """Remove players2, teams2 and the state row's table (tests, a fresh start)."""
    final_metadata.drop_all(engine, tables=[players2, teams2, final_tables_state])
