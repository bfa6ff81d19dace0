"""`sidearm-games`: game partitions on a Dagster instance, and the record of counted games.

The live sensor adds a game's partition by itself when its object first appears. Without the
daemon (a fresh instance, a CLI-only workflow), register it here, then materialize:

    sidearm-games add gamestream
    sidearm-games materialize gamestream        # or, the same run:
    dagster asset materialize -m sidearm_assets --partition gamestream \
        --select raw_gamestream,reference_players,reference_teams,boxscore_doc

`sidearm-games materialize` first checks that the game is registered: for an unregistered game,
Dagster's own command only says that the partition key is not in the partitions definition,
while this one says to run `sidearm-games add GAME`.

A game once counted in players2/teams2 leaves them only through an explicit, logged action:

    sidearm-games counted                                  # the record, and the log of removals
    sidearm-games uncount GAME --reason "entered twice"    # who, when, why logged in sidearmdb
    sidearm-games recount GAME --reason "it was right"     # undo the latest uncount

Ended games stay in the bucket, one listing entry each on every live poll, until retired
(storage/retire.py has the rule):

    sidearm-games retire --ended-for 6 --dry-run           # which would go, which stay and why
    sidearm-games retire                                   # remove them from the top level
    sidearm-games restore GAME                             # back, e.g. to correct it

`uncount` removes the game from the record (`counted_games`) and its archive object; the
version it was counted from stays ignored until the game's object changes. The final tables
still count it until the next final-tables run, which the game-over sensor requests at once.
Settings come from the environment (`SIDEARM_SQL_URL`, `SIDEARM_S3_*`), as everywhere.
"""

from __future__ import annotations

import argparse
import getpass
import sys

