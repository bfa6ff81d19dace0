"""The S3 calls on the hot paths, SigV4-signed (`storage/sigv4.py`) and sent over one
connection per thread (kept open where the server allows): the live watcher's listing and GET, the league's PUT, and the
ingest API's GET, conditional PUT and HEAD bucket.

Why not boto3's client: its request pipeline (parameter validation, event hooks, response
parsing, dateutil for every listed key's date) cost ~1 ms of CPU per GET or PUT and ~12 ms per
200-key listing on this machine, against ~0.4 ms and ~3 ms here (bench/ingest_load.py prints CPU
ms per request; docs/live-latency.md has the watcher's figures). What goes over the wire is the
same SigV4-signed request boto3 sends, path-style as MinIO and moto want. Everything else
(buckets, the archive, the lake) uses boto3 through `clients.s3_client`.
"""

from __future__ import annotations

import http.client
import re
import select
import threading
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode, urlsplit

from sidearm_assets.retrying import retry_call
from sidearm_assets.storage.clients import ObjectVersion
from sidearm_assets.storage.objects import StoredObject
from sidearm_assets.storage.sigv4 import SigV4

SAFE_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,1024}")


class S3Error(RuntimeError):
    """An answer that is neither success nor a condition that failed."""

    def __init__(self, method: str, key: str, status: int, body: bytes):
        code = re.search(rb"<Code>([^<]+)</Code>", body or b"")
        self.status = status
        self.code = code.group(1).decode() if code else str(status)
        super().__init__(f"S3 {method} {key}: HTTP {status} {self.code}")


class Conflict(Exception):
    """The object changed since it was read (HTTP 412)."""


def _dropped(sock) -> bool:
    """Whether an idle connection's socket has something to read: the server's close (EOF) or a
    stray byte; either way it cannot carry the next request."""
    poller = select.poll()  # not select.select: no limit on the descriptor's number
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class SignedS3:
    def __init__(self, endpoint_url: str, access_key: str, secret_key: str, bucket: str,
                 region: str = "us-east-1", timeout: float = 5.0):
        url = urlsplit(endpoint_url)
        self.scheme, self.netloc = url.scheme or "http", url.netloc
        self.base_path = url.path.rstrip("/")
        self.bucket = bucket
        self.timeout = timeout
        default_port = 443 if self.scheme == "https" else 80
        # The Host header http.client sends (no default port), which the signature covers.
        self.host = url.hostname + (f":{url.port}" if url.port and url.port != default_port else "")
        self._signer = SigV4(access_key, secret_key, region)
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            # The server closed the idle keep-alive connection (it expires them): a request sent on
            # it would fail after the fact, and for a write nobody could tell whether it landed.
            conn.close()
        if conn is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = kind(self.netloc, timeout=self.timeout)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _send(self, method: str, key: str | None, body: bytes = b"", headers: dict | None = None,
              retry: bool = False, query: dict[str, str] | None = None):
        path = f"{self.base_path}/{self.bucket}" + (f"/{quote(key, safe='/')}" if key is not None else "")
        if key is not None and not SAFE_KEY.fullmatch(key):
            raise ValueError(f"unexpected object key {key!r}")
        canonical_query = urlencode(sorted(query.items()), quote_via=quote, safe="") if query else ""
        signed = self._signer.sign(method, self.host, path, canonical_query, dict(headers or {}), body)
        if canonical_query:
            path += "?" + canonical_query

        def attempt():
            conn = self._connection()
            try:
                conn.request(method, path, body=body or None, headers=signed)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (OSError, http.client.HTTPException):
                self._drop_connection()
                raise

        # A keep-alive connection the server closed meanwhile: reads try once more, at once, on a
        # new one; a write's outcome is unknown and goes back to the caller, who checks.
        return retry_call(attempt, [0.0] if retry else [], retry_on=(OSError, http.client.HTTPException))

    def read(self, key: str) -> StoredObject:
        status, headers, body = self._send("GET", key, retry=True)
        if status == 404:
            return StoredObject(b"", None)
        if status != 200:
            raise S3Error("GET", key, status, body)
        etag, metadata = "", {}
        for name, value in headers:
            lower = name.lower()
            if lower == "etag":
                etag = value.strip('"')
            elif lower.startswith("x-amz-meta-"):
                metadata[lower[len("x-amz-meta-"):]] = value
        return StoredObject(body, etag, metadata)

    def put(self, key: str, data: bytes, etag: str | None, metadata: dict[str, str], content_type: str) -> str:
        """Store `data` only if the object is still version `etag` (absent when None); Conflict otherwise."""
        headers = {"Content-Type": content_type, **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
        headers.update({"If-Match": f'"{etag}"'} if etag else {"If-None-Match": "*"})
        status, resp_headers, body = self._send("PUT", key, data, headers)
        if status in (409, 412):
            raise Conflict(key)
        if status == 404 and etag:  # If-Match on an object deleted meanwhile
            raise Conflict(key)
        if status != 200:
            raise S3Error("PUT", key, status, body)
        return next(v for n, v in resp_headers if n.lower() == "etag").strip('"')

    def get_object(self, key: str) -> tuple[bytes, ObjectVersion]:
        """The object's bytes and the version they are (from the same response, so they agree)."""
        status, headers, body = self._send("GET", key, retry=True)
        if status != 200:
            raise S3Error("GET", key, status, body)
        found = {name.lower(): value for name, value in headers}
        modified = parsedate_to_datetime(found["last-modified"]).astimezone(timezone.utc)
        return body, ObjectVersion(key, found["etag"].strip('"'), modified, len(body))

    def put_object(self, key: str, data: bytes, content_type: str = "text/plain; charset=utf-8") -> str:
        """An unconditional PUT (the simulator's and the league's writes); returns the new ETag."""
        status, headers, body = self._send("PUT", key, data, {"Content-Type": content_type})
        if status != 200:
            raise S3Error("PUT", key, status, body)
        return next(v for n, v in headers if n.lower() == "etag").strip('"')

    def list_objects(self, top_level_only: bool = False) -> list[ObjectVersion]:
        """Every object of the bucket (ListObjectsV2, 1000 keys a page); `top_level_only` leaves out
        keys under a folder (S3 returns each folder as one common prefix)."""
        out: list[ObjectVersion] = []
        token = None
        while True:
            query = {"list-type": "2", **({"delimiter": "/"} if top_level_only else {}),
                     **({"continuation-token": token} if token else {})}
            status, _, body = self._send("GET", None, retry=True, query=query)
            if status != 200:
                raise S3Error("LIST", self.bucket, status, body)
            root = ET.fromstring(body)
            ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
            for item in root.iter(f"{ns}Contents"):
                out.append(ObjectVersion(
                    item.findtext(f"{ns}Key"),
                    item.findtext(f"{ns}ETag").strip('"'),
                    _iso_utc(item.findtext(f"{ns}LastModified")),
                    int(item.findtext(f"{ns}Size")),
                ))
            if root.findtext(f"{ns}IsTruncated") != "true":
                return out
            token = root.findtext(f"{ns}NextContinuationToken")

    def head_bucket(self) -> None:
        status, _, body = self._send("HEAD", None, retry=True)
        if status != 200:
            raise S3Error("HEAD", self.bucket, status, body)


def _iso_utc(text: str) -> datetime:
    """ListObjectsV2's `2026-11-27T10:33:15.000Z` as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
