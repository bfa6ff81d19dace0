"""What a scorer may post, and what it does to the stream object: pure functions, no I/O.

A posted event is checked field by field (a 4xx naming the field), then the new object is built
and parsed again with the pipeline's own parser (`domain.stream.parse_stream`), so the API
never writes a line the live box score would reject. Event ids are assigned here: one more than
the highest id the game has ever had (`next_event_id`), so an id deleted by a correction is never
reused (document ids are built from event ids).

Client event ids make a retried post idempotent. The object's user metadata carries the newest
few (`RECENT_HEADER`), and a per-game ledger object holds every one that has left that list
(see ingest/service.py for the protocol); this module only encodes and trims the list.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sidearm_assets.domain.stream import GAME_OVER_EVENT_ID, GAME_SECONDS, MAX_ID, ParsedStream, StreamParser
from sidearm_assets.ingest.errors import IngestError, InvalidInput, NotFound, Rejected, StateConflict, invalid

EVENT_FIELDS = ("clock", "team_id", "jersey", "goal", "client_event_id")
CORRECTION_FIELDS = ("clock", "team_id", "jersey", "goal")
END_FIELDS = ("clock",)
GAME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
CLIENT_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")
EVENT_ID = re.compile(r"-1|0|[1-9][0-9]{0,9}")  # the stream's own rule: canonical, so `-0` and `007` are no ids
JERSEY = re.compile(r"[0-9]{1,3}")
MAX_TEAM_ID = MAX_ID  # the stream's range for ids

# S3 user metadata of the stream object (lower case: S3 returns it so).
NEXT_ID_HEADER = "sidearm-next-event-id"
RECENT_HEADER = "sidearm-recent-clients"
WRITES_HEADER = "sidearm-writes"  # ids of the newest writes, this version's own last
LEDGER_HEADER = "sidearm-ledger"  # the ledger version (ETag) the writer knew: it holds every id dropped so far
WRITES_KEPT = 8
RECENT_MAX_ENTRIES = 32
RECENT_MAX_BYTES = 1500  # S3 allows 2 KB of user metadata in all


@dataclass(frozen=True)
class EventInput:
    clock: str
    team_id: int
    jersey: str
    goal: int
    client_event_id: str | None = None

    def line(self, event_id: int) -> str:
        return f"{event_id} {self.clock} {self.team_id} {self.jersey} {self.goal}"


def check_game_id(game_id: str) -> str:
    if not GAME_ID.fullmatch(game_id or ""):
        raise InvalidInput(
            "invalid game id",
            f"game id {game_id!r} must be 1-100 ASCII letters, digits, '_', '.' or '-' (it names the object "
            f"<game_id>.txt)", "game_id",
        )
    return game_id


def check_event_id(text: str) -> int:
    """An event id in a path, written as the stream writes it (`-1`, `0`, `17`; never `-0` or `017`)."""
    if not EVENT_ID.fullmatch(text or ""):
        raise invalid("event_id", f"event id {text!r} is not an event id as the stream writes it: -1, 0 or a "
                                  f"positive integer of at most 10 digits, without leading zeros or sign")
    return int(text)


def _object(body, allowed: tuple[str, ...]) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput("invalid body", "the body must be a JSON object", rule="body")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(unknown[0], f"unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
    return body


def _required(body: dict, name: str):
    if name not in body or body[name] is None:
        raise invalid(name, f"{name} is required")
    return body[name]


def parse_clock_field(value, name: str = "clock") -> str:
    """`mm:ss` in ASCII digits within 00:00..60:00 (SPEC 2)."""
    if not isinstance(value, str) or not (m := CLOCK.fullmatch(value)):
        raise invalid(name, f"{name} must be a string mm:ss (for example \"12:41\"), got {value!r}")
    minutes, seconds = int(m.group(1)), int(m.group(2))
    if seconds > 59 or minutes * 60 + seconds > GAME_SECONDS:
        raise invalid(name, f"{name} {value!r} is outside 00:00..60:00")
    return value


def _integer(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, f"{name} must be a JSON integer, got {value!r}")
    return value


def parse_event_body(body, team_ids: tuple[int, int], allowed: tuple[str, ...] = EVENT_FIELDS) -> EventInput:
    """A posted event checked against SPEC 2 and the schedule's two teams; InvalidInput otherwise."""
    return check_teams(parse_event_fields(body, allowed), team_ids)


