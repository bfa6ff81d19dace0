"""Counting completed games into the final tables: the work of one final-tables run (SPEC 6, 8).

The live path files every completed game's final version in the inbox (`completions` in
sidearmdb, `final_tables_db.file_completions`) and copies its bytes to the archive in the bucket
(`completed/<game_id>.txt`). A run (`CountingJob.run`):

1. reads the completions waiting (pending, or uncountable before) with their bytes, and the counted
   games whose facts are missing (a record from before facts existed): O(games to count);
2. looks up their schedule rows, their teams and those teams' players by key;
3. judges each (over? scheduled? teams known?): a game that cannot be counted is marked
   `uncountable` with the reason and never blocks the others; a new version of a counted game
   that cannot be counted leaves the counted version in place, with a warning;
4. computes the facts of the countable games (Spark, the `compute_facts` given) and, independently,
   in plain Python (`domain.facts`) for the checks;
5. writes facts, record, inbox states and the rebuilt tables in one transaction
   (`final_tables_db.count_games`).

Nothing here reads the season: the cost of a run is the games it counts plus one set-based rebuild
of the tables. A manual materialization first reconciles the bucket (`reconcile_bucket`): live
objects that are over now and archived games not filed are filed, and counted games missing from
the archive are put back. No Dagster import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidearm_assets.domain.facts import GameFacts, game_facts
from sidearm_assets.domain.final import CompletedGame, GameOverCheck, judge
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.storage.final_tables_db import Completion, CountedGame, Uncountable


class CompletedGamesError(RuntimeError):
    """A counted game cannot be counted any more (its teams left `teams`): the run must not write."""


@dataclass
class CountingReport:
    """What a run counted and everything worth reporting about it."""

    games: list[CompletedGame] = field(default_factory=list)  # counted by this run
    facts: GameFacts = field(default_factory=lambda: GameFacts([], [], []))  # Spark's, of `games`
    expected: GameFacts = field(default_factory=lambda: GameFacts([], [], []))  # plain Python's
    corrected: list[str] = field(default_factory=list)  # counted before at another version
    refacted: list[str] = field(default_factory=list)  # counted games whose facts were rebuilt
    uncountable: list[Uncountable] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stale: bool = False  # the tables counted an uncounted game
    written: final_tables_db.WriteResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    rounds: int = 1

    def then(self, later: "CountingReport") -> "CountingReport":
        """This round followed by a later one of the same run: what the run did in all."""
        uncountable = {u.game_id: u for u in self.uncountable}
        counted_later = {g.game_id for g in later.games}
        uncountable = {g: u for g, u in uncountable.items() if g not in counted_later}
        uncountable.update({u.game_id: u for u in later.uncountable})
        return CountingReport(
            games=self.games + later.games,
            facts=GameFacts(self.facts.players + later.facts.players, self.facts.teams + later.facts.teams,
                            self.facts.unknown + later.facts.unknown).normalized(),
            expected=GameFacts(self.expected.players + later.expected.players, self.expected.teams + later.expected.teams,
                               self.expected.unknown + later.expected.unknown).normalized(),
            corrected=self.corrected + later.corrected, refacted=self.refacted + later.refacted,
            uncountable=list(uncountable.values()), warnings=self.warnings + later.warnings,
            stale=self.stale or later.stale, written=later.written,
            seconds={k: self.seconds.get(k, 0) + later.seconds.get(k, 0) for k in {*self.seconds, *later.seconds}},
            rounds=self.rounds + later.rounds,
        )


def _verdict(game_id: str, data: bytes, schedule: dict[str, dict], teams: dict[int, dict],
             recorded: CountedGame | None, version: str | None) -> GameOverCheck:
    """Judge one version with its schedule row, or with the teams recorded when the game was
    counted if the row has gone (a counted game is not dropped by a schedule edit)."""
    row = schedule.get(game_id)
    if row is None and recorded is not None and recorded.home_teamid is not None:
        row = {"game_id": game_id, "home_teamid": recorded.home_teamid, "away_teamid": recorded.away_teamid}
    rows = [row] if row else []
    its_teams = [teams[t] for t in ((row["home_teamid"], row["away_teamid"]) if row else ()) if t in teams]
    return judge(game_id, data, rows, its_teams, version=version)


MAX_ROUNDS = 5  # a run counts what was filed while it worked, this many times at most


class CountingJob:
    """One run's counting. `compute_facts(games, rosters) -> GameFacts` is the Spark job (or, in
    tests of the plumbing, the plain-Python reference)."""

    def run_until_done(self, before_spark: Callable[[], None] = lambda: None) -> CountingReport:
        """Rounds of `run`: after a round, completions filed while it worked (a game ending during
        the run, a newer version) are counted by another round in the same run, at most
        MAX_ROUNDS in all, instead of waiting for the next run's launch."""
        report = self.run(before_spark)
        while report.rounds < MAX_ROUNDS and final_tables_db.has_pending(self.engine):
            report = report.then(self.run(before_spark))
        return report

    def __init__(self, engine, compute_facts: Callable[[list[CompletedGame], list[dict]], GameFacts],
                 run_id: str | None = None):
        self.engine = engine
        self.compute_facts = compute_facts
        self.run_id = run_id

    def run(self, before_spark: Callable[[], None] = lambda: None) -> CountingReport:
        report = CountingReport()
        started = time.monotonic()
        inbox = final_tables_db.read_inbox(self.engine, with_data=True)
        report.stale = inbox.stale
        refact_ids = final_tables_db.games_without_facts(self.engine)
        ids = {r.game_id for r in inbox.waiting} | set(refact_ids)
        recorded = final_tables_db.read_record(self.engine, list(ids))
        schedule = {g["game_id"]: g for g in reference_db.rows_by_keys(
            self.engine, reference_db.games, reference_db.games.c.game_id, ids)}
        team_ids = {t for g in schedule.values() for t in (g["home_teamid"], g["away_teamid"])}
        team_ids |= {t for r in recorded.values() for t in (r.home_teamid, r.away_teamid)}
        teams = {t["id"]: t for t in reference_db.rows_by_keys(self.engine, reference_db.teams, reference_db.teams.c.id, team_ids)}

        countable: dict[str, tuple[CompletedGame, CountedGame]] = {}
        for row in inbox.waiting:
            verdict = _verdict(row.game_id, row.data, schedule, teams, recorded.get(row.game_id), row.version)
            old = recorded.get(row.game_id)
            if verdict.over and verdict.completed is not None:
                countable[row.game_id] = (verdict.completed, CountedGame(
                    game_id=row.game_id, etag=row.etag, data=row.data, version=row.version,
                    over_reason=verdict.reason, home_teamid=verdict.completed.home_teamid,
                    away_teamid=verdict.completed.away_teamid,
                ))
                if old is not None and old.etag != row.etag:
                    report.corrected.append(row.game_id)
                continue
            report.uncountable.append(Uncountable(row.game_id, row.etag, verdict.reason))
            if old is not None:
                report.warnings.append(
                    f"{row.game_id}: the new version cannot be counted ({verdict.reason}); the counted version stays counted")
        problems = []
        for game_id in refact_ids:
            if game_id in countable:
                continue  # a newer version is counted in its place
            old = recorded[game_id]
            verdict = _verdict(game_id, old.data, schedule, teams, old, old.version)
            if not (verdict.over and verdict.completed is not None):
                problems.append(f"counted game {game_id!r} cannot be counted any more: {verdict.reason}")
                continue
            countable[game_id] = (verdict.completed, old)
            report.refacted.append(game_id)
        if problems:
            raise CompletedGamesError(
                "; ".join(problems) + " (fix the reference data, or remove it explicitly with "
                "`sidearm-games uncount GAME --reason TEXT`)")

        report.games = [countable[g][0] for g in sorted(countable)]
        rosters = reference_db.rows_by_keys(self.engine, reference_db.players, reference_db.players.c.teamid,
                                            {t for g in report.games for t in (g.home_teamid, g.away_teamid)})
        report.expected = game_facts(report.games, rosters)
        report.seconds["read"] = time.monotonic() - started

        before_spark()
        spark_started = time.monotonic()
        report.facts = self.compute_facts(report.games, rosters) if report.games else GameFacts([], [], [])
        report.seconds["spark"] = time.monotonic() - spark_started

        write_started = time.monotonic()
        report.written = final_tables_db.count_games(
            self.engine, [countable[g][1] for g in sorted(countable)], report.facts, report.uncountable, self.run_id)
        report.seconds["write"] = time.monotonic() - write_started
        for game_id in report.written.deferred:
            report.warnings.append(f"{game_id}: a newer version was filed (or it was uncounted) while this run "
                                   "worked; the next run counts it")
        return report


