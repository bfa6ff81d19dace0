"""One Dagster resource per external system; settings arrive as `EnvVar`s (see settings.py).

The resources are thin: the clients come from `clients.py`, the SQL from `reference_db.py`.
`RESOURCES` is the one place where the project's resources are chosen; the embedded stack and
production differ only in the environment, not here.
"""

from __future__ import annotations

import functools

from dagster import ConfigurableResource

from sidearm_assets import settings
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.settings import setting


class GameStreamStore(ConfigurableResource):
    """The S3 bucket (MinIO in production) holding one stream object per game."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str

    def client(self):
        """boto3, for everything but the hot paths below."""
        return clients.s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def signed(self):
        """The lighter client of the watcher's listing and GET and of `write` (s3http.py)."""
        return _signed_s3(self.endpoint_url, self.access_key, self.secret_key, self.bucket)

    def list_games(self) -> dict[str, clients.ObjectVersion]:
        """Game id -> current object version, from one listing of the bucket's top level (the
        completed-games archive and the lake, under folders, are not listed)."""
        out = {}
        for obj in self.signed().list_objects(top_level_only=True):
            game_id = settings.game_id_from_key(obj.key)
            if game_id is not None:
                out[game_id] = obj
        return out

    def read(self, game_id: str) -> tuple[bytes, clients.ObjectVersion]:
        return self.signed().get_object(settings.key_for_game(game_id))

    def write(self, game_id: str, data: bytes) -> None:
        self.signed().put_object(settings.key_for_game(game_id), data)

    def delete_game(self, game_id: str) -> None:
        """Remove a game's top-level object (`sidearm-games retire`, storage/retire.py)."""
        self.client().delete_object(Bucket=self.bucket, Key=settings.key_for_game(game_id))

    def ensure_bucket(self) -> bool:
        return clients.ensure_bucket(self.client(), self.bucket)

    # The archive of completed games (`completed/<game_id>.txt`, storage/completed_games.py).

    def list_archive(self) -> dict[str, clients.ObjectVersion]:
        """Archived game id -> object version, from one listing of the archive's prefix."""
        out = {}
        for obj in clients.list_objects(self.client(), self.bucket, prefix=settings.ARCHIVE_PREFIX):
            game_id = settings.game_id_from_archive_key(obj.key)
            if game_id is not None:
                out[game_id] = obj
        return out

    def read_archive(self, game_id: str) -> tuple[bytes, clients.ObjectVersion]:
        return clients.get_object(self.client(), self.bucket, settings.archive_key(game_id))

    def archive(self, game_id: str, data: bytes) -> str:
        """Copy a completed game's bytes to its archive key (rewriting the same bytes is harmless);
        returns the archive object's new ETag."""
        resp = self.client().put_object(Bucket=self.bucket, Key=settings.archive_key(game_id), Body=data)
        return str(resp.get("ETag", "")).strip('"')

    def delete_archive(self, game_id: str) -> None:
        self.client().delete_object(Bucket=self.bucket, Key=settings.archive_key(game_id))


class BoxScoreStore(ConfigurableResource):
    """MongoDB database holding the `boxscores` collection (SPEC 5)."""

    uri: str
    database: str
    collection_name: str = "boxscores"

    def collection(self):
        return clients.mongo_client(self.uri)[self.database][self.collection_name]

    def ensure_indexes(self) -> None:
        _ensure_indexes(self.uri, self.database, self.collection_name)

    def upsert(self, doc: dict) -> None:
        """Idempotent write of one box-score document, keyed by its `_id`.

        The replacement carries `_id` itself: MongoDB accepts that, and the embedded nx-27017
        server needs it to keep the id on insert (docs/embedded-stack.md).
        """
        self.ensure_indexes()
        self.collection().replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def delete_superseded(self, game_id: str, seq: int, keep_id) -> int:
        """Delete the game's other documents with a `seq` at or above `seq`: they belong to a stream the
        newest version replaced (a replay from the start, a deleted line), and must never come back
        from the one query (SPEC 5)."""
        result = self.collection().delete_many({"game_id": game_id, "seq": {"$gte": seq}, "_id": {"$ne": keep_id}})
        return result.deleted_count

    def latest_seq(self, game_id: str) -> int | None:
        """The `seq` of the game's newest document (the one query, projected), None when it has none."""
        doc = self.collection().find_one({"game_id": game_id}, sort=[("seq", -1)], projection={"seq": 1})
        return doc["seq"] if doc else None

    def latest(self, game_id: str) -> dict | None:
        """The newest document of a game: one indexed query on (game_id, seq)."""
        return self.collection().find_one({"game_id": game_id}, sort=[("seq", -1)])


@functools.lru_cache(maxsize=16)
def _signed_s3(endpoint_url: str, access_key: str, secret_key: str, bucket: str):
    from sidearm_assets.storage.s3http import SignedS3

    return SignedS3(endpoint_url, access_key, secret_key, bucket)


@functools.lru_cache(maxsize=16)
def _ensure_indexes(uri: str, database: str, collection: str) -> None:
    boxscores = clients.mongo_client(uri)[database][collection]
    boxscores.create_index([("game_id", 1), ("seq", -1)], name="game_id_seq")
    # MongoDB answers the one query from the index above alone. The embedded nx-27017 server uses
    # only single-field indexes: without this one every query of a game scans the collection
    # (20 ms at 4,000 documents, measured; 2 ms with it). `published_at` serves change feeds.
    boxscores.create_index([("game_id", 1)], name="game_id")
    boxscores.create_index([("published_at", 1)], name="published_at")


class ReferenceDatabase(ConfigurableResource):
    """The SQL reference database `sidearmdb` (SQL Server in production, SQLite embedded)."""

    url: str

    def engine(self):
        return _engine(self.url)

    def filing_engine(self):
        """The short-wait engine: on SQLite a statement waits at most 1 s for another writer, so a
        long write lock on sidearmdb never holds a live worker thread (filing completions; the
        version is retried) or a game-over sensor tick (reading the inbox) for long."""
        return _engine(self.url, 1.0)

    def teams(self) -> list[dict]:
        return reference_db.read_rows(self.engine(), reference_db.teams)

    def players(self) -> list[dict]:
        return reference_db.read_rows(self.engine(), reference_db.players)

    def games(self) -> list[dict]:
        return reference_db.read_rows(self.engine(), reference_db.games)


@functools.lru_cache(maxsize=8)
def _engine(url: str, busy_timeout: float = 30.0):
    return reference_db.make_engine(url, busy_timeout=busy_timeout)


def build_resources(resolved: bool = False) -> dict:
    """The project's resources, wired to the settings. For Definitions, values set in the
    environment are passed as `EnvVar`s (read at run time, hidden in the UI) and unset ones fall
    back to embedded defaults; `resolved=True` reads every setting now, for code that uses the
    resources outside Dagster's resource injection (the live sensor, the command-line tools)."""
    field = (lambda s: s.value()) if resolved else setting
    return {
        "gamestreams": GameStreamStore(
            endpoint_url=field(settings.S3_ENDPOINT_URL),
            access_key=field(settings.S3_ACCESS_KEY),
            secret_key=field(settings.S3_SECRET_KEY),
            bucket=field(settings.S3_BUCKET),
        ),
        "boxscores": BoxScoreStore(uri=field(settings.MONGO_URI), database=field(settings.MONGO_DB)),
        "sidearmdb": ReferenceDatabase(url=field(settings.SQL_URL)),
    }
