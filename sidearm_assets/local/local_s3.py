"""The embedded stack's S3 server: moto's S3 backend served on loopback, and nothing else.

`moto_server` serves every AWS service moto emulates. Per request it finds the service from the
Host header (scanning moto's package folders on disk) and logs a line. At game-day load (200 games:
~100 PUTs and ~100 GETs a second, a listing every few tenths of a second) that server was the
busiest process on the machine. This one serves the same S3 API from the same backend (moto's
own Flask app for S3) on the same werkzeug server, without the service lookup and the log line:
measured with the same mixed load, about a fifth less CPU per request (docs/live-latency.md).
Werkzeug still closes every connection (its server always answers `Connection: close`); waitress,
gunicorn and granian were measured too (keep-alive, 10-20 % less CPU again) but pyarrow's S3
client (the lake) hung on waitress's answer to an empty PUT, so werkzeug stays. Objects stay in
memory, as with `moto_server`.

Conditional writes are made atomic here. moto checks `If-Match` / `If-None-Match` and then
stores, without a lock in between, so two conditional PUTs racing on one key could both pass;
S3 and MinIO check and store as one step, and the ingest API relies on that (docs/ingest.md).
`AtomicWrites` serializes the writes to one key (striped locks), which gives the embedded
server the same guarantee (`test_s3http.py` races 8 conditional PUTs of 4 MiB: exactly one wins).

Run: `python -m sidearm_assets.local.local_s3 --host 127.0.0.1 --port 9000` (`local_stack` does).
"""

from __future__ import annotations

import argparse
import logging
import threading
import zlib

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})


class AtomicWrites:
    """WSGI middleware: writes to the same key run one at a time, check and store together."""

    def __init__(self, app, stripes: int = 64):
        self.app = app
        self.locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") not in WRITE_METHODS:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        with self.locks[zlib.crc32(path.encode("utf-8", "surrogateescape")) % len(self.locks)]:
            result = self.app(environ, start_response)
            try:
                body = list(result)  # the store happens while the response is produced: inside the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return body


def make_server(host: str, port: int):
    from moto.moto_server.werkzeug_app import create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server as werkzeug_server

    class Handler(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):  # one line per request was ~5 % of the CPU
            pass

    app = create_backend_app("s3")
    app.debug = False
    return werkzeug_server(host, port, AtomicWrites(app), threaded=True, request_handler=Handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    server = make_server(args.host, args.port)
    print(f"sidearm local S3 (moto's S3 backend) on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
