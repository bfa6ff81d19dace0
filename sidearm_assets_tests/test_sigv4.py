"""`storage/sigv4.py` signs the hot-path S3 requests exactly as botocore's S3SigV4Auth does
(the reference implementation MinIO and S3 check against), and `SignedS3` sends those headers."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, urlencode

import pytest

from sidearm_assets.storage.sigv4 import SigV4

NOW = dt.datetime(2026, 12, 7, 21, 40, 5, tzinfo=dt.timezone.utc)


def botocore_headers(monkeypatch, method, url, headers, body, access="AKIDEXAMPLE", secret="s3cr3t/key+x",
                     region="us-east-1", now=NOW):
    import botocore.auth
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    S3SigV4Auth(Credentials(access, secret), "s3", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("method, path, query, headers, body", [
    ("GET", "/gamestreams/game-1.txt", {}, {}, b""),
    ("HEAD", "/gamestreams", {}, {}, b""),
    ("GET", "/gamestreams", {"list-type": "2", "delimiter": "/", "continuation-token": "a b/c=d+e"}, {}, b""),
    ("PUT", "/gamestreams/league/a-b_c.d~e.txt", {},
     {"Content-Type": "text/plain; charset=utf-8", "x-amz-meta-recent": "c1=5,c2=6", "If-Match": '"0a1b"',
      "x-amz-meta-writes": "  spaced   value  "}, b"1,59:00,101,6,1\n" * 40),
    ("PUT", "/prefix/gamestreams/g.txt", {}, {"If-None-Match": "*"}, b""),
])
def test_the_signature_is_botocores(monkeypatch, method, path, query, headers, body):
    host = "127.0.0.1:9000"
    canonical_query = urlencode(sorted(query.items()), quote_via=quote, safe="") if query else ""
    url = f"http://{host}{path}" + (f"?{canonical_query}" if canonical_query else "")
    ours = SigV4("AKIDEXAMPLE", "s3cr3t/key+x", "us-east-1").sign(method, host, path, canonical_query, headers,
                                                                 body, now=NOW)
    theirs = botocore_headers(monkeypatch, method, url, headers, body)
    assert ours == theirs


def test_a_new_day_gets_a_new_signing_key(monkeypatch):
    signer = SigV4("AKIDEXAMPLE", "s3cr3t/key+x", "eu-west-1")
    for moment in (NOW, NOW + dt.timedelta(days=1), NOW):
        ours = signer.sign("GET", "minio:9000", "/b/k.txt", "", {}, b"", now=moment)
        theirs = botocore_headers(monkeypatch, "GET", "http://minio:9000/b/k.txt", {}, b"", region="eu-west-1",
                                  now=moment)
        assert ours["Authorization"] == theirs["Authorization"]


def test_signed_s3_signs_the_host_it_sends(monkeypatch):
    from sidearm_assets.storage.s3http import SignedS3

    assert SignedS3("http://127.0.0.1:9000", "a", "b", "bucket").host == "127.0.0.1:9000"
    assert SignedS3("http://MinIO:80", "a", "b", "bucket").host == "minio"
    assert SignedS3("https://s3.example.com", "a", "b", "bucket").host == "s3.example.com"
