"""A whole season: N teams with rosters, a schedule of M games among them, and its backfill.

`gamestream season --teams N --games M --seed S` (gamestream/season_cli.py) installs it; benchmarks
and tests use the Python API:

```python
season = make_season(1000, 5000, seed=1)   # Season: .teams, .players, .games, .game_rows(), .days()
season.games[0].final_bytes()              # the complete final stream of game 1
install_season(engine, season)             # rows beside the base data, idempotent
archive = archive_client(endpoint, access_key, secret_key, bucket)
backfill(engine, archive, season.games[:2000])      # archive + completion inbox, no streaming
season.league(day_games)                   # a League of those games, for league.stream_league
```

**Teams** are league.py's (`_make_team`: a name, a record, 10-14 players with distinct jerseys and
season-to-date shots and goals), drawn from a random stream of their own (`sidearm-season`), with
ids in reference_db's `SEASON` ranges: team k (1-based) is `20_000 + k`, player j of team k is
`2_000_000 + 100 k + j`, game i is `season-00001`. They never collide with the base data
(101/205), nor with a league's rows (`gamestream --games N`), and the base reset leaves them alone.
Team k's row is a function of (seed, k) except its conference: the N teams are cut into
`max(1, N // 10)` conferences of consecutive team numbers (10 to 19 teams each).

**Schedule**: a sequence of dates, two a week (Saturdays and Wednesdays from 2027-02-06), on which
every team plays once (one team sits out when a group is odd). Two dates of three are conference
dates (each conference's circle-method round robin, repeated: every conference opponent met, then
met again), the third is a non-conference date (all teams paired at random). Home and away are
balanced as the schedule goes: the team that has played fewer home games than away games so far
hosts (a coin toss on a tie), so every team's home and away counts differ by one or two at most.
Each team plays about `2 M / N` games.

**Determinism**: everything is a function of (N, seed) and the game index: the season of M games
is the first M games of the endless schedule of (N, seed), so the season of M games is a prefix of
the season of M + 1 games with the same N and seed (the last date of a season may be partly
played). Game i's stream comes from its own random stream (seed, i), by league.py's `_play_game`:
40-80 shots, overtime on a tie, and its final version over by SPEC 2 (`-1`, or `00:00` untied).
Installing a different (N, seed) over an installed season rewrites the rows of the same keys: keep
one season per database.

**Backfill**: `backfill` writes each game's final bytes to the completed-games archive
(`completed/<game_id>.txt`, parallel puts from a bounded thread pool), then files them, in one
transaction, in the durable completion inbox (`final_tables_db.file_completions`), where the
next final-tables run finds them; no live version is streamed.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from gamestream import league as lg
from sidearm_assets import settings
from sidearm_assets.storage import reference_db

RANGES = reference_db.SEASON
TEAM_ID_BASE = RANGES.team_ids.start - 1  # team k is TEAM_ID_BASE + k
PLAYER_ID_BASE = 2_000_000  # player j of team k is PLAYER_ID_BASE + 100 * k + j
MIN_TEAMS = 2
MAX_TEAMS = len(RANGES.team_ids)  # 9,999
MAX_GAMES = 99_999  # five-digit game ids
CONFERENCE_SIZE = 10
SEASON_START = date(2027, 2, 6)  # a Saturday
NAMESPACE = "sidearm-season"
DEFAULT_WORKERS = 16


def game_id_for(index: int) -> str:
    """1-based game index -> `season-00001`."""
    return f"{RANGES.game_prefix}{index:05d}"


def date_of(date_index: int) -> date:
    """Dates are Saturdays and Wednesdays: date 0 is SEASON_START, date 1 the Wednesday after."""
    return SEASON_START + timedelta(days=7 * (date_index // 2) + (4 if date_index % 2 else 0))


@dataclass(frozen=True)
class SeasonGame:
    """One scheduled game; its stream is played on first use (deterministic, then kept)."""

    game_id: str
    index: int  # 1-based position in the schedule
    date: date
    home_teamid: int
    away_teamid: int
    seed: int
    _sides: tuple = field(repr=False, compare=False)  # (home row, home roster, away row, away roster)

    @property
    def key(self) -> str:
        return settings.key_for_game(self.game_id)

    @property
    def teams(self) -> tuple[int, int]:
        return (self.home_teamid, self.away_teamid)

    @functools.cached_property
    def _played(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        rng = random.Random(f"{NAMESPACE}:{self.seed}:game:{self.index}")
        home, home_roster, away, away_roster = self._sides
        lines, seconds = lg._play_game(rng, home, list(home_roster), away, list(away_roster))
        return tuple(lines), tuple(seconds)

    @property
    def lines(self) -> tuple[str, ...]:
        return self._played[0]

    def final_bytes(self) -> bytes:
        """The game's complete stream: its last version, over by SPEC 2."""
        return ("\n".join(self.lines) + "\n").encode()

    def stream(self) -> lg.LeagueGame:
        """The game as league.py streams it (`versions()`, `waits()`), for a live game day."""
        lines, seconds = self._played
        return lg.LeagueGame(self.game_id, self.home_teamid, self.away_teamid, lines, seconds)


