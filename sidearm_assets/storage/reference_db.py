"""The reference database `sidearmdb` (SPEC 3): schema, base data and reset, through SQLAlchemy.

Core tables only (no ORM), so the same statements run on SQLite, PostgreSQL and SQL Server
(`mssql+pyodbc`). No Dagster import: the simulator and the tests use this module directly.

League rows (`gamestream --games N`, gamestream/league.py) live beside the base data in reserved
id ranges: teams `LEAGUE_TEAM_IDS`, players `LEAGUE_PLAYER_IDS`, games whose id starts with
`LEAGUE_GAME_PREFIX`. Season rows (`gamestream season`, gamestream/season.py) have ranges of their
own (`SEASON`). `reset_base_tables` leaves the rows of every reserved range alone, and
`install_league_rows` / `install_season_rows` write only their own range, so none can change
what another owns.
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
    and_,
    bindparam,
    create_engine,
    delete,
    insert,
    or_,
    select,
    update,
)

from sidearm_assets.storage.sql_common import chunks

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


# Reserved for league rows: far from the base ids (101/205, players 1-20) and from ids a person
# would pick by hand. Team k of a league is 10_000 + k; its players 1_000_000 + 100 * k + j.
LEAGUE_TEAM_IDS = range(10_001, 20_000)
LEAGUE_PLAYER_IDS = range(1_000_100, 2_000_000)
LEAGUE_GAME_PREFIX = "league-"



@dataclass(frozen=True)
class ReservedRows:
    """The keys reserved for one kind of generated rows."""

    name: str
    team_ids: range
    player_ids: range
    game_prefix: str


LEAGUE = ReservedRows("league", LEAGUE_TEAM_IDS, LEAGUE_PLAYER_IDS, LEAGUE_GAME_PREFIX)
# A season's team k is 20_000 + k, its players 2_000_000 + 100 * k + j, its games `season-00001`.
SEASON = ReservedRows("season", range(20_001, 30_000), range(2_000_100, 3_000_000), "season-")
RESERVED = (LEAGUE, SEASON)


def is_league_team(team_id: int) -> bool:
    return team_id in LEAGUE_TEAM_IDS


def is_league_player(player_id: int) -> bool:
    return player_id in LEAGUE_PLAYER_IDS


def is_league_game(game_id: str) -> bool:
    return game_id.startswith(LEAGUE_GAME_PREFIX)


def is_reserved_team(team_id: int) -> bool:
    return any(team_id in r.team_ids for r in RESERVED)


def _not_reserved_player():
    """Players that are no reserved range's rows: each range's player ids on that range's teams."""
    id_, team = players.c.id, players.c.teamid
    return and_(*(
        or_(
            id_ < r.player_ids.start, id_ >= r.player_ids.stop,
            team < r.team_ids.start, team >= r.team_ids.stop, team.is_(None),
        )
        for r in RESERVED
    ))


@dataclass(frozen=True)
class ResetSummary:
    teams: int
    players: int
    games_added: int


def make_engine(url: str, busy_timeout: float = 30.0) -> Engine:
    """An engine for `url`. SQLite files get their folder created, a busy timeout (seconds a
    statement waits for another writer's lock) and write-ahead logging: readers never wait for a
    writer, and a writer waits only for another writer (docs/final-tables.md)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        import pathlib

        from sqlalchemy import event

        path = pathlib.Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except Exception:  # locked by a writer at this moment: the mode is persistent, set once
                pass
            finally:
                cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create `teams`, `players` and `games` where missing; existing tables are left as they are."""
    metadata.create_all(engine, tables=[teams, players, games])


def reset_base_tables(engine: Engine) -> ResetSummary:
    """Reset `players` and `teams` to the base data in one transaction (SPEC 4).

    Other tables are left alone: `games` only gains the default rows it lacks, and `teams` rows
    are updated in place rather than deleted, so schedule rows that reference them stay valid.
    League and season rows (the reserved id ranges above) are not base data and stay as they are.
    """
    create_schema(engine)
    base_ids = [t["id"] for t in BASE_TEAMS]
    games_added = 0
    with engine.begin() as conn:
        conn.execute(delete(players).where(_not_reserved_player()))
        existing = set(conn.scalars(select(teams.c.id)))
        for team in BASE_TEAMS:
            if team["id"] in existing:
                conn.execute(update(teams).where(teams.c.id == team["id"]).values(**team))
            else:
                conn.execute(insert(teams).values(**team))
        referenced = set(conn.scalars(select(games.c.home_teamid))) | set(
            conn.scalars(select(games.c.away_teamid))
        )
        stale = [i for i in existing if i not in base_ids and i not in referenced and not is_reserved_team(i)]
        if stale:
            conn.execute(delete(teams).where(teams.c.id.in_(stale)))
        conn.execute(insert(players), [dict(p) for p in BASE_PLAYERS])
        scheduled = set(conn.scalars(select(games.c.game_id)))
        for game in BASE_GAMES:
            if game["game_id"] not in scheduled:
                conn.execute(insert(games).values(**game))
                games_added += 1
    return ResetSummary(teams=len(BASE_TEAMS), players=len(BASE_PLAYERS), games_added=games_added)


