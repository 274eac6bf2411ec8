"""Scripted agents: the oracle earns the maximum, baselines behave, records and summaries add up."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from agents.evaluate import evaluate, format_table, is_reflective, summarise
from agents.scripted.baselines import AnswerOnlyAgent, OracleAgent, RandomAgent, text_only_guess
from agents.train.sft_data import export_sft
from drawenv.canvas import label_colour
from drawenv.tasks import SUITES, TaskRecord, TaskSource, make_source

MAX_REWARD = {"vilasr": 1.0, "vilasr_paper": 2.0, "snra": 1.0, "sr_real": 1.0}


@pytest.mark.parametrize("suite", list(SUITES))
def test_oracle_reaches_the_maximum_on_50_items(suite):
    results = evaluate(OracleAgent(), task=suite, episodes=50, seed=0, reward="sr_real")
    assert [r["reward"] for r in results] == [1.0] * 50
    assert all(r["termination"] == "answer" and r["correct"] for r in results)


@pytest.mark.parametrize(
    "env_kwargs",
    [
        {"protocol": "tool_call"},
        {"coords": "norm1000"},
        {"reward": "vilasr_paper", "difficulty": 3},
        {"reward": "snra", "difficulty": 2},
    ],
)
def test_oracle_is_maximal_in_every_protocol_and_coordinate_mode(env_kwargs):
    preset = env_kwargs.get("reward", "vilasr")
    for suite in SUITES:
        results = evaluate(OracleAgent(), task=suite, episodes=3, seed=4, **env_kwargs)
        assert [r["reward"] for r in results] == [MAX_REWARD[preset]] * 3, suite


def test_oracle_with_corrections_is_reflective_and_still_correct():
    results = evaluate(OracleAgent(corrections=True), task="counting", episodes=5, seed=0)
    assert all(is_reflective(r) and r["reward"] == 1.0 for r in results)
    assert all(r["agent"] == "oracle_reflect" for r in results)


def test_random_and_answer_only_baselines():
    random = evaluate(RandomAgent(), task="direction", episodes=20, seed=0)
    assert all(r["termination"] == "answer" for r in random)
    assert {r["prediction"] for r in random} <= set("ABCD") and len(
        {r["prediction"] for r in random}
    ) > 1
    assert any(r["n_operations"] > 0 for r in random)
    assert all(not any(t["errors"] for t in r["turns"]) for r in random)  # its drawings are valid
    only = evaluate(AnswerOnlyAgent(), task="direction", episodes=5, seed=0)
    assert [(r["n_turns"], r["prediction"]) for r in only] == [(1, "A")] * 5


@pytest.mark.parametrize(
    ("prompt", "guess"),
    [
        (
            "How many turns does the shortest path take?\n"
            "Answer with a whole number, e.g. <answer> 4 </answer>.",
            "3",
        ),
        ("How far is the red cube from the camera, in metres?", "11"),
        ("What is the distance between the sofa and the bed, in metres?", "2.8"),
        ("How many red circles are there in the image?", "4"),
        ("Which one?\nOptions:\nA. left\nB. right", "A"),
    ],
)
def test_text_only_guess(prompt, guess):
    assert text_only_guess(prompt) == guess


def _turn(*ops):
    return {"operations": [dict(op) for op in ops]}


def test_reflection_needs_two_steps_and_new_geometry():
    box = {"kind": "box", "label": "sofa", "bbox": [0, 0, 10, 10]}
    moved = {"kind": "box", "label": "sofa", "bbox": [5, 5, 20, 20]}
    assert is_reflective({"turns": [_turn(box), _turn(moved)]})
    assert not is_reflective({"turns": [_turn(box), _turn(box)]})  # same geometry: a repeat
    assert not is_reflective({"turns": [_turn(box, moved)]})  # one step
    other = {"kind": "box", "label": "lamp", "bbox": [5, 5, 20, 20]}
    assert not is_reflective({"turns": [_turn(box), _turn(other)]})


def test_summary_rows_are_hand_checkable():
    def result(suite, acc, reward, turns, ops, termination):
        return {
            "agent": "a",
            "suite": suite,
            "accuracy": acc,
            "reward": reward,
            "n_turns": turns,
            "n_operations": ops,
            "termination": termination,
            "turns": [],
        }

    rows = summarise(
        [
            result("maze", 1.0, 1.0, 2, 3, "answer"),
            result("maze", 0.4, 0.7, 4, 1, "max_turns"),
            result("depth", 0.0, 0.0, 1, 0, "no_action"),
        ]
    )
    maze = next(r for r in rows if r["suite"] == "maze")
    assert (maze["episodes"], maze["accuracy"], maze["reward"]) == (2, 0.7, 0.85)
    assert (maze["turns"], maze["operations"]) == (3.0, 2.0)
    assert maze["terminations"] == {"answer": 1, "max_turns": 1}
    assert "max_turns 1" in format_table(rows)


def test_export_sft_writes_chat_messages_with_self_corrections(tmp_path):
    path, stats = export_sft(["counting"], episodes=4, out=tmp_path / "sft.jsonl", corrections=0.5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert stats == {"episodes": 4, "reflective": 2} and len(lines) == 4
    for line in lines:
        roles = [m["role"] for m in line["messages"]]
        assert roles[:2] == ["system", "user"] and roles[-1] == "assistant"
        assert roles[2:] == ["assistant", "user"] * (len(roles[2:]) // 2) + ["assistant"]
        assert "<answer>" in line["messages"][-1]["content"] and line["reward"] == 1.0
        for image in line["images"]:
            assert (tmp_path / image).is_file()
    reflective = next(line for line in lines if line["reflective"])
    # messages: system, user, wrong boxes, user (image 2), re-drawn boxes, user (image 3), answer
    wrong_image = np.asarray(Image.open(tmp_path / reflective["images"][1]))
    fixed_image = np.asarray(Image.open(tmp_path / reflective["images"][2]))
    original = np.asarray(Image.open(tmp_path / reflective["images"][0]))
    assert len(reflective["messages"]) == 7
    wrong_text = reflective["messages"][2]["content"]
    box = json.loads(wrong_text.split("```json")[1].split("```")[0])[0]
    x1, y1, _, y2 = (round(v) for v in box["bbox_2d"])
    colour = np.array(label_colour(box["label"]))
    row = (y1 + y2) // 2
    assert (wrong_image[row, x1] == colour).all()  # the misplaced outline is drawn on image 2
    assert (fixed_image[row, x1] == original[row, x1]).all()  # and gone from image 3


class GeneratedOnce(TaskSource):
    """A source's items, each generated once however many agents play it: the same items as the
    source's, since an item is a pure function of its index."""

    def __init__(self, source: TaskSource):
        self.source, self.size, self.items = source, source.size, {}

    def __getitem__(self, index: int) -> TaskRecord:
        if index not in self.items:
            self.items[index] = self.source[index]
        return self.items[index]


