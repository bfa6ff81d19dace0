"""The league load generator (`gamestream --games N`, gamestream/league.py): the plan as pure
functions (marked `unit`), its rows beside the base data on SQLite and PostgreSQL, and N games
streamed at once into the embedded stack's S3 server."""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict

import pytest
from sqlalchemy import update

from gamestream import league as lg
from sidearm_assets.storage import reference_db
from sidearm_assets.domain.stream import GAME_OVER_EVENT_ID, parse_stream
from sidearm_assets.storage.reference_db import BASE_GAMES, BASE_PLAYERS, BASE_TEAMS, games, players, teams

BASE = {
    "teams": [dict(t) for t in BASE_TEAMS],
    "players": [dict(p) for p in BASE_PLAYERS],
    "games": [dict(g) for g in BASE_GAMES],
}


@pytest.fixture(scope="module")
def big_league() -> lg.League:
    return lg.make_league(200, seed=11)


@pytest.mark.unit  # pure: the plan, no service
def test_the_same_seed_gives_the_same_league_and_a_smaller_league_is_its_prefix():
    first, again, other = lg.make_league(12, seed=3), lg.make_league(12, seed=3), lg.make_league(12, seed=4)
    smaller = lg.make_league(5, seed=3)

    assert first == again
    assert [g.lines for g in first.games] != [g.lines for g in other.games]
    assert [t["name"] for t in first.teams] != [t["name"] for t in other.teams]
    assert smaller.games == first.games[:5]
    assert smaller.teams == first.teams[:10]
    assert smaller.players == tuple(p for p in first.players if p["teamid"] in {t["id"] for t in smaller.teams})
    assert [g.game_id for g in first.games] == [f"league-{i:04d}" for i in range(1, 13)]
    assert first.games[0].key == "league-0001.txt"


@pytest.mark.unit  # pure: the plan, no service
def test_league_rows_never_meet_the_base_data(big_league):
    team_ids = [t["id"] for t in big_league.teams]
    player_ids = [p["id"] for p in big_league.players]

    assert len(team_ids) == len(set(team_ids)) == 400
    assert len(player_ids) == len(set(player_ids))
    assert all(reference_db.is_league_team(i) for i in team_ids)
    assert all(reference_db.is_league_player(i) for i in player_ids)
    assert not {t["id"] for t in BASE_TEAMS} & set(team_ids)
    assert not {p["id"] for p in BASE_PLAYERS} & set(player_ids)
    assert not {t["name"] for t in BASE_TEAMS} & {t["name"] for t in big_league.teams}
    assert len({t["name"] for t in big_league.teams}) == 400
    rows = big_league.game_rows()
    assert all(reference_db.is_league_game(g["game_id"]) for g in rows)
    assert {g["home_teamid"] for g in rows} | {g["away_teamid"] for g in rows} == set(team_ids)
    # The largest league still fits the reserved ranges (by the id formula: building it is slow).
    assert reference_db.is_league_team(lg.TEAM_ID_BASE + 2 * lg.MAX_GAMES)
    assert reference_db.is_league_player(lg.PLAYER_ID_BASE + 100 * 2 * lg.MAX_GAMES + lg.MAX_PLAYERS)
    assert reference_db.is_league_player(lg.PLAYER_ID_BASE + 100 * 1 + 1)
    with pytest.raises(ValueError, match="1 to 4999 games"):
        lg.make_league(lg.MAX_GAMES + 1)
    with pytest.raises(ValueError):
        lg.make_league(0)


@pytest.mark.unit  # pure: the plan, no service
def test_every_team_has_a_real_roster_and_record(big_league):
    by_team = defaultdict(list)
    for p in big_league.players:
        by_team[p["teamid"]].append(p)
    for team in big_league.teams:
        roster = by_team[team["id"]]
        numbers = [p["number"] for p in roster]
        assert lg.MIN_PLAYERS <= len(roster) <= lg.MAX_PLAYERS
        assert len(numbers) == len(set(numbers)), f"jersey repeats on {team['name']}"
        assert all(n.isascii() and n.isdigit() and 1 <= len(n) <= 3 for n in numbers)
        assert all(0 <= p["goals"] <= p["shots"] for p in roster)
        assert sum(p["shots"] for p in roster) > 0
        assert 8 <= team["wins"] + team["losses"] <= 14
        assert 0 < len(team["name"]) <= 50 and 0 < len(team["conference"]) <= 50
        assert all(0 < len(p["name"]) <= 50 for p in roster)
    assert len({t["conference"] for t in big_league.teams}) >= 5


