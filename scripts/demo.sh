#!/usr/bin/env bash
# Quick start on the shipped demo data (no ../shared needed): install, train, score, report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/wangge train --data data/demo/messages.csv --model-dir model_store/demo
.venv/bin/wangge classify --model-dir model_store/demo data/demo/messages.csv --output model_store/demo/scored.csv
.venv/bin/wangge dedup data/demo/messages.csv --output model_store/demo/cases.csv
echo "Scored file: model_store/demo/scored.csv. Start the API with:"
echo "  .venv/bin/wangge db upgrade         # creates the service's database (./wangge.sqlite3)"
echo "  .venv/bin/wangge keys create demo   # prints the API key to send as X-API-Key"
echo "  .venv/bin/wangge serve --model-dir model_store/demo   # then open http://127.0.0.1:8000/docs"
