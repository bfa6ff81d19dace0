"""The lake's rows of one game (pure functions) and its file names."""

from __future__ import annotations

import pytest

from sidearm_assets.storage import reference_db
from sidearm_assets.domain.games import UnscheduledGameError
from sidearm_assets.lake.events import COLUMN_NAMES, GameNotOverError, game_event_rows
from sidearm_assets.lake.store import file_name

TEAMS = [dict(t) for t in reference_db.BASE_TEAMS]
PLAYERS = [dict(p) for p in reference_db.BASE_PLAYERS] + [
    {"id": 99, "name": "Second Six", "number": "6", "shots": 0, "goals": 0, "teamid": 101},  # repeats #6
]
GAMES = [{"game_id": "g", "home_teamid": 101, "away_teamid": 205}]


def rows(text: str, season: int = 2026):
    return game_event_rows("g", text.encode(), GAMES, TEAMS, PLAYERS, season)


def test_a_regulation_game_row_by_row():
    game = rows(
        "0 59:00 101 6 1\n"
        "1 45:00 205 12 0\n"  # exactly 45:00 opens the second quarter
        "garbage line\n"  # rejected: in the lake nowhere
        "2 20:00 101 77 1\n"  # off the roster: no player id, still a goal
        "3 00:00 0 0 0\n"
    )
    assert [r["kind"] for r in game.rows] == ["shot", "shot", "shot", "marker"]
    assert [r["period"] for r in game.rows] == [1, 2, 3, 4]
    assert [r["seconds_elapsed"] for r in game.rows] == [60, 900, 2400, 3600]
    assert [r["player_id"] for r in game.rows] == [1, 12, None, None]  # #6 of 101 is id 1, not 99
    assert [(r["home_score"], r["away_score"]) for r in game.rows] == [(1, 0), (1, 0), (2, 0), (2, 0)]
    marker = game.rows[-1]
    assert (marker["team_id"], marker["jersey"], marker["goal"]) == (None, None, 0)
    assert all(set(r) == set(COLUMN_NAMES) for r in game.rows)
    assert {r["season"] for r in game.rows} == {2026}
    assert game.rejected_lines == 1
    assert [r["line_no"] for r in game.rows] == [1, 2, 4, 5]


def test_a_tied_game_at_00_00_goes_to_overtime_periods():
    game = rows(
        "0 30:00 101 6 1\n1 10:00 205 6 1\n"
        "2 00:00 0 0 0\n"  # tied: not over
        "3 04:00 0 0 0\n4 02:30 101 12 0\n"  # first overtime, 90 s in
        "5 00:00 0 0 0\n"  # still tied
        "6 03:00 205 9 1\n"  # second overtime, 60 s in: the winner
        "-1 03:00 0 0 0\n"
    )
    periods = [(r["event_id"], r["period"], r["seconds_elapsed"]) for r in game.rows]
    assert periods == [
        (0, 3, 1800), (1, 4, 3000), (2, 4, 3600), (3, 5, 3600), (4, 5, 3690), (5, 5, 3840),
        (6, 6, 3900), (-1, 6, 3900),
    ]
    assert game.rows[-1]["kind"] == "game_over"
    assert (game.home_score, game.away_score) == (1, 2)


def test_not_over_and_unscheduled_games_are_refused():
    with pytest.raises(GameNotOverError, match="not over"):
        rows("0 30:00 101 6 1\n")
    with pytest.raises(GameNotOverError):
        rows("0 30:00 101 6 1\n1 00:00 205 6 1\n")  # tied at 00:00: overtime follows
    with pytest.raises(UnscheduledGameError):
        game_event_rows("other", b"0 30:00 101 6 1\n-1 00:00 0 0 0\n", GAMES, TEAMS, PLAYERS, 2026)


def test_the_same_bytes_give_the_same_rows_and_a_correction_changes_the_digest():
    text = "0 59:00 101 6 1\n1 00:00 0 0 0\n"
    assert rows(text).rows == rows(text).rows
    corrected = rows(text.replace("101 6 1", "101 6 0").replace("1 00:00 0 0 0", "1 00:00 205 6 1"))
    assert corrected.stream_sha256 != rows(text).stream_sha256
    assert (corrected.home_score, corrected.away_score) == (0, 1)


def test_file_names_are_deterministic_and_never_hidden():
    assert file_name("gamestream") == "game-gamestream.parquet"
    assert file_name("league-0001") == "game-league-0001.parquet"
    odd = ["_hidden", ".dot", "a b", "x/y", "ü", "a=b"]
    names = [file_name(g) for g in odd]
    assert len(set(names)) == len(odd)
    for name in names:
        assert name.startswith("gameh-") and name.endswith(".parquet")
        assert " " not in name and "/" not in name and "=" not in name
    assert file_name("a b") == file_name("a b")


def test_lake_rows_agree_with_the_box_score_on_many_generated_games():
    """Whatever the game (off-roster jerseys, bad lines, ties at -1), the lake's last row has the
    box score's final score, each roster player's goals and shots in the lake are the box
    score's, and time only moves forward."""
    from sidearm_assets.domain.boxscore import build_boxscore
    from sidearm_assets.domain.stream import parse_stream
    from sidearm_assets_tests.helpers import random_game

    rosters = {t: [str(p["number"]) for p in PLAYERS if p["teamid"] == t] for t in (101, 205)}
    for seed in range(40):
        ending = ("auto", "minus1", "tie")[seed % 3]
        data = random_game(seed, 101, 205, rosters, shots=30 + seed, ending=ending, off_roster=0.1, bad_lines=seed % 2 == 0)
        game = game_event_rows("g", data, GAMES, TEAMS, PLAYERS, 2026)
        doc = build_boxscore("g", parse_stream(data, (101, 205)), TEAMS[0], TEAMS[1], PLAYERS)
        assert (game.home_score, game.away_score) == (doc["home"]["score"], doc["away"]["score"]), seed
        for side in ("home", "away"):
            for p in doc[side]["players"]:
                if p["on_roster"]:
                    mine = [r for r in game.rows if r["kind"] == "shot" and r["player_id"] == p["id"]]
                    assert (len(mine), sum(r["goal"] for r in mine)) == (p["shots"], p["goals"]), (seed, p)
        elapsed = [r["seconds_elapsed"] for r in game.rows]
        assert elapsed == sorted(elapsed), seed
        assert [r["period"] for r in game.rows] == sorted(r["period"] for r in game.rows), seed
