"""The tables of the final-tables path in sidearmdb (SPEC 6, 8), and the one step that creates them.

| table | what it holds | written by |
|---|---|---|
| `completions` | the inbox: each completed game's latest final version (bytes, digest), and its state | the live path as it publishes a final; a manual run; the backfill |
| `counted_games` | the record: each game the tables count, the bytes it was counted from | the final-tables run |
| `player_game_facts`, `team_game_facts` | each counted game's contribution, keyed by the game | the final-tables run |
| `players2`, `teams2` | base rows + the sum of the facts | the final-tables run (set-based rebuild) |
| `final_tables_state` | when the tables were written, by which run, how many games, stale after an uncount | the run; uncount |
| `uncounted_games` | the log of explicit removals and their reversal | `sidearm-games uncount/recount` |

`players2`/`teams2` have the columns of `players`/`teams`, copied column by column from
`reference_db` so they cannot drift; `players2.teamid` references `teams2.id`, so resetting the
base tables never trips over a final row. No dialect-specific SQL anywhere: the same statements
run on SQLite and PostgreSQL and compile for SQL Server (`mssql+pyodbc`).
"""

from __future__ import annotations

import threading

from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
)

from sidearm_assets.storage import reference_db


def _bytes_type():
    """BLOB on SQLite, BYTEA on PostgreSQL, VARBINARY(max) on SQL Server (named: SQLAlchemy's mssql
    dialect compiles a bare LargeBinary to the deprecated IMAGE before it has seen the server)."""
    from sqlalchemy.dialects import mssql

    return LargeBinary().with_variant(mssql.VARBINARY("max"), "mssql")


final_metadata = MetaData()


def _copy_table(source: Table, name: str, references: dict[str, str]) -> Table:
    """`source`'s columns under a new name; foreign keys retargeted through `references`."""
    columns = []
    for c in source.columns:
        fks = [ForeignKey(references.get(fk.target_fullname, fk.target_fullname)) for fk in c.foreign_keys]
        columns.append(Column(c.name, c.type, *fks, primary_key=c.primary_key, nullable=c.nullable, autoincrement=False))
    return Table(name, final_metadata, *columns)


teams2 = _copy_table(reference_db.teams, "teams2", {})
players2 = _copy_table(reference_db.players, "players2", {"teams.id": "teams2.id"})

final_tables_state = Table(
    "final_tables_state",
    final_metadata,
    Column("name", String(50), primary_key=True),
    Column("generation", String(40), nullable=False),  # UTC time of the last write or uncount
    Column("completed_games", Integer, nullable=False),  # games the tables count
    Column("games_digest", String(64)),  # record_digest() of the games the tables count
    Column("stale", Integer, nullable=False, default=0),  # 1 after an uncount, until the next write
    Column("run_id", String(64)),
    Column("written_at", String(40)),
)

# Completion states: pending (to count), counted (the tables count this version), uncounted (this
# version was removed explicitly), uncountable (a run could not count it; `problem` says why).
PENDING, COUNTED, UNCOUNTED, UNCOUNTABLE = "pending", "counted", "uncounted", "uncountable"

completions = Table(
    "completions",
    final_metadata,
    Column("game_id", String(100), primary_key=True),
    Column("etag", String(100), nullable=False),  # MD5 of the bytes: the S3 ETag of a single put
    Column("version", String(200)),  # the live object's version it was published from, for people
    Column("data", _bytes_type(), nullable=False),  # the exact final stream bytes
    Column("filed_at", String(40), nullable=False),
    Column("state", String(20), nullable=False),
    Column("problem", String(1000)),
    Column("checked_at", String(40)),  # when a run last judged it uncountable
    Index("ix_completions_state", "state"),
)

counted_games = Table(
    "counted_games",
    final_metadata,
    Column("game_id", String(100), primary_key=True),
    Column("etag", String(100), nullable=False),
    Column("version", String(200)),
    Column("over_reason", String(100)),
    Column("home_teamid", Integer),  # the schedule row when counted (kept if the row goes)
    Column("away_teamid", Integer),
    Column("data", _bytes_type(), nullable=False),  # the exact stream bytes counted
    Column("counted_at", String(40)),
    Column("run_id", String(64)),
)

player_game_facts = Table(
    "player_game_facts",
    final_metadata,
    Column("game_id", String(100), primary_key=True),
    Column("player_id", Integer, primary_key=True),
    Column("teamid", Integer, nullable=False),
    Column("shots", Integer, nullable=False),
    Column("goals", Integer, nullable=False),
    Index("ix_player_game_facts_player", "player_id"),
)

team_game_facts = Table(
    "team_game_facts",
    final_metadata,
    Column("game_id", String(100), primary_key=True),
    Column("teamid", Integer, primary_key=True),
    Column("etag", String(100), nullable=False),  # the counted version these facts come from
    Column("goals_for", Integer, nullable=False),
    Column("goals_against", Integer, nullable=False),
    Column("wins", Integer, nullable=False),
    Column("losses", Integer, nullable=False),
    Column("ties", Integer, nullable=False),
    Column("unknown_shots", Integer, nullable=False),
    Column("unknown_goals", Integer, nullable=False),
    Index("ix_team_game_facts_team", "teamid"),
)

uncounted_games = Table(
    "uncounted_games",
    final_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("game_id", String(100), nullable=False),
    Column("action", String(20), nullable=False),  # "uncount" or "recount"
    Column("etag", String(100)),
    Column("reason", String(500), nullable=False),
    Column("actor", String(100)),
    Column("at", String(40), nullable=False),
    Column("data", _bytes_type()),  # the bytes that were counted (uncount)
)

STATE_NAME = "final"
BOOKKEEPING = (final_tables_state, completions, counted_games, player_game_facts, team_game_facts, uncounted_games)
FINAL_TABLES = (teams2, players2)

_ready: set[str] = set()
_ready_lock = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """Create the bookkeeping tables that are missing (empty ones are harmless to readers), once per
    engine and process. Idempotent, and the project's one schema migration: a `final_tables_state`
    of an earlier layout (it holds bookkeeping only, rewritten by the next write) is dropped and
    recreated with the current columns. `players2`/`teams2` are created by the first write, inside
    its transaction, so before it readers find no table rather than an empty one."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _ready:
        return
    with _ready_lock:
        insp = inspect(engine)
        if insp.has_table(final_tables_state.name):
            have = {c["name"] for c in insp.get_columns(final_tables_state.name)}
            if not {c.name for c in final_tables_state.columns} <= have:
                final_tables_state.drop(engine)
        final_metadata.create_all(engine, tables=list(BOOKKEEPING))
        _ready.add(key)


def forget_schema(engine: Engine) -> None:
    """Make the next `ensure_schema` look again (after the tables were dropped)."""
    _ready.discard(engine.url.render_as_string(hide_password=False))
