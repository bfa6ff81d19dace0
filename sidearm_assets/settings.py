"""Every setting the project reads, in one place.

Each setting is an environment variable with an embedded-stack default, so the same code runs
against the embedded stack (`sidearm-local up`) and against production (docker-compose.yaml):
only the environment differs. Dagster resources receive them as `EnvVar`s (see `setting`), so
values are read at run time and secrets never appear in the Dagster UI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    secret: bool = False

    def value(self, environ: dict[str, str] | None = None) -> str:
        env = os.environ if environ is None else environ
        return env.get(self.name) or self.default


S3_ENDPOINT_URL = Setting(
    "SIDEARM_S3_ENDPOINT_URL", "http://127.0.0.1:9000", "S3 endpoint (MinIO in production)"
)
S3_ACCESS_KEY = Setting("SIDEARM_S3_ACCESS_KEY", "sidearm", "S3 access key")
S3_SECRET_KEY = Setting(
    "SIDEARM_S3_SECRET_KEY", "sidearm-local-only", "S3 secret key", secret=True
)
S3_BUCKET = Setting("SIDEARM_S3_BUCKET", "gamestreams", "bucket holding one .txt object per game")
MONGO_URI = Setting(
    "SIDEARM_MONGO_URI", "mongodb://127.0.0.1:27017", "MongoDB URI (may hold credentials)", secret=True
)
MONGO_DB = Setting("SIDEARM_MONGO_DB", "sidearm", "MongoDB database holding `boxscores`")
SQL_URL = Setting(
    "SIDEARM_SQL_URL",
    "sqlite:///.sidearm/sidearmdb.sqlite",
    "SQLAlchemy URL of the reference database sidearmdb (may hold credentials)",
    secret=True,
)
SPARK_MASTER = Setting("SIDEARM_SPARK_MASTER", "local[*]", "Spark master for the final tables")
SPARK_REMOTE = Setting(
    "SIDEARM_SPARK_REMOTE",
    "",
    "Spark Connect server for the final tables (sc://host:port); empty: a local Spark session in the run",
)
SEASON = Setting(
    "SIDEARM_SEASON", "2026", "season (a year) the lake labels each completed game's events with (docs/lake.md)"
)
DELAY = Setting("DELAY", "0.25", "simulator: real seconds per game second")
LIVE_MODE = Setting(
    "SIDEARM_LIVE_MODE", "watch", "live sensor: `watch` (a watcher publishes at once) or `runs` (a run per version)"
)
LIVE_POLL_SECONDS = Setting(
    "SIDEARM_LIVE_POLL_SECONDS", "0.05",
    "live watcher: shortest pause between two listings (it grows with the listing's own time)",
)
LIVE_WORKERS = Setting("SIDEARM_LIVE_WORKERS", "16", "live watcher: games read and published in parallel")
LIVE_MAX_OBJECT_BYTES = Setting(
    "SIDEARM_LIVE_MAX_OBJECT_BYTES", str(1 << 20),
    "live watcher: a game object larger than this is not read (reported, skipped until it changes)",
)
LIVE_EVENTS_PER_TICK = Setting(
    "SIDEARM_LIVE_EVENTS_PER_TICK", "30",
    "live sensor: about how many runless events one tick hands the daemon (latest versions, finals first)",
)

INGEST_TOKENS = Setting(
    "SIDEARM_INGEST_TOKENS", "",
    "sidearm-ingest: tokens, comma-separated <scope>=<token> with scope game:<game_id> or game:* "
    "(official scorer), team:<team_id> (that team's shots only) or read:<name> (read-only); "
    "empty accepts no request but /healthz (docs/ingest.md)",
    secret=True,
)
INGEST_VERIFY_WRITES = Setting(
    "SIDEARM_INGEST_VERIFY_WRITES", "0",
    "sidearm-ingest: read each write back (1) for an S3 server whose conditional put is not atomic "
    "(plain moto_server); MinIO, S3 and the embedded server (local_s3) check and store as one step (0)",
)
WEB_PUSH_POLL_SECONDS = Setting(
    "SIDEARM_WEB_PUSH_POLL_SECONDS", "0.1",
    "sidearm-web: how often the one watcher per open game reads the game's latest document",
)

ALL_SETTINGS: tuple[Setting, ...] = (
    S3_ENDPOINT_URL,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    S3_BUCKET,
    MONGO_URI,
    MONGO_DB,
    SQL_URL,
    SPARK_MASTER,
    SPARK_REMOTE,
    SEASON,
    DELAY,
    LIVE_MODE,
    LIVE_POLL_SECONDS,
    LIVE_WORKERS,
    LIVE_MAX_OBJECT_BYTES,
    LIVE_EVENTS_PER_TICK,
    INGEST_TOKENS,
    INGEST_VERIFY_WRITES,
    WEB_PUSH_POLL_SECONDS,
)

# The game whose object is `gamestream.txt`; SPEC 5 gives it integer document ids (the domain's constant).
from sidearm_assets.domain.games import DEFAULT_GAME_ID  # noqa: E402
GAME_KEY_SUFFIX = ".txt"


def setting(s: Setting):
    """What a resource field receives: an `EnvVar` when the variable is set, else the default.

    The embedded defaults hold no secret, so showing them is harmless; a value that is set is
    always passed as an `EnvVar` and read only at run time.
    """
    from dagster import EnvVar

    return EnvVar(s.name) if os.environ.get(s.name) else s.default


def game_id_from_key(key: str) -> str | None:
    """`gamestream.txt` -> `gamestream`; keys that are not games (no `.txt`, in a folder) -> None."""
    if not key.endswith(GAME_KEY_SUFFIX) or "/" in key:
        return None
    game_id = key[: -len(GAME_KEY_SUFFIX)]
    return game_id or None


def key_for_game(game_id: str) -> str:
    return f"{game_id}{GAME_KEY_SUFFIX}"


# The archive of completed games (storage/completed_games.py): `completed/<game_id>.txt` in the
# same bucket. Keys under a folder are not games for the live sensor (`game_id_from_key`).
ARCHIVE_PREFIX = "completed/"


def archive_key(game_id: str) -> str:
    return f"{ARCHIVE_PREFIX}{key_for_game(game_id)}"


def game_id_from_archive_key(key: str) -> str | None:
    if not key.startswith(ARCHIVE_PREFIX):
        return None
    return game_id_from_key(key[len(ARCHIVE_PREFIX):])
