"""Season business queries over the lake, in SQL, run by DuckDB in-process (docs/lake.md says why).

The lake's files are read from the object store by pyarrow (the same `S3FileSystem` that
writes them; only new or changed files, through the snapshot of `snapshot.py`) and handed to
DuckDB as Arrow data: DuckDB's own S3 reader (the `httpfs` extension) is downloaded at run
time, which this network forbids. The events are loaded once into a DuckDB temporary table,
then every query reads that table.

Each query is a table a page can show (docs/lake.md lists the columns):

| name | one row per | answers |
|---|---|---|
| `scoring_leaders` | season, shooter | who leads in goals; shots, pct, games with a shot |
| `team_shooting_by_quarter` | season, team, quarter (5 = all overtime) | where in the game a team scores |
| `lead_changes` | completed game | lead changes, times tied, the deficit the winner overcame |
| `clutch_scorers` | season, shooter with a clutch goal | game-winning goals, late tying or go-ahead goals |

`pct` is goals / shots rounded half up to two decimals, as in the box score (SPEC 5), computed
exactly: floor((200 * goals + shots) / (2 * shots)) / 100.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sidearm_assets.domain.checks import CheckOutcome, CheckSpec

PCT = "FLOOR((200.0 * SUM(goal) + COUNT(*)) / (2.0 * COUNT(*))) / 100.0"

QUERIES: dict[str, str] = {
    "scoring_leaders": f"""
        WITH per_shooter AS (
            SELECT season, team_id, jersey, player_id,
                   CAST(COUNT(*) AS INTEGER) AS shots,
                   CAST(SUM(goal) AS INTEGER) AS goals,
                   {PCT} AS pct,
                   CAST(COUNT(DISTINCT game_id) AS INTEGER) AS games
            FROM events
            WHERE kind = 'shot'
            GROUP BY season, team_id, jersey, player_id
        )
        SELECT s.season,
               CAST(RANK() OVER (PARTITION BY s.season ORDER BY s.goals DESC) AS INTEGER) AS rank_goals,
               s.player_id, p.name AS player_name, s.team_id, t.name AS team_name, s.jersey,
               s.goals, s.shots, s.pct, s.games
        FROM per_shooter AS s
        LEFT JOIN players AS p ON p.id = s.player_id
        LEFT JOIN teams AS t ON t.id = s.team_id
        ORDER BY s.season, s.goals DESC, s.pct DESC, s.shots DESC, s.team_id, s.jersey
    """,
    "team_shooting_by_quarter": f"""
        WITH per_quarter AS (
            SELECT season, team_id, CAST(LEAST(period, 5) AS INTEGER) AS quarter,
                   CAST(COUNT(*) AS INTEGER) AS shots,
                   CAST(SUM(goal) AS INTEGER) AS goals,
                   {PCT} AS pct,
                   CAST(COUNT(DISTINCT game_id) AS INTEGER) AS games
            FROM events
            WHERE kind = 'shot'
            GROUP BY season, team_id, LEAST(period, 5)
        )
        SELECT q.season, q.team_id, t.name AS team_name, q.quarter, q.shots, q.goals, q.pct, q.games
        FROM per_quarter AS q
        LEFT JOIN teams AS t ON t.id = q.team_id
        ORDER BY q.season, q.team_id, q.quarter
    """,
    # A goal changes the difference by one, so the lead passes through a tie before it changes
    # hands: a lead change is a goal that breaks a tie for the other team than the one that
    # broke the previous tie.
    "lead_changes": """
        WITH goals AS (
            SELECT game_id, event_id, home_score - away_score AS diff,
                   CASE WHEN team_id = home_teamid THEN 1 ELSE -1 END AS side
            FROM events
            WHERE kind = 'shot' AND goal = 1
        ),
        tie_breakers AS (
            SELECT game_id, side,
                   LAG(side) OVER (PARTITION BY game_id ORDER BY event_id) AS previous_side
            FROM goals
            WHERE diff = side
        ),
        changes AS (
            SELECT game_id,
                   SUM(CASE WHEN previous_side IS NOT NULL AND previous_side <> side THEN 1 ELSE 0 END) AS lead_changes
            FROM tie_breakers
            GROUP BY game_id
        ),
        ties AS (
            SELECT game_id, COUNT(*) AS times_tied FROM goals WHERE diff = 0 GROUP BY game_id
        ),
        games AS (
            SELECT season, game_id, home_teamid, away_teamid,
                   MAX(home_score) AS home_score, MAX(away_score) AS away_score,
                   MAX(away_score - home_score) AS home_deficit, MAX(home_score - away_score) AS away_deficit
            FROM events
            GROUP BY season, game_id, home_teamid, away_teamid
        )
        SELECT g.season, g.game_id, g.home_teamid, h.name AS home_name, g.away_teamid, a.name AS away_name,
               CAST(g.home_score AS INTEGER) AS home_score, CAST(g.away_score AS INTEGER) AS away_score,
               CASE WHEN g.home_score > g.away_score THEN g.home_teamid
                    WHEN g.away_score > g.home_score THEN g.away_teamid END AS winner_teamid,
               CAST(COALESCE(c.lead_changes, 0) AS INTEGER) AS lead_changes,
               CAST(COALESCE(t.times_tied, 0) AS INTEGER) AS times_tied,
               CAST(CASE WHEN g.home_score > g.away_score THEN GREATEST(g.home_deficit, 0)
                         WHEN g.away_score > g.home_score THEN GREATEST(g.away_deficit, 0)
                         ELSE 0 END AS INTEGER) AS winner_largest_deficit
        FROM games AS g
        LEFT JOIN changes AS c ON c.game_id = g.game_id
        LEFT JOIN ties AS t ON t.game_id = g.game_id
        LEFT JOIN teams AS h ON h.id = g.home_teamid
        LEFT JOIN teams AS a ON a.id = g.away_teamid
        ORDER BY g.season, g.game_id
    """,
    # The game-winning goal is the winner's goal that put it ahead for good: its (loser's final
    # score + 1)-th goal. A late tying or go-ahead goal is one in the 4th quarter or overtime
    # after which the scorer's team is level or one up.
    "clutch_scorers": """
        WITH finals AS (
            SELECT game_id, MAX(home_score) AS home_final, MAX(away_score) AS away_final
            FROM events
            GROUP BY game_id
        ),
        goals AS (
            SELECT e.season, e.team_id, e.jersey, e.player_id, e.period,
                   CASE WHEN e.team_id = e.home_teamid THEN e.home_score - e.away_score
                        ELSE e.away_score - e.home_score END AS margin_after,
                   CASE WHEN e.team_id = e.home_teamid THEN e.home_score ELSE e.away_score END AS own_after,
                   CASE WHEN e.team_id = e.home_teamid THEN f.home_final ELSE f.away_final END AS own_final,
                   CASE WHEN e.team_id = e.home_teamid THEN f.away_final ELSE f.home_final END AS other_final
            FROM events AS e
            JOIN finals AS f ON f.game_id = e.game_id
            WHERE e.kind = 'shot' AND e.goal = 1
        ),
        per_shooter AS (
            SELECT season, team_id, jersey, player_id,
                   CAST(SUM(CASE WHEN own_final > other_final AND own_after = other_final + 1 THEN 1 ELSE 0 END)
                        AS INTEGER) AS game_winning_goals,
                   CAST(SUM(CASE WHEN period >= 4 AND margin_after IN (0, 1) THEN 1 ELSE 0 END)
                        AS INTEGER) AS late_tying_or_go_ahead_goals,
                   CAST(COUNT(*) AS INTEGER) AS goals
            FROM goals
            GROUP BY season, team_id, jersey, player_id
        )
        SELECT s.season, s.player_id, p.name AS player_name, s.team_id, t.name AS team_name, s.jersey,
               s.game_winning_goals, s.late_tying_or_go_ahead_goals, s.goals
        FROM per_shooter AS s
        LEFT JOIN players AS p ON p.id = s.player_id
        LEFT JOIN teams AS t ON t.id = s.team_id
        WHERE s.game_winning_goals + s.late_tying_or_go_ahead_goals > 0
        ORDER BY s.season, s.game_winning_goals DESC, s.late_tying_or_go_ahead_goals DESC, s.team_id, s.jersey
    """,
}

ANALYTICS = tuple(QUERIES)


@dataclass
class AnalyticsResult:
    tables: dict[str, list[dict]]
    events: int  # lake rows scanned
    games: int
    seconds_scan: float  # reading the lake into DuckDB
    seconds_queries: dict[str, float]
    files: tuple[str, ...] | None = None  # the lake files read (None when given Arrow data)
    game_ids: tuple[str, ...] = ()
    files_fetched: int | None = None  # of `files`, fetched this time (the rest from the snapshot)
    snapshot_note: str | None = None  # why the snapshot was not used or not written, if so


def _reference_tables(teams: list[dict], players: list[dict]):
    import pyarrow as pa

    teams_t = pa.Table.from_pylist(
        [{"id": t["id"], "name": t["name"]} for t in teams], schema=pa.schema([("id", pa.int32()), ("name", pa.string())])
    )
    players_t = pa.Table.from_pylist(
        [{"id": p["id"], "name": p["name"], "teamid": p["teamid"]} for p in players],
        schema=pa.schema([("id", pa.int32()), ("name", pa.string()), ("teamid", pa.int32())]),
    )
    return teams_t, players_t


def connect(events, teams: list[dict], players: list[dict], paths: list[str] | None = None):
    """A DuckDB connection with the table `events`, plus `teams` and `players`.

    `events` is a `store.LakeLocation` (the lake is read chunk by chunk, one GET per file, and
    appended to the table) or any Arrow table or dataset (scanned once). DuckDB keeps the
    table in memory and spills to its temporary folder past its memory limit, so a season
    larger than memory still runs. `paths` (lake input only): the files to read, default all.
    Returns (connection, rows, seconds).
    """
    import duckdb

    from sidearm_assets.lake import store

    started = time.monotonic()
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    teams_t, players_t = _reference_tables(teams, players)
    con.register("teams", teams_t)
    con.register("players", players_t)
    con.register("lake_scan", store.arrow_schema().empty_table())
    con.execute("CREATE TEMP TABLE events AS SELECT * FROM lake_scan")
    con.unregister("lake_scan")
    chunks = store.iter_event_tables(events, paths=paths) if isinstance(events, store.LakeLocation) else [events]
    for chunk in chunks:
        con.register("lake_scan", chunk)
        con.execute("INSERT INTO events SELECT * FROM lake_scan")
        con.unregister("lake_scan")
    count = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return con, count, time.monotonic() - started


def run_query(con, name: str) -> list[dict]:
    cursor = con.execute(QUERIES[name])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def compute_analytics(
    events, teams: list[dict], players: list[dict], names: tuple[str, ...] = ANALYTICS, use_snapshot: bool = True
) -> AnalyticsResult:
    """Every query in `names` over the lake's events; rows as dicts in each query's order.

    `events` is a `store.LakeLocation` or Arrow data. A lake is read through its snapshot
    (`snapshot.read_lake`: only new or changed game files are fetched) unless `use_snapshot`
    is False, which reads every file in bounded chunks and leaves the snapshot alone.
    """
    from sidearm_assets.lake import snapshot, store

    paths, fetched, note = None, None, None
    started = time.monotonic()
    if isinstance(events, store.LakeLocation) and use_snapshot:
        read = snapshot.read_lake(events)
        paths, fetched, note = list(read.versions), len(read.fetched), read.snapshot_problem
        events = read.table
    elif isinstance(events, store.LakeLocation):
        paths = [i.path for i in store.lake_files(events)]
        fetched = len(paths)
    read_seconds = time.monotonic() - started
    con, count, scan_seconds = connect(events, teams, players, paths)
    scan_seconds += read_seconds
    try:
        tables, seconds = {}, {}
        for name in names:
            started = time.monotonic()
            tables[name] = run_query(con, name)
            seconds[name] = time.monotonic() - started
        game_ids = tuple(r[0] for r in con.execute("SELECT DISTINCT game_id FROM events ORDER BY game_id").fetchall())
    finally:
        con.close()
    return AnalyticsResult(
        tables, count, len(game_ids), scan_seconds, seconds, tuple(paths) if paths is not None else None, game_ids,
        fetched, note,
    )


LAKE_CHECKS = {
    "lake_one_file_per_game": CheckSpec(
        "lead_changes", "ERROR",
        "The lake holds each game exactly once: one file per game id, at the game's own path.",
    ),
    "leader_goals_match_game_scores": CheckSpec(
        "scoring_leaders", "ERROR",
        "The shooters' goals add up to the games' final scores, and their shots to the lake's shots.",
    ),
    "quarters_match_leaders": CheckSpec(
        "team_shooting_by_quarter", "ERROR",
        "Each team's shots and goals over its quarters equal its shooters' totals.",
    ),
}


def _lake_outcome(name: str, passed: bool, metadata: dict) -> CheckOutcome:
    return LAKE_CHECKS[name].outcome(name, passed, metadata)


def lake_checks(result: AnalyticsResult) -> list[CheckOutcome]:
    """Consistency checks of one analytics computation (the queries answer each other)."""
    from collections import Counter

    from sidearm_assets.lake import store

    out = []
    leaders, quarters, games = (result.tables.get(n) for n in ("scoring_leaders", "team_shooting_by_quarter", "lead_changes"))
    if result.files is not None and games is not None:
        names = Counter(path.rsplit("/", 1)[-1] for path in result.files)
        expected = {store.file_name(g) for g in result.game_ids}
        strays = sorted(n for n in names if n not in expected)
        missing = sorted(n for n in expected if n not in names)
        passed = not strays and not missing and len(result.files) == len(result.game_ids) == len(games)
        out.append(_lake_outcome("lake_one_file_per_game", passed, {
            "files": len(result.files), "games": len(result.game_ids), "game_rows": len(games),
            "files_not_named_for_their_game": strays[:20], "games_without_their_file": missing[:20],
        }))
    if leaders is not None and games is not None:
        leader_goals = sum(r["goals"] for r in leaders)
        game_goals = sum(r["home_score"] + r["away_score"] for r in games)
        out.append(_lake_outcome("leader_goals_match_game_scores", leader_goals == game_goals,
                                 {"leader_goals": leader_goals, "game_goals": game_goals}))
    if leaders is not None and quarters is not None:
        by_team: dict = {}
        for r in leaders:
            t = by_team.setdefault((r["season"], r["team_id"]), [0, 0, 0, 0])
            t[0] += r["shots"]
            t[1] += r["goals"]
        for r in quarters:
            t = by_team.setdefault((r["season"], r["team_id"]), [0, 0, 0, 0])
            t[2] += r["shots"]
            t[3] += r["goals"]
        wrong = [f"season {s} team {t}: shooters {v[0]}/{v[1]}, quarters {v[2]}/{v[3]}"
                 for (s, t), v in sorted(by_team.items()) if v[:2] != v[2:]]
        out.append(_lake_outcome("quarters_match_leaders", not wrong, {"teams": len(by_team), "mismatches": wrong[:20]}))
    return out


def markdown_table(rows: list[dict], limit: int = 25) -> str:
    """Rows as a Markdown table (the first `limit`), for the asset's metadata."""
    if not rows:
        return "no rows (no completed game in the lake yet)"
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:limit]:
        out.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    if len(rows) > limit:
        out.append(f"\n{len(rows) - limit} more row(s) in the table.")
    return "\n".join(out)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")
