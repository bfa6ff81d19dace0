"""The embedded S3 server's direct path for plain object reads and writes (`local_s3.PlainObjects`)
answers exactly as moto's own app does, and leaves every other request to moto.

Both apps run in-process over moto's one backend; each case goes to a bucket of its own on each
side, and the answers are compared status, headers (all but the request id and date) and body."""

from __future__ import annotations

import uuid

import pytest

SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDPLAIN/20260101/us-east-1/s3/aws4_request, "
                     "SignedHeaders=host, Signature=0",
    "Host": "127.0.0.1:9000",
}


class Counting:
    """The moto app, counting the requests that reach it."""

    def __init__(self, app):
        self.app, self.calls = app, []

    def __call__(self, environ, start_response):
        self.calls.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO")))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def apps():
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.test import Client

    from sidearm_assets.local.local_s3 import PlainObjects

    app = create_backend_app("s3")
    app.debug = False
    behind = Counting(app)
    return Client(app), Client(PlainObjects(behind)), behind


def two_buckets(apps) -> list[tuple]:
    """A new bucket on each side: [(moto's client, its bucket), (the direct path's, its bucket)]."""
    moto, plain, behind = apps
    sides = [(client, f"plain-{uuid.uuid4().hex[:10]}") for client in (moto, plain)]
    for client, bucket in sides:
        assert client.put(f"/{bucket}", headers=SIGNED).status_code == 200
    behind.calls.clear()
    return sides


def answer(response, bucket: str) -> tuple:
    """An answer as compared across the sides: status, headers but the request id and date, body
    with the side's bucket name and an error document's request id left out."""
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in ("x-amzn-requestid", "date")}
    body = response.data.replace(bucket.encode(), b"<bucket>")
    if b"<RequestId>" in body:  # error documents carry the request id
        body = body.split(b"<RequestId>")[0]
    return response.status_code, headers, body


@pytest.fixture
def pair(apps):
    """(ask, moto_calls): `ask(method, key, headers, body)` sends one request to both sides and
    returns both answers; moto_calls lists what the direct path handed to moto."""
    sides = two_buckets(apps)

    def ask(method, key, headers=None, body=b""):
        return tuple(answer(client.open(f"/{bucket}/{key}", method=method, headers={**SIGNED, **(headers or {})},
                                        data=body), bucket)
                     for client, bucket in sides)

    return ask, apps[2].calls


def test_plain_writes_and_reads_answer_as_moto_does_without_reaching_it(pair):
    ask, moto_calls = pair
    first = {"If-None-Match": "*", "Content-Type": "text/plain; charset=utf-8", "x-amz-meta-recent": "a=1"}
    by_moto, direct = ask("PUT", "game.txt", first, b"1,59:00,101,6,1\n")
    assert by_moto == direct and direct[0] == 200
    etag = direct[1]["etag"]
    for method, key, headers, body in [
        ("GET", "game.txt", {}, b""),
        ("HEAD", "game.txt", {}, b""),
        ("PUT", "game.txt", {"If-Match": etag, "Content-Type": "text/plain"}, b"1,59:00,101,6,1\n2,58:00,101,6,0\n"),
        ("GET", "game.txt", {}, b""),
        ("PUT", "empty.txt", {}, b""),
        ("GET", "empty.txt", {}, b""),
        ("PUT", "lake/part-0.parquet", {"Content-Type": "application/octet-stream"}, bytes(range(256)) * 40),
        ("GET", "lake/part-0.parquet", {}, b""),
    ]:
        by_moto, direct = ask(method, key, headers, body)
        assert by_moto == direct, (method, key)
        assert direct[0] == 200
    assert ask("GET", "game.txt")[1][2] == b"1,59:00,101,6,1\n2,58:00,101,6,0\n"
    assert moto_calls == []  # all of them answered directly


@pytest.mark.parametrize("method, key, headers", [
    ("GET", "missing.txt", {}),  # 404 NoSuchKey with moto's error document
    ("HEAD", "missing.txt", {}),
    ("PUT", "game.txt", {"If-None-Match": "*"}),  # 412: the object exists
    ("PUT", "game.txt", {"If-Match": '"0000"'}),  # 412: another version
    ("PUT", "absent.txt", {"If-Match": '"0000"'}),  # 404: If-Match on no object
    ("GET", "game.txt", {"Range": "bytes=2-5"}),  # 206
    ("GET", "game.txt", {"If-None-Match": "<etag>"}),  # 304
    ("PUT", "tagged.txt", {"x-amz-tagging": "a=b"}),
    ("PUT", "sse.txt", {"x-amz-server-side-encryption": "AES256"}),
    ("PUT", "odd%20name.txt", {}),  # an escaped key: moto decodes it
])
def test_everything_else_goes_to_moto_and_answers_the_same(pair, method, key, headers):
    ask, moto_calls = pair
    created = ask("PUT", "game.txt", {"If-None-Match": "*"}, b"1,59:00,101,6,1\n")
    etag = created[1][1]["etag"]
    moto_calls.clear()
    headers = {k: (etag if v == "<etag>" else v) for k, v in headers.items()}
    by_moto, direct = ask(method, key, headers, b"x" if method == "PUT" else b"")
    assert by_moto == direct
    assert moto_calls, "the direct path answered a request it should have left to moto"


