#!/usr/bin/env bash
# Installs everything the tests need and runs them: lint, types, then the whole suite
# (unit, integration on a real embedded Tansu broker, deployment checks, browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

# System tools: Chromium for the console's browser tests, promtool (Debian's prometheus
# package) and kubectl for the deployment checks. Installed when missing and we may.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)
if ((${#need[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${need[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: missing ${need[*]}; the tests that need them are skipped (they fail when CI is set)" >&2
  fi
fi

python3 -m venv .venv
# Everything the tests need (the dependencies, every extra, the `dev` dependency group) at the
# versions and hashes of the lock file (requirements/lock.sh regenerates it), then the project
# itself without dependencies; pip check fails if the lock misses one of the project's.
pip=(.venv/bin/pip --disable-pip-version-check)
"${pip[@]}" install -q --require-hashes -r requirements/dev.txt
"${pip[@]}" install -q --no-deps -e .
"${pip[@]}" check
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# In parallel: each worker has its own embedded broker, a test file stays on one worker.
.venv/bin/pytest -n "${PYTEST_WORKERS:-4}" --dist loadfile "$@"
