"""The season tables: one SQL aggregate each over the games' facts, run inside sidearmdb.

Each `season_*` table is rebuilt by one `INSERT ... SELECT` over the fact tables (`tables.py`),
joined to `teams` and `players` for the names, all four in one transaction: a reader sees the
previous set of tables or the new one, never a mix or an empty table. Nothing travels through
Python, so refreshing the season costs one pass over the facts (a few rows per game) in the
database, not a read of the lake. Core SQLAlchemy only (window functions, integer division):
SQLite 3.25+, PostgreSQL and SQL Server compile the same statements.

`pct` is goals / shots rounded half up to two decimals, as on the box score (1/8 gives 0.13),
exactly, in integers: (200 * goals + shots) // (2 * shots) / 100.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Float, Integer, cast, delete, func, insert, literal, select

from sidearm_assets.lake import tables
from sidearm_assets.lake.tables import TABLES, lake_games, lake_shooter_games, lake_team_quarters
from sidearm_assets.storage import reference_db
from sidearm_assets.storage.sql_common import utc_now

teams, players = reference_db.teams, reference_db.players


def pct(goals, shots):
    return cast((literal(200) * goals + shots) // (literal(2) * shots), Float) / literal(100.0)


def scoring_leaders_select():
    s = lake_shooter_games
    per = (
        select(s.c.season, s.c.team_id, s.c.jersey, s.c.player_id,
               func.sum(s.c.shots).label("shots"), func.sum(s.c.goals).label("goals"),
               func.count().label("games"))
        .group_by(s.c.season, s.c.team_id, s.c.jersey, s.c.player_id)
        .subquery("per_shooter")
    )
    return (
        select(
            per.c.season,
            func.rank().over(partition_by=per.c.season, order_by=per.c.goals.desc()).label("rank_goals"),
            per.c.player_id, players.c.name.label("player_name"), per.c.team_id, teams.c.name.label("team_name"),
            per.c.jersey, cast(per.c.goals, Integer).label("goals"), cast(per.c.shots, Integer).label("shots"),
            pct(per.c.goals, per.c.shots).label("pct"), cast(per.c.games, Integer).label("games"),
        )
        .select_from(per)
        .outerjoin(players, players.c.id == per.c.player_id)
        .outerjoin(teams, teams.c.id == per.c.team_id)
    )


def team_shooting_by_quarter_select():
    q = lake_team_quarters
    per = (
        select(q.c.season, q.c.team_id, q.c.quarter, func.sum(q.c.shots).label("shots"),
               func.sum(q.c.goals).label("goals"), func.count().label("games"))
        .group_by(q.c.season, q.c.team_id, q.c.quarter)
        .subquery("per_quarter")
    )
    return (
        select(per.c.season, per.c.team_id, teams.c.name.label("team_name"), per.c.quarter,
               cast(per.c.shots, Integer).label("shots"), cast(per.c.goals, Integer).label("goals"),
               pct(per.c.goals, per.c.shots).label("pct"), cast(per.c.games, Integer).label("games"))
        .select_from(per)
        .outerjoin(teams, teams.c.id == per.c.team_id)
    )


def lead_changes_select():
    g = lake_games
    home, away = teams.alias("home"), teams.alias("away")
    return (
        select(g.c.season, g.c.game_id, g.c.home_teamid, home.c.name.label("home_name"), g.c.away_teamid,
               away.c.name.label("away_name"), g.c.home_score, g.c.away_score, g.c.winner_teamid, g.c.lead_changes,
               g.c.times_tied, g.c.winner_largest_deficit)
        .select_from(g)
        .outerjoin(home, home.c.id == g.c.home_teamid)
        .outerjoin(away, away.c.id == g.c.away_teamid)
    )


def clutch_scorers_select():
    s = lake_shooter_games
    gwg, late = func.sum(s.c.game_winning_goals), func.sum(s.c.late_tying_or_go_ahead_goals)
    per = (
        select(s.c.season, s.c.team_id, s.c.jersey, s.c.player_id, gwg.label("game_winning_goals"),
               late.label("late_tying_or_go_ahead_goals"), func.sum(s.c.goals).label("goals"))
        .group_by(s.c.season, s.c.team_id, s.c.jersey, s.c.player_id)
        .having(gwg + late > 0)
        .subquery("per_shooter")
    )
    return (
        select(per.c.season, per.c.player_id, players.c.name.label("player_name"), per.c.team_id,
               teams.c.name.label("team_name"), per.c.jersey,
               cast(per.c.game_winning_goals, Integer).label("game_winning_goals"),
               cast(per.c.late_tying_or_go_ahead_goals, Integer).label("late_tying_or_go_ahead_goals"),
               cast(per.c.goals, Integer).label("goals"))
        .select_from(per)
        .outerjoin(players, players.c.id == per.c.player_id)
        .outerjoin(teams, teams.c.id == per.c.team_id)
    )


SELECTS = {
    "scoring_leaders": scoring_leaders_select,
    "team_shooting_by_quarter": team_shooting_by_quarter_select,
    "lead_changes": lead_changes_select,
    "clutch_scorers": clutch_scorers_select,
}
# The order a page (and each asset's metadata) shows the rows in.
ORDER = {
    "scoring_leaders": ("season", "rank_goals", "-pct", "-shots", "team_id", "jersey"),
    "team_shooting_by_quarter": ("season", "team_id", "quarter"),
    "lead_changes": ("season", "game_id"),
    "clutch_scorers": ("season", "-game_winning_goals", "-late_tying_or_go_ahead_goals", "team_id", "jersey"),
}


@dataclass(frozen=True)
class SeasonWrite:
    rows: dict[str, int]  # rows in each season table
    games: int
    events: int
    generation: str


def refresh_season(engine: Engine, run_id: str | None = None) -> SeasonWrite:
    """Rebuild the four season tables from the facts, in one transaction (the module docstring)."""
    tables.create_tables(engine)
    generation = utc_now()
    tables.ensure_row(engine, tables.season_state, tables.SEASON_STATE_NAME, generation="", games=0, events=0)
    with engine.begin() as conn:
        tables.claim_row(conn, tables.season_state, tables.SEASON_STATE_NAME, generation=generation, run_id=run_id,
                         written_at=generation)
        counts = {}
        for name, build in SELECTS.items():
            table = TABLES[name]
            conn.execute(delete(table))
            query = build()
            conn.execute(insert(table).from_select([c.name for c in query.selected_columns], query))
            counts[name] = conn.scalar(select(func.count()).select_from(table))
        games, events = conn.execute(
            select(func.count(), func.coalesce(func.sum(lake_games.c.events), 0))
        ).one()
        tables.claim_row(conn, tables.season_state, tables.SEASON_STATE_NAME, games=games, events=int(events))
    return SeasonWrite(counts, games, int(events), generation)


@dataclass(frozen=True)
class SeasonTotals:
    """What the checks compare, read back from the season tables."""

    leader_goals: int
    leader_shots: int
    game_goals: int
    by_team_leaders: dict  # (season, team) -> (shots, goals)
    by_team_quarters: dict


def season_totals(engine: Engine) -> SeasonTotals:
    leaders, quarters, games = (TABLES[n] for n in ("scoring_leaders", "team_shooting_by_quarter", "lead_changes"))
    with engine.connect() as conn:
        goals, shots = conn.execute(select(func.coalesce(func.sum(leaders.c.goals), 0),
                                           func.coalesce(func.sum(leaders.c.shots), 0))).one()
        game_goals = conn.scalar(select(func.coalesce(func.sum(games.c.home_score + games.c.away_score), 0)))

        def by_team(table):
            rows = conn.execute(select(table.c.season, table.c.team_id, func.sum(table.c.shots), func.sum(table.c.goals))
                                .group_by(table.c.season, table.c.team_id))
            return {(s, t): (int(sh), int(g)) for s, t, sh, g in rows}

        return SeasonTotals(int(goals), int(shots), int(game_goals), by_team(leaders), by_team(quarters))

