"""The completion inbox, the record of counted games, their facts and `players2`/`teams2` in
sidearmdb (SPEC 6, 8), through SQLAlchemy Core. The tables are in `final_schema.py`.

- **File** (`file_completions`): the live path, a manual run and the backfill put each completed
  game's final version in `completions`; a version not yet counted is `pending`. Durable before
  any run, so a game the live path saw completed is never lost with the object store or a run.
- **Count** (`count_games`), one transaction: replace the facts of the games counted (delete the
  game's rows, insert the new ones), bring their `counted_games` rows up to date, mark their
  completions `counted` (or `uncountable`, with the reason), and rebuild `players2`/`teams2` as
  base + the sum of the facts with one `INSERT ... SELECT` each. A game whose completion was
  replaced by a newer version while the run worked is left pending for the next run, so an older
  version never overwrites a newer one. Readers see the old pair of tables or the new pair.
- **Uncount / recount** (`record_log.py`): the explicit, logged way out of the record and back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update

from sidearm_assets.domain.facts import GameFacts
from sidearm_assets.storage import reference_db
from sidearm_assets.storage.sql_common import chunks, utc_now
from sidearm_assets.storage.final_schema import (
    COUNTED,
    FINAL_TABLES,
    PENDING,
    STATE_NAME,
    UNCOUNTABLE,
    UNCOUNTED,
    completions,
    counted_games,
    ensure_schema,
    final_metadata,
    final_tables_state,
    player_game_facts,
    players2,
    team_game_facts,
    teams2,
    uncounted_games,
)

def digest_of(data: bytes) -> str:
    """A version's digest: the MD5 of its bytes, which is also the S3 ETag of a single put."""
    return hashlib.md5(data).hexdigest()


def record_digest(etags: dict[str, str]) -> str:
    """A short digest of a set of counted game versions (game id -> ETag), order-free."""
    text = "\n".join(f"{g}@{etags[g]}" for g in sorted(etags))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Completion:
    """A completed game's final version, as filed in the inbox."""

    game_id: str
    data: bytes
    version: str | None = None  # the live object's version it was published from

    @property
    def etag(self) -> str:
        return digest_of(self.data)


@dataclass(frozen=True)
class InboxRow:
    game_id: str
    etag: str
    state: str
    filed_at: str
    problem: str | None = None
    checked_at: str | None = None
    version: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class CountedGame:
    """One row of the record: a game as the final tables count it."""

    game_id: str
    etag: str
    data: bytes
    version: str | None = None
    over_reason: str | None = None
    home_teamid: int | None = None
    away_teamid: int | None = None
    counted_at: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Uncountable:
    game_id: str
    etag: str
    problem: str


def _active_uncounts(conn, game_ids: list[str] | None = None) -> dict[str, str]:
    """game id -> ETag of its latest log entry when that entry is an uncount."""
    query = select(uncounted_games.c.game_id, uncounted_games.c.action, uncounted_games.c.etag).order_by(uncounted_games.c.id)
    rows = []  # in log order per game: each chunk is ordered, and chunks hold distinct games
    if game_ids is None:
        rows = conn.execute(query).all()
    else:
        for chunk in chunks(game_ids):
            rows += conn.execute(query.where(uncounted_games.c.game_id.in_(chunk))).all()
    latest: dict[str, tuple[str, str]] = {}
    for game_id, action, etag in rows:
        latest[game_id] = (action, etag)
    return {g: etag for g, (action, etag) in latest.items() if action == "uncount"}


def _by_ids(conn, columns, key, game_ids: list[str]) -> list:
    rows = []
    for chunk in chunks(game_ids):
        rows += conn.execute(select(*columns).where(key.in_(chunk))).all()
    return rows


