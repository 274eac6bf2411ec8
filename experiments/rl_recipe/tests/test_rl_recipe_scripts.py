"""The RL-recipe study's script prints its usage from any folder without running a stage, and
refuses an unknown stage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "run_gpu.sh"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("flag", [[], ["--help"]])
def test_usage_names_the_stages_and_writes_nothing(tmp_path, flag):
    done = run(*flag, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    for stage in ("all", "pack"):
        assert f"bash experiments/rl_recipe/run_gpu.sh {stage}" in done.stdout
    for knob in ("SFT_STEPS", "SFT_UNTIL", "RL_SECONDS", "RL_UNTIL", "ARMS", "START", "watch"):
        assert knob in done.stdout
    assert not list(tmp_path.iterdir())


def test_an_unknown_stage_fails_with_a_message(tmp_path):
    done = run("bogus", cwd=tmp_path)
    assert done.returncode == 2 and "unknown stage 'bogus'" in done.stderr
