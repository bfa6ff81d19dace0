"""The Dagster instance settings for the embedded stack (`dagster dev`, the demo, benchmarks).

The one place that says how a local instance runs; production has deploy/dagster.yaml with the
same choices over PostgreSQL storage (test_deploy.py checks both agree where they must).

- **Run queue** (QueuedRunCoordinator): at most one final-tables run works at a time (runs the
  game-over sensor tags `sidearm/final-tables`; games that end meanwhile wait for the next run,
  which counts them all). The queue is looked at every second, and launching runs happens in the
  daemon's run-queue thread, never inside a sensor tick, so a launch never stalls the live sensor.
- **Run monitoring**: a run stuck in STARTING (its worker died with the daemon or the code server)
  is failed after `start_timeout_seconds`, a CANCELING one after `cancel_timeout_seconds`, checked
  every `poll_interval_seconds`. A STARTED run whose worker died is failed by the game-over sensor
  (its worker's pid and heartbeat tags: the DefaultRunLauncher cannot report a dead worker), or
  at the latest after its `dagster/max_runtime` tag.
- **Run retries**: a failed run is re-executed up to `max_retries` times (a locked sidearmdb,
  Spark down); the game-over sensor re-requests the work after that (docs/final-tables.md).
- **Run launcher** (`launcher.WarmRunLauncher`): run workers forked from a process that has
  Dagster, the code location and what a final-tables run loads first (run_warmup.py) loaded,
  instead of a fresh interpreter each (about 2.5 s less per final-tables run on a two-core
  machine); production keeps the default launcher (deploy/dagster.yaml).
- **Storage** (`dagster_storage.SidearmSqliteStorage`): Dagster's SQLite storage, the same files
  under DAGSTER_HOME, with each database's connections kept open instead of a new engine per
  use: the daemon stores a live tick's events for a fraction of the CPU.
- **Sensors in threads**: the live sensor's ticks are short (a background watcher does the
  watching), so both sensors tick side by side every daemon loop (~5 s) and one slow tick never
  delays the other.
"""

from __future__ import annotations

from pathlib import Path

FINAL_RUN_TAG = "sidearm/final-tables"  # the same as assets.final.FINAL_RUN_TAG (no Dagster import here)
START_TIMEOUT_SECONDS = 30
CANCEL_TIMEOUT_SECONDS = 60
MONITORING_POLL_SECONDS = 5
MAX_RETRIES = 3
# Loaded once by the run launcher's fork server: what the final-tables runs load first (run_warmup.py).
RUN_PRELOAD = ("sidearm_assets.local.run_warmup",)


def local_instance_config(
    *,
    dagster_home: str | Path | None = None,
    start_timeout_seconds: int = START_TIMEOUT_SECONDS,
    poll_interval_seconds: int = MONITORING_POLL_SECONDS,
    overrides: dict | None = None,
) -> dict:
    """The instance settings as a dict (top-level keys of dagster.yaml); the storage lives under
    `dagster_home` (default: $DAGSTER_HOME when the instance loads); `overrides` replace whole
    top-level keys (tests shorten timeouts, benchmarks may choose another storage)."""
    config = {
        "storage": {
            "custom": {
                "module": "sidearm_assets.local.dagster_storage",
                "class": "SidearmSqliteStorage",
                "config": {"base_dir": str(dagster_home) if dagster_home else {"env": "DAGSTER_HOME"}},
            },
        },
        "run_coordinator": {
            "module": "dagster",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": 10,
                "tag_concurrency_limits": [{"key": FINAL_RUN_TAG, "limit": 1}],
                "dequeue_interval_seconds": 1,
                "dequeue_use_threads": True,
                "dequeue_num_workers": 2,
            },
        },
        "run_launcher": {
            "module": "sidearm_assets.local.launcher",
            "class": "WarmRunLauncher",
            "config": {"preload": list(RUN_PRELOAD)},
        },
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": start_timeout_seconds,
            "cancel_timeout_seconds": CANCEL_TIMEOUT_SECONDS,
            "poll_interval_seconds": poll_interval_seconds,
        },
        "run_retries": {"enabled": True, "max_retries": MAX_RETRIES},
        "sensors": {"use_threads": True, "num_workers": 4},
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
    }
    config.update(overrides or {})
    return config


def render(config: dict) -> str:
    import yaml

    header = "# Written by sidearm_assets.local.local_instance (see its docstring and docs/final-tables.md).\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def write_local_instance(dagster_home: str | Path, **settings) -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml (overwritten: it holds no state);
    keyword arguments go to `local_instance_config`."""
    home = Path(dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(render(local_instance_config(dagster_home=home, **settings)))
    return home
