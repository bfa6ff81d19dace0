"""The game stream format (SPEC 2): one place that knows it.

A line is `<event_id> <clock mm:ss> <team_id> <jersey> <goal>`, fields separated by one ASCII
space. `parse_stream` turns an object's bytes into accepted events and rejected lines with
reasons; it never raises, whatever the bytes. It accepts exactly what SPEC 2 allows and nothing
is normalized except the line ends and a byte-order mark at the start (both below). The rules
(also in the README, "Bad input"), each with the `rule` code it is counted under:

| input | rule |
|---|---|
| line ends | `\\n`, `\\r\\n` or `\\r`; a final line end is not a line |
| UTF-8 byte-order mark at the very start | removed; the first line is parsed without it and listed under `warnings` (`byte_order_mark`) |
| a byte that is not UTF-8 | line rejected (`not_utf8`) |
| blank line (nothing or only whitespace) | rejected (`blank`) |
| tab, NBSP or any whitespace other than a space; leading, trailing or repeated spaces | rejected (`separator`) |
| not 5 fields | rejected (`field_count`) |
| a number not written in ASCII digits (`²`, `①`, full-width, Arabic-Indic digits...) | rejected, `... is not an integer` (`event_id`, `team`, `goal`) |
| a number not canonical: `+1`, `01`, `-0` | rejected, `... is not written canonically` (never normalized) |
| event id below -1 or above 2^31-1; team negative or above 2^31-1 | rejected (ids fit a SQL `int`, Spark `int`, BSON int32 and a JavaScript number) |
| clock not `mm:ss` (two ASCII digits each side), or outside `00:00`..`60:00` | rejected (`clock`) |
| goal not `0`/`1` | rejected (`goal`) |
| jersey not 1-3 ASCII digits (`00` and `0` are different jerseys, kept as written) | rejected (`jersey`) |
| team not one of this game's two teams (the `-1` line too) | rejected, `team N is not playing` (`team_not_playing`) |
| team `0` | a marker line (no shot), accepted; a marker with goal 1 is rejected (`marker_goal`); a marker naming a jersey other than `0` is accepted, counts nothing, and is listed under `warnings` (`marker_jersey`) |
| event id already seen | rejected, `duplicate event id` (`duplicate_event_id`) |
| event id lower than the last accepted one | rejected, `out of order` (`out_of_order`) |
| anything after the game is over | rejected, `after game over` (`after_game_over`); a `-1` line is still accepted |
| a second `-1` line | rejected (`duplicate_game_over`) |
| `-1` line | the game-over marker; when it also names a team, a jersey or a goal (anything but `0 0 0`), that shot is **not counted** (the `-1` line only ends the game) and the line is listed under `warnings` (`game_over_shot`) |

A jersey not on the roster is not a stream error: the shot counts and is flagged by the box score.
Every rejected line is counted (in total and per rule); the first `SAMPLE_LINES` are kept with
their text cut to `TEXT_LIMIT` characters, so what is kept stays small whatever the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

GAME_OVER_EVENT_ID = -1
GAME_SECONDS = 60 * 60
QUARTER_SECONDS = 15 * 60
# The largest event or team id: a SQL `int`, a Spark `int`, a BSON int32 and a JavaScript number
# all hold it exactly, so an accepted id can be stored and shown anywhere.
MAX_ID = 2**31 - 1
SAMPLE_LINES = 20  # rejected (or partly ignored) lines kept with their text; the rest are counted
TEXT_LIMIT = 200  # characters of a kept line's text
BYTE_ORDER_MARK = "\ufeff"
# The codes rejected lines are counted under, and those of accepted lines with a part not used.
REJECT_RULES = (
    "not_utf8", "blank", "separator", "field_count", "event_id", "clock", "team", "jersey", "goal",
    "after_game_over", "team_not_playing", "duplicate_game_over", "duplicate_event_id", "out_of_order",
    "marker_goal",
)
WARNING_RULES = ("byte_order_mark", "game_over_shot", "marker_jersey")

# A well-formed line, checked by one regular expression (the fast path); any other line goes
# through `parse_line`'s field-by-field checks, which name what is wrong. `[0-9]` is ASCII only.
_GOOD_LINE = re.compile(r"(-1|0|[1-9][0-9]{0,9}) ([0-9]{2}):([0-9]{2}) (0|[1-9][0-9]{0,9}) ([0-9]{1,3}) ([01])")
_SIGNED_DIGITS = re.compile(r"[+-]?[0-9]+")
_CANONICAL = re.compile(r"-?(?:0|[1-9][0-9]*)")
_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")
_JERSEY = re.compile(r"[0-9]{1,3}")
_OTHER_SPACE = re.compile(r"[^\S ]")  # any whitespace but the ASCII space
_SPACE_NAMES = {"\t": "a tab", "\xa0": "a no-break space (U+00A0)", "\u3000": "an ideographic space (U+3000)"}


@dataclass(frozen=True)
class Event:
    """One accepted stream line. `team_id == 0` is a marker (no shot)."""

    line_no: int  # 1-based line in the object
    event_id: int
    clock: str  # "mm:ss", as written
    seconds_left: int
    team_id: int
    jersey: str
    goal: int

    @property
    def is_shot(self) -> bool:
        return self.team_id != 0 and self.event_id != GAME_OVER_EVENT_ID

    @property
    def quarter(self) -> int:
        """1..4 from the clock; a shot at exactly 45:00 opens the second quarter."""
        return min(4, (GAME_SECONDS - self.seconds_left) // QUARTER_SECONDS + 1)


@dataclass(frozen=True)
class RejectedLine:
    """A rejected line (or, under `ParsedStream.warnings`, an accepted one with a part not used)."""

    line_no: int
    text: str  # as written, cut to TEXT_LIMIT characters (bytes that are not UTF-8 shown as U+FFFD)
    reason: str
    rule: str = ""  # the rule's code (module docstring), what counts are kept by


class LineError(ValueError):
    """A line breaks a rule: `rule` is its code, the message the reason shown."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule


