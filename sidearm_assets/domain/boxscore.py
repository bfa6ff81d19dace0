"""The live box-score document (SPEC 5), built from a parsed stream and reference data.

Pure functions: no Dagster, no I/O. Players are keyed by (team id, jersey), since jersey numbers
repeat across teams and names repeat across players.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sidearm_assets.domain.stream import Event, ParsedStream
from sidearm_assets.settings import DEFAULT_GAME_ID


class BoxScoreError(ValueError):
    """The stream cannot become a document (no accepted event yet)."""


def pct(goals: int, shots: int) -> float:
    """goals / shots rounded half up to 2 decimals (1/8 -> 0.13); 0.0 with no shots."""
    if not shots:
        return 0.0
    return float((Decimal(goals) / Decimal(shots)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def document_id(game_id: str, event_id: int) -> int | str:
    """SPEC 5: the default game keeps the bare event id; other games are prefixed."""
    return event_id if game_id == DEFAULT_GAME_ID else f"{game_id}:{event_id}"


def status(score: int, other: int) -> str:
    return "winning" if score > other else "losing" if score < other else "tied"


def _number_order(number: str):
    return (0, int(number), number) if number.isdigit() else (1, 0, number)


def _team_side(team: dict, roster: list[dict], shots: list[Event]) -> tuple[dict, list[dict]]:
    """One side of the document, and the shots by jerseys not on this team's roster."""
    by_number: dict[str, dict] = {}
    for player in sorted(roster, key=lambda p: p["id"]):
        by_number.setdefault(str(player["number"]), player)  # a repeated number credits the first id
    lines = {
        number: {
            "id": p["id"], "name": p["name"], "number": number,
            "shots": 0, "goals": 0, "pct": 0.0, "on_roster": True,
        }
        for number, p in by_number.items()
    }
    by_quarter = [0, 0, 0, 0]
    for shot in shots:
        line = lines.get(shot.jersey)
        if line is None:
            line = lines[shot.jersey] = {
                "id": None, "name": None, "number": shot.jersey,
                "shots": 0, "goals": 0, "pct": 0.0, "on_roster": False,
            }
        line["shots"] += 1
        line["goals"] += shot.goal
        by_quarter[shot.quarter - 1] += shot.goal
    players = sorted(lines.values(), key=lambda line: _number_order(line["number"]))
    for line in players:
        line["pct"] = pct(line["goals"], line["shots"])
    team_shots = sum(line["shots"] for line in players)
    score = sum(line["goals"] for line in players)
    side = {
        "teamid": team["id"],
        "name": team["name"],
        "conference": team["conference"],
        "wins": team["wins"],
        "losses": team["losses"],
        "score": score,
        "status": None,  # set once both scores are known
        "shots": team_shots,
        "pct": pct(score, team_shots),
        "score_by_quarter": by_quarter,
        "players": players,
    }
    unknown = [
        {"teamid": team["id"], "number": p["number"], "shots": p["shots"], "goals": p["goals"]}
        for p in players
        if not p["on_roster"]
    ]
    return side, unknown


def build_boxscore(
    game_id: str,
    parsed: ParsedStream,
    home_team: dict,
    away_team: dict,
    players: list[dict],
    version: str | None = None,
    updated_at: str | None = None,
) -> dict:
    """The document for one stream version.

    `home_team`/`away_team` are `teams` rows; `players` the roster rows of (at least) both teams.
    `version` and `updated_at` describe the object version and are stored as given, so writing
    the same version twice gives the same document.
    """
    last = parsed.last_event
    if last is None:
        raise BoxScoreError(f"game {game_id}: no accepted event in {parsed.line_count} line(s)")
    sides = []
    unknown_jerseys = []
    for team in (home_team, away_team):
        roster = [p for p in players if p["teamid"] == team["id"]]
        shots = [e for e in parsed.shots if e.team_id == team["id"]]
        side, unknown = _team_side(team, roster, shots)
        sides.append(side)
        unknown_jerseys.extend(unknown)
    home, away = sides
    home["status"] = status(home["score"], away["score"])
    away["status"] = status(away["score"], home["score"])
    return {
        "_id": document_id(game_id, last.event_id),
        "game_id": game_id,
        "event_id": last.event_id,
        "seq": parsed.line_count,
        "timestamp": last.clock,
        "final": parsed.is_over(),
        "final_reason": parsed.over_reason,
        "version": version,
        "updated_at": updated_at,
        "home": home,
        "away": away,
        "issues": {
            "rejected_lines": [
                {"line": r.line_no, "text": r.text, "reason": r.reason} for r in parsed.rejected
            ],
            "unknown_jerseys": unknown_jerseys,
        },
    }


def markdown_boxscore(doc: dict) -> str:
    """The document as a Markdown box score (Dagster UI metadata)."""
    state = "Final" if doc["final"] else f"Clock {doc['timestamp']}"
    out = [f"**{doc['home']['name']} {doc['home']['score']} - {doc['away']['score']} "
           f"{doc['away']['name']}** ({state}, {doc['seq']} lines)", ""]
    for side in ("home", "away"):
        team = doc[side]
        out += [
            f"**{team['name']}** ({side}, {team['wins']}-{team['losses']}, {team['status']}): "
            f"{team['score']} goals on {team['shots']} shots, by quarter {team['score_by_quarter']}",
            "",
            "| # | player | shots | goals | pct |",
            "|---|---|---|---|---|",
        ]
        for p in team["players"]:
            name = p["name"] if p["on_roster"] else "**not on roster**"
            out.append(f"| {p['number']} | {name} | {p['shots']} | {p['goals']} | {p['pct']:.2f} |")
        out.append("")
    return "\n".join(out)
