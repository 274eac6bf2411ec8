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


def own_checkout(tmp_path: Path) -> Path:
    """A copy of the script in a repository root of its own (it works from the root it lies in);
    returns that root's runs/evidence/."""
    script = tmp_path / "experiments" / "rl_recipe" / "run_gpu.sh"
    script.parent.mkdir(parents=True)
    script.write_text(SCRIPT.read_text())
    return tmp_path / "runs" / "evidence"


def watch(tmp_path: Path, seconds: int) -> subprocess.CompletedProcess:
    script = tmp_path / "experiments" / "rl_recipe" / "run_gpu.sh"
    return subprocess.run(
        ["bash", str(script), "watch", str(seconds)], capture_output=True, text=True, timeout=60
    )


def test_watch_reads_arms_that_have_not_logged_a_reward_yet(tmp_path):
    runs = own_checkout(tmp_path)
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
    done = watch(tmp_path, 1)
    assert done.returncode == 0, done.stderr
    fields = done.stdout.strip().split("\t")
    assert fields[1:] == ["sft:140", "a:", "b:3:0.5", "c:0"]
    assert (runs / "logs" / "watch.tsv").read_text() == done.stdout


def test_watch_names_arms_that_ended_early_and_stops_when_all_is_done(tmp_path):
    runs = own_checkout(tmp_path)
    (runs / "logs").mkdir(parents=True)
    (runs / "rl-a").mkdir()
    (runs / "rl-a" / "metrics.jsonl").write_text('{"step": 9, "rollout/reward_mean": 0.5}\n')
    (runs / "logs" / "rl-a.log").write_text("step 9/1000\n")
    (runs / "logs" / "rl-a.rc").write_text("124\n")  # stopped by its time: as planned
    (runs / "logs" / "rl-b.log").write_text("torch.OutOfMemoryError\n")  # died before a folder
    (runs / "logs" / "rl-b.rc").write_text("1\n")
    (runs / "rl-c").mkdir()
    (runs / "rl-c" / "metrics.jsonl").write_text('{"step": 4, "rollout/reward_mean": 0.25}\n')
    (runs / "logs" / "rl-c.rc").write_text("0\n")  # ran all its steps
    (runs / "done").touch()
    done = watch(tmp_path, 90)  # `all` is done: one reading, not three
    assert done.returncode == 0, done.stderr
    reading, end = done.stdout.strip().split("\n")
    assert reading.split("\t")[1:] == ["sft:", "a:9:0.5", "b::exit 1", "c:4:0.25:exit 0"]
    assert end == "done"
    assert (runs / "logs" / "watch.tsv").read_text() == reading + "\n"
