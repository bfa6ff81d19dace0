"""The lake tests' world: five games of the season (their teams in sidearmdb) and `Lake`, one
test's bucket and sidearmdb on the shared embedded stack, whose record of counted games the lake
follows (test_lake.py, test_lake_backfill.py, test_lake_drill_queries.py)."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, insert

from sidearm_assets.lake import analytics, follow, store, tables
from sidearm_assets.lake.events import stream_digest
from sidearm_assets.resources import ReferenceDatabase
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets_tests.helpers import (
    DEFAULT_OVER, EXTRA_PLAYERS, EXTRA_TEAMS, bucket_store, random_game, remove_bucket, tied_game,
)
from sidearm_assets_tests.lake_expected import expected_tables

SEASON = 2026
ROSTERS = {
    101: [p["number"] for p in reference_db.BASE_PLAYERS if p["teamid"] == 101],
    205: [p["number"] for p in reference_db.BASE_PLAYERS if p["teamid"] == 205],
    300: [p["number"] for p in EXTRA_PLAYERS if p["teamid"] == 300],
    301: [p["number"] for p in EXTRA_PLAYERS if p["teamid"] == 301],
}

# Home 300 leads 3-0, away 301 comes back, leads, is caught, wins in overtime.
COMEBACK = (
    "0 55:00 300 1 1\n1 50:00 300 5 1\n2 40:00 300 9 1\n3 35:00 301 2 1\n4 31:00 301 2 1\n"
    "5 20:00 301 7 1\n6 16:00 301 7 1\n7 10:00 300 11 1\n8 00:00 0 0 0\n"
    "9 04:00 0 0 0\n10 03:00 300 23 0\n11 01:30 301 40 1\n-1 01:30 0 0 0\n"
)
GAMES = {
    "gamestream": (101, 205, DEFAULT_OVER),
    "g-random": (205, 101, random_game(11, 205, 101, ROSTERS, shots=70, bad_lines=True)),
    "g-extra": (300, 301, random_game(12, 300, 301, ROSTERS, shots=50, off_roster=0.15)),
    "g-comeback": (300, 301, COMEBACK.encode()),
    "g-tie": (101, 300, tied_game(101, 300, "6", "5")),
}


class Lake:
    """One test's bucket and sidearmdb on the shared embedded stack."""

    def __init__(self, env: dict, sql_url: str):
        self.store = bucket_store(env, "lake")
        self.location = store.LakeLocation.of(self.store)
        self.db = ReferenceDatabase(url=sql_url)
        self.engine = self.db.engine()
        tables.drop_lake_tables(self.engine)
        reference_db.reset_base_tables(self.engine)
        final_tables_db.final_metadata.create_all(self.engine, tables=[final_tables_db.counted_games])
        with self.engine.begin() as conn:
            conn.execute(delete(final_tables_db.counted_games))
            conn.execute(insert(reference_db.teams), [dict(t) for t in EXTRA_TEAMS])
            conn.execute(insert(reference_db.players), [dict(p) for p in EXTRA_PLAYERS])
            for game_id, (home, away, _) in GAMES.items():
                if game_id != "gamestream":
                    conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=home, away_teamid=away))
        self.streams: dict[str, bytes] = {}  # what the record counts

    def count(self, game_id: str, data: bytes | None = None, teams: bool = True) -> str:
        """Record the game as counted (a new row, or the row replaced: a correction); its ETag."""
        data = GAMES[game_id][2] if data is None else data
        etag = hashlib.md5(data).hexdigest()
        home, away = (GAMES[game_id][:2] if game_id in GAMES else (101, 205)) if teams else (None, None)
        with self.engine.begin() as conn:
            conn.execute(delete(final_tables_db.counted_games).where(final_tables_db.counted_games.c.game_id == game_id))
            conn.execute(insert(final_tables_db.counted_games).values(
                game_id=game_id, etag=etag, version=etag, over_reason="-1", home_teamid=home, away_teamid=away,
                data=data, counted_at="2026-04-01T00:00:00Z", run_id="test"))
        self.streams[game_id] = data
        return etag

    def uncount(self, game_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(final_tables_db.counted_games).where(final_tables_db.counted_games.c.game_id == game_id))
        del self.streams[game_id]

    def follow(self, **kw) -> follow.FollowReport:
        return follow.follow_record(self.location, self.engine, SEASON, **kw)

    def expected(self):
        return expected_tables(self.streams, self.db.games(), self.db.teams(), self.db.players(), SEASON)

    def season_tables(self):
        return {name: tables.read_table(self.engine, name) for name in analytics.ANALYTICS}

    def assert_lake_follows_record(self):
        """One file per counted game, holding that game only, built from the counted bytes."""
        import pyarrow.parquet as pq

        fs = self.location.filesystem()
        per_file = {}
        for info in store.lake_files(self.location):
            ids = set(pq.read_table(info.path, filesystem=fs, columns=["game_id"]).column("game_id").to_pylist())
            assert len(ids) == 1, (info.path, ids)
            per_file[info.path] = ids.pop()
        assert sorted(per_file.values()) == sorted(self.streams), per_file
        assert sorted(per_file) == sorted(self.location.path(g) for g in self.streams)
        events = store.read_events(self.location)
        digests = {}
        for gid, sha in zip(events.column("game_id").to_pylist(), events.column("stream_sha256").to_pylist()):
            digests.setdefault(gid, set()).add(sha)
        assert digests == {g: {stream_digest(d)} for g, d in self.streams.items()}

    def cleanup(self):
        remove_bucket(self.store)
