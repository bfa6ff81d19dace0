"""`gamestream`: replays a lacrosse game into the bucket the way a live feed publishes it (SPEC 4).

Each start resets `players` and `teams` to the base data (other tables and MongoDB are left
alone), creates the bucket if missing, then plays the game from 60:00: whenever the game clock
reaches the next line's clock, the WHOLE object is rewritten with every line so far (an S3 put is
atomic, so readers see an old or a new version, never half of one). `DELAY` is real seconds per
game second (0.25 plays the game at 4x). The object always ends with the `-1` game-over line:
when the game file has none, `-1 00:00 0 0 0` is appended.

A game file is checked completely before anything is reset or written: every line must be
accepted by `sidearm_assets.domain.stream.parse_stream` for this game's two teams, and the clock
may not run backwards (except after a `00:00` line: overtime restarts it). The two teams are the
`games` schedule row of the key's game id; without a row, the (at most two) teams found in the
file, with a warning, since the pipeline skips a game that has no schedule row (SPEC 3).

Before anything is reset or written, S3 must answer (the bucket is looked up) and sidearmdb must
answer (`select 1`); when one does not, `gamestream` says so, names the command that starts the
embedded stack (`eval "$(.venv/bin/sidearm-local up --dir .sidearm)"`) and exits 1 having changed
nothing. (`--reset-only` needs only sidearmdb.)

`gamestream --games N [--seed S]` plays a league instead (gamestream/league.py): N games with
their own teams, players and `games` rows, installed beside the base data, streamed all at once,
each game putting every 1-3 s (`--put-interval LO,HI` compresses it), and stops when every game is
over. `--quiet` keeps only the start, per-game `Game Over` and summary lines.
`gamestream season --teams N --games M` installs a whole season instead (gamestream/season_cli.py).

Exit codes: 0 done, 1 a service failed, 2 bad game file or options, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.domain.stream import GAME_OVER_EVENT_ID, GAME_SECONDS, parse_stream

DEFAULT_KEY = settings.key_for_game(settings.DEFAULT_GAME_ID)  # gamestream.txt
GAME_OVER_LINE = "-1 00:00 0 0 0"
EXIT_SERVICE = 1
EXIT_BAD_INPUT = 2
START_HINT = 'to start the embedded stack, run: eval "$(.venv/bin/sidearm-local up --dir .sidearm)"'

MAX_PROBLEMS_SHOWN = 20

log = logging.getLogger("gamestream")


class GameFileError(ValueError):
    """A game file the simulator will not play; `problems` name each bad line."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        text = "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(f"bad game file {source} (nothing was written):\n{text}")


@dataclass(frozen=True)
class Step:
    """One write of the object: the line that triggers it and when, in game seconds from 60:00."""

    text: str
    clock: str
    game_seconds: int  # elapsed game time at this line; the wait before it is the difference


def default_game_path() -> Path:
    return Path(__file__).resolve().parent / "games" / "default.txt"


def plan_game(data: bytes, teams: tuple[int, int] | None, source: str = "game file") -> list[Step]:
    """The writes to make for a game file, ending with the `-1` line; GameFileError when bad.

    `teams` (home, away) restricts shots to those two teams; None takes them from the file.
    """
    texts = [raw.decode("utf-8", errors="replace").rstrip() for raw in data.splitlines()]
    if teams is None:
        found: list[int] = []
        for event in parse_stream(data).events:
            if event.team_id and event.team_id not in found:
                found.append(event.team_id)
        # With more than two, parse_stream rejects the others' lines as `team N is not playing`.
        teams = (found[0], found[1]) if len(found) >= 2 else None
    parsed = parse_stream(data, teams)
    problems = [f"line {r.line_no}: {r.text!r}: {r.reason}" for r in parsed.rejected]
    if not parsed.events:
        problems.append("no events: a game needs at least one line")

    steps: list[Step] = []
    elapsed = 0
    previous = None  # seconds left at the previous line
    for event in parsed.events:
        if previous is not None and event.seconds_left > previous:
            if event.event_id == GAME_OVER_EVENT_ID:
                steps.append(Step(texts[event.line_no - 1], event.clock, elapsed))  # no wait
                continue
            if previous == 0:
                previous = event.seconds_left  # overtime: a new period starts at this line
            else:
                problems.append(
                    f"line {event.line_no}: {texts[event.line_no - 1]!r}: clock {event.clock} "
                    f"runs backwards (the line before is at {_mmss(previous)})"
                )
                continue
        start = GAME_SECONDS if previous is None else previous
        elapsed += start - event.seconds_left
        previous = event.seconds_left
        steps.append(Step(texts[event.line_no - 1], event.clock, elapsed))
    if problems:
        problems.sort(key=_line_number)
        raise GameFileError(source, problems)
    if parsed.game_over_line is None:
        steps.append(Step(GAME_OVER_LINE, "00:00", elapsed + (previous or 0)))
    return steps


