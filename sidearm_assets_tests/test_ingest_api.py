"""The scorer API as an API: its published schema (fuzzed with schemathesis), what no client can do
to it (sizes, slow bodies, hostile JSON, odd ids and methods), and who may write what (scopes).

The HTTP tests run one `sidearm-ingest` process on the session's embedded stack, in a bucket of
their own; what was written is read back from the bucket itself.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sidearm_assets import settings
from sidearm_assets.ingest import bodies
from sidearm_assets.ingest.auth import parse_tokens
from sidearm_assets.ingest.errors import Forbidden, InvalidInput, NotFound
from sidearm_assets.ingest.gamestate import Stats
from sidearm_assets.local import processes

OFFICIAL = "official-desk-token"
HAWKS = "hawks-bench-token"
GAME_ONLY = "one-game-scorer-token"
PARTNER = "press-partner-token"
TOKENS = f"game:*={OFFICIAL}, team:101={HAWKS}, game:api-solo={GAME_ONLY}, read:press={PARTNER}"


# Pure pieces


@pytest.mark.unit
def test_hostile_json_is_refused_naming_the_rule():
    cases = {
        b"[" * 2000 + b"]" * 2000: "nesting",
        b'{"clock": "12:41", "\\ud800": 1}': "unicode",
        b'{"team_id": NaN}': "number",
        b'{"team_id": -Infinity}': "number",
        b'{"team_id": ' + b"9" * 5000 + b"}": "number size",
        b'{"team_id": 1e999}': "number size",
        b"\xff\xfe{}": "utf-8",
        b"{not json": "syntax",
    }
    for raw, rule in cases.items():
        with pytest.raises(InvalidInput) as err:
            bodies.parse_json(raw)
        assert err.value.rule == rule, (raw[:40], err.value.body())
        json.dumps(err.value.body())  # the refusal itself can always be written
    assert bodies.parse_json(b'{"a": ["[", {"b": "]]]"}]}') == {"a": ["[", {"b": "]]]"}]}
    assert bodies.nesting_depth(b'{"x": "[[[[[[[[[[[["}') == 1
    assert bodies.parse_json(b"  ", required=False) is None


@pytest.mark.unit
def test_scopes_decide_who_writes_which_lines():
    tokens = parse_tokens(TOKENS)
    official = tokens.authenticate(OFFICIAL).writer_for("any", (101, 205))
    official.check_line(0, "ending")  # an official scorer writes every line
    hawks = tokens.authenticate(HAWKS).writer_for("any", (101, 205))
    hawks.check_line(101, "posting")
    for team in (205, 0):
        with pytest.raises(Forbidden) as err:
            hawks.check_line(team, "posting")
        assert err.value.rule == "scope" and err.value.field == "team_id"
    with pytest.raises(Forbidden):
        tokens.authenticate(HAWKS).writer_for("elsewhere", (300, 205))  # the Hawks do not play there
    with pytest.raises(Forbidden):
        tokens.authenticate(PARTNER).writer_for("any", (101, 205))
    assert tokens.authenticate(GAME_ONLY).writer_for("api-solo", (300, 400)).official
    shared = parse_tokens(f"game:a={GAME_ONLY},game:b={GAME_ONLY}")  # one token for two games
    assert shared.allows(GAME_ONLY, "a", (1, 2)) and shared.allows(GAME_ONLY, "b", (1, 2))
    assert not shared.allows(GAME_ONLY, "c", (1, 2))


class MemoryStore:
    """An object store in memory with conditional puts, whose next reads can be made to fail."""

    bucket = "memory"

    def __init__(self):
        self.objects: dict[str, tuple[bytes, str, dict]] = {}
        self.failing_reads: list[int] = []  # HTTP statuses the next reads answer
        self.reads: list[str] = []

    def read(self, key):
        from sidearm_assets.storage.objects import StoredObject
        from sidearm_assets.storage.s3http import S3Error

        self.reads.append(key)
        if self.failing_reads:
            raise S3Error("GET", key, self.failing_reads.pop(0), b"<Code>InternalError</Code>")
        data, etag, metadata = self.objects.get(key, (b"", None, {}))
        return StoredObject(data, etag, dict(metadata))

    def put(self, key, data, etag, metadata, content_type):
        from sidearm_assets.storage.s3http import Conflict

        current = self.objects.get(key)
        if (etag is None) != (current is None) or (current and current[1] != etag):
            raise Conflict(key)
        version = uuid.uuid4().hex
        self.objects[key] = (data, version, dict(metadata))
        return version

    def head_bucket(self):
        pass


class OneGame:
    def matchup(self, game_id):
        from sidearm_assets.domain.games import Matchup

        if game_id != "g-1":
            raise NotFound("unscheduled game", f"no {game_id}", "game_id")
        return Matchup(game_id, {"id": 101}, {"id": 205})


@pytest.mark.unit
def test_a_store_answering_5xx_is_retried_like_a_lost_race_and_other_answers_are_not():
    from sidearm_assets.ingest.errors import Unavailable
    from sidearm_assets.ingest.service import IngestService

    store = MemoryStore()
    service = IngestService(store, OneGame(), parse_tokens(TOKENS), retry_seconds=2)
    official = service.authenticate(OFFICIAL)
    store.failing_reads = [500, 503]  # the first post's lookup, then its reread
    result = service.post_event("g-1", shot("59:00", client_event_id="c-1"), official)
    assert result.status == 201 and result.body["event_id"] == 0
    assert service.stats.snapshot()["write_errors"] == 2 and not store.failing_reads
    service._states.clear()  # the next write reads the object again
    store.failing_reads = [403]
    with pytest.raises(Unavailable) as err:
        service.post_event("g-1", shot("58:00"), official)
    assert "answered InternalError" in err.value.detail  # the store's own code
    assert store.objects["g-1.txt"][0] == b"0 59:00 101 6 0\n"
    assert service.post_event("g-1", shot("59:00", client_event_id="c-1"), official).body["duplicate"]


@pytest.mark.unit
def test_two_processes_alternating_on_one_game_reread_the_ledger_only_when_it_changed():
    """After a lost race the object is read again; its ledger only when the object was written
    against another ledger version than the one this process holds. Retries stay duplicates."""
    from sidearm_assets.ingest.service import IngestService

    store = MemoryStore()
    a, b = (IngestService(store, OneGame(), parse_tokens(TOKENS)) for _ in range(2))
    official = a.authenticate(OFFICIAL)
    for n in range(40):  # past the ledger threshold and the metadata's 32 ids
        assert a.post_event("g-1", shot("59:00", client_event_id=f"c-{n}"), official).status == 201
    assert "ingest-ledger/g-1.json" in store.objects
    assert b.post_event("g-1", shot("58:00", client_event_id="b-0"), official).body["event_id"] == 40
    store.reads.clear()
    assert a.post_event("g-1", shot("57:00", client_event_id="a-x"), official).body["event_id"] == 41  # lost, retried
    assert a.stats.snapshot()["conflicts"] == 1
    assert store.reads == ["g-1.txt"], store.reads  # the object again, not the unchanged ledger
    for service in (a, b):  # the first ids left the object's metadata: the ledger still knows them
        again = service.post_event("g-1", shot("59:00", client_event_id="c-0"), official)
        assert again.status == 200 and again.body["duplicate"] and again.body["event_id"] == 0
    lines = store.objects["g-1.txt"][0].decode().splitlines()
    assert [int(line.split()[0]) for line in lines] == list(range(42))


@pytest.fixture
def parsed_objects(monkeypatch) -> list[bytes]:
    """Every object the ingest parse cache has the pipeline's parser read whole, in order."""
    from sidearm_assets.ingest import events as ev

    calls = []
    real = ev.StreamParser.feed_all
    monkeypatch.setattr(ev.StreamParser, "feed_all", lambda self, data: calls.append(data) or real(self, data))
    return calls


