#!/usr/bin/env bash
# Set-up shared by scripts/demo.sh and scripts/test.sh: the system packages that what follows runs
# (when root and missing), and the project's .venv with the package installed editable.
#
#   bash scripts/setup.sh --for demo    # the demo: no Debian package; the package with its
#                                       # `embedded` extra (moto, nx-27017)
#   bash scripts/setup.sh --for tests   # the tests (the default): chromium (browser tests),
#                                       # libodbc2 (pyodbc), docker-compose's Python tool without
#                                       # its recommended Docker engine (`docker-compose config`
#                                       # checks the compose file; nothing is run on an engine);
#                                       # the package with its `dev` extra
#
# Java 17 is expected on the machine for PySpark, for both.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=tests
if [ "${1:-}" = "--for" ]; then
  purpose=${2:?"--for needs demo or tests"}
fi
case "$purpose" in
  demo) want=(); extra=embedded ;;
  tests) want=(chromium libodbc2 docker-compose); extra=dev ;;
  *) echo "setup: --for demo or --for tests, not '$purpose'" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    plain=() bare=()
    for pkg in "${missing[@]}"; do
      # docker-compose recommends docker.io (the engine, containerd, iptables and their services),
      # which nothing here runs: its Python tool alone, without recommends.
      if [ "$pkg" = docker-compose ]; then bare+=("$pkg"); else plain+=("$pkg"); fi
    done
    if [ ${#plain[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${plain[@]}" >&2
    fi
    if [ ${#bare[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${bare[@]}" >&2
    fi
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
# Re-install when setup.py changed since the last install of this extra (the stamp records it);
# the `dev` extra holds everything `embedded` does.
stamp=.venv/.sidearm-installed-$extra
if [ "$extra" = embedded ] && [ -f .venv/.sidearm-installed-dev ] && [ ! setup.py -nt .venv/.sidearm-installed-dev ]; then
  stamp=.venv/.sidearm-installed-dev
fi
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "setup: installing the project into .venv (pip install -e '.[$extra]')" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e ".[$extra]" >&2
  touch "$stamp"
fi
