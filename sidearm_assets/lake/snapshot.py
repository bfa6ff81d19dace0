"""The analytics' read cache: the whole lake as one object, refreshed by each game file's ETag.

Reading the lake costs one request per game file, and on the embedded S3 (moto, a Python
server) a request costs milliseconds of CPU, so a season of 500 games costs seconds per read.
The analytics therefore keep `lake/_cache/events.parquet`: every event row with the file it
came from (`source_file`) and, in its Parquet metadata, the manifest `{file: ETag}` of the
versions it holds. A read lists the lake (ETags come with the listing), takes from the snapshot
the rows of every file whose ETag is unchanged, fetches only new or changed files, drops the
rows of files that are gone, and writes the refreshed snapshot back (one PutObject) when
anything changed. So after a completed game, the analytics read the snapshot and one file.

It is a cache, never the record: the game files are. A snapshot that cannot be read is ignored
(full read), one that cannot be written is reported and skipped. It cannot go stale unnoticed:
a file is reused only when the listing shows the ETag the snapshot recorded, and S3 reads are
strongly consistent, so a fetched file is at least as new as its listed ETag (when newer, the
next read fetches it again). Concurrent writers each write a self-consistent snapshot; the last
one wins. The folder starts with `_`, which Spark, Drill and pyarrow skip when reading `lake/`,
and Drill's `lake.root.events` does not include it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

SNAPSHOT_FOLDER = "_cache"
SOURCE_COLUMN = "source_file"
MANIFEST_KEY = b"sidearm.manifest"


def snapshot_path(location) -> str:
    """`bucket/lake/_cache/events.parquet` for the lake folder `bucket/lake/events`."""
    parent, _, name = location.root.rpartition("/")
    return f"{parent}/{SNAPSHOT_FOLDER}/{name}.parquet"


def list_versions(location) -> dict[str, str]:
    """Every game file of the lake -> its ETag, from one listing request per 1000 files."""
    from sidearm_assets.storage import clients

    client = clients.s3_client(location.endpoint_url, location.access_key, location.secret_key)
    prefix = location.prefix.strip("/") + "/"
    out: dict[str, str] = {}
    token = None
    while True:
        kwargs = {"Bucket": location.bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        page = client.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(".parquet") and "/" not in key[len(prefix):]:
                out[f"{location.bucket}/{key}"] = obj["ETag"].strip('"')
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


@dataclass
class LakeRead:
    table: object  # pyarrow Table with the lake's columns
    versions: dict[str, str]  # every game file read -> the ETag listed
    fetched: list[str] = field(default_factory=list)  # files read from the lake this time
    reused: int = 0  # files whose rows came from the snapshot
    snapshot_written: bool = False
    snapshot_problem: str | None = None  # why the snapshot was not read or not written


def _with_source(table, paths_of_rows):
    import pyarrow as pa

    return table.append_column(SOURCE_COLUMN, pa.array(paths_of_rows, pa.string()))


def read_snapshot(location):
    """(table with `source_file`, manifest) or (None, {}) when there is none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with location.filesystem().open_input_stream(snapshot_path(location)) as f:
            data = f.readall()
    except FileNotFoundError:
        return None, {}
    table = pq.read_table(pa.BufferReader(data))
    manifest = json.loads((table.schema.metadata or {}).get(MANIFEST_KEY, b"{}"))
    return table, manifest


def write_snapshot(location, table, manifest: dict[str, str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata({MANIFEST_KEY: json.dumps(manifest, sort_keys=True).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    with location.filesystem().open_output_stream(snapshot_path(location)) as out:
        out.write(sink.getvalue())


def read_lake(location) -> LakeRead:
    """The whole lake as one Arrow table, through the snapshot (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from sidearm_assets.lake import store

    schema = store.arrow_schema()
    versions = list_versions(location)
    problem = None
    try:
        snapshot, manifest = read_snapshot(location)
        if snapshot is not None and snapshot.schema.remove_metadata() != schema.append(pa.field(SOURCE_COLUMN, pa.string())):
            snapshot, manifest, problem = None, {}, "snapshot has another schema: ignored, lake read whole"
    except Exception as exc:  # a damaged cache is no reason to fail: read the lake instead
        snapshot, manifest, problem = None, {}, f"snapshot unreadable ({exc}): lake read whole"
    reusable = sorted(p for p, etag in versions.items() if manifest.get(p) == etag)
    to_fetch = sorted(p for p in versions if manifest.get(p) != versions[p])

    parts = []
    if snapshot is not None and reusable:
        kept = snapshot.filter(pc.is_in(snapshot[SOURCE_COLUMN], value_set=pa.array(reusable, pa.string())))
        parts.append(kept.replace_schema_metadata(None))
    if to_fetch:
        parts.extend(_fetch_each(location, to_fetch))
    table = pa.concat_tables(parts) if parts else schema.append(pa.field(SOURCE_COLUMN, pa.string())).empty_table()

    result = LakeRead(table.drop_columns([SOURCE_COLUMN]), versions, to_fetch, len(reusable), False, problem)
    changed = bool(to_fetch) or set(manifest) != set(versions)
    if changed:
        try:
            write_snapshot(location, table, {p: versions[p] for p in versions})
            result.snapshot_written = True
        except Exception as exc:
            result.snapshot_problem = f"snapshot not written ({exc}); the next read fetches the files again"
    return result


def _fetch_each(location, paths: list[str]) -> list:
    """Each file's table with its `source_file` column, fetched in parallel (one GET each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from concurrent.futures import ThreadPoolExecutor

    from sidearm_assets.lake import store

    filesystem = location.filesystem()
    schema = store.arrow_schema()

    def fetch(path: str):
        with filesystem.open_input_stream(path) as f:
            table = pq.read_table(pa.BufferReader(f.readall()), schema=schema)
        return _with_source(table.replace_schema_metadata(None), [path] * table.num_rows)

    with ThreadPoolExecutor(max_workers=min(store.READ_THREADS, len(paths)), thread_name_prefix="lake-read") as pool:
        return list(pool.map(fetch, paths))
