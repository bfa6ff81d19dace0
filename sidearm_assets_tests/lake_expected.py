"""The season analytics computed in plain Python straight from the game streams.

Independent of `sidearm_assets.lake`: it parses each stream itself (with the project's stream
parser, whose rules define which lines count) and walks the game, so the lake's rows and the
SQL over them are checked against a second way of getting the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from sidearm_assets.domain.stream import parse_stream


def pct(goals: int, shots: int) -> float:
    return float((Decimal(goals) / Decimal(shots)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) if shots else 0.0


def _shots(data: bytes, home: int, away: int):
    """(team, jersey, goal, quarter-or-5, home score after, away score after) for every shot."""
    parsed = parse_stream(data, (home, away))
    assert parsed.is_over()
    out, score = [], {home: 0, away: 0}
    overtime, after_zero = False, False
    for e in parsed.events:
        if after_zero and e.seconds_left > 0 and e.event_id != -1:
            overtime = True
        if e.seconds_left == 0:
            after_zero = True
        if not e.is_shot:
            continue
        score[e.team_id] += e.goal
        quarter = 5 if overtime else min(4, (3600 - e.seconds_left) // 900 + 1)
        out.append((e.team_id, e.jersey, e.goal, quarter, score[home], score[away]))
    return out


def expected_tables(streams: dict[str, bytes], games: list[dict], teams: list[dict], players: list[dict], season: int):
    schedule = {g["game_id"]: (g["home_teamid"], g["away_teamid"]) for g in games}
    team_name = {t["id"]: t["name"] for t in teams}
    player_of, player_name = {}, {}
    for p in sorted(players, key=lambda p: p["id"]):
        player_of.setdefault((p["teamid"], str(p["number"])), p["id"])
        player_name[p["id"]] = p["name"]

    shooters = defaultdict(lambda: {"shots": 0, "goals": 0, "games": set()})
    quarters = defaultdict(lambda: {"shots": 0, "goals": 0, "games": set()})
    clutch = defaultdict(lambda: {"gwg": 0, "late": 0, "goals": 0})
    per_game = []
    for game_id, data in sorted(streams.items()):
        home, away = schedule[game_id]
        shots = _shots(data, home, away)
        final = {home: shots[-1][4] if shots else 0, away: shots[-1][5] if shots else 0}
        lead_holder, lead_changes, times_tied = None, 0, 0
        deficit = {home: 0, away: 0}
        for team, jersey, goal, quarter, hs, as_ in shots:
            key = (team, jersey, player_of.get((team, jersey)))
            shooters[key]["shots"] += 1
            shooters[key]["goals"] += goal
            shooters[key]["games"].add(game_id)
            q = quarters[(team, quarter)]
            q["shots"] += 1
            q["goals"] += goal
            q["games"].add(game_id)
            if not goal:
                continue
            own, other = (hs, as_) if team == home else (as_, hs)
            clutch[key]["goals"] += 1
            other_team = away if team == home else home
            if final[team] > final[other_team] and own == final[other_team] + 1:
                clutch[key]["gwg"] += 1
            if quarter >= 4 and own - other in (0, 1):
                clutch[key]["late"] += 1
            if hs == as_:
                times_tied += 1
            elif abs(hs - as_) == 1 and own > other:  # this goal broke a tie
                if lead_holder is not None and lead_holder != team:
                    lead_changes += 1
                lead_holder = team
            deficit[home] = max(deficit[home], as_ - hs)
            deficit[away] = max(deficit[away], hs - as_)
        winner = home if final[home] > final[away] else away if final[away] > final[home] else None
        per_game.append({
            "season": season, "game_id": game_id, "home_teamid": home, "home_name": team_name[home],
            "away_teamid": away, "away_name": team_name[away], "home_score": final[home], "away_score": final[away],
            "winner_teamid": winner, "lead_changes": lead_changes, "times_tied": times_tied,
            "winner_largest_deficit": deficit[winner] if winner else 0,
        })

    goals_sorted = sorted((v["goals"] for v in shooters.values()), reverse=True)
    leaders = [
        {
            "season": season, "rank_goals": goals_sorted.index(v["goals"]) + 1, "player_id": pid,
            "player_name": player_name.get(pid), "team_id": team, "team_name": team_name[team], "jersey": jersey,
            "goals": v["goals"], "shots": v["shots"], "pct": pct(v["goals"], v["shots"]), "games": len(v["games"]),
        }
        for (team, jersey, pid), v in shooters.items()
    ]
    by_quarter = [
        {
            "season": season, "team_id": team, "team_name": team_name[team], "quarter": quarter,
            "shots": v["shots"], "goals": v["goals"], "pct": pct(v["goals"], v["shots"]), "games": len(v["games"]),
        }
        for (team, quarter), v in quarters.items()
    ]
    clutch_rows = [
        {
            "season": season, "player_id": pid, "player_name": player_name.get(pid), "team_id": team,
            "team_name": team_name[team], "jersey": jersey, "game_winning_goals": v["gwg"],
            "late_tying_or_go_ahead_goals": v["late"], "goals": v["goals"],
        }
        for (team, jersey, pid), v in clutch.items()
        if v["gwg"] or v["late"]
    ]
    return {
        "scoring_leaders": leaders,
        "team_shooting_by_quarter": by_quarter,
        "lead_changes": per_game,
        "clutch_scorers": clutch_rows,
    }


def canonical(rows: list[dict]) -> list[tuple]:
    """Rows as sorted tuples of (column, value), for order-free comparison."""
    return sorted((tuple(sorted(r.items())) for r in rows), key=repr)
