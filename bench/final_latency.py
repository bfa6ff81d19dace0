"""Final-tables latency: from the S3 put of a game's final object to players2 AND teams2 committed.

Self-contained: starts a fresh embedded stack with its warm Spark Connect server and the Dagster
daemon for this code location with a throw-away DAGSTER_HOME (bench/harness.py), so the
game-over sensor, the live sensor and the run launcher all run as they do under `dagster dev`,
and the final-tables runs use the warm server (SIDEARM_SPARK_REMOTE). With `--local` the same is
then measured again with the daemon restarted without SIDEARM_SPARK_REMOTE (a local Spark
session started inside each run).

Each phase plays an unmeasured warm-up game, then `--runs` short games (two in-progress versions,
then the final one) under new game ids scheduled for teams 101 and 205, and polls sidearmdb
until players2 and teams2 both equal base + every game finished so far (computed independently
with domain/final.py). Each game changes the tables, so a game is only counted when it is in
them. A random pause before each game spreads the puts over the sensor's cycle. For every game
it prints where the seconds went: put -> run requested (the sensor), requested -> started (run
launch), the run (its metadata: reads, waiting for the Spark session, the Spark job with that
wait, the SQL write), and run end -> tables seen by this poll (negative when the tables were
committed before the run ended: checks, metadata and teardown follow the write). Everything started is stopped by pid.

    .venv/bin/python bench/final_latency.py [--runs 6] [--local] [--keep-dir DIR]

Last line: final_p50=<s> final_max=<s> runs=<n> [local_p50=<s> local_max=<s>] [timeouts=<n>]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.storage import clients, final_tables_db, reference_db
from sidearm_assets.domain.final import completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from harness import daemon, embedded_stack

RUN_SECONDS = ("seconds_read", "seconds_waiting_for_spark_session", "seconds_spark_total", "seconds_write")


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


def final_runs(dagster_home: Path) -> list[dict]:
    """Every run that materialized players2: wall-clock times and the run's own seconds_* metadata,
    oldest first. Found through the materializations, so any sensor or tag scheme will do."""
    from dagster import AssetKey, DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with DagsterInstance.get() as instance:
        records = instance.fetch_materializations(AssetKey("players2"), limit=500).records
        meta = {}
        for rec in records:
            mat = rec.event_log_entry.asset_materialization
            meta[rec.run_id] = {k: v.value for k, v in mat.metadata.items() if k in RUN_SECONDS}
        out = []
        for run_id, seconds in meta.items():
            rec = instance.get_run_record_by_id(run_id)
            if rec is not None:
                out.append({"run_id": run_id, "created": rec.create_timestamp.timestamp(),
                            "start": rec.start_time, "end": rec.end_time, **seconds})
    return sorted(out, key=lambda r: r["created"])


def wait_idle(dagster_home: Path, timeout: float = 180) -> None:
    """Until no run is queued or running (each measured game starts on a quiet system); says so
    and goes on when runs are still busy after `timeout`."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    busy = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    with DagsterInstance.get() as instance:
        try:
            processes.wait_until(lambda: not instance.get_runs(filters=RunsFilter(statuses=busy)),
                                 timeout=timeout, interval=0.2, what="final-tables runs to finish")
        except TimeoutError as exc:
            print(f"warning: {exc}; going on", file=sys.stderr)