def parse_event_fields(body, allowed: tuple[str, ...] = EVENT_FIELDS) -> EventInput:
    """The fields of a posted event, each checked on its own (no schedule needed: `check_teams` follows)."""
    body = _object(body, allowed)
    clock = parse_clock_field(_required(body, "clock"))
    team_id = _integer(_required(body, "team_id"), "team_id")
    if not 0 <= team_id <= MAX_TEAM_ID:
        raise invalid("team_id", f"team_id must be 0 (a marker line) or a team id up to {MAX_TEAM_ID}, got {team_id}")
    jersey = _required(body, "jersey")
    if isinstance(jersey, int) and not isinstance(jersey, bool) and 0 <= jersey <= 999:
        jersey = str(jersey)
    if not isinstance(jersey, str) or not JERSEY.fullmatch(jersey):
        raise invalid("jersey", f"jersey must be 1 to 3 ASCII digits, got {jersey!r}")
    goal = _required(body, "goal")
    if isinstance(goal, bool):
        goal = int(goal)
    if not isinstance(goal, int) or goal not in (0, 1):
        raise invalid("goal", f"goal must be 0 or 1 (or false/true), got {goal!r}")
    client_event_id = body.get("client_event_id")
    if client_event_id is not None and (
        not isinstance(client_event_id, str) or not CLIENT_EVENT_ID.fullmatch(client_event_id)
    ):
        raise invalid("client_event_id", "client_event_id must be 1-64 ASCII letters, digits, '.', '_', ':' or '-'")
    return EventInput(clock, team_id, jersey, goal, client_event_id)


def check_teams(event: EventInput, team_ids: tuple[int, int]) -> EventInput:
    """The rules that need the schedule: the team plays this game; a marker line (team 0) is no goal."""
    if event.team_id != 0 and event.team_id not in team_ids:
        raise invalid("team_id", f"team_id {event.team_id} is not playing this game (teams {team_ids[0]} and "
                                 f"{team_ids[1]}; 0 marks a line that is no shot)")
    if event.team_id == 0 and event.goal:
        raise invalid("goal", "a marker line (team_id 0) cannot be a goal")
    return event


def parse_end_body(body) -> str:
    """`POST /end` takes an optional clock (default 00:00) for its `-1` line."""
    body = _object(body if body is not None else {}, END_FIELDS)
    return parse_clock_field(body["clock"]) if body.get("clock") is not None else "00:00"


class _ParseCache:
    """The pipeline's parse of recent objects, every rejected line kept, within a bound.

    A post's new object is the next post's old one: kept here, each object is parsed once, not
    twice (measured: an append to a 300-line object cost 3.1 ms of CPU with two parses), and an
    append parses only its own line (`StreamParser.extended`) on top of the old object's parser.
    Only each game's latest object is worth keeping: a write forgets the object it replaced, and
    the cache is bounded by a number of objects as well as bytes. A parse is about one Python
    object per line, and every full garbage collection of the API scans them while the requests
    wait: bounded by 32 MB alone, the cache held 0.4 million objects after the 6,000 versions of
    `bench/ingest_load.py --events 120` (~2 million at the budget; a full collection over 0.4
    million takes about 0.1 s on an idle core)."""

    def __init__(self, max_items: int = 512, budget_bytes: int = 32 << 20):
        self.max_items = max_items
        self.budget = budget_bytes
        self._items: OrderedDict[tuple[bytes, tuple[int, int]], StreamParser] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def parser(self, data: bytes, team_ids: tuple[int, int]) -> StreamParser:
        """The parser that has read all of `data` (do not feed it: `extended` makes a new one)."""
        key = (data, tuple(team_ids))
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        return self.keep(data, team_ids, StreamParser(tuple(team_ids), keep_rejected=None).feed_all(data))

    def parse(self, data: bytes, team_ids: tuple[int, int]) -> ParsedStream:
        return self.parser(data, team_ids).parsed

    def keep(self, data: bytes, team_ids: tuple[int, int], parser: StreamParser) -> StreamParser:
        key = (data, tuple(team_ids))
        with self._lock:
            if key not in self._items:
                self._items[key] = parser
                self._bytes += len(data)
            while self._items and (self._bytes > self.budget or len(self._items) > self.max_items):
                (old, _), _ = self._items.popitem(last=False)
                self._bytes -= len(old)
        return parser

    def forget(self, data: bytes, team_ids: tuple[int, int]) -> None:
        """Drop an object's parse: a write replaced it with the game's next object."""
        with self._lock:
            if self._items.pop((data, tuple(team_ids)), None) is not None:
                self._bytes -= len(data)


