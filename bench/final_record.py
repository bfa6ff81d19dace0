"""The final-tables run's own work at scale, without the daemon or Spark: reading the counted
games (record UNION archive), the plain-Python totals, the write of the tables with the record,
and the game-over sensor's read of the record.

Self-contained: starts the embedded stack in a temporary folder (moto S3 and nx-27017, stopped by
pid at the end), a SQLite sidearmdb beside it, N scheduled games of the base teams archived as
the live path files them. Measures:

- `read_all_new_s`: a run's read step when every archived game is new (N parallel GETs);
- `read_with_record_s`: the same after the record holds them and one game was corrected (1 GET,
  N-1 from the record's bytes), which is what each run costs in a day of games;
- `write_all_s` / `write_one_s`: the transaction writing the tables and N record rows / 1 row;
- `sensor_read_s`: the game-over sensor's summary read (ETags, uncounts, digest).

    .venv/bin/python bench/final_record.py [--games 200]

Last line: games= read_all_new_s= read_with_record_s= python_totals_s= write_all_s= write_one_s= sensor_read_s=
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time

from sqlalchemy import insert

from sidearm_assets import settings
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets.storage.completed_games import load_completed_games
from sidearm_assets.domain.final import season_totals
from sidearm_assets.local.local_stack import FREE_PORTS, start_stack, stop_stack
from sidearm_assets.resources import GameStreamStore


def game(seed: int, rosters: dict[int, list[str]], shots: int = 60) -> bytes:
    """A seeded completed game between 101 (home) and 205: shots, then the game-over line."""
    rng = random.Random(seed)
    clocks = sorted(rng.sample(range(1, 3600), shots), reverse=True)
    lines = []
    for event_id, clock in enumerate(clocks):
        team = rng.choice((101, 205))
        lines.append(f"{event_id} {clock // 60:02d}:{clock % 60:02d} {team} {rng.choice(rosters[team])} {int(rng.random() < 0.3)}")
    lines.append("-1 00:00 0 0 0")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=200)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="final-record-")
    try:
        env = start_stack(f"{work}/stack", FREE_PORTS).env
        store = GameStreamStore(
            endpoint_url=env[settings.S3_ENDPOINT_URL.name], access_key=env[settings.S3_ACCESS_KEY.name],
            secret_key=env[settings.S3_SECRET_KEY.name], bucket="final-record",
        )
        store.ensure_bucket()
        engine = reference_db.make_engine(f"sqlite:///{work}/sidearmdb.sqlite")
        reference_db.reset_base_tables(engine)
        rosters = {t: [p["number"] for p in reference_db.BASE_PLAYERS if p["teamid"] == t] for t in (101, 205)}
        ids = [f"g{i:04d}" for i in range(args.games)]
        with engine.begin() as conn:
            conn.execute(insert(reference_db.games), [{"game_id": g, "home_teamid": 101, "away_teamid": 205} for g in ids])
        for i, g in enumerate(ids):
            store.archive(g, game(i, rosters))
        games, teams, players = (reference_db.read_rows(engine, t) for t in (reference_db.games, reference_db.teams, reference_db.players))

        t = time.perf_counter()
        loaded = load_completed_games(store, {}, games, teams)
        read_all_new = time.perf_counter() - t
        t = time.perf_counter()
        final = season_totals(players, teams, loaded.games)
        python_totals = time.perf_counter() - t
        t = time.perf_counter()
        final_tables_db.write_final_tables(engine, final.players, final.teams, final_tables_db.utc_now(), counted=loaded.record)
        write_all = time.perf_counter() - t

        store.archive(ids[0], game(10_000, rosters))  # a correction
        t = time.perf_counter()
        again = load_completed_games(store, final_tables_db.read_record(engine), games, teams)
        read_with_record = time.perf_counter() - t
        assert len(again.read_from_s3) == 1 and len(again.from_record) == args.games - 1
        final = season_totals(players, teams, again.games)
        t = time.perf_counter()
        final_tables_db.write_final_tables(engine, final.players, final.teams, final_tables_db.utc_now(), counted=again.record)
        write_one = time.perf_counter() - t
        t = time.perf_counter()
        final_tables_db.read_record_summary(engine)
        sensor_read = time.perf_counter() - t
        engine.dispose()
        print(
            f"games={args.games} read_all_new_s={read_all_new:.2f} read_with_record_s={read_with_record:.2f} "
            f"python_totals_s={python_totals:.2f} write_all_s={write_all:.2f} write_one_s={write_one:.3f} "
            f"sensor_read_s={sensor_read:.3f}"
        )
    finally:
        stop_stack(f"{work}/stack")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
