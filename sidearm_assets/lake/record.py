"""What the lake must hold, from the record of counted games (`counted_games` in sidearmdb).

The lake follows the record: one file per row of `counted_games`, built from that row's bytes,
at that row's ETag. `lake_games` says which ETag each file was built from, so what is missing,
stale or gone is one SQL comparison of two keyed tables (no stream bytes read, no lake listing);
only the rows of the games to write are then read, in chunks. Reference rows are read by key
(the teams of those games and their rosters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, func, inspect, or_, select

from sidearm_assets.lake.tables import lake_games
from sidearm_assets.storage import reference_db
from sidearm_assets.storage.final_tables_db import counted_games
from sidearm_assets.storage.sql_common import CHUNK, chunks


@dataclass
class LakePlan:
    """The lake's work to follow the record."""

    to_write: dict[str, str] = field(default_factory=dict)  # game id -> the record's ETag
    gone: list[str] = field(default_factory=list)  # in the lake, no longer counted
    counted: int = 0


@dataclass(frozen=True)
class RecordedGame:
    game_id: str
    etag: str
    home_teamid: int | None
    away_teamid: int | None
    data: bytes


def has_record(engine: Engine) -> bool:
    return inspect(engine).has_table(counted_games.name)


def plan(engine: Engine) -> LakePlan:
    """Counted games whose file is missing or built from another ETag, and files of games no
    longer counted: two anti-joins on the keys."""
    out = LakePlan()
    if not has_record(engine):
        return out  # no final-tables run yet (or the wrong database): nothing to follow, nothing deleted
    c, lake = counted_games, lake_games
    with engine.connect() as conn:
        out.to_write = dict(conn.execute(
            select(c.c.game_id, c.c.etag)
            .select_from(c.outerjoin(lake, lake.c.game_id == c.c.game_id))
            .where(or_(lake.c.game_id.is_(None), lake.c.etag != c.c.etag))
        ).all())
        out.gone = sorted(conn.scalars(
            select(lake.c.game_id)
            .select_from(lake.outerjoin(c, c.c.game_id == lake.c.game_id))
            .where(c.c.game_id.is_(None))
        ))
        out.counted = conn.scalar(select(func.count()).select_from(c))
    return out


def counted_etags(engine: Engine) -> dict[str, str]:
    """Every counted game -> its ETag (the whole record's keys: reconciling and checks only)."""
    if not has_record(engine):
        return {}
    with engine.connect() as conn:
        return dict(conn.execute(select(counted_games.c.game_id, counted_games.c.etag)).all())


def read_games(engine: Engine, game_ids: list[str]) -> list[RecordedGame]:
    """The record's rows of `game_ids` (with their bytes); ids not in the record are left out."""
    c = counted_games
    out = []
    with engine.connect() as conn:
        for part in chunks(sorted(game_ids)):
            for r in conn.execute(select(c.c.game_id, c.c.etag, c.c.home_teamid, c.c.away_teamid, c.c.data)
                                  .where(c.c.game_id.in_(part))):
                out.append(RecordedGame(r.game_id, r.etag, r.home_teamid, r.away_teamid, bytes(r.data)))
    return out


def schedule_of(engine: Engine, games: list[RecordedGame]) -> list[dict]:
    """The schedule rows of `games`: the teams kept with the record, else the `games` table's row."""
    rows = {g.game_id: {"game_id": g.game_id, "home_teamid": g.home_teamid, "away_teamid": g.away_teamid}
            for g in games if g.home_teamid is not None and g.away_teamid is not None}
    unknown = [g.game_id for g in games if g.game_id not in rows]
    with engine.connect() as conn:
        for part in chunks(unknown):
            for r in conn.execute(select(reference_db.games).where(reference_db.games.c.game_id.in_(part))):
                rows[r.game_id] = dict(r._mapping)
    return list(rows.values())


def reference_of(engine: Engine, team_ids: set[int]) -> tuple[list[dict], list[dict]]:
    """(teams, players) of `team_ids` only, read by key."""
    ids = sorted(t for t in team_ids if t is not None)
    teams, players = [], []
    with engine.connect() as conn:
        for part in chunks(ids, CHUNK):
            teams += [dict(r._mapping) for r in conn.execute(
                select(reference_db.teams).where(reference_db.teams.c.id.in_(part)))]
            players += [dict(r._mapping) for r in conn.execute(
                select(reference_db.players).where(reference_db.players.c.teamid.in_(part)))]
    return teams, players