@pytest.mark.parametrize("suite", list(SUITES))
def test_heuristic_beats_random_and_answer_only_over_100_items(suite):
    from agents.scripted.heuristic import HeuristicAgent

    # The three agents play the same 100 items (episode i's seed picks its item), so each item
    # is painted once rather than once per agent.
    items = GeneratedOnce(make_source(suite, difficulty=2))
    accuracy = {}
    for agent in (HeuristicAgent(), RandomAgent(), AnswerOnlyAgent()):
        results = evaluate(agent, task=items, episodes=100, seed=0)
        assert {r["suite"] for r in results} == {suite}
        assert {r["task_id"].split("-")[2] for r in results} == {"2"}  # maze-0-2-12345: level 2
        accuracy[agent.name] = sum(r["accuracy"] for r in results) / len(results)
        assert all(not any(t["errors"] for t in r["turns"]) for r in results), agent.name
    assert accuracy["heuristic"] > accuracy["random"] + 0.1, accuracy
    assert accuracy["heuristic"] > accuracy["answer_only"] + 0.1, accuracy


@pytest.mark.parametrize("suite", ["counting", "maze"])
def test_oracle_writes_whole_pixels_and_its_boxes_enclose_the_objects(suite):
    from drawenv.actions import Box, Draw
    from drawenv.env import DrawSpatialEnv

    env = DrawSpatialEnv(task=suite, max_pixels=50176)  # the 448x448 scenes shown at 224x224
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        agent = OracleAgent(corrections=seed % 2 == 1)
        agent.reset(obs, info, protocol="vilasr", coords="pixel", seed=seed, task=env.task)
        draws = [a for a in agent.plan if isinstance(a, Draw)]
        values = [v for a in draws for op in a.operations for v in _coordinates(op)]
        assert values and all(type(v) is int for v in values)
        height, width = obs["images"][0].shape[:2]
        scale = width / env.task.load_images()[0].shape[1]
        final = {op.label: op for a in draws for op in a.operations if isinstance(op, Box)}
        keys = [op for op in env.task.key_operations if isinstance(op, Box)]
        assert keys and len(final) == len(keys)
        for key in keys:  # grown outward to the pixel grid: each box holds its true box
            x1, y1, x2, y2 = (v * scale for v in key.bbox)
            box = final[key.label].bbox
            assert box[0] <= x1 < box[0] + 1 and box[1] <= y1 < box[1] + 1
            assert box[2] - 1 < x2 <= box[2] <= width and box[3] - 1 < y2 <= box[3] <= height


def _coordinates(op):
    return op.bbox if hasattr(op, "bbox") else (*op.start, *op.end)
