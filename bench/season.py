"""A whole sport's league and a season: what counting one more game costs after S games.

Self-contained: starts a fresh embedded stack with its warm Spark Connect server and a code server
plus the Dagster daemon for this code location (bench/harness.py). Then:

1. installs a league of `--teams` teams (rosters of 10-14 players) and a schedule of
   `--season` + `--day-games` games among them (`gamestream.season`, deterministic from `--seed`);
2. **the backfill**: loads the first `--season` games as played (archive puts + one filing in the
   completion inbox, `gamestream.season.backfill`) and waits until the daemon's game-over sensor
   and its run have counted them all (`backfill_s`, from the start of the load to both tables
   committed with every game);
3. **a game day**: streams the other `--day-games` games through the live path (every version put,
   1-3 puts a second per game) to their ends, and measures from the last final put (the put that
   makes a game final by the pipeline's rule, which can be the one before its last; timed when it
   was sent: the object can be read before the put returns) to the tables
   committed with every game (`final_after_last_s`), from each game's final put to that game in
   the record the tables count (`final_p50_s`, `final_max_s`, over the day's games: polled every
   50 ms), the last run's duration (`run_s`) and Spark
   time (`spark_s`, its metadata), the largest metadata of a `players2`/`teams2` materialization
   of the day (`metadata_kb`), from the tables committed to the season analytics materialized by
   the same run (`analytics_s`: its lake and analytics steps follow the tables), and to the end
   of that run, whose whole-table checks come last (`run_end_s`).

    .venv/bin/python bench/season.py --teams 1000 --season 5000 --day-games 20 [--seed 1] [--keep-dir DIR]

Last line: teams= players= season_games= backfill_s= final_after_last_s= final_p50_s= final_max_s= run_s= spark_s= metadata_kb= analytics_s= run_end_s=
Each run appends its figures to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from harness import daemon, embedded_stack

from gamestream import league as lg
from gamestream.season import archive_client, backfill, install_season, make_season
from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.storage import final_tables_db, reference_db

RESULTS = Path(__file__).with_name("results.jsonl")


def counted(engine) -> int:
    state = final_tables_db.read_state(engine)
    return state["completed_games"] if state else 0


def wait_counted(engine, n: int, timeout: float) -> float:
    """Until the tables count `n` games; returns time.monotonic() when it was seen (50 ms polls)."""
    processes.wait_until(lambda: counted(engine) >= n, timeout=timeout, interval=0.05,
                         what=f"players2/teams2 counting {n} games")
    return time.monotonic()


class CountedWatch:
    """Polls the record for the day's games every `interval` s in a thread: game id -> when it
    was first seen counted (time.monotonic())."""

    def __init__(self, engine, game_ids: list[str], interval: float = 0.05):
        self.engine, self.ids, self.interval = engine, list(game_ids), interval
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="counted-watch", daemon=True)
        self._thread.start()

    def _poll(self):
        from sqlalchemy import select

        from sidearm_assets.storage.final_schema import counted_games

        query = select(counted_games.c.game_id).where(counted_games.c.game_id.in_(self.ids))
        while not self._stop.is_set() and len(self.seen) < len(self.ids):
            try:
                with self.engine.connect() as conn:
                    ids = [r[0] for r in conn.execute(query)]
            except Exception:  # locked for a moment: look again
                ids = []
            now = time.monotonic()
            for gid in ids:
                self.seen.setdefault(gid, now)
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def wait_runs_idle(timeout: float) -> float:
    """Until no final-tables run of the game-over sensor is queued or working (the season lake and
    analytics run in the same run, after the tables); returns time.monotonic() then."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    with DagsterInstance.get() as instance:
        processes.wait_until(lambda: not instance.get_runs(filters=RunsFilter(statuses=busy, tags={"sidearm/final-tables": "game_over_sensor"})),
                             timeout=timeout, interval=0.1, what="final-tables runs to end")
    return time.monotonic()


def last_analytics(since: float) -> float | None:
    """When the season analytics were last materialized after `since` (wall clock), or None."""
    from dagster import AssetKey, DagsterInstance

    from sidearm_assets.lake.analytics import ANALYTICS

    with DagsterInstance.get() as instance:
        times = [rec.timestamp for name in ANALYTICS
                 for rec in instance.fetch_materializations(AssetKey(name), limit=1).records if rec.timestamp >= since]
    return max(times) if times else None


