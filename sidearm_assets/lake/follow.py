"""Bring the lake in line with the record of counted games: the lake asset's work, no Dagster.

The lake holds exactly one file per row of `counted_games`, built from that row's bytes, at that
row's ETag, and `lake_games` (with each game's facts) says which. A run:

1. reads the marker object `lake/_lake.json` (one GET) and compares its lake id with the one
   in `lake_state`. A missing or different marker means the store lost its contents (or the
   lake is new): the run then **reconciles**, listing the events folder once to find files
   that are missing or not the ones written, and files of games that are not counted;
2. compares `counted_games` with `lake_games` (`record.plan`: keys only) for the games new,
   corrected or uncounted since the last run;
3. writes the files of those games from the record's bytes (in chunks of `CHUNK` games: read
   the rows, build the events, one PutObject each, compute their facts with DuckDB, replace
   their facts and `lake_games` rows in one transaction);
4. deletes the files and facts of games no longer counted (and, reconciling, stray files);
5. after a reconcile, writes the marker (and its id in `lake_state`).

So a run costs O(games changed) plus one GET and two keyed comparisons in sidearmdb; the lake
is listed only when the marker says the store forgot it, or when asked (the backfill).
Every write is idempotent (a file's path depends on its game only, facts are replaced whole),
so a retried or concurrent run converges on the same lake.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sidearm_assets.lake import facts, record, store, tables
from sidearm_assets.lake.events import GameEvents, GameNotOverError, game_event_rows
from sidearm_assets.storage.sql_common import chunks

CHUNK = 500  # games per read-build-write-facts step: memory stays bounded in a backfill


@dataclass
class FollowReport:
    written: list[store.WrittenFile] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # games no longer counted: file and facts removed
    strays: list[str] = field(default_factory=list)  # files of no counted game, removed (reconciling)
    problems: list[str] = field(default_factory=list)  # counted games whose file could not be built
    reconciled: str | None = None  # why the lake was listed, when it was
    counted: int = 0  # rows in the record
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(w.rows for w in self.written)


def reconcile_reason(marker: str | None, lake_id: str | None, asked: bool) -> str | None:
    """Why this run lists the lake, or None: a pure rule of the marker and the recorded id."""
    if asked:
        return "asked (backfill)"
    if marker is None:
        return "no marker object: a new lake, or an object store that lost its contents"
    if marker != lake_id:
        return f"the marker names lake {marker}, sidearmdb lake {lake_id}"
    return None


def files_to_repair(counted: dict[str, str], recorded: dict[str, tuple[str, str | None]],
                    listed: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(counted games whose file is absent or not the one written -> record ETag, stray file names).

    `counted`: game -> record ETag; `recorded`: `lake_games` game -> (record ETag, file ETag);
    `listed`: file name -> its ETag in the store."""
    repair = {}
    for game_id, etag in counted.items():
        name = store.file_name(game_id)
        file_etag = recorded.get(game_id, (None, None))[1]
        if name not in listed or (file_etag and listed[name] != file_etag):
            repair[game_id] = etag
    wanted = {store.file_name(g) for g in counted}
    return repair, sorted(n for n in listed if n not in wanted)


def follow_record(location: store.LakeLocation, engine, season: int, *, reconcile: bool = False,
                  rewrite: list[str] | None = None, run_id: str | None = None, log=None) -> FollowReport:
    """Make the lake follow the record (the module docstring). `reconcile`: list the lake even if
    the marker is there; `rewrite`: games to write again whatever their state ("*" = all)."""
    from sidearm_assets.storage import clients

    started = time.monotonic()
    report = FollowReport()
    tables.create_tables(engine)
    if not record.has_record(engine):
        report.problems.append("no record of counted games (counted_games) in sidearmdb yet: the lake is left as it is")
        return report
    lake_id = tables.read_lake_id(engine)
    report.reconciled = reconcile_reason(store.read_marker(location), lake_id, reconcile)
    plan = record.plan(engine)
    report.counted = plan.counted
    to_write = dict(plan.to_write)
    if report.reconciled or rewrite:
        counted = record.counted_etags(engine)
        if rewrite:
            to_write.update(counted if "*" in rewrite else {g: counted[g] for g in rewrite if g in counted})
    if report.reconciled:
        clients.ensure_bucket(location.client(), location.bucket)
        repair, report.strays = files_to_repair(counted, tables.lake_files_recorded(engine), store.listed_files(location))
        to_write.update(repair)
        if log:
            log(f"lake reconciled ({report.reconciled}): {len(repair)} file(s) to write, {len(report.strays)} stray")

    for part in chunks(sorted(to_write), CHUNK):
        _write_chunk(location, engine, season, part, to_write, report, run_id)
    if plan.gone:
        store.delete_files(location, [store.file_name(g) for g in plan.gone])
        tables.replace_games(engine, {}, {}, gone=plan.gone, run_id=run_id)
        report.deleted = plan.gone
    if report.strays:
        store.delete_files(location, report.strays)
    if report.reconciled:
        lake_id = lake_id or uuid.uuid4().hex
        store.write_marker(location, lake_id)
        tables.write_lake_id(engine, lake_id)
    report.seconds = time.monotonic() - started
    return report


def build_events(games: list[record.RecordedGame], schedule: list[dict], teams: list[dict], players: list[dict],
                 season: int) -> tuple[list[GameEvents], list[str]]:
    """The lake rows of each recorded game; a game that cannot be built is a problem, not an error.

    Each game is given its own schedule row, teams and rosters, so a chunk costs O(its games)."""
    from sidearm_assets.domain.games import UnscheduledGameError

    rows = {g["game_id"]: g for g in schedule}
    by_id = {t["id"]: t for t in teams}
    rosters: dict = {}
    for p in players:
        rosters.setdefault(p["teamid"], []).append(p)
    built, problems = [], []
    for game in games:
        row = rows.get(game.game_id)
        sides = (row["home_teamid"], row["away_teamid"]) if row else ()
        try:
            built.append(game_event_rows(
                game.game_id, game.data, [row] if row else [], [by_id[t] for t in sides if t in by_id],
                [p for t in set(sides) for p in rosters.get(t, [])], season,
            ))
        except (UnscheduledGameError, GameNotOverError) as exc:
            problems.append(f"{game.game_id}: {exc}")
    return built, problems


def events_table(built: list[GameEvents]):
    import pyarrow as pa

    return pa.Table.from_pylist([r for e in built for r in e.rows], schema=store.arrow_schema())


def _write_chunk(location, engine, season: int, game_ids: list[str], etags: dict[str, str],
                 report: FollowReport, run_id: str | None) -> None:
    games = record.read_games(engine, game_ids)
    schedule = record.schedule_of(engine, games)
    teams, players = record.reference_of(engine, {t for g in schedule for t in (g["home_teamid"], g["away_teamid"])})
    built, problems = build_events(games, schedule, teams, players, season)
    report.problems += problems
    if not built:
        return
    written = store.write_files(location, built)
    game_facts = facts.game_facts(events_table(built))
    by_game = {g.game_id: g.etag for g in games}
    tables.replace_games(engine, game_facts, {w.game_id: (by_game[w.game_id], w.file_etag) for w in written},
                         run_id=run_id)
    report.written += written