@pytest.mark.unit
def test_objects_are_parsed_once_within_a_byte_budget(parsed_objects):
    from sidearm_assets.ingest import events as ev

    calls = parsed_objects
    cache = ev._ParseCache(budget_bytes=40)
    first, second = b"0 59:00 101 6 0\n", b"0 59:00 101 6 0\n1 58:00 205 9 1\n"
    assert cache.parse(first, (101, 205)).line_count == 1
    assert cache.parse(first, (101, 205)) is cache.parse(first, (101, 205)) and calls == [first]
    cache.parse(second, (101, 205))  # 16 + 32 bytes: over the budget, the oldest goes
    cache.parse(first, (101, 205))
    assert calls == [first, second, first]
    assert cache.parse(first, (205, 101)) is not cache.parse(first, (101, 205))  # teams are part of the key


@pytest.mark.unit
def test_the_parse_cache_keeps_a_bounded_number_of_objects(parsed_objects):
    from sidearm_assets.ingest import events as ev

    calls = parsed_objects
    cache = ev._ParseCache(max_items=3)
    objects = [f"{i} 59:00 101 6 0\n".encode() for i in range(1, 6)]
    for data in objects:  # a few bytes each: far under the byte budget, over the count
        cache.parse(data, (101, 205))
    assert len(cache) == 3
    cache.parse(objects[-1], (101, 205))  # the newest are kept
    assert calls == objects
    cache.parse(objects[0], (101, 205))  # the oldest went: parsed again
    assert calls == [*objects, objects[0]] and len(cache) == 3



