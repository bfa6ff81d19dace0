"""A league of N games streamed at once: the load generator behind `gamestream --games N`.

Everything is deterministic from `(n_games, seed)`, and a league of N games is the first N games
of any bigger league with the same seed (each team and game has its own random stream).

**Reference data**, added beside the base data (sidearm_assets.storage.reference_db): game i (1-based)
is `league-%04d` (object key `league-0001.txt`), home team `10_000 + 2i - 1`, away team
`10_000 + 2i`; each team has a name, a conference, a record (8-14 games played) and 10-14 players
with distinct jersey numbers 1-99 and season shots/goals; player j of team k has id
`1_000_000 + 100 k + j`. These ranges are reserved for league rows, so they never collide with
the base teams 101/205, the base reset (SPEC 4) leaves them alone, and installing twice only
rewrites the same rows.

**Games**: 40-80 shots in regulation over four 15-minute quarters (clock 59:59 to 00:01; two
shots may share a second), 22-38 % shooting per team and game, the stronger record taking more
shots, shooters weighted by their season shots, then the marker `<id> 00:00 0 0 0`. A decided
game either ends there (the feed never sends `-1`: over by the clock rule of SPEC 2) or also gets
`-1 00:00 0 0 0`; a game tied at 00:00 goes to sudden-death overtime (4-minute periods, the clock
restarting at 04:00, a tied `00:00` marker between periods) and ends with `-1 <clock of the
winning goal> 0 0 0`. Every version parses without a rejected line, and only the last is over.

**Timing** (the mapping from game time to real time): put k of a game waits
`clamp(gap_k * s, lo, hi)` real seconds after put k-1 was sent, where `gap_k` is the game seconds
between the two lines, `(lo, hi)` is `put_interval` (default 1-3 s) and `s = (lo + hi) / 2 /
mean gap of that game`: a game second lasts about 2 s / 55 = 0.036 s (a game plays ~28x real
time, 2-3 minutes), and every put lands 1-3 s after the previous one of its game. Games start
`start_spread * i / N` seconds after the first (default spread: 2 * hi). Scale `put_interval`
down to compress a league for tests.

Python API (the simulator and bench/live_scale.py use it):

```python
league = make_league(200, seed=1)          # League: .teams, .players, .game_rows(), .games
league.games[0].versions()                 # [bytes of put 1, bytes of put 2, ...]
install_league(engine, league)             # rows beside the base data, idempotent
s3 = league_s3_client(endpoint, key, secret, max_pool_connections=32)
stream_league(s3, bucket, league, put_interval=(1.0, 3.0), start_spread=None,
              on_put=lambda game_id, line_count, sent, returned: ...)
```

`on_put(game_id, line_count, sent_monotonic, returned_monotonic)` is called from the worker
thread after each put returns: `line_count` is the number of lines in the version just written
(its bytes are `league.game(game_id).versions()[line_count - 1]`; SPEC 5's `seq` of the document
built from it), the two times are `time.monotonic()` just before the put and just after it
returned. A game's next put is never sent before its previous one returned, so each object ends
with its last version. An exception in a put (after botocore's retries) or in `on_put` stops the
league: no new put is sent, and `stream_league` raises LeagueStreamError naming the game.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sidearm_assets import settings
from sidearm_assets.storage import reference_db
from sidearm_assets.domain.stream import GAME_SECONDS, format_clock

MAX_GAMES = 4999  # team ids 10_001..19_998 and four-digit game ids
MIN_PLAYERS, MAX_PLAYERS = 10, 14
REGULATION_SHOTS = (40, 80)
OVERTIME_SECONDS = 4 * 60
MAX_OVERTIMES = 3  # the next shot after the third overtime period scores (a game must end)
DEFAULT_PUT_INTERVAL = (1.0, 3.0)
TEAM_ID_BASE = reference_db.LEAGUE_TEAM_IDS.start - 1  # team k is TEAM_ID_BASE + k
PLAYER_ID_BASE = 1_000_000  # player j of team k is PLAYER_ID_BASE + 100 * k + j

log = logging.getLogger("gamestream")

OnPut = Callable[[str, int, float, float], None]

PLACES = (
    "Ashford", "Bramble Creek", "Calder", "Danvers Point", "Eastlake", "Fairhaven", "Glenrock",
    "Holloway", "Ironbridge", "Juniper Hill", "Kestrel Bay", "Lindenwood", "Marlow", "Northgate",
    "Oakhurst", "Pinecrest", "Quarry Falls", "Redfield", "Stonebrook", "Thornbury", "Upton",
    "Valemont", "Westbury", "Yarrow", "Alder Ridge", "Birchmont", "Cedar Bluff", "Dunhill",
    "Elmstead", "Foxborough Tech", "Granite State", "Harbor City", "Inverness", "Kingsford",
    "Lakeshore", "Meadowvale", "New Salem", "Old Mill", "Portland Bay", "Riverton", "Silver Lake",
    "Tidewater", "Union Valley", "Winslow", "Bellamy", "Crestwood", "Drummond", "Everly",
)
MASCOTS = (
    "Otters", "Falcons", "Wolves", "Rams", "Herons", "Lynx", "Mariners", "Pioneers", "Ravens",
    "Badgers", "Stallions", "Foxes", "Comets", "Huskies", "Knights", "Owls", "Panthers", "Bison",
    "Cougars", "Ospreys", "Quakers", "Terriers", "Vikings", "Yellowjackets", "Gulls", "Hornets",
    "Lancers", "Minutemen", "Rangers", "Spartans", "Tritons", "Wildcats",
)
CONFERENCES = (
    "Atlantic Coast Lacrosse", "Great Lakes Collegiate", "New England Athletic", "Patriot Valley",
    "Big Sky Lacrosse", "Colonial Athletic", "Southern Plains", "Pacific Rim Lacrosse",
)
FIRST_NAMES = (
    "Aaron", "Ben", "Caleb", "Declan", "Ethan", "Finn", "Gavin", "Henry", "Ian", "Jake", "Kyle",
    "Liam", "Matt", "Noah", "Owen", "Pat", "Quentin", "Reid", "Sean", "Trevor", "Vince", "Wes",
    "Xavier", "Zach", "Brody", "Colin", "Drew", "Evan", "Griffin", "Hunter", "Jared", "Logan",
)
LAST_NAMES = (
    "Abbott", "Barrett", "Cahill", "Donnelly", "Ellison", "Fitzgerald", "Gallagher", "Hanley",
    "Irwin", "Jennings", "Kowalski", "Lombardi", "McAllister", "Novak", "O'Rourke", "Pruitt",
    "Quigley", "Rourke", "Sullivan", "Tierney", "Underwood", "Vasquez", "Whelan", "Yates",
    "Zielinski", "Brennan", "Costa", "Delaney", "Egan", "Flynn", "Gorman", "Hurley",
)


@dataclass(frozen=True)
class LeagueGame:
    """One scheduled game: its stream lines and the elapsed game time at each (overtime goes past
    3600 s)."""

    game_id: str
    home_teamid: int
    away_teamid: int
    lines: tuple[str, ...]
    game_seconds: tuple[int, ...]

    @property
    def key(self) -> str:
        return settings.key_for_game(self.game_id)

    @property
    def teams(self) -> tuple[int, int]:
        return (self.home_teamid, self.away_teamid)

    def versions(self) -> list[bytes]:
        """The bytes of each put: version k holds the first k lines (the whole object is rewritten)."""
        out, text = [], ""
        for line in self.lines:
            text += line + "\n"
            out.append(text.encode())
        return out

    def final_line_count(self) -> int:
        """The put (its line count) that makes the game final by the pipeline's own rule: a game
        can end one put before its last (the clock at 00:00 not tied, then the `-1` line)."""
        from sidearm_assets.domain.stream import StreamParser, split_lines

        parser = StreamParser(self.teams)  # one line at a time: the parse of each put in turn
        for line_no, text, raw in split_lines(self.final_bytes):
            parser.feed(line_no, text, raw)
            if parser.parsed.is_over():
                return line_no
        return len(self.lines)

    @property
    def final_bytes(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()

    def clock(self, line_count: int) -> str:
        """The clock of the last line in the version of `line_count` lines."""
        return self.lines[line_count - 1].split()[1]

    def waits(self, put_interval: tuple[float, float] = DEFAULT_PUT_INTERVAL) -> list[float]:
        """Real seconds between put k-1 and put k (the first is 0), by the module's mapping."""
        lo, hi = put_interval
        gaps = [b - a for a, b in zip(self.game_seconds, self.game_seconds[1:])]
        mean = (sum(gaps) / len(gaps)) if gaps else 0
        scale = (lo + hi) / 2 / mean if mean > 0 else 0.0
        return [0.0] + [min(hi, max(lo, gap * scale)) for gap in gaps]


