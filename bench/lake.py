"""The season lake at scale: a season of N counted games, then game days on top of it.

Self-contained: starts its own embedded S3 server (moto, as `sidearm-local up`) on a free
loopback port and a SQLite sidearmdb in a work folder, both removed at the end (the server
stopped by pid). The league's teams and rosters are those of `gamestream --games T/2`
(gamestream/league.py: T teams), and the season's games are played among them by the same
game generator (home and away teams drawn at random, deterministic from `--seed`). The record
of counted games (`counted_games`) is filled directly, as the final tables fill it.

- `backfill_s`: `follow_record` of a new lake (no marker: listed, every counted game's file
  written, its facts computed and stored), as `sidearm-lake backfill` does it.
- `season_full_s`: the first refresh of the four season tables plus the checks.
- `day_lake_s`: a game day (`--day-games` new counted games and one corrected game), the lake
  step of the final-tables run: the record/lake comparison, the day's files and facts (median of
  `--repeat` days).
- `analytics_s`: the analytics step after that day: the four season tables rebuilt from the
  facts in one transaction, and the checks (median of `--repeat` days). Target: <= 2 s.
- `reconcile_s`: a reconcile with nothing to repair (the whole lake listed), what a run pays
  when the marker says the store lost the lake, before it rewrites anything.

    .venv/bin/python bench/lake.py [--games 5000] [--teams 1082] [--day-games 20] [--repeat 3] [--keep-dir DIR]

Last line: games=<n> teams=<n> events=<n> lake_mb=<MB> fact_rows=<n> backfill_s=<s> season_full_s=<s>
day_lake_s=<s> analytics_s=<s> reconcile_s=<s>
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from sidearm_assets.lake import analytics, follow, store, tables
from sidearm_assets.local import processes
from sidearm_assets.storage.sql_common import chunks
from sidearm_assets.storage import clients, final_tables_db, reference_db

ACCESS_KEY, SECRET_KEY, BUCKET = "bench", "bench-secret", "gamestreams"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3(work: Path):
    port = free_port()
    proc = processes.spawn(
        [sys.executable, "-m", "sidearm_assets.local.local_s3", "--host", "127.0.0.1", "--port", str(port)], work / "s3.log"
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = clients.s3_client(endpoint, ACCESS_KEY, SECRET_KEY)
    processes.wait_until(lambda: client.list_buckets() is not None, timeout=60, what="moto S3 server")
    clients.ensure_bucket(client, BUCKET)
    return proc, endpoint


class Season:
    """Games among the league's teams, played by gamestream/league.py's game generator."""

    def __init__(self, engine, teams: int, seed: int):
        from gamestream.league import install_league, make_league

        league = make_league(max(1, teams // 2), seed=seed)
        install_league(engine, league)
        self.teams = list(league.teams)
        self.rosters = {t["id"]: [p for p in league.players if p["teamid"] == t["id"]] for t in self.teams}
        self.seed = seed

    def game(self, index: int, version: int = 0) -> tuple[int, int, bytes]:
        from gamestream.league import _play_game

        rng = random.Random(f"bench-lake:{self.seed}:{index}")
        home, away = rng.sample(self.teams, 2)
        if version:
            rng = random.Random(f"bench-lake:{self.seed}:{index}:v{version}")  # a correction: other lines
        lines, _ = _play_game(rng, home, self.rosters[home["id"]], away, self.rosters[away["id"]])
        return home["id"], away["id"], ("\n".join(lines) + "\n").encode()


def count(engine, season: Season, indexes, version: int = 0) -> None:
    """Rows of `counted_games`, as the final tables write them (a correction replaces its row)."""
    t = final_tables_db.counted_games
    rows = []
    for i in indexes:
        home, away, data = season.game(i, version)
        etag = hashlib.md5(data).hexdigest()
        rows.append({"game_id": f"s{i:05d}", "etag": etag, "version": etag, "over_reason": "bench",
                     "home_teamid": home, "away_teamid": away, "data": data, "counted_at": "2026-04-01", "run_id": "bench"})
    with engine.begin() as conn:
        for part in chunks(rows, 500):
            conn.execute(t.delete().where(t.c.game_id.in_([r["game_id"] for r in part])))
            conn.execute(insert(t), part)


def timed(fn):
    started = time.monotonic()
    out = fn()
    return time.monotonic() - started, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=5000)
    parser.add_argument("--teams", type=int, default=1082)
    parser.add_argument("--day-games", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-dir", help="work folder to keep (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    work = Path(args.keep_dir or tempfile.mkdtemp(prefix="bench-lake-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        proc, endpoint = start_s3(work)
        engine = reference_db.make_engine(f"sqlite:///{work / 'sidearmdb.sqlite'}")
        reference_db.reset_base_tables(engine)
        final_tables_db.final_metadata.create_all(engine, tables=[final_tables_db.counted_games])
        season = Season(engine, args.teams, args.seed)
        location = store.LakeLocation(endpoint, ACCESS_KEY, SECRET_KEY, BUCKET)
        generate_s, _ = timed(lambda: count(engine, season, range(args.games)))
        print(f"{args.games} counted games among {len(season.teams)} teams recorded in {generate_s:.1f} s", file=sys.stderr)

        backfill_s, report = timed(lambda: follow.follow_record(location, engine, 2026))
        if report.problems or len(report.written) != args.games:
            print("not written: " + "; ".join(report.problems[:5]), file=sys.stderr)
            return 1
        lake_bytes = sum(w.bytes for w in report.written)
        season_full_s, run = timed(lambda: analytics.refresh(location, engine))
        assert all(c.passed for c in run.checks), [c.metadata for c in run.checks if not c.passed]
        print(f"backfill {backfill_s:.2f} s ({report.reconciled}), season tables {run.write.rows}", file=sys.stderr)

        days, refreshes = [], []
        next_game = args.games
        for day in range(args.repeat):
            count(engine, season, range(next_game, next_game + args.day_games))
            count(engine, season, [day], version=day + 1)  # a correction of an old game
            next_game += args.day_games
            lake_s, day_report = timed(lambda: follow.follow_record(location, engine, 2026))
            assert len(day_report.written) == args.day_games + 1 and day_report.reconciled is None
            analytics_s, run = timed(lambda: analytics.refresh(location, engine))
            assert all(c.passed for c in run.checks) and run.write.games == next_game
            days.append(lake_s)
            refreshes.append(analytics_s)
            print(f"day {day + 1}: lake {lake_s:.3f} s ({len(day_report.written)} files), analytics {analytics_s:.3f} s "
                  f"(refresh {run.seconds_refresh:.3f} s, checks {run.seconds_checks:.3f} s)", file=sys.stderr)
        reconcile_s, again = timed(lambda: follow.follow_record(location, engine, 2026, reconcile=True))
        assert again.written == [] and again.strays == []
        with engine.connect() as conn:
            fact_rows = sum(conn.scalar(select(func.count()).select_from(t)) for t in tables.FACT_TABLES.values())
            events = conn.scalar(select(func.sum(tables.lake_games.c.events)))
        print(
            f"games={next_game} teams={len(season.teams)} events={events} lake_mb={lake_bytes / 1e6:.2f} "
            f"fact_rows={fact_rows} backfill_s={backfill_s:.2f} season_full_s={season_full_s:.3f} "
            f"day_lake_s={statistics.median(days):.3f} analytics_s={statistics.median(refreshes):.3f} "
            f"reconcile_s={reconcile_s:.3f}"
        )
        return 0
    finally:
        if proc is not None:
            processes.stop(proc.pid)
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