def file_completions(engine: Engine, items: list[Completion], filed_at: str | None = None) -> list[str]:
    """File final versions in the inbox, in one transaction; returns the game ids whose version is
    new there (pending, unless that very version is counted already or was uncounted: then it
    keeps that state). Filing a version that is filed already changes nothing."""
    ensure_schema(engine)
    latest = {c.game_id: c for c in items}  # a game filed twice in one call: the last version
    if not latest:
        return []
    filed_at = filed_at or utc_now()
    ids = sorted(latest)
    with engine.begin() as conn:
        filed = {g: e for g, e in _by_ids(conn, (completions.c.game_id, completions.c.etag), completions.c.game_id, ids)}
        counted = {g: e for g, e in _by_ids(conn, (counted_games.c.game_id, counted_games.c.etag), counted_games.c.game_id, ids)}
        uncounted = _active_uncounts(conn, ids)
        new, changed = [], []
        for game_id in ids:
            c = latest[game_id]
            etag = c.etag
            if filed.get(game_id) == etag:
                continue
            state = COUNTED if counted.get(game_id) == etag else UNCOUNTED if uncounted.get(game_id) == etag else PENDING
            row = {"g": game_id, "etag": etag, "version": c.version, "data": c.data, "filed_at": filed_at,
                   "state": state, "problem": None, "checked_at": None}
            (changed if game_id in filed else new).append(row)
        if new:
            conn.execute(insert(completions), [{("game_id" if k == "g" else k): v for k, v in r.items()} for r in new])
        if changed:
            conn.execute(
                update(completions).where(completions.c.game_id == bindparam("g")).values(
                    etag=bindparam("etag"), version=bindparam("version"), data=bindparam("data"),
                    filed_at=bindparam("filed_at"), state=bindparam("state"), problem=bindparam("problem"),
                    checked_at=bindparam("checked_at"),
                ),
                changed,
            )
    return [r["g"] for r in new + changed if r["state"] == PENDING]


@dataclass(frozen=True)
class InboxSummary:
    """What the game-over sensor reads each look: no bytes, nothing of the counted season."""

    waiting: list[InboxRow]  # pending and uncountable completions
    stale: bool  # the tables still count a game uncounted since they were written
    counted: int  # games the tables count


def read_inbox(engine: Engine, with_data: bool = False) -> InboxSummary:
    """The completions waiting to be counted (pending or uncountable), and the state row."""
    ensure_schema(engine)
    cols = [completions.c.game_id, completions.c.etag, completions.c.state, completions.c.filed_at,
            completions.c.problem, completions.c.checked_at, completions.c.version]
    if with_data:
        cols.append(completions.c.data)
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols).where(completions.c.state.in_((PENDING, UNCOUNTABLE))).order_by(completions.c.game_id)
        ).all()
        state = conn.execute(
            select(final_tables_state.c.stale, final_tables_state.c.completed_games)
            .where(final_tables_state.c.name == STATE_NAME)
        ).first()
    waiting = [InboxRow(*r[:7], data=bytes(r[7]) if with_data else None) for r in rows]
    return InboxSummary(waiting, bool(state and state[0]), state[1] if state else 0)


def has_pending(engine: Engine) -> bool:
    """Whether a completion waits to be counted (an indexed lookup of one row)."""
    with engine.connect() as conn:
        return conn.execute(select(completions.c.game_id).where(completions.c.state == PENDING).limit(1)).first() is not None


def read_record(engine: Engine, game_ids: list[str] | None = None) -> dict[str, CountedGame]:
    """Record rows with their bytes, game id -> CountedGame: the given games, or all of them."""
    ensure_schema(engine)
    with engine.connect() as conn:
        if game_ids is None:
            rows = conn.execute(select(counted_games).order_by(counted_games.c.game_id)).mappings().all()
        else:
            rows = []
            for chunk in chunks(sorted(set(game_ids))):
                rows += conn.execute(select(counted_games).where(counted_games.c.game_id.in_(chunk))).mappings().all()
    return {r["game_id"]: CountedGame(**{k: (bytes(v) if k == "data" else v) for k, v in r.items()}) for r in rows}