@dataclass
class ReconcileReport:
    filed_live: list[str] = field(default_factory=list)  # live objects over now, filed
    filed_archive: list[str] = field(default_factory=list)  # archived games that were not filed
    rearchived: list[str] = field(default_factory=list)  # counted games the archive had lost
    not_over: list[str] = field(default_factory=list)
    unscheduled: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def reconcile_bucket(store, engine) -> ReconcileReport:
    """A manual materialization's first step, O(season): file every live object that is over now
    and every archived game the inbox has not seen (an archive written before the inbox existed,
    or by hand), and put back in the archive the counted games it lost."""
    report = ReconcileReport()
    schedule = {g["game_id"]: g for g in reference_db.read_rows(engine, reference_db.games)}
    teams = {t["id"]: t for t in reference_db.read_rows(engine, reference_db.teams)}
    to_file: list[Completion] = []
    for game_id, obj in sorted(store.list_games().items()):
        try:
            data, obj = store.read(game_id)
        except Exception as exc:  # deleted since the listing: nothing to file
            report.not_over.append(f"{game_id} (unreadable: {exc})")
            continue
        verdict = _verdict(game_id, data, schedule, teams, None, obj.version)
        if not verdict.scheduled:
            report.unscheduled.append(game_id)
        elif verdict.over and not verdict.teams_known:
            report.errors.append(f"{game_id}: {verdict.reason}")
        elif verdict.over:
            to_file.append(Completion(game_id, data, obj.version))
            store.archive(game_id, data)
            report.filed_live.append(game_id)
        else:
            report.not_over.append(f"{game_id} ({verdict.reason})")
    live_filed = {c.game_id for c in to_file}
    archived = store.list_archive()
    known = _filed_etags(engine)
    for game_id, obj in sorted(archived.items()):
        if game_id in live_filed or known.get(game_id) == obj.etag:
            continue
        data, obj = store.read_archive(game_id)
        if known.get(game_id) == final_tables_db.digest_of(data):
            continue
        to_file.append(Completion(game_id, data, obj.version))
        report.filed_archive.append(game_id)
    final_tables_db.file_completions(engine, to_file)
    record = final_tables_db.read_record(engine)
    for game_id in sorted(set(record) - set(archived) - live_filed):
        store.archive(game_id, record[game_id].data)
        report.rearchived.append(game_id)
    store.client().put_object(Bucket=store.bucket, Key=ARCHIVE_MARKER_KEY, Body=b"the archive of completed games is whole\n")
    return report


