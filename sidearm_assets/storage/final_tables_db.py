"""`players2`, `teams2` and the record of counted games in sidearmdb (SPEC 6), through SQLAlchemy.

Both final tables have the columns of `players` and `teams` (copied from reference_db, so they
cannot drift); `players2.teamid` references `teams2.id`, the final tables' own team table, so
resetting the base tables never trips over a final row.

`counted_games` is the durable record of what the tables count: one row per game, with the exact
bytes it was counted from and the version (ETag) of its archive object. It lives beside the
tables and is written in the same transaction, so the tables and the record never disagree, and
it survives the object store losing its contents (docs/final-tables.md). A game leaves the
record only through `uncount` (an explicit action, logged with who, when and why in
`uncounted_games`, with the bytes, so it can be undone with `recount`).

The write is one transaction that, in order:

1. claims the `final_tables_state` row with a guarded UPDATE: it succeeds only when no newer
   computation (or uncount) has been written already (`generation`, the moment the writer read
   the record and listed the archive). The row lock it takes serializes concurrent writers on
   every backend, and a computation that lost a race to a fresher one is dropped instead of
   overwriting it;
2. refuses to drop a recorded game (`RecordedGameDropped`): the computation must count every
   game of the record as it stands inside the transaction;
3. creates `teams2`/`players2` if they do not exist yet;
4. replaces both tables' rows (DELETE + INSERT) and brings the record up to date (only the
   games that are new or whose version changed are rewritten).

SQLite, PostgreSQL and SQL Server all run DDL and DML inside a transaction, so a reader sees
the old pair of tables or the new pair, never one without the other, never an empty or
half-written table. No dialect-specific SQL: the same statements compile for `mssql+pyodbc`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from sidearm_assets.storage import reference_db

# Stream bytes: BLOB on SQLite, BYTEA on PostgreSQL, VARBINARY(max) on SQL Server (named, because
# SQLAlchemy's mssql dialect compiles a bare LargeBinary to the deprecated IMAGE when it has not
# seen the server's version yet).
def _bytes_type():
    from sqlalchemy.dialects import mssql

    return LargeBinary().with_variant(mssql.VARBINARY("max"), "mssql")


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
    Column("generation", String(40), nullable=False),  # ISO UTC time the record/archive were read
    Column("completed_games", Integer, nullable=False),
    Column("games_digest", String(64)),  # record_digest() of the games the tables count
    Column("run_id", String(64)),
    Column("written_at", String(40)),
)

# The record: every game the tables count, and the bytes it was counted from.
counted_games = Table(
    "counted_games",
    final_metadata,
    Column("game_id", String(100), primary_key=True),
    Column("etag", String(100), nullable=False),  # the archive object's ETag when counted
    Column("version", String(200)),  # ETag@LastModified, for people
    Column("over_reason", String(100)),
    Column("home_teamid", Integer),  # the schedule row when counted (kept if the row goes)
    Column("away_teamid", Integer),
    Column("data", _bytes_type(), nullable=False),  # the exact stream bytes counted
    Column("counted_at", String(40)),
    Column("run_id", String(64)),
)

# The log of explicit removals (and their reversal) from the record.
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
RECORD_TABLES = (counted_games, uncounted_games)


class RecordedGameDropped(RuntimeError):
    """A computation that does not count every recorded game tried to replace the tables."""


@dataclass(frozen=True)
class CountedGame:
    """One row of the record: a game as the final tables count it."""

    game_id: str
    etag: str
    data: bytes
    version: str | None = None
    over_reason: str | None = None
    home_teamid: int | None = None
    away_teamid: int | None = None
    counted_at: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class WriteResult:
    written: bool  # False when a fresher computation had been written already
    players: int
    teams: int
    generation: str
    current_generation: str | None  # what the table held when the write was refused
    recorded: tuple[str, ...] = ()  # games whose record row this write added or replaced
    digest: str = ""


@dataclass(frozen=True)
class RecordSummary:
    """What the game-over sensor needs, read in one short transaction (no stream bytes)."""

    record: dict[str, str]  # game id -> counted ETag
    uncounted: dict[str, str]  # game id -> ETag uncounted and not recounted since
    tables_digest: str | None  # the digest written with the tables, None before the first write


def record_digest(etags: dict[str, str]) -> str:
    """A short digest of a set of counted game versions (game id -> ETag), order-free."""
    text = "\n".join(f"{g}@{etags[g]}" for g in sorted(etags))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def utc_now() -> str:
    """A fixed-width UTC timestamp: later moments compare greater as strings."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def create_state_table(engine: Engine) -> None:
    """The state and record tables alone, outside the write: empty ones are harmless to readers.

    A `final_tables_state` from before the record (no `games_digest` column) is dropped and
    recreated: it holds bookkeeping only, and the next write fills it again."""
    from sqlalchemy import inspect

    insp = inspect(engine)
    if insp.has_table("final_tables_state"):
        columns = {c["name"] for c in insp.get_columns("final_tables_state")}
        if "games_digest" not in columns:
            final_tables_state.drop(engine)
    final_metadata.create_all(engine, tables=[final_tables_state, *RECORD_TABLES])