def games_without_facts(engine: Engine, limit: int = 1000) -> list[str]:
    """Counted games whose facts are missing or of another version (a record written before facts
    existed): the next run computes them from the record's bytes."""
    ensure_schema(engine)
    tf = team_game_facts
    with engine.connect() as conn:
        rows = conn.execute(
            select(counted_games.c.game_id)
            .select_from(counted_games.outerjoin(tf, (tf.c.game_id == counted_games.c.game_id) & (tf.c.etag == counted_games.c.etag)))
            .where(tf.c.game_id.is_(None))
            .order_by(counted_games.c.game_id)
            .limit(limit)
        ).all()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class WriteResult:
    players: int  # rows of players2
    teams: int  # rows of teams2
    recorded: tuple[str, ...]  # games whose facts (and record row) this write replaced
    deferred: tuple[str, ...]  # games left pending: a newer version was filed, or it was uncounted, meanwhile
    completed_games: int  # games the tables count after the write
    digest: str  # record_digest of the games the tables count
    written_at: str


def count_games(
    engine: Engine,
    counted: list[CountedGame],
    facts: GameFacts,
    uncountable: list[Uncountable] = (),
    run_id: str | None = None,
) -> WriteResult:
    """Count `counted` (with `facts`, the facts of exactly those games) and rebuild the tables, in
    one transaction. A game is written only if the version counted is still the one to count."""
    ensure_schema(engine)
    written_at = utc_now()
    ids = sorted({g.game_id for g in counted})
    with engine.begin() as conn:
        _claim_state(conn, written_at)
        inbox = {g: (e, s) for g, e, s in _by_ids(conn, (completions.c.game_id, completions.c.etag, completions.c.state), completions.c.game_id, ids)}
        recorded = {g: e for g, e in _by_ids(conn, (counted_games.c.game_id, counted_games.c.etag), counted_games.c.game_id, ids)}
        keep, deferred = [], []
        for g in counted:
            filed = inbox.get(g.game_id)
            newer_filed = filed is not None and filed[0] != g.etag and not (filed[1] == UNCOUNTABLE and recorded.get(g.game_id) == g.etag)
            gone = filed is not None and filed[0] == g.etag and filed[1] == UNCOUNTED
            from_record_gone = filed is None and recorded.get(g.game_id) != g.etag
            (deferred if newer_filed or gone or from_record_gone else keep).append(g)
        keep_ids = [g.game_id for g in keep]
        for chunk in chunks(keep_ids):
            conn.execute(delete(player_game_facts).where(player_game_facts.c.game_id.in_(chunk)))
            conn.execute(delete(team_game_facts).where(team_game_facts.c.game_id.in_(chunk)))
        wanted = set(keep_ids)
        etag = {g.game_id: g.etag for g in keep}
        player_rows = [{"game_id": f.game_id, "player_id": f.player_id, "teamid": f.teamid, "shots": f.shots, "goals": f.goals}
                       for f in facts.players if f.game_id in wanted]
        team_rows = [{**{k: getattr(f, k) for k in ("game_id", "teamid", "goals_for", "goals_against", "wins", "losses",
                                                   "ties", "unknown_shots", "unknown_goals")}, "etag": etag[f.game_id]}
                     for f in facts.teams if f.game_id in wanted]
        if player_rows:
            conn.execute(insert(player_game_facts), player_rows)
        if team_rows:
            conn.execute(insert(team_game_facts), team_rows)
        fresh = [g for g in keep if recorded.get(g.game_id) != g.etag]
        for chunk in chunks([g.game_id for g in fresh]):
            conn.execute(delete(counted_games).where(counted_games.c.game_id.in_(chunk)))
        if fresh:
            conn.execute(insert(counted_games), [
                {"game_id": g.game_id, "etag": g.etag, "version": g.version, "over_reason": g.over_reason,
                 "home_teamid": g.home_teamid, "away_teamid": g.away_teamid, "data": g.data,
                 "counted_at": written_at, "run_id": run_id}
                for g in fresh
            ])
        if keep:
            conn.execute(
                update(completions)
                .where((completions.c.game_id == bindparam("g")) & (completions.c.etag == bindparam("e")))
                .values(state=COUNTED, problem=None, checked_at=None),
                [{"g": g.game_id, "e": g.etag} for g in keep],
            )
        if uncountable:
            conn.execute(
                update(completions)
                .where((completions.c.game_id == bindparam("g")) & (completions.c.etag == bindparam("e"))
                       & ((completions.c.state == PENDING) | (completions.c.state == UNCOUNTABLE)))
                .values(state=UNCOUNTABLE, problem=bindparam("p"), checked_at=written_at),
                [{"g": u.game_id, "e": u.etag, "p": u.problem[:1000]} for u in uncountable],
            )
        _refuse_dropping_counted_games(conn)
        players_n, teams_n = rebuild_final_tables(conn)
        all_etags = dict(conn.execute(select(counted_games.c.game_id, counted_games.c.etag)).all())
        digest = record_digest(all_etags)
        conn.execute(
            update(final_tables_state).where(final_tables_state.c.name == STATE_NAME).values(
                completed_games=len(all_etags), games_digest=digest, stale=0, run_id=run_id, written_at=written_at,
            )
        )
    return WriteResult(players_n, teams_n, tuple(sorted(g.game_id for g in fresh)),
                       tuple(sorted(g.game_id for g in deferred)), len(all_etags), digest, written_at)


