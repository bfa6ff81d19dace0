"""The facts of the games a final-tables run counts, computed with PySpark (SPEC 6, 8).

`pyspark` is imported only inside these functions (and the `pyspark` resource starts no session
until one is asked for), so loading the code location or running the live path never starts a
JVM. The session is either a Spark Connect session on a running server (`SIDEARM_SPARK_REMOTE`,
`sc://host:port`: the warm server of `sidearm-local up`, or a cluster's) or, without that
setting, a local session inside the run's process. The job uses DataFrames only (no RDD, no
`sparkContext`), so it runs unchanged on both. Its inputs are the run's own games only (their
shots, their two teams' rosters), handed to Spark as Arrow tables (`_frame`), at most
`GAMES_PER_JOB` games a job: nothing of the season or the league travels to Spark, and what comes
back is O(games counted) fact rows. `players2`/`teams2` are then base + the sum of the facts,
rebuilt set-based in sidearmdb (`final_tables_db.rebuild_final_tables`).

The rules are those of `domain/facts.py`, which computes the same facts in plain Python and
checks every Spark result.
"""

from __future__ import annotations

import contextlib

from sidearm_assets import settings
from sidearm_assets.domain.boxscore import roster_number
from sidearm_assets.domain.facts import GameFacts, PlayerFact, TeamFact, UnknownJersey
from sidearm_assets.domain.final import CompletedGame
from sidearm_assets.domain.stream import is_jersey


def spark_config(master: str | None = None) -> dict[str, str]:
    """Spark settings tuned for a small job that must start fast: a local session on loopback,
    no UI, one shuffle partition (a run's games are a few thousand rows), no adaptive re-planning, the client JIT only (the job lives
    seconds, so C2 compilation would not pay off)."""
    return {
        "spark.master": master or settings.SPARK_MASTER.value(),
        "spark.app.name": "sidearm-final-tables",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "1",
        "spark.default.parallelism": "1",
        "spark.sql.adaptive.enabled": "false",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }


# What a Spark Connect session sets for itself: the server's static settings (master, driver,
# JIT) are the server's business; these two are per-session SQL settings.
CONNECT_SESSION_CONFIG = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"}
# A server that stops answering fails the job within seconds instead of the client's default of
# retrying for ten minutes: 4 retries, 50 ms growing fourfold up to 2 s (about 3 s in all).
CONNECT_RETRIES = 4
CONNECT_MAX_BACKOFF_MS = 2000
CONNECT_TIMEOUT = 3.0  # seconds for the TCP check before the session is made
SHARED_SESSION_SECONDS = 3600  # the runs of each UTC hour share one server-side session
# The server's answers for a session id it has closed (released, timed out) or does not hold as
# the client knew it (restarted): a shared session gives way to a new one of the run's own.
SESSION_GONE = ("SESSION_CLOSED", "SESSION_CHANGED", "SESSION_NOT_FOUND")


class SparkUnavailableError(RuntimeError):
    """The Spark Connect server cannot be reached; the message names it."""


