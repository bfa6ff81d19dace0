"""The live box-score page (SPEC 5 seen by its readers): one Starlette app over `sidearm.boxscores`
with its Jinja2 pages, a JSON endpoint and a push channel, served by uvicorn.

Every request that shows a game is one indexed query, `find_one({"game_id": g}, sort seq -1)`,
the query SPEC 5 promises web developers. The page renders the document as it is: it formats
numbers but computes nothing the document should hold (scores, statuses, pct, records all come
from it). An open page receives each new document as a server-sent event (one shared watcher
per game however many pages are open, web/push.py) and re-renders in place; it keeps listening
after a final, so a correction or a replay shows up too. Without EventSource, or while the push
connection is down, it polls the JSON endpoint instead.

Routes:
    /                            every game with a document (one aggregation: the latest document per game)
    /games/<game_id>             the box-score page (404 page for a game without a document)
    /api/games/<game_id>         the latest document as JSON (404 / 503 JSON errors; ETag, 304)
    /api/games/<game_id>/events  server-sent events: `boxscore` (the document), `missing`, `unavailable`
    /healthz                     the server and its watchers (no database query)

Run `sidearm-web [--host 127.0.0.1] [--port 8080]` (uvicorn, one process: the watchers are
shared inside it); settings come from the environment (`SIDEARM_MONGO_URI`, `SIDEARM_MONGO_DB`,
`SIDEARM_WEB_PUSH_POLL_SECONDS`, see settings.py), like every other part of the project.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import logging
import sys
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sidearm_assets import settings
from sidearm_assets.storage import clients
from sidearm_assets.web.push import PushHub

COLLECTION = "boxscores"
DEFAULT_POLL_SECONDS = 2.0  # the fallback when a page cannot hold a push connection
HEARTBEAT_SECONDS = 15.0  # a comment line on an idle push connection keeps proxies from closing it
HERE = Path(__file__).parent
log = logging.getLogger(__name__)


class BoxScoreReader:
    """Read side of `sidearm.boxscores`; each method is one query."""

    def __init__(self, uri: str, database: str, collection: str = COLLECTION, timeout_ms: int = 3000):
        self.uri = uri
        self.database = database
        self.collection_name = collection
        self.timeout_ms = timeout_ms

    @classmethod
    def from_settings(cls) -> "BoxScoreReader":
        return cls(settings.MONGO_URI.value(), settings.MONGO_DB.value())

    def collection(self):
        return clients.mongo_client(self.uri, self.timeout_ms)[self.database][self.collection_name]

    def latest(self, game_id: str) -> dict | None:
        """The newest document of a game, by the (game_id, seq) index."""
        return self.collection().find_one({"game_id": game_id}, sort=[("seq", -1)])

    def games(self) -> list[dict]:
        """The latest document of every game, by game id."""
        pipeline = [
            {"$sort": {"game_id": 1, "seq": -1}},
            {"$group": {"_id": "$game_id", "doc": {"$first": "$$ROOT"}}},
            {"$sort": {"_id": 1}},
        ]
        return [row["doc"] for row in self.collection().aggregate(pipeline)]


def jsonable(value):
    """The document as plain JSON values (dates as ISO text, other BSON types as text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # ObjectId, Decimal128 ...


def etag_of(body: bytes) -> str:
    """A strong ETag for a response body."""
    return f'"{hashlib.sha1(body).hexdigest()}"'


def etag_matches(etag: str, if_none_match: str | None) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak comparison, as for GET: `W/` ignored)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in (t.removeprefix("W/") for t in tags)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")

    @jinja2.pass_context
    def url_for(context, name: str, /, **params) -> str:
        """The path of a route (links in the page are relative to the server)."""
        return str(context["request"].app.url_path_for(name, **params))

    templates.env.globals["url_for"] = url_for
    return templates


