"""The ViLaSR / VSI-Bench options of the command line, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DRAWENV = Path(sys.executable).with_name("drawenv")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DRAWENV), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def _count_task(folder: Path) -> Path:
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(folder / "a.png")
    record = {
        "id": "c1",
        "images": ["a.png"],
        "question": "What value is shown?",
        "answer_type": "count",
        "answer": 4,
    }
    path = folder / "tasks.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def test_eval_mra_vsi_credits_the_boundary(tmp_path):
    # answer_only guesses 5 for a number it knows nothing about; 5 vs 4 is an error of 0.25.
    tasks = _count_task(tmp_path)
    accuracies = {}
    for convention in ("drawenv", "vsi", "vilasr"):
        out = tmp_path / convention
        done = run("eval", "--agent", "answer_only", "--task", str(tasks), "-n", "1",
                   "--mra", convention, "--out", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        (result,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert result["prediction"] == "5"
        accuracies[convention] = result["accuracy"]
    assert accuracies == {"drawenv": 0.5, "vsi": 0.6, "vilasr": 0.5}


def test_eval_mra_names_the_choices():
    done = run("eval", "--agent", "oracle", "--task", "counting", "-n", "1", "--mra", "paper")
    assert done.returncode == 2
    assert "--mra" in done.stderr and "'vsi'" in done.stderr
