"""The main job on the embedded stack, end to end (what `scripts/demo.sh` runs).

    python -m sidearm_assets.local.demo run  [--dir .sidearm] [--delay 0.02] [--port 3000] [--stop]
    python -m sidearm_assets.local.demo stop [--dir .sidearm]

`run` starts the embedded stack and `dagster dev` (webserver, daemon, this code location) in the
background, streams the default game with the simulator, waits for the daemon's sensors to write
the live box scores and the final tables, and prints them. Dagster keeps running so the UI can
be browsed; `stop` (or `run --stop`) ends everything it started, by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from sidearm_assets.local import processes
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.local.local_stack import free_port, port_free, start_stack, stop_stack
from sidearm_assets.settings import DEFAULT_GAME_ID, key_for_game


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def _state_path(directory: Path) -> Path:
    return directory / "demo.json"


def start_dagster(directory: Path, env: dict, port: int) -> dict:
    """`dagster dev` on loopback with the project's instance settings; recorded in demo.json."""
    home = env["DAGSTER_HOME"]  # sidearm-local's local instance
    dagster = str(Path(sys.executable).with_name("dagster"))
    log = directory / "dagster.log"
    proc = processes.spawn(
        [dagster, "dev", "-m", "sidearm_assets", "-h", "127.0.0.1", "-p", str(port)], log, env=env, cwd=directory
    )
    state = {"pid": proc.pid, "port": port, "log": str(log), "dagster_home": str(home)}
    _state_path(directory).write_text(json.dumps(state))
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(
        lambda: urllib.request.urlopen(f"{url}/server_info", timeout=2).status == 200,
        timeout=180, interval=0.5, what=f"the Dagster webserver at {url} (log {log})",
    )
    say(f"Dagster UI at {url} (pid {proc.pid}, log {log})")
    return state


# `dagster dev` stops its webserver and daemon itself when it gets SIGTERM (as for Ctrl-C), waiting
# up to 60 s for each: the daemon ends its ticks, so the next start finds none left in flight.
DEV_STOP_GRACE = 130.0


def stop(directory: Path) -> str | None:
    """Stop what `run` started: `dagster dev` (SIGTERM to it alone, SIGKILL only past
    DEV_STOP_GRACE), then the stack. Returns how `dagster dev` ended, None when none was recorded."""
    path = _state_path(directory)
    how = None
    if path.exists():
        state = json.loads(path.read_text())
        how = processes.stop_leader(state["pid"], grace=DEV_STOP_GRACE)
        say(f"stopped dagster dev (pid {state['pid']}, {how})")
        path.unlink()
    report = stop_stack(directory)
    for line in report.stopped + report.skipped:
        say(line)
    return how


def final_tables_hold(engine, game_id: str, etag: str) -> dict | None:
    """The final tables' state once they count `game_id` as the bytes whose ETag is `etag` (the
    record of counted games holds that version), else None. Playing the same game again writes
    the same bytes, which are counted already: the tables are right without a new run."""
    from sidearm_assets.storage.final_tables_db import read_record, read_state

    counted = read_record(engine).get(game_id)
    if counted is None or counted.etag != etag:
        return None
    return read_state(engine)


def _wait_final_tables(engine, etag: str, timeout: float) -> dict:
    """Until players2/teams2 count the game's final object."""
    return processes.wait_until(lambda: final_tables_hold(engine, DEFAULT_GAME_ID, etag),
                                timeout=timeout, interval=0.5, what="players2/teams2 counting the game")


