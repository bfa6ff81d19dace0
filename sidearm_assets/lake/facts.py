"""Each game's contribution to the season analytics, from its lake rows: DuckDB SQL, no other I/O.

The season tables are sums over games, so what a game adds is computed once, when its lake
file is written, and kept in sidearmdb keyed by the game (`tables.py`); a correction replaces
the game's facts whole and the season tables are one SQL aggregate over the facts of every
game (`season.py`). A game's rows are ~60, so the facts of the k games a run writes cost
milliseconds, whatever the size of the season.

| facts | one row per | holds |
|---|---|---|
| `game_facts` | game | season, teams, final score, winner, lead changes, times tied, the winner's largest deficit, event rows |
| `shooter_facts` | game, shooter (team, jersey) with a shot | shots, goals, game-winning goals, late tying or go-ahead goals |
| `quarter_facts` | game, team, quarter with a shot (5 = all overtime) | shots, goals |

Definitions (docs/lake.md): a lead change is a goal that breaks a tie for the other team than
the one that broke the previous tie (a goal moves the difference by one, so the lead passes
through a tie before it changes hands); the game-winning goal is the winner's (loser's final +
1)-th goal; a late tying or go-ahead goal is one in the 4th quarter or overtime after which the
scorer's team is level or one goal up.
"""

from __future__ import annotations

FACT_QUERIES: dict[str, str] = {
    "game_facts": """
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
            SELECT game_id, MAX(season) AS season, MAX(home_teamid) AS home_teamid, MAX(away_teamid) AS away_teamid,
                   MAX(home_score) AS home_score, MAX(away_score) AS away_score,
                   MAX(away_score - home_score) AS home_deficit, MAX(home_score - away_score) AS away_deficit,
                   COUNT(*) AS events, MAX(stream_sha256) AS stream_sha256
            FROM events
            GROUP BY game_id
        )
        SELECT g.game_id, CAST(g.season AS INTEGER) AS season,
               CAST(g.home_teamid AS INTEGER) AS home_teamid, CAST(g.away_teamid AS INTEGER) AS away_teamid,
               CAST(g.home_score AS INTEGER) AS home_score, CAST(g.away_score AS INTEGER) AS away_score,
               CAST(CASE WHEN g.home_score > g.away_score THEN g.home_teamid
                         WHEN g.away_score > g.home_score THEN g.away_teamid END AS INTEGER) AS winner_teamid,
               CAST(COALESCE(c.lead_changes, 0) AS INTEGER) AS lead_changes,
               CAST(COALESCE(t.times_tied, 0) AS INTEGER) AS times_tied,
               CAST(CASE WHEN g.home_score > g.away_score THEN GREATEST(g.home_deficit, 0)
                         WHEN g.away_score > g.home_score THEN GREATEST(g.away_deficit, 0)
                         ELSE 0 END AS INTEGER) AS winner_largest_deficit,
               CAST(g.events AS INTEGER) AS events, g.stream_sha256
        FROM games AS g
        LEFT JOIN changes AS c ON c.game_id = g.game_id
        LEFT JOIN ties AS t ON t.game_id = g.game_id
        ORDER BY g.game_id
    """,
    "shooter_facts": """
        WITH finals AS (
            SELECT game_id, MAX(home_score) AS home_final, MAX(away_score) AS away_final
            FROM events
            GROUP BY game_id
        ),
        shots AS (
            SELECT e.game_id, e.season, e.team_id, e.jersey, e.player_id, e.period, e.goal,
                   CASE WHEN e.team_id = e.home_teamid THEN e.home_score - e.away_score
                        ELSE e.away_score - e.home_score END AS margin_after,
                   CASE WHEN e.team_id = e.home_teamid THEN e.home_score ELSE e.away_score END AS own_after,
                   CASE WHEN e.team_id = e.home_teamid THEN f.home_final ELSE f.away_final END AS own_final,
                   CASE WHEN e.team_id = e.home_teamid THEN f.away_final ELSE f.home_final END AS other_final
            FROM events AS e
            JOIN finals AS f ON f.game_id = e.game_id
            WHERE e.kind = 'shot'
        )
        SELECT game_id, CAST(season AS INTEGER) AS season, CAST(team_id AS INTEGER) AS team_id, jersey,
               CAST(MIN(player_id) AS INTEGER) AS player_id,
               CAST(COUNT(*) AS INTEGER) AS shots,
               CAST(SUM(goal) AS INTEGER) AS goals,
               CAST(SUM(CASE WHEN goal = 1 AND own_final > other_final AND own_after = other_final + 1 THEN 1 ELSE 0 END)
                    AS INTEGER) AS game_winning_goals,
               CAST(SUM(CASE WHEN goal = 1 AND period >= 4 AND margin_after IN (0, 1) THEN 1 ELSE 0 END)
                    AS INTEGER) AS late_tying_or_go_ahead_goals
        FROM shots
        GROUP BY game_id, season, team_id, jersey
        ORDER BY game_id, team_id, jersey
    """,
    "quarter_facts": """
        SELECT game_id, CAST(season AS INTEGER) AS season, CAST(team_id AS INTEGER) AS team_id,
               CAST(LEAST(period, 5) AS INTEGER) AS quarter,
               CAST(COUNT(*) AS INTEGER) AS shots, CAST(SUM(goal) AS INTEGER) AS goals
        FROM events
        WHERE kind = 'shot'
        GROUP BY game_id, season, team_id, LEAST(period, 5)
        ORDER BY game_id, team_id, quarter
    """,
}
FACTS = tuple(FACT_QUERIES)


def game_facts(events) -> dict[str, list[dict]]:
    """The facts of the games in `events` (an Arrow table with the lake's columns), as rows.

    A game's `player_id` is a function of its team and jersey (the roster lookup made when its
    rows were built), so (game, team, jersey) is a shooter's key within a game.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET threads TO 1")
        con.register("events", events)
        out = {}
        for name, sql in FACT_QUERIES.items():
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description]
            out[name] = [dict(zip(columns, row)) for row in cursor.fetchall()]
        return out
    finally:
        con.close()
