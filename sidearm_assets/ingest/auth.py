"""Scorer tokens: per game or per team, from `SIDEARM_INGEST_TOKENS` (never committed).

The setting is a comma-separated list of `game:<game_id>=<token>` and `team:<team_id>=<token>`
entries. A game token may write to that game; a team token to every game its team plays (home or
away, from the schedule). No token configured means no writes at all (reads need none).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field


class TokenConfigError(ValueError):
    """The token setting cannot be read; the API refuses to start rather than guess."""


@dataclass(frozen=True)
class Tokens:
    games: dict[str, tuple[str, ...]] = field(default_factory=dict)
    teams: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.games and not self.teams

    def allows(self, presented: str | None, game_id: str, team_ids: tuple[int, int]) -> bool:
        if not presented:
            return False
        candidates = list(self.games.get(game_id, ()))
        for team_id in team_ids:
            candidates.extend(self.teams.get(team_id, ()))
        # compare_digest against every candidate: the time taken says nothing about which matched
        matched = False
        for token in candidates:
            matched |= hmac.compare_digest(token.encode(), presented.encode())
        return matched


def parse_tokens(value: str | None) -> Tokens:
    games: dict[str, list[str]] = {}
    teams: dict[int, list[str]] = {}
    for n, entry in enumerate((value or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        scope, sep, token = entry.partition("=")
        kind, colon, name = scope.strip().partition(":")
        token = token.strip()
        if not sep or not colon or not name or not token:
            raise TokenConfigError(f"SIDEARM_INGEST_TOKENS entry {n} is not game:<id>=<token> or team:<id>=<token>")
        if len(token) < 8:
            raise TokenConfigError(f"SIDEARM_INGEST_TOKENS entry {n} ({kind}:{name}): a token needs 8+ characters")
        if kind == "game":
            games.setdefault(name, []).append(token)
        elif kind == "team" and name.isascii() and name.isdigit():
            teams.setdefault(int(name), []).append(token)
        else:
            raise TokenConfigError(f"SIDEARM_INGEST_TOKENS entry {n}: scope {scope!r} is not game:<id> or team:<number>")
    return Tokens({k: tuple(v) for k, v in games.items()}, {k: tuple(v) for k, v in teams.items()})


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
