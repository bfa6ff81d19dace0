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
    assert parsed.rejected == [] and parsed.warnings == []
    assert [e.is_shot for e in parsed.events] == [True, False]
    assert len(parsed.shots) == 1


def test_a_marker_naming_a_jersey_counts_nothing_and_is_shown():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 45:00 0 12 0\n", TEAMS)
    assert parsed.rejected == [] and len(parsed.shots) == 1
    assert [(w.line_no, w.rule, w.text) for w in parsed.warnings] == [(2, "marker_jersey", "1 45:00 0 12 0")]


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


@pytest.mark.parametrize("text, seconds", [("60:00", 3600), ("00:00", 0), ("12:41", 761), ("07:05", 425)])
def test_clock_round_trip(text, seconds):
    assert parse_clock(text) == seconds
    assert format_clock(seconds) == text


@pytest.mark.parametrize(
    "line, reason, rule",
    [
        # numbers: ASCII digits only
        ("\u00b2 58:00 101 6 1", "event id '\u00b2' is not an integer: only the ASCII digits 0-9 make a number", "event_id"),
        ("1 58:00 101 6 \u2460", "goal '\u2460' is not an integer: only the ASCII digits 0-9 make a number", "goal"),
        ("1 58:00 \uff11\uff10\uff11 6 1", "team '\uff11\uff10\uff11' is not an integer: only the ASCII digits 0-9 make a number", "team"),
        ("\u0661 58:00 101 6 1", "event id '\u0661' is not an integer: only the ASCII digits 0-9 make a number", "event_id"),
        ("1 \u0665\u0668:00 101 6 1", "clock '\u0665\u0668:00' is not mm:ss", "clock"),
        ("1 58:00 101 \u0666 1", "jersey '\u0666' is not 1-3 ASCII digits", "jersey"),
        ("1 58:00 101 \uff16 1", "jersey '\uff16' is not 1-3 ASCII digits", "jersey"),
        ("1 58:00 101 6a 1", "jersey '6a' is not 1-3 ASCII digits", "jersey"),
        # non-canonical numbers are rejected, never normalized
        ("+1 58:00 101 6 1", "event id '+1' is not written canonically (no '+', no leading zero, no '-0')", "event_id"),
        ("01 58:00 101 6 1", "event id '01' is not written canonically (no '+', no leading zero, no '-0')", "event_id"),
        ("-0 58:00 101 6 1", "event id '-0' is not written canonically (no '+', no leading zero, no '-0')", "event_id"),
        ("1 58:00 0101 6 1", "team '0101' is not written canonically (no '+', no leading zero, no '-0')", "team"),
        ("1 58:00 101 6 01", "goal '01' is not written canonically (no '+', no leading zero, no '-0')", "goal"),
        ("1 58:00 101 6 +1", "goal '+1' is not written canonically (no '+', no leading zero, no '-0')", "goal"),
        ("1 7:05 101 6 1", "clock '7:05' is not mm:ss", "clock"),
        ("1 058:00 101 6 1", "clock '058:00' is not mm:ss", "clock"),
        # ids every store can hold: up to 2^31-1
        ("2147483648 58:00 101 6 1", "event id 2147483648 is out of range -1..2147483647", "event_id"),
        ("9223372036854775808 58:00 101 6 1", "event id '9223372036854775808' is out of range", "event_id"),
        ("1 58:00 2147483648 6 1", "team 2147483648 is out of range 0..2147483647", "team"),
        # separators: exactly one ASCII space
        ("1\t58:00 101 6 1", "a tab in the line: fields are separated by exactly one space", "separator"),
        ("1 58:00\u00a0101 6 1", "a no-break space (U+00A0) in the line: fields are separated by exactly one space", "separator"),
        ("1 58:00 101 6\u2003 1", "whitespace U+2003 in the line: fields are separated by exactly one space", "separator"),
        ("1  58:00 101 6 1", "leading, trailing or repeated spaces: fields are separated by exactly one space", "separator"),
        (" 1 58:00 101 6 1", "leading, trailing or repeated spaces: fields are separated by exactly one space", "separator"),
        ("1 58:00 101 6 1 ", "leading, trailing or repeated spaces: fields are separated by exactly one space", "separator"),
        # a -1 line's team is checked like any line's
        ("-1 00:00 999 6 0", "team 999 is not playing", "team_not_playing"),
    ],
)
def test_rejects_what_spec_2_does_not_allow_by_a_named_rule(line, reason, rule):
    data = f"0 59:00 101 6 1\n{line}\n2 57:00 205 6 1\n"
    parsed = parse_stream(data.encode(), TEAMS)
    assert reasons(parsed) == [(2, reason)]
    assert parsed.rejected[0].rule == rule and parsed.rejected_by_rule == {rule: 1}
    assert parsed.rejected[0].text == line  # shown as written
    assert [e.event_id for e in parsed.events] == [0, 2]
    assert parsed.score(101) == 1 and parsed.score(205) == 1
    assert not parsed.is_over()


