"""The lake in the object store: one Parquet file per counted game under `lake/events/`, and its marker.

Files are written and read with pyarrow's `S3FileSystem` (C++, parallel without the GIL);
listings, deletes and the marker go through the project's boto3 client. Both speak to MinIO in
production and to the embedded moto server (path-style addressing, plain HTTP on loopback).
No Dagster import.

- **One file per game, at a path that depends on the game id only** (`file_name`), so writing
  a game again (a correction, a replay, a backfill, a retried run) replaces its file and the
  lake can never hold a game twice.
- **Atomic:** a file is serialized in memory and sent as one object; S3 makes an object visible
  only once it is complete, so a reader sees the old file or the new one, never half of one.
- pyarrow is imported inside the functions: loading the code location stays fast.
"""

from __future__ import annotations

import functools
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlparse

from sidearm_assets.lake.events import EVENT_COLUMNS, GameEvents, game_event_rows

EVENTS_PREFIX = "lake/events"
# Spark, Drill and pyarrow skip files whose names start with `_` or `.`; every file starts with
# `game-`, and an id with characters that are not safe in every engine's paths is hashed.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
WRITE_THREADS = 8
MARKER_NAME = "_lake.json"


@dataclass(frozen=True)
class LakeLocation:
    """Where the lake lives: the stream bucket's endpoint and credentials, and a key prefix."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    prefix: str = EVENTS_PREFIX

    @classmethod
    def of(cls, store, prefix: str = EVENTS_PREFIX) -> "LakeLocation":
        """From a `GameStreamStore` resource (or anything with the same four fields)."""
        if isinstance(store, LakeLocation):
            return store
        return cls(store.endpoint_url, store.access_key, store.secret_key, store.bucket, prefix)

    @property
    def root(self) -> str:
        """The events folder as pyarrow names it: `bucket/lake/events`."""
        return f"{self.bucket}/{self.prefix.strip('/')}"

    @property
    def url(self) -> str:
        return f"s3://{self.root}/"

    def path(self, game_id: str) -> str:
        return f"{self.root}/{file_name(game_id)}"

    def filesystem(self):
        return _filesystem(self.endpoint_url, self.access_key, self.secret_key)

    def client(self):
        from sidearm_assets.storage import clients

        return clients.s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def key(self, game_id: str) -> str:
        return f"{self.prefix.strip('/')}/{file_name(game_id)}"

    @property
    def marker_key(self) -> str:
        """`lake/_lake.json` beside the events folder: its absence reveals a store that lost the lake."""
        parent = self.prefix.strip("/").rpartition("/")[0]
        return f"{parent}/{MARKER_NAME}" if parent else MARKER_NAME


@functools.lru_cache(maxsize=8)
def _filesystem(endpoint_url: str, access_key: str, secret_key: str):
    from pyarrow import fs

    parsed = urlparse(endpoint_url)
    return fs.S3FileSystem(
        access_key=access_key,
        secret_key=secret_key,
        endpoint_override=parsed.netloc or endpoint_url,
        scheme=parsed.scheme or "https",
        region="us-east-1",
        force_virtual_addressing=False,  # path-style: MinIO and moto on loopback need it
        allow_delayed_open=True,  # a small file is then one PutObject, not a multipart upload
        connect_timeout=5,
        request_timeout=30,
    )


def file_name(game_id: str) -> str:
    """`game-<id>.parquet`; ids with other characters become `gameh-<sha1>-<slug>.parquet`."""
    if _SAFE_ID.match(game_id):
        return f"game-{game_id}.parquet"
    digest = hashlib.sha1(game_id.encode("utf-8")).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", game_id).strip("._-")[:40]
    return f"gameh-{digest}-{slug}.parquet"


def arrow_schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in EVENT_COLUMNS])


def to_parquet_bytes(events: GameEvents) -> bytes:
    """One game's rows as a Parquet file (Snappy: every engine reads it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(list(events.rows), schema=arrow_schema())
    table = table.replace_schema_metadata(
        {"sidearm.game_id": events.game_id, "sidearm.stream_sha256": events.stream_sha256}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class WrittenFile:
    game_id: str
    path: str  # bucket/lake/events/game-<id>.parquet
    rows: int
    bytes: int
    home_score: int
    away_score: int
    stream_sha256: str
    file_etag: str = ""  # MD5 of the bytes: the ETag of a single-part upload


def write_game_events(location: LakeLocation, events: GameEvents) -> WrittenFile:
    """Write (or replace) one game's file: one PutObject, visible whole or not at all.

    Through pyarrow's C++ S3 client, which writes several files in parallel without the GIL
    (boto3 spends milliseconds of Python per request). `file_etag` is the MD5 of the bytes, the
    ETag S3 gives a single-part upload."""
    data = to_parquet_bytes(events)
    path = location.path(events.game_id)
    with location.filesystem().open_output_stream(path, metadata={"Content-Type": "application/vnd.apache.parquet"}) as out:
        out.write(data)
    return WrittenFile(
        events.game_id, path, len(events.rows), len(data), events.home_score, events.away_score, events.stream_sha256,
        hashlib.md5(data).hexdigest(),
    )


def write_files(location: LakeLocation, built: list[GameEvents]) -> list[WrittenFile]:
    """Write the files of `built`, `WRITE_THREADS` at a time."""
    if not built:
        return []
    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(built)), thread_name_prefix="lake-write") as pool:
        return list(pool.map(lambda e: write_game_events(location, e), built))


