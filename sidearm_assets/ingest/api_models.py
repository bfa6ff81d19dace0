"""The API's request and response bodies as pydantic models: what `/openapi.json` publishes.

The models describe; `ingest/events.py` and `ingest/bodies.py` check (the same rules, with
errors that name the field). The rules the schema cannot state are in the descriptions: the
team must play the game, a marker line is no goal, the stream rules must accept the line.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Clock = Annotated[str, Field(pattern=r"^(?:[0-5][0-9]:[0-5][0-9]|60:00)$", examples=["12:41"],
                             description="game clock mm:ss, counting down from 60:00")]
TeamId = Annotated[int, Field(ge=0, le=2**31 - 1, examples=[101],
                              description="one of the game's two teams (schedule), or 0 for a marker line")]
Jersey = Annotated[str, Field(pattern=r"^[0-9]{1,3}$")] | Annotated[int, Field(ge=0, le=999)]
Goal = Literal[0, 1] | bool
ClientEventId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$", examples=["table-1:0042"])]

GAME_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
EVENT_ID_PATTERN = r"^(?:-1|0|[1-9][0-9]{0,9})$"


class EventIn(BaseModel):
    """A shot on goal, or a marker line (team_id 0, goal 0)."""

    model_config = ConfigDict(extra="forbid")
    clock: Clock
    team_id: TeamId
    jersey: Jersey = Field(description="1-3 ASCII digits (or the number 0-999)", examples=["6"])
    goal: Goal = Field(description="1 (or true) for a goal", examples=[1])
    client_event_id: ClientEventId | None = Field(
        None, description="the scorer's own id for this post: the same id posted again is applied once")


class CorrectionIn(BaseModel):
    """What a past event becomes."""

    model_config = ConfigDict(extra="forbid")
    clock: Clock
    team_id: TeamId
    jersey: Jersey = Field(examples=["12"])
    goal: Goal


class EndIn(BaseModel):
    """The game-over line's clock (default 00:00); the body is optional."""

    model_config = ConfigDict(extra="forbid")
    clock: Clock | None = None


class WriteOut(BaseModel):
    """What a write did: the line written, or the earlier write a duplicate post matched."""

    game_id: str
    event_id: int = Field(description="the event's id in the stream; -1 for the game-over line")
    duplicate: bool = Field(description="true when nothing was written: the same client event id, or the "
                                        "game already ended")
    line: str | None = Field(None, description="the line written (or removed, for a delete)")
    seq: int | None = Field(None, description="lines in the object after the write")
    client_event_id: str | None = None
    version: str | None = Field(None, description="the object's new ETag")
    detail: str | None = None


class ErrorOut(BaseModel):
    """A refusal; nothing was written."""

    error: str = Field(description="the kind of refusal, e.g. `invalid field`, `unauthorized`, `game over`")
    detail: str = Field(description="what is wrong and what to do")
    field: str | None = Field(None, description="the JSON field or path parameter to blame")
    rule: str | None = Field(None, description="the rule broken when no field is to blame (body size, "
                                               "nesting, Content-Type, scope, token...)")


class HealthOut(BaseModel):
    """Healthy or not; a request with a valid token also sees the bucket and the write counters."""

    ok: bool
    bucket: str | None = None
    counters: dict[str, int] | None = None


def request_body(model: type[BaseModel], required: bool = True) -> dict:
    """An OpenAPI requestBody for a body the endpoint reads itself (after auth, within limits)."""
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}