@pytest.mark.unit  # pure: the plan, no service
def test_every_game_is_valid_and_over_at_its_last_version_only(big_league):
    rosters = {(p["teamid"], p["number"]) for p in big_league.players}
    for game in big_league.games[:60]:  # every version of 60 games; the final bytes of all 200 below
        versions = game.versions()
        assert versions[-1] == game.final_bytes
        assert len(versions) == len(game.lines) == len(game.game_seconds)
        for k, version in enumerate(versions, start=1):
            parsed = parse_stream(version, game.teams)
            assert parsed.rejected == [], (game.game_id, k)
            assert parsed.line_count == k
            over_before_the_end = parsed.is_over() and k < len(versions)
            # Only a `-1` line may follow a version that is already over (a 00:00 not tied).
            assert not over_before_the_end or (k == len(versions) - 1 and game.lines[-1].startswith("-1 "))
    for game in big_league.games:
        parsed = parse_stream(game.final_bytes, game.teams)
        home, away = parsed.score(game.home_teamid), parsed.score(game.away_teamid)
        assert parsed.rejected == [] and parsed.is_over(), game.game_id
        assert home != away, f"{game.game_id} ends tied"
        assert [e.event_id for e in parsed.events if e.event_id != GAME_OVER_EVENT_ID] == list(
            range(len([e for e in parsed.events if e.event_id != GAME_OVER_EVENT_ID]))
        )
        assert all((e.team_id, e.jersey) in rosters for e in parsed.shots)
        assert game.game_seconds == tuple(sorted(game.game_seconds))


@pytest.mark.unit  # pure: the plan, no service
def test_games_end_in_every_way_with_varied_scores(big_league):
    endings = Counter()
    regulation_shots, scores, winners = [], Counter(), Counter()
    for game in big_league.games:
        parsed = parse_stream(game.final_bytes, game.teams)
        regulation = [e for e in parsed.events if e.clock == "00:00" and e.team_id == 0][0]
        regulation_shots.append(sum(1 for e in parsed.shots if e.line_no < regulation.line_no))
        tied_at_regulation = parse_stream(b"".join(line.encode() + b"\n" for line in game.lines[: regulation.line_no]),
                                          game.teams)
        if not tied_at_regulation.is_over():
            assert parsed.over_reason == "game-over line"
            assert game.lines[-1] != "-1 00:00 0 0 0" and game.lines[-1].startswith("-1 ")
            endings["overtime"] += 1
        elif parsed.game_over_line is None:
            assert parsed.over_reason == "clock 00:00 not tied"
            endings["00:00 only"] += 1
        else:
            assert game.lines[-2:][1] == "-1 00:00 0 0 0"
            endings["00:00 then -1"] += 1
        home, away = parsed.score(game.home_teamid), parsed.score(game.away_teamid)
        scores[(home, away)] += 1
        winners["home" if home > away else "away"] += 1

    assert endings["overtime"] >= 3 and endings["00:00 only"] >= 40 and endings["00:00 then -1"] >= 40, endings
    assert min(regulation_shots) >= 40 and max(regulation_shots) <= 80
    assert max(regulation_shots) - min(regulation_shots) >= 25
    assert len(scores) >= 60, "scores barely vary"
    assert winners["home"] >= 40 and winners["away"] >= 40


@pytest.mark.unit  # pure: the plan, no service
def test_puts_land_within_the_put_interval_and_the_mapping_follows_game_time(big_league):
    game = big_league.games[0]
    waits = game.waits((1.0, 3.0))
    gaps = [b - a for a, b in zip(game.game_seconds, game.game_seconds[1:])]

    assert waits[0] == 0 and len(waits) == len(game.lines)
    assert all(1.0 <= w <= 3.0 for w in waits[1:])
    # Longer game gaps never give shorter waits (the mapping is monotone, then clamped).
    pairs = sorted(zip(gaps, waits[1:]))
    assert all(w1 <= w2 for (_, w1), (_, w2) in zip(pairs, pairs[1:]))
    everyone = [w for g in big_league.games for w in g.waits()[1:]]
    assert 1.5 <= sum(everyone) / len(everyone) <= 2.5
    assert Counter(w == 1.0 for w in everyone)[True] < len(everyone) * 0.6
    compressed = game.waits((0.01, 0.03))
    assert [round(w * 100, 9) for w in compressed] == [round(w, 9) for w in waits]


