"""The experiment's shell scripts print their usage, from any folder, without running a stage."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

EVIDENCE = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("script", "commands"),
    [
        (
            "evidence.sh",
            ["data", "init", "sft", "rl ARM SEED", "eval MODEL NAME", "valid MODEL NAME",
             "baselines", "report"],
        ),
        ("evidence_gpu.sh", ["sft", "sft-part", "rl"]),
    ],
)  # fmt: skip
@pytest.mark.parametrize("flag", [[], ["--help"]])
def test_usage_names_every_stage(tmp_path, script, commands, flag):
    done = run(str(EVIDENCE / script), *flag, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    for command in commands:
        assert f"bash experiments/evidence/{script} {command}" in done.stdout, command
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_unknown_stage_fails_with_a_message():
    done = run(str(EVIDENCE / "evidence.sh"), "bogus")
    assert done.returncode == 2 and "unknown stage 'bogus'" in done.stderr
