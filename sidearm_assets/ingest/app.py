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
"""

from __future__ import annotations

import argparse
import json
import sys

from sidearm_assets import settings
from sidearm_assets.ingest import errors
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


def create_app(service=None):
    from sidearm_assets.ingest.routes import build_app

    return build_app(service or build_service())


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
