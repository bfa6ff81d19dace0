"""Property-based tests of the domain (hypothesis): what holds for every input, not just examples.

The number of examples comes from the hypothesis profile (conftest.py): a modest `fast` one by
default, `--hypothesis-profile=deep` (10,000 examples a property) for a manual soak.
"""

from __future__ import annotations

import bson
from hypothesis import assume, given
from hypothesis import strategies as st

from sidearm_assets.domain.boxscore import markdown_boxscore, pct
from sidearm_assets.domain.final import completed_game, final_checks, season_totals, unique_games
from sidearm_assets.domain.gameflow import flow_from_stream, flow_markdown, flow_svg
from sidearm_assets.domain.games import Matchup
from sidearm_assets.domain.live import BOXSCORE_CHECKS, check_outcomes, live_update
from sidearm_assets.domain.stream import REJECT_RULES, SAMPLE_LINES, TEXT_LIMIT, WARNING_RULES, parse_stream
from sidearm_assets.storage.reference_db import BASE_PLAYERS, BASE_TEAMS

HOME, AWAY = (dict(t) for t in BASE_TEAMS)
GAME = Matchup("gamestream", HOME, AWAY)
OTHER_GAME = Matchup("rivalry", HOME, AWAY)
PLAYERS = [dict(p) for p in BASE_PLAYERS]
DOCUMENT_LIMIT = 1024 * 1024  # far below MongoDB's 16 MiB; what the box score must stay under

# Tokens a stream line is made of: well-formed ones, and every kind of trouble SPEC 2 rules out.
TRICKY_NUMBERS = ["01", "+1", "-0", "-2", "\u00b2", "\u2460", "\uff11", "\u0663", "2147483648", "9" * 30, "", "x", "1.0"]
good_clocks = st.integers(0, 3600).map(lambda s: f"{s // 60:02d}:{s % 60:02d}")
good_jerseys = st.one_of(st.sampled_from([p["number"] for p in PLAYERS]), st.from_regex(r"[0-9]{1,3}", fullmatch=True))
bad_fields = [
    st.sampled_from(TRICKY_NUMBERS),  # event id
    st.sampled_from(["7:05", "60:01", "12:75", "99:99", "\u0660\u0660:\u0660\u0660", "1258", "-1:00", "00:00 "]),
    st.sampled_from(["999", "0101", "-5", "\uff11\uff10\uff11", "2147483648"]),  # team
    st.sampled_from(["\u00b2", "\u2460", "A1", "1234", "\ufeff6"]),  # jersey
    st.sampled_from(["2", "01", "x", "-1", "\u00b9"]),  # goal
]
separators = st.sampled_from([" "] * 12 + ["  ", "\t", "\xa0", "\u3000"])
line_ends = st.sampled_from(["\n"] * 6 + ["\r\n", "\r"])


@st.composite
def stream_lines(draw) -> bytes:
    """A stream of mostly well-formed lines (ids mostly rising, shots, markers, 00:00 and -1
    lines) mixed with lines carrying bad fields, bad separators, arbitrary text or bytes."""
    out = []
    event = 0
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.integers(0, 19))
        if kind == 0:
            out.append(draw(st.text(max_size=30)).encode("utf-8", errors="surrogatepass"))
        elif kind == 1:
            out.append(draw(st.binary(max_size=30)))
        else:
            event_id = "-1" if kind == 2 else str(event if draw(st.integers(0, 9)) else draw(st.integers(0, 60)))
            event += draw(st.integers(1, 2))
            team = draw(st.sampled_from(["101", "205", "101", "205", "0"]))
            fields = [
                event_id, "00:00" if kind == 3 else draw(good_clocks), team,
                "0" if team == "0" else draw(good_jerseys), "0" if team == "0" else draw(st.sampled_from(["0", "1"])),
            ]
            if kind == 4:  # one bad field
                which = draw(st.integers(0, 4))
                fields[which] = draw(bad_fields[which])
            if kind == 5:  # a field too few or too many
                fields = fields[: draw(st.integers(0, 4))] if draw(st.booleans()) else fields + ["1"]
            text = fields[0] if fields else ""
            for f in fields[1:]:
                text += (draw(separators) if kind == 6 else " ") + f
            out.append(text.encode())
        out.append(draw(line_ends).encode() if draw(st.integers(0, 4)) == 0 else b"\n")
    data = b"".join(out)
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data