@pytest.mark.unit  # pure: the plan through the project's own final-tables domain
def test_the_final_tables_domain_counts_every_league_game_once_beside_the_base_data(big_league):
    from sidearm_assets.domain import final
    from sidearm_assets.domain.games import matchup

    all_teams = [dict(t) for t in BASE_TEAMS] + list(big_league.teams)
    all_players = [dict(p) for p in BASE_PLAYERS] + list(big_league.players)
    rows = big_league.game_rows()
    completed = [
        final.completed_game(parse_stream(g.final_bytes, g.teams), matchup(g.game_id, rows, all_teams))
        for g in big_league.games
    ]

    tables = final.season_totals(all_players, all_teams, completed + completed[:10])  # listed twice: once

    assert tables.tied_games == [] and tables.unknown_jerseys == []
    before = {t["id"]: t for t in all_teams}
    gained = Counter()
    for t in tables.teams:
        gained["wins"] += t["wins"] - before[t["id"]]["wins"]
        gained["losses"] += t["losses"] - before[t["id"]]["losses"]
    assert gained == {"wins": 200, "losses": 200}
    shots_in_games = sum(len(parse_stream(g.final_bytes, g.teams).shots) for g in big_league.games)
    assert sum(p["shots"] for p in tables.players) == sum(p["shots"] for p in all_players) + shots_in_games
    base_after = [p for p in tables.players if not reference_db.is_league_player(p["id"])]
    assert base_after == BASE["players"], "league games changed base players"


# Rows beside the base data


def split(engine) -> tuple[dict, dict]:
    """(base part, league part) of teams, players and games."""
    base, league = {}, {}
    for table, is_league, key in (
        (teams, reference_db.is_league_team, "id"),
        (players, reference_db.is_league_player, "id"),
        (games, reference_db.is_league_game, "game_id"),
    ):
        rows = reference_db.read_rows(engine, table)
        base[table.name] = [r for r in rows if not is_league(r[key])]
        league[table.name] = [r for r in rows if is_league(r[key])]
    return base, league


def expected_league(league: lg.League) -> dict:
    return {
        "teams": sorted((dict(t) for t in league.teams), key=lambda r: r["id"]),
        "players": sorted((dict(p) for p in league.players), key=lambda r: r["id"]),
        "games": sorted(league.game_rows(), key=lambda r: r["game_id"]),
    }


def test_the_league_installs_beside_the_base_data_and_survives_its_reset(engine):
    league = lg.make_league(6, seed=5)
    reference_db.reset_base_tables(engine)

    first = lg.install_league(engine, league)
    second = lg.install_league(engine, league)
    base, rows = split(engine)

    assert first == second == reference_db.LeagueInstallSummary(
        teams=12, players=len(league.players), games=6, players_removed=0
    )
    assert base == BASE
    assert rows == expected_league(league)

    with engine.begin() as conn:  # what a season would do to the base tables
        conn.execute(update(players).where(players.c.id == 1).values(shots=999))
        conn.execute(update(teams).where(teams.c.id == 101).values(wins=0))
    summary = reference_db.reset_base_tables(engine)
    base, rows = split(engine)

    assert summary == reference_db.ResetSummary(teams=2, players=20, games_added=0)
    assert base == BASE
    assert rows == expected_league(league), "the base reset changed league rows"


def test_installing_first_then_resetting_leaves_both_whole(sqlite_engine):
    league = lg.make_league(3, seed=9)
    lg.install_league(sqlite_engine, league)  # before any base data: creates the schema itself
    reference_db.reset_base_tables(sqlite_engine)
    reference_db.reset_base_tables(sqlite_engine)

    base, rows = split(sqlite_engine)
    assert base == BASE
    assert rows == expected_league(league)


