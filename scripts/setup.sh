#!/usr/bin/env bash
# Create .venv (if missing) and install wangge with the given extras (default: dev).
# Usage: bash scripts/setup.sh [extras]      e.g. bash scripts/setup.sh dev,transformer
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# --quiet still shows errors and warnings. setuptools' note that every editable install of a
# package mapped from several folders gets ("Editable installation. Please be careful with
# folders in your working directory ...") is silenced: it needs no action.
PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