@dataclass(frozen=True)
class League:
    seed: int
    teams: tuple[dict, ...]
    players: tuple[dict, ...]
    games: tuple[LeagueGame, ...]

    def game_rows(self) -> list[dict]:
        return [{"game_id": g.game_id, "home_teamid": g.home_teamid, "away_teamid": g.away_teamid} for g in self.games]

    def game(self, game_id: str) -> LeagueGame:
        for g in self.games:
            if g.game_id == game_id:
                return g
        raise KeyError(game_id)


def game_id_for(index: int) -> str:
    """1-based game index -> `league-0001`."""
    return f"{reference_db.LEAGUE_GAME_PREFIX}{index:04d}"


def make_league(n_games: int, seed: int = 1) -> League:
    """N scheduled games with their own teams and players, deterministic from `seed`."""
    if not 1 <= n_games <= MAX_GAMES:
        raise ValueError(f"a league has 1 to {MAX_GAMES} games, not {n_games}")
    places = list(PLACES)
    mascots = list(MASCOTS)
    names_rng = random.Random(f"sidearm-league:{seed}:names")
    names_rng.shuffle(places)
    names_rng.shuffle(mascots)
    teams: list[dict] = []
    players: list[dict] = []
    games: list[LeagueGame] = []
    for i in range(1, n_games + 1):
        pair = []
        for k in (2 * i - 1, 2 * i):
            team, roster = _make_team(seed, k, places, mascots)
            teams.append(team)
            players.extend(roster)
            pair.append((team, roster))
        (home, home_roster), (away, away_roster) = pair
        rng = random.Random(f"sidearm-league:{seed}:game:{i}")
        lines, seconds = _play_game(rng, home, home_roster, away, away_roster)
        games.append(LeagueGame(game_id_for(i), home["id"], away["id"], tuple(lines), tuple(seconds)))
    return League(seed, tuple(teams), tuple(players), tuple(games))