RECORD_COMMANDS = ("uncount", "recount", "counted")
LIVE_ASSETS = "raw_gamestream,reference_players,reference_teams,boxscore_doc"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sidearm-games", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="register game partitions (game ids, e.g. gamestream)")
    add.add_argument("game_ids", nargs="+")
    remove = sub.add_parser("remove", help="unregister game partitions")
    remove.add_argument("game_ids", nargs="+")
    sub.add_parser("list", help="list registered game partitions")
    materialize = sub.add_parser(
        "materialize", help="materialize a registered game's partition (`dagster asset materialize`)"
    )
    materialize.add_argument("game_id")
    materialize.add_argument("--select", default=LIVE_ASSETS, help=f"assets (default: {LIVE_ASSETS})")
    for name, help_text in (
        ("uncount", "remove a counted game from the final tables' record (logged; the next run recomputes)"),
        ("recount", "undo the latest uncount of a game (logged)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("game_id")
        p.add_argument("--reason", required=True, help="why (kept in sidearmdb.uncounted_games)")
        p.add_argument("--by", default=None, help="who (default: the login name)")
    sub.add_parser("counted", help="list the counted games and the log of uncounts")
    retire = sub.add_parser("retire", help="remove ended games' objects from the bucket's top level "
                                           "(their archived completion holds the same bytes)")
    retire.add_argument("--ended-for", type=float, default=6.0, metavar="HOURS",
                        help="only games whose object has not changed for this long (default 6)")
    retire.add_argument("--dry-run", action="store_true", help="say what would be retired, change nothing")
    restore = sub.add_parser("restore", help="copy a retired game's archived bytes back to the top level")
    restore.add_argument("game_id")
    args = parser.parse_args(argv)

    if args.command in RECORD_COMMANDS:
        return _record_command(args)
    if args.command in ("retire", "restore"):
        return _retire_command(args)

    from dagster import DagsterInstance

    from sidearm_assets.partitions import games_partitions
    from sidearm_assets.settings import GAME_KEY_SUFFIX

    named = [args.game_id] if args.command == "materialize" else getattr(args, "game_ids", [])
    bad = [g for g in named if not g or "/" in g or g.endswith(GAME_KEY_SUFFIX)]
    if bad:
        print(f"sidearm-games: not game ids: {bad} (use the object key without .txt)", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        name = games_partitions.name
        if args.command == "materialize":
            if not instance.has_dynamic_partition(name, args.game_id):
                print(
                    f"sidearm-games: game {args.game_id!r} is not a registered partition on this Dagster "
                    f"instance; register it first: sidearm-games add {args.game_id}",
                    file=sys.stderr,
                )
                return 1
            return _materialize(args.game_id, args.select)
        if args.command == "add":
            instance.add_dynamic_partitions(name, args.game_ids)
        elif args.command == "remove":
            for game_id in args.game_ids:
                instance.delete_dynamic_partition(name, game_id)
        for game_id in instance.get_dynamic_partitions(name):
            print(game_id)
    return 0


def _materialize(game_id: str, select: str) -> int:
    """`dagster asset materialize` of the game's partition, from this environment's own `dagster`."""
    import subprocess
    from pathlib import Path

    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "asset", "materialize", "-m", "sidearm_assets", "--partition", game_id, "--select", select]
    return subprocess.run(cmd, check=False).returncode


def _game_streams():
    """The bucket's resource (games and their archive), from the settings."""
    from sidearm_assets.resources import build_resources

    return build_resources(resolved=True)["gamestreams"]


def _retire_command(args) -> int:
    from datetime import timedelta

    from sidearm_assets.storage import retire

    store = _game_streams()
    if args.command == "restore":
        try:
            size = retire.restore_game(store, args.game_id)
        except retire.RetireError as exc:
            print(f"sidearm-games: {exc}", file=sys.stderr)
            return 1
        print(f"restored {args.game_id} ({size} bytes) from its archived completion; the live path "
              f"publishes it again and it takes corrections")
        return 0
    if not args.ended_for >= 0:
        print(f"sidearm-games: --ended-for must be zero or more hours, got {args.ended_for}", file=sys.stderr)
        return 2
    report = retire.retire_ended_games(store, timedelta(hours=args.ended_for), dry_run=args.dry_run)
    verb = "would retire" if report.dry_run else "retired"
    for game_id in report.retired:
        print(f"{verb} {game_id}")
    for game_id, why in report.keep.items():
        print(f"kept {game_id}: {why}")
    print(f"{len(report.retired)} game(s) {verb}, {len(report.keep)} kept")
    return 0


def _record_command(args) -> int:
    from sidearm_assets import settings
    from sidearm_assets.storage import final_tables_db, record_log, reference_db

    engine = reference_db.make_engine(settings.SQL_URL.value())
    if args.command == "counted":
        for g in final_tables_db.read_record(engine).values():
            print(f"{g.game_id}\tetag {g.etag}\tcounted {g.counted_at}\trun {g.run_id}\t{g.over_reason}")
        for e in record_log.read_log(engine):
            print(f"# {e.at} {e.action} {e.game_id} (etag {e.etag}) by {e.actor}: {e.reason}")
        return 0

    actor = args.by or getpass.getuser()
    if args.command == "uncount":
        try:
            entry = record_log.uncount(engine, args.game_id, args.reason, actor)
        except (LookupError, ValueError) as exc:
            print(f"sidearm-games: {exc}", file=sys.stderr)
            return 1
        print(f"uncounted {entry.game_id} (etag {entry.etag}) at {entry.at} by {actor}: {args.reason}")
        try:
            _game_streams().delete_archive(args.game_id)
        except Exception as exc:  # the version stays ignored (uncounted) whatever S3 says
            print(f"sidearm-games: archive object not deleted ({exc}); its version stays uncounted", file=sys.stderr)
        print("the final tables drop it at the next final-tables run (the game-over sensor requests one)")
        return 0

    try:
        undone = record_log.recount(engine, args.game_id, args.reason, actor)
    except (LookupError, ValueError) as exc:
        print(f"sidearm-games: {exc}", file=sys.stderr)
        return 1
    store = _game_streams()
    if undone.data is not None:
        try:
            store.read_archive(args.game_id)
        except Exception:  # absent (or unreadable): the logged bytes go back, the inbox has them anyway
            store.archive(args.game_id, undone.data)
            print(f"re-archived {args.game_id} from the bytes logged at its uncount")
    print(f"recounted {args.game_id} by {actor}: {args.reason}; counted again at the next final-tables run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
