"""What many tests share: the one random game generator and the one expected-document builder.

`random_game` makes a seeded stream for any two teams; `expected_document` computes SPEC 5 from
the text lines the plain way, with no code shared with the project, and `assert_matches` holds a
document to it. `bucket_store` and `remove_bucket` give a test a bucket of its own on the shared
embedded stack and take it away. `Stack` is a stack and a daemon of a test's own, for tests that kill servers or
stream a league through the daemon (`start_league`). Fixtures live in conftest.py.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path

from gamestream.league import install_league, league_s3_client, make_league, stream_league
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.live import live_update
from sidearm_assets.local import local_stack, processes
from sidearm_assets.local.dagster_processes import start_dagster
from sidearm_assets.storage import clients, reference_db

from sidearm_assets.domain.stream import format_clock

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GAME = REPO / "gamestream" / "games" / "default.txt"
DEFAULT_OVER = DEFAULT_GAME.read_bytes().rstrip(b"\n") + b"\n-1 00:00 0 0 0\n"  # as the simulator ends it

# Two more teams for multi-game tests; their players get ids from 101 up.
EXTRA_TEAMS = (
    {"id": 300, "name": "Corbin Falcons", "conference": "Northeast Collegiate", "wins": 5, "losses": 6},
    {"id": 301, "name": "Deerfield Otters", "conference": "Mid-Atlantic Lacrosse", "wins": 7, "losses": 3},
)
EXTRA_PLAYERS = tuple(
    {"id": 100 + i, "name": f"Player {i}", "number": str(n), "shots": 10 + i, "goals": 3 + i % 4, "teamid": team}
    for i, (n, team) in enumerate(
        [(n, 300) for n in (1, 5, 9, 11, 23)] + [(n, 301) for n in (2, 5, 7, 11, 40)] + [(5, 300)], start=1
    )
)  # the last row repeats #5 on team 300: shots credit the lower id


def bucket_store(env: dict, prefix: str):
    """A `GameStreamStore` on the stack of `env` (its `SIDEARM_*` settings), in a new bucket
    `<prefix>-<random>` created here."""
    from sidearm_assets import settings
    from sidearm_assets.resources import GameStreamStore

    store = GameStreamStore(
        endpoint_url=env[settings.S3_ENDPOINT_URL.name],
        access_key=env[settings.S3_ACCESS_KEY.name],
        secret_key=env[settings.S3_SECRET_KEY.name],
        bucket=f"{prefix}-{uuid.uuid4().hex[:10]}",
    )
    store.ensure_bucket()
    return store


def remove_bucket(store) -> None:
    """Delete every object of the store's bucket, then the bucket."""
    client = store.client()
    for obj in client.list_objects_v2(Bucket=store.bucket).get("Contents", []):
        client.delete_object(Bucket=store.bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=store.bucket)


def random_game(
    seed: int,
    home: int,
    away: int,
    rosters: dict[int, list[str]],
    *,
    shots: int = 60,
    ending: str = "auto",  # "auto": 00:00 marker if not tied else -1; "minus1": always -1; "tie": force a tie at -1;
    # "both": the 00:00 marker, then -1 (over at the marker unless tied)
    off_roster: float = 0.05,
    bad_lines: bool = False,
) -> bytes:
    """A seeded game stream for `home` vs `away`: shots with roster (and a few off-roster) jerseys."""
    rng = random.Random(seed)
    clocks = sorted(rng.sample(range(1, 3600), shots), reverse=True)
    lines, score = [], {home: 0, away: 0}
    for event_id, clock in enumerate(clocks):
        team = rng.choice((home, away))
        jersey = rng.choice(rosters[team]) if rng.random() > off_roster else str(rng.randint(60, 99))
        goal = int(rng.random() < 0.3)
        score[team] += goal
        lines.append(f"{event_id} {format_clock(clock)} {team} {jersey} {goal}")
        if bad_lines and rng.random() < 0.08:
            lines.append(rng.choice(["", "x 10:00 101 6 1", f"{event_id} 99:00 {team} 6 1", f"{event_id + 500} 10:00 999 6 1"]))
    if ending == "tie" and score[home] != score[away]:
        behind = home if score[home] < score[away] else away
        for _ in range(abs(score[home] - score[away])):
            lines.append(f"{len(clocks)} 00:01 {behind} {rosters[behind][0]} 1")
            clocks.append(1)
        score[behind] = max(score.values())
    n = len(clocks)
    if ending == "both":
        lines += [f"{n} 00:00 0 0 0", "-1 00:00 0 0 0"]
    elif ending == "auto" and score[home] != score[away]:
        lines.append(f"{n} 00:00 0 0 0")
    else:
        lines.append("-1 00:00 0 0 0")
    return ("\n".join(lines) + "\n").encode()


