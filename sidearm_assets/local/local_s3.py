"""The embedded stack's S3 server: moto's S3 backend served on loopback, and nothing else.

`moto_server` serves every AWS service moto emulates. Per request it finds the service from the
Host header (scanning moto's package folders on disk) and logs a line. At game-day load (200 games:
~100 PUTs and ~100 GETs a second, a listing every few tenths of a second) that server was the
busiest process on the machine. This one serves the same S3 API from the same backend (moto's
own Flask app for S3) without the service lookup and the log line (about a fifth less CPU per
request, docs/live-latency.md), on cheroot, CherryPy's production WSGI server: a fixed pool of
worker threads and keep-alive connections. Werkzeug's development server answers every request
with `Connection: close` and starts a thread per connection: measured on 4 clients' conditional
PUT + GET pairs, 0.91 ms of CPU per request against cheroot's 0.66 ms, and with keep-alive the
clients (the watcher, the ingest API) do not open a TCP connection per request. pyarrow's
S3 client (the lake) works against it, including its empty PUTs (test_lake*.py), which hung on
waitress. Objects stay in memory, as with `moto_server`.

The pipeline's hot requests skip moto's request model (`PlainObjects`): a GET or HEAD of an
existing key, a PUT whose condition holds and a one-page ListObjectsV2 are answered straight
from moto's backend, with the headers and XML moto's app sends (`test_local_s3.py` compares them
answer by answer). bench/ingest_load.py: 2.15-2.22 ms of S3-server CPU per post through moto's
app, 1.34-1.35 ms with the object requests answered directly, 1.03-1.08 ms with the listings too
(against 1.42-1.44 in the same hour without them). Everything else, errors included, is moto's
app as before.

Before it listens, the server runs each kind of request once in-process (`warm_up`): moto builds
much of a request kind's machinery on first use, and 50 scorers' first posts right after start
waited 126-850 ms for it (docs/ingest.md).

Conditional writes are made atomic here. moto checks `If-Match` / `If-None-Match` and then
stores, without a lock in between, so two conditional PUTs racing on one key could both pass;
S3 and MinIO check and store as one step, and the ingest API relies on that (docs/ingest.md).
`AtomicWrites` serializes the requests to one object key (striped locks), which gives the embedded
server the same guarantee (`test_s3http.py` races 8 conditional PUTs of 4 MiB: exactly one wins),
and S3's read-after-write: a GET or HEAD of a key being replaced answers the old or the new object
(moto alone answered 500 to some GETs racing a PUT of the same key). Bucket-level requests
(listings) take no lock.

Run: `python -m sidearm_assets.local.local_s3 --host 127.0.0.1 --port 9000` (`local_stack` does).
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import os
import re
import threading
import zlib
from urllib.parse import parse_qsl

class AtomicWrites:
    """WSGI middleware: requests to the same object key run one at a time (a write checks and
    stores together; a read sees a whole object); bucket-level requests pass through."""

    def __init__(self, app, stripes: int = 64):
        self.app = app
        self.locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "/" not in path.strip("/"):  # "/bucket" or "/": listings, bucket operations
            return self.app(environ, start_response)
        with self.locks[zlib.crc32(path.encode("utf-8", "surrogateescape")) % len(self.locks)]:
            result = self.app(environ, start_response)
            try:
                body = list(result)  # the store happens while the response is produced: inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return body


# Request headers a plain object read or write may carry and still take the direct path; any other
# header (ranges, checksums, encryption, tagging, ACLs, copies, locks, other conditions...) sends
# the request through moto's full handling.
_PLAIN_HEADERS = frozenset({
    "HTTP_HOST", "HTTP_AUTHORIZATION", "HTTP_X_AMZ_DATE", "HTTP_X_AMZ_CONTENT_SHA256", "HTTP_USER_AGENT",
    "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_CONNECTION", "HTTP_AMZ_SDK_INVOCATION_ID", "HTTP_AMZ_SDK_REQUEST",
    "CONTENT_LENGTH", "CONTENT_TYPE",
})
_PLAIN_WRITE_HEADERS = _PLAIN_HEADERS | {"HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_EXPECT"}
_PLAIN_KEY = re.compile(r"/([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/([A-Za-z0-9_.\-/]{1,1024})")
_PLAIN_BUCKET = re.compile(r"/([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/?")
_LIST_PARAMS = frozenset({"list-type", "prefix", "delimiter"})
_LISTED_NAME = re.compile(r"[A-Za-z0-9_.\-/]*")  # written into the XML as they are: nothing to escape
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]+)/")


class PlainObjects:
    """WSGI middleware: a plain GET, HEAD or PUT of one object, or a one-page listing, goes
    straight to moto's S3 backend.

    moto's Flask app parses every request into its general model (querystring, headers, body,
    action, region, account) and serializes a response through its AWS specs: about 1 ms of CPU
    per object request, the embedded stack's busiest process under a game day's writes and reads.
    The requests the pipeline sends on its hot paths are the simplest S3 has: a GET or HEAD of a
    key that exists, a PUT of bytes with user metadata and an optional `If-Match` /
    `If-None-Match: *` that holds, a ListObjectsV2 that fits one page. Those are answered here from
    the same backend, with the headers and XML moto sends (`test_local_s3.py` compares the two
    answer by answer). Everything else (a missing key, a failed condition, any other query, a
    range, any header not in the lists above, a bucket with versioning, encryption, notifications,
    CORS rules or object lock, a virtual-host-style address) goes to moto, which answers it,
    errors included, as before. Runs inside `AtomicWrites`, so a
    condition is checked and the object stored under the key's lock."""

    def __init__(self, app):
        self.app = app
        from moto.utilities.utils import get_partition
        from moto.iam.models import get_account_id_from
        from moto.s3.models import s3_backends
        from moto.s3.utils import metadata_from_headers
        from moto.settings import get_s3_default_max_keys

        self._backends, self._partition, self._account = s3_backends, get_partition, get_account_id_from
        self._metadata = metadata_from_headers
        self._max_keys = get_s3_default_max_keys

    def __call__(self, environ, start_response):
        answer = self._plain(environ)
        if answer is None:
            return self.app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body]

    def _plain(self, environ):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_URI", path).split("?", 1)[0] != path:
            return None  # an escaped or unusual key: moto decodes it
        if method == "GET" and environ.get("QUERY_STRING"):
            return self._listing(environ, path)
        found = _PLAIN_KEY.fullmatch(path)
        if method not in ("GET", "HEAD", "PUT") or environ.get("QUERY_STRING") or found is None:
            return None
        stores = self._stores(environ, found.group(1), _PLAIN_WRITE_HEADERS if method == "PUT" else _PLAIN_HEADERS,
                              metadata=method == "PUT")
        if stores is None:
            return None
        backend, bucket = stores
        key_name = found.group(2)
        existing = bucket.keys.get(key_name)
        if method == "PUT":
            return self._put(environ, backend, bucket.name, key_name, existing)
        if existing is None or existing.storage_class != "STANDARD" or existing.multipart:
            return None
        existing.advance()
        headers = {**existing.response_dict, **existing.metadata, "Accept-Ranges": "bytes"}
        body = existing.value
        return "200 OK", self._headers(headers), b"" if method == "HEAD" else body

    def _stores(self, environ, bucket_name: str, allowed: frozenset, metadata: bool = False):
        """(moto's backend, the bucket) for a request this path may answer, else None."""
        for name in environ:
            if (name.startswith("HTTP_") or name.startswith("CONTENT_")) and name not in allowed \
                    and not (metadata and name.startswith("HTTP_X_AMZ_META_")):
                return None
        if environ.get("HTTP_X_AMZ_CONTENT_SHA256", "").startswith("STREAMING"):
            return None  # aws-chunked bodies: moto decodes them
        host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
        if host not in ("localhost", "127.0.0.1") and not host.replace(".", "").isdigit():
            return None  # a name could be a virtual-host-style bucket address
        credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if credential is None or "MOTO_ACCOUNT_ID" in os.environ:
            return None
        try:
            backend = self._backends[self._account(credential.group(1))][self._partition(credential.group(2))]
            bucket = backend.buckets.get(bucket_name)
        except Exception:  # noqa: BLE001 - moto answers whatever this was
            return None
        if bucket is None or bucket.is_versioned or bucket.encryption or bucket.object_lock_enabled \
                or bucket.notification_configuration or bucket.cors:
            return None
        return backend, bucket

    def _listing(self, environ, path):
        """A ListObjectsV2 of one page (`list-type=2`, optionally `prefix` and `delimiter`): the
        live watcher's listing, several a second. moto selects and orders the keys; the XML is
        written here as moto's serializer writes it. Anything else (a continuation, a second
        page, a name that would need escaping, a checksum or storage class to show) is moto's."""
        found = _PLAIN_BUCKET.fullmatch(path)
        if found is None:
            return None
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        names = [name for name, _ in params]
        query = dict(params)
        if len(set(names)) != len(names) or not set(names) <= _LIST_PARAMS or query.get("list-type") != "2":
            return None
        stores = self._stores(environ, found.group(1), _PLAIN_HEADERS)
        if stores is None:
            return None
        backend, bucket = stores
        prefix, delimiter = query.get("prefix") or None, query.get("delimiter") or None
        max_keys = int(self._max_keys())
        try:
            listed, truncated, _ = backend.list_objects_v2(bucket, prefix, delimiter, None, None, max_keys)
        except Exception:  # noqa: BLE001 - moto answers whatever this was
            return None
        if truncated or not _LISTED_NAME.fullmatch(prefix or "") or not _LISTED_NAME.fullmatch(delimiter or ""):
            return None
        contents, folders = [], []
        for item in listed:
            if isinstance(item, str):
                if not _LISTED_NAME.fullmatch(item):
                    return None
                folders.append(f"<CommonPrefixes><Prefix>{item}</Prefix></CommonPrefixes>")
                continue
            if not _LISTED_NAME.fullmatch(item.name) or item.storage_class != "STANDARD" or item.checksum_algorithm:
                return None
            contents.append(f"<Contents><Key>{item.name}</Key><LastModified>{item.last_modified_ISO8601}</LastModified>"
                            f"<ETag>{item.etag}</ETag><Size>{item.size}</Size><StorageClass>STANDARD</StorageClass>"
                            f"</Contents>")
        body = ('<?xml version="1.0" encoding="utf-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                "<IsTruncated>false</IsTruncated>" + "".join(contents) + f"<Name>{bucket.name}</Name>"
                + (f"<Prefix>{prefix}</Prefix>" if prefix else "<Prefix/>")
                + (f"<Delimiter>{delimiter}</Delimiter>" if delimiter else "")
                + f"<MaxKeys>{max_keys}</MaxKeys>" + "".join(folders)
                + f"<KeyCount>{len(contents) + len(folders)}</KeyCount></ListBucketResult>").encode()
        headers = [("Content-Type", "application/xml"), ("server", "amazon.com"), ("Content-Length", str(len(body))),
                   ("Access-Control-Allow-Origin", "*")]
        return "200 OK", headers, body

    def _put(self, environ, backend, bucket_name, key_name, existing):
        if_match, if_none_match = environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None and (if_none_match != "*" or existing is not None):
            return None
        if if_match is not None and (existing is None or if_match.replace('"', "") != existing.etag.replace('"', "")):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:  # a client gone mid-body: moto answers it, from the bytes that came
            environ["wsgi.input"] = io.BytesIO(body)
            return None
        headers = {name[5:].replace("_", "-").lower(): value for name, value in environ.items() if name.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        key = backend.put_object(bucket_name, key_name, body)
        key.set_metadata(self._metadata(headers))
        key.set_acl(backend.get_bucket(bucket_name).acl)
        backend.tagger.delete_all_tags_for_resource(key.arn)  # a new object has no tags (moto's put does the same)
        answer = key.response_dict
        answer.pop("content-length", None)
        answer["Content-Type"] = "text/html; charset=utf-8"  # what moto's Flask app says of its empty body
        return "200 OK", self._headers(answer, content_length="0"), b""

    @staticmethod
    def _headers(headers: dict, content_length: str | None = None) -> list[tuple[str, str]]:
        out = [(str(k), str(v)) for k, v in headers.items() if k.lower() != "content-length"]
        length = content_length if content_length is not None else headers.get("content-length")
        if length is not None:
            out.append(("Content-Length", str(length)))
        out.append(("Access-Control-Allow-Origin", "*"))
        return out


WARM_UP_BUCKET = "sidearm-local-s3-warm-up"


def warm_up(app) -> None:
    """Run the requests of a game day once through the app before serving, in-process.

    moto builds much of a request kind's machinery on its first use (measured: the first 50
    conditional PUTs and missing-key GETs after start, from 50 scorers at once, waited 126 ms at
    the median and 269 ms at most; the next 50 waited 11 and 26 ms). The warm-up creates a
    scratch bucket, does each kind of read and write the pipeline sends (including a failed
    condition and a missing key), and removes the bucket again."""
    from werkzeug.test import Client

    client = Client(app)
    # Signed-looking, as every real client's request is: moto answers an anonymous read of a
    # private object with 403 (it does not check signatures unless told to).
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=warm-up/20260101/us-east-1/s3/aws4_request, "
                               "SignedHeaders=host, Signature=0"}
    base = f"/{WARM_UP_BUCKET}"
    game = f"{base}/game.txt"
    calls = [
        ("PUT", base, {}, 200),
        ("GET", f"{base}/missing.txt", {}, 404),
        ("PUT", game, {"If-None-Match": "*", "x-amz-meta-warm": "1"}, 200),
        ("PUT", game, {"If-None-Match": "*"}, 412),
        ("PUT", game, {"If-Match": '"0"'}, 412),
        ("PUT", game, {"If-Match": "<etag>"}, 200),
        ("HEAD", game, {}, 200),
        ("GET", game, {}, 200),
        ("GET", f"{base}?list-type=2&prefix=", {}, 200),
        ("GET", f"{base}?prefix=", {}, 200),
        ("DELETE", game, {}, 204),
        ("DELETE", base, {}, 204),
    ]
    etag, unexpected = "", []
    for method, path, headers, expected in calls:
        headers = {**signed, **{k: (etag if v == "<etag>" else v) for k, v in headers.items()}}
        body = b"1,59:00,101,6,1\n" if method == "PUT" and path != base else b""
        response = client.open(path, method=method, headers=headers, data=body)
        etag = response.headers.get("ETag", etag)
        if response.status_code != expected:
            unexpected.append(f"{method} {path} -> {response.status_code}, not {expected}")
    if unexpected:  # the server still serves; the first requests of each kind are just slower
        logging.getLogger(__name__).warning("warm-up: %s", "; ".join(unexpected))


