"""The final tables computed with PySpark (SPEC 6): base rows + completed games -> players2/teams2.

`pyspark` is imported only inside these functions (and the `pyspark` resource starts no session
until one is asked for), so loading the code location or running the live path never starts a
JVM. The session is either a Spark Connect session on a running server (`SIDEARM_SPARK_REMOTE`,
`sc://host:port`: the warm server of `sidearm-local up`, or a cluster's) or, without that
setting, a local session inside the run's process. The job uses DataFrames only (no RDD, no
`sparkContext`), so it runs unchanged on both. The inputs are plain rows handed to Spark in the
driver (`_frame`): the events come through the project's own resources (S3 via boto3), not
through a Spark S3 connector, whose jars cannot be fetched here. docs/final-tables.md has the
production JDBC path.

The rules are the ones of `domain/final.py`, which computes the same tables in plain Python
and checks every Spark result.
"""

from __future__ import annotations

from sidearm_assets import settings
from sidearm_assets.domain.final import CompletedGame, FinalTables
from sidearm_assets.storage.reference_db import PLAYER_COLUMNS, TEAM_COLUMNS


def spark_config(master: str | None = None) -> dict[str, str]:
    """Spark settings tuned for a small job that must start fast: a local session on loopback,
    no UI, two shuffle partitions, no adaptive re-planning, the client JIT only (the job lives
    seconds, so C2 compilation would not pay off)."""
    return {
        "spark.master": master or settings.SPARK_MASTER.value(),
        "spark.app.name": "sidearm-final-tables",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.enabled": "false",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }


# What a Spark Connect session sets for itself: the server's static settings (master, driver,
# JIT) are the server's business; these two are per-session SQL settings.
CONNECT_SESSION_CONFIG = {"spark.sql.shuffle.partitions": "2", "spark.sql.adaptive.enabled": "false"}
# A server that stops answering fails the job within seconds instead of the client's default of
# retrying for ten minutes: 4 retries, 50 ms growing fourfold up to 2 s (about 3 s in all).
CONNECT_RETRIES = 4
CONNECT_MAX_BACKOFF_MS = 2000
CONNECT_TIMEOUT = 3.0  # seconds for the TCP check before the session is made


class SparkUnavailableError(RuntimeError):
    """The Spark Connect server cannot be reached; the message names it."""


def spark_resource(master: str | None = None, remote: str | None = None):
    """The `pyspark` resource: a Spark session made on first use, on the Spark Connect server
    `remote` (default: the `SIDEARM_SPARK_REMOTE` setting) when there is one, else local."""
    from sidearm_assets.storage.spark_resource import SparkSessionResource

    return SparkSessionResource(
        spark_config=spark_config(master),
        remote=settings.setting(settings.SPARK_REMOTE) if remote is None else remote,
    )


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


def connect_session(remote: str, timeout: float = CONNECT_TIMEOUT):
    """A new Spark Connect session on the server at `remote`.

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
    from pyspark.sql.connect.client.retries import DefaultPolicy
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(remote).create()
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
        raise SparkUnavailableError(f"the Spark Connect server {remote} does not answer: {exc}") from exc
    return session


def close_session(session) -> None:
    """Release a Spark Connect session on the server and close its channel, once the client's
    pending releases of finished results have gone out: `stop()` alone releases the session
    first, and the server then logs an error with a stack trace for every late release."""
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


# The input tables' Spark types (DDL), column by column.
INPUT_SCHEMAS = {
    "players": (("id", "int"), ("name", "string"), ("number", "string"), ("shots", "int"), ("goals", "int"), ("teamid", "int")),
    "teams": (("id", "int"), ("name", "string"), ("conference", "string"), ("wins", "int"), ("losses", "int")),
    "games": (("game_id", "string"), ("home_teamid", "int"), ("away_teamid", "int")),
    "shots": (("game_id", "string"), ("teamid", "int"), ("jersey", "string"), ("goal", "int")),
}


def _frame(spark, name: str, rows: list[tuple]):
    """A DataFrame of `rows` for input table `name`, built inside the JVM.

    The rows travel as one JSON string literal that Spark parses itself (`from_json` + `inline`):
    no Python worker process is started and no temporary file is written, so it works with any
    master. `spark.createDataFrame` on a Python list ships pickled rows through Python workers,
    which made this job two to three times slower (docs/final-tables.md).
    """
    import json

    F = _functions(spark)
    columns = INPUT_SCHEMAS[name]
    data = json.dumps([dict(zip((c for c, _ in columns), r)) for r in rows])
    schema = "array<struct<" + ", ".join(f"{c}: {t}" for c, t in columns) + ">>"
    return spark.range(1).select(F.inline(F.from_json(F.lit(data), schema)))


def compute_final_tables(
    spark, base_players: list[dict], base_teams: list[dict], games: list[CompletedGame]
) -> FinalTables:
    """players2/teams2 rows (ordered by id) from the base rows and the completed games.

    The caller has checked the games' teams (`domain.final.check_teams`). Off-roster jerseys and
    tied games are reported by Spark too, so the metadata shows what this job saw.
    """
    F = _functions(spark)
    players = _frame(spark, "players", [tuple(p[c] for c in PLAYER_COLUMNS) for p in base_players])
    teams = _frame(spark, "teams", [tuple(t[c] for c in TEAM_COLUMNS) for t in base_teams])
    games_df = _frame(spark, "games", [(g.game_id, g.home_teamid, g.away_teamid) for g in games])
    shots = _frame(spark, "shots", [(g.game_id, s.teamid, s.jersey, s.goal) for g in games for s in g.shots])

    # A shot credits the lowest player id holding that number on that team (as the box score):
    # the "holders" are the players no lower id shares a (team, number) with.
    p, q = players.alias("p"), players.alias("q")
    same_number_lower_id = (
        (F.col("q.teamid") == F.col("p.teamid"))
        & (F.col("q.number") == F.col("p.number"))
        & (F.col("q.id") < F.col("p.id"))
    )
    holders = p.join(q, same_number_lower_id, "left_anti").select(F.col("id").alias("holder_id"))
    with_holder = players.join(holders, F.col("id") == F.col("holder_id"), "left")
    credited_shot = (
        (F.col("s.teamid") == F.col("p.teamid"))
        & (F.col("s.jersey") == F.col("p.number"))
        & F.col("p.holder_id").isNotNull()
    )
    players2 = (
        with_holder.alias("p")
        .join(shots.alias("s"), credited_shot, "left")
        .groupBy("p.id", "p.name", "p.number", "p.shots", "p.goals", "p.teamid")
        .agg(F.count("s.goal").alias("add_shots"), F.coalesce(F.sum("s.goal"), F.lit(0)).alias("add_goals"))
        .select(
            "id",
            "name",
            "number",
            (F.coalesce("shots", F.lit(0)) + F.col("add_shots")).cast("int").alias("shots"),
            (F.coalesce("goals", F.lit(0)) + F.col("add_goals")).cast("int").alias("goals"),
            "teamid",
        )
    )
    on_roster = (F.col("s.teamid") == F.col("p.teamid")) & (F.col("s.jersey") == F.col("p.number"))
    unknown = (
        shots.alias("s")
        .join(players.alias("p"), on_roster, "left_anti")
        .groupBy("game_id", "teamid", "jersey")
        .agg(F.count(F.lit(1)).cast("int").alias("shots"), F.sum("goal").cast("int").alias("goals"))
    )

    # Each team's goal difference in each of its completed games, then its record.
    plays = (F.col("t.id") == F.col("g.home_teamid")) | (F.col("t.id") == F.col("g.away_teamid"))
    own_goal = F.when(F.col("s.teamid") == F.col("t.id"), F.col("s.goal")).otherwise(-F.col("s.goal"))
    per_game = (
        teams.alias("t")
        .join(games_df.alias("g"), plays, "left")
        .join(shots.alias("s"), F.col("s.game_id") == F.col("g.game_id"), "left")
        .groupBy("t.id", "t.name", "t.conference", "t.wins", "t.losses", "g.game_id")
        .agg(F.coalesce(F.sum(own_goal), F.lit(0)).alias("difference"))
    )
    played = F.col("game_id").isNotNull()
    teams2 = (
        per_game.groupBy("id", "name", "conference", "wins", "losses")
        .agg(
            F.sum(F.when(played & (F.col("difference") > 0), 1).otherwise(0)).alias("add_wins"),
            F.sum(F.when(played & (F.col("difference") < 0), 1).otherwise(0)).alias("add_losses"),
            F.collect_set(F.when(played & (F.col("difference") == 0), F.col("game_id"))).alias("ties"),
        )
        .select(
            "id",
            "name",
            "conference",
            (F.coalesce("wins", F.lit(0)) + F.col("add_wins")).cast("int").alias("wins"),
            (F.coalesce("losses", F.lit(0)) + F.col("add_losses")).cast("int").alias("losses"),
            "ties",
        )
    )

    # One Spark job for everything: each result row travels as JSON, tagged with its table.
    rows = _collect_all(spark, {
        "players2": (players2, ("id", "name", "number", "shots", "goals", "teamid")),
        "teams2": (teams2, ("id", "name", "conference", "wins", "losses", "ties")),
        "unknown": (unknown, ("game_id", "teamid", "jersey", "shots", "goals")),
    })
    ties = sorted({gid for t in rows["teams2"] for gid in (t.get("ties") or [])})
    return FinalTables(
        players=sorted(_pick(rows["players2"], PLAYER_COLUMNS), key=lambda r: r["id"]),
        teams=sorted(_pick(rows["teams2"], TEAM_COLUMNS), key=lambda r: r["id"]),
        unknown_jerseys=sorted(
            _pick(rows["unknown"], ("game_id", "teamid", "jersey", "shots", "goals")),
            key=lambda r: (r["game_id"], r["teamid"], r["jersey"]),
        ),
        tied_games=ties,
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


def _pick(rows: list[dict], columns) -> list[dict]:
    return [{c: r.get(c) for c in columns} for r in rows]  # to_json leaves out nulls