def create_app(
    reader: BoxScoreReader | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    push_seconds: float | None = None,
) -> Starlette:
    """The whole of `sidearm-web`: pages, JSON endpoint, push channel, health and static files."""
    from pymongo.errors import PyMongoError

    store = reader or BoxScoreReader.from_settings()
    poll_ms = int(poll_seconds * 1000)
    templates = _templates()
    if push_seconds is None:
        push_seconds = float(settings.WEB_PUSH_POLL_SECONDS.value())

    def latest_json(game_id: str) -> dict | None:
        doc = store.latest(game_id)
        return None if doc is None else jsonable(doc)

    hub = PushHub(latest_json, push_seconds)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def error_page(request: Request, title: str, message: str, retry: int | None, status: int) -> Response:
        context = {"title": title, "message": message, "retry": retry}
        return templates.TemplateResponse(request, "error.html", context, status_code=status)

    def mongo_down(request: Request, exc: Exception) -> Response:
        where = f"MongoDB database {store.database!r}"
        message = f"The box-score store is unreachable ({where}): {type(exc).__name__}. Retrying helps once it is back."
        log.warning("%s: %s", message, exc)
        if wants_json(request):
            return JSONResponse({"error": "box-score store unavailable", "detail": message}, status_code=503)
        return error_page(request, "Box scores unavailable", message, 5, 503)

    def not_found(request: Request, exc: HTTPException) -> Response:
        if wants_json(request):
            return JSONResponse({"error": "not found", "detail": exc.detail or ""}, status_code=404)
        return error_page(request, "Not found", "There is no such page.", None, 404)

    def index(request: Request) -> Response:
        return templates.TemplateResponse(request, "index.html", {"games": store.games()})

    def game_page(request: Request) -> Response:
        game_id = request.path_params["game_id"]
        doc = store.latest(game_id)
        if doc is None:
            message = (
                f"There is no box score for game {game_id!r} yet. Its first document appears once the "
                f"stream object {settings.key_for_game(game_id)} has an accepted line; this page checks again "
                f"every 5 seconds."
            )
            return error_page(request, "No such game", message, 5, 404)
        context = {
            "doc": doc,
            "api_url": f"/api/games/{game_id}",
            "push_url": f"/api/games/{game_id}/events",
            "poll_ms": poll_ms,
        }
        return templates.TemplateResponse(request, "game.html", context, headers={"Cache-Control": "no-store"})

    def game_json(request: Request) -> Response:
        game_id = request.path_params["game_id"]
        doc = store.latest(game_id)
        if doc is None:
            return JSONResponse({"error": "not found", "detail": f"no box score for game {game_id!r}"}, status_code=404)
        body = json.dumps(jsonable(doc), separators=(",", ":")).encode()  # the document's own field order
        # Polled every few seconds: revalidate each time, answer 304 when the document is unchanged.
        headers = {"Cache-Control": "no-cache", "ETag": etag_of(body)}
        if etag_matches(headers["ETag"], request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "push": hub.stats()})

    app = Starlette(
        routes=[
            Route("/", index, name="index"),
            Route("/games/{game_id}", game_page, name="game_page"),
            Route("/api/games/{game_id}", game_json, name="game_json"),
            Route("/api/games/{game_id}/events", EventStream(hub), name="game_events"),
            Route("/healthz", healthz, name="healthz"),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={PyMongoError: mongo_down, 404: not_found},
    )
    app.state.reader = store
    app.state.hub = hub
    return app


class EventStream:
    """ASGI endpoint of `/api/games/<game_id>/events`: the page's push connection.

    Written against ASGI directly rather than as a streaming response so that a page closing
    its connection is seen at once (the `http.disconnect` message), not at the next write: the
    game's watcher stops as soon as its last page is gone."""

    def __init__(self, hub, heartbeat: float = HEARTBEAT_SECONDS):
        self.hub = hub
        self.heartbeat = heartbeat

    async def __call__(self, scope, receive, send):
        game_id = scope["path_params"]["game_id"]
        queue = self.hub.subscribe(game_id)

        async def disconnected():
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.create_task(disconnected())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),  # a proxy in front must not buffer the stream
            ]})
            await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
            while True:
                nxt = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({nxt, gone}, timeout=self.heartbeat, return_when=asyncio.FIRST_COMPLETED)
                if nxt in done:
                    body = nxt.result().encode()
                else:
                    nxt.cancel()
                    if gone in done:
                        break
                    body = b": keep-alive\n\n"
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except OSError:
            pass  # the client went away mid-write
        finally:
            gone.cancel()
            self.hub.unsubscribe(game_id, queue)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidearm-web",
        description="Live box-score page over sidearm.boxscores (settings from SIDEARM_MONGO_URI / SIDEARM_MONGO_DB).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help=f"how often a page without a push connection checks for a new document "
        f"(default {DEFAULT_POLL_SECONDS:g})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from sidearm_assets.web.serving import serve

    args = _parser().parse_args(argv)
    app = create_app(poll_seconds=args.poll_seconds)
    reader: BoxScoreReader = app.state.reader
    # The Mongo URI may hold credentials: only the database name is shown.
    return serve(app, args.host, args.port, "sidearm-web", f"box scores from MongoDB database {reader.database!r}")


if __name__ == "__main__":
    sys.exit(main())
