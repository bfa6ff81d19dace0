"""The Dagster instance settings for the embedded stack (`dagster dev`, the demo, benchmarks).

The one place that says how a local instance is tuned for live latency; production has its own
deploy/dagster.yaml with the same choices over PostgreSQL storage.
"""

from __future__ import annotations

from pathlib import Path

LOCAL_DAGSTER_YAML = """\
# Written by sidearm_assets.local_instance; see docs/live-latency.md for the choices.
# Runs start at once (no queue to dequeue every few seconds): the final tables react faster.
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
# Sensors are evaluated one after another (no `sensors: use_threads`): the live sensor watches
# for ~5 s per tick, and a serial loop starts its next tick right after, while a threaded loop
# would leave up to 5 s between ticks.
telemetry:
  enabled: false
"""


def write_local_instance(dagster_home: str | Path) -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml (overwritten: it holds no state)."""
    home = Path(dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(LOCAL_DAGSTER_YAML)
    return home
