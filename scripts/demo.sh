#!/usr/bin/env bash
# The main job: install drawenv into a fresh virtual environment and run the demo on the built-in
# tasks (no downloads). Extra arguments go to `drawenv demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/make_venv.sh .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
.venv/bin/drawenv demo "$@"