@dataclass
class ParsedStream:
    events: list[Event] = field(default_factory=list)  # accepted, in stream order
    rejected: list[RejectedLine] = field(default_factory=list)  # the first `keep_rejected` rejected lines
    rejected_count: int = 0  # every rejected line
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    # lines with a part not used: a byte-order mark, the shot on a `-1` line, a marker's jersey
    warnings: list[RejectedLine] = field(default_factory=list)
    warning_count: int = 0
    line_count: int = 0  # every line of the object, accepted or not (SPEC 5 `seq`)
    game_over_line: int | None = None  # line number of the `-1` line, if any
    over_reason: str | None = None  # `game-over line` or `clock 00:00 not tied` (SPEC 2)
    keep_rejected: int | None = field(default=SAMPLE_LINES, repr=False, compare=False)  # None: every one

    @property
    def shots(self) -> list[Event]:
        return [e for e in self.events if e.is_shot]

    @property
    def last_event(self) -> Event | None:
        return self.events[-1] if self.events else None

    def score(self, team_id: int) -> int:
        return sum(e.goal for e in self.events if e.is_shot and e.team_id == team_id)

    def is_over(self) -> bool:
        """SPEC 2: over at the `-1` line, or at a `00:00` line with the score not tied."""
        return self.over_reason is not None

    def reject(self, line_no: int, text, reason: str, rule: str) -> None:
        """Count a rejected line; keep it (text cut short) while the sample has room.
        `text` is the line's str, or its raw bytes when they are not UTF-8."""
        self.rejected_count += 1
        self.rejected_by_rule[rule] = self.rejected_by_rule.get(rule, 0) + 1
        if self.keep_rejected is None or len(self.rejected) < self.keep_rejected:
            self.rejected.append(RejectedLine(line_no, shown_text(text), reason, rule))

    def warn(self, line_no: int, text: str, reason: str, rule: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < SAMPLE_LINES:
            self.warnings.append(RejectedLine(line_no, shown_text(text), reason, rule))


def shown_text(text: str | bytes, limit: int = TEXT_LIMIT) -> str:
    """A line as it is kept for people: at most `limit` characters, saying how much was cut.
    Raw bytes (a line that is not UTF-8) show the bytes that are not as U+FFFD."""
    if isinstance(text, bytes):
        if len(text) <= limit:
            return text.decode("utf-8", errors="replace")
        return f"{text[:limit].decode('utf-8', errors='replace')}... [{len(text)} bytes in all]"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text)} characters in all]"


def _q(text: str) -> str:
    """A field quoted for a reason, short whatever its length."""
    return repr(text if len(text) <= 24 else text[:24] + "...")


def _integer(name: str, rule: str, text: str) -> int:
    """An integer written canonically in ASCII digits (at most 11 characters); LineError otherwise."""
    if not _SIGNED_DIGITS.fullmatch(text):
        hint = ""
        if any(not c.isascii() and c.isnumeric() for c in text[:64]):
            hint = ": only the ASCII digits 0-9 make a number"
        raise LineError(rule, f"{name} {_q(text)} is not an integer{hint}")
    if not _CANONICAL.fullmatch(text) or text == "-0":
        raise LineError(rule, f"{name} {_q(text)} is not written canonically (no '+', no leading zero, no '-0')")
    if len(text) > 11:
        raise LineError(rule, f"{name} {_q(text)} is out of range")
    return int(text)