def _line_number(problem: str) -> int:
    head = problem.split(":", 1)[0]
    return int(head[5:]) if head.startswith("line ") and head[5:].isdigit() else 0


def _mmss(seconds_left: int) -> str:
    return f"{seconds_left // 60:02d}:{seconds_left % 60:02d}"


def scheduled_teams(engine, game_id: str | None, will_reset: bool) -> tuple[int, int] | None:
    """(home, away) from the `games` row of `game_id`; the base schedule counts when a reset is
    about to add it; None when the game has no row."""
    from sqlalchemy import inspect, select

    from sidearm_assets.storage import reference_db

    if game_id is None:
        return None
    if inspect(engine).has_table(reference_db.games.name):
        g = reference_db.games
        with engine.connect() as conn:
            row = conn.execute(
                select(g.c.home_teamid, g.c.away_teamid).where(g.c.game_id == game_id)
            ).first()
        if row is not None:
            return int(row[0]), int(row[1])
    if will_reset:
        for base in reference_db.BASE_GAMES:
            if base["game_id"] == game_id:
                return base["home_teamid"], base["away_teamid"]
    return None


def stream_game(s3, bucket: str, key: str, steps: list[Step], delay: float) -> None:
    """Rewrite the whole object at each step's game time; waits are measured from the start, so
    they do not drift with the time each put takes."""
    log.info("Starting Game Data Stream. Delay: 1 second == %s seconds.", _number(delay))
    started = time.monotonic()
    lines: list[str] = []
    for step in steps:
        wait = started + step.game_seconds * delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        lines.append(step.text)
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=("\n".join(lines) + "\n").encode(),
            ContentType="text/plain; charset=utf-8",
        )
        log.info("Wrote %s to bucket %s at %s", key, bucket, step.clock)
    log.info("Game Over. Data Stream is complete.")


def _number(value: float) -> str:
    return f"{value:g}"


def _delay(text: str, source: str) -> float:
    try:
        delay = float(text)
    except ValueError:
        raise SystemExit(_fail(f"{source} {text!r} is not a number of seconds", EXIT_BAD_INPUT)) from None
    if delay < 0 or delay != delay or delay == float("inf"):
        raise SystemExit(_fail(f"{source} must be zero or more seconds, got {text!r}", EXIT_BAD_INPUT))
    return delay


def _fail(message: str, code: int) -> int:
    print(f"gamestream: error: {message}", file=sys.stderr, flush=True)
    return code


