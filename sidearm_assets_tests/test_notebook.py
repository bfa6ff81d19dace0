"""notebooks/boxscore.ipynb: a valid notebook that reads the three stores with the project settings.

Besides its structure, the notebook's code cells are run top to bottom in a fresh Python process
against the embedded stack (real S3 and MongoDB-wire servers, SQLite), in a bucket, database and
SQLite file of their own, seeded with the shipped game and box scores built by the pipeline's
own code, and what they print is checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from importlib import resources
from pathlib import Path

import pytest

from sidearm_assets import settings

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "boxscore.ipynb"
SETTING_NAMES = {s.name for s in settings.ALL_SETTINGS}


@pytest.fixture(scope="module")
def notebook() -> dict:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def code_cells(notebook: dict) -> list[str]:
    return [source(c) for c in notebook["cells"] if c["cell_type"] == "code"]


def test_notebook_is_nbformat_4_and_committed_without_outputs(notebook):
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["language"] == "python"
    assert len(notebook["cells"]) >= 6
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["source"], (list, str)) and source(cell).strip()
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "clear outputs before committing"
    for code in code_cells(notebook):
        compile(code, str(NOTEBOOK), "exec")  # plain Python: no magics
        assert not re.search(r"^\s*[%!]", code, re.MULTILINE)


def test_notebook_validates_against_the_nbformat_schema():
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.read(str(NOTEBOOK), as_version=4))


def test_notebook_uses_only_settings_that_exist(notebook):
    text = "\n".join(source(c) for c in notebook["cells"])
    env_names = set(re.findall(r"\b(?:SIDEARM_[A-Z0-9_]+|DELAY)\b", text))
    assert env_names, "the notebook names no setting"
    assert env_names <= SETTING_NAMES, f"unknown settings: {sorted(env_names - SETTING_NAMES)}"
    code = "\n".join(code_cells(notebook))
    attributes = set(re.findall(r"\bsettings\.([A-Za-z_][A-Za-z0-9_]*)", code))
    missing = {a for a in attributes if not hasattr(settings, a)}
    assert not missing, f"settings has no {sorted(missing)}"
    assert {"SQL_URL", "S3_ENDPOINT_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET",
            "MONGO_URI", "MONGO_DB", "SPARK_MASTER"} <= attributes
    assert "os.environ" not in code, "read settings through sidearm_assets.settings, not os.environ"


def seed(env: dict[str, str], lines: list[str]) -> dict:
    """The notebook's world: base tables + final tables, the stream, two box-score versions."""
    from sqlalchemy import Column, MetaData, Table, insert

    from sidearm_assets.storage import clients, reference_db
    from sidearm_assets.domain.boxscore import build_boxscore
    from sidearm_assets.domain.games import matchup
    from sidearm_assets.domain.stream import parse_stream

    engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
    reference_db.reset_base_tables(engine)
    teams = reference_db.read_rows(engine, reference_db.teams)
    players = reference_db.read_rows(engine, reference_db.players)
    game = matchup(settings.DEFAULT_GAME_ID, reference_db.read_rows(engine, reference_db.games), teams)

    # Same columns as teams/players (SPEC 6), as the final-tables job writes them.
    final = MetaData()
    teams2 = Table("teams2", final, *(Column(c.name, c.type) for c in reference_db.teams.columns))
    players2 = Table("players2", final, *(Column(c.name, c.type) for c in reference_db.players.columns))
    final.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(teams2), [{**t, "wins": t["wins"] + 1} if t["id"] == 101 else t for t in teams])
        conn.execute(insert(players2), [{**p, "goals": p["goals"] + 100} if p["id"] == 1 else p for p in players])
    engine.dispose()

    body = ("\n".join(lines) + "\n").encode()
    s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
    clients.ensure_bucket(s3, env["SIDEARM_S3_BUCKET"])
    s3.put_object(Bucket=env["SIDEARM_S3_BUCKET"], Key=settings.key_for_game(settings.DEFAULT_GAME_ID), Body=body)

    collection = clients.mongo_client(env["SIDEARM_MONGO_URI"])[env["SIDEARM_MONGO_DB"]]["boxscores"]
    docs = []
    for upto in (12, len(lines)):  # an older and the latest version of the stream
        parsed = parse_stream("\n".join(lines[:upto]) + "\n", teams=game.team_ids)
        doc = build_boxscore(settings.DEFAULT_GAME_ID, parsed, game.home, game.away, players)
        collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        docs.append(doc)
    return {"latest": docs[-1], "parsed": parse_stream(body, teams=game.team_ids), "game": game}