def test_largest_id_is_accepted():
    parsed = parse_stream(b"2147483647 58:00 101 6 1\n", TEAMS)
    assert parsed.rejected == [] and parsed.events[0].event_id == 2**31 - 1


def test_jerseys_are_kept_as_written():
    parsed = parse_stream(b"0 59:00 101 0 1\n1 58:00 101 00 1\n2 57:00 101 007 0\n", TEAMS)
    assert parsed.rejected == []
    assert [e.jersey for e in parsed.events] == ["0", "00", "007"]


def test_a_byte_order_mark_at_the_start_is_removed_and_shown():
    parsed = parse_stream(b"\xef\xbb\xbf0 59:00 101 6 1\n1 58:00 205 6 0\n", TEAMS)
    assert [e.event_id for e in parsed.events] == [0, 1]  # the first event is not lost
    assert parsed.rejected == []
    assert [(w.line_no, w.rule) for w in parsed.warnings] == [(1, "byte_order_mark")]
    # anywhere else it is a character in a field
    parsed = parse_stream(b"0 59:00 101 6 1\n\xef\xbb\xbf1 58:00 205 6 0\n", TEAMS)
    assert [(r.line_no, r.rule) for r in parsed.rejected] == [(2, "event_id")]
    assert parsed.warnings == []


def test_a_shot_on_the_game_over_line_ends_the_game_is_not_counted_and_is_shown():
    parsed = parse_stream(b"0 59:00 101 6 1\n1 30:00 205 6 1\n-1 00:00 205 12 1\n", TEAMS)
    assert parsed.is_over() and parsed.over_reason == "game-over line"
    assert parsed.score(205) == 1 and len(parsed.shots) == 2
    assert parsed.rejected == []
    assert parsed.warning_count == 1
    w = parsed.warnings[0]
    assert (w.line_no, w.rule, w.text) == (3, "game_over_shot", "-1 00:00 205 12 1")
    assert "team 205 #12, goal 1" in w.reason and "not counted" in w.reason
    # a goal or a jersey on a team-0 game-over line is shown the same way
    for line in (b"-1 00:00 0 0 1", b"-1 00:00 0 7 0"):
        parsed = parse_stream(b"0 59:00 101 6 1\n" + line + b"\n", TEAMS)
        assert parsed.is_over() and [w.rule for w in parsed.warnings] == ["game_over_shot"]
    # the plain marker is not a warning
    parsed = parse_stream(b"0 59:00 101 6 1\n-1 00:00 0 0 0\n", TEAMS)
    assert parsed.is_over() and parsed.warnings == []


def test_a_game_over_line_of_a_team_not_playing_does_not_end_the_game():
    parsed = parse_stream(b"0 59:00 101 6 1\n-1 00:00 999 6 0\n1 58:00 205 6 0\n", TEAMS)
    assert not parsed.is_over() and parsed.game_over_line is None
    assert reasons(parsed) == [(2, "team 999 is not playing")]
    assert [e.event_id for e in parsed.events] == [0, 1]


def test_rejected_lines_are_counted_all_but_kept_as_a_bounded_sample():
    from sidearm_assets.domain.stream import SAMPLE_LINES, TEXT_LIMIT

    huge = "x" * 1_000_000
    data = "0 59:00 101 6 1\n" + f"{huge}\n" * 3 + "bad\n" * 100 + "1 58:00 205 6 1\n"
    parsed = parse_stream(data.encode(), TEAMS)
    assert parsed.rejected_count == 103 and len(parsed.rejected) == SAMPLE_LINES
    assert parsed.rejected_by_rule == {"field_count": 103}
    assert parsed.line_count == 105 and [e.event_id for e in parsed.events] == [0, 1]
    first = parsed.rejected[0]
    assert first.text == "x" * TEXT_LIMIT + "... [1000000 characters in all]"
    assert [r.line_no for r in parsed.rejected] == list(range(2, 2 + SAMPLE_LINES))


def test_every_rejected_line_can_be_kept_on_request():
    data = "0 59:00 101 6 1\n" + "bad\n" * 30 + "1 58:00 205 6 1\n"
    parsed = parse_stream(data.encode(), TEAMS, keep_rejected=None)
    assert parsed.rejected_count == 30 and [r.line_no for r in parsed.rejected] == list(range(2, 32))
    assert parse_stream(data.encode(), TEAMS, keep_rejected=0).rejected == []


def test_a_long_line_that_is_not_utf8_is_cut_too():
    parsed = parse_stream(b"\xff" * 10_000 + b"\n0 59:00 101 6 1\n", TEAMS)
    assert reasons(parsed) == [(1, "not UTF-8")]
    assert parsed.rejected[0].text == "\ufffd" * 200 + "... [10000 bytes in all]"


def test_str_and_bytes_split_the_same_way():
    text = "0 59:00 101 6 1\u20281 58:00 205 6 0\n2 57:00 205 6 0\x0b\n"
    by_str, by_bytes = parse_stream(text, TEAMS), parse_stream(text.encode(), TEAMS)
    assert by_str == by_bytes
    assert by_str.line_count == 2 and [r.line_no for r in by_str.rejected] == [1, 2]
