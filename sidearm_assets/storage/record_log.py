"""Removing a counted game from the final tables, explicitly and logged, and undoing it (SPEC 6).

`uncount` logs who, when, why and the bytes in `uncounted_games`, deletes the game's record row
and its facts, marks its completion `uncounted` (the same version filed again stays uncounted; a
new version counts) and marks the tables stale, all in one transaction: the game-over sensor then
requests a run, which rebuilds `players2`/`teams2` without it. `recount` logs the reversal and
files the logged bytes in the inbox again, so the next run counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from sidearm_assets.storage.final_schema import (
    PENDING,
    STATE_NAME,
    UNCOUNTED,
    completions,
    counted_games,
    ensure_schema,
    final_tables_state,
    player_game_facts,
    team_game_facts,
    uncounted_games,
)
from sidearm_assets.storage.final_tables_db import _claim_state
from sidearm_assets.storage.sql_common import utc_now


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
    """Remove a counted game (see the module docstring); LookupError when it is not counted."""
    if not reason.strip():
        raise ValueError("a reason is required to uncount a game")
    ensure_schema(engine)
    at = utc_now()
    with engine.begin() as conn:
        _claim_state(conn, at)
        row = conn.execute(select(counted_games).where(counted_games.c.game_id == game_id)).mappings().first()
        if row is None:
            raise LookupError(f"game {game_id!r} is not counted (no row in counted_games)")
        entry_id = conn.execute(
            insert(uncounted_games).values(
                game_id=game_id, action="uncount", etag=row["etag"], reason=reason, actor=actor, at=at, data=row["data"],
            )
        ).inserted_primary_key[0]
        conn.execute(delete(counted_games).where(counted_games.c.game_id == game_id))
        conn.execute(delete(player_game_facts).where(player_game_facts.c.game_id == game_id))
        conn.execute(delete(team_game_facts).where(team_game_facts.c.game_id == game_id))
        conn.execute(
            update(completions).where((completions.c.game_id == game_id) & (completions.c.etag == row["etag"]))
            .values(state=UNCOUNTED, problem=None)
        )
        conn.execute(update(final_tables_state).where(final_tables_state.c.name == STATE_NAME).values(stale=1))
    return LogEntry(entry_id, game_id, "uncount", row["etag"], reason, actor, at, bytes(row["data"]))


def recount(engine: Engine, game_id: str, reason: str, actor: str | None) -> LogEntry:
    """Undo the latest uncount of a game (logged): its bytes are pending in the inbox again, unless
    a newer version of the game was filed since (that one counts). Returns the uncount entry undone
    (its bytes let the caller restore the archive). LookupError when there is none."""
    if not reason.strip():
        raise ValueError("a reason is required to recount a game")
    ensure_schema(engine)
    at = utc_now()
    with engine.begin() as conn:
        last = conn.execute(
            select(uncounted_games).where(uncounted_games.c.game_id == game_id).order_by(uncounted_games.c.id.desc())
        ).mappings().first()
        if last is None or last["action"] != "uncount":
            raise LookupError(f"game {game_id!r} has no uncount to undo")
        conn.execute(insert(uncounted_games).values(
            game_id=game_id, action="recount", etag=last["etag"], reason=reason, actor=actor, at=at, data=None,
        ))
        filed = conn.execute(select(completions.c.etag).where(completions.c.game_id == game_id)).first()
        if filed is None and last["data"] is not None:
            conn.execute(insert(completions).values(
                game_id=game_id, etag=last["etag"], version=None, data=last["data"], filed_at=at, state=PENDING,
            ))
        elif filed is not None and filed[0] == last["etag"]:
            conn.execute(update(completions).where(completions.c.game_id == game_id).values(state=PENDING, problem=None))
    return LogEntry(
        last["id"], game_id, "uncount", last["etag"], last["reason"], last["actor"], last["at"],
        bytes(last["data"]) if last["data"] is not None else None,
    )


def read_log(engine: Engine) -> list[LogEntry]:
    ensure_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(uncounted_games).order_by(uncounted_games.c.id)).mappings().all()
    return [LogEntry(**{k: (bytes(v) if k == "data" and v is not None else v) for k, v in r.items()}) for r in rows]
