"""`sidearm-local up|down|status [--dir DIR]`: the embedded stack from a shell.

`up` starts (or reuses) the stack and prints `export NAME=value` for every setting, so
`eval "$(sidearm-local up --dir DIR)"` configures a shell; `down` stops the servers this DIR's
`up` started; `status` says what runs where. Human messages go to stderr; stdout carries only
the exports (and the status table).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sidearm_assets.local import local_stack
from sidearm_assets.local.local_stack import DEFAULT_DIR, READY_TIMEOUT, SPARK_READY_TIMEOUT, STOP_GRACE, say
from sidearm_assets.local.stack_state import StackError


def export_lines(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidearm-local",
        description="Embedded stack for sidearm: moto S3 + nx-27017 (MongoDB wire) + SQLite, on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help='start (or reuse) the stack; use as: eval "$(sidearm-local up)"')
    down = sub.add_parser("down", help="stop the servers this DIR's `up` started")
    status = sub.add_parser("status", help="what runs where")
    for p in (up, down, status):
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"stack folder (default {DEFAULT_DIR} in the cwd)")
    up.add_argument("--s3-port", type=int, default=None, help="exact S3 port (default 9000, or a free one)")
    up.add_argument("--mongo-port", type=int, default=None, help="exact Mongo port (default 27017, or a free one)")
    up.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="seconds to wait for S3 and Mongo")
    up.add_argument(
        "--no-spark", dest="spark", action="store_false",
        help="leave out the Spark Connect server (about 1 GB of memory); the final tables then start "
        "Spark inside each run",
    )
    up.add_argument("--spark-port", type=int, default=None, help="exact Spark Connect port (default 15002, or a free one)")
    up.add_argument("--spark-timeout", type=float, default=SPARK_READY_TIMEOUT, help="seconds to wait for Spark")
    down.add_argument("--grace", type=float, default=STOP_GRACE, help="seconds between SIGTERM and SIGKILL")
    return parser


def up(args: argparse.Namespace) -> int:
    info = local_stack.start_stack(
        args.dir,
        {"s3": args.s3_port, "mongo": args.mongo_port, "spark": args.spark_port},
        spark=args.spark,
        timeouts={"s3": args.timeout, "mongo": args.timeout, "spark": args.spark_timeout},
    )
    sys.stdout.write(export_lines(info.env))
    sys.stdout.flush()
    say(f"settings written to {local_stack.env_file(info.directory)}; stop with: sidearm-local down --dir {args.dir}")
    return 0


def down(args: argparse.Namespace) -> int:
    report = local_stack.stop_stack(args.dir, args.grace)
    for line in report.stopped:
        say(f"stopped {line}")
    for line in report.skipped:
        say(line)
    if not report.stopped and not report.skipped:
        say(f"nothing recorded in {Path(args.dir).resolve()}; nothing to stop")
    return 0


def status(args: argparse.Namespace) -> int:
    statuses = local_stack.stack_status(args.dir)
    print(f"{'service':8} {'pid':>7}  {'url':28} state")
    for s in statuses:
        print(f"{s.name:8} {s.pid if s.pid else '-':>7}  {s.url or '-':28} {s.state}")
    return 0 if all(s.ok for s in statuses) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"up": up, "down": down, "status": status}[args.command](args)
    except StackError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