@dataclass(frozen=True)
class LeagueInstallSummary:
    teams: int
    players: int
    games: int
    players_removed: int  # league players of these teams that the new rosters no longer hold


def install_league_rows(
    engine: Engine, team_rows: list[dict], player_rows: list[dict], game_rows: list[dict]
) -> LeagueInstallSummary:
    """Write a league's rows beside the base data, in one transaction, idempotently.

    Each row is inserted or updated in place by its key, so installing twice changes nothing the
    second time and never duplicates. A league team's roster becomes exactly `player_rows` of that
    team. Rows outside the league ranges are refused (ValueError) before anything is written, so a
    league can never overwrite base data or rows someone added by hand.
    """
    return _install_reserved_rows(engine, LEAGUE, team_rows, player_rows, game_rows)


def install_season_rows(
    engine: Engine, team_rows: list[dict], player_rows: list[dict], game_rows: list[dict]
) -> LeagueInstallSummary:
    """`install_league_rows` for a season's rows (the `SEASON` ranges): one transaction,
    idempotent, rows outside the season ranges refused before anything is written."""
    return _install_reserved_rows(engine, SEASON, team_rows, player_rows, game_rows)


def _install_reserved_rows(
    engine: Engine, reserved: ReservedRows, team_rows: list[dict], player_rows: list[dict], game_rows: list[dict]
) -> LeagueInstallSummary:
    _check_reserved_rows(reserved, team_rows, player_rows, game_rows)
    create_schema(engine)
    team_ids = [t["id"] for t in team_rows]
    keep = {p["id"] for p in player_rows}
    removed = 0
    with engine.begin() as conn:
        _upsert(conn, teams, teams.c.id, "id", [{c: t[c] for c in TEAM_COLUMNS} for t in team_rows])
        for chunk in chunks(team_ids):
            stale = [
                i for i in conn.scalars(select(players.c.id).where(players.c.teamid.in_(chunk)))
                if i not in keep
            ]
            for ids in chunks(stale):
                removed += conn.execute(delete(players).where(players.c.id.in_(ids))).rowcount
        _upsert(conn, players, players.c.id, "id", [{c: p[c] for c in PLAYER_COLUMNS} for p in player_rows])
        _upsert(
            conn, games, games.c.game_id, "game_id",
            [{c: g[c] for c in ("game_id", "home_teamid", "away_teamid")} for g in game_rows],
        )
    return LeagueInstallSummary(len(team_rows), len(player_rows), len(game_rows), removed)


def _check_reserved_rows(
    reserved: ReservedRows, team_rows: list[dict], player_rows: list[dict], game_rows: list[dict]
) -> None:
    kind = reserved.name
    own_teams = {t["id"] for t in team_rows}
    problems = [f"team id {t['id']} is outside {reserved.team_ids}" for t in team_rows
                if t["id"] not in reserved.team_ids]
    problems += [f"player id {p['id']} is outside {reserved.player_ids}" for p in player_rows
                 if p["id"] not in reserved.player_ids]
    problems += [f"player {p['id']} plays for team {p['teamid']}, not a {kind} team" for p in player_rows
                 if p["teamid"] not in own_teams]
    problems += [f"game id {g['game_id']!r} does not start with {reserved.game_prefix!r}" for g in game_rows
                 if not g["game_id"].startswith(reserved.game_prefix)]
    problems += [f"game {g['game_id']!r} has a team that is not a {kind} team" for g in game_rows
                 if g["home_teamid"] not in own_teams or g["away_teamid"] not in own_teams]
    for name, keys in (("team", [t["id"] for t in team_rows]), ("player", [p["id"] for p in player_rows]),
                       ("game", [g["game_id"] for g in game_rows])):
        if len(keys) != len(set(keys)):
            problems.append(f"duplicate {name} keys")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ValueError(f"not {kind} rows (nothing was written): {shown}")


def _upsert(conn, table: Table, key_column, key: str, rows: list[dict]) -> None:
    """Insert the rows whose key is new, update the others (portable: no dialect-specific upsert)."""
    if not rows:
        return
    existing: set = set()
    for chunk in chunks([r[key] for r in rows]):
        existing.update(conn.scalars(select(key_column).where(key_column.in_(chunk))))
    new = [r for r in rows if r[key] not in existing]
    old = [r for r in rows if r[key] in existing]
    if new:
        conn.execute(insert(table), new)
    if old:
        values = {c: bindparam(f"v_{c}") for c in old[0] if c != key}
        stmt = update(table).where(key_column == bindparam("k_key")).values(**values)
        conn.execute(stmt, [{"k_key": r[key], **{f"v_{c}": r[c] for c in values}} for r in old])


def read_rows(engine: Engine, table: Table) -> list[dict]:
    """All rows of `table` as plain dicts, ordered by primary key."""
    order = list(table.primary_key.columns)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]


def rows_by_keys(engine: Engine, table: Table, key_column, keys) -> list[dict]:
    """The rows of `table` whose `key_column` is one of `keys` (looked up by key, in chunks), so a
    run touching k games reads O(k) rows, not the league."""
    keys = sorted({k for k in keys if k is not None})
    out: list[dict] = []
    with engine.connect() as conn:
        for chunk in chunks(keys):
            out += [dict(r._mapping) for r in conn.execute(select(table).where(key_column.in_(chunk)))]
    return out
