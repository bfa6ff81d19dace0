"""The final-tables tests' world: `World`, one test's bucket and sidearmdb on the shared embedded
stack with a Spark resource, that materializes `final_tables` and computes what the tables should
hold in plain Python (test_final_assets.py, test_final_spark.py)."""

from __future__ import annotations


from dagster import DagsterInstance, materialize
from sqlalchemy import insert

from sidearm_assets.assets.final import final_tables, final_tables_checks
from sidearm_assets.domain.final import completed_game, season_totals
from sidearm_assets.domain.games import matchup
from sidearm_assets.domain.stream import parse_stream
from sidearm_assets.resources import ReferenceDatabase
from sidearm_assets.storage import final_tables_db, reference_db
from sidearm_assets_tests.helpers import bucket_store, remove_bucket


class World:
    """One test's bucket and sidearmdb on the shared embedded stack."""

    def __init__(self, env: dict, sql_url: str, spark_resource):
        self.store = bucket_store(env, "final")
        self.db = ReferenceDatabase(url=sql_url)
        self.engine = self.db.engine()
        final_tables_db.drop_final_tables(self.engine)
        reference_db.reset_base_tables(self.engine)
        self.resources = {"gamestreams": self.store, "sidearmdb": self.db, "pyspark": spark_resource}

    def put(self, game_id: str, data: bytes) -> None:
        self.store.write(game_id, data)

    def file(self, game_id: str, data: bytes) -> None:
        """What the live path does with a final version: inbox, then archive."""
        final_tables_db.file_completions(self.engine, [final_tables_db.Completion(game_id, data)])
        self.store.archive(game_id, data)

    def schedule(self, game_id: str, home: int, away: int, teams=(), players=()) -> None:
        with self.engine.begin() as conn:
            for t in teams:
                conn.execute(insert(reference_db.teams).values(**t))
            if players:
                conn.execute(insert(reference_db.players), [dict(p) for p in players])
            conn.execute(insert(reference_db.games).values(game_id=game_id, home_teamid=home, away_teamid=away))

    def materialize(self, **kwargs):
        return materialize(
            [final_tables, final_tables_checks], resources=self.resources, instance=DagsterInstance.ephemeral(), **kwargs
        )

    def tables(self):
        return final_tables_db.read_final_tables(self.engine)

    def expected(self, streams: dict[str, bytes]):
        games, teams, players = self.db.games(), self.db.teams(), self.db.players()
        completed = []
        for gid, data in streams.items():
            m = matchup(gid, games, teams)
            completed.append(completed_game(parse_stream(data, m.team_ids), m))
        final = season_totals(players, teams, completed)
        return final.players, final.teams

    def cleanup(self):
        remove_bucket(self.store)
