"""ViLaSR's evaluation rules: scores per answer against their eval/evaluate.py, the per-type
summary, and ``drawenv eval --env DrawSpatial-ViLaSR-v0`` on a converted ViLaSR file.

``tests/data/vilasr_eval_reference.json`` holds 42 answers written for this test and the score
ViLaSR's ``reward_fn`` (``eval/evaluate.py``, repository AntResearchNLP/ViLaSR at 61669c0)
returned for each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drawenv.rewards import mra, vilasr_eval_score
from drawenv.vilasr import type_averages

DATA = Path(__file__).parent / "data"
SCORES = json.loads((DATA / "vilasr_eval_reference.json").read_text(encoding="utf-8"))["scores"]
DRAWENV = Path(sys.executable).with_name("drawenv")


@pytest.mark.parametrize(
    "row", SCORES, ids=[f"{r['problem_type']}-{k}" for k, r in enumerate(SCORES)]
)
def test_each_score_matches_vilasr_evaluate(row):
    got = vilasr_eval_score(row["output"], row["truth"], row["problem_type"])
    assert got == pytest.approx(row["vilasr"], abs=1e-6)


def test_the_eval_rules_by_hand():
    answer = "<think>t</think> Action: Answer\n<answer>{}</answer>".format
    assert vilasr_eval_score(answer("b) sofa"), "B", "multiple choice") == 1.0  # first letter
    assert vilasr_eval_score(answer("3.0"), "3", "numerical") == 0.0  # decimals must agree
    assert vilasr_eval_score(answer("3.004"), "3.0", "numerical") == 1.0  # to 2 decimals
    assert vilasr_eval_score(answer("3 chairs"), "3", "numerical") == 0.0  # the whole answer
    # regression: float32 with <=, so 5 vs 4 (error 0.25) passes the 0.75 threshold
    assert vilasr_eval_score(answer("5"), "4", "regression") == mra(5, 4, "vilasr_eval")
    assert mra(5, 4, "vilasr_eval") == float(np.float32(0.6)) and mra(5, 4, "vilasr") == 0.5
    assert vilasr_eval_score(answer(""), "B", "multiple choice") == 0.0


def test_type_averages_merge_difficulties_and_average_the_types():
    scored = [
        ("object_rel_direction_easy", 1.0),
        ("object_rel_direction_hard", 0.0),
        ("object_rel_direction_medium", 1.0),
        ("object_counting", 0.5),
        ("object_counting", 0.7),
        ("room_size_estimation", 0.2),
        ("route_planning", 0.0),
    ]
    table, overall = type_averages(scored)
    assert list(table) == ["object_rel_direction", "route_planning", "object_counting",
                           "room_size_estimation"]  # fmt: skip
    assert table["object_rel_direction"] == (pytest.approx(2 / 3), 3)
    assert table["object_counting"] == (pytest.approx(0.6), 2)
    assert overall == pytest.approx((2 / 3 + 0 + 0.6 + 0.2) / 4)  # 0.367, not the answer mean
    other, overall = type_averages([("maze", 1.0), ("maze", 0.0), ("vqa", 1.0)])
    assert other == {"maze": (0.5, 2), "vqa": (1.0, 1)} and overall == 0.75


def _vsi_file(folder: Path) -> Path:
    for k in range(2):
        Image.fromarray(np.full((112, 112, 3), 60 * k, np.uint8)).save(folder / f"f{k}.png")
    items = [
        {"question": "How many chairs are in this room?", "answer": "4",
         "image_path": ["f0.png", "f1.png"], "problem_type": "numerical",
         "original_question_type": "object_counting", "data_type": "video"},
        {"question": "Is the lamp left or right of the bed?", "answer": "B",
         "image_path": ["f1.png"], "problem_type": "multiple choice",
         "options": ["A. left", "B. right"],
         "original_question_type": "object_rel_direction_easy", "data_type": "video"},
        {"question": "How large is this room, in square meters?", "answer": "21",
         "image_path": ["f0.png"], "problem_type": "regression",
         "original_question_type": "room_size_estimation", "data_type": "video"},
    ]  # fmt: skip
    path = folder / "vsi_bench.json"
    path.write_text(json.dumps(items))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DRAWENV), *args], capture_output=True, text=True, timeout=600)


def test_convert_then_eval_reports_vilasr_types_beside_drawenv(tmp_path):
    src = _vsi_file(tmp_path)
    tasks = tmp_path / "tasks.jsonl"
    assert _run("convert", str(src), str(tasks)).returncode == 0
    done = _run("eval", "--agent", "answer_only", "--task", str(tasks), "-n", "3",
                "--env", "DrawSpatial-ViLaSR-v0", "--out", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("ViLaSR evaluation score"))
    rows = {line.rsplit(None, 2)[0]: line.split()[-2:] for line in lines[start + 3 : start + 8]}
    results = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    by_type = {r["vilasr_type"]: r["vilasr_score"] for r in results}
    # answer_only answers "A" to the choice (truth B) and its priors to the numbers
    assert by_type["object_rel_direction_easy"] == 0.0
    assert rows["object_rel_direction"] == ["0.000", "1"]
    assert rows["object_counting"] == [f"{by_type['object_counting']:.3f}", "1"]
    mean = sum(by_type.values()) / 3
    assert rows["overall (mean of types)"] == [f"{mean:.3f}", "3"]
    assert lines[start - 2].startswith("answer_only  custom")  # drawenv's own table first


def test_eval_env_vilasr_refuses_what_it_cannot_honour():
    done = _run("eval", "--agent", "oracle", "--task", "counting", "-n", "1",
                "--env", "DrawSpatial-ViLaSR-v0", "--mra", "vsi")  # fmt: skip
    assert done.returncode == 2 and "--mra" in done.stderr
    done = _run("eval", "--agent", "oracle", "--task", "counting", "-n", "1", "--env", "Draw")
    assert done.returncode == 2 and "--env" in done.stderr
