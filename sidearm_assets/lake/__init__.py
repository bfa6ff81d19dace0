"""The season lake (docs/lake.md): counted games' events as Parquet in the object store (`events`,
`store`), kept equal to the record of counted games (`record`, `follow`), each game's facts and the
season tables in sidearmdb (`facts`, `tables`, `season`, `analytics`). No Dagster import outside
`backfill` (the CLI): `sidearm_assets.assets.lake` holds the thin assets.
"""