_parses = _ParseCache()


def parse_once(data: bytes, team_ids: tuple[int, int]) -> ParsedStream:
    """`domain.stream.parse_stream` of an object (all rejected lines kept), parsed once."""
    return _parses.parse(data, team_ids)


def render(lines: list[str]) -> bytes:
    """The simulator's layout: one line each, a final newline."""
    return ("\n".join(lines) + "\n").encode() if lines else b""


def text_lines(data: bytes) -> list[str]:
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise StateConflict("unreadable stream", "the game's object is not UTF-8; fix it by hand first") from None


def next_event_id(parsed: ParsedStream, high_water: int | None) -> int:
    """One more than any event id the game has had (deleted ids are not reused)."""
    ids = [e.event_id for e in parsed.events if e.event_id != GAME_OVER_EVENT_ID]
    return max([high_water or 0, *(i + 1 for i in ids)])


def _rejected_texts(parsed: ParsedStream) -> dict[int, str]:
    return {r.line_no: r.reason for r in parsed.rejected}


def _check_new_line(parsed: ParsedStream, line_no: int, what: str) -> None:
    reason = _rejected_texts(parsed).get(line_no)
    if reason:
        raise Rejected("rejected by the stream rules", f"{what} would be rejected: {reason}")


@dataclass(frozen=True)
class Change:
    """A new object body and what it did."""

    data: bytes
    event_id: int
    line: str
    seq: int  # lines in the new object
    next_event_id: int
    removed: bool = False  # `line` was deleted rather than written


def append_event(data: bytes, event: EventInput, team_ids: tuple[int, int], high_water: int | None) -> Change:
    lines = text_lines(data)
    parser = _parses.parser(data, team_ids)
    parsed = parser.parsed
    if parsed.is_over():
        raise StateConflict("game over", f"the game is over ({parsed.over_reason}); correct past events with "
                                            f"PUT/DELETE /games/<game_id>/events/<event_id>")
    event_id = next_event_id(parsed, high_water)
    line = event.line(event_id)
    new = render([*lines, line])
    if new == data + line.encode() + b"\n":  # the old bytes, then the line: parse the line alone
        new_parser = _parses.keep(new, team_ids, parser.extended(line))
    else:  # the old object's line ends were rewritten (`\r\n`, no final newline): parse it all
        new_parser = _parses.parser(new, team_ids)
    _check_new_line(new_parser.parsed, len(lines) + 1, f"line {line!r}")
    _parses.forget(data, team_ids)  # the next write starts from `new` (a lost race reads the object again)
    return Change(new, event_id, line, len(lines) + 1, event_id + 1)


def end_game(data: bytes, clock: str, team_ids: tuple[int, int], high_water: int | None) -> Change | None:
    """Append the `-1` line; None when the game already has one (ending twice is harmless)."""
    lines = text_lines(data)
    parsed = parse_once(data, team_ids)
    if parsed.game_over_line is not None:
        return None
    line = f"{GAME_OVER_EVENT_ID} {clock} 0 0 0"
    new = render([*lines, line])
    _check_new_line(parse_once(new, team_ids), len(lines) + 1, f"line {line!r}")
    _parses.forget(data, team_ids)
    return Change(new, GAME_OVER_EVENT_ID, line, len(lines) + 1, next_event_id(parsed, high_water))