def _make_team(
    seed: int, k: int, places: list[str], mascots: list[str], namespace: str = "sidearm-league",
    team_id_base: int = TEAM_ID_BASE, player_id_base: int = PLAYER_ID_BASE,
) -> tuple[dict, list[dict]]:
    """Team k with its roster, from its own random stream (`namespace`, seed, k); ids from the bases
    (a season's teams use the same maker with ids of their own, gamestream/season.py)."""
    rng = random.Random(f"{namespace}:{seed}:team:{k}")
    # Distinct names for the first len(places) * len(mascots) teams; later ones get a numeral.
    n = k - 1
    place = places[n % len(places)]
    mascot = mascots[(n // len(places) + n) % len(mascots)]
    lap = n // (len(places) * len(mascots))
    name = f"{place} {mascot}" + (f" {lap + 1}" if lap else "")
    played = rng.randint(8, 14)
    quality = rng.betavariate(2.5, 2.5)
    wins = sum(rng.random() < quality for _ in range(played))
    team = {
        "id": team_id_base + k,
        "name": name[:50],
        "conference": rng.choice(CONFERENCES),
        "wins": wins,
        "losses": played - wins,
    }
    size = rng.randint(MIN_PLAYERS, MAX_PLAYERS)
    numbers = rng.sample(range(1, 100), size)
    weights = sorted((rng.paretovariate(1.6) for _ in range(size)), reverse=True)
    season_shots = played * rng.randint(24, 36)
    total = sum(weights)
    roster = []
    for j, (number, weight) in enumerate(zip(numbers, weights), start=1):
        shots = round(season_shots * weight / total)
        roster.append({
            "id": player_id_base + 100 * k + j,
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "number": str(number),
            "shots": shots,
            "goals": min(shots, round(shots * rng.uniform(0.15, 0.45))),
            "teamid": team["id"],
        })
    return team, roster


def _play_game(rng: random.Random, home: dict, home_roster: list[dict], away: dict, away_roster: list[dict]):
    """The lines of one game and the elapsed game seconds at each."""

    def record(t: dict) -> float:
        return (t["wins"] + 1) / (t["wins"] + t["losses"] + 2)

    home_share = min(0.7, max(0.3, 0.5 + 0.3 * (record(home) - record(away)) + rng.gauss(0, 0.06)))
    pct = {home["id"]: rng.uniform(0.22, 0.38), away["id"]: rng.uniform(0.22, 0.38)}
    rosters = {home["id"]: home_roster, away["id"]: away_roster}
    weights = {t: [p["shots"] + 1 for p in r] for t, r in rosters.items()}
    score = {home["id"]: 0, away["id"]: 0}
    lines: list[str] = []
    seconds: list[int] = []

    def shot(elapsed: int, clock_left: int, force_goal: bool = False) -> int:
        team = home["id"] if rng.random() < home_share else away["id"]
        shooter = rng.choices(rosters[team], weights[team])[0]
        goal = 1 if force_goal or rng.random() < pct[team] else 0
        score[team] += goal
        lines.append(f"{len(lines)} {format_clock(clock_left)} {team} {shooter['number']} {goal}")
        seconds.append(elapsed)
        return goal

    for t in sorted(rng.randint(1, GAME_SECONDS - 1) for _ in range(rng.randint(*REGULATION_SHOTS))):
        shot(t, GAME_SECONDS - t)
    lines.append(f"{len(lines)} 00:00 0 0 0")
    seconds.append(GAME_SECONDS)
    if score[home["id"]] != score[away["id"]]:
        if rng.random() < 0.5:  # the other half never publish `-1`: over by the clock rule
            lines.append("-1 00:00 0 0 0")
            seconds.append(GAME_SECONDS)
        return lines, seconds

    # Sudden-death overtime: 4-minute periods until the first goal.
    period_start = GAME_SECONDS
    for period in range(1, MAX_OVERTIMES + 2):
        t = 0
        while True:
            t += max(1, round(rng.expovariate(1 / 40)))
            if t >= OVERTIME_SECONDS and period <= MAX_OVERTIMES:
                break
            t = min(t, OVERTIME_SECONDS - 1)
            if shot(period_start + t, OVERTIME_SECONDS - t, force_goal=period > MAX_OVERTIMES):
                lines.append(f"-1 {format_clock(OVERTIME_SECONDS - t)} 0 0 0")
                seconds.append(period_start + t)
                return lines, seconds
        period_start += OVERTIME_SECONDS
        lines.append(f"{len(lines)} 00:00 0 0 0")
        seconds.append(period_start)
    raise AssertionError("unreachable: the last overtime period ends with a goal")


def install_league(engine, league: League) -> reference_db.LeagueInstallSummary:
    """Write the league's teams, players and `games` rows beside the base data (idempotent)."""
    return reference_db.install_league_rows(engine, list(league.teams), list(league.players), league.game_rows())


def league_s3_client(endpoint_url: str, access_key: str, secret_key: str, max_pool_connections: int):
    """One boto3 client for every streaming thread (boto3 clients are thread-safe), with a
    connection pool as big as the thread pool so no put waits for a connection."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},  # MinIO and moto on loopback need path-style URLs
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=2,
            read_timeout=10,
            max_pool_connections=max_pool_connections,
        ),
    )


def default_workers(n_games: int) -> int:
    """Threads for the puts: a put takes milliseconds and a game puts every ~2 s, so a few dozen
    threads carry hundreds of games; more only add contention on two cores."""
    return max(1, min(n_games, 32))


class LeagueStreamError(RuntimeError):
    """A put (or the on_put callback) failed; the league stopped sending."""

    def __init__(self, game_id: str, line_count: int, cause: BaseException):
        self.game_id = game_id
        self.line_count = line_count
        self.cause = cause
        super().__init__(f"{game_id}: put of version {line_count} failed: {cause.__class__.__name__}: {cause}")


@dataclass(frozen=True)
class LeagueStreamResult:
    games: int
    puts: int
    seconds: float  # from the first put's schedule to the last put's return
    slowest_put: float  # seconds, one put's round trip


def stream_league(
    s3,
    bucket: str,
    league: League,
    put_interval: tuple[float, float] = DEFAULT_PUT_INTERVAL,
    start_spread: float | None = None,
    on_put: OnPut | None = None,
    max_workers: int | None = None,
    log_puts: bool = True,
) -> LeagueStreamResult:
    """Stream every game of `league` at once into `bucket`; returns when every game is over.

    A scheduler (this thread) hands each due put to a thread pool; a game's next put is scheduled
    when its previous one returns, `waits()` after that put was sent. Logs SPEC 4's lines per game
    (`Wrote league-0001.txt to bucket gamestreams at 59:51`, then `Game Over...`); `log_puts=False`
    keeps only the per-game `Game Over` lines.
    """
    from concurrent.futures import ThreadPoolExecutor

    lo, hi = put_interval
    if not (0 <= lo <= hi) or hi != hi or hi == float("inf"):
        raise ValueError(f"put_interval must be 0 <= lo <= hi seconds, got {put_interval!r}")
    spread = 2 * hi if start_spread is None else start_spread
    if not 0 <= spread < float("inf"):
        raise ValueError(f"start_spread must be zero or more seconds, got {start_spread!r}")
    games = league.games
    n = len(games)
    versions = [g.versions() for g in games]
    waits = [g.waits((lo, hi)) for g in games]

    cond = threading.Condition()
    started = time.monotonic()
    due: list[tuple[float, int, int]] = [(started + spread * i / n, i, 0) for i in range(n)]  # (when, game, version)
    heapq.heapify(due)
    state = {"over": 0, "puts": 0, "in_flight": 0, "slowest": 0.0, "last": started}
    failure: list[LeagueStreamError] = []

    def put(i: int, k: int) -> None:
        game = games[i]
        try:
            sent = time.monotonic()
            s3.put_object(Bucket=bucket, Key=game.key, Body=versions[i][k], ContentType="text/plain; charset=utf-8")
            returned = time.monotonic()
            if log_puts:
                log.info("Wrote %s to bucket %s at %s", game.key, bucket, game.clock(k + 1))
            if on_put is not None:
                on_put(game.game_id, k + 1, sent, returned)
        except Exception as exc:  # noqa: BLE001 - reported to the scheduler, which stops the league
            with cond:
                failure.append(LeagueStreamError(game.game_id, k + 1, exc))
                state["in_flight"] -= 1
                cond.notify_all()
            return
        last = k + 1 == len(versions[i])
        if last:
            log.info("Game Over. Data Stream is complete for %s.", game.key)
        with cond:
            state["in_flight"] -= 1
            state["puts"] += 1
            state["slowest"] = max(state["slowest"], returned - sent)
            state["last"] = max(state["last"], returned)
            if last:
                state["over"] += 1
            else:
                heapq.heappush(due, (sent + waits[i][k + 1], i, k + 1))
            cond.notify_all()

    workers = max_workers or default_workers(n)
    pool_size = getattr(getattr(getattr(s3, "meta", None), "config", None), "max_pool_connections", None)
    if isinstance(pool_size, int) and pool_size < workers:
        log.warning("the S3 client pools %d connections for %d threads: puts will wait for a connection "
                    "(build it with league_s3_client(..., max_pool_connections=%d))", pool_size, workers, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="league-put")
    try:
        with cond:
            while state["over"] < n and not failure:
                now = time.monotonic()
                if due and due[0][0] <= now:
                    _, i, k = heapq.heappop(due)
                    state["in_flight"] += 1
                    pool.submit(put, i, k)
                    continue
                cond.wait(timeout=(due[0][0] - now) if due else None)
            while state["in_flight"]:  # after a failure: let the puts already sent finish
                cond.wait()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failure:
        raise failure[0]
    return LeagueStreamResult(n, state["puts"], state["last"] - started, state["slowest"])
