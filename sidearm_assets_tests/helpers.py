"""What many tests share: the one random game generator and the one expected-document builder.

`random_game` makes a seeded stream for any two teams; `expected_document` computes SPEC 5 from
the text lines the plain way, with no code shared with the project, and `assert_matches` holds a
document to it. Fixtures live in conftest.py.
"""

from __future__ import annotations

import random
from pathlib import Path

from sidearm_assets.domain.stream import format_clock

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GAME = REPO / "gamestream" / "games" / "default.txt"

# Two more teams for multi-game tests; their players get ids from 101 up.
EXTRA_TEAMS = (
    {"id": 300, "name": "Corbin Falcons", "conference": "Northeast Collegiate", "wins": 5, "losses": 6},
    {"id": 301, "name": "Deerfield Otters", "conference": "Mid-Atlantic Lacrosse", "wins": 7, "losses": 3},
)
EXTRA_PLAYERS = tuple(
    {"id": 100 + i, "name": f"Player {i}", "number": str(n), "shots": 10 + i, "goals": 3 + i % 4, "teamid": team}
    for i, (n, team) in enumerate(
        [(n, 300) for n in (1, 5, 9, 11, 23)] + [(n, 301) for n in (2, 5, 7, 11, 40)] + [(5, 300)], start=1
    )
)  # the last row repeats #5 on team 300: shots credit the lower id


def random_game(
    seed: int,
    home: int,
    away: int,
    rosters: dict[int, list[str]],
    *,
    shots: int = 60,
    ending: str = "auto",  # "auto": 00:00 marker if not tied else -1; "minus1": always -1; "tie": force a tie at -1;
    # "both": the 00:00 marker, then -1 (over at the marker unless tied)
    off_roster: float = 0.05,
    bad_lines: bool = False,
) -> bytes:
    """A seeded game stream for `home` vs `away`: shots with roster (and a few off-roster) jerseys."""
    rng = random.Random(seed)
    clocks = sorted(rng.sample(range(1, 3600), shots), reverse=True)
    lines, score = [], {home: 0, away: 0}
    for event_id, clock in enumerate(clocks):
        team = rng.choice((home, away))
        jersey = rng.choice(rosters[team]) if rng.random() > off_roster else str(rng.randint(60, 99))
        goal = int(rng.random() < 0.3)
        score[team] += goal
        lines.append(f"{event_id} {format_clock(clock)} {team} {jersey} {goal}")
        if bad_lines and rng.random() < 0.08:
            lines.append(rng.choice(["", "x 10:00 101 6 1", f"{event_id} 99:00 {team} 6 1", f"{event_id + 500} 10:00 999 6 1"]))
    if ending == "tie" and score[home] != score[away]:
        behind = home if score[home] < score[away] else away
        for _ in range(abs(score[home] - score[away])):
            lines.append(f"{len(clocks)} 00:01 {behind} {rosters[behind][0]} 1")
            clocks.append(1)
        score[behind] = max(score.values())
    n = len(clocks)
    if ending == "both":
        lines += [f"{n} 00:00 0 0 0", "-1 00:00 0 0 0"]
    elif ending == "auto" and score[home] != score[away]:
        lines.append(f"{n} 00:00 0 0 0")
    else:
        lines.append("-1 00:00 0 0 0")
    return ("\n".join(lines) + "\n").encode()


def tied_game(home: int, away: int, jersey_home: str, jersey_away: str) -> bytes:
    """2-2, then the game-over line: a tie at -1."""
    return (
        f"0 50:00 {home} {jersey_home} 1\n1 40:00 {away} {jersey_away} 1\n"
        f"2 30:00 {home} {jersey_home} 1\n3 20:00 {away} {jersey_away} 1\n4 00:00 0 0 0\n-1 00:00 0 0 0\n"
    ).encode()


def expected_document(game_id, lines, home, away, players):
    """SPEC 5 computed the plain way, from the text lines, with no code shared with the project."""
    totals = {}  # (team, jersey) -> [shots, goals]
    last_id, last_clock, over = None, None, False
    for line in lines:
        ev, clock, team, jersey, goal = line.split()
        last_id, last_clock = int(ev), clock
        if int(ev) == -1:
            over = True
            continue
        if team != "0":
            t = totals.setdefault((int(team), jersey), [0, 0])
            t[0] += 1
            t[1] += int(goal)
        if clock == "00:00":  # SPEC 2: over at 00:00 unless tied
            goals = {tm: sum(v[1] for (x, _), v in totals.items() if x == tm) for tm in (home["id"], away["id"])}
            over = over or goals[home["id"]] != goals[away["id"]]

    def side(team, other):
        roster = {p["number"]: p for p in players if p["teamid"] == team["id"]}
        listed = []
        for number in set(roster) | {j for (t, j) in totals if t == team["id"]}:
            shots, goals = totals.get((team["id"], number), [0, 0])
            p = roster.get(number)
            listed.append({
                "id": p["id"] if p else None, "name": p["name"] if p else None, "number": number,
                "shots": shots, "goals": goals,
                "pct": 0.0 if shots == 0 else int(goals * 100 / shots + 0.5 + 1e-9) / 100,
                "on_roster": p is not None,
            })
        listed.sort(key=lambda x: int(x["number"]))
        return listed

    home_players, away_players = side(home, away), side(away, home)
    hs, as_ = sum(p["goals"] for p in home_players), sum(p["goals"] for p in away_players)
    return {
        "_id": last_id if game_id == "gamestream" else f"{game_id}:{last_id}",
        "event_id": last_id, "seq": len(lines), "timestamp": last_clock, "final": over,
        "home_score": hs, "away_score": as_,
        "home_status": "winning" if hs > as_ else "losing" if hs < as_ else "tied",
        "home_players": home_players, "away_players": away_players,
    }


def assert_matches(doc, exp):
    assert doc["_id"] == exp["_id"]
    assert (doc["event_id"], doc["seq"], doc["timestamp"], doc["final"]) == (
        exp["event_id"], exp["seq"], exp["timestamp"], exp["final"])
    assert doc["home"]["score"] == exp["home_score"] and doc["away"]["score"] == exp["away_score"]
    assert doc["home"]["status"] == exp["home_status"]
    strip = lambda ps: [{k: p[k] for k in ("id", "name", "number", "shots", "goals", "pct", "on_roster")} for p in ps]
    assert strip(doc["home"]["players"]) == exp["home_players"]
    assert strip(doc["away"]["players"]) == exp["away_players"]
