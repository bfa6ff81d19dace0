#!/usr/bin/env bash
# Set-up shared by scripts/demo.sh and scripts/test.sh: system packages (when root and missing)
# and the project's .venv with the package installed editable with its dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: chromium (browser tests), docker-compose (compose file check), libodbc2 (pyodbc).
# Java 17 is expected on the machine for PySpark.
want=(chromium docker-compose libodbc2)
missing=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "setup: missing Debian packages ${missing[*]} (run as root, or install them); continuing" >&2
  fi
fi
command -v java >/dev/null 2>&1 || echo "setup: no java on PATH: PySpark (final tables) needs Java 17" >&2

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
# Re-install when setup.py changed since the last install (the stamp records it).
stamp=.venv/.sidearm-installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "setup: installing the project into .venv (pip install -e '.[dev]')" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e '.[dev]' >&2
  touch "$stamp"
fi
