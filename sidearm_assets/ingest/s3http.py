"""The three S3 calls the ingest API makes (GET, conditional PUT, HEAD bucket), signed with
botocore's SigV4 signer and sent over one keep-alive connection per thread.

Why not boto3's client: its request pipeline (parameter validation, event hooks, response
parsing) cost ~3 ms of CPU per call on this machine, more than the API's own work; signing
alone costs a small part of that (bench/ingest_load.py prints CPU ms per request). What goes
over the wire is the same SigV4-signed request boto3 sends, path-style as MinIO and moto want.
"""

from __future__ import annotations

import http.client
import re
import threading
from urllib.parse import quote, urlsplit

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


class SignedS3:
    def __init__(self, endpoint_url: str, access_key: str, secret_key: str, bucket: str,
                 region: str = "us-east-1", timeout: float = 5.0):
        from botocore.auth import S3SigV4Auth
        from botocore.credentials import Credentials

        url = urlsplit(endpoint_url)
        self.scheme, self.netloc = url.scheme or "http", url.netloc
        self.base_path = url.path.rstrip("/")
        self.bucket = bucket
        self.timeout = timeout
        self._signer = S3SigV4Auth(Credentials(access_key, secret_key), "s3", region)
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = kind(self.netloc, timeout=self.timeout)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _send(self, method: str, key: str | None, body: bytes = b"", headers: dict | None = None, retry: bool = False):
        from botocore.awsrequest import AWSRequest

        path = f"{self.base_path}/{self.bucket}" + (f"/{quote(key, safe='/')}" if key is not None else "")
        if key is not None and not SAFE_KEY.fullmatch(key):
            raise ValueError(f"unexpected object key {key!r}")
        request = AWSRequest(method=method, url=f"{self.scheme}://{self.netloc}{path}", data=body,
                             headers=dict(headers or {}))
        self._signer.add_auth(request)
        for attempt in range(2 if retry else 1):
            conn = self._connection()
            try:
                conn.request(method, path, body=body or None, headers=dict(request.headers.items()))
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (OSError, http.client.HTTPException):
                # A keep-alive connection the server closed meanwhile: reads try once more on a new
                # one; a write's outcome is unknown and goes back to the caller, who checks.
                self._drop_connection()
                if attempt or not retry:
                    raise
        raise AssertionError("unreachable")

    def read(self, key: str):
        from sidearm_assets.ingest.service import StoredObject

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

    def head_bucket(self) -> None:
        status, _, body = self._send("HEAD", None, retry=True)
        if status != 200:
            raise S3Error("HEAD", self.bucket, status, body)
