"""N games streamed together through the daemon each end with their correct
final document and are each counted once in the final tables."""

from __future__ import annotations


import pytest
from sqlalchemy import func, select

from sidearm_assets.local import processes
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.domain.final import completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets_tests.helpers import assert_every_game_ends_final, start_league

pytestmark = [pytest.mark.slow]


def test_games_streamed_together_each_end_final_and_are_counted_once(stack):
    league, done, errors = start_league(stack, 8, 31)
    assert done.wait(180) and not errors
    assert_every_game_ends_final(stack, league, timeout=90)

    ids = [g.game_id for g in league.games]

    def counted():
        try:
            record = final_tables_db.read_record(stack.engine)
        except Exception:
            return False
        return set(ids) <= set(record)

    processes.wait_until(counted, timeout=240, interval=0.5, what="every game in the counted-games record")
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(final_tables_db.counted_games.c.game_id, func.count())
            .group_by(final_tables_db.counted_games.c.game_id)
        ).all()
    assert all(n == 1 for _, n in rows)

    # the tables equal base + exactly these games (and the warm-up game, which never ended)
    games = reference_db.read_rows(stack.engine, reference_db.games)
    teams = reference_db.read_rows(stack.engine, reference_db.teams)
    players = reference_db.read_rows(stack.engine, reference_db.players)
    completed = [completed_game(parse_stream(g.final_bytes, g.teams), matchup(g.game_id, games, teams))
                 for g in league.games]
    expected = season_totals(players, teams, completed)
    processes.wait_until(lambda: final_tables_db.read_final_tables(stack.engine) == (expected.players, expected.teams),
                         timeout=60, interval=0.5, what="the final tables equal base + the league's games")
    assert final_tables_db.read_final_tables(stack.engine) == (expected.players, expected.teams)
