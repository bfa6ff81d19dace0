"""Reference data read from `sidearmdb` (SPEC 3)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from sidearm_assets.resources import ReferenceDatabase


@asset(group_name="reference", kinds={"sql"})
def reference_teams(context: AssetExecutionContext, sidearmdb: ReferenceDatabase) -> MaterializeResult:
    """Teams with their season record before the games being played, from sidearmdb.teams."""
    rows = sidearmdb.teams()  # the table is the storage: downstream assets read it themselves
    return MaterializeResult(metadata={"row_count": len(rows), "teams": MetadataValue.md(_team_list(rows))})


@asset(group_name="reference", kinds={"sql"})
def reference_players(context: AssetExecutionContext, sidearmdb: ReferenceDatabase) -> MaterializeResult:
    """Rosters with season-to-date shots and goals, from sidearmdb.players."""
    rows = sidearmdb.players()
    per_team: dict[int, int] = {}
    for p in rows:
        per_team[p["teamid"]] = per_team.get(p["teamid"], 0) + 1
    return MaterializeResult(
        metadata={"row_count": len(rows), "players_per_team": {str(k): v for k, v in per_team.items()}}
    )


def _team_list(rows: list[dict]) -> str:
    lines = ["| id | team | conference | W-L |", "|---|---|---|---|"]
    lines += [f"| {t['id']} | {t['name']} | {t['conference']} | {t['wins']}-{t['losses']} |" for t in rows]
    return "\n".join(lines)
