#!/usr/bin/env bash
# The main job on the embedded stack: set-up, then the embedded stack, `dagster dev`, a whole game
# streamed at high speed, the live box scores and the final tables written by the daemon's
# sensors, and the results printed. Arguments go to `python -m sidearm_assets.local.demo run`
# (e.g. --stop to stop everything at the end, --delay 0.05).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --for demo
exec .venv/bin/python -m sidearm_assets.local.demo run "$@"
