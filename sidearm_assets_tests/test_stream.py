"""The stream format (SPEC 2): accepted lines, and the rule for each kind of bad input."""

import pytest

from sidearm_assets.domain.stream import format_clock, parse_clock, parse_stream

TEAMS = (101, 205)


def reasons(parsed):
    return [(r.line_no, r.reason) for r in parsed.rejected]


def test_accepts_well_formed_lines_in_order():
    parsed = parse_stream(b"0 59:51 101 6 1\n1 58:10 205 12 0\n2 45:00 101 22 1\n", TEAMS)
    assert [e.event_id for e in parsed.events] == [0, 1, 2]
    assert parsed.rejected == []
    assert parsed.line_count == 3
    assert parsed.score(101) == 2 and parsed.score(205) == 0
    assert [e.quarter for e in parsed.events] == [1, 1, 2]
    assert not parsed.is_over()


@pytest.mark.parametrize(
    "line, reason",
    [
        ("", "blank line"),
        ("   ", "blank line"),
        ("1 58:00 101 6", "expected 5 fields, got 4"),
        ("1 58:00 101 6 1 extra", "expected 5 fields, got 6"),
        ("one 58:00 101 6 1", "event id 'one' is not an integer"),
        ("1 58:00 abc 6 1", "team 'abc' is not an integer"),
        ("1 58:00 101 6 yes", "goal 'yes' is not an integer"),
        ("1 61:00 101 6 1", "clock '61:00' out of range 00:00..60:00"),
        ("1 60:01 101 6 1", "clock '60:01' out of range 00:00..60:00"),
        ("1 12:75 101 6 1", "clock '12:75' out of range 00:00..60:00"),
        ("1 1258 101 6 1", "clock '1258' is not mm:ss"),
        ("1 -1:00 101 6 1", "clock '-1:00' is not mm:ss"),
        ("1 58:00 101 6 2", "goal 2 is not 0 or 1"),
        ("1 58:00 101 6 -1", "goal -1 is not 0 or 1"),
        ("1 58:00 101 1234 1", "jersey '1234' is longer than 3 characters"),
        ("1 58:00 999 6 1", "team 999 is not playing"),
        ("1 58:00 -5 6 1", "team -5 is negative"),
        ("-7 58:00 101 6 1", "event id -7 is negative"),
        ("1 58:00 0 0 1", "goal on a marker line (team 0)"),
    ],
)
def test_rejects_bad_line_with_reason_and_keeps_the_rest(line, reason):
    data = f"0 59:00 101 6 1\n{line}\n2 57:00 205 6 1\n"
    parsed = parse_stream(data.encode(), TEAMS)
    assert reasons(parsed) == [(2, reason)]
    assert [e.event_id for e in parsed.events] == [0, 2]
    assert parsed.score(101) == 1 and parsed.score(205) == 1
    assert parsed.line_count == 3


def test_non_utf8_byte_rejects_only_that_line():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 58:00 101 \xff 1\n2 57:00 205 6 1\n", TEAMS)
    assert reasons(parsed) == [(2, "not UTF-8")]
    assert parsed.rejected[0].text == "1 58:00 101 \ufffd 1"
    assert parsed.score(101) == 1


def test_team_zero_lines_are_markers_not_shots():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 45:00 0 0 0\n", TEAMS)
    assert parsed.rejected == []
    assert [e.is_shot for e in parsed.events] == [True, False]
    assert len(parsed.shots) == 1


def test_duplicate_and_out_of_order_event_ids_are_rejected():
    data = b"0 59:00 101 6 1\n1 58:00 101 6 1\n1 58:00 101 6 1\n3 50:00 205 6 0\n2 55:00 205 6 1\n4 49:00 205 6 1\n"
    parsed = parse_stream(data, TEAMS)
    assert reasons(parsed) == [(3, "duplicate event id 1"), (5, "out of order: event id 2 after 3")]
    assert parsed.score(101) == 2 and parsed.score(205) == 1


def test_empty_object_has_no_events():
    parsed = parse_stream(b"", TEAMS)
    assert parsed.events == [] and parsed.rejected == [] and parsed.line_count == 0
    assert not parsed.is_over()


def test_final_newline_is_not_a_blank_line_but_crlf_lines_parse():
    parsed = parse_stream(b"0 59:00 101 6 1\r\n1 58:00 205 6 0\r\n", TEAMS)
    assert parsed.rejected == [] and parsed.line_count == 2


def test_game_over_at_minus_one_line_even_when_tied():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 30:00 205 6 1\n-1 00:00 0 0 0\n", TEAMS)
    assert parsed.is_over() and parsed.over_reason == "game-over line"
    assert parsed.last_event.event_id == -1


def test_game_over_at_zero_clock_when_not_tied():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 00:00 0 0 0\n", TEAMS)
    assert parsed.is_over() and parsed.over_reason == "clock 00:00 not tied"


def test_tie_at_zero_clock_is_not_over_and_overtime_follows():
    data = b"0 59:00 101 6 1\n1 30:00 205 6 1\n2 00:00 0 0 0\n3 03:10 205 12 1\n"
    parsed = parse_stream(data, TEAMS)
    assert parsed.rejected == []
    assert parsed.score(205) == 2
    # the overtime goal at 03:10 is accepted; the game is over only at a later 00:00 or -1
    assert not parsed.is_over()
    parsed = parse_stream(data + b"4 00:00 0 0 0\n", TEAMS)
    assert parsed.is_over()


def test_buzzer_goal_at_zero_clock_decides_the_game():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 00:00 205 6 1\n", TEAMS)
    assert not parsed.is_over()  # tied 1-1 after the 00:00 goal
    parsed = parse_stream(b"0 59:00 101 6 1\n1 00:00 101 12 1\n", TEAMS)
    assert parsed.is_over()


def test_lines_after_game_over_are_rejected_but_minus_one_still_accepted():
    data = b"0 59:00 101 6 1\n1 00:00 0 0 0\n2 00:00 205 6 1\n-1 00:00 0 0 0\n-1 00:00 0 0 0\n"
    parsed = parse_stream(data, TEAMS)
    assert reasons(parsed) == [(3, "after game over"), (5, "duplicate game-over line")]
    assert parsed.score(205) == 0
    assert parsed.game_over_line == 4


def test_without_teams_known_the_clock_rule_uses_teams_seen():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 00:00 0 0 0\n")
    assert parsed.is_over()
    parsed = parse_stream(b"0 59:00 101 6 0\n1 00:00 0 0 0\n")
    assert not parsed.is_over()


@pytest.mark.parametrize("text, seconds", [("60:00", 3600), ("00:00", 0), ("12:41", 761), ("7:05", 425)])
def test_clock_round_trip(text, seconds):
    assert parse_clock(text) == seconds
    assert format_clock(seconds) == f"{seconds // 60:02d}:{seconds % 60:02d}"
