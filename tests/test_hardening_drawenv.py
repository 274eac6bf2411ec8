"""Mistakes and mixes that used to end in a traceback: a JSONL dataset mixed with an endless
suite, and an answer passed to ``accuracy`` as a number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from drawenv.env import DrawSpatialEnv
from drawenv.errors import DrawEnvError
from drawenv.rewards import accuracy
from drawenv.tasks import GeneratedSource, MixedSource, load_jsonl


def two_record_file(folder: Path) -> Path:
    """A JSONL dataset of two count questions about one grey image."""
    Image.new("RGB", (56, 84), (90, 90, 90)).save(folder / "a.png")
    lines = [
        {"id": f"q{k}", "images": ["a.png"], "question": "How many?", "answer_type": "count"}
        | {"answer": k}
        for k in (1, 2)
    ]
    path = folder / "tasks.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_mixed_generated_and_jsonl_sources_wrap_the_finite_one(tmp_path):
    jsonl = load_jsonl(two_record_file(tmp_path))
    mixed = MixedSource([GeneratedSource(lambda s, i, d: jsonl[0]), jsonl])
    assert mixed.size is None
    # Endless: any index, however large, lands on a record of the 2-record file.
    assert [mixed[i].id for i in (1, 3, 5, 2 * 10**9 + 3)] == ["q1", "q2", "q1", "q2"]
    assert mixed[7].id == mixed[7].id


def test_env_resets_on_a_mix_of_a_suite_and_a_jsonl_file(tmp_path):
    env = DrawSpatialEnv(task=["counting", str(two_record_file(tmp_path))])
    ids = {env.reset(seed=seed)[1]["task_id"] for seed in range(20)}
    assert {"q1", "q2"} & ids and ids - {"q1", "q2"}


@pytest.mark.parametrize("answer", [0, 3.0, ["3"]])
def test_accuracy_refuses_an_answer_that_is_not_text(answer):
    with pytest.raises(DrawEnvError, match=r"Invalid `answer`: expected the extracted answer"):
        accuracy(answer, 0, "count")
    assert accuracy("0", 0, "count") == 1.0
