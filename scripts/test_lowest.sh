#!/usr/bin/env bash
# The declared minimums, tested: build .venv-lowest/ with every requirement of pyproject.toml
# (core, the `agents`, `train` and `dev` extras) at its lowest declared version, torch's CPU
# build first, and run a fast subset of the suite in it that covers both the torch-free and the
# torch paths. The environment is reused while the interpreter and the pins below are unchanged.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per requirement of pyproject.toml, at its lower bound (tests/test_versions.py checks
# that the two agree): raise a bound there and here together.
read -r -d '' PINS <<'PINS' || true
gymnasium==1.1.0
numpy==1.24.0
pillow==10.2.0
opencv-python-headless==4.8.0.76
shapely==2.0.0
torch==2.13.0
transformers==5.18.0
tokenizers==0.23.1
matplotlib==3.7.0
pytest==8.0.0
pytest-xdist==3.5.0
hypothesis==6.100.0
ruff==0.6.0
PINS

venv=.venv-lowest
stamp="$(python3 -c 'import sys; print(sys.executable, sys.version)')
$PINS"
if [[ "$(cat "$venv/stamp" 2>/dev/null)" != "$stamp" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    printf '%s\n' "$PINS" >"$venv/requirements.txt"
    pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    # torch alone first: the pinned CPU wheel, before anything can ask for another build.
    "${pip[@]}" "$(grep '^torch==' "$venv/requirements.txt")"
    "${pip[@]}" -r "$venv/requirements.txt" -e ".[dev,train]"
    printf '%s\n' "$stamp" >"$venv/stamp"
fi

"$venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_env.py tests/test_protocol.py tests/test_rewards.py tests/test_drawing.py \
    tests/test_conformance.py tests/test_versions.py \
    tests/test_policy.py tests/test_rollout.py tests/test_train_grpo.py tests/test_train_sft.py \
    tests/test_losses.py "$@"