def test_reinstalling_repairs_league_rows_and_another_seed_rewrites_only_its_teams(sqlite_engine):
    reference_db.reset_base_tables(sqlite_engine)
    eight = lg.make_league(8, seed=1)
    lg.install_league(sqlite_engine, eight)
    with sqlite_engine.begin() as conn:
        conn.execute(update(players).where(players.c.id == eight.players[0]["id"]).values(goals=77))
    lg.install_league(sqlite_engine, eight)
    assert split(sqlite_engine)[1] == expected_league(eight)

    three = lg.make_league(3, seed=2)  # other names, other rosters for teams 10001..10006
    summary = lg.install_league(sqlite_engine, three)
    base, rows = split(sqlite_engine)

    assert base == BASE
    kept = [t for t in expected_league(eight)["teams"] if t["id"] > lg.TEAM_ID_BASE + 6]
    assert rows["teams"] == sorted(list(three.teams) + kept, key=lambda r: r["id"])
    assert [p for p in rows["players"] if p["teamid"] <= lg.TEAM_ID_BASE + 6] == sorted(
        three.players, key=lambda r: r["id"]
    )
    new_ids = {p["id"] for p in three.players}
    dropped = [p for p in eight.players if p["teamid"] <= lg.TEAM_ID_BASE + 6 and p["id"] not in new_ids]
    assert summary.players_removed == len(dropped)
    assert len(rows["games"]) == 8


def test_rows_outside_the_league_ranges_are_refused_before_anything_is_written(sqlite_engine):
    reference_db.reset_base_tables(sqlite_engine)
    before = split(sqlite_engine)
    league = lg.make_league(2, seed=1)
    base_team = dict(BASE_TEAMS[0], name="Hijacked")

    with pytest.raises(ValueError, match="team id 101 is outside"):
        reference_db.install_league_rows(sqlite_engine, [*league.teams, base_team], list(league.players),
                                         league.game_rows())
    with pytest.raises(ValueError, match="does not start with 'league-'"):
        reference_db.install_league_rows(sqlite_engine, list(league.teams), list(league.players),
                                         [{"game_id": "gamestream", "home_teamid": 10001, "away_teamid": 10002}])
    assert split(sqlite_engine) == before


# Streaming all at once


@pytest.fixture
def s3(embedded_stack):
    return lg.league_s3_client(
        embedded_stack["SIDEARM_S3_ENDPOINT_URL"], embedded_stack["SIDEARM_S3_ACCESS_KEY"],
        embedded_stack["SIDEARM_S3_SECRET_KEY"], max_pool_connections=8,
    )


def test_eight_games_stream_at_once_and_each_object_ends_as_planned(s3):
    bucket = f"league-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    league = lg.make_league(8, seed=21)
    interval = (0.01, 0.03)
    puts: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    threads: set[str] = set()
    lock = threading.Lock()

    def on_put(game_id: str, line_count: int, sent: float, returned: float) -> None:
        with lock:
            puts[game_id].append((line_count, sent, returned))
            threads.add(threading.current_thread().name)

    result = lg.stream_league(s3, bucket, league, put_interval=interval, start_spread=0.1, on_put=on_put,
                              max_workers=8, log_puts=False)

    total = sum(len(g.lines) for g in league.games)
    assert result.games == 8 and result.puts == total
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == [g.key for g in league.games]
    for game in league.games:
        assert s3.get_object(Bucket=bucket, Key=game.key)["Body"].read() == game.final_bytes
        # Every put landed, in order, each version exactly the plan's.
        versions = s3.list_object_versions(Bucket=bucket, Prefix=game.key)["Versions"]
        bodies = [s3.get_object(Bucket=bucket, Key=game.key, VersionId=v["VersionId"])["Body"].read()
                  for v in versions]
        assert sorted(bodies, key=len) == game.versions()
        mine = puts[game.game_id]
        assert [n for n, _, _ in mine] == list(range(1, len(game.lines) + 1))
        waits = game.waits(interval)
        for (_, sent, returned), (_, next_sent, _), wait in zip(mine, mine[1:], waits[1:]):
            assert sent <= returned <= next_sent
            assert next_sent - sent >= wait - 1e-6, "a put came sooner than its planned interval"
    # All at once: every game had started before any game ended, on several threads.
    first_puts = [puts[g.game_id][0][1] for g in league.games]
    last_puts = [puts[g.game_id][-1][2] for g in league.games]
    assert max(first_puts) < min(last_puts)
    assert len(threads) >= 2


