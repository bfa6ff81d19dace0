"""The live box-score document (SPEC 5), built from a parsed stream and reference data.

Pure functions: no Dagster, no I/O, no settings. Every roster player is listed (by id: names and
even numbers repeat); a shot credits the player with its (team id, jersey), since jersey numbers
repeat across teams.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sidearm_assets.domain.games import DEFAULT_GAME_ID
from sidearm_assets.domain.stream import Event, ParsedStream, is_jersey

# Lists under `issues` keep their first entries and a count, so a document stays small (far below
# MongoDB's 16 MiB) whatever the stream: the players lists are bounded anyway, since a jersey is
# 1-3 ASCII digits (at most 1,110 jerseys a team).
ISSUE_SAMPLE = 50
MARKDOWN_OFF_ROSTER = 20  # off-roster player rows per team in the Markdown box score


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


def roster_number(player: dict) -> str | None:
    """A roster row's number as the document shows it (None when the row has none)."""
    number = player.get("number")
    return None if number is None else str(number)


def _number_order(number: str | None):
    """Jerseys in numeric order, then numbers that are not jerseys (messy roster data) by text."""
    if is_jersey(number):
        return (0, int(number), number)
    return (1, 0, number or "")


def _player_order(line: dict):
    return (_number_order(line["number"]), line["id"] is None, line["id"] if line["id"] is not None else 0)


def _team_side(team: dict, roster: list[dict], shots: list[Event]) -> tuple[dict, dict]:
    """One side of the document, and this team's issues: off-roster jerseys, roster numbers
    shared by several players, roster numbers no stream line can name.

    Every roster player is listed. A shot credits the roster player with that jersey; when
    several players of the team share it, the lowest id (as the final tables do).
    """
    lines: list[dict] = []
    credited: dict[str, dict] = {}  # jersey -> the line its shots credit
    holders: dict[str, list] = {}  # jersey -> ids of the players holding it, lowest first
    invalid = []
    for player in sorted(roster, key=lambda p: p["id"]):
        number = roster_number(player)
        line = {
            "id": player["id"], "name": player["name"], "number": number,
            "shots": 0, "goals": 0, "pct": 0.0, "on_roster": True,
        }
        lines.append(line)
        if is_jersey(number):
            credited.setdefault(number, line)
            holders.setdefault(number, []).append(player["id"])
        else:
            invalid.append({"teamid": team["id"], "id": player["id"], "number": number})
    off_roster: dict[str, dict] = {}
    by_quarter = [0, 0, 0, 0]
    for shot in shots:
        line = credited.get(shot.jersey) or off_roster.get(shot.jersey)
        if line is None:
            line = off_roster[shot.jersey] = {
                "id": None, "name": None, "number": shot.jersey,
                "shots": 0, "goals": 0, "pct": 0.0, "on_roster": False,
            }
        line["shots"] += 1
        line["goals"] += shot.goal
        by_quarter[shot.quarter - 1] += shot.goal
    players = sorted(lines + list(off_roster.values()), key=_player_order)
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
    issues = {
        "unknown_jerseys": [
            {"teamid": team["id"], "number": p["number"], "shots": p["shots"], "goals": p["goals"]}
            for p in players
            if not p["on_roster"]
        ],
        "duplicate_numbers": [
            {"teamid": team["id"], "number": number, "player_ids": ids, "credited_id": ids[0]}
            for number, ids in sorted(holders.items(), key=lambda item: _number_order(item[0]))
            if len(ids) > 1
        ],
        "invalid_numbers": invalid,
    }
    return side, issues


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

    Beyond SPEC 5, `issues` says what was not taken as given, each list cut to its first
    entries with a count beside it: `rejected_lines` (first `stream.SAMPLE_LINES`, text cut to
    `stream.TEXT_LIMIT` characters), `rejected_count`, `rejected_by_rule`; `line_warnings` and
    `line_warning_count` (accepted lines with a part not used: a byte-order mark, a shot on the
    `-1` line); `unknown_jerseys` and `unknown_jersey_count`; `duplicate_numbers` (roster
    numbers several players of a team share: shots credit the lowest id) and `invalid_numbers`
    (roster numbers that are not 1-3 ASCII digits: no shot can credit them), first
    `ISSUE_SAMPLE` each.
    """
    last = parsed.last_event
    if last is None:
        raise BoxScoreError(f"game {game_id}: no accepted event in {parsed.line_count} line(s)")
    sides = []
    issues: dict[str, list] = {"unknown_jerseys": [], "duplicate_numbers": [], "invalid_numbers": []}
    all_shots = parsed.shots
    for team in (home_team, away_team):
        roster = [p for p in players if p["teamid"] == team["id"]]
        shots = [e for e in all_shots if e.team_id == team["id"]]
        side, team_issues = _team_side(team, roster, shots)
        sides.append(side)
        for name, entries in team_issues.items():
            issues[name].extend(entries)
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
            "rejected_count": parsed.rejected_count,
            "rejected_by_rule": dict(sorted(parsed.rejected_by_rule.items())),
            "line_warnings": [
                {"line": w.line_no, "text": w.text, "reason": w.reason} for w in parsed.warnings
            ],
            "line_warning_count": parsed.warning_count,
            "unknown_jerseys": issues["unknown_jerseys"][:ISSUE_SAMPLE],
            "unknown_jersey_count": len(issues["unknown_jerseys"]),
            "duplicate_numbers": issues["duplicate_numbers"][:ISSUE_SAMPLE],
            "invalid_numbers": issues["invalid_numbers"][:ISSUE_SAMPLE],
        },
    }


def markdown_boxscore(doc: dict) -> str:
    """The document as a Markdown box score (Dagster UI metadata): every roster player, and the
    first `MARKDOWN_OFF_ROSTER` jerseys not on a team's roster (the rest summed in one row)."""
    state = "Final" if doc["final"] else f"Clock {doc['timestamp']}"
    out = [f"**{_cell(doc['home']['name'])} {doc['home']['score']} - {doc['away']['score']} "
           f"{_cell(doc['away']['name'])}** ({state}, {doc['seq']} lines)", ""]
    for side in ("home", "away"):
        team = doc[side]
        out += [
            f"**{_cell(team['name'])}** ({side}, {team['wins']}-{team['losses']}, {team['status']}): "
            f"{team['score']} goals on {team['shots']} shots, by quarter {team['score_by_quarter']}",
            "",
            "| # | player | shots | goals | pct |",
            "|---|---|---|---|---|",
        ]
        off_roster = [p for p in team["players"] if not p["on_roster"]]
        shown_off = {id(p) for p in off_roster[:MARKDOWN_OFF_ROSTER]}
        for p in team["players"]:
            if not p["on_roster"] and id(p) not in shown_off:
                continue
            name = _cell(p["name"]) if p["on_roster"] else "**not on roster**"
            out.append(f"| {_cell(p['number'])} | {name} | {p['shots']} | {p['goals']} | {p['pct']:.2f} |")
        rest = off_roster[MARKDOWN_OFF_ROSTER:]
        if rest:
            out.append(
                f"| ... | **{len(rest)} more jerseys not on roster** | {sum(p['shots'] for p in rest)} | "
                f"{sum(p['goals'] for p in rest)} | |"
            )
        out.append("")
    return "\n".join(out)


def _cell(value) -> str:
    """A value inside a Markdown table cell: no pipe or line break that would break the table."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
