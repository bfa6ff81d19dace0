"""The scorer ingest API: its rules as pure functions, then over HTTP against the embedded stack.

The HTTP tests start `sidearm-ingest` (uvicorn) as real processes on the session's moto S3 server
and SQLite schedule, each module run in its own bucket; every game a test posts to gets its own
schedule row. What the API wrote is read back from the bucket itself and parsed with the
pipeline's own parser, never taken from the API's answers alone.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.ingest import events as ev
from sidearm_assets.ingest.auth import TokenConfigError, bearer, parse_tokens
from sidearm_assets.ingest.app import status_of
from sidearm_assets.ingest.errors import InvalidInput

TEAMS = (101, 205)
HAWKS_TOKEN = "hawks-scorer-token"
MINERS_TOKEN = "miners-scorer-token"
GAME_TOKEN = "one-game-only-token"
OFFICIAL_TOKEN = "league-scoring-desk-token"
PARTNER_TOKEN = "partner-read-only-token"
OTHER_TEAM = 399
TOKENS = (f"team:101={HAWKS_TOKEN}, team:205={MINERS_TOKEN}, game:solo-game={GAME_TOKEN}, game:*={OFFICIAL_TOKEN}, "
          f"read:press={PARTNER_TOKEN}")


@pytest.mark.unit
def test_event_fields_are_checked_and_named():
    ok = ev.parse_event_body({"clock": "12:41", "team_id": 101, "jersey": "6", "goal": 1}, TEAMS)
    assert ok.line(7) == "7 12:41 101 6 1"
    assert ev.parse_event_body({"clock": "00:00", "team_id": 0, "jersey": 0, "goal": False}, TEAMS).line(3) == (
        "3 00:00 0 0 0"
    )
    bad = {
        "clock": [{"team_id": 101, "jersey": "6", "goal": 1}, {"clock": "61:00", "team_id": 101, "jersey": "6", "goal": 1},
                  {"clock": "12:60", "team_id": 101, "jersey": "6", "goal": 1},
                  {"clock": "1241", "team_id": 101, "jersey": "6", "goal": 1},
                  {"clock": "１２:41", "team_id": 101, "jersey": "6", "goal": 1}],
        "team_id": [{"clock": "12:41", "team_id": 300, "jersey": "6", "goal": 1},
                    {"clock": "12:41", "team_id": "101", "jersey": "6", "goal": 1},
                    {"clock": "12:41", "team_id": True, "jersey": "6", "goal": 1}],
        "jersey": [{"clock": "12:41", "team_id": 101, "jersey": "1234", "goal": 1},
                   {"clock": "12:41", "team_id": 101, "jersey": "", "goal": 1},
                   {"clock": "12:41", "team_id": 101, "jersey": "6 1", "goal": 1},
                   {"clock": "12:41", "team_id": 101, "jersey": "²", "goal": 1}],
        "goal": [{"clock": "12:41", "team_id": 101, "jersey": "6", "goal": 2},
                 {"clock": "12:41", "team_id": 101, "jersey": "6", "goal": 1.0},
                 {"clock": "12:41", "team_id": 0, "jersey": "0", "goal": 1}],
        "client_event_id": [{"clock": "12:41", "team_id": 101, "jersey": "6", "goal": 1, "client_event_id": "a b"},
                            {"clock": "12:41", "team_id": 101, "jersey": "6", "goal": 1, "client_event_id": "x" * 65}],
        "team": [{"clock": "12:41", "team": 101, "jersey": "6", "goal": 1}],
    }
    for field, bodies in bad.items():
        for body in bodies:
            with pytest.raises(InvalidInput) as err:
                ev.parse_event_body(body, TEAMS)
            assert err.value.field == field, (body, err.value.body())
    with pytest.raises(InvalidInput) as err:
        ev.parse_event_body(["not", "an", "object"], TEAMS)
    assert err.value.rule == "body"


@pytest.mark.unit
def test_append_assigns_the_next_id_and_never_writes_a_line_the_parser_rejects():
    event = ev.parse_event_body({"clock": "59:00", "team_id": 205, "jersey": "9", "goal": 0}, TEAMS)
    first = ev.append_event(b"", event, TEAMS, None)
    assert (first.data, first.event_id, first.seq, first.next_event_id) == (b"0 59:00 205 9 0\n", 0, 1, 1)
    # a stream with a rejected line and a gap in ids: the next id follows the highest one
    data = b"0 59:00 205 9 0\nnot a line\n5 58:00 101 6 1\n"
    change = ev.append_event(data, event, TEAMS, None)
    assert change.event_id == 6 and change.data.endswith(b"5 58:00 101 6 1\n6 59:00 205 9 0\n")
    # an id that was deleted is never given again (the high-water mark from the object's metadata)
    assert ev.append_event(data, event, TEAMS, 9).event_id == 9
    over = data + b"-1 00:00 0 0 0\n"
    with pytest.raises(ev.IngestError) as err:
        ev.append_event(over, event, TEAMS, None)
    assert status_of(err.value) == 409
    assert ev.end_game(over, "00:00", TEAMS, None) is None
    end = ev.end_game(data, "00:00", TEAMS, None)
    assert end.event_id == -1 and end.data.endswith(b"-1 00:00 0 0 0\n")
    parsed = parse_stream(end.data, TEAMS)
    assert parsed.is_over() and len(parsed.events) == 3


@pytest.mark.unit
def test_corrections_replace_or_delete_one_line_and_refuse_to_reject_others():
    data = b"0 59:00 205 9 0\n1 58:00 101 6 1\n2 57:00 101 22 0\n"
    fix = ev.parse_event_body({"clock": "58:00", "team_id": 101, "jersey": "12", "goal": 1}, TEAMS,
                              allowed=ev.CORRECTION_FIELDS)
    changed = ev.correct_event(data, 1, fix, TEAMS, 3)
    assert changed.data == b"0 59:00 205 9 0\n1 58:00 101 12 1\n2 57:00 101 22 0\n"
    assert changed.next_event_id == 3 and not changed.removed
    deleted = ev.correct_event(data, 2, None, TEAMS, 3)
    assert deleted.data == b"0 59:00 205 9 0\n1 58:00 101 6 1\n" and deleted.removed
    with pytest.raises(ev.IngestError) as err:
        ev.correct_event(data, 7, None, TEAMS, None)
    assert status_of(err.value) == 404
    # moving event 0 to 00:00 with a goal would end the game there and reject the two lines after it
    ending = ev.parse_event_body({"clock": "00:00", "team_id": 205, "jersey": "9", "goal": 1}, TEAMS,
                                 allowed=ev.CORRECTION_FIELDS)
    with pytest.raises(ev.IngestError) as err:
        ev.correct_event(data, 0, ending, TEAMS, None)
    assert status_of(err.value) == 422 and "1 58:00 101 6 1" in err.value.detail


@pytest.mark.unit
def test_recent_client_ids_fit_the_metadata_budget_oldest_dropped_first():
    recent = {f"client-{i:04d}-{'x' * 40}": i for i in range(40)}
    kept, dropped = ev.trim_recent(recent)
    assert list(kept) == list(recent)[-len(kept):] and list(dropped) == list(recent)[: len(dropped)]
    assert len(ev.encode_recent(kept)) <= ev.RECENT_MAX_BYTES and len(kept) + len(dropped) == 40
    assert ev.decode_recent(ev.encode_recent(kept)) == kept
    assert ev.decode_recent("ok=1,bad entry,=3,x=y,neg=-1") == {"ok": 1, "neg": -1}
    small = {"a": 1, "b": 2}
    assert ev.trim_recent(small) == (small, {})


@pytest.mark.unit
def test_games_write_their_ledgers_at_different_posts_and_before_the_metadata_drops_an_id():
    from sidearm_assets.ingest.gamestate import ledger_threshold

    thresholds = [ledger_threshold(f"load-{i:03d}") for i in range(200)]
    assert all(16 <= t < ev.RECENT_MAX_ENTRIES for t in thresholds)
    assert len(set(thresholds)) >= 10  # 50 games started together must not all flush on one post
    assert ledger_threshold("load-007") == ledger_threshold("load-007")  # fixed per game, any process


def test_warm_up_names_each_service_that_does_not_answer(tmp_path):
    """The API starts anyway (requests report what they meet), but says what is not ready."""
    import socket

    from sidearm_assets.ingest.schedule import Schedule
    from sidearm_assets.ingest.service import IngestService
    from sidearm_assets.storage import reference_db
    from sidearm_assets.storage.s3http import SignedS3

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    store = SignedS3(f"http://127.0.0.1:{port}", "a", "b", "bucket", timeout=1)
    missing = IngestService(store, Schedule(f"sqlite:///{tmp_path}/no/such/dir/sidearmdb.sqlite"), parse_tokens(""))
    problems = missing.warm()
    assert [p.split(":")[0] for p in problems] == ["reference database", "object store"]

    url = f"sqlite:///{tmp_path}/sidearmdb.sqlite"
    engine = reference_db.make_engine(url)
    reference_db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert(), [{"game_id": "g-1", "home_teamid": 101, "away_teamid": 205}])
    engine.dispose()
    schedule = Schedule(url)
    assert [p.split(":")[0] for p in IngestService(store, schedule, parse_tokens("")).warm()] == ["object store"]
    assert schedule.reads == 1 and schedule._snapshot[0][0]["game_id"] == "g-1"  # read before the first request


@pytest.mark.unit
def test_tokens_from_configuration():
    tokens = parse_tokens(TOKENS)
    assert tokens.allows(HAWKS_TOKEN, "any-game", (101, 205))
    assert tokens.allows(MINERS_TOKEN, "any-game", (300, 205))
    assert not tokens.allows(HAWKS_TOKEN, "other", (300, 205))  # Hawks do not play there
    assert tokens.allows(GAME_TOKEN, "solo-game", (300, 400))
    assert not tokens.allows(GAME_TOKEN, "another-game", (300, 400))
    assert not tokens.allows(None, "solo-game", (300, 400)) and not tokens.allows("", "solo-game", (1, 2))
    assert parse_tokens("").empty
    for wrong in ("nonsense", "team:abc=long-enough-token", "game:x=short", "player:1=long-enough-token"):
        with pytest.raises(TokenConfigError):
            parse_tokens(wrong)
    assert bearer("Bearer abc") == "abc" and bearer("Basic abc") is None and bearer(None) is None


# Over HTTP against the embedded stack


class Ingest:
    """One `sidearm-ingest` process (uvicorn) on a free port; stopped by pid."""

    def __init__(self, env: dict, log: Path):
        self.proc = processes.spawn([sys.executable, "-m", "sidearm_assets.ingest.app", "--port", "0"], log, env=env)
        self.log = log
        self.url = processes.wait_until(
            lambda: next(iter(re.findall(r"^(http://127\.0\.0\.1:\d+)/$", log.read_text(), re.M)), None)
            if self.proc.poll() is None else (_ for _ in ()).throw(AssertionError(log.read_text())),
            timeout=60, what="sidearm-ingest URL",
        )

    def stop(self):
        processes.stop(self.proc.pid)
        self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(embedded_stack, tmp_path_factory):
    """(env, s3 client, bucket, schedule helper) with a fresh bucket for this module."""
    from sqlalchemy import delete, insert, select

    from sidearm_assets.storage import clients, reference_db

    bucket = f"ingest-{uuid.uuid4().hex[:10]}"
    env = {**__import__("os").environ, **embedded_stack, settings.S3_BUCKET.name: bucket,
           settings.INGEST_TOKENS.name: TOKENS}
    s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                           env[settings.S3_SECRET_KEY.name])
    clients.ensure_bucket(s3, bucket)
    engine = reference_db.make_engine(env[settings.SQL_URL.name])

    with engine.begin() as conn:  # a third team, so some game can be played without the Hawks
        if not conn.execute(select(reference_db.teams).where(reference_db.teams.c.id == OTHER_TEAM)).first():
            conn.execute(insert(reference_db.teams).values(id=OTHER_TEAM, name="Test Opponents",
                                                           conference="Test", wins=0, losses=0))

    added: list[str] = []

    def schedule(game_id: str, home: int = 101, away: int = 205) -> str:
        with engine.begin() as conn:
            conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=home, away_teamid=away))
        added.append(game_id)
        return game_id

    yield env, s3, bucket, schedule
    # the stack is the session's: leave its schedule and teams as they were
    with engine.begin() as conn:
        conn.execute(delete(reference_db.games).where(reference_db.games.c.game_id.in_(added)))
        conn.execute(delete(reference_db.teams).where(reference_db.teams.c.id == OTHER_TEAM))
    engine.dispose()


@pytest.fixture(scope="module")
def api(stack, tmp_path_factory):
    server = Ingest(stack[0], tmp_path_factory.mktemp("ingest") / "ingest.log")
    yield server.url
    server.stop()
    assert not processes.alive(server.proc.pid)


def http(method: str, url: str, body=None, token: str | None = OFFICIAL_TOKEN, raw: bytes | None = None):
    """(status, JSON or text) without any proxy; errors are answers too."""
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, payload, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    return status, (json.loads(payload) if "json" in ctype else payload.decode())


def stored(stack, game_id: str) -> bytes | None:
    env, s3, bucket, _ = stack
    try:
        return s3.get_object(Bucket=bucket, Key=f"{game_id}.txt")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def shot(clock="50:00", team_id=101, jersey="6", goal=0, **extra):
    return {"clock": clock, "team_id": team_id, "jersey": jersey, "goal": goal, **extra}


def new_game(stack, prefix="g") -> str:
    return stack[3](f"{prefix}-{uuid.uuid4().hex[:10]}")


def test_events_are_appended_with_the_next_id(stack, api):
    game = new_game(stack)
    answers = [http("POST", f"{api}/games/{game}/events", shot(c, t, j, g))
               for c, t, j, g in (("59:40", 205, "9", 0), ("58:10", 101, "6", 1), ("57:00", 101, "77", 1))]
    assert [s for s, _ in answers] == [201, 201, 201]
    assert [a["event_id"] for _, a in answers] == [0, 1, 2] and answers[-1][1]["seq"] == 3
    data = stored(stack, game)
    assert data == b"0 59:40 205 9 0\n1 58:10 101 6 1\n2 57:00 101 77 1\n"
    parsed = parse_stream(data, TEAMS)
    assert not parsed.rejected and parsed.score(101) == 2 and parsed.score(205) == 0
    status, text = http("GET", f"{api}/games/{game}/stream", token=PARTNER_TOKEN)  # a read-only token reads
    assert status == 200 and text.encode() == data
    assert http("GET", f"{api}/games/never-posted/stream", token=PARTNER_TOKEN)[0] == 404


def test_invalid_events_are_a_400_naming_the_field_and_write_nothing(stack, api):
    game = new_game(stack)
    assert http("POST", f"{api}/games/{game}/events", shot("59:00"))[0] == 201
    before = stored(stack, game)
    cases = [
        (shot("75:00"), "clock"), (shot(team_id=999), "team_id"), (shot(jersey="1234"), "jersey"),
        (shot(goal=3), "goal"), ({"clock": "50:00", "team_id": 101, "goal": 0}, "jersey"),
        ({**shot(), "shooter": "6"}, "shooter"), (shot(client_event_id="has space"), "client_event_id"),
    ]
    for body, field in cases:
        status, answer = http("POST", f"{api}/games/{game}/events", body)
        assert status == 400 and answer["field"] == field, (body, answer)
        assert field in answer["detail"]
    status, answer = http("POST", f"{api}/games/{game}/events", raw=b"{not json")
    assert status == 400 and answer["error"] == "invalid JSON"
    status, answer = http("POST", f"{api}/games/{game}/events", raw=b"x" * 5000)
    assert status == 413
    status, answer = http("POST", f"{api}/games/not-on-the-schedule/events", shot())
    assert status == 404 and answer["field"] == "game_id" and "games table" in answer["detail"]
    assert http("POST", f"{api}/games/bad%20id/events", shot())[0] == 400
    assert stored(stack, game) == before
    assert stored(stack, "not-on-the-schedule") is None


def test_writes_need_a_valid_token_and_a_refusal_writes_nothing(stack, api):
    game = new_game(stack)
    other = stack[3](f"away-{uuid.uuid4().hex[:8]}", home=205, away=OTHER_TEAM)  # the Hawks do not play here
    for token in (None, "wrong-token-value"):
        status, answer = http("POST", f"{api}/games/{game}/events", shot(), token=token)
        assert status == 401 and answer["error"] == "unauthorized", token
        assert http("POST", f"{api}/games/{game}/end", token=token)[0] == 401
    status, answer = http("POST", f"{api}/games/{game}/events", shot(), token=GAME_TOKEN)  # another game's token
    assert status == 403 and answer["rule"] == "scope"
    assert http("POST", f"{api}/games/{other}/events", shot(team_id=205), token=HAWKS_TOKEN)[0] == 403
    assert stored(stack, game) is None and stored(stack, other) is None
    assert http("POST", f"{api}/games/{game}/events", shot(team_id=205), token=MINERS_TOKEN)[0] == 201
    assert http("DELETE", f"{api}/games/{game}/events/0", token="wrong-token-value")[0] == 401
    assert http("PUT", f"{api}/games/{game}/events/0", shot(), token=None)[0] == 401
    assert stored(stack, game) == b"0 50:00 205 6 0\n"
    solo = stack[3]("solo-game", home=101, away=205)
    assert http("POST", f"{api}/games/{solo}/events", shot(), token=GAME_TOKEN)[0] == 201


def test_a_retried_post_is_applied_once_even_long_after(stack, api, tmp_path):
    game = new_game(stack)
    first = http("POST", f"{api}/games/{game}/events", shot("59:00", client_event_id="tablet-1:0001"))
    again = http("POST", f"{api}/games/{game}/events", shot("59:00", client_event_id="tablet-1:0001"))
    assert first[0] == 201 and again[0] == 200
    assert again[1]["duplicate"] is True and again[1]["event_id"] == first[1]["event_id"] == 0
    # 60 more events: the first id leaves the object's metadata for the ledger, and still counts
    for i in range(60):
        status, _ = http("POST", f"{api}/games/{game}/events",
                         shot(f"{58 - i // 60:02d}:{59 - i % 60:02d}", client_event_id=f"tablet-1:{i + 2:04d}"))
        assert status == 201
    env, s3, bucket, _ = stack
    ledger = json.loads(s3.get_object(Bucket=bucket, Key=f"ingest-ledger/{game}.json")["Body"].read())
    assert ledger["clients"]["tablet-1:0001"] == 0
    # a second API process (a restart, or another instance) knows it too
    second = Ingest(env, tmp_path / "second.log")
    try:
        for url in (api, second.url):
            status, answer = http("POST", f"{url}/games/{game}/events", shot("59:00", client_event_id="tablet-1:0001"))
            assert status == 200 and answer["event_id"] == 0 and answer["duplicate"]
        status, answer = http("POST", f"{second.url}/games/{game}/events", shot("40:00", client_event_id="tablet-1:0060"))
        assert status == 200 and answer["event_id"] == 59
    finally:
        second.stop()
    lines = stored(stack, game).decode().splitlines()
    assert len(lines) == 61 and [int(line.split()[0]) for line in lines] == list(range(61))


def test_two_writers_racing_on_one_game_lose_nothing(stack, api, tmp_path):
    """Two API processes, four scorers each, posting at once to one game: every event lands once."""
    game = new_game(stack)
    env = stack[0]
    second = Ingest(env, tmp_path / "second.log")
    per_scorer = 15
    results: list[tuple[str, int, dict]] = []
    errors: list[BaseException] = []
    first_failures: list[tuple[str, int, dict]] = []
    start = threading.Barrier(8)

    def scorer(url: str, name: str):
        try:
            start.wait(timeout=30)
            for i in range(per_scorer):
                cid = f"{name}-{i}"
                status, answer = http("POST", f"{url}/games/{game}/events", shot("45:00", client_event_id=cid))
                if status not in (200, 201):  # a refused post is retried by the scorer, as a real one would
                    first_failures.append((cid, status, answer))
                    status, answer = http("POST", f"{url}/games/{game}/events", shot("45:00", client_event_id=cid))
                results.append((cid, status, answer))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        # Each process reads the schedule and the game once first, so the race starts warm on both.
        for url, cid in ((api, "warm-a"), (second.url, "warm-b")):
            status, answer = http("POST", f"{url}/games/{game}/events", shot("45:00", client_event_id=cid))
            assert status == 201
            results.append((cid, status, answer))
        before = [http("GET", f"{url}/healthz")[1]["counters"] for url in (api, second.url)]
        threads = [threading.Thread(target=scorer, args=(url, f"{tag}{n}"))
                   for url, tag in ((api, "a"), (second.url, "b")) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not [t for t in threads if t.is_alive()], "scorers still posting after 120 s"
        after = [http("GET", f"{url}/healthz")[1]["counters"] for url in (api, second.url)]
    finally:
        second.stop()
    assert not errors
    assert not first_failures
    total = 2 + 8 * per_scorer
    assert len(results) == total and {s for _, s, _ in results} == {201}, [r for r in results if r[1] != 201]
    data = stored(stack, game)
    parsed = parse_stream(data, TEAMS)
    assert not parsed.rejected and len(parsed.events) == total
    ids = sorted(a["event_id"] for _, _, a in results)
    assert ids == [e.event_id for e in parsed.events] == list(range(total))
    # the race really happened: puts were refused (412) or read back replaced, and written again
    raced = sum(a[k] - b[k] for a, b in zip(after, before) for k in ("conflicts", "verify_retries"))
    assert raced >= 1, after


def test_corrections_rewrite_the_object(stack, api):
    game = new_game(stack)
    for c, t, j, g in (("59:00", 205, "9", 0), ("58:00", 101, "6", 1), ("57:00", 101, "22", 1)):
        assert http("POST", f"{api}/games/{game}/events", shot(c, t, j, g))[0] == 201
    status, answer = http("PUT", f"{api}/games/{game}/events/1", shot("58:00", 101, "12", 1))
    assert status == 200 and answer["line"] == "1 58:00 101 12 1"
    assert http("DELETE", f"{api}/games/{game}/events/2")[0] == 200
    assert stored(stack, game) == b"0 59:00 205 9 0\n1 58:00 101 12 1\n"
    status, answer = http("POST", f"{api}/games/{game}/events", shot("56:00", 205, "9", 1))
    assert answer["event_id"] == 3  # id 2 was deleted, never given again
    assert http("DELETE", f"{api}/games/{game}/events/2")[0] == 404
    assert http("PUT", f"{api}/games/{game}/events/zero", shot())[0] == 400
    status, answer = http("PUT", f"{api}/games/{game}/events/0", shot("00:00", 205, "9", 1))
    assert status == 422 and "reject" in answer["detail"]
    assert stored(stack, game) == b"0 59:00 205 9 0\n1 58:00 101 12 1\n3 56:00 205 9 1\n"


def test_end_of_game(stack, api):
    game = new_game(stack)
    assert http("POST", f"{api}/games/{game}/events", shot("01:00", 101, "6", 1))[0] == 201
    assert http("POST", f"{api}/games/{game}/end", {"clock": "99:99"})[1]["field"] == "clock"
    status, answer = http("POST", f"{api}/games/{game}/end")
    assert status == 201 and answer["event_id"] == -1
    again = http("POST", f"{api}/games/{game}/end")
    assert again[0] == 200 and again[1]["duplicate"]
    late = http("POST", f"{api}/games/{game}/events", shot("00:30"))
    assert late[0] == 409 and late[1]["error"] == "game over"
    data = stored(stack, game)
    assert data == b"0 01:00 101 6 1\n-1 00:00 0 0 0\n" and parse_stream(data, TEAMS).is_over()
    # a correction after the end is still possible, and deleting the -1 line reopens the game
    assert http("PUT", f"{api}/games/{game}/events/0", shot("01:00", 101, "22", 1))[0] == 200
    assert http("DELETE", f"{api}/games/{game}/events/-1")[0] == 200
    assert http("POST", f"{api}/games/{game}/events", shot("00:30"))[0] == 201
    assert stored(stack, game) == b"0 01:00 101 22 1\n1 00:30 101 6 0\n"


def test_a_process_new_to_a_game_appends_after_what_is_there_and_knows_its_client_ids(stack, api, tmp_path):
    """A process that has not written a game yet presumes it has no object (one lookup fewer per
    first post); the put's If-None-Match must catch the presumption when the object exists: the
    post lands after the existing lines, and a client id applied by another process is a duplicate."""
    game = new_game(stack)
    first = [http("POST", f"{api}/games/{game}/events", shot(c, client_event_id=f"a-{n}"))
             for n, c in enumerate(("59:00", "58:00", "57:00"))]
    assert [s for s, _ in first] == [201, 201, 201]
    second = Ingest(stack[0], tmp_path / "second.log")
    try:
        again = http("POST", f"{second.url}/games/{game}/events", shot("59:00", client_event_id="a-1"))
        assert again[0] == 200 and again[1]["duplicate"] and again[1]["event_id"] == 1
        status, answer = http("POST", f"{second.url}/games/{game}/events", shot("56:00", client_event_id="b-0"))
        assert status == 201 and answer["event_id"] == 3
        fresh_game = new_game(stack)  # and a game nobody wrote: created by the first put
        assert http("POST", f"{second.url}/games/{fresh_game}/events", shot("59:30"))[1]["event_id"] == 0
    finally:
        second.stop()
    assert parse_stream(stored(stack, game), TEAMS).line_count == 4
    assert stored(stack, fresh_game) == b"0 59:30 101 6 0\n"


def test_a_retired_game_is_a_409_until_restored(stack, api, tmp_path):
    """A write to a game retired from the top level (storage/retire.py) must not start an empty
    stream over the finished game: 409 naming the restore command, nothing written."""
    env, s3, bucket, _ = stack
    game = new_game(stack)
    assert http("POST", f"{api}/games/{game}/events", shot("01:00", 101, "6", 1))[0] == 201
    assert http("POST", f"{api}/games/{game}/end")[0] == 201
    final = stored(stack, game)
    s3.put_object(Bucket=bucket, Key=f"completed/{game}.txt", Body=final)  # as the live path files it
    s3.delete_object(Bucket=bucket, Key=f"{game}.txt")  # sidearm-games retire

    status, answer = http("PUT", f"{api}/games/{game}/events/0", shot("01:00", 101, "22", 1))
    assert status == 409 and answer["error"] == "game retired"
    assert f"sidearm-games restore {game}" in answer["detail"]
    second = Ingest(env, tmp_path / "second.log")  # a process that never wrote the game: its first post
    try:
        status, answer = http("POST", f"{second.url}/games/{game}/events", shot("00:30"))
        assert status == 409 and answer["error"] == "game retired"
    finally:
        second.stop()
    assert stored(stack, game) is None

    s3.put_object(Bucket=bucket, Key=f"{game}.txt", Body=final)  # sidearm-games restore
    assert http("PUT", f"{api}/games/{game}/events/0", shot("01:00", 101, "22", 1))[0] == 200
    assert stored(stack, game) == final.replace(b"101 6 1", b"101 22 1")


def test_an_object_past_the_live_size_limit_is_refused(stack, tmp_path):
    """The live path does not read objects over SIDEARM_LIVE_MAX_OBJECT_BYTES: the API never grows one past it."""
    server = Ingest({**stack[0], settings.LIVE_MAX_OBJECT_BYTES.name: "60"}, tmp_path / "small.log")
    try:
        game = new_game(stack)
        url = f"{server.url}/games/{game}"
        answers = [http("POST", f"{url}/events", shot(f"50:{s:02d}")) for s in range(10, 16)]
        assert [s for s, _ in answers][:3] == [201, 201, 201]  # 16 bytes a line: 3 fit in 60
        assert answers[3][0] == 409 and answers[3][1]["error"] == "object too large"
        assert stored(stack, game) == b"0 50:10 101 6 0\n1 50:11 101 6 0\n2 50:12 101 6 0\n"
        assert http("DELETE", f"{url}/events/1")[0] == 200  # shrinking is always allowed
        assert http("POST", f"{url}/events", shot("49:00"))[0] == 201
    finally:
        server.stop()


def test_health_and_unknown_routes(api):
    status, answer = http("GET", f"{api}/healthz", token=None)
    assert status == 200 and answer["ok"] is True
    assert http("GET", f"{api}/nothing", token=None)[0] == 404
    status, answer = http("PATCH", f"{api}/games/x/events", token=None)
    assert status == 405 and answer["rule"] == "method"


def test_object_store_down_is_a_503_and_nothing_is_claimed(stack, tmp_path):
    from sidearm_assets.local.local_stack import free_port

    env = {**stack[0], settings.S3_ENDPOINT_URL.name: f"http://127.0.0.1:{free_port()}"}
    server = Ingest(env, tmp_path / "down.log")
    try:
        game = new_game(stack)
        started = time.monotonic()
        status, answer = http("POST", f"{server.url}/games/{game}/events", shot())
        assert status == 503 and "object store" in answer["error"] and time.monotonic() - started < 30
        assert http("GET", f"{server.url}/healthz", token=None)[0] == 503
    finally:
        server.stop()


# End to end: a correction through the API reaches the box score and the final tables


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_correction_flows_to_the_box_score_and_the_final_tables(embedded_stack, warm_spark, tmp_path):
    """Through the daemon: a game posted and ended over the API is counted in players2/teams2;
    a goal moved to another player afterwards updates the final document and the tables, once."""
    import os

    from sidearm_assets.storage import clients, final_tables_db, reference_db
    from sidearm_assets.domain.final import completed_game, season_totals
    from sidearm_assets.domain.games import matchup
    from sidearm_assets.local.dagster_processes import start_dagster
    from sidearm_assets.local.local_instance import write_local_instance

    sql_url = f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}"
    engine = reference_db.make_engine(sql_url)
    reference_db.reset_base_tables(engine)
    game_id = f"fix-{uuid.uuid4().hex[:8]}"
    from sqlalchemy import insert

    with engine.begin() as conn:
        conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=101, away_teamid=205))
    bucket, database = f"fix-{uuid.uuid4().hex[:8]}", f"fix_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **embedded_stack, **warm_spark, settings.SQL_URL.name: sql_url, settings.S3_BUCKET.name: bucket,
           settings.MONGO_DB.name: database, settings.INGEST_TOKENS.name: TOKENS,
           "DAGSTER_HOME": str(write_local_instance(tmp_path / "dagster_home"))}
    s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                           env[settings.S3_SECRET_KEY.name])
    clients.ensure_bucket(s3, bucket)
    boxscores = clients.mongo_client(env[settings.MONGO_URI.name])[database]["boxscores"]

    def expected():
        data = s3.get_object(Bucket=bucket, Key=f"{game_id}.txt")["Body"].read()
        games, teams, players = (reference_db.read_rows(engine, t)
                                 for t in (reference_db.games, reference_db.teams, reference_db.players))
        m = matchup(game_id, games, teams)
        done = season_totals(players, teams, [completed_game(parse_stream(data, m.team_ids), m)])
        return done.players, done.teams

    daemon = start_dagster(tmp_path, env)  # a code server and the daemon against it
    api = Ingest(env, tmp_path / "ingest.log")
    try:
        url = f"{api.url}/games/{game_id}"
        for clock, team, jersey, goal in (("50:00", 101, "6", 1), ("40:00", 205, "9", 1), ("30:00", 101, "6", 1)):
            assert http("POST", f"{url}/events", shot(clock, team, jersey, goal))[0] == 201
        assert http("POST", f"{url}/end")[0] == 201
        first = expected()
        processes.wait_until(lambda: final_tables_db.read_final_tables(engine) == first, timeout=400, interval=0.5,
                             what=f"players2/teams2 counting {game_id}; daemon log:\n{tmp_path / 'daemon.log'}")
        walsh = next(p for p in first[0] if p["id"] == 1)
        assert (walsh["shots"], walsh["goals"]) == (48 + 2, 21 + 2)

        # the second Hawks goal was Ryan Murphy's (#12), not Connor Walsh's
        assert http("PUT", f"{url}/events/2", shot("30:00", 101, "12", 1))[0] == 200
        corrected = expected()
        assert corrected != first
        processes.wait_until(
            lambda: (boxscores.find_one({"game_id": game_id}, sort=[("seq", -1)]) or {}).get("home", {}).get("players")
            and next(p for p in boxscores.find_one({"game_id": game_id}, sort=[("seq", -1)])["home"]["players"]
                     if p["number"] == "12")["goals"] == 1,
            timeout=60, interval=0.2, what="the final document showing the corrected goal")
        processes.wait_until(lambda: final_tables_db.read_final_tables(engine) == corrected, timeout=400,
                             interval=0.5, what="players2/teams2 recomputed after the correction")
        players = {p["id"]: (p["shots"], p["goals"]) for p in corrected[0]}
        assert players[1] == (48 + 1, 21 + 1) and players[2] == (41 + 1, 17 + 1)  # counted once, not on top
        assert {t["id"]: (t["wins"], t["losses"]) for t in corrected[1]} == {101: (12, 2), 205: (9, 5)}
    finally:
        api.stop()
        daemon.stop()
        engine.dispose()
        clients.mongo_client(env[settings.MONGO_URI.name]).drop_database(database)
