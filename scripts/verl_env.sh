#!/usr/bin/env bash
# verl's own environment for the verl adapter's tests: verl 0.9.1 pins transformers below 5.11,
# so it cannot share .venv (transformers 5.24). Builds FOLDER (default .venv-verl; kept while its
# interpreter is unchanged) with torch's CPU build, drawenv's `verl` extra (verl 0.9.1 and the
# modules it imports without declaring them) with the transformers verl allows, and the dev
# extra; then runs tests/test_integrations_verl.py in it. Extra arguments go to pytest.
# Usage: bash scripts/verl_env.sh [FOLDER] [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-verl}
shift || true
bash scripts/make_venv.sh "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    torch==2.13.0 "verl==0.9.1" "transformers>=5.5.3,<5.11" -e ".[dev,verl]"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -n 0 tests/test_integrations_verl.py "$@"