class CountedGameDropped(RuntimeError):
    """The rebuilt tables would leave out part of a counted game (its team or player left the base
    tables): the write is refused, the tables stay as they were."""


def _refuse_dropping_counted_games(conn, limit: int = 20) -> None:
    """CountedGameDropped naming the counted games whose facts name a team that is no longer in
    `teams` (an anti-join by key). A credited player who left `players` (the simulator's reset
    removes players of teams outside the base data and the league) drops nobody's game: that
    player's shots stay in the game's score and are reported (`read_season_facts.orphan_goals`)."""
    t, tf = reference_db.teams, team_game_facts
    lost = conn.execute(
        select(tf.c.game_id, tf.c.teamid).select_from(tf.outerjoin(t, t.c.id == tf.c.teamid))
        .where(t.c.id.is_(None)).limit(limit)
    ).all()
    if lost:
        games = sorted({f"{g} (team {team})" for g, team in lost})
        raise CountedGameDropped(
            "refusing to write final tables that drop part of counted game(s) " + ", ".join(games)
            + ": a team they name is no longer in the teams table (fix the reference data, "
            "or remove the game explicitly with `sidearm-games uncount GAME --reason TEXT`)"
        )


def _claim_state(conn, at: str) -> None:
    """Take the state row's lock first (it serializes writers on every backend), inserting it once."""
    moved = conn.execute(
        update(final_tables_state).where(final_tables_state.c.name == STATE_NAME).values(generation=at)
    ).rowcount
    if moved != 1:
        conn.execute(insert(final_tables_state).values(
            name=STATE_NAME, generation=at, completed_games=0, games_digest=None, stale=0, run_id=None, written_at=None,
        ))


def rebuild_final_tables(conn) -> tuple[int, int]:
    """players2/teams2 = base + the sum of the facts: DELETE and one INSERT ... SELECT per table,
    in the caller's transaction (created in it the first time). Returns the row counts."""
    final_metadata.create_all(conn, tables=list(FINAL_TABLES))  # checkfirst, inside the transaction
    p, t = reference_db.players, reference_db.teams
    pf = (select(player_game_facts.c.player_id, func.sum(player_game_facts.c.shots).label("shots"),
                 func.sum(player_game_facts.c.goals).label("goals"))
          .group_by(player_game_facts.c.player_id).subquery())
    tf = (select(team_game_facts.c.teamid, func.sum(team_game_facts.c.wins).label("wins"),
                 func.sum(team_game_facts.c.losses).label("losses"))
          .group_by(team_game_facts.c.teamid).subquery())
    conn.execute(delete(players2))
    conn.execute(delete(teams2))
    conn.execute(insert(teams2).from_select(
        list(reference_db.TEAM_COLUMNS),
        select(t.c.id, t.c.name, t.c.conference,
               func.coalesce(t.c.wins, 0) + func.coalesce(tf.c.wins, 0),
               func.coalesce(t.c.losses, 0) + func.coalesce(tf.c.losses, 0))
        .select_from(t.outerjoin(tf, tf.c.teamid == t.c.id)),
    ))
    conn.execute(insert(players2).from_select(
        list(reference_db.PLAYER_COLUMNS),
        select(p.c.id, p.c.name, p.c.number,
               func.coalesce(p.c.shots, 0) + func.coalesce(pf.c.shots, 0),
               func.coalesce(p.c.goals, 0) + func.coalesce(pf.c.goals, 0),
               p.c.teamid)
        .select_from(p.outerjoin(pf, pf.c.player_id == p.c.id)),
    ))
    return conn.scalar(select(func.count()).select_from(players2)), conn.scalar(select(func.count()).select_from(teams2))