def listed_files(location: LakeLocation) -> dict[str, str]:
    """Every file in the events folder, by name -> its ETag (one listing request per 1,000 files)."""
    from sidearm_assets.storage import clients

    prefix = location.prefix.strip("/") + "/"
    return {
        o.key[len(prefix):]: o.etag
        for o in clients.list_objects(location.client(), location.bucket, prefix=prefix)
        if "/" not in o.key[len(prefix):]
    }


def delete_files(location: LakeLocation, names: list[str]) -> None:
    """Delete the files `names` of the events folder (a missing one is no error), 1,000 a request."""
    prefix = location.prefix.strip("/") + "/"
    for start in range(0, len(names), 1000):
        part = names[start : start + 1000]
        location.client().delete_objects(
            Bucket=location.bucket, Delete={"Objects": [{"Key": prefix + n} for n in part], "Quiet": True}
        )


def read_marker(location: LakeLocation) -> str | None:
    """The lake id in the marker object, or None when it (or the bucket) is missing."""
    import json

    from botocore.exceptions import ClientError

    try:
        body = location.client().get_object(Bucket=location.bucket, Key=location.marker_key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
            return None
        raise
    try:
        return str(json.loads(body)["lake_id"])
    except (ValueError, KeyError, TypeError):
        return None  # damaged: treated as missing, so the lake is reconciled and the marker rewritten


def write_marker(location: LakeLocation, lake_id: str) -> None:
    import json

    body = json.dumps({"lake_id": lake_id, "files": f"{location.prefix.strip('/')}/"}).encode()
    location.client().put_object(Bucket=location.bucket, Key=location.marker_key, Body=body,
                                 ContentType="application/json")


@dataclass
class SyncReport:
    written: list[WrittenFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # games not written, with the reason

    @property
    def events(self) -> int:
        return sum(w.rows for w in self.written)


def sync_lake(
    store,
    games: list[tuple[str, bytes]],
    *,
    schedule: list[dict],
    teams: list[dict],
    players: list[dict],
    season: int,
) -> SyncReport:
    """Write or replace the lake files of `games` ((game id, stream bytes) of completed games).

    Files only (notebooks, tests): no facts and no `lake_games` row, so `follow.follow_record`
    writes a counted game again from the record whatever this wrote.

    `store` is a `GameStreamStore` (or a `LakeLocation`); `schedule`, `teams` and `players` are
    the `games`, `teams` and `players` rows. A game that is not scheduled or not over is not
    written and is listed in `problems` (its previous file, if any, is left as it was); the
    others are written in parallel. The same game twice in `games` is written once, last wins.
    """
    from sidearm_assets.domain.games import UnscheduledGameError
    from sidearm_assets.lake.events import GameNotOverError

    location = LakeLocation.of(store)
    report = SyncReport()
    latest = dict(games)
    built: list[GameEvents] = []
    for game_id, data in latest.items():
        try:
            built.append(game_event_rows(game_id, data, schedule, teams, players, season))
        except (UnscheduledGameError, GameNotOverError) as exc:
            report.problems.append(f"{game_id}: {exc}")
    report.written = write_files(location, built)
    return report


def lake_files(location: LakeLocation) -> list:
    """Every Parquet file under the events folder (pyarrow `FileInfo`s, sorted by path)."""
    from pyarrow import fs

    infos = location.filesystem().get_file_info(fs.FileSelector(location.root, allow_not_found=True))
    return sorted((i for i in infos if i.type == fs.FileType.File and i.path.endswith(".parquet")), key=lambda i: i.path)


def delete_game_events(location: LakeLocation, game_id: str) -> bool:
    """Remove one game's file; True when there was one."""
    from botocore.exceptions import ClientError

    client = location.client()
    try:
        client.head_object(Bucket=location.bucket, Key=location.key(game_id))
    except ClientError:
        return False
    client.delete_object(Bucket=location.bucket, Key=location.key(game_id))
    return True


def read_events(location: LakeLocation):
    """The whole lake as one Arrow table (small seasons, tests, the notebook)."""
    import pyarrow as pa

    batches = list(iter_event_tables(location))
    return pa.concat_tables(batches) if batches else arrow_schema().empty_table()


READ_THREADS = 16
READ_CHUNK_FILES = 256


def iter_event_tables(location: LakeLocation, chunk_files: int = READ_CHUNK_FILES, paths: list[str] | None = None):
    """The lake as Arrow tables of up to `chunk_files` games each, read with one GET per file.

    A game's file is small (~8 KB), so the cost of reading the lake is the number of requests,
    not bytes: each file is fetched whole by one GET (`open_input_stream`, no HEAD, no separate
    footer read), `READ_THREADS` at a time, then parsed in memory. Chunks keep memory bounded
    by `chunk_files` games whatever the size of the season. `paths`: the files (default: a
    listing of the lake).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem = location.filesystem()
    schema = arrow_schema()

    def fetch(path: str):
        with filesystem.open_input_stream(path) as f:
            return pq.read_table(pa.BufferReader(f.readall()), schema=schema)

    if paths is None:
        paths = [i.path for i in lake_files(location)]
    if not paths:
        return
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(paths)), thread_name_prefix="lake-read") as pool:
        for start in range(0, len(paths), chunk_files):
            yield pa.concat_tables(pool.map(fetch, paths[start : start + chunk_files]))
