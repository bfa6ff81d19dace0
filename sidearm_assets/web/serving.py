"""Serve an ASGI app with uvicorn (a production server, not werkzeug's development one).

Used by `sidearm-web` and `sidearm-ingest`: the socket is bound first, so `--port 0` picks a free
port and a port in use is a clear error; stdout carries only the URL (tests and scripts read it).
"""

from __future__ import annotations

import socket
import sys

from sidearm_assets.publishing.background import freeze_long_lived_objects


def _nothing() -> None:
    return None


def serve(app, host: str, port: int, prog: str, what: str, graceful_seconds: float = 3.0) -> int:
    import anyio
    import anyio.to_thread
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(f"{prog}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    sock.listen(2048)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        # Open push connections must not hold a stop up: they reconnect to the next server.
        timeout_graceful_shutdown=graceful_seconds,
        backlog=2048,
    )
    config.load()  # the protocol implementations and the app, imported now rather than in run()
    anyio.run(anyio.to_thread.run_sync, _nothing)  # the event loop backend and the thread pool, likewise
    # What is alive now lives as long as the process: out of Python's full collections. Measured
    # on sidearm-ingest: 92,000 objects once serving (52,000 before uvicorn and anyio are
    # imported), and each full collection scanned them all while requests waited (40-230 ms
    # under bench/ingest_load.py). Objects made later are collected as usual.
    freeze_long_lived_objects()
    server = uvicorn.Server(config)
    print(f"http://{host}:{bound}/", flush=True)
    print(f"{prog}: {what} on http://{host}:{bound}/ (uvicorn; Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