@dataclass(frozen=True)
class Season:
    n_teams: int
    seed: int
    teams: tuple[dict, ...]
    players: tuple[dict, ...]
    games: tuple[SeasonGame, ...]

    def game_rows(self) -> list[dict]:
        return [{"game_id": g.game_id, "home_teamid": g.home_teamid, "away_teamid": g.away_teamid}
                for g in self.games]

    def game(self, game_id: str) -> SeasonGame:
        index = int(game_id[len(RANGES.game_prefix):]) if game_id.startswith(RANGES.game_prefix) else 0
        if 1 <= index <= len(self.games) and self.games[index - 1].game_id == game_id:
            return self.games[index - 1]
        raise KeyError(game_id)

    def days(self) -> list[tuple[date, tuple[SeasonGame, ...]]]:
        """The games grouped by date, in schedule order."""
        out: dict[date, list[SeasonGame]] = {}
        for g in self.games:
            out.setdefault(g.date, []).append(g)
        return [(d, tuple(gs)) for d, gs in out.items()]

    def league(self, games) -> lg.League:
        """A League of `games`, for `league.stream_league` (it streams `.games` only)."""
        return lg.League(self.seed, (), (), tuple(g.stream() for g in games))


def conferences(n_teams: int) -> list[list[int]]:
    """Team numbers (1-based) of each conference: `max(1, N // 10)` blocks of consecutive numbers
    whose sizes differ by one at most."""
    count = max(1, n_teams // CONFERENCE_SIZE)
    blocks: list[list[int]] = [[] for _ in range(count)]
    for k in range(1, n_teams + 1):
        blocks[(k - 1) * count // n_teams].append(k)
    return blocks


def conference_name(c: int) -> str:
    names = lg.CONFERENCES
    return names[c % len(names)] + (f" {c // len(names) + 1}" if c >= len(names) else "")


def _round_robin_round(members: list[int], r: int) -> list[tuple[int, int]]:
    """Round r of the circle method over `members` (repeating after each full round robin); with an
    odd count one member sits out each round."""
    slots: list[int | None] = list(members) + ([None] if len(members) % 2 else [])
    n = len(slots)
    if n < 2:
        return []
    shift = r % (n - 1)
    rest = slots[1:]
    arranged = [slots[0]] + rest[shift:] + rest[:shift]
    pairs = [(arranged[i], arranged[n - 1 - i]) for i in range(n // 2)]
    return [(a, b) for a, b in pairs if a is not None and b is not None]


def schedule(n_teams: int, seed: int) -> Iterator[tuple[int, int, int]]:
    """The endless schedule of (N, seed): (date index, home team number, away team number), in
    the order games are numbered. Every prefix is the schedule of a shorter season."""
    if not MIN_TEAMS <= n_teams <= MAX_TEAMS:
        raise ValueError(f"a season has {MIN_TEAMS} to {MAX_TEAMS} teams, not {n_teams}")
    rng = random.Random(f"{NAMESPACE}:{seed}:schedule")
    blocks = conferences(n_teams)
    balance = [0] * (n_teams + 1)  # home games minus away games so far, by team number
    everyone = list(range(1, n_teams + 1))
    conference_dates = 0
    d = 0
    while True:
        if d % 3 == 0:  # a non-conference date: everyone paired at random
            order = everyone[:]
            rng.shuffle(order)
            pairs = [(order[i], order[i + 1]) for i in range(0, n_teams - 1, 2)]
        else:
            pairs = [p for members in blocks for p in _round_robin_round(members, conference_dates)]
            conference_dates += 1
        for a, b in pairs:
            if balance[a] > balance[b] or (balance[a] == balance[b] and rng.random() < 0.5):
                a, b = b, a
            balance[a] += 1
            balance[b] -= 1
            yield d, a, b
        d += 1


def make_teams(n_teams: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The N teams (conference set by `conferences`) and their players, by league.py's maker."""
    places, mascots = list(lg.PLACES), list(lg.MASCOTS)
    names_rng = random.Random(f"{NAMESPACE}:{seed}:names")
    names_rng.shuffle(places)
    names_rng.shuffle(mascots)
    teams: list[dict] = []
    players: list[dict] = []
    for c, members in enumerate(conferences(n_teams)):
        for k in members:
            team, roster = lg._make_team(seed, k, places, mascots, namespace=NAMESPACE,
                                         team_id_base=TEAM_ID_BASE, player_id_base=PLAYER_ID_BASE)
            team["conference"] = conference_name(c)
            teams.append(team)
            players.extend(roster)
    return teams, players


def make_season(n_teams: int, n_games: int, seed: int = 1) -> Season:
    """N teams and the first M games of their schedule, deterministic from `seed` (streams are
    played on first use of a game)."""
    if not MIN_TEAMS <= n_teams <= MAX_TEAMS:
        raise ValueError(f"a season has {MIN_TEAMS} to {MAX_TEAMS} teams, not {n_teams}")
    if not 0 <= n_games <= MAX_GAMES:
        raise ValueError(f"a season has 0 to {MAX_GAMES} games, not {n_games}")
    teams, players = make_teams(n_teams, seed)
    rosters: dict[int, list[dict]] = {t["id"]: [] for t in teams}
    for p in players:
        rosters[p["teamid"]].append(p)
    sides = {t["id"]: (t, tuple(rosters[t["id"]])) for t in teams}
    games = []
    for i, (d, home_k, away_k) in zip(range(1, n_games + 1), schedule(n_teams, seed)):
        home, away = TEAM_ID_BASE + home_k, TEAM_ID_BASE + away_k
        games.append(SeasonGame(game_id_for(i), i, date_of(d), home, away, seed, sides[home] + sides[away]))
    return Season(n_teams, seed, tuple(teams), tuple(players), tuple(games))


def install_season(engine, season: Season) -> reference_db.LeagueInstallSummary:
    """Write the season's teams, players and `games` rows beside the base data (one transaction,
    bulk statements, idempotent)."""
    return reference_db.install_season_rows(engine, list(season.teams), list(season.players), season.game_rows())


class BackfillError(RuntimeError):
    """An archive put failed. The games are filed in the completion inbox already (they are counted);
    the final-tables run that counts them puts back each archive copy it finds missing."""


@dataclass(frozen=True)
class BackfillResult:
    games: int
    bytes: int
    play_s: float  # playing the games (their final streams)
    archive_s: float  # the archive puts
    file_s: float  # filing them in the completion inbox
    pending: int  # games whose filed version is new and waits for a final-tables run


def archive_client(endpoint_url: str, access_key: str, secret_key: str, bucket: str):
    """The S3 client of the archive puts: storage/s3http.py's signed PUT, one keep-alive
    connection per thread (about half the CPU per put of boto3's pipeline)."""
    from sidearm_assets.storage.s3http import SignedS3

    return SignedS3(endpoint_url, access_key, secret_key, bucket)


def archive_games(archive, finals: list[tuple[str, bytes]], workers: int = DEFAULT_WORKERS) -> None:
    """Put each (game id, final bytes) at its archive key in `archive`'s bucket (`archive_client`),
    `workers` puts at a time. A put that fails is sent once more (rewriting the same bytes is
    harmless); BackfillError names the first game whose put failed twice."""
    from concurrent.futures import ThreadPoolExecutor

    def put(item: tuple[str, bytes]) -> None:
        game_id, data = item
        for attempt in (1, 2):
            try:
                archive.put_object(settings.archive_key(game_id), data)
                return
            except Exception as exc:  # noqa: BLE001 - reported with the game's id
                if attempt == 2:
                    raise BackfillError(f"archive put of {game_id} failed: {exc.__class__.__name__}: {exc}") from exc

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="season-archive") as pool:
        for _ in pool.map(put, finals):
            pass


def backfill(engine, archive, games, workers: int = DEFAULT_WORKERS) -> BackfillResult:
    """Load played games at once, as the live path files a final: first in the completion inbox
    (one transaction: durable, and the next final-tables run starts counting them at once), then
    their archive copies, while that run works. Idempotent: a game filed with the same bytes stays
    as it is."""
    from sidearm_assets.storage import final_tables_db

    started = time.monotonic()
    finals = [(g.game_id, g.final_bytes()) for g in games]
    played = time.monotonic()
    pending = final_tables_db.file_completions(
        engine, [final_tables_db.Completion(game_id=g, data=data, version=None) for g, data in finals]
    )
    filed = time.monotonic()
    archive_games(archive, finals, workers)
    archived = time.monotonic()
    return BackfillResult(
        games=len(finals), bytes=sum(len(d) for _, d in finals), play_s=played - started,
        archive_s=archived - filed, file_s=filed - played, pending=len(pending),
    )
