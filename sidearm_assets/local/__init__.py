"""Local tooling: the embedded stack (`sidearm-local`), the local Dagster instance, process control,
the demo, `sidearm-games` and `sidearm-lake`."""
