#!/usr/bin/env bash
# Static checks: ruff (lint + format) and mypy over the package code.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --ignore-missing-imports nlp models training serve wangge
