#!/usr/bin/env bash
# The project's test command: build a fresh virtual environment with every extra the tests need
# (torch is pinned to the CPU build 2.13.0 by the `agents` extra),
# lint, then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,agents]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"
