#!/usr/bin/env bash
# Make .venv/ with this machine's python3, or keep it when it was made by the same interpreter: a
# .venv left by another Python (or one whose interpreter is gone) is rebuilt, never reused.
# Usage: bash scripts/make_venv.sh [FOLDER]   (default .venv)
set -euo pipefail
venv=${1:-.venv}
want=$(python3 -c 'import sys; print(sys.version)')
have=$("$venv/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || true)
if [[ "$have" != "$want" ]]; then
    [[ -e "$venv" ]] && echo "$venv was made by another Python (${have:-none that runs}); rebuilding it." >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
