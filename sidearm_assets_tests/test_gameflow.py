"""The game-flow picture (score over the game clock) and its place in the box-score metadata."""

import base64
import re
import xml.etree.ElementTree as ET

from sidearm_assets.domain.gameflow import (
    flow_from_stream,
    flow_goals_text,
    flow_markdown,
    flow_svg,
    svg_data_uri,
)
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.live import live_update
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS

HOME, AWAY = (dict(t) for t in BASE_TEAMS)
PLAYERS = [dict(p) for p in BASE_PLAYERS]
SVG = "{http://www.w3.org/2000/svg}"

# Goals: home at 58:00 and 40:00, away at 44:59 (second quarter) and 10:00; a miss at 30:00.
STREAM = b"""0 58:00 101 6 1
1 44:59 205 12 1
2 40:00 101 22 1
3 30:00 205 6 0
4 10:00 205 12 1
5 05:30 0 0 0
"""


def parsed():
    return parse_stream(STREAM, (101, 205))


def test_flow_from_stream_steps_at_each_goal_and_ends_at_the_clock():
    flow = flow_from_stream("gamestream", parsed(), HOME, AWAY)
    assert flow.home.steps == ((0, 0), (120, 1), (1200, 2))  # 60:00 - 58:00, 60:00 - 40:00
    assert flow.away.steps == ((0, 0), (901, 1), (3000, 2))
    assert (flow.home.score, flow.away.score) == (2, 2)
    assert flow.elapsed == 3600 - 330 and flow.clock == "05:30"
    assert not flow.final
    assert (flow.home.name, flow.away.name) == (HOME["name"], AWAY["name"])


def _polyline_points(svg_text):
    root = ET.fromstring(svg_text)
    lines = root.findall(f"{SVG}polyline")
    return [[tuple(float(v) for v in p.split(",")) for p in line.get("points").split()] for line in lines]


def test_svg_is_well_formed_with_one_line_per_team_rising_once_per_goal():
    flow = flow_from_stream("gamestream", parsed(), HOME, AWAY)
    svg = flow_svg(flow)
    home_line, away_line = _polyline_points(svg)
    for line, team in ((home_line, flow.home), (away_line, flow.away)):
        ys = [y for _, y in line]
        rises = sum(1 for a, b in zip(ys, ys[1:]) if b < a)  # SVG y grows downwards
        assert rises == team.score
        assert line[0][0] < line[-1][0]  # left to right: 60:00 towards 00:00
    # both teams end level (2-2) at the same height and at the same x: the current clock
    assert home_line[-1] == away_line[-1]
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert f"{HOME['name']} 2" in texts and f"{AWAY['name']} 2" in texts
    assert "05:30 left" in texts
    assert {"Q1", "Q2", "Q3", "Q4", "60:00", "00:00"} <= set(texts)
    assert len(root.findall(f"{SVG}circle")) == 4  # one dot per goal


def test_final_flow_says_final_and_draws_no_current_clock_line():
    data = STREAM + b"-1 00:00 0 0 0\n"
    flow = flow_from_stream("gamestream", parse_stream(data, (101, 205)), HOME, AWAY)
    svg = flow_svg(flow)
    root = ET.fromstring(svg)
    assert "Final" in [t.text for t in root.iter(f"{SVG}text")]
    assert not [line for line in root.findall(f"{SVG}line") if line.get("stroke-dasharray")]


def test_team_names_are_escaped_in_the_svg_and_kept_out_of_markdown_syntax():
    home = dict(HOME, name='<b>"Hawks" & Co</b>')
    away = dict(AWAY, name="Miners](http://evil)")
    flow = flow_from_stream("x", parsed(), home, away)
    svg = flow_svg(flow)
    root = ET.fromstring(svg)  # still well-formed XML
    assert '<b>"Hawks" & Co</b> 2' in [t.text for t in root.iter(f"{SVG}text")]
    assert "<b>" not in svg
    md = flow_markdown(flow)
    image = md.split("\n\n")[0]
    assert re.fullmatch(r"!\[[^\]\[()]*\]\(data:image/svg\+xml;base64,[A-Za-z0-9+/=]+\)", image)


def test_data_uri_decodes_to_the_svg_and_markdown_lists_the_goals_in_order():
    flow = flow_from_stream("gamestream", parsed(), HOME, AWAY)
    svg = flow_svg(flow)
    uri = svg_data_uri(svg)
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == svg
    md = flow_markdown(flow)
    assert uri in md
    assert flow_goals_text(flow) == (
        f"Goals: 58:00 {HOME['name']} 1-0, 44:59 {AWAY['name']} 1-1, "
        f"40:00 {HOME['name']} 2-1, 10:00 {AWAY['name']} 2-2"
    )


def test_box_score_metadata_carries_the_game_flow_picture():
    from dagster import MetadataValue

    from sidearm_assets.assets.live import boxscore_metadata

    game = matchup("gamestream", [dict(g) for g in BASE_GAMES], [HOME, AWAY])
    update = live_update(game, STREAM, "etag@1", None, PLAYERS)
    meta = boxscore_metadata(update)
    assert isinstance(meta["game_flow"], type(MetadataValue.md("")))
    text = meta["game_flow"].value
    assert "data:image/svg+xml;base64," in text
    assert f"10:00 {AWAY['name']} 2-2" in text
    assert len(text) < 8000  # emitted for every stream version: keep it small

    empty = live_update(game, b"", "etag@0", None, PLAYERS)
    assert "game_flow" not in boxscore_metadata(empty)


def test_a_flow_with_very_many_goals_stays_a_small_picture_and_text():
    from sidearm_assets.domain.gameflow import MAX_DRAWN_GOALS, MAX_LISTED_GOALS

    lines = [f"{i} {59 - i * 59 // 5000:02d}:{i % 60:02d} {(101, 205)[i % 2]} 6 1" for i in range(5000)]
    flow = flow_from_stream("gamestream", parse_stream(("\n".join(lines) + "\n").encode(), (101, 205)), HOME, AWAY)
    assert (flow.home.score, flow.away.score) == (2500, 2500)
    svg = flow_svg(flow)
    root = ET.fromstring(svg)
    home_line, away_line = _polyline_points(svg)
    assert len(home_line) <= 2 * (MAX_DRAWN_GOALS + 2) and len(away_line) <= 2 * (MAX_DRAWN_GOALS + 2)
    assert home_line[-1][1] == away_line[-1][1] == min(y for _, y in home_line)  # both end at the top: 2500
    assert root.findall(f"{SVG}circle") == []  # no dot per goal past MAX_DRAWN_GOALS
    text = flow_goals_text(flow)
    assert text.count(",") == MAX_LISTED_GOALS and text.endswith("and 4900 more (score 2500-2500)")
    assert len(flow_markdown(flow)) < 64 * 1024


def test_teams_without_a_name_still_get_a_picture_and_text():
    home, away = dict(HOME, name=None), dict(AWAY, name=None)
    game = matchup("gamestream", [dict(g) for g in BASE_GAMES], [home, away])
    update = live_update(game, STREAM, "v", None, PLAYERS)
    flow = flow_from_stream("gamestream", update.parsed, update.doc["home"], update.doc["away"])
    ET.fromstring(flow_svg(flow))
    assert flow_goals_text(flow).startswith("Goals: 58:00  1-0")
    from sidearm_assets.domain.boxscore import markdown_boxscore

    assert "** 2 - 2 **" in markdown_boxscore(update.doc)
