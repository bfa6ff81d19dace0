"""The reference database `sidearmdb` (SPEC 3): schema, base data and reset, through SQLAlchemy.

Core tables only (no ORM), so the same statements run on SQLite, PostgreSQL and SQL Server
(`mssql+pyodbc`). No Dagster import: the simulator and the tests use this module directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
    update,
)

metadata = MetaData()

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(50)),
    Column("conference", String(50)),
    Column("wins", Integer),
    Column("losses", Integer),
)

players = Table(
    "players",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(50)),
    Column("number", String(3)),
    Column("shots", Integer),
    Column("goals", Integer),
    Column("teamid", Integer, ForeignKey("teams.id")),
)

games = Table(
    "games",
    metadata,
    Column("game_id", String(100), primary_key=True),
    Column("home_teamid", Integer, ForeignKey("teams.id")),
    Column("away_teamid", Integer, ForeignKey("teams.id")),
)

TEAM_COLUMNS = ("id", "name", "conference", "wins", "losses")
PLAYER_COLUMNS = ("id", "name", "number", "shots", "goals", "teamid")

# Base data: season to date before the default game. Jersey numbers repeat across the two teams
# (6, 12, 22) and one name repeats across players (two Ryan Murphys), as they do in real rosters.
BASE_TEAMS: tuple[dict, ...] = (
    {"id": 101, "name": "Hartwell Hawks", "conference": "Northeast Collegiate", "wins": 11, "losses": 2},
    {"id": 205, "name": "Millbrook Miners", "conference": "Mid-Atlantic Lacrosse", "wins": 9, "losses": 4},
)

_ROSTER = (
    # id, name, number, shots, goals, teamid
    (1, "Connor Walsh", "6", 48, 21, 101),
    (2, "Ryan Murphy", "12", 41, 17, 101),
    (3, "Eli Brandt", "22", 37, 14, 101),
    (4, "Mason Okafor", "3", 29, 10, 101),
    (5, "Tyler Quinn", "17", 24, 8, 101),
    (6, "Jack Devereaux", "8", 19, 6, 101),
    (7, "Sam Whitaker", "31", 12, 3, 101),
    (8, "Luke Ferraro", "44", 8, 2, 101),
    (9, "Nate Castillo", "2", 6, 1, 101),
    (10, "Owen Pratt", "15", 3, 0, 101),
    (11, "Ryan Murphy", "6", 45, 19, 205),
    (12, "Dante Hollis", "12", 39, 16, 205),
    (13, "Grant Sorensen", "22", 33, 12, 205),
    (14, "Kieran Boyle", "9", 30, 11, 205),
    (15, "Marcus Bell", "19", 22, 7, 205),
    (16, "Trey Lindqvist", "4", 18, 5, 205),
    (17, "Cole Ramsey", "27", 14, 4, 205),
    (18, "Aiden Park", "33", 9, 2, 205),
    (19, "Jonah Mercer", "1", 5, 1, 205),
    (20, "Felix Andrade", "50", 2, 0, 205),
)
BASE_PLAYERS: tuple[dict, ...] = tuple(dict(zip(PLAYER_COLUMNS, row)) for row in _ROSTER)

BASE_GAMES: tuple[dict, ...] = (
    {"game_id": "gamestream", "home_teamid": 101, "away_teamid": 205},
)


@dataclass(frozen=True)
class ResetSummary:
    teams: int
    players: int
    games_added: int


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get their folder created and a busy timeout."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        import pathlib

        path = pathlib.Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create `teams`, `players` and `games` where missing; existing tables are left as they are."""
    metadata.create_all(engine, tables=[teams, players, games])


def reset_base_tables(engine: Engine) -> ResetSummary:
    """Reset `players` and `teams` to the base data in one transaction (SPEC 4).

    Other tables are left alone: `games` only gains the default rows it lacks, and `teams` rows
    are updated in place rather than deleted, so schedule rows that reference them stay valid.
    """
    create_schema(engine)
    base_ids = [t["id"] for t in BASE_TEAMS]
    games_added = 0
    with engine.begin() as conn:
        conn.execute(delete(players))
        existing = set(conn.scalars(select(teams.c.id)))
        for team in BASE_TEAMS:
            if team["id"] in existing:
                conn.execute(update(teams).where(teams.c.id == team["id"]).values(**team))
            else:
                conn.execute(insert(teams).values(**team))
        referenced = set(conn.scalars(select(games.c.home_teamid))) | set(
            conn.scalars(select(games.c.away_teamid))
        )
        stale = [i for i in existing if i not in base_ids and i not in referenced]
        if stale:
            conn.execute(delete(teams).where(teams.c.id.in_(stale)))
        conn.execute(insert(players), [dict(p) for p in BASE_PLAYERS])
        scheduled = set(conn.scalars(select(games.c.game_id)))
        for game in BASE_GAMES:
            if game["game_id"] not in scheduled:
                conn.execute(insert(games).values(**game))
                games_added += 1
    return ResetSummary(teams=len(BASE_TEAMS), players=len(BASE_PLAYERS), games_added=games_added)


def read_rows(engine: Engine, table: Table) -> list[dict]:
    """All rows of `table` as plain dicts, ordered by primary key."""
    order = list(table.primary_key.columns)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]
