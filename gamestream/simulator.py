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

    from sidearm_assets import reference_db

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
    )
    parser.add_argument("--game", type=Path, default=None, help="game file in the stream format (default: the packaged game)")
    parser.add_argument("--key", default=DEFAULT_KEY, help=f"object key, <game_id>.txt (default {DEFAULT_KEY})")
    parser.add_argument("--delay", default=None, help="real seconds per game second (default: DELAY, else 0.25)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--reset-only", action="store_true", help="reset players and teams, then exit")
    mode.add_argument("--no-reset", action="store_true", help="leave players and teams as they are")
    return parser


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging()
    try:
        return _run(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        _note("interrupted; the object holds the lines written so far")
        return 130


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from sidearm_assets import reference_db

    delay = _delay(args.delay, "--delay") if args.delay is not None else _delay(settings.DELAY.value(), "DELAY")
    sql_url = settings.SQL_URL.value()
    shown_url = make_url(sql_url).render_as_string(hide_password=True)
    engine = reference_db.make_engine(sql_url)
    try:
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

        if not args.no_reset:
            summary = reference_db.reset_base_tables(engine)
            _note(f"reset players ({summary.players}) and teams ({summary.teams}) in {shown_url}")
    except SQLAlchemyError as exc:
        return _fail(f"reference database {shown_url}: {exc.__class__.__name__}: {exc}", EXIT_SERVICE)
    finally:
        engine.dispose()

    return _stream(args.key, steps, delay)


def _stream(key: str, steps: list[Step], delay: float) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from sidearm_assets import clients

    endpoint = settings.S3_ENDPOINT_URL.value()
    bucket = settings.S3_BUCKET.value()
    s3 = clients.s3_client(endpoint, settings.S3_ACCESS_KEY.value(), settings.S3_SECRET_KEY.value())
    try:
        if clients.ensure_bucket(s3, bucket):
            _note(f"created bucket {bucket} at {endpoint}")
        stream_game(s3, bucket, key, steps, delay)
    except (BotoCoreError, ClientError) as exc:
        return _fail(f"S3 at {endpoint}, bucket {bucket}: {exc}", EXIT_SERVICE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
