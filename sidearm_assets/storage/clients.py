"""Clients for the external systems, built from plain settings (no Dagster import).

The Dagster resources, the simulator and the embedded stack all get their S3 and MongoDB
clients here. boto3 and pymongo are imported inside the functions so that loading the code
location stays fast. Clients are cached per settings: the sensor's code server reuses one
connection pool across ticks instead of reconnecting every poll.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class ObjectVersion:
    """One version of a game object: ETag plus LastModified, since replaying an identical game
    later rewrites identical bytes (same ETag) that must still count as new versions."""

    key: str
    etag: str
    last_modified: datetime
    size: int

    @property
    def version(self) -> str:
        # Whole seconds in UTC: a GET's Last-Modified header has no fractions while MinIO's
        # listings do, and both must name the same version.
        moment = self.last_modified.astimezone(timezone.utc).replace(microsecond=0)
        return f"{self.etag}@{moment.isoformat()}"


@functools.lru_cache(maxsize=8)
def s3_client(endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1"):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},  # MinIO and moto on loopback need path-style URLs
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
        ),
    )


def ensure_bucket(client, bucket: str) -> bool:
    """Create `bucket` if missing; True when it was created."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    client.create_bucket(Bucket=bucket)
    return True


def list_objects(client, bucket: str, top_level_only: bool = False, prefix: str = "") -> list[ObjectVersion]:
    """Every object in the bucket (under `prefix`), one listing request per 1000 keys.

    `top_level_only` leaves out keys under a folder (`completed/`, `lake/`): S3 returns them as one
    common prefix each, so their number never adds to the listing.
    """
    out: list[ObjectVersion] = []
    token = None
    while True:
        kwargs = {
            "Bucket": bucket,
            **({"Prefix": prefix} if prefix else {}),
            **({"Delimiter": "/"} if top_level_only else {}),
            **({"ContinuationToken": token} if token else {}),
        }
        page = client.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            out.append(
                ObjectVersion(obj["Key"], obj["ETag"].strip('"'), obj["LastModified"], obj["Size"])
            )
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def get_object(client, bucket: str, key: str) -> tuple[bytes, ObjectVersion]:
    """The object's bytes and the version they are (taken from the same response, so they agree)."""
    resp = client.get_object(Bucket=bucket, Key=key)
    body = resp["Body"].read()
    return body, ObjectVersion(key, resp["ETag"].strip('"'), resp["LastModified"], len(body))


@functools.lru_cache(maxsize=8)
def mongo_client(uri: str, timeout_ms: int = 3000):
    import pymongo

    return pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, tz_aware=True
    )