def _note(message: str) -> None:
    print(f"gamestream: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gamestream",
        description="Replay a lacrosse game into the S3 bucket as a live feed (settings from SIDEARM_* and DELAY).",
        epilog="`gamestream season --help`: install a whole season of teams and games, and backfill played games.",
    )
    parser.add_argument("--game", type=Path, default=None, help="game file in the stream format (default: the packaged game)")
    parser.add_argument("--key", default=DEFAULT_KEY, help=f"object key, <game_id>.txt (default {DEFAULT_KEY})")
    parser.add_argument("--delay", default=None, help="real seconds per game second (default: DELAY, else 0.25)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--reset-only", action="store_true", help="reset players and teams, then exit")
    mode.add_argument("--no-reset", action="store_true", help="leave players and teams as they are")
    league = parser.add_argument_group("league (many games at once, see gamestream/league.py)")
    league.add_argument("--games", type=int, default=None, metavar="N",
                        help="stream N generated games league-0001..N at once, with their own teams and games rows")
    league.add_argument("--seed", type=int, default=1, help="the league's seed (default 1): same seed, same league")
    league.add_argument("--put-interval", default=None, metavar="LO,HI",
                        help="real seconds between two puts of a game (default 1,3; e.g. 0.05,0.15 for a quick run)")
    league.add_argument("--start-spread", type=float, default=None, metavar="SECONDS",
                        help="games start spread over this many seconds (default 2 x HI)")
    league.add_argument("--workers", type=int, default=None, help="threads putting objects (default min(N, 32))")
    league.add_argument("--quiet", action="store_true", help="no per-put line; start, Game Over and summary only")
    return parser


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["season"]:
        from gamestream import season_cli

        return season_cli.main(argv[1:])
    args = _parser().parse_args(argv)
    _setup_logging()
    try:
        return _run(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        _note("interrupted; each object holds the lines written so far")
        return 130


def _s3():
    from sidearm_assets.storage import clients

    endpoint = settings.S3_ENDPOINT_URL.value()
    return endpoint, clients.s3_client(endpoint, settings.S3_ACCESS_KEY.value(), settings.S3_SECRET_KEY.value())


def check_s3(s3, endpoint: str, bucket: str) -> bool:
    """Whether `bucket` exists; SystemExit(1) with the fix when S3 does not answer. Changes nothing."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise SystemExit(_fail(f"S3 at {endpoint} refused bucket {bucket}: {exc} (nothing was changed)", EXIT_SERVICE)) from None
    except BotoCoreError as exc:
        raise SystemExit(_fail(
            f"S3 is not answering at {endpoint} ({exc}); nothing was changed; {START_HINT}", EXIT_SERVICE)) from None


def _engine(sql_url: str, shown_url: str):
    from sidearm_assets.storage import reference_db

    try:
        return reference_db.make_engine(sql_url)  # a SQLite file's folder is created here
    except OSError as exc:
        raise SystemExit(_fail(f"sidearmdb at {shown_url}: {exc}; nothing was changed", EXIT_SERVICE)) from None


def check_sql(engine, shown_url: str) -> None:
    """SystemExit(1) with the fix when sidearmdb does not answer `select 1`. Changes no table."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SystemExit(_fail(
            f"sidearmdb is not answering at {shown_url} ({first}); nothing was changed; {START_HINT}",
            EXIT_SERVICE)) from None


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from sidearm_assets.storage import reference_db

    if args.games is not None:
        return _run_league(args)
    _refuse_league_options(args)
    delay = _delay(args.delay, "--delay") if args.delay is not None else _delay(settings.DELAY.value(), "DELAY")
    sql_url = settings.SQL_URL.value()
    shown_url = make_url(sql_url).render_as_string(hide_password=True)
    bucket = settings.S3_BUCKET.value()
    if not args.reset_only:  # every service answers before anything is reset or written
        endpoint, s3 = _s3()
        bucket_exists = check_s3(s3, endpoint, bucket)
    engine = _engine(sql_url, shown_url)
    try:
        check_sql(engine, shown_url)
        if args.reset_only:
            summary = reference_db.reset_base_tables(engine)
            _note(f"reset players ({summary.players}) and teams ({summary.teams}) in {shown_url}")
            return 0

        source = args.game or default_game_path()
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            return _fail(f"cannot read game file {source}: {exc.strerror or exc}", EXIT_BAD_INPUT)
        game_id = settings.game_id_from_key(args.key)
        if game_id is None:
            _note(f"warning: key {args.key!r} is not <game_id>.txt at the top of the bucket; the pipeline ignores it")
        teams = scheduled_teams(engine, game_id, will_reset=not args.no_reset)
        if teams is None and game_id is not None:
            _note(
                f"warning: no `games` row for {game_id!r} in {shown_url}; teams are taken from the file, "
                "and the pipeline skips this game until the row exists"
            )
        try:
            steps = plan_game(data, teams, str(source))
        except GameFileError as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)

        code = _create_bucket(s3, endpoint, bucket, bucket_exists)
        if code:
            return code
        if not args.no_reset:
            summary = reference_db.reset_base_tables(engine)
            _note(f"reset players ({summary.players}) and teams ({summary.teams}) in {shown_url}")
    except SQLAlchemyError as exc:
        return _fail(f"reference database {shown_url}: {exc.__class__.__name__}: {exc}", EXIT_SERVICE)
    finally:
        engine.dispose()

    return _stream(s3, endpoint, bucket, args.key, steps, delay)


def _create_bucket(s3, endpoint: str, bucket: str, exists: bool) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    if exists:
        return 0
    try:
        s3.create_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        return _fail(f"S3 at {endpoint}: cannot create bucket {bucket}: {exc}", EXIT_SERVICE)
    _note(f"created bucket {bucket} at {endpoint}")
    return 0


def _stream(s3, endpoint: str, bucket: str, key: str, steps: list[Step], delay: float) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stream_game(s3, bucket, key, steps, delay)
    except (BotoCoreError, ClientError) as exc:
        return _fail(f"S3 at {endpoint}, bucket {bucket}: {exc}", EXIT_SERVICE)
    return 0


