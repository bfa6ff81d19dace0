"""Local tooling: the embedded stack (`sidearm-local`), the local Dagster instance, process control,
the demo and `sidearm-games`."""
