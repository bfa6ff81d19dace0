"""`sidearm-lake backfill`: bring the lake and the analytics in line with the record.

    eval "$(.venv/bin/sidearm-local up --dir .sidearm)"     # or the production environment
    .venv/bin/sidearm-lake backfill          # reconcile: list the lake, repair it
    .venv/bin/sidearm-lake backfill --rewrite g1,g2
    .venv/bin/sidearm-lake backfill --rewrite-all --no-analytics

One run of `season_lake` (then `season_analytics`) on the instance of `DAGSTER_HOME` (or an
ephemeral one), with `reconcile` set: the lake is listed whatever its marker says; every counted
game (a row of `counted_games`) whose file is missing, not the one written or built from another
version gets it written from the record's bytes; files of games not counted are deleted; the
marker is written. `--rewrite` writes the named games again, `--rewrite-all` every counted game
(after changing `SIDEARM_SEASON`, say). It exits 1 when a counted game could not be written
(listed) or a step failed.
"""

from __future__ import annotations

import argparse
import os
import sys


def _resources():
    from sidearm_assets.resources import build_resources

    resources = build_resources(resolved=True)
    return resources["gamestreams"], resources["sidearmdb"]


def _instance():
    from dagster import DagsterInstance

    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def backfill(rewrite: list[str] | None = None, analytics: bool = True, out=sys.stdout) -> int:
    from dagster import materialize

    from sidearm_assets.assets.lake import season_analytics, season_lake

    gamestreams, sidearmdb = _resources()
    assets = [season_lake, season_analytics] if analytics else [season_lake]
    result = materialize(
        assets, instance=_instance(), resources={"gamestreams": gamestreams, "sidearmdb": sidearmdb},
        run_config={"ops": {"season_lake": {"config": {"reconcile": True, "rewrite": rewrite or []}}}},
        raise_on_error=False,
    )
    failed = not result.success
    for event in result.get_asset_materialization_events():
        key, meta = event.asset_key.to_user_string(), event.materialization.metadata
        if key == "season_lake":
            print(f"lake {meta['lake'].value}: {meta['counted_games'].value} counted game(s), "
                  f"{meta['files_written'].value} file(s) written, {meta['files_deleted'].value} deleted "
                  f"({meta['seconds'].value} s)", file=out)
            for problem in meta["first_not_written"].value:
                print(f"not written: {problem}", file=out)
            failed = failed or meta["not_written"].value > 0
        else:
            print(f"{key}: {meta['row_count'].value} row(s) in {meta['table'].value}", file=out)
    for event in result.all_events:
        if event.is_step_failure:
            print(f"failed: {event.step_key}: {event.event_specific_data.error.message.strip()}", file=out)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sidearm-lake", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backfill", help="reconcile the lake with the record of counted games, then the analytics")
    b.add_argument("--rewrite", help="comma-separated game ids to write again")
    b.add_argument("--rewrite-all", action="store_true", help="write every counted game's file again")
    b.add_argument("--no-analytics", action="store_true", help="the lake only")
    args = parser.parse_args(argv)
    rewrite = ["*"] if args.rewrite_all else [g for g in (args.rewrite or "").split(",") if g]
    return backfill(rewrite, analytics=not args.no_analytics)


if __name__ == "__main__":
    sys.exit(main())