any_stream = st.one_of(stream_lines(), stream_lines(), stream_lines(), st.binary(max_size=400))

# Messy rosters: shared numbers, numbers in other digits, no number at all.
roster_numbers = st.one_of(
    st.from_regex(r"[0-9]{1,3}", fullmatch=True),
    st.sampled_from(["6", "6", "12", "\u00b2", "\u2460", "\uff17", "07", "7 ", "", "abcd"]),
    st.none(),
)


@st.composite
def rosters(draw) -> list[dict]:
    players = [dict(p) for p in PLAYERS]
    next_id = 1000
    for _ in range(draw(st.integers(0, 6))):
        players.append({
            "id": next_id, "name": draw(st.text(max_size=12)), "number": draw(roster_numbers),
            "shots": 0, "goals": 0, "teamid": draw(st.sampled_from([101, 205, 300])),
        })
        next_id += draw(st.integers(1, 3))
    return draw(st.permutations(players))


def everything(data: bytes, players: list[dict], game: Matchup = GAME):
    """All the live path computes from one version, as the sensor and the asset do."""
    update = live_update(game, data, "etag@v", "2026-11-27T00:00:00+00:00", players)
    outcomes = check_outcomes(update, players)
    update.summary()
    assert (update.skip_reason is None) == (update.doc is not None)  # a reason exactly when no document
    if update.doc is not None:
        markdown_boxscore(update.doc)
        flow = flow_from_stream(game.game_id, update.parsed, update.doc["home"], update.doc["away"])
        flow_svg(flow)
        flow_markdown(flow)
    return update, outcomes


@given(any_stream, rosters())
def test_a_completed_game_adds_exactly_its_box_score_to_the_final_tables(data, players):
    """Box score and final tables credit the same players (shared numbers: the lowest id;
    numbers that are not jerseys: nobody), and the final tables pass their own checks."""
    update, _ = everything(data, players)
    if not update.parsed.is_over():
        return
    game = completed_game(update.parsed, GAME)
    final = season_totals(players, [HOME, AWAY], [game])
    base = {p["id"]: p for p in players}
    added = {
        p["id"]: (p["shots"] - base[p["id"]]["shots"], p["goals"] - base[p["id"]]["goals"])
        for p in final.players
        if (p["shots"], p["goals"]) != (base[p["id"]]["shots"], base[p["id"]]["goals"])
    }
    in_doc = {
        p["id"]: (p["shots"], p["goals"])
        for side in ("home", "away")
        for p in update.doc[side]["players"]
        if p["on_roster"] and p["shots"]
    }
    assert added == in_doc
    off_roster_goals = sum(u["goals"] for u in final.unknown_jerseys)
    assert sum(g for _, g in added.values()) + off_roster_goals == update.doc["home"]["score"] + update.doc["away"]["score"]
    outcomes = final_checks(players, [HOME, AWAY], [game], final.players, final.teams)
    assert [o.name for o in outcomes if o.severity == "ERROR" and not o.passed] == []


@given(any_stream, rosters())
def test_no_input_raises_and_every_line_is_accepted_or_counted_as_rejected(data, players):
    update, outcomes = everything(data, players)
    parsed = update.parsed
    assert parsed.line_count == len(data.splitlines())
    assert len(parsed.events) + parsed.rejected_count == parsed.line_count
    assert sum(parsed.rejected_by_rule.values()) == parsed.rejected_count
    assert set(parsed.rejected_by_rule) <= set(REJECT_RULES)
    assert {w.rule for w in parsed.warnings} <= set(WARNING_RULES)
    assert len(parsed.rejected) == min(parsed.rejected_count, SAMPLE_LINES)
    assert all(len(r.text) <= TEXT_LIMIT + 40 for r in parsed.rejected + parsed.warnings)
    assert sorted(o.name for o in outcomes) == sorted(BOXSCORE_CHECKS)
    assert next(o for o in outcomes if o.name == "stream_lines_accepted").passed == (
        parsed.rejected_count == 0 and parsed.warning_count == 0
    )
    # every accepted field is what SPEC 2 allows
    for e in parsed.events:
        assert -1 <= e.event_id <= 2**31 - 1 and 0 <= e.team_id <= 2**31 - 1
        assert e.jersey.isascii() and e.jersey.isdigit() and 1 <= len(e.jersey) <= 3
        assert e.goal in (0, 1) and 0 <= e.seconds_left <= 3600 and e.clock.isascii()
        assert e.team_id in (0, 101, 205)


