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


def test_watch_reads_arms_that_have_not_logged_a_reward_yet(tmp_path):
    # The script works from the repository root it lies in: give it one of its own.
    script = tmp_path / "experiments" / "rl_recipe" / "run_gpu.sh"
    script.parent.mkdir(parents=True)
    script.write_text(SCRIPT.read_text())
    runs = tmp_path / "runs" / "evidence"
    (runs / "sft").mkdir(parents=True)
    (runs / "sft" / "metrics.jsonl").write_text('{"step": 0}\n{"step": 140, "train/loss": 1.0}\n')
    (runs / "rl-a").mkdir()
    (runs / "rl-a" / "metrics.jsonl").write_text("")  # an arm just started
    (runs / "rl-c").mkdir()
    (runs / "rl-c" / "metrics.jsonl").write_text('{"step": 0, "model/params": 1}\n')
    (runs / "rl-b").mkdir()
    (runs / "rl-b" / "metrics.jsonl").write_text(
        '{"step": 2, "rollout/reward_mean": 0.25}\n{"step": 3, "rollout/reward_mean": 0.5}\n'
    )
    done = subprocess.run(
        ["bash", str(script), "watch", "1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    fields = done.stdout.strip().split("\t")
    assert fields[1:] == ["sft:140", "a:", "b:3:0.5", "c:0"]
    assert (runs / "logs" / "watch.tsv").read_text() == done.stdout
