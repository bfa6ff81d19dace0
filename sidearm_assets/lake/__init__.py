"""The season lake (SPEC 9, docs/lake.md): completed games' events as Parquet in the object store
(`events`, `store`), season business queries over them (`analytics`) and their sidearmdb
tables (`tables`). No Dagster import outside `backfill` (the CLI): `sidearm_assets.assets.lake`
holds the thin assets, and `python -m sidearm_assets.lake backfill` rebuilds everything from
the completed games.
"""
