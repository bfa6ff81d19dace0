#!/usr/bin/env bash
# The test command: sets up what is missing, then runs the whole suite against real services
# (embedded S3 and Mongo-wire servers the tests start themselves, SQLite, the local PostgreSQL,
# PySpark in local mode, headless Chromium), in SIDEARM_TEST_WORKERS pytest-xdist workers (default
# 2, one per core; 0 runs in this process) that each take whole modules, the longest first
# (conftest.LONGEST_MODULES). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --for tests
exec .venv/bin/python -m pytest -n "${SIDEARM_TEST_WORKERS:-2}" --dist loadfile "$@"
