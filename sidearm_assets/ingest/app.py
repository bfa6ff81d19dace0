"""`sidearm-ingest`: the scorer's HTTP API over the game stream objects (SPEC 9). HTTP only.

FastAPI on uvicorn; the schema is served at `/openapi.json` and browsable at `/docs`. Routes:

    POST   /games/{game_id}/events              one event {clock, team_id, jersey, goal[, client_event_id]}
    POST   /games/{game_id}/end                 the game-over line (optional {clock})
    PUT    /games/{game_id}/events/{event_id}   correct a past event {clock, team_id, jersey, goal}
    DELETE /games/{game_id}/events/{event_id}   remove a past event
    GET    /games/{game_id}/stream              the current object (text/plain, ETag)
    GET    /healthz                             healthy or not

Every /games request needs `Authorization: Bearer <token>` (scopes: ingest/auth.py), checked
before the body is read; the body is read within limits (ingest/bodies.py); the work is in
ingest/service.py, whose refusals (ingest/errors.py) are mapped to status codes here.

Order for a write: the path's shape (400), the token (401), the body's declared size and type
(413, 415), the body read within its limits (413, 408) and parsed (400), then the service: fields
(400), schedule (404), scope (403), rules (400, 409, 422). Blocking work (S3, the schedule) runs on
Starlette's thread pool. FastAPI costs ~0.2-0.3 ms of CPU per request more than plain Starlette
routes (measured in-process, 0.22 -> 0.4-0.5 ms for a post with the service stubbed); the
published schema is worth it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Annotated

from fastapi import FastAPI, Path, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from sidearm_assets import settings
from sidearm_assets.ingest import api_models as m
from sidearm_assets.ingest import bodies, errors
from sidearm_assets.ingest.auth import TokenConfigError, parse_tokens

STATUS = {
    errors.InvalidInput: 400, errors.Unauthenticated: 401, errors.Forbidden: 403, errors.NotFound: 404,
    errors.SlowSender: 408, errors.StateConflict: 409, errors.TooLarge: 413, errors.UnsupportedMediaType: 415,
    errors.Rejected: 422, errors.Broken: 500, errors.Unavailable: 503,
}
WHEN = {
    400: "a field, a path parameter or the body is malformed (`field` or `rule` names it)",
    401: "no token, or not a configured one (same answer for every game, scheduled or not)",
    403: "the token's scope does not cover this game or this line (`rule: scope`)",
    404: "no such game in the schedule, no such event, or no stream object yet",
    408: "the body did not arrive within the request timeout",
    409: "the game is over, retired, its object is not UTF-8 or would pass the live size limit",
    413: "the body is over 4096 bytes (refused on Content-Length before reading)",
    415: "the body is not application/json",
    422: "the stream rules would reject the line, or a correction would reject another line",
    500: "the game's ledger object is not a ledger (written by hand): an operator must move it away",
    503: "the bucket or the schedule did not answer, or the game kept changing: retry with the same client id",
}


def status_of(exc: errors.IngestError) -> int:
    return next(code for kind, code in STATUS.items() if isinstance(exc, kind))


def json_response(body: dict, status: int, headers: dict | None = None):
    from starlette.responses import Response

    # ensure_ascii: any text a client sent is echoed as \u escapes, never an encoding error
    return Response(json.dumps(body).encode(), status_code=status, headers=headers, media_type="application/json")


def error_response(exc: errors.IngestError):
    status = status_of(exc)
    headers = {"WWW-Authenticate": 'Bearer realm="sidearm-ingest"'} if status == 401 else None
    return json_response(exc.body(), status, headers)


def build_service(environ: dict | None = None):
    from sidearm_assets.ingest.schedule import Schedule
    from sidearm_assets.ingest.service import IngestService
    from sidearm_assets.storage.s3http import SignedS3

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


bearer_scheme = HTTPBearer(auto_error=False, description="a scorer or partner token (SIDEARM_INGEST_TOKENS)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
GameId = Annotated[str, Path(pattern=m.GAME_ID_PATTERN, description="the game's id (its object is <game_id>.txt)")]
EventId = Annotated[str, Path(pattern=m.EVENT_ID_PATTERN, description="an event id as the stream writes it")]

WRITE_ERRORS = (400, 401, 403, 404, 408, 409, 413, 415, 422, 500, 503)


def responses(ok: dict, refusals=WRITE_ERRORS, text_route: bool = False) -> dict:
    out = dict(ok)
    for code in refusals:  # refusals are JSON, also on a route whose answer is text
        out[code] = {"description": WHEN[code], "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorOut"}}}} if text_route else \
            {"model": m.ErrorOut, "description": WHEN[code]}
    return out


def create_app(service=None) -> FastAPI:
    """The API over `service` (built from the settings when None)."""
    service = service or build_service()
    app = FastAPI(
        title="sidearm-ingest", version="1.0",
        description="The scorer API of the Sidearm live box score: events posted here are appended to the "
                    "game's stream object. Every refusal is JSON `{error, detail, field?, rule?}` and writes nothing.",
    )
    app.state.service = service

    def grant_of(credentials: HTTPAuthorizationCredentials | None):
        return service.authenticate(credentials.credentials if credentials else None)

    async def body_of(request: Request, required: bool = True):
        bodies.check_declared(request.headers)
        try:
            raw = await bodies.read_limited(request.stream())
        except ClientDisconnect:  # nobody is left to answer; nothing is written
            raise errors.InvalidInput("incomplete body", "the client left before its body arrived",
                                      rule="body") from None
        return bodies.parse_json(raw, required)

    written = {201: {"model": m.WriteOut, "description": "written"},
               200: {"model": m.WriteOut, "description": "a duplicate: nothing written"}}

    @app.post("/games/{game_id}/events", status_code=201, responses=responses(written),
              openapi_extra=m.request_body(m.EventIn), summary="Post one event")
    async def post_event(game_id: GameId, request: Request, credentials: Credentials):
        grant = grant_of(credentials)
        body = await body_of(request)
        result = await run_in_threadpool(service.post_event, game_id, body, grant)
        return json_response(result.body, result.status)

    @app.post("/games/{game_id}/end", status_code=201, responses=responses(written),
              openapi_extra=m.request_body(m.EndIn, required=False), summary="End the game (the -1 line)")
    async def end_game(game_id: GameId, request: Request, credentials: Credentials):
        grant = grant_of(credentials)
        body = await body_of(request, required=False)
        result = await run_in_threadpool(service.end_game, game_id, body, grant)
        return json_response(result.body, result.status)

    @app.put("/games/{game_id}/events/{event_id}", responses=responses({200: written[200] | {
             "description": "corrected"}}), openapi_extra=m.request_body(m.CorrectionIn), summary="Correct an event")
    async def correct_event(game_id: GameId, event_id: EventId, request: Request, credentials: Credentials):
        grant = grant_of(credentials)
        body = await body_of(request)
        result = await run_in_threadpool(service.correct_event, game_id, event_id, body, grant)
        return json_response(result.body, result.status)

    @app.delete("/games/{game_id}/events/{event_id}", summary="Delete an event (-1 reopens the game)",
                responses=responses({200: {"model": m.WriteOut, "description": "deleted"}},
                                    (400, 401, 403, 404, 409, 422, 500, 503)))
    async def delete_event(game_id: GameId, event_id: EventId, credentials: Credentials):
        grant = grant_of(credentials)
        result = await run_in_threadpool(service.delete_event, game_id, event_id, grant)
        return json_response(result.body, result.status)

    @app.get("/games/{game_id}/stream", response_class=PlainTextResponse, summary="The game's stream object",
             responses=responses({200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                        "description": "the object's lines; ETag is its version",
                                        "headers": {"ETag": {"schema": {"type": "string"}}}}},
                                 (400, 401, 404, 503), text_route=True))
    async def stream(game_id: GameId, credentials: Credentials):
        grant_of(credentials)
        obj = await run_in_threadpool(service.read_stream, game_id)
        if obj.etag is None:
            raise errors.NotFound("not found", f"game {game_id!r} has no stream object yet", "game_id")
        return PlainTextResponse(obj.data, media_type="text/plain; charset=utf-8",
                                 headers={"ETag": f'"{obj.etag}"', "Cache-Control": "no-cache"})

    @app.get("/healthz", summary="Healthy or not", responses={
        200: {"model": m.HealthOut, "description": "healthy"},
        503: {"model": m.HealthOut, "description": "the bucket does not answer"}})
    async def healthz(request: Request):
        ok = await run_in_threadpool(service.healthy)
        body = {"ok": ok}
        token = request.headers.get("authorization", "")
        if token.lower().startswith("bearer "):
            try:
                service.authenticate(token[7:].strip())
                body.update(bucket=service.store.bucket, counters=service.stats.snapshot())
            except errors.Unauthenticated:
                pass  # the public answer
        return json_response(body, 200 if ok else 503)

    install_error_handlers(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.IngestError)
    async def refused(request: Request, exc: errors.IngestError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_path(request: Request, exc: RequestValidationError):
        problem = exc.errors()[0] if exc.errors() else {}
        name = str(problem.get("loc", ("", "request"))[-1])
        value = request.path_params.get(name, "")
        return error_response(errors.InvalidInput("invalid field", f"{name} {value!r}: {problem.get('msg', 'invalid')}",
                                                  name))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            allowed = allowed_methods(app, request.scope)
            return json_response({"error": "method not allowed", "detail": f"{request.method} is not allowed on "
                                  f"{request.url.path}; allowed: {', '.join(allowed)}", "rule": "method"},
                                 405, {"Allow": ", ".join(allowed)})
        if exc.status_code == 404:
            return json_response({"error": "not found", "detail": f"no route {request.method} {request.url.path}",
                                  "rule": "route"}, 404)
        return json_response({"error": "refused", "detail": str(exc.detail)}, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug: still JSON, and logged by uvicorn
        return json_response({"error": "internal error", "detail": type(exc).__name__}, 500)


def allowed_methods(app: FastAPI, scope: dict) -> list[str]:
    """Every method some route serves at this path (the routes of one path may be several)."""
    methods: set[str] = set()
    for route in app.router.routes:
        for method in getattr(route, "methods", None) or ():
            if route.matches({**scope, "method": method})[0] == Match.FULL:
                methods.add(method)
    return sorted(methods)


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
        print("sidearm-ingest: SIDEARM_INGEST_TOKENS is empty: every request to /games is refused (401)",
              file=sys.stderr)
    for problem in service.warm():
        print(f"sidearm-ingest: not ready yet ({problem}); starting anyway, requests will say what they meet",
              file=sys.stderr)
    return serve(create_app(service), args.host, args.port, "sidearm-ingest",
                 f"scorer API over bucket {service.store.bucket!r}")


if __name__ == "__main__":
    sys.exit(main())
