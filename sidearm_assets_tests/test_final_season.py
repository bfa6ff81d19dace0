"""A season of 300 counted league games (gamestream.league), counted through CountingJob with the
plain-Python facts: a correction and an uncount of one game change exactly that game's
contribution to players2/teams2, and a run does the work of the games it counts, not the season's.
On SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import pytest

from gamestream import league as lg
from sidearm_assets.domain.facts import GameFacts, game_facts
from sidearm_assets.storage import final_tables_db, record_log, reference_db
from sidearm_assets.storage.completed_games import CountingJob
from sidearm_assets.storage.final_schema import PENDING
from sidearm_assets.storage.final_tables_db import digest_of, drop_final_tables, read_final_tables
from sidearm_assets_tests.final_counting import (
    league_engine,
    completed,
    delta,
    expected_tables,
    facts_delta,
    facts_of,
    file,
    states,
    stored_facts,
)

LEAGUE = lg.make_league(300, seed=7)
SEASON = {g.game_id: g.final_bytes for g in LEAGUE.games}
X = lg.game_id_for(150)


def corrected(game: lg.LeagueGame) -> bytes:
    """The game with the other side winning: regulation as played, then goals at 00:01 by the side
    that did not lead (enough to lead by one), then the 00:00 line."""
    end = next(i for i, line in enumerate(game.lines) if line.endswith(" 00:00 0 0 0") and not line.startswith("-1"))
    regulation = list(game.lines[:end])
    score = {game.home_teamid: 0, game.away_teamid: 0}
    for line in regulation:
        _, _, team, _, goal = line.split()
        score[int(team)] += int(goal)
    behind = game.away_teamid if score[game.away_teamid] <= score[game.home_teamid] else game.home_teamid
    ahead = game.home_teamid if behind == game.away_teamid else game.away_teamid
    jersey = next(p["number"] for p in LEAGUE.players if p["teamid"] == behind)
    for _ in range(score[ahead] - score[behind] + 1):
        regulation.append(f"{len(regulation)} 00:01 {behind} {jersey} 1")
    regulation.append(f"{len(regulation)} 00:00 0 0 0")
    return ("\n".join(regulation) + "\n").encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    yield from league_engine(request, tmp_path, LEAGUE)


def _run(engine, run_id):
    return CountingJob(engine, game_facts, run_id=run_id).run()


def test_a_correction_and_an_uncount_change_exactly_that_games_contribution(engine):
    assert len(file(engine, SEASON)) == 300
    first = _run(engine, "season")
    assert len(first.written.recorded) == 300 and first.written.completed_games == 300 and first.uncountable == []
    season = read_final_tables(engine)
    assert season == expected_tables(engine, SEASON)
    others = stored_facts(engine, set(SEASON) - {X})

    fixed = corrected(LEAGUE.game(X))
    old_facts = facts_of(engine, [completed(engine, X, SEASON[X])])
    new_facts = facts_of(engine, [completed(engine, X, fixed)])
    old_x, new_x = completed(engine, X, SEASON[X]), completed(engine, X, fixed)
    assert old_x.winner != new_x.winner and new_x.winner is not None  # the correction flips the result

    # The correction: one game read, judged and computed; the tables move by its facts alone.
    assert file(engine, {X: fixed}) == [X]
    report = _run(engine, "correction")
    assert [g.game_id for g in report.games] == [X] and report.corrected == [X]
    assert report.written.recorded == (X,) and report.written.completed_games == 300
    after_correction = read_final_tables(engine)
    change = delta(season, after_correction)
    assert change == facts_delta(old_facts, new_facts)
    assert change[1] and set(change[1]) == {new_x.home_teamid, new_x.away_teamid}  # both records moved
    assert after_correction == expected_tables(engine, {**SEASON, X: fixed})
    assert stored_facts(engine, set(SEASON) - {X}) == others

    # The uncount: the next run reads nothing and takes the game's (corrected) facts out, whole.
    record_log.uncount(engine, X, "played in the wrong league", "alice")
    report = _run(engine, "uncount")
    assert report.stale and report.games == [] and report.written.completed_games == 299
    after_uncount = read_final_tables(engine)
    assert delta(after_correction, after_uncount) == facts_delta(new_facts, GameFacts([], [], []))
    assert delta(season, after_uncount) == facts_delta(old_facts, GameFacts([], [], []))
    assert after_uncount == expected_tables(engine, {g: d for g, d in SEASON.items() if g != X})
    assert stored_facts(engine, set(SEASON) - {X}) == others

    # The recount files the logged (corrected) bytes again; the next run counts them once.
    record_log.recount(engine, X, "it was ours after all", "bob")
    assert states(engine)[X] == (digest_of(fixed), PENDING)
    report = _run(engine, "recount")
    assert [g.game_id for g in report.games] == [X]
    assert read_final_tables(engine) == after_correction
    assert final_tables_db.read_state(engine)["completed_games"] == 300

    # Nothing pending: a run counts nothing and changes nothing.
    report = _run(engine, "idle")
    assert report.games == [] and report.written.recorded == ()
    assert read_final_tables(engine) == after_correction


def test_games_filed_while_a_run_works_are_counted_by_that_run_in_another_round(engine):
    """A game ending while the run computes (and a newer version of one it is counting) is counted
    by a further round of the same run, not left for the next run; at most MAX_ROUNDS rounds."""
    from sidearm_assets.storage.completed_games import MAX_ROUNDS

    first, late = dict(list(SEASON.items())[:3]), dict(list(SEASON.items())[3:5])
    fixed = next(iter(first))
    file(engine, first)
    calls = []

    def facts_while_games_end(games, rosters):
        calls.append(sorted(g.game_id for g in games))
        if len(calls) == 1:  # two games end, and one being counted is corrected, while Spark works
            file(engine, {**late, fixed: corrected(LEAGUE.game(fixed))})
        return game_facts(games, rosters)

    report = CountingJob(engine, facts_while_games_end).run_until_done()
    assert report.rounds == 2 and calls[1] == sorted([*late, fixed])
    assert sorted({g.game_id for g in report.games}) == sorted({*first, *late})
    assert read_final_tables(engine) == expected_tables(engine, {**first, **late, fixed: corrected(LEAGUE.game(fixed))})
    assert not final_tables_db.has_pending(engine)

    endless = iter(range(10_000))

    def facts_while_a_game_ends_each_time(games, rosters):  # a new game ends during every round
        gid = lg.game_id_for(200 + next(endless))
        file(engine, {gid: SEASON[gid]})
        return game_facts(games, rosters)

    file(engine, {lg.game_id_for(199): SEASON[lg.game_id_for(199)]})
    assert CountingJob(engine, facts_while_a_game_ends_each_time).run_until_done().rounds == MAX_ROUNDS
    assert final_tables_db.has_pending(engine)  # left for the next run
