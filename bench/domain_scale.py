"""How the live path's pure computation grows with the stream: no services.

Prints, for streams of N lines, the time of parse + build (`live_update`), of the checks
(`check_outcomes`), of the Markdown box score and game flow, and the document's BSON size:

- `good`: well-formed shots by roster players;
- `offroster`: every shot by a different jersey off the roster (all 2 x 1,110 possible jerseys,
  over and over): what made the checks quadratic before;
- `hostile`: one good line, one 10 MiB line, then garbage lines.

    .venv/bin/python bench/domain_scale.py [--lines 100000]

Times are this process's CPU seconds (`time.process_time`), so a busy machine changes them less
than wall-clock time would.
"""

from __future__ import annotations

import argparse
import time

import bson

from sidearm_assets.domain.boxscore import markdown_boxscore
from sidearm_assets.domain.gameflow import flow_from_stream, flow_markdown
from sidearm_assets.domain.games import Matchup
from sidearm_assets.domain.live import check_outcomes, live_update
from sidearm_assets.storage.reference_db import BASE_PLAYERS, BASE_TEAMS

PLAYERS = [dict(p) for p in BASE_PLAYERS]
GAME = Matchup("gamestream", *(dict(t) for t in BASE_TEAMS))
JERSEYS = [str(n) for n in range(10)] + [f"{n:02d}" for n in range(100)] + [f"{n:03d}" for n in range(1000)]


def stream(kind: str, lines: int) -> bytes:
    out = []
    if kind == "good":
        numbers = {t: [p["number"] for p in PLAYERS if p["teamid"] == t] for t in (101, 205)}
        for i in range(lines):
            team = (101, 205)[i % 2]
            out.append(f"{i} {59 - i * 59 // lines:02d}:00 {team} {numbers[team][i % 10]} {i % 3 == 0:d}")
    elif kind == "offroster":
        for i in range(lines):
            out.append(f"{i} 30:00 {(101, 205)[i % 2]} {JERSEYS[(i // 2) % len(JERSEYS)]} {i % 2}")
    else:
        out = ["0 59:00 101 6 1", "x" * (10 * 1024 * 1024)] + ["garbage line"] * (lines - 2)
    return ("\n".join(out) + "\n").encode()


def measure(kind: str, lines: int) -> str:
    data = stream(kind, lines)
    t0 = time.process_time()
    update = live_update(GAME, data, "v", None, PLAYERS)
    t1 = time.process_time()
    outcomes = check_outcomes(update, PLAYERS)
    t2 = time.process_time()
    markdown_boxscore(update.doc)
    flow_markdown(flow_from_stream("gamestream", update.parsed, update.doc["home"], update.doc["away"]))
    t3 = time.process_time()
    size = len(bson.encode(update.doc))
    meta = len(bson.encode({o.name: o.metadata for o in outcomes}))
    return (
        f"kind={kind} lines={lines} bytes={len(data)} parse_build_s={t1 - t0:.3f} checks_s={t2 - t1:.3f} "
        f"markdown_flow_s={t3 - t2:.3f} doc_bson_bytes={size} check_metadata_bytes={meta} "
        f"rejected={update.parsed.rejected_count} unknown_jerseys={update.doc['issues']['unknown_jersey_count']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    for kind in ("good", "offroster", "hostile"):
        for lines in (args.lines // 4, args.lines):
            print(measure(kind, lines), flush=True)


if __name__ == "__main__":
    main()
