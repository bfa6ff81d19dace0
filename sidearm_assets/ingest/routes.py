"""The FastAPI routes of `sidearm-ingest`: what each one reads, in which order, and what it answers.

Order for a write: the path's shape (400), the token (401), the body's declared size and type
(413, 415), the body read within its limits (413, 408) and parsed (400), then the service: fields
(400), schedule (404), scope (403), rules (400, 409, 422). The body is never read for a request
without a valid token. Blocking work (S3, the schedule) runs on the thread pool.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Path, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from sidearm_assets.ingest import api_models as m
from sidearm_assets.ingest import bodies, errors
from sidearm_assets.ingest.app import STATUS, WHEN, error_response, json_response

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


def build_app(service) -> FastAPI:
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


assert set(STATUS.values()) <= set(WHEN)  # every status the service can cause is documented
