"""Who may do what: scorer tokens and their scopes, from `SIDEARM_INGEST_TOKENS` (never committed).

The setting is a comma-separated list of `<scope>=<token>` entries (tokens of 8+ characters):

| scope | who | may |
|---|---|---|
| `game:<game_id>` | the official scorer of that game | every write to that game: any team's shots, marker lines, the end, corrections, reopening |
| `game:*` | the league's scoring desk | every write to every scheduled game |
| `team:<team_id>` | a team's bench scorer | post, correct and delete its own team's shots, in every game the team plays; never the other team's lines, markers, the end or a reopening |
| `read:<name>` | a partner (media, stats) | read the streams; no writes |

Every scope reads every stream. A request without a configured token learns nothing about the
schedule: it is refused (401) before any game is looked up. No token configured means no writes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from sidearm_assets.ingest.errors import Forbidden, Unauthenticated

KINDS = ("game", "team", "read")


class TokenConfigError(ValueError):
    """The token setting cannot be read; the API refuses to start rather than guess."""


@dataclass(frozen=True)
class Scope:
    kind: str  # one of KINDS
    name: str  # a game id or "*", a team id, a partner's name

    @property
    def team_id(self) -> int | None:
        return int(self.name) if self.kind == "team" else None

    def covers_game(self, game_id: str, team_ids: tuple[int, int]) -> bool:
        """Whether this scope may write to the game at all (which lines: `Writer.check_line`)."""
        if self.kind == "game":
            return self.name in ("*", game_id)
        return self.kind == "team" and self.team_id in team_ids

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Tokens:
    entries: tuple[tuple[str, Scope], ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.entries

    def authenticate(self, presented: str | None) -> "Grant":
        """The scopes of a presented token; Unauthenticated when it is none of the configured ones."""
        found = []
        if presented:
            # compare_digest against every token: the time taken says nothing about which matched
            for token, scope in self.entries:
                if hmac.compare_digest(token.encode(), presented.encode(errors="surrogateescape")):
                    found.append(scope)
        if not found:
            raise Unauthenticated("unauthorized", "a valid token is required (Authorization: Bearer <token>)",
                                  rule="token")
        return Grant(tuple(found))

    def allows(self, presented: str | None, game_id: str, team_ids: tuple[int, int]) -> bool:
        """Whether the token may write to the game at all."""
        try:
            self.authenticate(presented).writer_for(game_id, team_ids)
        except (Unauthenticated, Forbidden):
            return False
        return True


@dataclass(frozen=True)
class Writer:
    """What a token may write in one game: everything (an official scorer) or some teams' shots."""

    official: bool
    teams: frozenset[int]
    label: str

    def check_line(self, team_id: int, what: str, field_name: str | None = "team_id") -> None:
        """Forbidden unless this writer may write a line of `team_id` (0: a marker or the -1 line)."""
        if not self.official and team_id not in self.teams:
            subject = "marker and game-over lines" if team_id == 0 else f"team {team_id}'s lines"
            raise Forbidden("forbidden", f"a team scorer ({self.label}) writes its own team's shots only; "
                                         f"{what}: {subject} are the official scorer's", field_name, rule="scope")


@dataclass(frozen=True)
class Grant:
    """The scopes one token holds (one token may be configured for several)."""

    scopes: tuple[Scope, ...]

    def writer_for(self, game_id: str, team_ids: tuple[int, int]) -> Writer:
        """What this token may write in the game; Forbidden when nothing."""
        label = ", ".join(s.describe() for s in self.scopes)
        if any(s.kind == "game" and s.covers_game(game_id, team_ids) for s in self.scopes):
            return Writer(True, frozenset(), label)
        teams = frozenset(s.team_id for s in self.scopes if s.kind == "team" and s.team_id in team_ids)
        if teams:
            return Writer(False, teams, label)
        if all(s.kind == "read" for s in self.scopes):
            raise Forbidden("forbidden", f"a read-only token ({label}) cannot write", rule="scope")
        raise Forbidden("forbidden", f"this token ({label}) does not cover game {game_id!r}", rule="scope")


def parse_tokens(value: str | None) -> Tokens:
    entries: list[tuple[str, Scope]] = []
    for n, entry in enumerate((value or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        scope_text, sep, token = entry.partition("=")
        kind, colon, name = scope_text.strip().partition(":")
        token, kind, name = token.strip(), kind.strip(), name.strip()
        if not sep or not colon or not name or not token:
            raise TokenConfigError(f"SIDEARM_INGEST_TOKENS entry {n} is not <scope>=<token> with a scope "
                                   f"game:<id>, game:*, team:<id> or read:<name>")
        if len(token) < 8:
            raise TokenConfigError(f"SIDEARM_INGEST_TOKENS entry {n} ({kind}:{name}): a token needs 8+ characters")
        if kind not in KINDS or (kind == "team" and not (name.isascii() and name.isdigit())):
            raise TokenConfigError(f"SIDEARM_INGEST_TOKENS entry {n}: scope {scope_text!r} is not game:<id>, "
                                   f"game:*, team:<number> or read:<name>")
        entries.append((token, Scope(kind, str(int(name)) if kind == "team" else name)))
    return Tokens(tuple(entries))


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