@given(any_stream, rosters())
def test_score_equals_player_goals_and_every_roster_player_is_listed(data, players):
    update, outcomes = everything(data, players)
    doc = update.doc
    if doc is None:
        assert update.parsed.events == []
        return
    for side in ("home", "away"):
        team = doc[side]
        assert team["score"] == sum(p["goals"] for p in team["players"])
        assert team["score"] == sum(e.goal for e in update.parsed.shots if e.team_id == team["teamid"])
        assert team["shots"] == sum(1 for e in update.parsed.shots if e.team_id == team["teamid"])
        roster_ids = sorted(p["id"] for p in players if p["teamid"] == team["teamid"])
        assert sorted(p["id"] for p in team["players"] if p["on_roster"]) == roster_ids
    checks = {o.name: o for o in outcomes}
    assert checks["score_equals_player_goals"].passed and checks["roster_fully_listed"].passed


def _half_up(goals: int, shots: int) -> float:
    """SPEC 5 in integers: round(100 * goals / shots) with halves up, as hundredths."""
    return 0.0 if shots == 0 else ((200 * goals + shots) // (2 * shots)) / 100


@given(st.integers(0, 10_000).flatmap(lambda s: st.tuples(st.integers(0, s), st.just(s))))
def test_pct_rounds_half_up_to_two_decimals(goals_shots):
    g, s = goals_shots
    assert pct(g, s) == _half_up(g, s)


@given(any_stream)
def test_every_listed_pct_follows_spec_5(data):
    update, _ = everything(data, PLAYERS)
    if update.doc is None:
        return
    for side in ("home", "away"):
        team = update.doc[side]
        assert team["pct"] == _half_up(team["score"], team["shots"])
        for p in team["players"]:
            assert p["pct"] == _half_up(p["goals"], p["shots"])


# Well-formed games: every line passes the field rules, so the game-over rule can be computed
# independently from the text.
@st.composite
def well_formed_games(draw) -> list[str]:
    lines = []
    event = 0
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            minus_one = "-1 00:00 0 0 0" if draw(st.booleans()) else f"-1 00:00 {draw(st.sampled_from(['101', '205']))} 6 1"
            lines.append(minus_one)
            continue
        seconds = 0 if kind <= 2 else draw(st.integers(0, 3600))
        clock = f"{seconds // 60:02d}:{seconds % 60:02d}"
        team = draw(st.sampled_from(["101", "205", "0"]))
        goal = draw(st.sampled_from(["0", "1"]))
        if team == "0":
            goal = "0"
        lines.append(f"{event} {clock} {team} {draw(good_jerseys)} {goal}")
        event += draw(st.integers(1, 2))
    return lines


def expected_final(lines: list[str]) -> tuple[bool, int, int]:
    """SPEC 2 from the text alone: (over, home goals, away goals)."""
    score = {"101": 0, "205": 0}
    over = False
    for line in lines:
        event_id, clock, team, _, goal = line.split(" ")
        if event_id == "-1":
            over = True  # a shot on the -1 line is not counted
            continue
        if over:
            continue  # after game over: rejected
        if team != "0":
            score[team] += int(goal)
        if clock == "00:00" and score["101"] != score["205"]:
            over = True
    return over, score["101"], score["205"]


@given(well_formed_games())
def test_game_over_rule_of_spec_2(lines):
    data = ("\n".join(lines) + "\n").encode()
    update, _ = everything(data, PLAYERS)
    over, home, away = expected_final(lines)
    doc = update.doc
    assert (doc["final"], doc["home"]["score"], doc["away"]["score"]) == (over, home, away)
    assert update.parsed.rejected_by_rule.keys() <= {"after_game_over", "duplicate_game_over"}


@given(any_stream, rosters())
def test_same_input_gives_the_same_document(data, players):
    first, _ = everything(data, players)
    again, _ = everything(bytes(data), [dict(p) for p in reversed(players)])
    assert first.doc == again.doc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert parse_stream(text, GAME.team_ids) == parse_stream(data, GAME.team_ids)  # str or bytes alike


@given(any_stream, rosters())
def test_a_document_is_storable_and_small_whatever_the_input(data, players):
    for game in (GAME, OTHER_GAME):
        update, outcomes = everything(data, players, game)
        if update.doc is not None:
            assert len(bson.encode(update.doc)) < DOCUMENT_LIMIT
        assert len(bson.encode({"checks": [o.metadata for o in outcomes], "summary": update.summary()})) < DOCUMENT_LIMIT


@given(st.lists(well_formed_games(), min_size=1, max_size=4), st.lists(st.integers(0, 3), min_size=4, max_size=4))
def test_completed_games_count_once_however_often_listed(games_lines, repeats):
    completed = []
    for i, lines in enumerate(games_lines):
        game = Matchup(f"g{i}", HOME, AWAY)
        parsed = parse_stream(("\n".join(lines) + "\n").encode(), game.team_ids)
        if parsed.is_over():
            completed.append(completed_game(parsed, game))
    listed = [g for g, n in zip(completed, repeats) for _ in range(n + 1)]
    teams = [HOME, AWAY]
    assert season_totals(PLAYERS, teams, listed) == season_totals(PLAYERS, teams, completed)
    assert unique_games(listed) == completed
    final = season_totals(PLAYERS, teams, listed)
    decided = sum(1 for g in completed if g.decided)
    assert sum(t["wins"] + t["losses"] for t in final.teams) == sum(t["wins"] + t["losses"] for t in teams) + 2 * decided


team_names = st.one_of(st.none(), st.text(max_size=60))


@given(any_stream, rosters(), team_names, team_names, st.one_of(st.none(), st.integers(0, 99)))
def test_messy_team_rows_never_raise(data, players, home_name, away_name, wins):
    home = dict(HOME, name=home_name, wins=wins)
    away = dict(AWAY, name=away_name, losses=None)
    update, outcomes = everything(data, players, Matchup("rivalry", home, away))
    if update.doc is not None:
        assert update.doc["home"]["name"] == home_name and len(bson.encode(update.doc)) < DOCUMENT_LIMIT


@given(any_stream, st.one_of(st.text(max_size=30), st.sampled_from(["7 59:00 101 6 1", "-1 00:00 0 0 0", "3 00:00 205 22 1"])),
       st.sampled_from([None, 3]))
def test_a_line_fed_to_a_parser_gives_the_parse_of_the_longer_object(data, line, keep_rejected):
    """StreamParser.extended (the ingest API's append) parses one more line exactly as
    parse_stream parses the object with that line at its end, and leaves the parser it came from
    as it was."""
    from sidearm_assets.domain.stream import StreamParser, split_lines

    assume(line and (not data or data.endswith((b"\n", b"\r"))))
    try:
        longer = data + line.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # the API only writes UTF-8
        assume(False)
    lines = [t for _, t, _ in split_lines(longer)]
    assume(lines[-1:] == [line] and len(lines) == len(list(split_lines(data))) + 1)  # one more line
    parser = StreamParser(GAME.team_ids, keep_rejected).feed_all(data)
    before = parse_stream(data, GAME.team_ids, keep_rejected)
    expected = parse_stream(longer, GAME.team_ids, keep_rejected)
    assert parser.extended(line).parsed == expected
    assert parser.parsed == before
    assert parser.extended(line).parsed == expected  # the first extension changed nothing it shares


@given(any_stream, any_stream, st.sampled_from([None, 3]))
def test_bytes_fed_after_a_line_end_give_the_parse_of_the_longer_object(data, more, keep_rejected):
    """StreamParser.continued (the live watcher's next version of a game that grew) parses the
    new bytes exactly as parse_stream parses the whole longer object, and leaves the parser it
    came from as it was."""
    from sidearm_assets.domain.stream import StreamParser

    assume(not data or data.endswith(b"\n"))
    parser = StreamParser(GAME.team_ids, keep_rejected).feed_all(data)
    before = parse_stream(data, GAME.team_ids, keep_rejected)
    expected = parse_stream(data + more, GAME.team_ids, keep_rejected)
    assert parser.continued(more).parsed == expected
    assert parser.parsed == before
    assert parser.continued(more).parsed == expected