def write_final_tables(
    engine: Engine,
    players_rows: list[dict],
    teams_rows: list[dict],
    generation: str,
    counted: list[CountedGame] | tuple[CountedGame, ...] = (),
    run_id: str | None = None,
) -> WriteResult:
    """Replace players2 and teams2 and bring the record to `counted`, in one transaction, unless
    a newer generation is written. `counted` must hold every recorded game (RecordedGameDropped)."""
    create_state_table(engine)
    _ensure_state_row(engine)
    etags = {g.game_id: g.etag for g in counted}
    digest = record_digest(etags)
    written_at = utc_now()
    with engine.begin() as conn:
        claimed = conn.execute(
            update(final_tables_state)
            .where(final_tables_state.c.name == STATE_NAME)
            .where(final_tables_state.c.generation <= generation)
            .values(
                generation=generation,
                completed_games=len(counted),
                games_digest=digest,
                run_id=run_id,
                written_at=written_at,
            )
        ).rowcount
        if claimed != 1:
            current = conn.scalar(
                select(final_tables_state.c.generation).where(final_tables_state.c.name == STATE_NAME)
            )
            return WriteResult(False, 0, 0, generation, current, (), digest)
        recorded = dict(conn.execute(select(counted_games.c.game_id, counted_games.c.etag)).all())
        dropped = sorted(set(recorded) - set(etags))
        if dropped:
            raise RecordedGameDropped(
                f"refusing to write final tables that drop counted game(s) {dropped}: a counted "
                "game leaves only through `sidearm-games uncount GAME --reason TEXT`"
            )
        final_metadata.create_all(conn, tables=[teams2, players2])  # checkfirst, in the transaction
        conn.execute(delete(players2))
        conn.execute(delete(teams2))
        if teams_rows:
            conn.execute(insert(teams2), [{c: t[c] for c in reference_db.TEAM_COLUMNS} for t in teams_rows])
        if players_rows:
            conn.execute(
                insert(players2), [{c: p[c] for c in reference_db.PLAYER_COLUMNS} for p in players_rows]
            )
        changed = [g for g in counted if recorded.get(g.game_id) != g.etag]
        if changed:
            stale = [g.game_id for g in changed if g.game_id in recorded]
            if stale:
                conn.execute(delete(counted_games).where(counted_games.c.game_id.in_(stale)))
            conn.execute(
                insert(counted_games),
                [
                    {
                        "game_id": g.game_id, "etag": g.etag, "version": g.version,
                        "over_reason": g.over_reason, "home_teamid": g.home_teamid,
                        "away_teamid": g.away_teamid, "data": g.data,
                        "counted_at": written_at, "run_id": run_id,
                    }
                    for g in changed
                ],
            )
    return WriteResult(
        True, len(players_rows), len(teams_rows), generation, None,
        tuple(sorted(g.game_id for g in changed)), digest,
    )


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
                    name=STATE_NAME, generation="", completed_games=0, games_digest=None,
                    run_id=None, written_at=None,
                )
            )
    except IntegrityError:
        pass