def seed_lake(env: dict[str, str]):
    """The season lake: the default game, completed, as the pipeline writes it (its rows)."""
    from sidearm_assets.storage import reference_db
    from sidearm_assets.lake import store

    completed = resources.files("gamestream").joinpath("games/default.txt").read_bytes().rstrip(b"\n") + b"\n-1 00:00 0 0 0\n"
    engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
    location = store.LakeLocation(
        env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"], env["SIDEARM_S3_BUCKET"]
    )
    report = store.sync_lake(
        location, [(settings.DEFAULT_GAME_ID, completed)],
        schedule=reference_db.read_rows(engine, reference_db.games),
        teams=reference_db.read_rows(engine, reference_db.teams),
        players=reference_db.read_rows(engine, reference_db.players),
        season=2026,
    )
    engine.dispose()
    assert not report.problems
    return location, store.read_events(location).to_pylist()


def test_notebook_runs_against_the_embedded_stack(notebook, embedded_stack, tmp_path):
    suffix = uuid.uuid4().hex[:10]
    env = {
        **embedded_stack,
        "SIDEARM_S3_BUCKET": f"nbtest-{suffix}",
        "SIDEARM_MONGO_DB": f"nbtest_{suffix}",
        "SIDEARM_SQL_URL": f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}",
        "SIDEARM_SPARK_MASTER": "local[1]",
    }
    game_file = resources.files("gamestream").joinpath("games/default.txt")
    lines = game_file.read_text().splitlines()[:30]
    lines.insert(5, "this line is not an event")
    world = seed(env, lines)
    lake, lake_rows = seed_lake(env)
    latest, parsed, game = world["latest"], world["parsed"], world["game"]
    assert latest["seq"] == parsed.line_count == 31

    script = tmp_path / "boxscore_notebook.py"
    script.write_text("\n\n".join(code_cells(notebook)))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SIDEARM_")}, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, f"notebook failed:\n{result.stderr[-5000:]}"

    assert "on local[1]" in out
    assert re.search(r"\|\s*Hartwell Hawks\s*\|\s*11\s*\|\s*2\s*\|\s*Connor Walsh\s*\|\s*6\s*\|\s*48\s*\|\s*21\s*\|", out)
    assert (
        f"stream gamestream.txt (Hartwell Hawks v Millbrook Miners): 31 lines, "
        f"{len(parsed.events)} accepted, 1 rejected, game over: no"
    ) in out
    assert "this line is not an event" in out  # the rejected lines table
    home, away = latest["home"], latest["away"]
    assert f"latest box score of gamestream: seq 31, event {latest['event_id']}, clock {latest['timestamp']}" in out
    assert f"Hartwell Hawks {home['score']} ({home['status']}) - {away['score']} Millbrook Miners ({away['status']})" in out
    assert "box score matches the stream" in out
    assert home["score"] == parsed.score(101) and away["score"] == parsed.score(205)
    # Final tables: the seeded changes show, so they were read from teams2/players2.
    assert re.search(r"\|\s*Hartwell Hawks\s*\|\s*12\s*\|\s*2\s*\|\s*Connor Walsh\s*\|\s*6\s*\|\s*48\s*\|\s*121\s*\|", out)
    assert "no final tables yet" not in out
    # The season lake: one completed game, its leaders through Spark SQL.
    assert f"lake {lake.url}: 1 completed game(s), {len(lake_rows)} events" in out
    goals: dict[int, int] = {}
    for r in lake_rows:
        if r["kind"] == "shot" and r["player_id"] is not None:
            goals[r["player_id"]] = goals.get(r["player_id"], 0) + r["goal"]
    leader_id = max(goals, key=goals.get)
    assert re.search(rf"\|\s*2026\s*\|\s*1\s*\|\s*{leader_id}\s*\|", out), out[-3000:]
    assert "the lake is empty" not in out

