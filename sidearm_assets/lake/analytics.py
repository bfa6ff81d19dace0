"""The season analytics: refresh the season tables from the games' facts, and check them.

| name | one row per | answers |
|---|---|---|
| `scoring_leaders` | season, shooter | who leads in goals; shots, pct, games with a shot |
| `team_shooting_by_quarter` | season, team, quarter (5 = all overtime) | where in the game a team scores |
| `lead_changes` | completed game | lead changes, times tied, the deficit the winner overcame |
| `clutch_scorers` | season, shooter with a clutch goal | game-winning goals, late tying or go-ahead goals |

The facts come from the lake's files as they are written (`facts.py`, `follow.py`); the season
tables are SQL aggregates over them in sidearmdb (`season.py`). The checks (ERROR) come from the
same computation: the lake follows the record, and the tables answer each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sidearm_assets.domain.checks import CheckOutcome, CheckSpec
from sidearm_assets.lake import record, season, store, tables

ANALYTICS = tables.ANALYTICS

# The scoring leaders as SQL over the lake's event rows (a table `events`, plus `teams` and
# `players`), which Spark SQL and DuckDB run as is: for notebooks and ad hoc work over the files.
# The pipeline's table comes from the facts (`season.py`); a test checks that both agree.
QUERIES: dict[str, str] = {
    "scoring_leaders": """
        WITH per_shooter AS (
            SELECT season, team_id, jersey, player_id,
                   CAST(COUNT(*) AS INTEGER) AS shots,
                   CAST(SUM(goal) AS INTEGER) AS goals,
                   FLOOR((200.0 * SUM(goal) + COUNT(*)) / (2.0 * COUNT(*))) / 100.0 AS pct,
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
}

LAKE_CHECKS = {
    "lake_follows_record": CheckSpec(
        "lead_changes", "ERROR",
        "The lake holds one file per counted game, built from the bytes the record counted (same ETag), "
        "none for a game not counted, and its marker object is in the store.",
    ),
    "leader_goals_match_game_scores": CheckSpec(
        "scoring_leaders", "ERROR",
        "The shooters' goals add up to the games' final scores.",
    ),
    "quarters_match_leaders": CheckSpec(
        "team_shooting_by_quarter", "ERROR",
        "Each team's shots and goals over its quarters equal its shooters' totals.",
    ),
}


@dataclass
class AnalyticsRun:
    write: season.SeasonWrite
    checks: list[CheckOutcome]
    seconds_refresh: float
    seconds_checks: float


def refresh(location: store.LakeLocation, engine, run_id: str | None = None) -> AnalyticsRun:
    """Rebuild the season tables from the facts, then run the checks."""
    started = time.monotonic()
    write = season.refresh_season(engine, run_id)
    refreshed = time.monotonic()
    try:
        marker, unreadable = store.read_marker(location), None
    except Exception as exc:  # the store is down: the tables are still refreshed, the check fails
        marker, unreadable = None, f"unreadable: {exc}"
    outcomes = [lake_check(record.plan(engine), marker, tables.read_lake_id(engine), unreadable)]
    outcomes += table_checks(season.season_totals(engine))
    return AnalyticsRun(write, outcomes, refreshed - started, time.monotonic() - refreshed)


def _outcome(name: str, passed: bool, metadata: dict) -> CheckOutcome:
    return LAKE_CHECKS[name].outcome(name, passed, metadata)


def lake_check(plan: record.LakePlan, marker: str | None, lake_id: str | None,
               unreadable: str | None = None) -> CheckOutcome:
    """`lake_follows_record` from the record/lake comparison and the marker (pure)."""
    missing = sorted(plan.to_write)
    marker_ok = marker is not None and marker == lake_id
    return _outcome("lake_follows_record", not missing and not plan.gone and marker_ok, {
        "counted_games": plan.counted,
        "games_without_their_file": len(missing),
        "first_games_without_their_file": missing[:20],
        "files_of_games_not_counted": len(plan.gone),
        "first_files_of_games_not_counted": plan.gone[:20],
        "marker": "present" if marker_ok else unreadable or (
            "missing" if marker is None else f"names lake {marker}, not {lake_id}"),
    })


def table_checks(totals: season.SeasonTotals) -> list[CheckOutcome]:
    """`leader_goals_match_game_scores` and `quarters_match_leaders` (pure)."""
    wrong = [
        f"season {s} team {t}: shooters {totals.by_team_leaders.get((s, t))}, quarters {totals.by_team_quarters.get((s, t))}"
        for s, t in sorted(set(totals.by_team_leaders) | set(totals.by_team_quarters))
        if totals.by_team_leaders.get((s, t)) != totals.by_team_quarters.get((s, t))
    ]
    return [
        _outcome("leader_goals_match_game_scores", totals.leader_goals == totals.game_goals,
                 {"leader_goals": totals.leader_goals, "game_goals": totals.game_goals}),
        _outcome("quarters_match_leaders", not wrong,
                 {"teams": len(totals.by_team_leaders), "mismatches": len(wrong), "first_mismatches": wrong[:20]}),
    ]


def markdown_table(rows: list[dict], total: int | None = None) -> str:
    """Rows as a Markdown table, for the asset's metadata; `total`: the table's row count."""
    if not rows:
        return "no rows (no counted game in the lake yet)"
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    if total is not None and total > len(rows):
        out.append(f"\n{total - len(rows)} more row(s) in the table.")
    return "\n".join(out)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")
