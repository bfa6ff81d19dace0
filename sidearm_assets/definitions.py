"""The project's Definitions: assets, checks, sensors and resources."""

from dagster import Definitions

defs = Definitions(assets=[])