def tied_game(home: int, away: int, jersey_home: str, jersey_away: str) -> bytes:
    """2-2, then the game-over line: a tie at -1."""
    return (
        f"0 50:00 {home} {jersey_home} 1\n1 40:00 {away} {jersey_away} 1\n"
        f"2 30:00 {home} {jersey_home} 1\n3 20:00 {away} {jersey_away} 1\n4 00:00 0 0 0\n-1 00:00 0 0 0\n"
    ).encode()


def expected_document(game_id, lines, home, away, players):
    """SPEC 5 computed the plain way, from the text lines, with no code shared with the project."""
    totals = {}  # (team, jersey) -> [shots, goals]
    last_id, last_clock, over = None, None, False
    for line in lines:
        ev, clock, team, jersey, goal = line.split()
        last_id, last_clock = int(ev), clock
        if int(ev) == -1:
            over = True
            continue
        if team != "0":
            t = totals.setdefault((int(team), jersey), [0, 0])
            t[0] += 1
            t[1] += int(goal)
        if clock == "00:00":  # SPEC 2: over at 00:00 unless tied
            goals = {tm: sum(v[1] for (x, _), v in totals.items() if x == tm) for tm in (home["id"], away["id"])}
            over = over or goals[home["id"]] != goals[away["id"]]

    def side(team, other):
        roster = {p["number"]: p for p in players if p["teamid"] == team["id"]}
        listed = []
        for number in set(roster) | {j for (t, j) in totals if t == team["id"]}:
            shots, goals = totals.get((team["id"], number), [0, 0])
            p = roster.get(number)
            listed.append({
                "id": p["id"] if p else None, "name": p["name"] if p else None, "number": number,
                "shots": shots, "goals": goals,
                "pct": 0.0 if shots == 0 else int(goals * 100 / shots + 0.5 + 1e-9) / 100,
                "on_roster": p is not None,
            })
        listed.sort(key=lambda x: int(x["number"]))
        return listed

    home_players, away_players = side(home, away), side(away, home)
    hs, as_ = sum(p["goals"] for p in home_players), sum(p["goals"] for p in away_players)
    return {
        "_id": last_id if game_id == "gamestream" else f"{game_id}:{last_id}",
        "event_id": last_id, "seq": len(lines), "timestamp": last_clock, "final": over,
        "home_score": hs, "away_score": as_,
        "home_status": "winning" if hs > as_ else "losing" if hs < as_ else "tied",
        "home_players": home_players, "away_players": away_players,
    }


def assert_matches(doc, exp):
    assert doc["_id"] == exp["_id"]
    assert (doc["event_id"], doc["seq"], doc["timestamp"], doc["final"]) == (
        exp["event_id"], exp["seq"], exp["timestamp"], exp["final"])
    assert doc["home"]["score"] == exp["home_score"] and doc["away"]["score"] == exp["away_score"]
    assert doc["home"]["status"] == exp["home_status"]
    strip = lambda ps: [{k: p[k] for k in ("id", "name", "number", "shots", "goals", "pct", "on_roster")} for p in ps]
    assert strip(doc["home"]["players"]) == exp["home_players"]
    assert strip(doc["away"]["players"]) == exp["away_players"]


# A league streamed through a stack and a daemon of the test's own

PUT_INTERVAL = (0.15, 0.3)


