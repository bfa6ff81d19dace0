"""From one object version to its box-score document: the live path's whole computation.

Used by the `boxscore_doc` asset and by the live sensor, so a document is the same whichever
wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidearm_assets.domain.boxscore import build_boxscore
from sidearm_assets.domain.games import Matchup
from sidearm_assets.domain.stream import ParsedStream, parse_stream


@dataclass(frozen=True)
class LiveUpdate:
    """A parsed version and, when it has any accepted event, its document (else `doc` is None)."""

    game_id: str
    version: str
    parsed: ParsedStream
    doc: dict | None

    @property
    def skip_reason(self) -> str | None:
        if self.doc is not None:
            return None
        if self.parsed.line_count == 0:
            return "empty object: no document until the first line arrives"
        return f"no accepted line among {self.parsed.line_count}: no document written"

    def summary(self) -> dict:
        """Figures for logs and metadata."""
        out = {
            "game_id": self.game_id,
            "version": self.version,
            "lines": self.parsed.line_count,
            "lines_rejected": len(self.parsed.rejected),
        }
        if self.doc is not None:
            out.update(
                score=f"{self.doc['home']['score']}-{self.doc['away']['score']}",
                clock=self.doc["timestamp"],
                final=self.doc["final"],
                document_id=self.doc["_id"],
                unknown_jerseys=len(self.doc["issues"]["unknown_jerseys"]),
            )
        return out


def live_update(
    game: Matchup, data: bytes, version: str, updated_at: str | None, players: list[dict]
) -> LiveUpdate:
    parsed = parse_stream(data, game.team_ids)
    doc = None
    if parsed.events:
        doc = build_boxscore(
            game.game_id, parsed, game.home, game.away, players, version=version, updated_at=updated_at
        )
    return LiveUpdate(game.game_id, version, parsed, doc)


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check's result, before it becomes a Dagster check result."""

    name: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str
    metadata: dict


BOXSCORE_CHECKS = {
    "score_equals_player_goals": ("ERROR", "Each team's score equals the sum of its listed players' goals."),
    "roster_fully_listed": ("ERROR", "Every roster player of both teams is listed in the document."),
    "stream_lines_accepted": ("WARN", "No stream line was rejected (rejected lines are in the metadata)."),
    "jerseys_on_roster": ("WARN", "Every shooter's jersey is on the team's roster."),
}


def check_outcomes(update: LiveUpdate, players: list[dict]) -> list[CheckOutcome]:
    """The box-score checks of one version (SPEC 2: every bad line is counted and shown)."""
    doc = update.doc
    outcomes = []

    def outcome(name: str, passed: bool, metadata: dict) -> None:
        severity, description = BOXSCORE_CHECKS[name]
        outcomes.append(CheckOutcome(name, passed, severity, description, metadata))

    rejected = [f"line {r.line_no}: {r.text!r} ({r.reason})" for r in update.parsed.rejected]
    outcome("stream_lines_accepted", not rejected, {"rejected": len(rejected), "lines": rejected[:50]})
    if doc is None:
        outcome("score_equals_player_goals", True, {"note": update.skip_reason})
        outcome("roster_fully_listed", True, {"note": update.skip_reason})
        outcome("jerseys_on_roster", True, {"note": update.skip_reason})
        return outcomes
    mismatches = {
        side: {"score": doc[side]["score"], "player_goals": sum(p["goals"] for p in doc[side]["players"])}
        for side in ("home", "away")
    }
    outcome(
        "score_equals_player_goals",
        all(m["score"] == m["player_goals"] for m in mismatches.values()),
        mismatches,
    )
    missing = []
    for side in ("home", "away"):
        listed = {p["id"] for p in doc[side]["players"]}
        missing += [
            f"{p['name']} #{p['number']} (id {p['id']})"
            for p in players
            if p["teamid"] == doc[side]["teamid"] and p["id"] not in listed
        ]
    outcome("roster_fully_listed", not missing, {"missing": missing})
    unknown = doc["issues"]["unknown_jerseys"]
    offending = [
        f"line {e.line_no}: {e.event_id} {e.clock} {e.team_id} {e.jersey} {e.goal}"
        for e in update.parsed.shots
        if any(u["teamid"] == e.team_id and u["number"] == e.jersey for u in unknown)
    ]
    outcome(
        "jerseys_on_roster",
        not unknown,
        {"unknown_jerseys": [f"team {u['teamid']} #{u['number']}" for u in unknown], "lines": offending[:50]},
    )
    return outcomes
