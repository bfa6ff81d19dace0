#!/usr/bin/env bash
# The test command: sets up what is missing, then runs the whole suite against real services
# (embedded S3 and Mongo-wire servers the tests start themselves, SQLite, the local PostgreSQL,
# PySpark in local mode, headless Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --for tests
exec .venv/bin/python -m pytest "$@"
