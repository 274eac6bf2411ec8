"""Reflective rejection sampling: only correct, format-valid, self-correcting trajectories are
kept, and they are written as SFT chat JSONL that the SFT trainer loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.train.reflect import ReflectConfig, reflective_rejection_sampling  # noqa: E402
from agents.train.sft_examples import load_examples  # noqa: E402
from agents.vlm.policy import GenerationSettings  # noqa: E402
from agents.vlm.testing import save_tiny_model  # noqa: E402
from drawenv.actions import Answer, Box, Draw  # noqa: E402
from drawenv.protocol import get_protocol  # noqa: E402
from tests.test_rollout import ScriptedPolicy  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


FORMAT = get_protocol("vilasr").format
FIRST = FORMAT(Draw([Box(1, (5, 5, 30, 30), "cup")], thought="mark the cup"))
FIXED = FORMAT(Draw([Box(1, (20, 18, 50, 52), "cup")], thought="that was off, again"))
FIXED_ON_2 = FORMAT(Draw([Box(2, (22, 20, 50, 50), "cup")], thought="better"))
OTHER = FORMAT(Draw([Box(1, (20, 18, 50, 52), "jug")], thought="now the jug"))
BROKEN = FORMAT(Draw([Box(9, (5, 5, 30, 30), "cup")], thought="image 9 does not exist"))


def answer(value: str) -> str:
    return FORMAT(Answer(value, thought="counted"))


# Task 0 (answer 1) gets episodes 0-2, task 1 (answer 2) gets episodes 3-5.
SCRIPTS = [
    [FIRST, FIXED, answer("1")],  # correct, valid, reflective: kept
    [answer("1")],  # correct, no drawing
    [FIRST, FIXED, answer("5")],  # reflective but wrong
    [FIRST, OTHER, answer("2")],  # correct, two labels: not reflective
    [FIRST, BROKEN, FIXED, answer("2")],  # reflective and correct, but an operation failed
    [FIRST, FIXED_ON_2, answer("2")],  # re-drawn on the drawn image: kept
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reflect")
    (root / "img").mkdir()
    with open(root / "tasks.jsonl", "w", encoding="utf-8") as file:
        for i in range(2):
            Image.new("RGB", (56, 56), (60 * i, 120, 200)).save(root / "img" / f"{i}.png")
            record = {
                "id": f"count-{i}",
                "images": [f"img/{i}.png"],
                "question": "How many cups?",
                "answer_type": "count",
                "answer": i + 1,
            }
            file.write(json.dumps(record) + "\n")
    return root / "tasks.jsonl"


@pytest.fixture(scope="module")
def sampled(dataset, tmp_path_factory):
    probe = ScriptedPolicy([[]])
    longest = max(len(probe.tokenizer(t)["input_ids"]) for s in SCRIPTS for t in s)
    policy = ScriptedPolicy(SCRIPTS, settings=GenerationSettings(max_new_tokens=longest + 2))
    out = tmp_path_factory.mktemp("out") / "reflect.jsonl"
    path, stats = reflective_rejection_sampling(
        policy, task=str(dataset), tasks=2, k=3, out=out, batch_size=6, max_turns=4
    )
    return policy, path, stats


def test_only_correct_valid_reflective_trajectories_are_kept(sampled):
    _, path, stats = sampled
    assert (stats.sampled, stats.correct, stats.format_valid) == (6, 5, 4)
    assert (stats.reflective, stats.kept) == (2, 2)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(line["task"], line["sample"]) for line in lines] == [(0, 0), (1, 2)]
    assert all(line["reflective"] and line["reward"] == 1.0 for line in lines)
    assistant = [m["content"] for m in lines[0]["messages"] if m["role"] == "assistant"]
    assert assistant == SCRIPTS[0]
    assert "kept 2" in str(stats)


def test_kept_trajectories_are_sft_chat_jsonl_with_images_beside_it(sampled):
    policy, path, _ = sampled
    for line in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
        roles = [m["role"] for m in line["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
        shown = [
            part["image"]
            for m in line["messages"]
            if isinstance(m["content"], list)
            for part in m["content"]
            if part["type"] == "image"
        ]
        assert len(shown) == 3 and all((path.parent / image).is_file() for image in shown)
    examples, skipped = load_examples(policy, path)
    assert len(examples) == 2 and skipped == 0


def test_reflect_config_checks_its_fields():
    with pytest.raises(ValueError, match="`k`"):
        ReflectConfig(model="m", k=0)
    with pytest.raises(ValueError, match="`model`"):
        ReflectConfig()
    assert ReflectConfig(model="m").k == 8


def test_cli_train_reflect_runs_and_reports_counts(tmp_path, dataset):
    model = save_tiny_model(tmp_path / "tiny")
    drawenv = Path(sys.executable).with_name("drawenv")
    out = tmp_path / "data" / "reflect.jsonl"
    done = subprocess.run(
        [
            str(drawenv),
            "train",
            "reflect",
            f"model={model}",
            f"task={dataset}",
            f"output_dir={out.parent}",
            "tasks=1",
            "k=2",
            "max_new_tokens=4",
            "max_turns=1",
            "dtype=float32",
            "device=cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sampled 2" in done.stdout and out.is_file()
    help_text = subprocess.run(
        [str(drawenv), "train", "reflect", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    for name in ReflectConfig.__dataclass_fields__:
        assert name in help_text