def _line_of(parsed: ParsedStream, event_id: int) -> int:
    found = next((e.line_no for e in parsed.events if e.event_id == event_id), None)
    if found is None:
        raise NotFound("no such event", f"the stream has no accepted line with event id {event_id}", "event_id")
    return found


def line_team(data: bytes, event_id: int, team_ids: tuple[int, int]) -> int:
    """The team of the accepted line with `event_id` (0 for a marker or the -1 line)."""
    parsed = parse_once(data, team_ids)
    line_no = _line_of(parsed, event_id)
    return next(e.team_id for e in parsed.events if e.line_no == line_no)


def correct_event(
    data: bytes, event_id: int, event: EventInput | None, team_ids: tuple[int, int], high_water: int | None
) -> Change:
    """Replace (`event`) or delete (`None`) the accepted line with `event_id`; the object is rewritten.

    Refused (422) when the result would reject a line the current object accepts: a correction
    never silently drops another event."""
    lines = text_lines(data)
    parsed = parse_once(data, team_ids)
    line_no = _line_of(parsed, event_id)
    if event is not None and event_id == GAME_OVER_EVENT_ID:
        raise Rejected("not correctable", "the -1 line has no fields to correct; DELETE it to reopen the game")
    before = {ln: t for ln, t in ((e.line_no, lines[e.line_no - 1]) for e in parsed.events)}
    if event is None:
        new_lines = lines[: line_no - 1] + lines[line_no:]
        line = lines[line_no - 1]
    else:
        line = event.line(event_id)
        new_lines = lines[: line_no - 1] + [line] + lines[line_no:]
    new = render(new_lines)
    reparsed = parse_once(new, team_ids)
    if event is not None:
        _check_new_line(reparsed, line_no, f"line {line!r}")
    accepted_after = {lines_text for lines_text in (new_lines[e.line_no - 1] for e in reparsed.events)}
    lost = [t for ln, t in before.items() if ln != line_no and t not in accepted_after]
    if lost:
        raise Rejected("correction would reject other lines",
                          f"after this change the stream rules would reject {lost[:5]}; correct those first")
    _parses.forget(data, team_ids)
    return Change(new, event_id, line, len(new_lines), next_event_id(parsed, high_water), removed=event is None)


# Client event ids in the object's metadata


def decode_recent(value: str | None) -> dict[str, int]:
    """`"c1=5,c2=6"` -> {"c1": 5, "c2": 6}, oldest first; unreadable entries are ignored."""
    out: dict[str, int] = {}
    for item in (value or "").split(","):
        cid, sep, eid = item.partition("=")
        if sep and CLIENT_EVENT_ID.fullmatch(cid) and re.fullmatch(r"-?[0-9]{1,18}", eid):
            out[cid] = int(eid)
    return out


def encode_recent(recent: dict[str, int]) -> str:
    return ",".join(f"{cid}={eid}" for cid, eid in recent.items())


def add_write(value: str | None, write_id: str) -> str:
    """The writes list of a new version: the previous one's newest entries, then `write_id`."""
    ids = [w for w in (value or "").split(",") if re.fullmatch(r"[0-9a-f]{1,32}", w)]
    return ",".join([*ids[-(WRITES_KEPT - 1):], write_id])


def has_write(value: str | None, write_id: str) -> bool:
    return write_id in (value or "").split(",")


def trim_recent(recent: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(kept, dropped): the newest entries that fit the metadata budget, and the older rest."""
    items = list(recent.items())
    kept: list[tuple[str, int]] = []
    size = 0
    for cid, eid in reversed(items):
        cost = len(cid) + len(str(eid)) + 2
        if len(kept) >= RECENT_MAX_ENTRIES or size + cost > RECENT_MAX_BYTES:
            break
        kept.append((cid, eid))
        size += cost
    kept.reverse()
    dropped = dict(items[: len(items) - len(kept)])
    return dict(kept), dropped
