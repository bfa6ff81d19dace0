"""From one object version to its box-score document: the live path's whole computation.

Used by the `boxscore_doc` asset and by the live sensor, so a document is the same whichever
wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidearm_assets.domain.boxscore import build_boxscore
from sidearm_assets.domain.checks import CheckOutcome, CheckSpec
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
        """Figures for logs and metadata (a fixed, small set of scalars)."""
        out = {
            "game_id": self.game_id,
            "version": self.version,
            "lines": self.parsed.line_count,
            "lines_rejected": self.parsed.rejected_count,
            "lines_with_ignored_parts": self.parsed.warning_count,
        }
        if self.doc is not None:
            out.update(
                score=f"{self.doc['home']['score']}-{self.doc['away']['score']}",
                clock=self.doc["timestamp"],
                final=self.doc["final"],
                document_id=self.doc["_id"],
                unknown_jerseys=self.doc["issues"]["unknown_jersey_count"],
            )
        return out


def live_update(
    game: Matchup, data: bytes, version: str, updated_at: str | None, players: list[dict],
    parsed: ParsedStream | None = None,
) -> LiveUpdate:
    """The version's parse and box-score document; `parsed`, when the caller has it already, must
    be `parse_stream(data, game.team_ids)` (the live watcher continues a game's last parse)."""
    if parsed is None:
        parsed = parse_stream(data, game.team_ids)
    doc = None
    if parsed.events:
        doc = build_boxscore(
            game.game_id, parsed, game.home, game.away, players, version=version, updated_at=updated_at
        )
    return LiveUpdate(game.game_id, version, parsed, doc)


BOXSCORE_CHECKS = {
    "score_equals_player_goals": CheckSpec(
        "boxscore_doc", "ERROR", "Each team's score equals the sum of its listed players' goals."
    ),
    "roster_fully_listed": CheckSpec(
        "boxscore_doc", "ERROR", "Every roster player of both teams is listed in the document."
    ),
    "stream_lines_accepted": CheckSpec(
        "boxscore_doc", "WARN",
        "Every stream line was accepted whole (rejected lines and parts not used are in the metadata).",
    ),
    "jerseys_on_roster": CheckSpec("boxscore_doc", "WARN", "Every shooter's jersey is on the team's roster."),
    "roster_numbers_valid": CheckSpec(
        "boxscore_doc", "WARN",
        "Every roster number of both teams is 1-3 ASCII digits and held by one player of the team "
        "(a shared number's shots credit the lowest id).",
    ),
}
SAMPLE = 50  # entries of a list kept in a check's metadata; counts say how many there were


def check_outcomes(update: LiveUpdate, players: list[dict]) -> list[CheckOutcome]:
    """The box-score checks of one version (SPEC 2: every bad line is counted and shown).

    Linear in the stream and the roster; every list in the metadata is cut to `SAMPLE` entries
    (texts already cut by the parser), with its count beside it."""
    doc = update.doc
    parsed = update.parsed
    outcomes = []

    def outcome(name: str, passed: bool, metadata: dict) -> None:
        outcomes.append(BOXSCORE_CHECKS[name].outcome(name, passed, metadata))

    rejected = [f"line {r.line_no}: {r.text!r} ({r.reason})" for r in parsed.rejected[:SAMPLE]]
    ignored = [f"line {w.line_no}: {w.text!r} ({w.reason})" for w in parsed.warnings[:SAMPLE]]
    outcome(
        "stream_lines_accepted",
        parsed.rejected_count == 0 and parsed.warning_count == 0,
        {
            "rejected": parsed.rejected_count,
            "lines": rejected,
            "rejected_by_rule": dict(sorted(parsed.rejected_by_rule.items())),
            "lines_with_ignored_parts": parsed.warning_count,
            "ignored": ignored,
        },
    )
    if doc is None:
        for name in ("score_equals_player_goals", "roster_fully_listed", "jerseys_on_roster", "roster_numbers_valid"):
            outcome(name, True, {"note": update.skip_reason})
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
    outcome("roster_fully_listed", not missing, {"missing": missing[:SAMPLE], "missing_count": len(missing)})
    off_roster = {
        (doc[side]["teamid"], p["number"])
        for side in ("home", "away")
        for p in doc[side]["players"]
        if not p["on_roster"]
    }
    offending = []
    for e in parsed.shots:
        if len(offending) == SAMPLE:
            break
        if (e.team_id, e.jersey) in off_roster:
            offending.append(f"line {e.line_no}: {e.event_id} {e.clock} {e.team_id} {e.jersey} {e.goal}")
    outcome(
        "jerseys_on_roster",
        not off_roster,
        {
            "unknown_jerseys": [f"team {t} #{n}" for t, n in sorted(off_roster)[:SAMPLE]],
            "unknown_jersey_count": len(off_roster),
            "lines": offending,
        },
    )
    issues = doc["issues"]
    shared = [
        f"team {d['teamid']} #{d['number']}: players {d['player_ids']} (shots credit {d['credited_id']})"
        for d in issues.get("duplicate_numbers", [])
    ]
    invalid = [f"team {d['teamid']} player {d['id']}: number {d['number']!r}" for d in issues.get("invalid_numbers", [])]
    outcome(
        "roster_numbers_valid",
        not shared and not invalid,
        {"shared_numbers": shared[:SAMPLE], "invalid_numbers": invalid[:SAMPLE]},
    )
    return outcomes
