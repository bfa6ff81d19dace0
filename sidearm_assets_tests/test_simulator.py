"""The `gamestream` simulator (SPEC 4): run as a real process against the embedded stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from gamestream import simulator
from sidearm_assets.storage import clients, reference_db
from sidearm_assets.domain.stream import GAME_SECONDS, parse_stream

DEFAULT_GAME = Path(simulator.__file__).resolve().parent / "games" / "default.txt"
GAME_OVER = "-1 00:00 0 0 0"
SHORT_GAME = "0 59:40 101 6 1\n1 59:10 205 12 0\n2 00:00 0 0 0\n"


def gamestream(env: dict[str, str], *args: str, delay: str = "0.001") -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "gamestream"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gamestream"]
    return subprocess.run(
        cmd + list(args), capture_output=True, text=True, timeout=300, env={**os.environ, **env, "DELAY": delay}
    )


@pytest.fixture
def env(embedded_stack, tmp_path) -> dict[str, str]:
    """The stack's settings with a bucket and a sidearmdb of this test's own."""
    return {
        **embedded_stack,
        "SIDEARM_S3_BUCKET": f"sim-{uuid.uuid4().hex[:12]}",
        "SIDEARM_SQL_URL": f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}",
    }


@pytest.fixture
def s3(env):
    return clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])


@pytest.fixture
def sql(env):
    engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
    yield engine
    engine.dispose()


def spoil_reference_tables(engine) -> None:
    """Base data, then changes a reset must undo."""
    reference_db.reset_base_tables(engine)
    with engine.begin() as conn:
        conn.execute(update(reference_db.players).values(shots=0, goals=0))
        conn.execute(update(reference_db.teams).where(reference_db.teams.c.id == 101).values(wins=99))


def base_contents(engine) -> bool:
    """Whether `players` and `teams` hold exactly the base data, besides any league rows."""
    players = [p for p in reference_db.read_rows(engine, reference_db.players) if not reference_db.is_league_player(p["id"])]
    teams = [t for t in reference_db.read_rows(engine, reference_db.teams) if not reference_db.is_league_team(t["id"])]
    return players == [dict(p) for p in reference_db.BASE_PLAYERS] and teams == [dict(t) for t in reference_db.BASE_TEAMS]


def object_text(s3, bucket: str, key: str) -> str:
    body, _ = clients.get_object(s3, bucket, key)
    return body.decode()


def bucket_exists(s3, bucket: str) -> bool:
    return bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_streams_the_default_game(env, s3, sql):
    spoil_reference_tables(sql)
    bucket = env["SIDEARM_S3_BUCKET"]
    assert not bucket_exists(s3, bucket)

    run = gamestream(env)

    assert run.returncode == 0, run.stderr
    game_lines = DEFAULT_GAME.read_text().splitlines()
    assert object_text(s3, bucket, "gamestream.txt") == "\n".join(game_lines + [GAME_OVER]) + "\n"
    assert [o.key for o in clients.list_objects(s3, bucket)] == ["gamestream.txt"]
    clocks = [line.split()[1] for line in game_lines] + ["00:00"]
    assert run.stdout.splitlines() == (
        ["Starting Game Data Stream. Delay: 1 second == 0.001 seconds."]
        + [f"Wrote gamestream.txt to bucket {bucket} at {clock}" for clock in clocks]
        + ["Game Over. Data Stream is complete."]
    )
    assert base_contents(sql)
    assert f"created bucket {bucket}" in run.stderr


def test_every_write_holds_every_line_so_far(env, s3):
    """With versioning on, each put is kept: version k must be exactly the first k lines."""
    bucket = env["SIDEARM_S3_BUCKET"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    run = gamestream(env, "--key", "versions.txt", delay="0")

    assert run.returncode == 0, run.stderr
    lines = DEFAULT_GAME.read_text().splitlines() + [GAME_OVER]
    versions = s3.list_object_versions(Bucket=bucket, Prefix="versions.txt")["Versions"]
    bodies = sorted(
        (s3.get_object(Bucket=bucket, Key="versions.txt", VersionId=v["VersionId"])["Body"].read().decode()
         for v in versions),
        key=len,
    )
    assert bodies == ["\n".join(lines[:k]) + "\n" for k in range(1, len(lines) + 1)]


def test_a_bad_game_file_names_the_line_and_writes_nothing(env, s3, sql, tmp_path):
    spoil_reference_tables(sql)
    bad = tmp_path / "bad.txt"
    bad.write_text("0 59:40 101 6 1\n1 59:10 205 12 0\n2 58:75 101 22 1\n3 57:00 999 4 0\n")

    run = gamestream(env, "--game", str(bad))

    assert run.returncode == 2
    assert f"bad game file {bad}" in run.stderr
    assert "line 3: '2 58:75 101 22 1': clock '58:75' out of range" in run.stderr
    assert "line 4: '3 57:00 999 4 0': team 999 is not playing" in run.stderr
    assert run.stdout == ""
    assert not bucket_exists(s3, env["SIDEARM_S3_BUCKET"])
    assert not base_contents(sql), "the tables were reset although the game file is bad"


def test_reset_only_resets_the_tables_and_touches_no_bucket(env, sql):
    spoil_reference_tables(sql)
    # An S3 endpoint nobody listens on: --reset-only must not need it.
    run = gamestream({**env, "SIDEARM_S3_ENDPOINT_URL": "http://127.0.0.1:9"}, "--reset-only")

    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert base_contents(sql)


def test_no_reset_keeps_the_tables_and_key_names_the_object(env, s3, sql, tmp_path):
    spoil_reference_tables(sql)
    with sql.begin() as conn:
        conn.execute(reference_db.games.insert().values(game_id="rematch", home_teamid=205, away_teamid=101))
    game = tmp_path / "rematch.txt"
    game.write_text(SHORT_GAME)
    bucket = env["SIDEARM_S3_BUCKET"]

    run = gamestream(env, "--game", str(game), "--key", "rematch.txt", "--no-reset", delay="0")

    assert run.returncode == 0, run.stderr
    assert object_text(s3, bucket, "rematch.txt") == SHORT_GAME + GAME_OVER + "\n"
    assert [o.key for o in clients.list_objects(s3, bucket)] == ["rematch.txt"]
    assert run.stdout.splitlines()[1:] == [
        f"Wrote rematch.txt to bucket {bucket} at {clock}" for clock in ("59:40", "59:10", "00:00", "00:00")
    ] + ["Game Over. Data Stream is complete."]
    assert not base_contents(sql), "--no-reset reset the tables"
    assert "warning" not in run.stderr  # the schedule row exists


def test_a_game_without_schedule_row_plays_with_a_warning(env, s3, tmp_path):
    game = tmp_path / "scrimmage.txt"
    game.write_text(SHORT_GAME + "-1 00:00 0 0 0\n")  # its own -1 line: not doubled

    run = gamestream(env, "--game", str(game), "--key", "scrimmage.txt", "--delay", "0")

    assert run.returncode == 0, run.stderr
    assert "no `games` row for 'scrimmage'" in run.stderr
    assert object_text(s3, env["SIDEARM_S3_BUCKET"], "scrimmage.txt") == SHORT_GAME + GAME_OVER + "\n"
    assert run.stdout.splitlines()[0] == "Starting Game Data Stream. Delay: 1 second == 0 seconds."


def test_a_bad_delay_is_refused(env):
    run = gamestream(env, delay="fast")
    assert run.returncode == 2
    assert "DELAY 'fast' is not a number" in run.stderr


# The plan, as a pure function


def test_the_default_game_is_a_believable_game():
    data = DEFAULT_GAME.read_bytes()
    parsed = parse_stream(data, (101, 205))
    shots = parsed.shots
    assert parsed.rejected == []
    assert 60 <= len(shots) <= 80
    assert [e.event_id for e in parsed.events] == list(range(len(parsed.events)))
    assert parsed.events[0].clock == "59:51" and parsed.events[-1].clock == "00:00"
    assert parsed.events[-1].team_id == 0 and parsed.game_over_line is None  # the simulator adds -1
    assert parsed.over_reason == "clock 00:00 not tied"
    home, away = parsed.score(101), parsed.score(205)
    assert home > 0 and away > 0 and home != away
    assert 0.25 <= (home + away) / len(shots) <= 0.35
    rosters = {(p["teamid"], p["number"]) for p in reference_db.BASE_PLAYERS}
    assert all((e.team_id, e.jersey) in rosters for e in shots)
    leader, changes, score = None, 0, {101: 0, 205: 0}
    for e in shots:
        score[e.team_id] += e.goal
        now = None if score[101] == score[205] else max(score, key=score.get)
        if now and leader and now != leader:
            changes += 1
        leader = now or leader
    assert changes >= 3


def test_plan_waits_the_game_time_between_lines():
    steps = simulator.plan_game(b"0 59:51 101 6 0\n1 59:51 205 6 1\n2 58:00 101 12 1\n3 00:00 0 0 0\n", (101, 205))
    assert [(s.text, s.game_seconds) for s in steps] == [
        ("0 59:51 101 6 0", 9),
        ("1 59:51 205 6 1", 9),
        ("2 58:00 101 12 1", 120),
        ("3 00:00 0 0 0", GAME_SECONDS),
        (GAME_OVER, GAME_SECONDS),
    ]


def test_overtime_restarts_the_clock_after_a_tied_00_00():
    steps = simulator.plan_game(b"0 30:00 101 6 1\n1 20:00 205 6 1\n2 00:00 0 0 0\n3 03:10 101 6 1\n", (101, 205))
    assert [s.game_seconds for s in steps] == [1800, 2400, 3600, 3600, 3600 + 190]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 59:40 101 6 1\n\n1 59:00 205 6 0\n", "line 2: '': blank line"),
        ("0 59:40 101 6\n", "line 1: '0 59:40 101 6': expected 5 fields, got 4"),
        ("0 59:40 101 6 1\n0 59:00 205 6 0\n", "line 2: '0 59:00 205 6 0': duplicate event id 0"),
        ("0 59:40 101 6 1\n1 59:50 205 6 0\n", "line 2: '1 59:50 205 6 0': clock 59:50 runs backwards"),
        ("0 59:40 101 6 1\n1 59:30 205 6 0\n2 59:20 300 6 0\n", "line 3: '2 59:20 300 6 0': team 300 is not playing"),
        ("0 59:40 101 6 2\n", "line 1: '0 59:40 101 6 2': goal 2 is not 0 or 1"),
        ("", "no events"),
    ],
)
def test_plan_rejects_a_bad_game_file_naming_the_line(text, expected):
    with pytest.raises(simulator.GameFileError) as err:
        simulator.plan_game(text.encode(), (101, 205) if "300" not in text else None, "g.txt")
    assert expected in str(err.value)


# Services are checked before anything is reset

DOWN_S3 = "http://127.0.0.1:9"  # nobody listens there
DOWN_SQL = "postgresql+psycopg2://postgres@127.0.0.1:9/sidearmdb"


def sql_snapshot(engine) -> dict[str, list[dict]]:
    return {t.name: reference_db.read_rows(engine, t) for t in (reference_db.teams, reference_db.players, reference_db.games)}


@pytest.mark.parametrize("args", [(), ("--games", "3")], ids=["one game", "league"])
def test_s3_down_changes_nothing_and_says_how_to_start_the_stack(env, sql, args):
    spoil_reference_tables(sql)
    before = sql_snapshot(sql)

    run = gamestream({**env, "SIDEARM_S3_ENDPOINT_URL": DOWN_S3}, *args)

    assert run.returncode == 1
    assert f"S3 is not answering at {DOWN_S3}" in run.stderr
    assert "nothing was changed" in run.stderr
    assert 'eval "$(.venv/bin/sidearm-local up --dir .sidearm)"' in run.stderr
    assert run.stdout == ""
    assert sql_snapshot(sql) == before, "gamestream changed sidearmdb although S3 was down"


def test_s3_down_does_not_even_create_the_sqlite_file(env, tmp_path):
    fresh = tmp_path / "never" / "sidearmdb.sqlite"

    run = gamestream({**env, "SIDEARM_S3_ENDPOINT_URL": DOWN_S3, "SIDEARM_SQL_URL": f"sqlite:///{fresh}"})

    assert run.returncode == 1 and "S3 is not answering" in run.stderr
    assert not fresh.exists() and not fresh.parent.exists()


@pytest.mark.parametrize("args", [(), ("--games", "2")], ids=["one game", "league"])
def test_sql_down_touches_no_bucket_and_says_how_to_start_the_stack(env, s3, args):
    run = gamestream({**env, "SIDEARM_SQL_URL": DOWN_SQL}, *args)

    assert run.returncode == 1
    assert "sidearmdb is not answering at postgresql+psycopg2://postgres@127.0.0.1:9/sidearmdb" in run.stderr
    assert "sidearm-local up" in run.stderr
    assert run.stdout == ""
    assert not bucket_exists(s3, env["SIDEARM_S3_BUCKET"])


# Many games: gamestream --games N


def league_rows(engine) -> dict[str, list[dict]]:
    return {
        "teams": [t for t in reference_db.read_rows(engine, reference_db.teams) if reference_db.is_league_team(t["id"])],
        "players": [p for p in reference_db.read_rows(engine, reference_db.players)
                    if reference_db.is_league_player(p["id"])],
        "games": [g for g in reference_db.read_rows(engine, reference_db.games)
                  if reference_db.is_league_game(g["game_id"])],
    }


def test_games_streams_a_league_beside_the_reset_base_data(env, s3, sql):
    from gamestream import league as lg

    spoil_reference_tables(sql)
    bucket = env["SIDEARM_S3_BUCKET"]
    plan = lg.make_league(3, seed=4)

    run = gamestream(env, "--games", "3", "--seed", "4", "--put-interval", "0.005,0.01")

    assert run.returncode == 0, run.stderr
    for game in plan.games:
        assert clients.get_object(s3, bucket, game.key)[0] == game.final_bytes
    assert sorted(o.key for o in clients.list_objects(s3, bucket)) == [g.key for g in plan.games]
    out = run.stdout.splitlines()
    assert out[0] == "Starting League Data Stream: 3 games, a put every 0.005-0.01 seconds per game, starts spread over 0.02 seconds."
    for game in plan.games:
        mine = [line for line in out if game.key in line]
        assert mine == [f"Wrote {game.key} to bucket {bucket} at {line.split()[1]}" for line in game.lines] + [
            f"Game Over. Data Stream is complete for {game.key}."
        ]
    puts = sum(len(g.lines) for g in plan.games)
    assert out[-1].startswith(f"League over: 3 games, {puts} puts in ")
    assert len(out) == 1 + puts + 3 + 1
    assert base_contents(sql), "the base data was not reset"
    assert league_rows(sql) == {
        "teams": sorted(plan.teams, key=lambda t: t["id"]),
        "players": sorted(plan.players, key=lambda p: p["id"]),
        "games": plan.game_rows(),
    }
    assert f"created bucket {bucket}" in run.stderr
    assert "league seed 4: 6 teams" in run.stderr

    spoil_reference_tables(sql)
    again = gamestream(env, "--games", "3", "--seed", "4", "--put-interval", "0,0", "--quiet", "--no-reset")

    assert again.returncode == 0, again.stderr
    assert [line for line in again.stdout.splitlines() if line.startswith("Wrote")] == []
    assert sum(line.startswith("Game Over. Data Stream is complete for league-") for line in again.stdout.splitlines()) == 3
    assert len(reference_db.read_rows(sql, reference_db.teams)) == 2 + 6  # installed again, not duplicated
    assert len(reference_db.read_rows(sql, reference_db.players)) == 20 + len(plan.players)
    assert len(reference_db.read_rows(sql, reference_db.games)) == 1 + 3
    assert not base_contents(sql), "--no-reset reset the tables"
    assert "reset players" not in again.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--games", "2", "--game", "x.txt"), "--game does not apply"),
        (("--games", "2", "--reset-only"), "--reset-only does not apply"),
        (("--games", "0"), "--games must be 1 to 4999"),
        (("--games", "2", "--put-interval", "3,1"), "need 0 <= LO <= HI"),
        (("--games", "2", "--put-interval", "fast"), "is not LO,HI seconds"),
        (("--quiet",), "--quiet only go with --games N"),
    ],
)
def test_bad_league_options_are_refused_before_anything_happens(env, s3, args, expected):
    run = gamestream(env, *args)
    assert run.returncode == 2
    assert expected in run.stderr
    assert not bucket_exists(s3, env["SIDEARM_S3_BUCKET"])
