"""The game stream format (SPEC 2): one place that knows it.

A line is `<event_id> <clock mm:ss> <team_id> <jersey> <goal>`. `parse_stream` turns an object's
bytes into accepted events and rejected lines with reasons; it never raises on bad input.
The rules (also in the README, "Bad input"):

| input | rule |
|---|---|
| blank line | rejected, reason `blank line` (a final newline is not a line) |
| not UTF-8 | rejected, `not UTF-8` |
| not 5 fields | rejected, `expected 5 fields, got N` |
| event id, team or goal not an integer | rejected, `... is not an integer` |
| clock not mm:ss within 00:00..60:00 | rejected, `clock out of range` / `clock is not mm:ss` |
| goal not 0/1 | rejected |
| jersey empty or longer than 3 characters | rejected |
| team not one of this game's two teams | rejected, `team N is not playing` |
| team `0` | a marker line (no shot), accepted; a marker with goal 1 is rejected |
| event id already seen | rejected, `duplicate event id` |
| event id lower than the last accepted one | rejected, `out of order` |
| event id below -1 | rejected |
| anything after the game is over | rejected, `after game over` (a `-1` line is still accepted) |
| `-1` line | the game-over marker |

A jersey not on the roster is not a stream error: the shot counts and is flagged by the box score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAME_OVER_EVENT_ID = -1
GAME_SECONDS = 60 * 60
QUARTER_SECONDS = 15 * 60


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
    line_no: int
    text: str
    reason: str


@dataclass
class ParsedStream:
    events: list[Event] = field(default_factory=list)  # accepted, in stream order
    rejected: list[RejectedLine] = field(default_factory=list)
    line_count: int = 0  # every line of the object, accepted or not (SPEC 5 `seq`)
    game_over_line: int | None = None  # line number of the `-1` line, if any
    over_reason: str | None = None  # `game-over line` or `clock 00:00 not tied` (SPEC 2)

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


def parse_clock(text: str) -> int:
    """`mm:ss` -> seconds left; ValueError with a reason otherwise."""
    mm, sep, ss = text.partition(":")
    if not sep or not (mm.isdigit() and ss.isdigit()) or len(ss) != 2:
        raise ValueError(f"clock {text!r} is not mm:ss")
    minutes, seconds = int(mm), int(ss)
    total = minutes * 60 + seconds
    if seconds > 59 or total > GAME_SECONDS:
        raise ValueError(f"clock {text!r} out of range 00:00..60:00")
    return total


def format_clock(seconds_left: int) -> str:
    return f"{seconds_left // 60:02d}:{seconds_left % 60:02d}"


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an integer") from None


def parse_line(line_no: int, text: str) -> Event:
    """One line's fields, checked on their own (not against the game); ValueError with a reason."""
    if not text.strip():
        raise ValueError("blank line")
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    event_id = _integer("event id", fields[0])
    seconds_left = parse_clock(fields[1])
    team_id = _integer("team", fields[2])
    jersey = fields[3]
    goal = _integer("goal", fields[4])
    if event_id < GAME_OVER_EVENT_ID:
        raise ValueError(f"event id {event_id} is negative")
    if goal not in (0, 1):
        raise ValueError(f"goal {goal} is not 0 or 1")
    if len(jersey) > 3:
        raise ValueError(f"jersey {jersey!r} is longer than 3 characters")
    if team_id < 0:
        raise ValueError(f"team {team_id} is negative")
    return Event(line_no, event_id, fields[1], seconds_left, team_id, jersey, goal)


def split_lines(data: bytes | str) -> list[tuple[int, str | None, str]]:
    """(line number, text or None when not UTF-8, printable text) for each line of the object."""
    raw_lines = data.splitlines() if isinstance(data, bytes) else [s.encode() for s in data.splitlines()]
    out = []
    for i, raw in enumerate(raw_lines, start=1):
        try:
            out.append((i, raw.decode("utf-8"), raw.decode("utf-8")))
        except UnicodeDecodeError:
            out.append((i, None, raw.decode("utf-8", errors="replace")))
    return out


def parse_stream(data: bytes | str, teams: tuple[int, int] | None = None) -> ParsedStream:
    """Parse a whole stream object. `teams` (home, away) rejects shots by other teams when given."""
    parsed = ParsedStream()
    seen_ids: set[int] = set()
    last_id = None
    goals: dict[int, int] = {t: 0 for t in teams or ()}
    for line_no, text, shown in split_lines(data):
        parsed.line_count += 1

        def reject(reason: str) -> None:
            parsed.rejected.append(RejectedLine(line_no, shown, reason))

        if text is None:
            reject("not UTF-8")
            continue
        try:
            event = parse_line(line_no, text)
        except ValueError as exc:
            reject(str(exc))
            continue
        if parsed.over_reason and event.event_id != GAME_OVER_EVENT_ID:
            reject("after game over")
            continue
        if event.event_id == GAME_OVER_EVENT_ID:
            if parsed.game_over_line is not None:
                reject("duplicate game-over line")
                continue
            parsed.events.append(event)
            parsed.game_over_line = line_no
            parsed.over_reason = "game-over line"
            continue
        if event.event_id in seen_ids:
            reject(f"duplicate event id {event.event_id}")
            continue
        if last_id is not None and event.event_id < last_id:
            reject(f"out of order: event id {event.event_id} after {last_id}")
            continue
        if event.team_id == 0 and event.goal:
            reject("goal on a marker line (team 0)")
            continue
        if event.team_id != 0 and teams is not None and event.team_id not in teams:
            reject(f"team {event.team_id} is not playing")
            continue
        seen_ids.add(event.event_id)
        last_id = event.event_id
        parsed.events.append(event)
        if event.team_id:
            goals[event.team_id] = goals.get(event.team_id, 0) + event.goal
        if event.seconds_left == 0 and _not_tied(goals):
            parsed.over_reason = "clock 00:00 not tied"
    return parsed


def _not_tied(goals: dict[int, int]) -> bool:
    """With the teams unknown, a team that has not shot yet has 0 goals."""
    scores = list(goals.values()) + [0] * max(0, 2 - len(goals))
    return len(set(scores)) > 1


def format_line(event_id: int, clock: str, team_id: int, jersey: str, goal: int) -> str:
    return f"{event_id} {clock} {team_id} {jersey} {goal}"