def local_session(config: dict[str, str]):
    """A classic Spark session in this process (starts a JVM), or the one already running."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def parse_remote(remote: str) -> tuple[str, int]:
    """`sc://host:port[/;params]` -> (host, port); 15002 when the URL names no port."""
    from urllib.parse import urlparse

    parsed = urlparse(remote.strip())
    if parsed.scheme != "sc" or not parsed.hostname:
        raise ValueError(f"not a Spark Connect URL (sc://host:port): {remote!r}")
    return parsed.hostname, parsed.port or 15002


def shared_session_id(remote: str, now: float | None = None) -> str:
    """The id of the server-side session that the final-tables runs of one UTC hour share on the
    server at `remote`. A new session costs the server about a second of set-up on its first
    jobs (its own analyzer, optimizer and function registry); runs that attach to the hour's
    session skip it. A session left idle ends by the server's idle timeout, so at most two such
    sessions (this hour's and the last) hold server memory."""
    import time
    import uuid

    hour = int((time.time() if now is None else now) // SHARED_SESSION_SECONDS)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{remote.strip()}#sidearm-final-tables#{hour}"))


def _with_session_id(remote: str, session_id: str) -> str:
    """`remote` naming `session_id` (Spark Connect's `/;session_id=` parameter), unless it names one."""
    if "session_id=" in remote:
        return remote
    base = remote.strip().rstrip("/")
    return f"{base};session_id={session_id}" if "/;" in base else f"{base}/;session_id={session_id}"


def _without_session_id(remote: str) -> str:
    """`remote` without a `session_id` parameter: the server then makes a session of the client's own."""
    base, _, params = remote.strip().partition("/;")
    kept = [p for p in params.split(";") if p and not p.startswith("session_id=")]
    return f"{base}/;{';'.join(kept)}" if kept else base


def connect_session(remote: str, timeout: float = CONNECT_TIMEOUT, shared: bool = True):
    """A Spark Connect session on the server at `remote`: with `shared`, attached to the hour's
    shared session (`shared_session_id`; `close_session` leaves it on the server), else a new one
    of its own (released by `close_session`). A shared session the server has closed or lost
    (restarted, timed out, released) is replaced by a new one of its own, for this run.

    The server is checked first (one TCP connect), so a stopped server fails at once with a
    message naming it rather than after the client's retries. The session is made with the
    Connect client directly, not through `pyspark.sql.SparkSession.builder`: that route sets
    a process-wide switch (SPARK_CONNECT_MODE_ENABLED) after which no local session can be
    made in the same process.
    """
    import socket

    host, port = parse_remote(remote)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise SparkUnavailableError(
            f"the Spark Connect server {remote} is not reachable ({exc}); start it "
            "(`sidearm-local up`, or the compose service spark-connect) or unset "
            "SIDEARM_SPARK_REMOTE to run Spark inside the run"
        ) from exc
    if shared:
        try:
            return _new_session(_with_session_id(remote, shared_session_id(remote)), remote, keep=True)
        except SparkUnavailableError as exc:
            if not any(code in str(exc) for code in SESSION_GONE):
                raise
    return _new_session(_without_session_id(remote), remote, keep=False)


def _new_session(url: str, remote: str, keep: bool):
    from pyspark.sql.connect.client.retries import DefaultPolicy
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(url).create()
    session.release_session_on_close = not keep
    session.client.set_retry_policies(
        [DefaultPolicy(max_retries=CONNECT_RETRIES, max_backoff=CONNECT_MAX_BACKOFF_MS)]
    )
    try:
        for key, value in CONNECT_SESSION_CONFIG.items():
            session.conf.set(key, value)
        # A one-row query: the client's result path (Arrow) and the server's new session are set
        # up now, while the run reads its inputs, rather than inside the job (0.1-0.5 s less).
        session.range(1).collect()
    except Exception as exc:
        session.release_session_on_close = False
        with contextlib.suppress(Exception):
            session.stop()
        raise SparkUnavailableError(f"the Spark Connect server {remote} does not answer: {exc}") from exc
    return session


def close_session(session) -> None:
    """Close the channel of a Spark Connect session once the client's pending releases of
    finished results have gone out, and release the session on the server unless it is the
    shared one (`connect_session`). A release before the pending ones would make the server log
    an error with a stack trace for every late release."""
    import concurrent.futures

    pending = list(getattr(session.client, "_release_futures", ()) or ())
    if pending:
        concurrent.futures.wait(pending, timeout=5)
    session.stop()


def is_connect(spark) -> bool:
    """Whether `spark` is a Spark Connect session (rather than a classic, in-process one)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _functions(spark):
    """`pyspark.sql.functions` for this session's kind. The classic module serves Connect only
    when the process-wide switch above is set, and columns of one kind never mix with the other."""
    if is_connect(spark):
        from pyspark.sql.connect import functions
    else:
        from pyspark.sql import functions
    return functions


# The input tables' Arrow types, column by column.
INPUT_SCHEMAS = {
    "roster": (("id", "int32"), ("number", "string"), ("teamid", "int32")),
    "games": (("game_id", "string"), ("home_teamid", "int32"), ("away_teamid", "int32")),
    "shots": (("game_id", "string"), ("teamid", "int32"), ("jersey", "string"), ("goal", "int32")),
}
GAMES_PER_JOB = 1000  # a backfill of a season is counted in jobs of this many games


def _frame(spark, name: str, rows: list[tuple]):
    """A DataFrame of `rows` for input table `name`, from an Arrow table: Spark reads the columns
    in the JVM (no Python worker, no JSON literal to parse), locally or over Spark Connect."""
    import pyarrow as pa

    columns = INPUT_SCHEMAS[name]
    schema = pa.schema([(c, getattr(pa, t)()) for c, t in columns])
    arrays = [pa.array([r[i] for r in rows], type=schema.field(i).type) for i in range(len(columns))]
    return spark.createDataFrame(pa.Table.from_arrays(arrays, schema=schema))


def roster_rows(players: list[dict]) -> list[tuple]:
    """(id, number, team id) of the players a shot can credit: numbers that are jerseys."""
    rows = []
    for p in players:
        number = roster_number(p)
        if is_jersey(number) and p.get("teamid") is not None:
            rows.append((p["id"], number, p["teamid"]))
    return rows


def compute_game_facts(spark, games: list[CompletedGame], rosters: list[dict]) -> GameFacts:
    """The facts of `games` (their players' shots and goals, each team's result, the off-roster
    jerseys), credited with `rosters` (the players of the games' teams), in jobs of at most
    `GAMES_PER_JOB` games."""
    out = GameFacts([], [], [])
    roster = roster_rows(rosters)
    for i in range(0, len(games), GAMES_PER_JOB):
        part = _facts_job(spark, games[i : i + GAMES_PER_JOB], roster)
        out.players += part.players
        out.teams += part.teams
        out.unknown += part.unknown
    return out.normalized()


def _facts_job(spark, games: list[CompletedGame], roster: list[tuple]) -> GameFacts:
    F = _functions(spark)
    teams_of = {t for g in games for t in (g.home_teamid, g.away_teamid)}
    players = _frame(spark, "roster", [r for r in roster if r[2] in teams_of])
    games_df = _frame(spark, "games", [(g.game_id, g.home_teamid, g.away_teamid) for g in games])
    shots = _frame(spark, "shots", [(g.game_id, s.teamid, s.jersey, s.goal) for g in games for s in g.shots])

    # A shot credits the lowest player id holding that number on that team (as the box score).
    holders = players.groupBy("teamid", "number").agg(F.min("id").alias("player_id"))
    credited = (F.col("s.teamid") == F.col("h.teamid")) & (F.col("s.jersey") == F.col("h.number"))
    player_facts = (
        shots.alias("s").join(holders.alias("h"), credited, "inner")
        .groupBy("s.game_id", "h.player_id", "s.teamid")
        .agg(F.count(F.lit(1)).cast("int").alias("shots"), F.sum("s.goal").cast("int").alias("goals"))
    )
    unknown = (
        shots.alias("s").join(holders.alias("h"), credited, "left_anti")
        .groupBy("game_id", "teamid", "jersey")
        .agg(F.count(F.lit(1)).cast("int").alias("shots"), F.sum("goal").cast("int").alias("goals"))
    )

    # Each game's score from each side, then one row per team with its result.
    goals = (
        games_df.alias("g").join(shots.alias("s"), F.col("s.game_id") == F.col("g.game_id"), "left")
        .groupBy("g.game_id", "g.home_teamid", "g.away_teamid")
        .agg(
            F.coalesce(F.sum(F.when(F.col("s.teamid") == F.col("g.home_teamid"), F.col("s.goal"))), F.lit(0)).alias("home"),
            F.coalesce(F.sum(F.when(F.col("s.teamid") == F.col("g.away_teamid"), F.col("s.goal"))), F.lit(0)).alias("away"),
        )
    )
    sides = goals.select("game_id", F.col("home_teamid").alias("teamid"), F.col("home").alias("goals_for"),
                         F.col("away").alias("goals_against")).unionByName(
        goals.select("game_id", F.col("away_teamid").alias("teamid"), F.col("away").alias("goals_for"),
                     F.col("home").alias("goals_against")))
    off_roster = unknown.groupBy("game_id", "teamid").agg(
        F.sum("shots").alias("unknown_shots"), F.sum("goals").alias("unknown_goals"))
    team_facts = (
        sides.join(off_roster, ["game_id", "teamid"], "left")
        .select(
            "game_id", "teamid", F.col("goals_for").cast("int").alias("goals_for"),
            F.col("goals_against").cast("int").alias("goals_against"),
            (F.col("goals_for") > F.col("goals_against")).cast("int").alias("wins"),
            (F.col("goals_for") < F.col("goals_against")).cast("int").alias("losses"),
            (F.col("goals_for") == F.col("goals_against")).cast("int").alias("ties"),
            F.coalesce("unknown_shots", F.lit(0)).cast("int").alias("unknown_shots"),
            F.coalesce("unknown_goals", F.lit(0)).cast("int").alias("unknown_goals"),
        )
    )

    rows = _collect_all(spark, {
        "players": (player_facts, ("game_id", "player_id", "teamid", "shots", "goals")),
        "teams": (team_facts, ("game_id", "teamid", "goals_for", "goals_against", "wins", "losses", "ties",
                               "unknown_shots", "unknown_goals")),
        "unknown": (unknown, ("game_id", "teamid", "jersey", "shots", "goals")),
    })
    return GameFacts(
        [PlayerFact(**r) for r in rows["players"]],
        [TeamFact(**r) for r in rows["teams"]],
        [UnknownJersey(**r) for r in rows["unknown"]],
    )


def _collect_all(spark, frames: dict) -> dict[str, list[dict]]:
    """name -> rows of each (DataFrame, its columns), collected in one Spark job. The columns are
    named by the caller: `df.columns` would cost a round trip and a full analysis of the plan on a
    Spark Connect server, three times."""
    import json
    from functools import reduce

    F = _functions(spark)
    tagged = [
        df.select(F.lit(name).alias("table"), F.to_json(F.struct(*columns)).alias("row"))
        for name, (df, columns) in frames.items()
    ]
    out: dict[str, list[dict]] = {name: [] for name in frames}
    for r in reduce(lambda a, b: a.unionByName(b), tagged).collect():
        out[r["table"]].append(json.loads(r["row"]))
    return out
