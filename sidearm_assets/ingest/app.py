"""`sidearm-ingest`: the scorer's HTTP API over the game stream objects (issue 12, SPEC 9).

Routes (JSON in and out; docs/ingest.md has curl examples):

    POST   /games/<game_id>/events              one event {clock, team_id, jersey, goal[, client_event_id]}
    POST   /games/<game_id>/end                 the game-over line (optional {clock})
    PUT    /games/<game_id>/events/<event_id>   correct a past event {clock, team_id, jersey, goal}
    DELETE /games/<game_id>/events/<event_id>   remove a past event
    GET    /games/<game_id>/stream              the current object (text/plain, ETag); no token needed
    GET    /healthz                             200 once the bucket answers

Writes need `Authorization: Bearer <token>` (SIDEARM_INGEST_TOKENS, see ingest/auth.py); every
refusal is a 4xx JSON `{error, detail, field}` and writes nothing. The work is in
ingest/service.py (the write protocol) and ingest/events.py (the rules); this module is HTTP only.
Starlette, served by uvicorn; endpoints are plain functions, run on Starlette's thread pool
because the S3 calls block.
"""

from __future__ import annotations

import argparse
import json
import sys

from sidearm_assets import settings
from sidearm_assets.ingest.auth import TokenConfigError, bearer, parse_tokens
from sidearm_assets.ingest.events import IngestError

MAX_BODY_BYTES = 4096


def build_service(environ: dict | None = None):
    from sidearm_assets.storage.s3http import SignedS3
    from sidearm_assets.ingest.service import IngestService, Schedule

    def value(s):
        return s.value(environ)

    store = SignedS3(value(settings.S3_ENDPOINT_URL), value(settings.S3_ACCESS_KEY), value(settings.S3_SECRET_KEY),
                     value(settings.S3_BUCKET))
    return IngestService(
        store,
        Schedule(value(settings.SQL_URL)),
        parse_tokens(value(settings.INGEST_TOKENS)),
        verify_writes=value(settings.INGEST_VERIFY_WRITES).strip().lower() not in ("0", "false", "no", ""),
        max_object_bytes=int(value(settings.LIVE_MAX_OBJECT_BYTES)),
    )


def create_app(service=None):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    service = service or build_service()

    def error(exc: IngestError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="sidearm-ingest"'} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def body_of(request: Request, required: bool = True):
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise IngestError(413, "body too large", f"an event is at most {MAX_BODY_BYTES} bytes of JSON")
        if not raw.strip():
            if required:
                raise IngestError(400, "invalid body", "the body must be a JSON object")
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IngestError(400, "invalid JSON", f"the body is not JSON: {exc}") from None

    def endpoint(work, needs_body: bool = True, body_required: bool = True):
        """An async endpoint reading the body, then running the blocking `work` on the thread pool."""
        from starlette.concurrency import run_in_threadpool

        async def handle(request: Request):
            try:
                body = await body_of(request, body_required) if needs_body else None
                token = bearer(request.headers.get("authorization"))
                result = await run_in_threadpool(work, request.path_params, body, token)
            except IngestError as exc:
                return error(exc)
            return JSONResponse(result.body, status_code=result.status)

        return handle

    post_event = endpoint(lambda p, body, token: service.post_event(p["game_id"], body, token))
    end_game = endpoint(lambda p, body, token: service.end_game(p["game_id"], body, token), body_required=False)
    correct = endpoint(lambda p, body, token: service.correct_event(p["game_id"], p["event_id"], body, token))
    delete = endpoint(lambda p, body, token: service.delete_event(p["game_id"], p["event_id"], token),
                      needs_body=False)

    def stream(request: Request):
        try:
            obj = service.read_stream(request.path_params["game_id"])
        except IngestError as exc:
            return error(exc)
        if obj.etag is None:
            game_id = request.path_params["game_id"]
            return error(IngestError(404, "not found", f"game {game_id!r} has no stream object yet"))
        return Response(obj.data, media_type="text/plain; charset=utf-8",
                        headers={"ETag": f'"{obj.etag}"', "Cache-Control": "no-cache"})

    def healthz(request: Request):
        try:
            service.store.head_bucket()
        except Exception as exc:
            return JSONResponse({"ok": False, "detail": f"bucket {service.store.bucket!r}: {type(exc).__name__}"},
                                status_code=503)
        return JSONResponse({"ok": True, "bucket": service.store.bucket, **service.stats})

    async def not_found(request: Request, exc):
        return JSONResponse({"error": "not found", "detail": f"no route {request.method} {request.url.path}"},
                            status_code=getattr(exc, "status_code", 404))

    routes = [
        Route("/games/{game_id}/events", post_event, methods=["POST"]),
        Route("/games/{game_id}/end", end_game, methods=["POST"]),
        Route("/games/{game_id}/events/{event_id}", correct, methods=["PUT"]),
        Route("/games/{game_id}/events/{event_id}", delete, methods=["DELETE"]),
        Route("/games/{game_id}/stream", stream, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.service = service
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidearm-ingest",
        description="Scorer ingest API: events posted over HTTP are appended to the game's stream object "
        "(settings from SIDEARM_S3_*, SIDEARM_SQL_URL, SIDEARM_INGEST_TOKENS).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 = any free port)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from sidearm_assets.web.serving import serve

    args = _parser().parse_args(argv)
    try:
        service = build_service()
    except TokenConfigError as exc:
        print(f"sidearm-ingest: {exc}", file=sys.stderr)
        return 2
    if service.tokens.empty:
        print("sidearm-ingest: SIDEARM_INGEST_TOKENS is empty: every write will be refused (401)", file=sys.stderr)
    for problem in service.warm():
        print(f"sidearm-ingest: not ready yet ({problem}); starting anyway, requests will say what they meet",
              file=sys.stderr)
    return serve(create_app(service), args.host, args.port, "sidearm-ingest",
                 f"scorer API over bucket {service.store.bucket!r}")


if __name__ == "__main__":
    sys.exit(main())
