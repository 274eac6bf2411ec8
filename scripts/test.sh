#!/usr/bin/env bash
# The project's test command: build a fresh virtual environment with every extra the tests need
# (`train`: the `agents` extra, which pins torch to the CPU build 2.13.0, and matplotlib for the
# plots), lint, then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,train]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"
