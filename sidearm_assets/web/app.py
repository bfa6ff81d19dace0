"""The live box-score page (SPEC 5 seen by its readers): a small Flask app over `sidearm.boxscores`.

Every request that shows a game is one indexed query, `find_one({"game_id": g}, sort seq -1)`,
the query SPEC 5 promises web developers. The page renders the document as it is: it formats
numbers but computes nothing the document should hold (scores, statuses, pct, records all come
from it). While the game is on, a few lines of JavaScript poll the JSON endpoint and re-render
when `seq` changes, and stop once the document is final.

Routes:
    /                     every game with a document (one aggregation: the latest document per game)
    /games/<game_id>      the box-score page (404 page for a game without a document)
    /api/games/<game_id>  the latest document as JSON (404 / 503 JSON errors)

Run `sidearm-web [--host 127.0.0.1] [--port 8080]`; settings come from the environment
(`SIDEARM_MONGO_URI`, `SIDEARM_MONGO_DB`, see settings.py), like every other part of the project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from flask import Flask, Response, jsonify, render_template, request

from sidearm_assets import clients, settings

COLLECTION = "boxscores"
DEFAULT_POLL_SECONDS = 2.0


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
        help=f"how often an open page checks for a new document (default {DEFAULT_POLL_SECONDS:g})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from werkzeug.serving import make_server

    args = _parser().parse_args(argv)
    app = create_app(poll_seconds=args.poll_seconds)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit) as exc:  # werkzeug reports a port in use itself, then exits
        print(f"sidearm-web: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    reader: BoxScoreReader = app.config["BOXSCORES"]
    # stdout carries the URL only (tests and scripts read it); the Mongo URI may hold credentials.
    print(f"http://{args.host}:{server.server_port}/", flush=True)
    print(
        f"sidearm-web: serving box scores from MongoDB database {reader.database!r} "
        f"on http://{args.host}:{server.server_port}/ (Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