def read_record(engine: Engine) -> dict[str, CountedGame]:
    """The whole record (with the bytes), game id -> CountedGame; empty before the first write."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table("counted_games"):
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(counted_games).order_by(counted_games.c.game_id)).mappings().all()
    return {r["game_id"]: CountedGame(**{k: (bytes(v) if k == "data" else v) for k, v in r.items()}) for r in rows}


def read_record_summary(engine: Engine) -> RecordSummary:
    """Record ETags, active uncounts and the tables' digest, in one connection (no bytes)."""
    from sqlalchemy import inspect

    insp = inspect(engine)
    if not insp.has_table("counted_games"):
        return RecordSummary({}, {}, None)
    with engine.connect() as conn:
        record = dict(conn.execute(select(counted_games.c.game_id, counted_games.c.etag)).all())
        log = conn.execute(
            select(uncounted_games.c.game_id, uncounted_games.c.action, uncounted_games.c.etag)
            .order_by(uncounted_games.c.id)
        ).all()
        state = conn.execute(
            select(final_tables_state.c.games_digest, final_tables_state.c.generation)
            .where(final_tables_state.c.name == STATE_NAME)
        ).first()
    tables_digest = state[0] if state is not None and state[1] else None
    return RecordSummary(record, _active_uncounts(log), tables_digest)


def _active_uncounts(log) -> dict[str, str]:
    """game id -> ETag of its latest log entry when that entry is an uncount."""
    latest: dict[str, tuple[str, str]] = {}
    for game_id, action, etag in log:
        latest[game_id] = (action, etag)
    return {g: etag for g, (action, etag) in latest.items() if action == "uncount"}


@dataclass(frozen=True)
class LogEntry:
    id: int
    game_id: str
    action: str
    etag: str | None
    reason: str
    actor: str | None
    at: str
    data: bytes | None


def uncount(engine: Engine, game_id: str, reason: str, actor: str | None) -> LogEntry:
    """Remove a game from the record, logged (who, when, why, the bytes), in one transaction.

    The state's generation moves to now, so a run that read the record before this cannot write
    its (older) tables back; the tables still count the game until the next run recomputes them
    (the game-over sensor sees the record no longer matches the tables). LookupError when the
    game is not counted."""
    if not reason.strip():
        raise ValueError("a reason is required to uncount a game")
    create_state_table(engine)
    _ensure_state_row(engine)
    at = utc_now()
    with engine.begin() as conn:
        row = conn.execute(select(counted_games).where(counted_games.c.game_id == game_id)).mappings().first()
        if row is None:
            raise LookupError(f"game {game_id!r} is not counted (no row in counted_games)")
        conn.execute(
            update(final_tables_state).where(final_tables_state.c.name == STATE_NAME).values(generation=at)
        )
        entry_id = conn.execute(
            insert(uncounted_games).values(
                game_id=game_id, action="uncount", etag=row["etag"], reason=reason, actor=actor, at=at,
                data=row["data"],
            )
        ).inserted_primary_key[0]
        conn.execute(delete(counted_games).where(counted_games.c.game_id == game_id))
    return LogEntry(entry_id, game_id, "uncount", row["etag"], reason, actor, at, bytes(row["data"]))


def recount(engine: Engine, game_id: str, reason: str, actor: str | None) -> LogEntry:
    """Undo the latest uncount of a game (logged): its archive version counts again. Returns the
    uncount entry undone (its bytes let the caller restore the archive). LookupError if none."""
    if not reason.strip():
        raise ValueError("a reason is required to recount a game")
    create_state_table(engine)
    at = utc_now()
    with engine.begin() as conn:
        last = conn.execute(
            select(uncounted_games).where(uncounted_games.c.game_id == game_id)
            .order_by(uncounted_games.c.id.desc())
        ).mappings().first()
        if last is None or last["action"] != "uncount":
            raise LookupError(f"game {game_id!r} has no uncount to undo")
        conn.execute(
            insert(uncounted_games).values(
                game_id=game_id, action="recount", etag=last["etag"], reason=reason, actor=actor, at=at, data=None,
            )
        )
    return LogEntry(
        last["id"], game_id, "uncount", last["etag"], last["reason"], last["actor"], last["at"],
        bytes(last["data"]) if last["data"] is not None else None,
    )


def read_log(engine: Engine) -> list[LogEntry]:
    from sqlalchemy import inspect

    if not inspect(engine).has_table("uncounted_games"):
        return []
    with engine.connect() as conn:
        rows = conn.execute(select(uncounted_games).order_by(uncounted_games.c.id)).mappings().all()
    return [LogEntry(**{k: (bytes(v) if k == "data" and v is not None else v) for k, v in r.items()}) for r in rows]


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
    """Remove players2, teams2, the state, the record and its log (tests, a fresh start)."""
    final_metadata.drop_all(engine, tables=[players2, teams2, final_tables_state, *RECORD_TABLES])
