"""The season generator (gamestream/season.py) and `gamestream season` (gamestream/season_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict

import pytest

from gamestream import league as lg
from sidearm_assets_tests import final_counting
from gamestream import season as gs
from sidearm_assets import settings
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.storage import clients, reference_db

SEASON = reference_db.SEASON


@pytest.fixture(scope="module")
def big():
    return gs.make_season(100, 1000, seed=7)


@pytest.mark.unit
def test_same_seed_same_season_another_seed_another():
    first, again, other = gs.make_season(20, 60, seed=3), gs.make_season(20, 60, seed=3), gs.make_season(20, 60, seed=4)
    assert first == again
    assert [g.final_bytes() for g in first.games] == [g.final_bytes() for g in again.games]
    assert first.teams != other.teams
    assert [g.teams for g in first.games] != [g.teams for g in other.games]
    assert [g.final_bytes() for g in first.games] != [g.final_bytes() for g in other.games]


@pytest.mark.unit
def test_a_season_is_the_prefix_of_a_longer_one_with_the_same_teams_and_seed():
    short, long = gs.make_season(30, 40, seed=5), gs.make_season(30, 100, seed=5)
    assert short.teams == long.teams and short.players == long.players
    assert short.games == long.games[:40]
    assert [g.final_bytes() for g in short.games] == [g.final_bytes() for g in long.games[:40]]
    assert short.game_rows() == long.game_rows()[:40]


@pytest.mark.unit
def test_every_team_plays_about_2m_over_n_games_home_and_away_balanced(big):
    home = Counter(g.home_teamid for g in big.games)
    away = Counter(g.away_teamid for g in big.games)
    team_ids = [t["id"] for t in big.teams]
    played = {t: home[t] + away[t] for t in team_ids}
    assert min(played.values()) >= 19 and max(played.values()) <= 21  # 2 * 1000 / 100 = 20
    assert max(abs(home[t] - away[t]) for t in team_ids) <= 2
    assert all(g.home_teamid != g.away_teamid for g in big.games)
    by_date = defaultdict(list)
    for g in big.games:
        by_date[g.date].extend(g.teams)
    assert all(len(ids) == len(set(ids)) for ids in by_date.values()), "a team plays twice on one date"
    assert [d for d, _ in big.days()] == sorted(by_date)
    assert all(d.weekday() in (2, 5) for d in by_date)  # Wednesdays and Saturdays


@pytest.mark.unit
def test_the_schedule_is_conference_heavy_and_meets_every_conference_opponent(big):
    conference = {t["id"]: t["conference"] for t in big.teams}
    sizes = Counter(conference.values())
    assert len(sizes) == 10 and set(sizes.values()) == {10}
    inside = [g for g in big.games if conference[g.home_teamid] == conference[g.away_teamid]]
    assert len(inside) / len(big.games) >= 0.6
    met = {frozenset(g.teams) for g in inside}
    for name in sizes:
        members = [t for t, c in conference.items() if c == name]
        pairs = {frozenset((a, b)) for a in members for b in members if a < b}
        assert pairs <= met, f"{name}: conference opponents never met"


@pytest.mark.unit
def test_every_stream_parses_without_a_rejected_line_and_is_over_from_its_end_only():
    season = gs.make_season(40, 400, seed=2)
    ends = Counter()
    for g in season.games:
        parsed = parse_stream(g.final_bytes(), g.teams)
        assert parsed.rejected_count == 0, (g.game_id, parsed.rejected[:3])
        assert parsed.is_over(), g.game_id
        decided = next(i for i, line in enumerate(g.lines) if line.split()[1] == "00:00" or line.startswith("-1 "))
        assert not parse_stream(g.stream().versions()[decided - 1], g.teams).is_over(), g.game_id
        home, away = parsed.score(g.home_teamid), parsed.score(g.away_teamid)
        assert home != away, g.game_id  # a tie at 00:00 goes to overtime
        ends[parsed.over_reason] += 1
    assert set(ends) == {"game-over line", "clock 00:00 not tied"}


@pytest.mark.unit
def test_rows_live_in_the_season_ranges_with_league_sized_rosters(big):
    team_ids = {t["id"] for t in big.teams}
    assert all(t in SEASON.team_ids for t in team_ids) and len(team_ids) == 100
    assert not any(reference_db.is_league_team(t) for t in team_ids)
    assert all(p["id"] in SEASON.player_ids and p["teamid"] in team_ids for p in big.players)
    assert len({p["id"] for p in big.players}) == len(big.players)
    rosters = defaultdict(list)
    for p in big.players:
        rosters[p["teamid"]].append(p["number"])
    assert all(lg.MIN_PLAYERS <= len(r) <= lg.MAX_PLAYERS and len(set(r)) == len(r) for r in rosters.values())
    assert [g.game_id for g in big.games[:2]] == ["season-00001", "season-00002"]
    assert big.game("season-00017") is big.games[16]
    assert gs.TEAM_ID_BASE + gs.MAX_TEAMS in SEASON.team_ids
    assert gs.PLAYER_ID_BASE + 100 * gs.MAX_TEAMS + lg.MAX_PLAYERS in SEASON.player_ids


@pytest.mark.unit
@pytest.mark.parametrize("teams, games", [(1, 10), (gs.MAX_TEAMS + 1, 10), (10, -1), (10, gs.MAX_GAMES + 1)])
def test_sizes_out_of_range_are_refused(teams, games):
    with pytest.raises(ValueError, match="a season has"):
        gs.make_season(teams, games)


def rows_of(engine) -> dict[str, list[dict]]:
    return {name: reference_db.read_rows(engine, table) for name, table in
            (("teams", reference_db.teams), ("players", reference_db.players), ("games", reference_db.games))}


def test_install_is_idempotent_and_the_base_reset_keeps_the_season(tmp_path):
    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    reference_db.reset_base_tables(engine)
    base = rows_of(engine)
    season = gs.make_season(24, 60, seed=9)
    league = lg.make_league(2, seed=1)
    lg.install_league(engine, league)

    first = gs.install_season(engine, season)
    after_first = rows_of(engine)
    again = gs.install_season(engine, season)
    reference_db.reset_base_tables(engine)

    assert (first.teams, first.players, first.games) == (24, len(season.players), 60)
    assert again == first and rows_of(engine) == after_first
    assert [t for t in after_first["teams"] if t["id"] in SEASON.team_ids] == list(season.teams)
    assert [p for p in after_first["players"] if p["id"] in SEASON.player_ids] == list(season.players)
    assert [g for g in after_first["games"] if g["game_id"].startswith("season-")] == season.game_rows()
    assert len(after_first["teams"]) == len(base["teams"]) + 4 + 24  # base, league, season side by side
    engine.dispose()


def test_install_refuses_rows_outside_the_season_ranges(tmp_path):
    engine = reference_db.make_engine(f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}")
    league = lg.make_league(1, seed=1)
    with pytest.raises(ValueError, match="not season rows"):
        reference_db.install_season_rows(engine, list(league.teams), list(league.players), league.game_rows())
    engine.dispose()


# The command line


def gamestream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gamestream", "season", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


@pytest.mark.unit
@pytest.mark.parametrize("args, expected", [
    (["--teams", "1", "--games", "3"], "--teams must be 2 to 9999, got 1"),
    (["--teams", "10", "--games", "100000"], "--games must be 0 to 99999, got 100000"),
    (["--teams", "10", "--games", "3", "--played", "4"], "--played must be 0 to --games (3), got 4"),
    (["--teams", "10", "--games", "3", "--played", "-1"], "--played must be 0 to --games (3), got -1"),
    (["--teams", "10", "--games", "3", "--workers", "0"], "--workers must be 1 or more, got 0"),
    (["--teams", "ten", "--games", "3"], "argument --teams: invalid int value: 'ten'"),
    (["--games", "3"], "the following arguments are required: --teams"),
])
def test_bad_arguments_are_refused_with_a_clear_error(args, expected, tmp_path, capsys):
    from gamestream import simulator

    env = {"SIDEARM_SQL_URL": f"sqlite:///{tmp_path / 'db' / 'sidearmdb.sqlite'}"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        try:
            code = simulator.main(["season", *args])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "db").exists(), "nothing is created for bad options"


@pytest.fixture
def env(embedded_stack, tmp_path) -> dict[str, str]:
    return {
        **embedded_stack,
        "SIDEARM_S3_BUCKET": f"season-{uuid.uuid4().hex[:12]}",
        "SIDEARM_SQL_URL": f"sqlite:///{tmp_path / 'sidearmdb.sqlite'}",
    }


def test_season_played_installs_archives_and_files_the_first_k_games(env):
    from sidearm_assets.storage import final_tables_db

    season = gs.make_season(12, 30, seed=6)

    run = gamestream(env, "--teams", "12", "--games", "30", "--seed", "6", "--played", "10")

    assert run.returncode == 0, run.stderr
    assert "season seed 6: 12 teams" in run.stderr and "30 games rows (season-00001..season-00030" in run.stderr
    assert "played 10 games" in run.stderr and "10 new, pending a final-tables run" in run.stderr
    engine = reference_db.make_engine(env["SIDEARM_SQL_URL"])
    rows = rows_of(engine)
    assert [g for g in rows["games"] if g["game_id"].startswith("season-")] == season.game_rows()
    s3 = clients.s3_client(env["SIDEARM_S3_ENDPOINT_URL"], env["SIDEARM_S3_ACCESS_KEY"], env["SIDEARM_S3_SECRET_KEY"])
    bucket = env["SIDEARM_S3_BUCKET"]
    keys = sorted(o.key for o in clients.list_objects(s3, bucket))
    assert keys == [settings.archive_key(g.game_id) for g in season.games[:10]]  # the archive only: nothing live
    for g in season.games[:10]:
        assert clients.get_object(s3, bucket, settings.archive_key(g.game_id))[0] == g.final_bytes()
    inbox = final_tables_db.read_inbox(engine, with_data=True)
    assert {(r.game_id, r.state, r.data) for r in inbox.waiting} == {
        (g.game_id, "pending", g.final_bytes()) for g in season.games[:10]}
    # Filed already, with the same bytes: filing again is not new.
    again = [final_tables_db.Completion(game_id=g.game_id, data=g.final_bytes(), version=None) for g in season.games[:10]]
    assert final_tables_db.file_completions(engine, again) == []
    # What a final-tables run then counts: base + exactly those ten games.
    streams = {g.game_id: g.final_bytes() for g in season.games[:10]}
    final_counting.count(engine, streams)
    assert final_tables_db.read_final_tables(engine) == final_counting.expected_tables(engine, streams)
    assert final_tables_db.read_inbox(engine).waiting == []

    rerun = gamestream(env, "--teams", "12", "--games", "30", "--seed", "6", "--played", "10")
    assert rerun.returncode == 0, rerun.stderr
    assert "0 new, pending" in rerun.stderr and rows_of(engine) == rows
    assert final_tables_db.read_inbox(engine).waiting == []  # the counted versions stay counted
    engine.dispose()


def test_played_with_s3_down_writes_nothing(env, tmp_path):
    down = {**env, "SIDEARM_S3_ENDPOINT_URL": "http://127.0.0.1:9"}

    run = gamestream(down, "--teams", "4", "--games", "4", "--played", "2")

    assert run.returncode == 1
    assert "S3 is not answering at http://127.0.0.1:9" in run.stderr and "nothing was changed" in run.stderr
    assert not (tmp_path / "sidearmdb.sqlite").exists()