def make_server(host: str, port: int, threads: int = 24):
    """moto's S3 app (warmed up, writes made atomic) on cheroot, bound and ready: `.bind_addr`
    has the port, `.serve()` serves until `.stop()`."""
    from cheroot import wsgi
    from moto.moto_server.werkzeug_app import create_backend_app

    app = create_backend_app("s3")
    app.debug = False
    warm_up(app)
    # moto and its AWS specs are ~70,000 objects that live as long as the server. Python's full
    # collections scanned them all while every request waited: in bench/ingest_load.py one such
    # pause, ~5.5 s into the load, held ~50 posts for 100-120 ms (the run's p99, 45-90 ms). Frozen,
    # collections skip them (p99 24 ms, slowest post 38 ms); objects stored later are collected as usual.
    gc.freeze()
    # A backlog for a game day's first burst of new connections (the default is 5).
    server = wsgi.Server((host, port), AtomicWrites(PlainObjects(app)), numthreads=threads, request_queue_size=128,
                         server_name="sidearm-local-s3")
    # Idle keep-alive connections wait in a selector, not in a thread. cheroot keeps 10 by default
    # and closes the rest after each answer; a game day has more clients (16 watcher workers, the
    # ingest API's threads, the web pages, the runs), each with one connection.
    server.keep_alive_conn_limit = 512
    server.prepare()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    server = make_server(args.host, args.port)
    print(f"sidearm local S3 (moto's S3 backend) on http://{args.host}:{server.bind_addr[1]}", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
