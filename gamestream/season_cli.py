"""`gamestream season --teams N --games M [--seed S] [--played K]`: install a season, and backfill
its first K games (gamestream/season.py).

Installs N teams, their players and the `games` rows of a schedule of M games beside the base
data in sidearmdb (idempotent; the base data is not reset). With `--played K`, the first K games'
final streams are then written to the completed-games archive in S3 and filed in the completion
inbox, where the next final-tables run counts them. sidearmdb must answer (and S3, with
`--played`) before anything is written; the settings are the simulator's (SIDEARM_*).

Exit codes: 0 done, 1 a service failed, 2 bad options.
"""

from __future__ import annotations

import argparse
import time

from gamestream import season as gs
from gamestream import simulator as sim
from sidearm_assets import settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamestream season",
        description="Install a season (N teams, a schedule of M games) in sidearmdb; with --played K, "
                    "load its first K games as completed (archive + completion inbox) without streaming them.",
    )
    parser.add_argument("--teams", type=int, required=True, metavar="N",
                        help=f"teams in the season ({gs.MIN_TEAMS} to {gs.MAX_TEAMS})")
    parser.add_argument("--games", type=int, required=True, metavar="M",
                        help=f"games in the schedule (0 to {gs.MAX_GAMES}); each team plays about 2M/N")
    parser.add_argument("--seed", type=int, default=1, help="the season's seed (default 1): same seed, same season")
    parser.add_argument("--played", type=int, default=0, metavar="K",
                        help="archive and file the first K games as completed (default 0)")
    parser.add_argument("--workers", type=int, default=gs.DEFAULT_WORKERS,
                        help=f"threads putting archive objects (default {gs.DEFAULT_WORKERS})")
    return parser


def check_options(args: argparse.Namespace) -> str | None:
    """The first problem with the options, or None."""
    if not gs.MIN_TEAMS <= args.teams <= gs.MAX_TEAMS:
        return f"--teams must be {gs.MIN_TEAMS} to {gs.MAX_TEAMS}, got {args.teams}"
    if not 0 <= args.games <= gs.MAX_GAMES:
        return f"--games must be 0 to {gs.MAX_GAMES}, got {args.games}"
    if not 0 <= args.played <= args.games:
        return f"--played must be 0 to --games ({args.games}), got {args.played}"
    if args.workers < 1:
        return f"--workers must be 1 or more, got {args.workers}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = check_options(args)
    if problem:
        return sim._fail(problem, sim.EXIT_BAD_INPUT)
    try:
        return _run(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        sim._note("interrupted")
        return 130


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from sidearm_assets.storage import clients

    sql_url = settings.SQL_URL.value()
    shown_url = make_url(sql_url).render_as_string(hide_password=True)
    s3 = None
    if args.played:  # every service answers before anything is written
        endpoint, bucket = settings.S3_ENDPOINT_URL.value(), settings.S3_BUCKET.value()
        s3 = clients.s3_client(endpoint, settings.S3_ACCESS_KEY.value(), settings.S3_SECRET_KEY.value())
        bucket_exists = sim.check_s3(s3, endpoint, bucket)
    engine = sim._engine(sql_url, shown_url)
    try:
        sim.check_sql(engine, shown_url)
        if s3 is not None and sim._create_bucket(s3, endpoint, bucket, bucket_exists):
            return sim.EXIT_SERVICE
        started = time.monotonic()
        season = gs.make_season(args.teams, args.games, args.seed)
        made = time.monotonic()
        installed = gs.install_season(engine, season)
        span = (f" ({season.games[0].game_id}..{season.games[-1].game_id}, "
                f"{season.games[0].date}..{season.games[-1].date})" if season.games else "")
        sim._note(
            f"season seed {args.seed}: {installed.teams} teams, {installed.players} players and "
            f"{installed.games} games rows{span} in {shown_url} "
            f"(made in {made - started:.2f} s, installed in {time.monotonic() - made:.2f} s)"
        )
        if not args.played:
            return 0
        try:
            archive = gs.archive_client(endpoint, settings.S3_ACCESS_KEY.value(), settings.S3_SECRET_KEY.value(), bucket)
            result = gs.backfill(engine, archive, season.games[: args.played], args.workers)
        except gs.BackfillError as exc:
            return sim._fail(f"S3 at {endpoint}, bucket {bucket}: {exc}; the games are filed and will be counted, "
                            "and the run that counts them puts back the missing archive copies", sim.EXIT_SERVICE)
        sim._note(
            f"played {result.games} games ({result.bytes / 1e6:.1f} MB): archived under "
            f"{settings.ARCHIVE_PREFIX} in {result.archive_s:.2f} s, filed in the completion inbox in "
            f"{result.file_s:.2f} s ({result.pending} new, pending a final-tables run); "
            f"playing them took {result.play_s:.2f} s"
        )
        return 0
    except SQLAlchemyError as exc:
        return sim._fail(f"reference database {shown_url}: {exc.__class__.__name__}: {exc}", sim.EXIT_SERVICE)
    finally:
        engine.dispose()
