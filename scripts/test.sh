#!/usr/bin/env bash
# The project's test command: build a fresh virtual environment with every extra the tests need
# (`train`: the `agents` extra, which pins torch to the CPU build 2.13.0, and matplotlib for the
# plots), lint, install Chromium for the viewer's browser tests (once: installing it inside the
# tests would race for the dpkg lock under pytest-xdist), run the whole suite, then a subset of it
# with every dependency at its lowest declared version (scripts/test_lowest.sh). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/make_venv.sh .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,train,trl,serve]"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Without a browser the suite still runs and the browser tests fail, saying how to install it.
bash scripts/install_chromium.sh || echo "Chromium is missing: the browser tests will fail." >&2
.venv/bin/python -m pytest -q "$@"
bash scripts/test_lowest.sh
# The verl adapter's tests, in verl's own environment (verl pins transformers below 5.11).
bash scripts/verl_env.sh .venv-verl
