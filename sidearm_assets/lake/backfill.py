"""`python -m sidearm_assets.lake backfill`: rebuild the lake and the analytics from the completed games.

    eval "$(.venv/bin/sidearm-local up --dir .sidearm)"     # or the production environment
    .venv/bin/python -m sidearm_assets.lake backfill          # every completed game
    .venv/bin/python -m sidearm_assets.lake backfill --games g1,g2 --no-analytics
    .venv/bin/python -m sidearm_assets.lake backfill --prune  # also remove files of games no longer completed

1. Lists the completed games (`completed/<game_id>.txt` in the bucket) and reads them.
2. Writes every game's lake file (`lake.store.sync_lake`: deterministic paths, so a rebuild
   replaces, never duplicates). A game that cannot be written (no schedule row, not over) is
   listed and the command exits 1 after doing the rest.
3. On the Dagster instance (`DAGSTER_HOME`): registers each game's partition if missing and
   records a `game_events` materialization per game written, so the UI shows every partition
   materialized with its file, rows and score. Without `DAGSTER_HOME` this step is skipped (said).
4. Materializes `season_analytics` in one run on that instance (or an ephemeral one): the four
   tables in sidearmdb and their Markdown in the run's materializations.

`--prune` is the only way the command deletes: it removes lake files whose game is no longer a
completed game (an uncounted game, a lost archive is NOT a reason, so never run it after losing
the bucket's contents). In the Dagster UI the same rebuild is a backfill of `game_events` over
all partitions (one run, its backfill policy is single-run), then materializing `season_analytics`.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from sidearm_assets import settings
from sidearm_assets.lake import store


def _resources():
    from sidearm_assets.resources import GameStreamStore, ReferenceDatabase

    gamestreams = GameStreamStore(
        endpoint_url=settings.S3_ENDPOINT_URL.value(),
        access_key=settings.S3_ACCESS_KEY.value(),
        secret_key=settings.S3_SECRET_KEY.value(),
        bucket=settings.S3_BUCKET.value(),
    )
    return gamestreams, ReferenceDatabase(url=settings.SQL_URL.value())


def _instance():
    from dagster import DagsterInstance

    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get(), True
    return DagsterInstance.ephemeral(), False


def backfill(game_ids: list[str] | None = None, prune: bool = False, analytics: bool = True, out=sys.stdout) -> int:
    from dagster import AssetMaterialization, MetadataValue, materialize

    from sidearm_assets.assets.lake import season, season_analytics
    from sidearm_assets.partitions import games_partitions

    gamestreams, sidearmdb = _resources()
    location = store.LakeLocation.of(gamestreams)
    completed = sorted(gamestreams.list_archive())
    wanted = completed if game_ids is None else [g for g in game_ids if g in completed]
    unknown = [] if game_ids is None else [g for g in game_ids if g not in completed]
    for g in unknown:
        print(f"{g}: not a completed game (no completed/{g}.txt): skipped", file=out)
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="archive-read") as pool:
        streams = list(zip(wanted, (data for data, _ in pool.map(lambda g: gamestreams.read_archive(g), wanted))))
    report = store.sync_lake(
        location, streams, schedule=sidearmdb.games(), teams=sidearmdb.teams(), players=sidearmdb.players(),
        season=season(),
    )
    print(f"lake {location.url}: {len(report.written)} game file(s) written, {report.events} events", file=out)
    for problem in report.problems:
        print(f"not written: {problem}", file=out)

    if prune:
        keep = {store.file_name(g) for g in completed}
        for info in store.lake_files(location):
            name = info.path.rsplit("/", 1)[1]
            if name not in keep:
                location.filesystem().delete_file(info.path)
                print(f"pruned s3://{info.path} (not a completed game)", file=out)

    instance, durable = _instance()
    if durable:
        known = set(instance.get_dynamic_partitions(games_partitions.name))
        missing = [w.game_id for w in report.written if w.game_id not in known]
        if missing:
            instance.add_dynamic_partitions(games_partitions.name, missing)
        for w in report.written:
            instance.report_runless_asset_event(
                AssetMaterialization(
                    asset_key="game_events",
                    partition=w.game_id,
                    description="written by `python -m sidearm_assets.lake backfill`",
                    metadata={
                        "file": f"s3://{w.path}", "events": w.rows, "bytes": w.bytes,
                        "score": f"{w.home_score}-{w.away_score}", "stream_sha256": MetadataValue.text(w.stream_sha256),
                    },
                )
            )
        print(f"Dagster instance: {len(missing)} partition(s) added, {len(report.written)} materialization(s) recorded", file=out)
    else:
        print("DAGSTER_HOME is not set: no partitions or materializations recorded", file=out)

    if analytics:
        result = materialize(
            [season_analytics], instance=instance, resources={"gamestreams": gamestreams, "sidearmdb": sidearmdb}
        )
        for event in result.get_asset_materialization_events():
            meta = event.materialization.metadata
            print(
                f"{event.asset_key.to_user_string()}: {meta['row_count'].value} row(s) in {meta['table'].value}",
                file=out,
            )
        if not result.success:
            return 1
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidearm_assets.lake", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backfill", help="rebuild the lake and the analytics from the completed games")
    b.add_argument("--games", help="comma-separated game ids (default: every completed game)")
    b.add_argument("--prune", action="store_true", help="remove lake files of games that are not completed games")
    b.add_argument("--no-analytics", action="store_true", help="write the lake files only")
    args = parser.parse_args(argv)
    games = [g for g in args.games.split(",") if g] if args.games else None
    return backfill(games, prune=args.prune, analytics=not args.no_analytics)
