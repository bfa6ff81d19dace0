"""The live box-score page (SPEC 5 seen by its readers): Flask pages over `sidearm.boxscores`,
and a push channel, served together by uvicorn.

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
import sys

from flask import Flask, Response, jsonify, render_template, request

from sidearm_assets import settings
from sidearm_assets.storage import clients

COLLECTION = "boxscores"
DEFAULT_POLL_SECONDS = 2.0  # the fallback when a page cannot hold a push connection
HEARTBEAT_SECONDS = 15.0  # a comment line on an idle push connection keeps proxies from closing it


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


def create_app(reader: BoxScoreReader | None = None, poll_seconds: float = DEFAULT_POLL_SECONDS) -> Flask:
    from pymongo.errors import PyMongoError

    app = Flask(__name__)
    app.json.sort_keys = False  # keep the document's own field order
    app.config["BOXSCORES"] = reader or BoxScoreReader.from_settings()
    app.config["POLL_MS"] = int(poll_seconds * 1000)

    def store() -> BoxScoreReader:
        return app.config["BOXSCORES"]

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(PyMongoError)
    def mongo_down(exc):
        where = f"MongoDB database {store().database!r}"
        message = f"The box-score store is unreachable ({where}): {type(exc).__name__}. Retrying helps once it is back."
        app.logger.warning("%s: %s", message, exc)
        if wants_json():
            return jsonify(error="box-score store unavailable", detail=message), 503
        return render_template("error.html", title="Box scores unavailable", message=message, retry=5), 503

    @app.errorhandler(404)
    def not_found(exc):
        if wants_json():
            return jsonify(error="not found", detail=getattr(exc, "description", "")), 404
        return render_template("error.html", title="Not found", message="There is no such page.", retry=None), 404

    @app.get("/")
    def index():
        return render_template("index.html", games=store().games())

    @app.get("/games/<game_id>")
    def game_page(game_id: str):
        doc = store().latest(game_id)
        if doc is None:
            message = (
                f"There is no box score for game {game_id!r} yet. Its first document appears once the "
                f"stream object {settings.key_for_game(game_id)} has an accepted line; this page checks again "
                f"every 5 seconds."
            )
            return render_template("error.html", title="No such game", message=message, retry=5), 404
        resp = Response(
            render_template(
                "game.html",
                doc=doc,
                api_url=f"/api/games/{game_id}",
                push_url=f"/api/games/{game_id}/events",
                poll_ms=app.config["POLL_MS"],
            )
        )
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.get("/api/games/<game_id>")
    def game_json(game_id: str):
        doc = store().latest(game_id)
        if doc is None:
            return jsonify(error="not found", detail=f"no box score for game {game_id!r}"), 404
        resp = jsonify(jsonable(doc))
        # Polled every few seconds: revalidate each time, answer 304 when the document is unchanged.
        resp.headers["Cache-Control"] = "no-cache"
        resp.add_etag()
        return resp.make_conditional(request)

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


def create_asgi_app(
    reader: BoxScoreReader | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    push_seconds: float | None = None,
):
    """The whole of `sidearm-web`: the push channel and health in Starlette, the Flask pages under it."""
    from a2wsgi import WSGIMiddleware
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from sidearm_assets.web.push import PushHub

    flask_app = create_app(reader, poll_seconds)
    store: BoxScoreReader = flask_app.config["BOXSCORES"]
    if push_seconds is None:
        push_seconds = float(settings.WEB_PUSH_POLL_SECONDS.value())

    def latest_json(game_id: str) -> dict | None:
        doc = store.latest(game_id)
        return None if doc is None else jsonable(doc)

    hub = PushHub(latest_json, push_seconds)

    async def healthz(request):
        return JSONResponse({"ok": True, "push": hub.stats()})

    app = Starlette(routes=[
        Route("/api/games/{game_id}/events", EventStream(hub)),
        Route("/healthz", healthz),
        Mount("/", app=WSGIMiddleware(flask_app, workers=16)),
    ])
    app.state.hub = hub
    app.state.flask = flask_app
    return app


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
    app = create_asgi_app(poll_seconds=args.poll_seconds)
    reader: BoxScoreReader = app.state.flask.config["BOXSCORES"]
    # The Mongo URI may hold credentials: only the database name is shown.
    return serve(app, args.host, args.port, "sidearm-web", f"box scores from MongoDB database {reader.database!r}")


if __name__ == "__main__":
    sys.exit(main())
