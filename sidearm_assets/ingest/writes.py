"""The four writes a scorer makes, each a pure step from the game's current state to its new object.

The write protocol (`ingest/service.py`) runs one of these against the version it just read,
and again against a fresher one after a lost race; a write never does I/O itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidearm_assets.ingest import events as ev
from sidearm_assets.ingest.auth import Writer
from sidearm_assets.ingest.gamestate import GameState


@dataclass(frozen=True)
class Append:
    """A new event after the last one; its client event id makes a retry safe."""

    event: ev.EventInput
    created: int = 201
    presume_new: bool = True  # a process's first append to a game presumes the game has no object

    @property
    def client_event_id(self) -> str | None:
        return self.event.client_event_id

    def build(self, state: GameState, team_ids: tuple[int, int]) -> ev.Change:
        return ev.append_event(state.stream.data, self.event, team_ids, state.high_water)


@dataclass(frozen=True)
class End:
    """The `-1` line; None from `build` when the game already has one."""

    clock: str
    created: int = 201
    presume_new: bool = False
    client_event_id: None = None

    def build(self, state: GameState, team_ids: tuple[int, int]) -> ev.Change | None:
        return ev.end_game(state.stream.data, self.clock, team_ids, state.high_water)


@dataclass(frozen=True)
class Correct:
    """Replace (`event`) or delete (`None`) a past event; a team scorer touches its own lines only."""

    event_id: int
    event: ev.EventInput | None
    writer: Writer
    created: int = 200
    presume_new: bool = False
    client_event_id: None = None

    def build(self, state: GameState, team_ids: tuple[int, int]) -> ev.Change:
        if not self.writer.official:
            what = "deleting" if self.event is None else "correcting"
            self.writer.check_line(ev.line_team(state.stream.data, self.event_id, team_ids),
                                   f"{what} event {self.event_id}", "event_id")
        return ev.correct_event(state.stream.data, self.event_id, self.event, team_ids, state.high_water)


Write = Append | End | Correct
