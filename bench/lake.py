"""The season lake at scale: N generated games into the lake, then the scoring-leaders query.

Self-contained: starts its own moto S3 server (the embedded stack's S3) on a free loopback port
and a SQLite sidearmdb in a work folder, both removed at the end (the server stopped by pid).
The games are the deterministic league of `gamestream --games N` (gamestream/league.py), each
game's final stream as the completed game.

- `build_s`: `sync_lake` of every game (parse, rows, Parquet, one S3 object per game, in
  parallel), as the backfill and the final-tables run write it.
- `leaders_query_s`: the scoring leaders as the analytics asset gets them, from a new process
  state (new DuckDB, new listing): list the lake, read the snapshot `lake/_cache/events.parquet`
  (plus any game file changed since: none here), load DuckDB, run the query; the median of
  `--repeat` runs. The log line before it splits a run into reading the lake and the SQL.
- `leaders_cold_s`: the first read, with no snapshot yet: every game file fetched (one GET
  each), then the snapshot written.
- `leaders_nocache_s`: every game file fetched, snapshot not used (the median of `--repeat`).
- `all_analytics_s`: as `leaders_query_s`, for the four analytics at once (one read, four queries).
- `--spark`: also the leaders through Spark SQL (local session; events handed over as Arrow,
  since Spark here has no S3 connector): `spark_session_s`, `spark_leaders_query_s`.
  `--spark-remote sc://host:port` does the same through a Spark Connect server.

    .venv/bin/python bench/lake.py [--games 500] [--repeat 3] [--spark | --spark-remote URL] [--keep-dir DIR]

Last line: games=<n> events=<n> lake_mb=<MB> build_s=<s> leaders_query_s=<s> leaders_cold_s=<s>
leaders_nocache_s=<s> all_analytics_s=<s>
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sidearm_assets.local import processes
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.lake import analytics, store

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


def leaders_once(location, teams, players, names=("scoring_leaders",), use_snapshot=True) -> tuple[float, int, float, float]:
    """(total seconds, rows, seconds reading the lake into DuckDB, seconds in the SQL)."""
    started = time.monotonic()
    result = analytics.compute_analytics(location, teams, players, names, use_snapshot=use_snapshot)
    total = time.monotonic() - started
    return total, len(result.tables[names[0]]), result.seconds_scan, sum(result.seconds_queries.values())


def spark_leaders(location, teams, players, remote: str | None = None) -> tuple[float, float, int]:
    """Spark SQL over the same events: session start (a local JVM, or a client of the Spark
    Connect server `remote`), then Arrow -> Spark -> the leaders SQL."""
    from sidearm_assets.storage.final_spark import spark_config

    from pyspark.sql import SparkSession

    started = time.monotonic()
    if remote:
        spark = SparkSession.builder.remote(remote).getOrCreate()
    else:
        builder = SparkSession.builder
        for key, value in spark_config("local[2]").items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    session_s = time.monotonic() - started
    try:
        started = time.monotonic()
        events = store.read_events(location)
        spark.createDataFrame(events).createOrReplaceTempView("events")
        teams_t, players_t = analytics._reference_tables(teams, players)
        spark.createDataFrame(teams_t).createOrReplaceTempView("teams")
        spark.createDataFrame(players_t).createOrReplaceTempView("players")
        rows = spark.sql(analytics.QUERIES["scoring_leaders"]).collect()
        return session_s, time.monotonic() - started, len(rows)
    finally:
        spark.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spark", action="store_true", help="also time the leaders through Spark SQL (local)")
    parser.add_argument("--spark-remote", metavar="URL", help="... through this Spark Connect server instead (sc://host:port)")
    parser.add_argument("--keep-dir", help="work folder to keep (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    from gamestream.league import install_league, make_league

    work = Path(args.keep_dir or tempfile.mkdtemp(prefix="bench-lake-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        proc, endpoint = start_s3(work)
        engine = reference_db.make_engine(f"sqlite:///{work / 'sidearmdb.sqlite'}")
        reference_db.reset_base_tables(engine)
        league = make_league(args.games, seed=args.seed)
        install_league(engine, league)
        schedule = reference_db.read_rows(engine, reference_db.games)
        teams = reference_db.read_rows(engine, reference_db.teams)
        players = reference_db.read_rows(engine, reference_db.players)
        location = store.LakeLocation(endpoint, ACCESS_KEY, SECRET_KEY, BUCKET)
        streams = [(g.game_id, g.final_bytes) for g in league.games]

        started = time.monotonic()
        report = store.sync_lake(location, streams, schedule=schedule, teams=teams, players=players, season=2026)
        build_s = time.monotonic() - started
        if report.problems:
            print("not written: " + "; ".join(report.problems[:5]), file=sys.stderr)
            return 1
        lake_bytes = sum(i.size for i in store.lake_files(location))
        print(f"built {len(report.written)} files in {build_s:.2f} s", file=sys.stderr)

        cold = leaders_once(location, teams, players)  # no snapshot yet: every file, then the snapshot
        leaders = [leaders_once(location, teams, players) for _ in range(args.repeat)]
        nocache = [leaders_once(location, teams, players, use_snapshot=False)[0] for _ in range(args.repeat)]
        everything = [
            leaders_once(location, teams, players, analytics.ANALYTICS)[0] for _ in range(args.repeat)
        ]
        print(
            "leaders runs: " + " ".join(f"{r[0]:.3f}" for r in leaders) + f" ({leaders[0][1]} rows; of the "
            f"median run, reading the lake {statistics.median(r[2] for r in leaders):.3f} s, the SQL "
            f"{statistics.median(r[3] for r in leaders):.3f} s); "
            "all analytics runs: " + " ".join(f"{s:.3f}" for s in everything),
            file=sys.stderr,
        )
        if args.spark or args.spark_remote:
            session_s, query_s, rows = spark_leaders(location, teams, players, args.spark_remote)
            print(f"spark_session_s={session_s:.2f} spark_leaders_query_s={query_s:.2f} spark_rows={rows}")
        print(
            f"games={len(report.written)} events={report.events} lake_mb={lake_bytes / 1e6:.2f} "
            f"build_s={build_s:.2f} leaders_query_s={statistics.median(r[0] for r in leaders):.3f} "
            f"leaders_cold_s={cold[0]:.3f} leaders_nocache_s={statistics.median(nocache):.3f} "
            f"all_analytics_s={statistics.median(everything):.3f}"
        )
        return 0
    finally:
        if proc is not None:
            processes.stop(proc.pid)
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
