"""The project's Definitions: assets, checks, sensors and resources."""

from dagster import Definitions, in_process_executor

from sidearm_assets.assets.final import final_tables, final_tables_checks
from sidearm_assets.assets.lake import season_analytics, season_lake
from sidearm_assets.assets.live import boxscore_doc, raw_gamestream
from sidearm_assets.assets.reference import reference_players, reference_teams
from sidearm_assets.storage.spark_resource import spark_resource
from sidearm_assets.resources import build_resources
from sidearm_assets.sensors.final import game_over_sensor
from sidearm_assets.sensors.live import gamestream_sensor

defs = Definitions(
    assets=[
        reference_teams, reference_players, raw_gamestream, boxscore_doc, final_tables, season_lake, season_analytics,
    ],
    asset_checks=[final_tables_checks],
    sensors=[gamestream_sensor, game_over_sensor],
    # `pyspark`: no session until the final tables ask for one; then Spark Connect when
    # SIDEARM_SPARK_REMOTE is set, else local (spark_resource.spark_resource).
    resources={**build_resources(), "pyspark": spark_resource()},
    # One process per run: a box-score run is milliseconds of work, a step process over a second.
    executor=in_process_executor,
)