class Stack:
    def __init__(self, directory: Path, extra_env: dict[str, str] | None = None):
        self.directory = directory
        self.info = local_stack.start_stack(directory / "stack", local_stack.FREE_PORTS)
        self.env = {**os.environ, **self.info.env, **(extra_env or {})}
        self.dagster = None
        self.engine = reference_db.make_engine(self.env["SIDEARM_SQL_URL"])
        self.s3 = league_s3_client(self.env["SIDEARM_S3_ENDPOINT_URL"], self.env["SIDEARM_S3_ACCESS_KEY"],
                                   self.env["SIDEARM_S3_SECRET_KEY"], max_pool_connections=16)
        self.bucket = self.env["SIDEARM_S3_BUCKET"]
        self.boxscores = clients.mongo_client(self.env["SIDEARM_MONGO_URI"], timeout_ms=1000)[
            self.env["SIDEARM_MONGO_DB"]]["boxscores"]

    def start_daemon(self):
        """A code server and `dagster-daemon` pointed at it, as production runs them."""
        self.dagster = start_dagster(self.directory, self.env)

    def stop_daemon(self):
        """Daemon, run workers, code server and its watcher gone together (a container crash)."""
        if self.dagster is not None:
            self.dagster.stop()
            self.dagster = None

    def wait_for_watcher(self):
        with self.engine.begin() as conn:
            conn.execute(reference_db.games.delete().where(reference_db.games.c.game_id == "warmup"))
            conn.execute(reference_db.games.insert().values(game_id="warmup", home_teamid=101, away_teamid=205))
        self.s3.put_object(Bucket=self.bucket, Key="warmup.txt", Body=b"0 59:00 101 6 1\n")
        processes.wait_until(lambda: self._find_one({"game_id": "warmup"}), timeout=180,
                             what="the live sensor's first document")

    def _find_one(self, query):
        try:
            return self.boxscores.find_one(query)
        except Exception:
            return None

    def latest(self, game_id):
        try:
            return self.boxscores.find_one({"game_id": game_id}, sort=[("seq", -1)])
        except Exception:
            return None

    def restart(self, name: str, down_seconds: float) -> float:
        """Kill one server by pid, keep it down, start it again on the same port; returns when it answers
        (monotonic time)."""
        local_stack.restart_service(self.directory / "stack", name, down_seconds=down_seconds, grace=1.0)
        return time.monotonic()

    def close(self):
        self.stop_daemon()
        local_stack.stop_stack(self.directory / "stack")


def expected_final(engine, game) -> dict:
    games = reference_db.read_rows(engine, reference_db.games)
    teams = reference_db.read_rows(engine, reference_db.teams)
    players = reference_db.read_rows(engine, reference_db.players)
    return live_update(matchup(game.game_id, games, teams), game.final_bytes, "v", None, players).doc


def stream_in_background(stack, league, on_put=None):
    done = threading.Event()
    errors = []

    def run():
        try:
            stream_league(stack.s3, stack.bucket, league, put_interval=PUT_INTERVAL, log_puts=False, on_put=on_put)
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, errors


def wait_until_playing(stack, league, lines: int = 8, timeout: float = 60):
    """Until every game of the league has a box score of at least `lines` stream lines (mid-game)."""
    processes.wait_until(
        lambda: all(((stack.latest(g.game_id) or {}).get("seq") or 0) >= min(lines, len(g.lines)) for g in league.games),
        timeout=timeout, interval=0.1, what=f"every game's box score at {lines} lines or more")


def start_league(stack, n_games: int, seed: int, on_put=None):
    """Install a league, start the daemon, wait for the watcher, stream the league in the background."""
    league = make_league(n_games, seed=seed)
    install_league(stack.engine, league)
    stack.start_daemon()
    stack.wait_for_watcher()
    done, errors = stream_in_background(stack, league, on_put)
    return league, done, errors


def assert_every_game_ends_final(stack, league, timeout: float):
    deadline = time.monotonic() + timeout
    for game in league.games:
        processes.wait_until(
            lambda: (stack.latest(game.game_id) or {}).get("seq") == len(game.lines),
            timeout=max(1.0, deadline - time.monotonic()), interval=0.2,
            what=f"{game.game_id}'s final document",
        )
        latest = stack.latest(game.game_id)
        expected = expected_final(stack.engine, game)
        assert latest["final"] and {k: latest[k] for k in ("home", "away")} == {k: expected[k] for k in ("home", "away")}