def _id(name: str, rule: str, text: str, lowest: int) -> int:
    value = _integer(name, rule, text)
    if value < lowest:
        raise LineError(rule, f"{name} {value} is negative")
    if value > MAX_ID:
        raise LineError(rule, f"{name} {value} is out of range {lowest}..{MAX_ID}")
    return value


def parse_clock(text: str) -> int:
    """`mm:ss` (two ASCII digits each side) -> seconds left; ValueError (LineError) otherwise."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise LineError("clock", f"clock {_q(text)} is not mm:ss")
    minutes, seconds = int(match[1]), int(match[2])
    total = minutes * 60 + seconds
    if seconds > 59 or total > GAME_SECONDS:
        raise LineError("clock", f"clock {text!r} out of range 00:00..60:00")
    return total


def format_clock(seconds_left: int) -> str:
    return f"{seconds_left // 60:02d}:{seconds_left % 60:02d}"


def is_jersey(text) -> bool:
    """1-3 ASCII digits: a jersey a stream line can name (a roster number that is not one can
    never be credited with a shot)."""
    return isinstance(text, str) and _JERSEY.fullmatch(text) is not None


def parse_line(line_no: int, text: str) -> Event:
    """One line's fields, checked on their own (not against the game); LineError (a ValueError)
    with the rule and a reason."""
    good = _GOOD_LINE.fullmatch(text)
    if good is not None:
        event_id, mm, ss, team_id = int(good[1]), int(good[2]), int(good[3]), int(good[4])
        if ss <= 59 and mm * 60 + ss <= GAME_SECONDS and event_id <= MAX_ID and team_id <= MAX_ID:
            return Event(line_no, event_id, f"{good[2]}:{good[3]}", mm * 60 + ss, team_id, good[5], int(good[6]))
    if not text.strip():
        raise LineError("blank", "blank line")
    odd = _OTHER_SPACE.search(text)
    if odd is not None:
        c = odd.group()
        what = _SPACE_NAMES.get(c, f"whitespace U+{ord(c):04X}")
        raise LineError("separator", f"{what} in the line: fields are separated by exactly one space")
    fields = text.split(" ")
    if "" in fields:
        raise LineError("separator", "leading, trailing or repeated spaces: fields are separated by exactly one space")
    if len(fields) != 5:
        raise LineError("field_count", f"expected 5 fields, got {len(fields)}")
    event_id = _id("event id", "event_id", fields[0], GAME_OVER_EVENT_ID)
    seconds_left = parse_clock(fields[1])
    team_id = _id("team", "team", fields[2], 0)
    jersey = fields[3]
    if len(jersey) > 3:
        raise LineError("jersey", f"jersey {_q(jersey)} is longer than 3 characters")
    if not is_jersey(jersey):
        raise LineError("jersey", f"jersey {_q(jersey)} is not 1-3 ASCII digits")
    goal = _integer("goal", "goal", fields[4])
    if goal not in (0, 1):
        raise LineError("goal", f"goal {goal} is not 0 or 1")
    return Event(line_no, event_id, fields[1], seconds_left, team_id, jersey, goal)


def split_lines(data: bytes | str):
    """(line number, text or None when not UTF-8, raw bytes) for each line of the object.

    A str is encoded first, so it splits exactly as its bytes would (only at `\\n`, `\\r\\n` and
    `\\r`, not at the other line separators `str.splitlines` knows)."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    for i, raw in enumerate(data.splitlines(), start=1):
        try:
            yield i, raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            yield i, None, raw


