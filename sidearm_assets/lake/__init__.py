"""The season lake (docs/lake.md): counted games' events as Parquet in the object store (`events`,
`store`), kept equal to the record of counted games (`record`, `follow`), each game's facts and the
season tables in sidearmdb (`facts`, `tables`, `season`, `analytics`). No Dagster import:
`sidearm_assets.assets.lake` holds the thin assets, `sidearm-lake backfill` (`local/lake_cli.py`)
runs them.
"""
