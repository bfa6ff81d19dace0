"""The game-flow picture: each team's score over the game clock, as a small hand-written SVG.

Pure functions, no Dagster, no plotting library. A flow comes from a parsed stream (every goal at
its clock second). The SVG is self-contained
(no fonts, scripts or links to fetch), so it works inline in a web page and as a `data:` image
in Dagster's Markdown metadata.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape

from sidearm_assets.domain.stream import GAME_SECONDS, QUARTER_SECONDS, ParsedStream, format_clock

HOME_COLOR = "#1f5fbf"
AWAY_COLOR = "#c2410c"
# The picture and the goals text stay small whatever the stream: past these many goals a team's
# line is drawn through evenly spaced steps (no dots), and the text lists the first goals only.
MAX_DRAWN_GOALS = 200
MAX_LISTED_GOALS = 100


@dataclass(frozen=True)
class TeamFlow:
    name: str
    # (seconds elapsed since 60:00, score), starting at (0, 0): one step per goal (the score holds
    # until the next step)
    steps: tuple[tuple[int, int], ...]

    @property
    def score(self) -> int:
        return self.steps[-1][1]


@dataclass(frozen=True)
class GameFlow:
    game_id: str
    home: TeamFlow
    away: TeamFlow
    elapsed: int  # seconds of game clock played so far (the latest event's clock)
    final: bool

    @property
    def clock(self) -> str:
        return format_clock(GAME_SECONDS - self.elapsed)


def _elapsed(seconds_left: int) -> int:
    return GAME_SECONDS - seconds_left


def flow_from_stream(game_id: str, parsed: ParsedStream, home: dict, away: dict) -> GameFlow:
    """Exact flow from a parsed stream; `home`/`away` are `teams` rows (or document sides with
    `teamid`)."""
    last = parsed.last_event
    elapsed = _elapsed(last.seconds_left) if last is not None else 0
    teams = []
    for team in (home, away):
        team_id = team.get("teamid", team.get("id"))
        steps = [(0, 0)]
        for shot in parsed.shots:
            if shot.team_id == team_id and shot.goal:
                steps.append((_elapsed(shot.seconds_left), steps[-1][1] + 1))
        teams.append(TeamFlow(team["name"], tuple(steps)))
    return GameFlow(game_id, teams[0], teams[1], elapsed, parsed.is_over())


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def flow_svg(flow: GameFlow, width: int = 520, height: int = 220) -> str:
    """The flow as an SVG document: x = game clock 60:00 -> 00:00, y = goals, one step line per team."""
    left, right, top, bottom = 34, 22, 40, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    top_score = max(flow.home.score, flow.away.score, 1)
    y_step = _grid_step(top_score)

    def x(sec: int) -> float:
        return left + plot_w * sec / GAME_SECONDS

    def y(score: int) -> float:
        return top + plot_h - plot_h * score / top_score

    state = "Final" if flow.final else f"{flow.clock} left"
    title = f"{flow.home.name} {flow.home.score} - {flow.away.score} {flow.away.name}, {state}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    # quarters: shaded alternately, labelled, with the clock at each boundary
    for q in range(4):
        x0, x1 = x(q * QUARTER_SECONDS), x((q + 1) * QUARTER_SECONDS)
        if q % 2:
            out.append(f'<rect x="{_fmt(x0)}" y="{top}" width="{_fmt(x1 - x0)}" height="{plot_h}" fill="#f3f4f6"/>')
        out.append(f'<text x="{_fmt((x0 + x1) / 2)}" y="{top - 6}" text-anchor="middle" fill="#6b7280">Q{q + 1}</text>')
    for q in range(5):
        sec = q * QUARTER_SECONDS
        out.append(
            f'<text x="{_fmt(x(sec))}" y="{height - 8}" text-anchor="middle" fill="#6b7280">'
            f"{format_clock(GAME_SECONDS - sec)}</text>"
        )
    for score in range(0, top_score + 1, y_step):
        yy = _fmt(y(score))
        out.append(f'<line x1="{left}" y1="{yy}" x2="{left + plot_w}" y2="{yy}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 5}" y="{_fmt(y(score) + 4)}" text-anchor="end" fill="#6b7280">{score}</text>')
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>'
    )
    if not flow.final:  # where the game is now
        xn = _fmt(x(flow.elapsed))
        out.append(f'<line x1="{xn}" y1="{top}" x2="{xn}" y2="{top + plot_h}" stroke="#9ca3af" stroke-dasharray="3,3"/>')
    for team, color in ((flow.home, HOME_COLOR), (flow.away, AWAY_COLOR)):
        points = []
        steps = _drawn_steps(team.steps)
        for (sec, score), (next_sec, _) in zip(steps, steps[1:] + ((flow.elapsed, 0),)):
            # the score holds until the next goal, then steps up
            points.append(f"{_fmt(x(sec))},{_fmt(y(score))}")
            points.append(f"{_fmt(x(max(next_sec, sec)))},{_fmt(y(score))}")
        out.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round"/>'
        )
        if steps is team.steps:  # a dot per goal, unless there are too many to draw
            for sec, score in team.steps[1:]:
                out.append(f'<circle cx="{_fmt(x(sec))}" cy="{_fmt(y(score))}" r="2.5" fill="{color}"/>')
    # legend: team names as given (escaped), current scores
    lx = left + 4
    for team, color in ((flow.home, HOME_COLOR), (flow.away, AWAY_COLOR)):
        label = escape(f"{team.name} {team.score}")
        out.append(f'<rect x="{lx}" y="5" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 14}" y="14" fill="#111827">{label}</text>')
        lx += 20 + 7 * len(f"{team.name} {team.score}")
    out.append(f'<text x="{left + plot_w}" y="14" text-anchor="end" fill="#111827">{escape(state)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _grid_step(top_score: int) -> int:
    """Goals between horizontal grid lines: 1, 2, 5, 10, 20, 50... so there are at most 10."""
    step, factors = 1, (2, 2.5, 2)  # 1 -> 2 -> 5 -> 10 -> 20 -> 50 ...
    i = 0
    while top_score > 10 * step:
        step = int(step * factors[i % 3])
        i += 1
    return step


def _drawn_steps(steps: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """The steps drawn: all of them, or past MAX_DRAWN_GOALS evenly spaced ones and the last."""
    if len(steps) <= MAX_DRAWN_GOALS + 1:
        return steps
    stride = -(-len(steps) // MAX_DRAWN_GOALS)
    thinned = steps[::stride]
    return thinned if thinned[-1] == steps[-1] else thinned + (steps[-1],)


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def flow_markdown(flow: GameFlow) -> str:
    """Markdown for Dagster metadata: the picture as an embedded image, and the goals as text
    (readable where images are not shown, e.g. in logs or `dagster asset` output)."""
    image = f"![game flow: {_md_text(flow.home.name)} vs {_md_text(flow.away.name)}]({svg_data_uri(flow_svg(flow))})"
    return "\n\n".join([image, flow_goals_text(flow)])


def flow_goals_text(flow: GameFlow) -> str:
    """`Goals: 59:12 Hawks 1-0, ...` in clock order (the first MAX_LISTED_GOALS, then how many more)."""
    goals = [(sec, 0) for sec, _ in flow.home.steps[1:]] + [(sec, 1) for sec, _ in flow.away.steps[1:]]
    home = away = 0
    parts = []
    for sec, side in sorted(goals):
        if side == 0:
            home += 1
        else:
            away += 1
        scorer = flow.home.name if side == 0 else flow.away.name
        if len(parts) < MAX_LISTED_GOALS:
            parts.append(f"{format_clock(GAME_SECONDS - sec)} {_md_text(scorer)} {home}-{away}")
    if len(goals) > MAX_LISTED_GOALS:
        parts.append(f"and {len(goals) - MAX_LISTED_GOALS} more (score {home}-{away})")
    return "Goals: " + (", ".join(parts) if parts else "none yet")


def _md_text(text: str) -> str:
    """Team names inside Markdown: no brackets or emphasis characters that change the markup
    (a name the teams table leaves empty is shown as nothing)."""
    return "".join(" " if c in "[]()*_`|<>\\" else c for c in ("" if text is None else str(text)))
