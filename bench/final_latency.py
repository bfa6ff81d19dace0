"""Final-tables latency: from the S3 put of a game's final object to players2 AND teams2 committed.

Self-contained: starts a fresh embedded stack and the Dagster daemon for this code location
with a throw-away DAGSTER_HOME (bench/harness.py), so the
game-over sensor, the live sensor and the run launcher all run as they do under `dagster dev`.
Then, `--runs` times, it plays a short game (two in-progress versions, then the final one) under
a new game id scheduled for teams 101 and 205, and polls sidearmdb until players2 and teams2 both
equal base + every game finished so far (computed independently with domain/final.py). Each
game changes the tables, so a run is only counted when its own game is in them. A random pause
before each game spreads the puts over the sensor's cycle. Everything started is stopped by pid.

    .venv/bin/python bench/final_latency.py [--runs 6] [--keep-dir DIR]

Last line: final_p50=<s> final_max=<s> runs=<n>
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from sidearm_assets import clients, final_tables_db, processes, reference_db
from sidearm_assets.domain.final import completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from harness import embedded_daemon

WARMUP_GAME = "bench-final-warmup"


def short_game(rng: random.Random) -> list[bytes]:
    """Three versions of a short game: two in progress, then over at 00:00 (never tied)."""
    lines = []
    home, away = 0, 0
    clock = 3590
    for event_id in range(8):
        clock -= rng.randint(60, 400)
        team = rng.choice((101, 205))
        jersey = rng.choice(["6", "12", "22", "3"] if team == 101 else ["6", "12", "9", "19"])
        goal = int(rng.random() < 0.5)
        home += goal if team == 101 else 0
        away += goal if team == 205 else 0
        lines.append(f"{event_id} {clock // 60:02d}:{clock % 60:02d} {team} {jersey} {goal}")
    if home == away:  # one more goal so 00:00 ends the game (a tie at 00:00 is not over)
        lines.append("8 00:30 101 6 1")
    lines.append(f"{len(lines)} 00:00 0 0 0")
    text = lambda n: ("\n".join(lines[:n]) + "\n").encode()  # noqa: E731
    return [text(3), text(6), text(len(lines))]


def expected_tables(engine, streams: dict[str, bytes]):
    games, teams, players = (reference_db.read_rows(engine, t) for t in
                             (reference_db.games, reference_db.teams, reference_db.players))
    done = []
    for gid, data in streams.items():
        m = matchup(gid, games, teams)
        done.append(completed_game(parse_stream(data, m.team_ids), m))
    final = season_totals(players, teams, done)
    return final.players, final.teams


def run_records(dagster_home: Path) -> dict[str, dict]:
    """game id -> timings of its final-tables run, from the instance's run storage."""
    from dagster import DagsterInstance, RunsFilter

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    out = {}
    with DagsterInstance.get() as instance:
        for rec in instance.get_run_records(filters=RunsFilter(tags={"dagster/sensor_name": "game_over_sensor"})):
            gid = rec.dagster_run.tags.get("sidearm/game_id")
            out.setdefault(gid, []).append(
                {"created": rec.create_timestamp.timestamp(), "start": rec.start_time, "end": rec.end_time,
                 "status": rec.dagster_run.status.value}
            )
    return out


def wait_idle(dagster_home: Path, timeout: float = 60) -> None:
    """Until no final-tables run is queued or running (each measured game starts on a quiet system)."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    with DagsterInstance.get() as instance:
        processes.wait_until(lambda: not instance.get_runs(filters=RunsFilter(statuses=busy)),
                             timeout=timeout, interval=0.2, what="final-tables runs to finish")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for one game's tables")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep-dir", help="work in this folder and keep it (logs) instead of a temp one")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with embedded_daemon(args.keep_dir, "sidearm-final-bench-") as (work, env):
        dagster_home = Path(env["DAGSTER_HOME"])
        engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
        game_ids = [WARMUP_GAME] + [f"bench-final-{i}" for i in range(1, args.runs + 1)]
        with engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id.in_(game_ids)))
            conn.execute(reference_db.games.insert(),
                         [{"game_id": g, "home_teamid": 101, "away_teamid": 205} for g in game_ids])
        s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
        bucket = env["SIDEARM_S3_BUCKET"]

        finished: dict[str, bytes] = {}
        latencies: list[tuple[str, float]] = []
        for game_id in game_ids:
            versions = short_game(rng)
            if game_id != WARMUP_GAME:
                time.sleep(rng.uniform(0, 5))  # a random phase against the daemon's ~5 s sensor loop
            for data in versions[:-1]:
                s3.put_object(Bucket=bucket, Key=f"{game_id}.txt", Body=data)
                time.sleep(0.3)
            finished[game_id] = versions[-1]
            want = expected_tables(engine, finished)
            s3.put_object(Bucket=bucket, Key=f"{game_id}.txt", Body=versions[-1])
            put_at = time.monotonic()
            timeout = 240 if game_id == WARMUP_GAME else args.timeout  # the first tick loads the code
            processes.wait_until(lambda: final_tables_db.read_final_tables(engine) == want,
                                 timeout=timeout, interval=0.05, what=f"players2/teams2 with {game_id}")
            seen = time.monotonic() - put_at
            if game_id == WARMUP_GAME:
                print(f"warm-up game in the tables after {seen:.2f} s", file=sys.stderr)
            else:
                latencies.append((game_id, seen))
                print(f"{game_id}: players2 and teams2 committed {seen:.2f} s after the final put", file=sys.stderr)
            wait_idle(dagster_home)

        records = run_records(dagster_home)
        for game_id, seen in latencies:
            for r in records.get(game_id, []):
                run_s = (r["end"] or 0) - (r["start"] or 0)
                print(f"  {game_id}: run {r['status']}, started {r['start'] - r['created']:.2f} s after it was "
                      f"requested, ran {run_s:.2f} s", file=sys.stderr)
        values = [s for _, s in latencies]
        print(f"mean={statistics.mean(values):.2f}s min={min(values):.2f}s", file=sys.stderr)
        print(f"final_p50={statistics.median(values):.2f} final_max={max(values):.2f} runs={len(values)}")
        return 0

if __name__ == "__main__":
    sys.exit(main())