@dataclass(frozen=True)
class SeasonFacts:
    """Sums over every counted game's facts, read back for the checks and the metadata."""

    player_totals: dict[int, tuple[int, int]]  # player id -> (shots, goals)
    team_totals: dict[int, tuple[int, int]]  # team id -> (wins, losses)
    games: int  # counted games with facts
    ties: int  # counted games ended tied
    goals: int  # all goals of the counted games
    unknown_goals: int  # goals by jerseys on no roster
    orphan_goals: int = 0  # goals credited to players no longer in `players`


def read_season_facts(engine: Engine) -> SeasonFacts:
    with engine.connect() as conn:
        pf, tf = player_game_facts, team_game_facts
        players = conn.execute(select(pf.c.player_id, func.sum(pf.c.shots), func.sum(pf.c.goals)).group_by(pf.c.player_id)).all()
        teams = conn.execute(select(tf.c.teamid, func.sum(tf.c.wins), func.sum(tf.c.losses)).group_by(tf.c.teamid)).all()
        orphan = conn.execute(
            select(func.coalesce(func.sum(pf.c.goals), 0)).select_from(
                pf.outerjoin(reference_db.players, reference_db.players.c.id == pf.c.player_id))
            .where(reference_db.players.c.id.is_(None))
        ).scalar()
        games, ties, goals, unknown = conn.execute(
            select(func.count(func.distinct(tf.c.game_id)), func.coalesce(func.sum(tf.c.ties), 0),
                   func.coalesce(func.sum(tf.c.goals_for), 0), func.coalesce(func.sum(tf.c.unknown_goals), 0))
        ).one()
    return SeasonFacts(
        {r[0]: (int(r[1]), int(r[2])) for r in players}, {r[0]: (int(r[1]), int(r[2])) for r in teams},
        int(games), int(ties) // 2, int(goals), int(unknown), int(orphan),
    )


def facts_versions(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """(record: game id -> counted ETag, facts: game id -> ETag its facts come from), for the check
    that the tables count exactly the recorded games, version for version."""
    with engine.connect() as conn:
        record = dict(conn.execute(select(counted_games.c.game_id, counted_games.c.etag)).all())
        facts = dict(conn.execute(select(team_game_facts.c.game_id, team_game_facts.c.etag).distinct()).all())
    return record, facts


def read_final_tables(engine: Engine) -> tuple[list[dict], list[dict]] | None:
    """(players2, teams2) rows read in one transaction, or None before the first write."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table("players2"):
        return None
    with engine.connect() as conn:
        players_rows = [dict(r._mapping) for r in conn.execute(select(players2).order_by(players2.c.id))]
        teams_rows = [dict(r._mapping) for r in conn.execute(select(teams2).order_by(teams2.c.id))]
    return players_rows, teams_rows


def read_state(engine: Engine) -> dict | None:
    ensure_schema(engine)
    with engine.connect() as conn:
        row = conn.execute(select(final_tables_state).where(final_tables_state.c.name == STATE_NAME)).first()
    return dict(row._mapping) if row else None


def drop_final_tables(engine: Engine) -> None:
    """Remove the final tables and all their bookkeeping (tests, a fresh start)."""
    from sidearm_assets.storage.final_schema import BOOKKEEPING, forget_schema

    final_metadata.drop_all(engine, tables=[*FINAL_TABLES, *BOOKKEEPING])
    forget_schema(engine)
