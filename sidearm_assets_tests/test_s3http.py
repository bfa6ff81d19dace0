"""The signed S3 client of the hot paths (s3http.py) against the embedded S3 server, checked
against boto3: the same objects, and versions that agree between a listing and a GET."""

import uuid

import pytest

from sidearm_assets.storage import clients
from sidearm_assets.storage.s3http import S3Error, SignedS3


@pytest.fixture
def bucket(embedded_stack):
    name = f"s3http-{uuid.uuid4().hex[:10]}"
    args = (embedded_stack["SIDEARM_S3_ENDPOINT_URL"], embedded_stack["SIDEARM_S3_ACCESS_KEY"],
            embedded_stack["SIDEARM_S3_SECRET_KEY"])
    boto = clients.s3_client(*args)
    boto.create_bucket(Bucket=name)
    return boto, SignedS3(*args, bucket=name), name


def test_listing_and_get_agree_with_boto3_and_with_each_other(bucket):
    boto, signed, name = bucket
    for key in ("g-1.txt", "g-2.txt", "completed/g-1.txt", "lake/x.parquet"):
        boto.put_object(Bucket=name, Key=key, Body=key.encode() * 3)
    signed.put_object("g-3.txt", b"0 59:51 101 6 1\n")

    listed = {o.key: o for o in signed.list_objects(top_level_only=True)}
    assert sorted(listed) == ["g-1.txt", "g-2.txt", "g-3.txt"]  # folders are not listed
    assert sorted(o.key for o in signed.list_objects()) == sorted([*listed, "completed/g-1.txt", "lake/x.parquet"])
    from_boto = {o.key: o for o in clients.list_objects(boto, name, top_level_only=True)}
    for key, obj in listed.items():
        assert (obj.etag, obj.size, obj.version) == (from_boto[key].etag, from_boto[key].size, from_boto[key].version)
        body, version = signed.get_object(key)
        assert body == boto.get_object(Bucket=name, Key=key)["Body"].read()
        assert version.version == obj.version  # else the watcher would read every game on every poll


def test_a_listing_of_more_than_one_page_is_complete(bucket):
    boto, signed, name = bucket
    keys = [f"g-{i:04d}.txt" for i in range(1005)]
    for key in keys:
        signed.put_object(key, b"x")
    assert sorted(o.key for o in signed.list_objects(top_level_only=True)) == keys


def test_a_missing_object_is_a_named_error(bucket):
    _, signed, _ = bucket
    with pytest.raises(S3Error, match="GET nope.txt: HTTP 404 NoSuchKey"):
        signed.get_object("nope.txt")


def test_appends_racing_through_conditional_puts_lose_nothing(bucket):
    """S3 and MinIO check If-Match and store as one step; the embedded server must too. Eight
    writers append lines to one object by read + conditional put, retrying on 412: every
    acknowledged append must be in the object. (Without local_s3's per-key lock, moto's check and
    store interleave: 1 append in ~660 was lost when measured.)"""
    import threading

    from sidearm_assets.storage.s3http import Conflict

    _, signed, _ = bucket
    signed.put("race.txt", b"", None, {}, "text/plain")
    acknowledged: list[bytes] = []
    errors: list[BaseException] = []

    def writer(n: int):
        try:
            for i in range(60):
                line = f"{n} {i}\n".encode()
                while True:
                    current = signed.read("race.txt")
                    try:
                        signed.put("race.txt", current.data + line, current.etag, {}, "text/plain")
                        break
                    except Conflict:
                        continue
                acknowledged.append(line)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    stored = signed.read("race.txt").data.splitlines(keepends=True)
    assert sorted(stored) == sorted(acknowledged), f"{len(acknowledged)} acknowledged, {len(stored)} stored"


def test_requests_from_one_thread_share_one_kept_alive_connection(bucket):
    """The embedded server keeps connections open (werkzeug's development server closed each one,
    so every request paid a TCP handshake on both sides)."""
    _, signed, _ = bucket
    signed.put_object("k.txt", b"1")
    first = signed._connection().sock
    for _ in range(3):
        signed.get_object("k.txt")
    assert first is not None and signed._connection().sock is first


def test_a_write_after_the_server_closed_the_idle_connection_goes_on_a_new_one():
    """Servers expire idle keep-alive connections. A PUT sent on one the server has closed would
    fail after the fact with its outcome unknown; the client sees the close first and reconnects.
    The server here answers one request per connection and then closes it."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    requests = []
    closed = threading.Event()  # the server has closed its first connection

    def serve():
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += conn.recv(65536)
                requests.append(body)
                conn.sendall(b'HTTP/1.1 200 OK\r\nETag: "e%d"\r\nContent-Length: 0\r\n\r\n' % len(requests))
            closed.set()  # on loopback the close has reached the client's socket when close() returns

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    signed = SignedS3(f"http://127.0.0.1:{listener.getsockname()[1]}", "a", "b", "bucket", timeout=5)
    try:
        assert signed.put_object("g.txt", b"one") == "e1"
        server_closed = signed._local.conn.sock
        assert closed.wait(5)  # the server's close (it follows its answer) has reached the client
        assert signed.put_object("g.txt", b"two") == "e2"
        assert signed._local.conn.sock is not server_closed
        assert requests == [b"one", b"two"]
    finally:
        listener.close()