def run_figures(since: float) -> dict:
    """The day's players2/teams2 materializations: the last run's duration and Spark seconds, and
    the largest metadata (serialized, as the UI fetches it)."""
    from dagster import AssetKey, DagsterInstance
    from dagster_shared.serdes import serialize_value

    out = {"run_s": None, "spark_s": None, "metadata_kb": 0.0, "runs": 0}
    runs = set()
    with DagsterInstance.get() as instance:
        last = None
        for key in ("players2", "teams2"):
            for rec in instance.fetch_materializations(AssetKey(key), limit=200).records:
                if rec.timestamp < since:
                    continue
                mat = rec.asset_materialization
                out["metadata_kb"] = max(out["metadata_kb"], len(serialize_value(mat.metadata)) / 1024)
                if key == "players2":
                    runs.add(rec.run_id)
                if key == "players2" and (last is None or rec.timestamp > last[0]):
                    last = (rec.timestamp, rec.run_id, mat.metadata)
        out["runs"] = len(runs)
        if last:
            run = instance.get_run_record_by_id(last[1])
            out["run_s"] = round(run.end_time - run.start_time, 2) if run.end_time and run.start_time else None
            out["spark_s"] = last[2]["seconds_spark_total"].value
    out["metadata_kb"] = round(out["metadata_kb"], 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, default=1000)
    parser.add_argument("--season", type=int, default=1000, help="games already played (the backfill)")
    parser.add_argument("--day-games", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--put-interval", default="1.0,3.0", help="seconds between two puts of a day game")
    parser.add_argument("--keep-dir")
    args = parser.parse_args(argv)
    lo, hi = (float(x) for x in args.put_interval.split(","))

    with embedded_stack(args.keep_dir, "sidearm-season-", spark=True) as (work, env):
        os.environ.update(env)
        engine = reference_db.make_engine(env[settings.SQL_URL.name])
        started = time.monotonic()
        season = make_season(args.teams, args.season + args.day_games, args.seed)
        install_season(engine, season)
        print(f"season of {args.teams} teams, {len(season.players)} players, {len(season.games)} games "
              f"made and installed in {time.monotonic() - started:.1f} s", file=sys.stderr)
        played, day = list(season.games[: args.season]), list(season.games[args.season :])
        bucket = env[settings.S3_BUCKET.name]
        with daemon(work, env):
            backfill_s = 0.0
            if played:
                started = time.monotonic()
                result = backfill(engine, archive_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                                                         env[settings.S3_SECRET_KEY.name], bucket), played)
                print(f"backfill: {result}", file=sys.stderr)
                counted = wait_counted(engine, len(played), timeout=900)
                backfill_s = counted - started
                print(f"backfill: season lake and analytics done {wait_runs_idle(900) - counted:.1f} s after the tables",
                      file=sys.stderr)
                print(f"backfill counted in {backfill_s:.1f} s", file=sys.stderr)
            day_started = time.time()
            finals: dict[str, float] = {}
            lock = threading.Lock()
            lines = {g.game_id: g.stream().final_line_count() for g in day}

            def on_put(game_id, line_count, sent, returned):
                if line_count == lines[game_id]:
                    with lock:
                        finals[game_id] = sent  # the put's start: the object may be visible before it returns

            watch = CountedWatch(engine, [g.game_id for g in day])
            s3 = lg.league_s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                                     env[settings.S3_SECRET_KEY.name], max_pool_connections=32)
            lg.stream_league(s3, bucket, season.league(day), put_interval=(lo, hi), on_put=on_put)
            last_final = max(finals.values())
            seen = wait_counted(engine, len(played) + len(day), timeout=900)
            idle = wait_runs_idle(900)
            analytics_at = last_analytics(day_started)
            watch.stop()
            latencies = sorted(watch.seen[g] - finals[g] for g in finals if g in watch.seen)
            if len(watch.seen) == len(day):  # the watch saw each game counted (50 ms polls from the start of the day)
                seen = max(watch.seen.values())
            seen_wall = time.time() - (time.monotonic() - seen)  # the same moment on the wall clock
            figures = run_figures(day_started)
    line = {
        "teams": args.teams, "players": len(season.players), "season_games": args.season,
        "backfill_s": round(backfill_s, 1), "final_after_last_s": round(seen - last_final, 2),
        "final_p50_s": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "final_max_s": round(latencies[-1], 2) if latencies else None,
        "run_s": figures["run_s"], "spark_s": figures["spark_s"], "metadata_kb": figures["metadata_kb"],
        "analytics_s": round(analytics_at - seen_wall, 2) if analytics_at else None,
        "run_end_s": round(idle - seen, 2),
    }
    with RESULTS.open("a") as f:
        f.write(json.dumps({"bench": "season", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "day_games": args.day_games, "day_runs": figures["runs"], **line}) + "\n")
    print(" ".join(f"{k}={v}" for k, v in line.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
