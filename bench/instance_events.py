"""What one runless event costs the Dagster instance: Dagster's SQLite storage, the embedded
stack's (the same SQLite files with kept connections: local/dagster_storage.py) and PostgreSQL.

The live sensor hands the daemon each game's latest box score as runless events, and the daemon
stores them one by one before its next tick (docs/live-latency.md). This measures that storage
cost alone, outside the daemon: N `boxscore_doc` materializations (with the same metadata shape:
a Markdown box score and a game-flow picture of a few KB) and N check evaluations, reported
through `DagsterInstance.report_runless_asset_event`, on a throwaway instance of each kind, and
reports the wall time and this process's CPU time per event.

PostgreSQL: the local server (`SIDEARM_TEST_POSTGRES_URL`, default postgres@127.0.0.1:5432), a
throwaway database dropped at the end.

    .venv/bin/python bench/instance_events.py [--events 300]

Last line: sqlite_ms_per_event= embedded_ms_per_event= postgres_ms_per_event= (wall), then the
same three as *_cpu_ms_per_event=
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

POSTGRES_ADMIN_URL = os.environ.get(
    "SIDEARM_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def events(n: int):
    from dagster import AssetCheckEvaluation, AssetCheckSeverity, AssetKey, AssetMaterialization, MetadataValue

    markdown = "| # | player | shots | goals |\n|---|---|---|---|\n" + "| 6 | A Player | 3 | 1 |\n" * 24
    picture = "![flow](data:image/svg+xml;base64," + "A" * 3000 + ")"
    for i in range(n):
        game = f"league-{i % 200:04d}"
        if i % 2 == 0:
            yield AssetMaterialization(AssetKey("boxscore_doc"), partition=game, metadata={
                "game_id": game, "version": f"etag{i}@2026", "score": "3-2", "lines": i,
                "boxscore": MetadataValue.md(markdown), "game_flow": MetadataValue.md(picture)})
        else:
            yield AssetCheckEvaluation(asset_key=AssetKey("boxscore_doc"), check_name="score_equals_player_goals",
                                       passed=True, severity=AssetCheckSeverity.ERROR,
                                       metadata={"game_id": game, "version": f"etag{i}"})


def measure(instance, n: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per event."""
    batch = list(events(n))
    instance.add_dynamic_partitions("games", sorted({f"league-{i % 200:04d}" for i in range(n)}))
    for e in batch[:10]:  # warm the connection and the schema caches
        instance.report_runless_asset_event(e)
    started, cpu = time.perf_counter(), time.process_time()
    for e in batch:
        instance.report_runless_asset_event(e)
    return (time.perf_counter() - started) / n * 1000, (time.process_time() - cpu) / n * 1000


def sqlite_instance(home: Path):
    from dagster import DagsterInstance

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.from_config(str(home))


def embedded_instance(home: Path):
    from dagster import DagsterInstance

    from sidearm_assets.local.local_instance import write_local_instance

    return DagsterInstance.from_config(str(write_local_instance(home)))


def postgres_instance(home: Path, url):
    from dagster import DagsterInstance

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_db:\n"
        f"      hostname: {url.host}\n      username: {url.username}\n"
        + (f"      password: {url.password}\n" if url.password else "")
        + f"      db_name: {url.database}\n      port: {url.port or 5432}\n"
        "      scheme: postgresql+psycopg2\ntelemetry:\n  enabled: false\n"
    )
    return DagsterInstance.from_config(str(home))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    from sqlalchemy import create_engine, make_url, text

    figures = {}
    with tempfile.TemporaryDirectory(prefix="sidearm-instance-bench-") as tmp:
        for kind, opened in (("sqlite", sqlite_instance), ("embedded", embedded_instance)):
            with opened(Path(tmp) / kind) as instance:
                figures[kind] = measure(instance, args.events)
            print(f"{kind}: {figures[kind][0]:.2f} ms per event, {figures[kind][1]:.2f} ms CPU", file=sys.stderr)

        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"sidearm_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(POSTGRES_ADMIN_URL).set(database=name)
            with postgres_instance(Path(tmp) / "postgres", url) as instance:
                figures["postgres"] = measure(instance, args.events)
            print(f"postgres: {figures['postgres'][0]:.2f} ms per event, {figures['postgres'][1]:.2f} ms CPU "
                  "(this process's: the server's own is not counted)", file=sys.stderr)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(" ".join(f"{kind}_ms_per_event={wall:.2f}" for kind, (wall, _) in figures.items()) + " "
          + " ".join(f"{kind}_cpu_ms_per_event={cpu:.2f}" for kind, (_, cpu) in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