def _refuse_league_options(args: argparse.Namespace) -> None:
    given = [name for name, value in (("--put-interval", args.put_interval), ("--start-spread", args.start_spread),
                                      ("--workers", args.workers), ("--quiet", args.quiet or None)) if value is not None]
    if given:
        raise SystemExit(_fail(f"{', '.join(given)} only go with --games N", EXIT_BAD_INPUT))


def _put_interval(text: str | None) -> tuple[float, float]:
    from gamestream import league

    if text is None:
        return league.DEFAULT_PUT_INTERVAL
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts) if len(parts) == 2 else (float(text),) * 2
    except ValueError:
        raise SystemExit(_fail(f"--put-interval {text!r} is not LO,HI seconds", EXIT_BAD_INPUT)) from None
    if not (0 <= lo <= hi < float("inf")):
        raise SystemExit(_fail(f"--put-interval {text!r}: need 0 <= LO <= HI seconds", EXIT_BAD_INPUT))
    return lo, hi


def _league_options(args: argparse.Namespace) -> tuple[tuple[float, float], float, int]:
    from gamestream import league

    conflicting = [name for name, given in (("--game", args.game is not None), ("--key", args.key != DEFAULT_KEY),
                                            ("--delay", args.delay is not None), ("--reset-only", args.reset_only))
                   if given]
    if conflicting:
        raise SystemExit(_fail(f"--games plays generated games: {', '.join(conflicting)} does not apply", EXIT_BAD_INPUT))
    if not 1 <= args.games <= league.MAX_GAMES:
        raise SystemExit(_fail(f"--games must be 1 to {league.MAX_GAMES}, got {args.games}", EXIT_BAD_INPUT))
    interval = _put_interval(args.put_interval)
    spread = 2 * interval[1] if args.start_spread is None else args.start_spread
    if not 0 <= spread < float("inf"):
        raise SystemExit(_fail(f"--start-spread must be zero or more seconds, got {args.start_spread}", EXIT_BAD_INPUT))
    workers = league.default_workers(args.games) if args.workers is None else args.workers
    if workers < 1:
        raise SystemExit(_fail(f"--workers must be 1 or more, got {workers}", EXIT_BAD_INPUT))
    return interval, spread, workers


def _run_league(args: argparse.Namespace) -> int:
    """`--games N`: check both services, reset the base data (unless --no-reset), install the
    league beside it, stream every game at once."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from gamestream import league as lg
    from sidearm_assets.storage import reference_db

    interval, spread, workers = _league_options(args)
    sql_url = settings.SQL_URL.value()
    shown_url = make_url(sql_url).render_as_string(hide_password=True)
    endpoint = settings.S3_ENDPOINT_URL.value()
    bucket = settings.S3_BUCKET.value()
    s3 = lg.league_s3_client(endpoint, settings.S3_ACCESS_KEY.value(), settings.S3_SECRET_KEY.value(), workers)
    bucket_exists = check_s3(s3, endpoint, bucket)
    league = lg.make_league(args.games, args.seed)
    engine = _engine(sql_url, shown_url)
    try:
        check_sql(engine, shown_url)
        code = _create_bucket(s3, endpoint, bucket, bucket_exists)
        if code:
            return code
        if not args.no_reset:
            summary = reference_db.reset_base_tables(engine)
            _note(f"reset players ({summary.players}) and teams ({summary.teams}) in {shown_url}")
        installed = lg.install_league(engine, league)
        _note(
            f"league seed {args.seed}: {installed.teams} teams, {installed.players} players and "
            f"{installed.games} games rows ({league.games[0].game_id}..{league.games[-1].game_id}) in {shown_url}"
        )
    except SQLAlchemyError as exc:
        return _fail(f"reference database {shown_url}: {exc.__class__.__name__}: {exc}", EXIT_SERVICE)
    finally:
        engine.dispose()

    lo, hi = interval
    log.info(
        "Starting League Data Stream: %d games, a put every %s-%s seconds per game, starts spread over %s seconds.",
        args.games, _number(lo), _number(hi), _number(spread),
    )
    try:
        result = lg.stream_league(
            s3, bucket, league, put_interval=interval, start_spread=spread, max_workers=workers, log_puts=not args.quiet
        )
    except lg.LeagueStreamError as exc:
        return _fail(f"S3 at {endpoint}, bucket {bucket}: {exc}; the league stopped", EXIT_SERVICE)
    log.info(
        "League over: %d games, %d puts in %.1f seconds (slowest put %.3f s).",
        result.games, result.puts, result.seconds, result.slowest_put,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
