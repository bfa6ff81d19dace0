"""`sidearm-games`: register game partitions on a Dagster instance without the daemon.

The live sensor adds a game's partition by itself when its object first appears. Without the
daemon (a fresh instance, a CLI-only workflow), register it here, then materialize:

    sidearm-games add gamestream
    dagster asset materialize -m sidearm_assets --partition gamestream \
        --select raw_gamestream,reference_players,reference_teams,boxscore_doc
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sidearm-games", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="register game partitions (game ids, e.g. gamestream)")
    add.add_argument("game_ids", nargs="+")
    remove = sub.add_parser("remove", help="unregister game partitions")
    remove.add_argument("game_ids", nargs="+")
    sub.add_parser("list", help="list registered game partitions")
    args = parser.parse_args(argv)

    from dagster import DagsterInstance

    from sidearm_assets.partitions import games_partitions
    from sidearm_assets.settings import GAME_KEY_SUFFIX

    bad = [g for g in getattr(args, "game_ids", []) if not g or "/" in g or g.endswith(GAME_KEY_SUFFIX)]
    if bad:
        print(f"sidearm-games: not game ids: {bad} (use the object key without .txt)", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        name = games_partitions.name
        if args.command == "add":
            instance.add_dynamic_partitions(name, args.game_ids)
        elif args.command == "remove":
            for game_id in args.game_ids:
                instance.delete_dynamic_partition(name, game_id)
        for game_id in instance.get_dynamic_partitions(name):
            print(game_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
