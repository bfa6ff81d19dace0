"""What the final-tables tests share: counting by hand (as a run would, with the plain-Python
facts), the tables the pure-Python reference expects, and reading the bookkeeping back."""

from __future__ import annotations

from sqlalchemy import select

from sidearm_assets.domain.facts import GameFacts, game_facts
from sidearm_assets.domain.final import CompletedGame, judge, season_totals
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.storage.final_schema import completions, player_game_facts, team_game_facts
from sidearm_assets.storage.final_tables_db import Completion, CountedGame, digest_of


def completed(engine, game_id: str, data: bytes, schedule=None) -> CompletedGame:
    """The completed game of these bytes with the schedule row and teams in sidearmdb (or in
    `schedule`: (games rows, teams rows) read once for many games)."""
    if schedule is None:
        games = reference_db.rows_by_keys(engine, reference_db.games, reference_db.games.c.game_id, [game_id])
        teams = reference_db.rows_by_keys(engine, reference_db.teams, reference_db.teams.c.id,
                                          [t for g in games for t in (g["home_teamid"], g["away_teamid"])])
    else:
        games, teams = schedule
    verdict = judge(game_id, data, games, teams)
    assert verdict.over and verdict.completed is not None, verdict.reason
    return verdict.completed


def counted_game(engine, game_id: str, data: bytes) -> tuple[CompletedGame, CountedGame]:
    g = completed(engine, game_id, data)
    return g, CountedGame(game_id, digest_of(data), data, version=f"v-{digest_of(data)[:6]}",
                          over_reason=g.over_reason, home_teamid=g.home_teamid, away_teamid=g.away_teamid)


def facts_of(engine, games: list[CompletedGame]) -> GameFacts:
    return game_facts(games, reference_db.read_rows(engine, reference_db.players))


def file(engine, streams: dict[str, bytes], filed_at: str | None = None) -> list[str]:
    return final_tables_db.file_completions(engine, [Completion(g, d) for g, d in streams.items()], filed_at)


def count(engine, streams: dict[str, bytes], run_id: str = "run", facts: GameFacts | None = None, uncountable=()):
    """A run that read these versions and counts them: count_games with the plain-Python facts."""
    pairs = [counted_game(engine, g, d) for g, d in sorted(streams.items())]
    if facts is None:
        facts = facts_of(engine, [p[0] for p in pairs])
    return final_tables_db.count_games(engine, [p[1] for p in pairs], facts, list(uncountable), run_id)


def file_and_count(engine, streams: dict[str, bytes], run_id: str = "run"):
    file(engine, streams)
    return count(engine, streams, run_id)


def expected_tables(engine, streams: dict[str, bytes]) -> tuple[list[dict], list[dict]]:
    """players2/teams2 as domain.final.season_totals computes them: base + these games."""
    teams = reference_db.read_rows(engine, reference_db.teams)
    schedule = (reference_db.read_rows(engine, reference_db.games), teams)
    final = season_totals(
        reference_db.read_rows(engine, reference_db.players), teams,
        [completed(engine, g, d, schedule) for g, d in streams.items()],
    )
    return final.players, final.teams


def base_tables(engine) -> tuple[list[dict], list[dict]]:
    return expected_tables(engine, {})


def states(engine) -> dict[str, tuple[str, str]]:
    """game id -> (ETag filed, state) of every completion."""
    with engine.connect() as conn:
        return {g: (e, s) for g, e, s in conn.execute(select(completions.c.game_id, completions.c.etag, completions.c.state))}


def stored_facts(engine, game_ids=None) -> GameFacts:
    """The fact rows in sidearmdb (of these games, or all) as domain facts (no off-roster list)."""
    from sidearm_assets.domain.facts import PlayerFact, TeamFact

    with engine.connect() as conn:
        players = [PlayerFact(**dict(r._mapping)) for r in conn.execute(select(player_game_facts))]
        teams = [TeamFact(**{k: v for k, v in r._mapping.items() if k != "etag"}) for r in conn.execute(select(team_game_facts))]
    if game_ids is not None:
        players = [f for f in players if f.game_id in game_ids]
        teams = [f for f in teams if f.game_id in game_ids]
    return GameFacts(sorted(players), sorted(teams), [])


def without_unknown(facts: GameFacts) -> GameFacts:
    return GameFacts(sorted(facts.players), sorted(facts.teams), [])


def delta(before: tuple[list[dict], list[dict]], after: tuple[list[dict], list[dict]]):
    """(player id -> (shots, goals) added, team id -> (wins, losses) added), rows that changed only;
    AssertionError when any other column or the set of rows changed."""
    out = []
    for rows_before, rows_after, cols in ((before[0], after[0], ("shots", "goals")), (before[1], after[1], ("wins", "losses"))):
        assert [r["id"] for r in rows_before] == [r["id"] for r in rows_after]
        changed = {}
        for b, a in zip(rows_before, rows_after):
            assert {k: v for k, v in a.items() if k not in cols} == {k: v for k, v in b.items() if k not in cols}
            d = tuple(a[c] - b[c] for c in cols)
            if any(d):
                changed[a["id"]] = d
        out.append(changed)
    return tuple(out)


def facts_delta(old: GameFacts, new: GameFacts):
    """The same shape as `delta`: what replacing `old` facts by `new` adds per player and team."""
    players: dict[int, list[int]] = {}
    teams: dict[int, list[int]] = {}
    for sign, facts in ((-1, old), (1, new)):
        for f in facts.players:
            p = players.setdefault(f.player_id, [0, 0])
            p[0] += sign * f.shots
            p[1] += sign * f.goals
        for f in facts.teams:
            t = teams.setdefault(f.teamid, [0, 0])
            t[0] += sign * f.wins
            t[1] += sign * f.losses
    return ({k: tuple(v) for k, v in players.items() if any(v)}, {k: tuple(v) for k, v in teams.items() if any(v)})


def league_engine(request, tmp_path, league):
    """A fixture body: sidearmdb on SQLite or on the real PostgreSQL server (`request.param`), with
    the base data and `league` installed and no final tables; dropped afterwards."""
    from gamestream import league as lg
    from sidearm_assets.storage import reference_db
    from sidearm_assets.storage.final_tables_db import drop_final_tables

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    eng = reference_db.make_engine(url)
    drop_final_tables(eng)
    reference_db.reset_base_tables(eng)
    lg.install_league(eng, league)
    yield eng
    drop_final_tables(eng)
    eng.dispose()