class StreamParser:
    """`parse_stream`'s rules as a state that takes one line at a time: `parsed` is the parse of
    the lines fed so far. `extended` gives the parse of one more line without touching this one
    (the ingest API appends a line to a game's object without parsing the rest again)."""

    def __init__(self, teams: tuple[int, int] | None = None, keep_rejected: int | None = SAMPLE_LINES):
        self.parsed = ParsedStream(keep_rejected=keep_rejected)
        self.teams = teams
        self._seen_ids: set[int] = set()
        self._last_id: int | None = None
        self._goals: dict[int, int] = {t: 0 for t in teams or ()}

    def feed_all(self, data: bytes | str) -> StreamParser:
        for line_no, text, raw in split_lines(data):
            self.feed(line_no, text, raw)
        return self

    def copy(self) -> StreamParser:
        """A parser in this one's state that can be fed without touching this one."""
        other = StreamParser.__new__(StreamParser)
        p = self.parsed
        other.parsed = replace(p, events=list(p.events), rejected=list(p.rejected),
                               rejected_by_rule=dict(p.rejected_by_rule), warnings=list(p.warnings))
        other.teams = self.teams
        other._seen_ids, other._last_id, other._goals = set(self._seen_ids), self._last_id, dict(self._goals)
        return other

    def extended(self, text: str) -> StreamParser:
        """A new parser: this one's state and one more line (`text`, one line without its end)."""
        other = self.copy()
        other.feed(self.parsed.line_count + 1, text, text.encode("utf-8", errors="surrogatepass"))
        return other

    def continued(self, more: bytes) -> StreamParser:
        """A new parser: this one's state and the lines of `more`, the bytes that follow what was
        fed so far, which must have ended with a line end (b"\n"): `parse_stream(data + more)` is
        then `StreamParser().feed_all(data).continued(more).parsed`."""
        other = self.copy()
        for line_no, text, raw in split_lines(more):
            other.feed(self.parsed.line_count + line_no, text, raw)
        return other

    def feed(self, line_no: int, text: str | None, raw: bytes) -> None:
        """One line: its number, its text (None when not UTF-8) and its bytes."""
        parsed, teams = self.parsed, self.teams
        parsed.line_count += 1
        if text is None:
            parsed.reject(line_no, raw, "not UTF-8", "not_utf8")
            return
        if line_no == 1 and text.startswith(BYTE_ORDER_MARK):
            text = text[1:]
            parsed.warn(line_no, text, "byte-order mark at the start of the object removed", "byte_order_mark")
        try:
            event = parse_line(line_no, text)
        except LineError as exc:
            parsed.reject(line_no, text, str(exc), exc.rule)
            return
        game_over = event.event_id == GAME_OVER_EVENT_ID
        if parsed.over_reason and not game_over:
            parsed.reject(line_no, text, "after game over", "after_game_over")
            return
        if event.team_id != 0 and teams is not None and event.team_id not in teams:
            parsed.reject(line_no, text, f"team {event.team_id} is not playing", "team_not_playing")
            return
        if game_over:
            if parsed.game_over_line is not None:
                parsed.reject(line_no, text, "duplicate game-over line", "duplicate_game_over")
                return
            parsed.events.append(event)
            parsed.game_over_line = line_no
            parsed.over_reason = "game-over line"
            if event.team_id != 0 or event.goal or event.jersey != "0":
                shot = f"team {event.team_id} #{event.jersey}, goal {event.goal}"
                parsed.warn(
                    line_no, text, f"the game-over line carries a shot ({shot}): not counted, a -1 line "
                    "only ends the game", "game_over_shot",
                )
            return
        if event.event_id in self._seen_ids:
            parsed.reject(line_no, text, f"duplicate event id {event.event_id}", "duplicate_event_id")
            return
        if self._last_id is not None and event.event_id < self._last_id:
            parsed.reject(line_no, text, f"out of order: event id {event.event_id} after {self._last_id}", "out_of_order")
            return
        if event.team_id == 0 and event.goal:
            parsed.reject(line_no, text, "goal on a marker line (team 0)", "marker_goal")
            return
        self._seen_ids.add(event.event_id)
        self._last_id = event.event_id
        parsed.events.append(event)
        if event.team_id == 0 and event.jersey != "0":
            parsed.warn(
                line_no, text, f"a marker line (team 0) names jersey {event.jersey}: not a shot, nothing counted",
                "marker_jersey",
            )
        if event.team_id:
            self._goals[event.team_id] = self._goals.get(event.team_id, 0) + event.goal
        if event.seconds_left == 0 and _not_tied(self._goals):
            parsed.over_reason = "clock 00:00 not tied"


def parse_stream(
    data: bytes | str, teams: tuple[int, int] | None = None, keep_rejected: int | None = SAMPLE_LINES
) -> ParsedStream:
    """Parse a whole stream object. `teams` (home, away) rejects lines naming other teams when
    given. Never raises on any input.

    Every rejected line is counted (`rejected_count`, `rejected_by_rule`); the first
    `keep_rejected` are kept in `rejected` with their reason (None keeps them all: for a caller
    that must know why any given line was rejected, on an object it has bounded itself)."""
    return StreamParser(teams, keep_rejected).feed_all(data).parsed


def _not_tied(goals: dict[int, int]) -> bool:
    """With the teams unknown, a team that has not shot yet has 0 goals."""
    scores = list(goals.values()) + [0] * max(0, 2 - len(goals))
    return len(set(scores)) > 1
