"""Which teams play a game: the schedule (`games` table) decides, never the code (SPEC 2, 3)."""

from __future__ import annotations

from dataclasses import dataclass

# The game whose object is `gamestream.txt`; SPEC 5 gives its documents bare integer ids.
# `settings.DEFAULT_GAME_ID` is this constant, so the domain needs no settings import.
DEFAULT_GAME_ID = "gamestream"


class UnscheduledGameError(LookupError):
    """A stream whose game id has no schedule row, or whose teams are not in `teams`."""


@dataclass(frozen=True)
class Matchup:
    game_id: str
    home: dict  # `teams` row
    away: dict

    @property
    def team_ids(self) -> tuple[int, int]:
        return (self.home["id"], self.away["id"])


def matchup(game_id: str, games: list[dict], teams: list[dict]) -> Matchup:
    row = next((g for g in games if g["game_id"] == game_id), None)
    if row is None:
        raise UnscheduledGameError(
            f"game {game_id!r} has no row in the games table; add one (game_id, home_teamid, "
            f"away_teamid) to sidearmdb.games. Its stream is skipped until then."
        )
    if row["home_teamid"] == row["away_teamid"]:
        raise UnscheduledGameError(
            f"game {game_id!r}: home and away are the same team ({row['home_teamid']}) in the games "
            f"table; its stream is skipped until the row names two teams"
        )
    by_id = {t["id"]: t for t in teams}
    missing = [t for t in (row["home_teamid"], row["away_teamid"]) if t not in by_id]
    if missing:
        raise UnscheduledGameError(f"game {game_id!r}: team(s) {missing} are not in the teams table")
    return Matchup(game_id, by_id[row["home_teamid"]], by_id[row["away_teamid"]])