class Phase:
    """One measured configuration (warm Spark Connect server, or local Spark in each run)."""

    def __init__(self, name: str, env: dict, engine, s3, bucket: str, finished: dict, rng, args):
        self.name, self.env, self.engine, self.s3, self.bucket = name, env, engine, s3, bucket
        self.finished, self.rng, self.args = finished, rng, args
        self.games: list[dict] = []  # {"game_id", "put_wall", "seen_wall", "latency"}
        self.timeouts: list[str] = []  # games whose tables did not appear within --timeout

    def schedule(self, game_ids: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id.in_(game_ids)))
            conn.execute(reference_db.games.insert(),
                         [{"game_id": g, "home_teamid": 101, "away_teamid": 205} for g in game_ids])

    def play(self, dagster_home: Path) -> None:
        warmup = f"bench-{self.name}-warmup"
        game_ids = [warmup] + [f"bench-{self.name}-{i}" for i in range(1, self.args.runs + 1)]
        self.schedule(game_ids)
        for game_id in game_ids:
            versions = short_game(self.rng)
            if game_id != warmup:
                time.sleep(self.rng.uniform(0, 5))  # a random phase against the daemon's sensor loop
            for data in versions[:-1]:
                self.s3.put_object(Bucket=self.bucket, Key=f"{game_id}.txt", Body=data)
                time.sleep(0.3)
            self.finished[game_id] = versions[-1]
            want = expected_tables(self.engine, self.finished)
            self.s3.put_object(Bucket=self.bucket, Key=f"{game_id}.txt", Body=versions[-1])
            put_at, put_wall = time.monotonic(), time.time()
            timeout = 240 if game_id == warmup else self.args.timeout  # the first tick loads the code
            try:
                processes.wait_until(lambda: final_tables_db.read_final_tables(self.engine) == want,
                                     timeout=timeout, interval=0.05, what=f"players2/teams2 with {game_id}")
            except TimeoutError as exc:  # reported and counted, never a number in the median
                print(f"[{self.name}] {game_id}: {exc}", file=sys.stderr)
                self.timeouts.append(game_id)
                wait_idle(dagster_home)
                continue
            seen = time.monotonic() - put_at
            if game_id == warmup:
                print(f"[{self.name}] warm-up game in the tables after {seen:.2f} s", file=sys.stderr)
            else:
                self.games.append({"game_id": game_id, "put_wall": put_wall, "seen_wall": put_wall + seen,
                                   "latency": seen})
                print(f"[{self.name}] {game_id}: players2 and teams2 committed {seen:.2f} s after the final put",
                      file=sys.stderr)
            wait_idle(dagster_home)

    def explain(self, runs: list[dict]) -> dict[str, list[float]]:
        """Per game: the first run requested after its final put, and where the seconds went."""
        parts: dict[str, list[float]] = {}
        for g in self.games:
            run = next((r for r in runs if r["created"] >= g["put_wall"] - 0.05), None)
            if run is None or run["start"] is None or run["end"] is None:
                print(f"  [{self.name}] {g['game_id']}: no finished final-tables run found", file=sys.stderr)
                continue
            split = {
                "sensor": run["created"] - g["put_wall"],
                "launch": run["start"] - run["created"],
                "run": run["end"] - run["start"],
                # Negative: the tables were committed before the run ended (the checks, the metadata
                # and the resources' teardown come after the write).
                "seen_after_run_end": g["seen_wall"] - run["end"],
                **{k.removeprefix("seconds_"): run.get(k) for k in RUN_SECONDS if run.get(k) is not None},
            }
            for k, v in split.items():
                parts.setdefault(k, []).append(v)
            outer = ("sensor", "launch", "run", "seen_after_run_end")
            inside = ", ".join(f"{k} {v:.2f}" for k, v in split.items() if k not in outer)
            print(f"  [{self.name}] {g['game_id']}: {g['latency']:.2f} s = sensor {split['sensor']:.2f} + launch "
                  f"{split['launch']:.2f} + run {split['run']:.2f} ({inside}) + seen after the run's end "
                  f"{split['seen_after_run_end']:.2f}", file=sys.stderr)
        if parts:
            medians = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in parts.items())
            print(f"[{self.name}] medians: {medians}", file=sys.stderr)
        return parts

    @property
    def latencies(self) -> list[float]:
        return [g["latency"] for g in self.games]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="measured games per phase")
    parser.add_argument("--local", action="store_true",
                        help="also measure local Spark in each run (the daemon restarted without SIDEARM_SPARK_REMOTE)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for one game's tables")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep-dir", help="work in this folder and keep it (logs) instead of a temp one")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with embedded_stack(args.keep_dir, "sidearm-final-bench-", spark=True) as (work, env):
        dagster_home = Path(env["DAGSTER_HOME"])
        engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
        s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
        finished: dict[str, bytes] = {}
        remote = env[settings.SPARK_REMOTE.name]
        print(f"warm Spark Connect server: {remote}", file=sys.stderr)
        phases = [Phase("warm", env, engine, s3, env["SIDEARM_S3_BUCKET"], finished, rng, args)]
        if args.local:
            local_env = {**env, settings.SPARK_REMOTE.name: ""}
            phases.append(Phase("local", local_env, engine, s3, env["SIDEARM_S3_BUCKET"], finished, rng, args))
        for phase in phases:
            with daemon(work, phase.env, f"daemon-{phase.name}.log"):
                phase.play(dagster_home)
        runs = final_runs(dagster_home)
        for phase in phases:
            phase.explain(runs)
            values = phase.latencies
            if values:
                print(f"[{phase.name}] mean={statistics.mean(values):.2f}s min={min(values):.2f}s", file=sys.stderr)
            if phase.timeouts:
                print(f"[{phase.name}] timed out: {', '.join(phase.timeouts)}", file=sys.stderr)

        def figures(values: list[float]) -> tuple[str, str]:
            return (f"{statistics.median(values):.2f}", f"{max(values):.2f}") if values else ("-", "-")

        warm, local = phases[0], phases[-1]
        p50, worst = figures(warm.latencies)
        line = f"final_p50={p50} final_max={worst} runs={len(warm.latencies)}"
        if args.local:
            p50, worst = figures(local.latencies)
            line += f" local_p50={p50} local_max={worst}"
        timeouts = sum(len(p.timeouts) for p in phases)
        if timeouts:
            line += f" timeouts={timeouts}"
        print(line)
        return 0 if not timeouts else 1


if __name__ == "__main__":
    sys.exit(main())
