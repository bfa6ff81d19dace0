"""The project's Definitions: assets, checks, sensors and resources."""

from dagster import Definitions, in_process_executor

from sidearm_assets.assets.live import boxscore_doc, raw_gamestream
from sidearm_assets.assets.reference import reference_players, reference_teams
from sidearm_assets.resources import build_resources
from sidearm_assets.sensors.live import gamestream_sensor

defs = Definitions(
    assets=[reference_teams, reference_players, raw_gamestream, boxscore_doc],
    sensors=[gamestream_sensor],
    resources=build_resources(),
    # One process per run: a box-score run is milliseconds of work, a step process over a second.
    executor=in_process_executor,
)
