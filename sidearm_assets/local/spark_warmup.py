"""Warm a new Spark Connect server with the final-tables job, so the first real run finds a hot JVM."""

from __future__ import annotations

import contextlib
import time

from sidearm_assets.local.stack_state import StackError

WARM_ROUNDS = 3  # final-tables jobs run on a new Spark server, in the hour's shared session (JIT warm-up)


def warm_spark(url: str, rounds: int = WARM_ROUNDS) -> list[float]:
    """Run the final-tables job on the Spark Connect server at `url` `rounds` times, attached to
    the hour's shared session as a run would (`final_spark.connect_session`), and check the result
    against the plain-Python computation; returns each job's seconds. A new server's first job
    takes seconds of JIT compilation; warmed, the runs' jobs take about one."""
    from sidearm_assets.domain.facts import game_facts
    from sidearm_assets.domain.final import CompletedGame, Shot
    from sidearm_assets.storage import final_spark, reference_db

    players = [dict(p) for p in reference_db.BASE_PLAYERS]
    teams = [dict(t) for t in reference_db.BASE_TEAMS]
    home, away = teams[0]["id"], teams[1]["id"]
    numbers = {t: [p["number"] for p in players if p["teamid"] == t] for t in (home, away)}
    shots = [Shot(home, numbers[home][0], 1), Shot(away, numbers[away][0], 0), Shot(away, "99", 1),
             Shot(home, numbers[home][-1], 1), Shot(home, numbers[home][0], 0)]
    games = [CompletedGame("sidearm-local-warm-up", home, away, "00:00", tuple(shots))]
    want = game_facts(games, players)
    seconds = []
    for _ in range(rounds):
        started = time.monotonic()
        session = final_spark.connect_session(url, timeout=5.0)
        try:
            got = final_spark.compute_game_facts(session, games, players)
        finally:
            with contextlib.suppress(Exception):
                final_spark.close_session(session)
        seconds.append(time.monotonic() - started)
        if got != want:
            raise StackError(f"the Spark Connect server at {url} computed wrong final tables in its warm-up job")
    return seconds
