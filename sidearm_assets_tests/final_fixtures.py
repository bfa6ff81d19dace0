"""Fixtures and game generators for the final-tables tests (test_final_*.py).

`spark_resource_fixture` starts one local Spark session for the whole test session (5-10 s on
this machine) and stops it at the end; every test that needs Spark shares it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def spark_resource_fixture():
    """dagster-pyspark's lazy resource with the project's Spark settings, local[2]; one session."""
    from sidearm_assets.storage.final_spark import spark_resource

    resource = spark_resource("local[2]")
    try:
        yield resource
    finally:
        from pyspark import SparkContext

        if SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.stop()


@pytest.fixture(scope="session")
def spark(spark_resource_fixture):
    return spark_resource_fixture.spark_session


def random_game(
    seed: int,
    home: int,
    away: int,
    rosters: dict[int, list[str]],
    *,
    shots: int = 60,
    ending: str = "auto",  # "auto": 00:00 marker if not tied else -1; "minus1": always -1; "tie": force a tie at -1
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
    if ending == "auto" and score[home] != score[away]:
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