def test_a_query_string_or_a_versioned_bucket_is_left_to_moto(apps):
    _, plain, behind = apps
    bucket = f"plain-{uuid.uuid4().hex[:10]}"
    plain.put(f"/{bucket}", headers=SIGNED)
    plain.put(f"/{bucket}/g.txt", headers=SIGNED, data=b"1")
    behind.calls.clear()
    assert plain.get(f"/{bucket}/g.txt?response-content-type=text/csv", headers=SIGNED).headers["Content-Type"] == "text/csv"
    versioning = b'<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>'
    assert plain.put(f"/{bucket}?versioning", headers=SIGNED, data=versioning).status_code == 200
    behind.calls.clear()
    response = plain.put(f"/{bucket}/g.txt", headers=SIGNED, data=b"2")
    assert response.status_code == 200 and response.headers.get("x-amz-version-id")
    assert len(behind.calls) == 1


@pytest.fixture
def listing_pair(apps):
    """(fill, ask, moto_calls) for listings: `fill(keys)` puts the same keys on both sides,
    `ask(query)` lists both buckets."""
    sides = two_buckets(apps)

    def fill(keys):
        for client, bucket in sides:
            for key in keys:
                client.put(f"/{bucket}/{key}", headers=SIGNED, data=key.encode() * 2)
        apps[2].calls.clear()

    def ask(query):
        return [answer(client.get(f"/{bucket}?{query}", headers=SIGNED), bucket) for client, bucket in sides]

    return fill, ask, apps[2].calls


@pytest.mark.parametrize("query", [
    "list-type=2", "list-type=2&delimiter=%2F", "list-type=2&delimiter=%2F&prefix=", "list-type=2&prefix=g-",
    "list-type=2&prefix=nothing-here", "list-type=2&prefix=lake%2F&delimiter=%2F", "list-type=2&delimiter=x",
])
def test_a_one_page_listing_answers_as_moto_does_without_reaching_it(listing_pair, query):
    fill, ask, moto_calls = listing_pair
    assert ask(query)[0] == ask(query)[1]  # the empty bucket
    fill(["g-2.txt", "g-1.txt", "completed/g-1.txt", "lake/games/part-0.parquet", "lake/x.json"])
    by_moto, direct = ask(query)
    assert by_moto == direct and direct[0] == 200
    assert moto_calls == []


@pytest.mark.parametrize("keys, query", [
    (["season=2026/part-0.parquet", "g-1.txt"], "list-type=2"),  # a name that is not written as it is
    (["g-1.txt"], "list-type=2&continuation-token=abc"),
    (["g-1.txt"], "list-type=2&max-keys=1"),
    (["g-1.txt"], "list-type=2&encoding-type=url"),
    (["g-1.txt"], "prefix=g"),  # ListObjects (v1)
])
def test_other_listings_go_to_moto_and_answer_the_same(listing_pair, keys, query):
    fill, ask, moto_calls = listing_pair
    fill(keys)
    by_moto, direct = ask(query)
    assert by_moto == direct
    assert moto_calls


def test_a_listing_of_more_than_one_page_is_moto_s(listing_pair, monkeypatch):
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "3")
    fill, ask, moto_calls = listing_pair
    fill([f"g-{i}.txt" for i in range(5)])
    by_moto, direct = ask("list-type=2")
    assert by_moto == direct and b"<IsTruncated>true</IsTruncated>" in direct[2]
    assert moto_calls


def test_an_object_written_again_loses_its_tags_as_with_moto(pair):
    ask, moto_calls = pair
    ask("PUT", "tagged.txt", {}, b"1")
    tagging = b"<Tagging><TagSet><Tag><Key>team</Key><Value>101</Value></Tag></TagSet></Tagging>"
    assert ask("PUT", "tagged.txt?tagging", {}, tagging)[1][0] == 200
    by_moto, direct = ask("GET", "tagged.txt?tagging")
    assert by_moto == direct and b"<Value>101</Value>" in direct[2]
    moto_calls.clear()
    ask("PUT", "tagged.txt", {}, b"2")  # written again, directly
    assert moto_calls == []
    by_moto, direct = ask("GET", "tagged.txt?tagging")
    assert by_moto == direct and b"101" not in direct[2]