@pytest.mark.unit
def test_an_append_parses_its_own_line_only_and_agrees_with_a_whole_parse(parsed_objects, monkeypatch):
    from sidearm_assets.domain.stream import parse_stream
    from sidearm_assets.ingest import events as ev

    monkeypatch.setattr(ev, "_parses", ev._ParseCache())
    teams = (101, 205)
    data = b"1 59:00 101 6 0\n2 58:00 205 9 1\n"
    change = ev.append_event(data, ev.EventInput(clock="57:00", team_id=101, jersey="12", goal=1), teams, None)
    again = ev.append_event(change.data, ev.EventInput(clock="56:00", team_id=205, jersey="22", goal=0), teams, None)
    assert parsed_objects == [data]  # the first object read whole, each new line alone
    assert ev.parse_once(again.data, teams) == parse_stream(again.data, teams, keep_rejected=None)
    assert (change.event_id, again.event_id, again.seq) == (3, 4, 4)
    # Line ends the API rewrites (`\r\n`, no final newline): the new object is parsed whole.
    crlf = b"1 59:00 101 6 0\r\n2 58:00 205 9 1"
    rewritten = ev.append_event(crlf, ev.EventInput(clock="57:00", team_id=101, jersey="12", goal=1), teams, None)
    assert rewritten.data == b"1 59:00 101 6 0\n2 58:00 205 9 1\n3 57:00 101 12 1\n"
    assert parsed_objects[-1] == rewritten.data
    assert ev.parse_once(rewritten.data, teams) == parse_stream(rewritten.data, teams, keep_rejected=None)


@pytest.mark.unit
def test_a_write_leaves_only_the_games_latest_object_in_the_parse_cache(monkeypatch):
    from sidearm_assets.ingest import events as ev

    cache = ev._ParseCache()
    monkeypatch.setattr(ev, "_parses", cache)
    teams = (101, 205)
    data = b"1 59:00 101 6 0\n"
    change = ev.append_event(data, ev.EventInput(clock="58:00", team_id=205, jersey="9", goal=1), teams, None)
    assert len(cache) == 1 and cache.parse(change.data, teams).line_count == 2  # the new object, parsed once
    ended = ev.end_game(change.data, "00:00", teams, None)
    corrected = ev.correct_event(ended.data, 1, None, teams, None)
    assert len(cache) == 1 and cache.parse(corrected.data, teams).line_count == 2