def test_a_put_that_fails_stops_the_league_naming_the_game(s3):
    league = lg.make_league(3, seed=2)
    missing_bucket = f"league-missing-{uuid.uuid4().hex[:12]}"
    seen = []

    with pytest.raises(lg.LeagueStreamError) as err:
        lg.stream_league(s3, missing_bucket, league, put_interval=(0.0, 0.0), start_spread=0.0,
                         on_put=lambda *a: seen.append(a), log_puts=False)

    assert err.value.game_id in {g.game_id for g in league.games}
    assert err.value.line_count == 1
    assert "NoSuchBucket" in str(err.value)
    assert seen == []


def test_a_failing_callback_stops_the_league_too(s3):
    bucket = f"league-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    league = lg.make_league(2, seed=2)
    calls = []

    def on_put(game_id, line_count, sent, returned):
        calls.append(game_id)
        if len(calls) == 5:
            raise RuntimeError("benchmark bookkeeping broke")

    with pytest.raises(lg.LeagueStreamError, match="benchmark bookkeeping broke"):
        lg.stream_league(s3, bucket, league, put_interval=(0.0, 0.01), start_spread=0.0, on_put=on_put,
                         log_puts=False)
    assert 5 <= len(calls) < sum(len(g.lines) for g in league.games)


def test_bad_stream_options_are_refused(s3):
    league = lg.make_league(1)
    with pytest.raises(ValueError, match="put_interval"):
        lg.stream_league(s3, "any", league, put_interval=(3.0, 1.0))
    with pytest.raises(ValueError, match="start_spread"):
        lg.stream_league(s3, "any", league, start_spread=-1)


def test_a_client_pool_smaller_than_the_threads_is_reported_and_still_streams(embedded_stack, caplog, monkeypatch):
    # An earlier test in the session may have configured logging with disable_existing_loggers
    # (alembic's fileConfig, run by a new SQLite Dagster instance): the simulator's logger speaks here.
    import logging

    monkeypatch.setattr(logging.getLogger("gamestream"), "disabled", False)
    monkeypatch.setattr(logging.getLogger("gamestream"), "propagate", True)
    small = lg.league_s3_client(
        embedded_stack["SIDEARM_S3_ENDPOINT_URL"], embedded_stack["SIDEARM_S3_ACCESS_KEY"],
        embedded_stack["SIDEARM_S3_SECRET_KEY"], max_pool_connections=1,
    )
    bucket = f"league-{uuid.uuid4().hex[:12]}"
    small.create_bucket(Bucket=bucket)
    league = lg.make_league(2, seed=8)

    with caplog.at_level("INFO", logger="gamestream"):
        result = lg.stream_league(small, bucket, league, put_interval=(0.0, 0.0), start_spread=0.0, max_workers=4)

    assert "pools 1 connections for 4 threads" in caplog.text
    assert result.puts == sum(len(g.lines) for g in league.games)
    for game in league.games:
        assert small.get_object(Bucket=bucket, Key=game.key)["Body"].read() == game.final_bytes
        assert f"Game Over. Data Stream is complete for {game.key}." in caplog.text
        assert f"Wrote {game.key} to bucket {bucket} at {game.clock(1)}" in caplog.text


@pytest.mark.unit
@pytest.mark.parametrize("lines, final", [
    (("1 30:00 101 6 1", "2 00:00 205 12 0", "-1 00:00 0 0 0"), 2),  # over at 00:00 not tied, then the -1 line
    (("1 30:00 101 6 1", "2 00:00 205 12 1", "-1 00:00 0 0 0"), 3),  # tied at 00:00: the -1 line ends it
    (("1 30:00 101 6 1", "2 10:00 205 12 1"), 2),  # never over: its last put
])
def test_the_final_put_is_the_first_that_the_pipeline_calls_final(lines, final):
    game = lg.LeagueGame("g", 101, 205, lines, tuple(range(len(lines))))
    assert game.final_line_count() == final
