"""Why the ingest service refuses a request, in its own words; `app.py` maps each kind to HTTP.

Every refusal names what is to blame: `field` is a JSON field or a path parameter when one is,
`rule` the rule broken otherwise (the body's size, its nesting, the token's scope...). Nothing is
written by a refused request.
"""

from __future__ import annotations


class IngestError(Exception):
    """A request the service refuses; subclasses say why."""

    def __init__(self, error: str, detail: str, field: str | None = None, rule: str | None = None):
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.field = field
        self.rule = rule

    def body(self) -> dict:
        out = {"error": self.error, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        if self.rule:
            out["rule"] = self.rule
        return out


class InvalidInput(IngestError):
    """A field, a path parameter or the body itself is malformed or out of range."""


class Unauthenticated(IngestError):
    """No token, or one that is not configured."""


class Forbidden(IngestError):
    """A valid token whose scope does not cover this game or this write."""


class NotFound(IngestError):
    """No such game in the schedule, no such event, no stream object yet."""


class StateConflict(IngestError):
    """The game's state refuses the write: over, retired, too large, unreadable."""


class Rejected(IngestError):
    """The stream rules would reject the line, or another line after a correction."""


class TooLarge(IngestError):
    """The body is over the size limit."""


class UnsupportedMediaType(IngestError):
    """The body is declared as something other than JSON."""


class SlowSender(IngestError):
    """The body did not arrive within the request timeout."""


class Unavailable(IngestError):
    """The object store or the schedule did not answer, or the game kept changing: retry."""


class Broken(IngestError):
    """Stored state this service cannot read (a ledger written by hand); an operator must act."""


def unavailable(what: str, exc: Exception) -> Unavailable:
    answer = getattr(exc, "code", None)  # an S3 error code (InternalError, SlowDown...) when the store answered
    said = f"answered {answer}" if answer else f"did not answer ({type(exc).__name__})"
    return Unavailable(f"{what} unavailable", f"{what} {said}; nothing was written by this request unless it "
                                              f"says so; retry")


def invalid(field: str, detail: str) -> InvalidInput:
    return InvalidInput("invalid field", detail, field)
