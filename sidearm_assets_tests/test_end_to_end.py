"""End to end on the embedded stack: `dagster dev` with its daemon, the simulator streaming the
default game, and nobody asking for anything: the live sensor writes a document per observed
version and the game-over sensor writes players2/teams2 ("with the daemon")."""

import os

import pytest

from sidearm_assets.local import demo, processes
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.live import live_update
from sidearm_assets.storage.final_tables_db import read_final_tables
from sidearm_assets.local.local_stack import FREE_PORTS, free_port, start_stack
from gamestream.simulator import default_game_path, main as gamestream


@pytest.fixture
def running_dagster(tmp_path, monkeypatch, warm_spark):
    directory = tmp_path / "e2e"
    stack = start_stack(directory, FREE_PORTS)
    for name, value in {**stack.env, **warm_spark}.items():  # final-tables runs on the warm Spark server
        monkeypatch.setenv(name, value)
    try:
        state = demo.start_dagster(directory, {**os.environ}, free_port())
        yield stack.env, state
    finally:
        how = demo.stop(directory)
    # `dagster dev` stopped its webserver and daemon itself; what they left (code
    # servers) ended on SIGTERM: no SIGKILL anywhere
    log = (directory / "dagster.log").read_text(errors="replace")
    assert how is not None and "SIGKILL" not in how, f"dagster dev ended by {how}:\n{log[-3000:]}"
    assert "Dagster services shut down." in log and "did not terminate cleanly" not in log, log[-3000:]
    assert "Daemon threads shut down." in log, log[-3000:]  # its sensor ticks ended, none left in flight


def test_streamed_game_gets_live_documents_and_final_tables_from_the_sensors(running_dagster):
    env, _ = running_dagster
    assert gamestream(["--delay", "0.01"]) == 0
    s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
    final_etag = s3.head_object(Bucket=env["SIDEARM_S3_BUCKET"], Key="gamestream.txt")["ETag"].strip('"')

    boxscores = clients.mongo_client(env["SIDEARM_MONGO_URI"])[env["SIDEARM_MONGO_DB"]]["boxscores"]
    game_lines = default_game_path().read_text().splitlines() + ["-1 00:00 0 0 0"]
    processes.wait_until(lambda: boxscores.find_one({"game_id": "gamestream", "seq": len(game_lines)}), timeout=60,
                         interval=0.2, what="the box score of the default game's last version")
    docs = sorted(boxscores.find({"game_id": "gamestream"}), key=lambda d: d["seq"])
    # one document per observed version: distinct seqs, each _id its event id, the last one final
    assert len({d["seq"] for d in docs}) == len(docs) >= 0.5 * len(game_lines)
    assert all(d["_id"] == d["event_id"] == int(game_lines[d["seq"] - 1].split()[0]) for d in docs)
    # the 00:00 line ends the game by the clock rule and the -1 line follows: from the first final
    # document on, every document is final, and the last one is the -1 line's
    first_final = next(i for i, d in enumerate(docs) if d["final"])
    assert all(d["final"] for d in docs[first_final:]) and docs[-1]["_id"] == -1
    assert not any(d["final"] for d in docs[:first_final])
    assert docs[-1]["seq"] == len(game_lines)

    engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
    teams = reference_db.read_rows(engine, reference_db.teams)
    players = reference_db.read_rows(engine, reference_db.players)
    game = matchup("gamestream", reference_db.read_rows(engine, reference_db.games), teams)
    final_doc = live_update(game, ("\n".join(game_lines) + "\n").encode(), "v", None, players).doc
    assert {k: docs[-1][k] for k in ("home", "away")} == {k: final_doc[k] for k in ("home", "away")}

    # what scripts/demo.sh waits on: the record holds the game as its final object
    processes.wait_until(lambda: demo.final_tables_hold(engine, "gamestream", final_etag), timeout=120,
                         interval=0.5, what="players2/teams2 counting the game's final object")
    players2, teams2 = read_final_tables(engine)
    winner, loser = (("home", "away") if final_doc["home"]["score"] > final_doc["away"]["score"] else ("away", "home"))
    by_id = {t["id"]: t for t in teams2}
    base = {t["id"]: t for t in teams}
    w, lo = final_doc[winner]["teamid"], final_doc[loser]["teamid"]
    assert (by_id[w]["wins"], by_id[w]["losses"]) == (base[w]["wins"] + 1, base[w]["losses"])
    assert (by_id[lo]["wins"], by_id[lo]["losses"]) == (base[lo]["wins"], base[lo]["losses"] + 1)
    in_game = {p["id"]: p for side in ("home", "away") for p in final_doc[side]["players"]}
    for row in players2:
        before = next(p for p in players if p["id"] == row["id"])
        assert row["shots"] == before["shots"] + in_game[row["id"]]["shots"]
        assert row["goals"] == before["goals"] + in_game[row["id"]]["goals"]
