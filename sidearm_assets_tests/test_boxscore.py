"""The box-score document (SPEC 5), checked against an independent computation."""

import pytest

from sidearm_assets.domain.boxscore import BoxScoreError, build_boxscore, document_id, markdown_boxscore, pct
from sidearm_assets.domain.games import UnscheduledGameError, matchup
from sidearm_assets.domain.live import check_outcomes, live_update
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS
from sidearm_assets_tests.helpers import assert_matches, expected_document, random_game

HOME, AWAY = BASE_TEAMS
PLAYERS = [dict(p) for p in BASE_PLAYERS]
ROSTERS = {team: [p["number"] for p in PLAYERS if p["teamid"] == team] for team in (101, 205)}


@pytest.mark.parametrize("seed", range(8))
def test_document_equals_independent_computation_at_every_version(seed):
    lines = random_game(seed, 101, 205, ROSTERS, shots=70, ending="both").decode().splitlines()
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    for upto in (1, 5, len(lines) // 2, len(lines) - 1, len(lines)):
        text = "\n".join(lines[:upto]) + "\n"
        update = live_update(game, text.encode(), "v", None, PLAYERS)
        assert_matches(update.doc, expected_document("gamestream", lines[:upto], HOME, AWAY, PLAYERS))


def test_shape_of_spec_5():
    parsed = parse_stream(b"0 59:51 101 6 1\n1 58:00 205 6 0\n2 57:00 205 6 1\n3 56:00 205 12 1\n", (101, 205))
    doc = build_boxscore("gamestream", parsed, HOME, AWAY, PLAYERS, version="etag@t", updated_at="t")
    assert doc["_id"] == 3 and doc["game_id"] == "gamestream" and doc["seq"] == 4
    assert doc["timestamp"] == "56:00" and doc["final"] is False
    assert doc["home"] | {"players": None} == {
        "teamid": 101, "name": "Hartwell Hawks", "conference": "Northeast Collegiate", "wins": 11, "losses": 2,
        "score": 1, "status": "losing", "shots": 1, "pct": 1.0, "score_by_quarter": [1, 0, 0, 0], "players": None,
    }
    assert doc["away"]["status"] == "winning" and doc["away"]["score"] == 2
    # jersey 6 is on both teams: each team's #6 gets only its own team's shots
    home6 = next(p for p in doc["home"]["players"] if p["number"] == "6")
    away6 = next(p for p in doc["away"]["players"] if p["number"] == "6")
    assert (home6["name"], home6["shots"], home6["goals"]) == ("Connor Walsh", 1, 1)
    assert (away6["name"], away6["shots"], away6["goals"], away6["pct"]) == ("Ryan Murphy", 2, 1, 0.5)
    # two players named Ryan Murphy stay two players
    assert len([p for p in doc["home"]["players"] + doc["away"]["players"] if p["name"] == "Ryan Murphy"]) == 2
    assert len(doc["home"]["players"]) == 10 and len(doc["away"]["players"]) == 10


def test_unknown_jersey_goal_counts_in_score_and_is_flagged():
    parsed = parse_stream(b"0 59:51 101 99 1\n1 58:00 101 6 0\n", (101, 205))
    doc = build_boxscore("gamestream", parsed, HOME, AWAY, PLAYERS)
    assert doc["home"]["score"] == 1
    unknown = [p for p in doc["home"]["players"] if not p["on_roster"]]
    assert unknown == [{"id": None, "name": None, "number": "99", "shots": 1, "goals": 1, "pct": 1.0, "on_roster": False}]
    assert doc["issues"]["unknown_jerseys"] == [{"teamid": 101, "number": "99", "shots": 1, "goals": 1}]


@pytest.mark.parametrize("goals, shots, expected", [(1, 8, 0.13), (1, 3, 0.33), (2, 3, 0.67), (0, 0, 0.0),
                                                    (1, 200, 0.01), (1, 400, 0.0), (3, 8, 0.38), (5, 5, 1.0)])
def test_pct_rounds_half_up(goals, shots, expected):
    assert pct(goals, shots) == expected


def test_document_ids():
    assert document_id("gamestream", 55) == 55
    assert document_id("gamestream", -1) == -1
    assert document_id("hart-vs-mill", 55) == "hart-vs-mill:55"


def test_same_version_gives_same_document():
    data = random_game(3, 101, 205, ROSTERS, shots=70, ending="both")
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    assert live_update(game, data, "v1", "t", PLAYERS).doc == live_update(game, data, "v1", "t", PLAYERS).doc


def test_final_document_at_minus_one():
    data = random_game(5, 101, 205, ROSTERS, shots=70, ending="both")
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    doc = live_update(game, data, "v", None, PLAYERS).doc
    assert doc["_id"] == -1 and doc["event_id"] == -1 and doc["final"] is True
    assert doc["seq"] == 72


def test_no_accepted_event_gives_no_document():
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    assert live_update(game, b"", "v", None, PLAYERS).doc is None
    assert "empty object" in live_update(game, b"", "v", None, PLAYERS).skip_reason
    update = live_update(game, b"garbage\n", "v", None, PLAYERS)
    assert update.doc is None and "no accepted line among 1" in update.skip_reason
    with pytest.raises(BoxScoreError):
        build_boxscore("gamestream", parse_stream(b""), HOME, AWAY, PLAYERS)


def test_home_and_away_come_from_the_schedule():
    games = [{"game_id": "rematch", "home_teamid": 205, "away_teamid": 101}]
    game = matchup("rematch", games, list(BASE_TEAMS))
    doc = live_update(game, b"0 59:00 205 6 1\n", "v", None, PLAYERS).doc
    assert doc["home"]["teamid"] == 205 and doc["away"]["teamid"] == 101
    assert doc["_id"] == "rematch:0"
    with pytest.raises(UnscheduledGameError, match="no row in the games table"):
        matchup("nobody", games, list(BASE_TEAMS))
    with pytest.raises(UnscheduledGameError, match=r"\[999\]"):
        matchup("x", [{"game_id": "x", "home_teamid": 101, "away_teamid": 999}], list(BASE_TEAMS))
    with pytest.raises(UnscheduledGameError, match=r"the same team \(101\)"):
        matchup("self", [{"game_id": "self", "home_teamid": 101, "away_teamid": 101}], list(BASE_TEAMS))


def test_checks_report_rejected_lines_and_unknown_jerseys():
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    update = live_update(game, b"0 59:00 101 6 1\nbad line\n1 58:00 205 88 1\n", "v", None, PLAYERS)
    outcomes = {o.name: o for o in check_outcomes(update, PLAYERS)}
    assert outcomes["score_equals_player_goals"].passed
    assert outcomes["roster_fully_listed"].passed
    assert not outcomes["stream_lines_accepted"].passed
    assert outcomes["stream_lines_accepted"].severity == "WARN"
    assert outcomes["stream_lines_accepted"].metadata["lines"] == ["line 2: 'bad line' (expected 5 fields, got 2)"]
    assert not outcomes["jerseys_on_roster"].passed and outcomes["jerseys_on_roster"].severity == "WARN"
    assert outcomes["jerseys_on_roster"].metadata["lines"] == ["line 3: 1 58:00 205 88 1"]


def test_checks_catch_a_broken_document():
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    update = live_update(game, b"0 59:00 101 6 1\n", "v", None, PLAYERS)
    update.doc["home"]["score"] = 5
    update.doc["away"]["players"].pop()
    outcomes = {o.name: o for o in check_outcomes(update, PLAYERS)}
    assert not outcomes["score_equals_player_goals"].passed
    assert not outcomes["roster_fully_listed"].passed
    assert outcomes["roster_fully_listed"].metadata["missing"] == ["Felix Andrade #50 (id 20)"]


def test_markdown_lists_every_player():
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    doc = live_update(game, b"0 59:00 101 6 1\n1 58:00 101 99 0\n", "v", None, PLAYERS).doc
    md = markdown_boxscore(doc)
    assert "**Hartwell Hawks 1 - 0 Millbrook Miners**" in md
    assert md.count("| ") >= 21 * 5
    assert "| 99 | **not on roster** | 1 | 0 | 0.00 |" in md


def _messy_roster():
    """The base roster plus a second home #6 (higher id), a home number in a superscript digit,
    a circled digit, one with no number and one with a trailing space."""
    extra = [
        {"id": 901, "name": "Second Six", "number": "6", "shots": 0, "goals": 0, "teamid": 101},
        {"id": 902, "name": "Super Five", "number": "\u2075", "shots": 0, "goals": 0, "teamid": 101},
        {"id": 903, "name": "Circled One", "number": "\u2460", "shots": 0, "goals": 0, "teamid": 205},
        {"id": 904, "name": "No Number", "number": None, "shots": 0, "goals": 0, "teamid": 205},
        {"id": 905, "name": "Spaced", "number": "7 ", "shots": 0, "goals": 0, "teamid": 205},
    ]
    return PLAYERS + extra


def test_players_sharing_a_number_are_both_listed_and_the_lowest_id_is_credited():
    players = _messy_roster()
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    update = live_update(game, b"0 59:00 101 6 1\n1 58:00 101 6 0\n2 57:00 205 7 1\n", "v", None, players)
    doc = update.doc
    sixes = [p for p in doc["home"]["players"] if p["number"] == "6"]
    assert [(p["id"], p["shots"], p["goals"]) for p in sixes] == [(1, 2, 1), (901, 0, 0)]
    assert doc["issues"]["duplicate_numbers"] == [
        {"teamid": 101, "number": "6", "player_ids": [1, 901], "credited_id": 1}]
    outcomes = {o.name: o for o in check_outcomes(update, players)}
    assert outcomes["roster_fully_listed"].passed and outcomes["score_equals_player_goals"].passed
    check = outcomes["roster_numbers_valid"]
    assert not check.passed and check.severity == "WARN"
    assert check.metadata["shared_numbers"] == ["team 101 #6: players [1, 901] (shots credit 1)"]


def test_roster_numbers_that_are_not_ascii_digits_never_raise_and_are_flagged():
    players = _messy_roster()
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    update = live_update(game, b"0 59:00 101 5 1\n1 58:00 205 1 1\n", "v", None, players)
    doc = update.doc
    listed = {p["id"]: p for side in ("home", "away") for p in doc[side]["players"]}
    assert {901, 902, 903, 904, 905} <= set(listed)
    assert [listed[i]["number"] for i in (902, 903, 904, 905)] == ["\u2075", "\u2460", None, "7 "]
    assert all(listed[i]["shots"] == 0 for i in (902, 903, 904, 905))
    # `5` is not `⁵`: the shot goes to an off-roster line, flagged
    assert [(p["number"], p["on_roster"]) for p in doc["home"]["players"] if p["number"] == "5"] == [("5", False)]
    assert {(d["id"], d["number"]) for d in doc["issues"]["invalid_numbers"]} == {
        (902, "\u2075"), (903, "\u2460"), (904, None), (905, "7 ")}
    outcomes = {o.name: o for o in check_outcomes(update, players)}
    assert not outcomes["roster_numbers_valid"].passed
    assert "team 101 player 902: number '\u2075'" in outcomes["roster_numbers_valid"].metadata["invalid_numbers"]
    assert outcomes["roster_fully_listed"].passed
    assert "| \u2075 | Super Five | 0 | 0 | 0.00 |" in markdown_boxscore(doc)


def test_clean_roster_passes_the_roster_numbers_check():
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    update = live_update(game, b"0 59:00 101 6 1\n", "v", None, PLAYERS)
    outcomes = {o.name: o for o in check_outcomes(update, PLAYERS)}
    assert outcomes["roster_numbers_valid"].passed
    assert update.doc["issues"]["duplicate_numbers"] == [] and update.doc["issues"]["invalid_numbers"] == []


def _hostile_stream():
    """Every jersey a line may name, for both teams (all off the roster but the base numbers),
    a 10 MiB line, 200,000 short rejected lines and a shot on the -1 line."""
    lines = []
    event = 0
    for team in (101, 205):
        for jersey in [str(n) for n in range(10)] + [f"{n:02d}" for n in range(100)] + [f"{n:03d}" for n in range(1000)]:
            lines.append(f"{event} 59:00 {team} {jersey} {event % 2}")
            event += 1
    lines.append("y" * (10 * 1024 * 1024))
    lines += ["garbage line"] * 200_000
    lines.append("-1 00:00 101 7 1")
    return ("\n".join(lines) + "\n").encode()


def test_a_hostile_stream_makes_a_small_document_and_small_metadata():
    import bson

    from sidearm_assets.domain.boxscore import ISSUE_SAMPLE
    from sidearm_assets.domain.gameflow import flow_from_stream, flow_markdown

    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    update = live_update(game, _hostile_stream(), "v", None, PLAYERS)
    doc = update.doc
    size = len(bson.encode(doc))
    assert size < 1024 * 1024, size  # far below MongoDB's 16 MiB
    issues = doc["issues"]
    assert issues["rejected_count"] == 1 + 200_000
    assert issues["rejected_by_rule"] == {"field_count": issues["rejected_count"]}
    assert len(issues["rejected_lines"]) == 20 and len(issues["rejected_lines"][0]["text"]) < 250
    assert issues["line_warning_count"] == 1
    assert issues["unknown_jersey_count"] == 2 * 1110 - 20 and len(issues["unknown_jerseys"]) == ISSUE_SAMPLE
    # nothing is lost: every shot is in a player line, the score is the sum of the goals
    for side in ("home", "away"):
        assert doc[side]["shots"] == 1110
        assert doc[side]["score"] == sum(p["goals"] for p in doc[side]["players"])
    outcomes = check_outcomes(update, PLAYERS)
    assert len(bson.encode({o.name: o.metadata for o in outcomes})) < 64 * 1024
    assert len(markdown_boxscore(doc)) < 8 * 1024
    assert len(flow_markdown(flow_from_stream("gamestream", update.parsed, doc["home"], doc["away"]))) < 64 * 1024
    assert len(str(update.summary())) < 1024


def test_checks_name_the_off_roster_lines_once_each_however_many():
    game = matchup("gamestream", list(BASE_GAMES), list(BASE_TEAMS))
    lines = [f"{i} 59:00 101 {100 + i % 800} 0" for i in range(5000)]
    update = live_update(game, ("\n".join(lines) + "\n").encode(), "v", None, PLAYERS)
    jerseys = {o.name: o for o in check_outcomes(update, PLAYERS)}["jerseys_on_roster"]
    assert jerseys.metadata["unknown_jersey_count"] == 800
    assert len(jerseys.metadata["unknown_jerseys"]) == 50 and len(jerseys.metadata["lines"]) == 50
    assert jerseys.metadata["lines"][0] == "line 1: 0 59:00 101 100 0"