def _filed_etags(engine) -> dict[str, str]:
    from sqlalchemy import select

    from sidearm_assets.storage.final_schema import completions, ensure_schema

    ensure_schema(engine)
    with engine.connect() as conn:
        return dict(conn.execute(select(completions.c.game_id, completions.c.etag)).all())


ARCHIVE_MARKER_KEY = "_sidearm/archive-marker"  # absent: the object store lost its contents


def restore_archive_if_lost(store, engine) -> list[str]:
    """One HEAD per run: when the marker object is gone, the store lost its contents (moto keeps
    objects in memory; a MinIO volume can be lost), so every counted game missing from the archive
    is put back from the record's bytes (O(season), only then), and the marker is written again.
    Returns the games put back."""
    from botocore.exceptions import ClientError

    client = store.client()
    try:
        client.head_object(Bucket=store.bucket, Key=ARCHIVE_MARKER_KEY)
        return []
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    archived = store.list_archive()
    record = final_tables_db.read_record(engine)
    put_back = []
    for game_id in sorted(set(record) - set(archived)):
        store.archive(game_id, record[game_id].data)
        put_back.append(game_id)
    client.put_object(Bucket=store.bucket, Key=ARCHIVE_MARKER_KEY, Body=b"the archive of completed games is whole\n")
    return put_back