def _print_results(env: dict, engine, started: float) -> None:
    from sidearm_assets.domain.boxscore import markdown_boxscore
    from sidearm_assets.storage.final_tables_db import read_final_tables

    collection = clients.mongo_client(env["SIDEARM_MONGO_URI"])[env["SIDEARM_MONGO_DB"]]["boxscores"]
    doc = collection.find_one({"game_id": DEFAULT_GAME_ID}, sort=[("seq", -1)])
    count = collection.count_documents({"game_id": DEFAULT_GAME_ID})
    print("\n## Live box score (MongoDB sidearm.boxscores, latest document)\n")
    print(markdown_boxscore(doc))
    print(f"{count} box-score documents for game {DEFAULT_GAME_ID}; latest _id {doc['_id']}, final {doc['final']}")
    print("(a document per stream version the live sensor read: versions put between two polls share one;"
          " _id -1 is the document of the game-over line; docs/contract.md)")
    players2, teams2 = read_final_tables(engine)
    base_teams = {t["id"]: t for t in reference_db.read_rows(engine, reference_db.teams)}
    print("\n## Final tables (sidearmdb teams2 / players2)\n")
    for t in teams2:
        b = base_teams.get(t["id"], {})
        print(f"- {t['name']}: {b.get('wins')}-{b.get('losses')} before, {t['wins']}-{t['losses']} after")
    base_players = {p["id"]: p for p in reference_db.read_rows(engine, reference_db.players)}
    changed = [p for p in players2 if base_players.get(p["id"], {}).get("shots") != p["shots"]]
    print(f"- players2: {len(players2)} rows, {len(changed)} with shots from this game")
    print(f"\nWhole demo: {time.monotonic() - started:.0f} s")


def run(args) -> int:
    started = time.monotonic()
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if _state_path(directory).exists():
        say("a previous demo is still recorded: stopping it first")
        stop(directory)
    stack = start_stack(directory)
    env = {**os.environ, **stack.env}
    os.environ.update(stack.env)
    engine = reference_db.make_engine(stack.env["SIDEARM_SQL_URL"])
    collection = clients.mongo_client(env["SIDEARM_MONGO_URI"])[env["SIDEARM_MONGO_DB"]]["boxscores"]
    collection.delete_many({"game_id": DEFAULT_GAME_ID})  # a fresh game; other games are left alone
    s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
    s3.delete_object(Bucket=env["SIDEARM_S3_BUCKET"], Key=key_for_game(DEFAULT_GAME_ID))
    port = args.port if port_free(args.port) else free_port()
    try:
        start_dagster(directory, env, port)
        say(f"streaming the default game at DELAY={args.delay} (a 60:00 game in {3600 * args.delay:.0f} s)")
        from gamestream.simulator import main as gamestream

        if gamestream(["--delay", str(args.delay)]) != 0:
            raise RuntimeError("the simulator failed")
        final_etag = s3.head_object(Bucket=env["SIDEARM_S3_BUCKET"], Key=key_for_game(DEFAULT_GAME_ID))["ETag"]
        processes.wait_until(
            lambda: collection.find_one({"game_id": DEFAULT_GAME_ID, "final": True}),
            timeout=60, what="the final box score in MongoDB",
        )
        say("final box score written by the live sensor; waiting for the game-over sensor's final tables")
        _wait_final_tables(engine, final_etag.strip('"'), timeout=args.final_timeout)
        _print_results(env, engine, started)
    except BaseException:
        say(f"failed; logs in {directory}")
        stop(directory)
        raise
    if args.stop:
        stop(directory)
    else:
        print(f"\nDagster UI: http://127.0.0.1:{port}  (asset lineage, sensor ticks, materializations)")
        print(f'Live page:  eval "$(.venv/bin/sidearm-local up --dir {args.dir})" && .venv/bin/sidearm-web'
              f"  then http://127.0.0.1:8080/games/{DEFAULT_GAME_ID}")
        print(f"Stop all:   .venv/bin/python -m sidearm_assets.local.demo stop --dir {args.dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sidearm-demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="stack + dagster dev + a whole game; prints the results")
    r.add_argument("--dir", default=".sidearm")
    r.add_argument("--delay", type=float, default=0.02, help="real seconds per game second (0.02: 72 s)")
    r.add_argument("--port", type=int, default=3000, help="Dagster UI port (a free one if taken)")
    r.add_argument("--final-timeout", type=float, default=180.0)
    r.add_argument("--stop", action="store_true", help="stop everything at the end")
    s = sub.add_parser("stop", help="stop what `run` started")
    s.add_argument("--dir", default=".sidearm")
    args = parser.parse_args(argv)
    if args.command == "stop":
        stop(Path(args.dir).resolve())
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