@pytest.mark.unit
def test_counters_are_exact_under_threads():
    stats = Stats()
    threads = [threading.Thread(target=lambda: [stats.add("writes") for _ in range(20000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.snapshot()["writes"] == 160000


def test_schedule_reads_are_shared_rate_limited_and_never_block_a_known_game(tmp_path):
    from sidearm_assets.ingest.schedule import Schedule
    from sidearm_assets.storage import reference_db

    url = f"sqlite:///{tmp_path}/sidearmdb.sqlite"
    engine = reference_db.make_engine(url)
    reference_db.reset_base_tables(engine)
    with engine.begin() as conn:
        conn.execute(reference_db.games.insert(), [{"game_id": "known", "home_teamid": 101, "away_teamid": 205}])
    schedule = Schedule(url, min_interval=0.5)
    schedule.load()
    unknown_answers: list[str] = []

    def ask_unknown():
        try:
            schedule.matchup(f"nobody-{uuid.uuid4().hex[:6]}")
        except NotFound as exc:
            unknown_answers.append(exc.field)

    started = time.monotonic()
    flood = [threading.Thread(target=ask_unknown) for _ in range(40)]
    for t in flood:
        t.start()
    known_waits = []
    for _ in range(20):  # a known game answers from the snapshot while the flood waits for reads
        asked = time.monotonic()
        assert schedule.matchup("known").team_ids == (101, 205)
        known_waits.append(time.monotonic() - asked)
    for t in flood:
        t.join()
    elapsed = time.monotonic() - started
    assert unknown_answers == ["game_id"] * 40
    assert schedule.reads - 1 <= 2 + elapsed / 0.5, (schedule.reads, elapsed)  # shared and rate-limited
    assert max(known_waits) < 0.25, known_waits
    with engine.begin() as conn:  # a game added to the schedule is found without a restart
        conn.execute(reference_db.games.insert(), [{"game_id": "added", "home_teamid": 205, "away_teamid": 101}])
    assert schedule.matchup("added").team_ids == (205, 101)
    engine.dispose()


# Over HTTP


@pytest.fixture(scope="module")
def stack(embedded_stack):
    from sqlalchemy import delete, insert

    from sidearm_assets.storage import clients, reference_db

    bucket = f"ingest-api-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, **embedded_stack, settings.S3_BUCKET.name: bucket, settings.INGEST_TOKENS.name: TOKENS}
    s3 = clients.s3_client(env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name],
                           env[settings.S3_SECRET_KEY.name])
    clients.ensure_bucket(s3, bucket)
    engine = reference_db.make_engine(env[settings.SQL_URL.name])
    added: list[str] = []

    def schedule(game_id: str) -> str:
        with engine.begin() as conn:
            conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=101, away_teamid=205))
        added.append(game_id)
        return game_id

    yield env, s3, bucket, schedule
    with engine.begin() as conn:
        conn.execute(delete(reference_db.games).where(reference_db.games.c.game_id.in_(added)))
    engine.dispose()


@pytest.fixture(scope="module")
def api_process(stack, tmp_path_factory):
    """(URL, pid) of one sidearm-ingest process."""
    log = tmp_path_factory.mktemp("ingest-api") / "ingest.log"
    proc = processes.spawn([sys.executable, "-m", "sidearm_assets.ingest.app", "--port", "0"], log, env=stack[0])
    try:
        yield processes.wait_until(
            lambda: next(iter(re.findall(r"^(http://127\.0\.0\.1:\d+)/$", log.read_text(), re.M)), None)
            if proc.poll() is None else (_ for _ in ()).throw(AssertionError(log.read_text())),
            timeout=60, what="sidearm-ingest URL"), proc.pid
    finally:
        processes.stop(proc.pid)
        proc.wait(timeout=5)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def api(api_process):
    return api_process[0]


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def call(method: str, url: str, body=None, token: str | None = OFFICIAL, raw: bytes | None = None,
         headers: dict | None = None):
    """(status, headers, JSON or text) without any proxy; errors are answers too."""
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            status, payload, got = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        status, payload, got = err.code, err.read(), err.headers
    ctype = got.get("Content-Type", "")
    return status, got, (json.loads(payload) if "json" in ctype else payload.decode())


def raw_exchange(url: str, head: str, body_parts: list[bytes] = (), pause: float = 0.0, wait: float = 10.0):
    """Send a hand-written request (head, then body parts) and return (status, JSON, seconds to answer)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=wait) as sock:
        started = time.monotonic()
        sock.sendall(head.encode())
        for part in body_parts:
            time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:
                break  # the server answered and closed: what it said is below
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < int(
                re.search(rb"(?i)content-length: *(\d+)", answer).group(1) if re.search(rb"(?i)content-length", answer)
                else 0):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        took = time.monotonic() - started
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), json.loads(payload or b"null"), took


def stored(stack, game_id: str) -> bytes | None:
    env, s3, bucket, _ = stack
    try:
        return s3.get_object(Bucket=bucket, Key=f"{game_id}.txt")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def shot(clock="50:00", team_id=101, jersey="6", goal=0, **extra):
    return {"clock": clock, "team_id": team_id, "jersey": jersey, "goal": goal, **extra}


def test_schema_and_docs_are_served(api):
    status, _, schema = call("GET", f"{api}/openapi.json", token=None)
    assert status == 200 and schema["openapi"].startswith("3.1")
    operations = {(path, method): op for path, item in schema["paths"].items() for method, op in item.items()}
    assert {p for p, _ in operations} >= {"/games/{game_id}/events", "/games/{game_id}/end",
                                          "/games/{game_id}/events/{event_id}", "/games/{game_id}/stream", "/healthz"}
    for (path, method), op in operations.items():
        if path.startswith("/games"):
            assert {"400", "401", "404", "503"} <= set(op["responses"]), (path, method)
            assert op.get("security"), (path, method)
    from sidearm_assets.ingest.app import STATUS, WHEN

    assert set(STATUS.values()) <= set(WHEN)  # every refusal the service can make is described
    post = operations[("/games/{game_id}/events", "post")]
    assert {"403", "408", "409", "413", "415", "422"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
    status, _, page = call("GET", f"{api}/docs", token=None)
    assert status == 200 and "openapi.json" in page


def test_big_slow_and_chunked_bodies_are_refused_before_they_cost_anything(stack, api):
    game = stack[3](f"api-{uuid.uuid4().hex[:8]}")
    path = f"/games/{game}/events"
    # 64 MB declared, no token: refused at once, nothing read
    status, answer, took = raw_exchange(api, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                             f"Content-Length: {64 << 20}\r\n\r\n", [b"x" * 5000])
    assert status in (401, 413) and took < 2, (status, answer, took)
    # 10 MB declared with a valid token, 5 KB sent: 413 naming Content-Length, at once
    status, answer, took = raw_exchange(api, f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OFFICIAL}\r\n"
                                             f"Content-Type: application/json\r\nContent-Length: {10 << 20}\r\n\r\n",
                                        [b"x" * 5000])
    assert status == 413 and answer["rule"] == "Content-Length" and took < 2, (answer, took)
    # chunked (no length): counted while read, refused past the limit
    chunk = b"x" * 1500
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 4 + [b"0\r\n\r\n"]
    status, answer, _ = raw_exchange(api, f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OFFICIAL}\r\n"
                                          f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", parts)
    assert status == 413 and answer["rule"] == "body size"
    # a sender that stops half-way: answered within the request timeout
    status, answer, took = raw_exchange(api, f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OFFICIAL}\r\n"
                                             f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
                                        [b'{"clock": '], wait=bodies.BODY_TIMEOUT_SECONDS + 10)
    assert status == 408 and answer["rule"] == "request timeout" and took < bodies.BODY_TIMEOUT_SECONDS + 3
    assert stored(stack, game) is None


def test_eight_senders_of_64_mb_bodies_cost_the_api_no_memory(stack, api_process):
    """Each declares 64 MB and sends 2 MB (with and without a token): all refused, nothing buffered."""
    url, pid = api_process
    game = stack[3](f"api-{uuid.uuid4().hex[:8]}")
    before = rss_mb(pid)
    answers: list = []

    def sender(n: int):
        auth = f"Authorization: Bearer {OFFICIAL}\r\n" if n % 2 else ""
        answers.append(raw_exchange(url, f"POST /games/{game}/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: "
                                         f"application/json\r\nContent-Length: {64 << 20}\r\n\r\n",
                                    [b"[" * (256 << 10)] * 8))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(status for status, _, _ in answers) == [401] * 4 + [413] * 4, answers
    assert rss_mb(pid) - before < 20, (before, rss_mb(pid))  # the bodies were never read into memory
    assert stored(stack, game) is None


def test_hostile_bodies_ids_and_methods_are_4xx_naming_the_rule(stack, api):
    game = stack[3](f"api-{uuid.uuid4().hex[:8]}")
    url = f"{api}/games/{game}"
    assert call("POST", f"{url}/events", raw=b"[" * 1800 + b"]" * 1800, token=None)[0] == 401  # no token: unread
    for raw, rule in ((b"[" * 1800 + b"]" * 1800, "nesting"), (b'{"\\ud800": 1}', "unicode"),
                      (b'{"clock": "50:00", "team_id": NaN, "jersey": "6", "goal": 0}', "number"),
                      (b'{"team_id": ' + b"1" * 400 + b"}", "number size")):
        status, _, answer = call("POST", f"{url}/events", raw=raw)
        assert status == 400 and answer["rule"] == rule, (raw[:30], answer)
    status, _, answer = call("POST", f"{url}/events", raw=b"clock=50:00", headers={"Content-Type": "text/plain"})
    assert status == 415 and answer["rule"] == "Content-Type"
    assert call("POST", f"{url}/events", shot("59:00"))[0] == 201
    for wrong in ("-0", "00", "+0", "0x0", "99999999999"):
        status, _, answer = call("DELETE", f"{url}/events/{wrong}")
        assert status == 400 and answer["field"] == "event_id", (wrong, answer)
    assert stored(stack, game) == b"0 59:00 101 6 0\n"  # `-0` deleted nothing
    status, headers, answer = call("PATCH", f"{url}/events/0")
    assert status == 405 and set(headers["Allow"].split(", ")) == {"PUT", "DELETE"} and answer["rule"] == "method"
    status, headers, _ = call("GET", f"{url}/events", token=None)
    assert status == 405 and headers["Allow"] == "POST"


def test_without_a_token_nothing_is_learned_about_the_schedule(stack, api):
    scheduled = stack[3](f"api-{uuid.uuid4().hex[:8]}")
    answers = [call(m, f"{api}/games/{g}/{p}", body, token=token)
               for g in (scheduled, f"never-{uuid.uuid4().hex[:8]}") for token in (None, "not-a-real-token")
               for m, p, body in (("POST", "events", shot()), ("POST", "end", None), ("GET", "stream", None),
                                  ("DELETE", "events/0", None))]
    assert {(s, json.dumps(a)) for s, _, a in answers} == {(401, json.dumps(answers[0][2]))}
    status, _, health = call("GET", f"{api}/healthz", token=None)
    assert status == 200 and health == {"ok": True}  # the public sees healthy or not, nothing else
    status, _, health = call("GET", f"{api}/healthz", token=PARTNER)
    assert health["bucket"] == stack[2] and "writes" in health["counters"]


def test_each_scope_writes_what_it_may_and_nothing_else(stack, api):
    game = stack[3](f"api-{uuid.uuid4().hex[:8]}")
    url = f"{api}/games/{game}"
    # a team's bench scorer: its own team's shots, and corrections of those
    assert call("POST", f"{url}/events", shot("59:00", 101, "6", 1), token=HAWKS)[0] == 201
    for body in (shot("58:00", 205, "9", 1), shot("58:00", 0, "0", 0)):  # the other team's shot, a marker
        status, _, answer = call("POST", f"{url}/events", body, token=HAWKS)
        assert status == 403 and answer["rule"] == "scope" and answer["field"] == "team_id"
    assert call("POST", f"{url}/events", shot("57:00", 205, "9", 1))[0] == 201  # the official scorer: any team
    assert call("PUT", f"{url}/events/0", shot("59:00", 101, "12", 1), token=HAWKS)[0] == 200
    assert call("PUT", f"{url}/events/1", shot("57:00", 205, "22", 1), token=HAWKS)[0] == 403
    assert call("PUT", f"{url}/events/0", shot("59:00", 205, "12", 1), token=HAWKS)[0] == 403  # to the other team
    assert call("DELETE", f"{url}/events/1", token=HAWKS)[0] == 403
    assert call("POST", f"{url}/end", token=HAWKS)[0] == 403
    # a partner reads and never writes
    assert call("POST", f"{url}/events", shot("56:00"), token=PARTNER)[0] == 403
    status, _, text = call("GET", f"{url}/stream", token=PARTNER)
    assert status == 200 and text == "0 59:00 101 12 1\n1 57:00 205 9 1\n"
    # the official scorer ends and reopens; a team scorer may not reopen
    assert call("POST", f"{url}/end")[0] == 201
    assert call("DELETE", f"{url}/events/-1", token=HAWKS)[0] == 403
    assert call("DELETE", f"{url}/events/-1")[0] == 200
    # one game's scorer: that game only
    assert call("POST", f"{url}/events", shot("55:00"), token=GAME_ONLY)[0] == 403
    assert stored(stack, game) == b"0 59:00 101 12 1\n1 57:00 205 9 1\n"


# The schema, fuzzed: every operation, every phase and every check of schemathesis, with and without a token


@pytest.mark.parametrize("token", [OFFICIAL, None], ids=["with-token", "without-token"])
def test_schema_fuzzed_with_schemathesis(api, token, tmp_path):
    import subprocess

    command = [str(Path(sys.executable).with_name("st")), "run", f"{api}/openapi.json", "--checks", "all",
               "--max-examples", "25", "--seed", "21", "--no-color"]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert re.search(r"\b([1-9][0-9]*) generated, \1 passed\b", report), report  # every case, every check
