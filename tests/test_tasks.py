"""Every built-in suite, through one set of checks: levels, metadata, key drawings, determinism
across processes, and the recorded answer earning the maximum reward under every preset; and the
named seed ranges."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import drawenv
from drawenv import Answer, Draw
from drawenv.env import DrawSpatialEnv
from drawenv.geometry import check_operation
from drawenv.rewards import REWARD_PRESETS
from drawenv.tasks import (
    SEED_RANGES,
    SUITES,
    GeneratedSource,
    MixedSource,
    SeedRange,
    TaskRecord,
    make_source,
)

MAX_REWARD = {"vilasr": 1.0, "vilasr_paper": 2.0, "snra": 1.0, "sr_real": 1.0, "vilasr_exact": 1.0}


def fingerprint(record: TaskRecord) -> str:
    digest = hashlib.sha256()
    for image in record.images:
        digest.update(np.ascontiguousarray(image).tobytes())
    fields = [record.id, record.question, record.answer_type, record.answer, record.options]
    digest.update(json.dumps([fields, record.metadata], sort_keys=True).encode())
    return digest.hexdigest()


def answer_text(record: TaskRecord) -> str:
    return str(record.answer)


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_items_carry_their_provenance_and_valid_key_drawings(suite, difficulty):
    for index in range(4):
        record = SUITES[suite](7, index, difficulty)
        meta = record.metadata
        assert (meta["suite"], meta["difficulty"], meta["seed"], meta["index"]) == (
            suite,
            difficulty,
            7,
            index,
        )
        json.dumps(meta)  # plain data only: records travel through JSONL and across processes
        for image in record.images:
            height, width, channels = image.shape
            assert image.dtype == np.uint8 and channels == 3
            assert width % 28 == 0 and height % 28 == 0 and width * height <= 256 * 28 * 28
        ops = record.key_operations
        assert len(ops) <= 32
        assert len({(op.kind, op.index, op.label) for op in ops}) == len(ops)
        for op in ops:
            assert 1 <= op.index <= len(record.images)
            height, width = record.images[op.index - 1].shape[:2]
            checked = check_operation(op, width=width, height=height, coords="pixel")
            assert checked.error is None and checked.warning is None, (op, checked)
        if record.answer_type == "multiple_choice":
            assert record.answer in "ABCDEFGH"[: len(record.options)]


@functools.cache
def thirty_items(suite: str) -> tuple[TaskRecord, ...]:
    """Items 0 to 29 of ``suite`` (seed 0, levels 1, 2, 3 in turn), generated once for all the
    presets that score them."""
    return tuple(SUITES[suite](0, index, 1 + index % 3) for index in range(30))


@pytest.mark.parametrize("suite", list(SUITES))
@pytest.mark.parametrize("preset", list(REWARD_PRESETS))
def test_recorded_answer_earns_the_maximum_reward(suite, preset):
    for record in thirty_items(suite):
        env = DrawSpatialEnv(task=[record], reward=preset)
        env.reset(seed=0)
        if record.key_operations:
            _, _, terminated, _, info = env.step(Draw(record.key_operations, thought="mark"))
            assert not terminated and not info["errors"], info["errors"]
        _, reward, terminated, _, info = env.step(Answer(answer_text(record), thought="so"))
        assert terminated and reward == pytest.approx(MAX_REWARD[preset]), (
            record.id,
            info["reward_terms"],
        )


def test_items_are_identical_in_another_process_and_differ_between_indices():
    keys = [
        (suite, index, difficulty)
        for suite in SUITES
        for index, difficulty in [(0, 1), (1, 2), (2, 3)]
    ]
    script = (
        "import json, sys\n"
        "from tests.test_tasks import fingerprint\n"
        "from drawenv.tasks import SUITES\n"
        f"print(json.dumps([fingerprint(SUITES[s](5, i, d)) for s, i, d in {keys!r}]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    here = [fingerprint(SUITES[s](5, i, d)) for s, i, d in keys]
    assert json.loads(out.stdout) == here
    assert here == [fingerprint(SUITES[s](5, i, d)) for s, i, d in keys]  # and twice in one process
    for suite in SUITES:
        assert len({fingerprint(SUITES[suite](5, i, 2)) for i in range(4)}) == 4


def test_mixed_covers_every_suite_and_task_lists_work():
    source = make_source("mixed")
    assert isinstance(source, MixedSource) and source.size is None
    seen = {source[i].metadata["suite"] for i in range(len(SUITES))}
    assert seen == set(SUITES)
    pair = make_source(["counting", list(SUITES)[-1]])
    assert {pair[0].metadata["suite"], pair[1].metadata["suite"]} == {"counting", list(SUITES)[-1]}


@pytest.mark.parametrize("suite", list(SUITES))
def test_gym_make_by_suite_name(suite):
    env = gym.make("DrawSpatial-v0", task=suite, difficulty=2)
    obs, info = env.reset(seed=1)
    assert info["task_id"].startswith(suite) and obs["images"]


def test_custom_task_source_in_a_few_lines():
    class Squares(drawenv.TaskSource):
        size = None  # endless

        def __getitem__(self, index: int) -> TaskRecord:
            side = 28 * (1 + index % 4)
            return TaskRecord(
                id=f"squares-{index}",
                images=(np.zeros((112, 112, 3), np.uint8) + 255,),
                question=f"How wide is the square? ({side} px)",
                answer_type="numeric",
                answer=float(side),
            )

    env = gym.make("DrawSpatial-v0", task=Squares())
    env.reset(seed=3)
    first = env.unwrapped.task.id
    env.reset(seed=3)
    assert env.unwrapped.task.id == first
    _, reward, *_ = env.step(Answer(str(env.unwrapped.task.answer)))
    assert reward == 1.0
    assert isinstance(make_source("counting"), GeneratedSource)


def test_gym_make_with_a_jsonl_path(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((56, 84, 3), 200, np.uint8)).save(tmp_path / "room.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [
        {
            "id": "a",
            "images": ["room.png"],
            "question": "How many doors?",
            "answer_type": "count",
            "answer": 2,
        },
        {
            "id": "b",
            "images": ["broken.png"],
            "question": "How many?",
            "answer_type": "count",
            "answer": 1,
        },
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    env = gym.make("DrawSpatial-v0", task=str(path))
    obs, info = env.reset(seed=0, options={"index": 0})
    assert info["task_id"] == "a" and obs["images"][0].shape[2] == 3
    _, reward, *_ = env.step(Answer("2"))
    assert reward == 1.0
    with pytest.raises(drawenv.DrawEnvError, match=r"broken\.png.*cannot be read"):
        env.reset(options={"index": 1})


# -- seed ranges -------------------------------------------------------------------------------


def test_seed_ranges_are_the_named_table():
    firsts = {name: seed_range.first for name, seed_range in SEED_RANGES.items()}
    assert firsts == {
        "test": 1_000_000,
        "validation": 2_000_000,
        "probe": 3_000_000,
        "stream": 10_000_000,
    }
    assert all(seed_range.use for seed_range in SEED_RANGES.values())


def test_seed_ranges_do_not_overlap_and_leave_the_training_seeds_free():
    spans = sorted((r.first, r.first + r.size) for r in SEED_RANGES.values())
    assert spans[0][0] >= 1_000_000  # seeds below are free for training and RL sampling
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


@pytest.mark.parametrize(
    ("name", "k", "expected"),
    [
        ("test", 0, 1_000_000),
        ("test", 999_999, 1_999_999),
        ("validation", 63, 2_000_063),
        ("probe", 5, 3_000_005),
        # the stream's seed for run seed 3, episode 5, and the last one of run seed 99
        ("stream", 3 * 10**7 + 5, 40_000_005),
        ("stream", 99 * 10**7 + 10**7 - 1, 1_009_999_999),
        ("stream", np.int64(7), 10_000_007),
    ],
)
def test_seed_range_seed(name, k, expected):
    assert SEED_RANGES[name].seed(k) == expected


@pytest.mark.parametrize("k", [-1, 1_000_000, 1.0, True, "3"])
def test_seed_range_seed_outside_the_range_raises(k):
    with pytest.raises(drawenv.DrawEnvError, match=r"`k`.*\[0, 999999\].*held-out test items"):
        SEED_RANGES["test"].seed(k)


def test_seed_range_is_frozen():
    with pytest.raises(AttributeError):
        SEED_RANGES["test"].first = 0
    assert SeedRange(5, 2, "x").seed(1) == 6


# -- records are checked when built: a bad one fails naming itself, never mid-episode -------------


def record_fields(**overrides) -> dict:
    fields = {
        "id": "bad-1",
        "images": (np.full((112, 112, 3), 255, np.uint8),),
        "question": "How many?",
        "answer_type": "count",
        "answer": 2,
    }
    return {**fields, **overrides}


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"metadata": {"objects": [{"name": "cup"}]}}, "`metadata.objects[0].box`"),
        ({"metadata": {"objects": [{"name": "cup", "box": [1, 2, 3, float("nan")]}]}}, "finite"),
        (
            {"metadata": {"max_turns": "x"}},
            "`metadata.max_turns` in task 'bad-1': expected an integer",
        ),
        ({"metadata": {"max_turns": -5}}, "got -5"),
        (
            {"metadata": {"key_drawings": [{"kind": "box", "index": 1, "label": "c"}]}},
            "`metadata.key_drawings[0].bbox`",
        ),
        ({"metadata": [("objects", [])]}, "`metadata` in task 'bad-1': expected a mapping"),
        ({"id": 12}, "`id` in task 12: expected a non-empty string"),
        ({"id": ""}, "expected a non-empty string"),
    ],
)
def test_a_malformed_record_fails_when_built(overrides, fragment):
    with pytest.raises(drawenv.DrawEnvError) as caught:
        TaskRecord(**record_fields(**overrides))
    assert fragment in str(caught.value)
    # handed to the env as a dict, it fails when the env is built, before any episode
    with pytest.raises(drawenv.DrawEnvError):
        DrawSpatialEnv(task=[record_fields(**overrides)])


def test_every_suite_record_passes_the_metadata_check():
    from drawenv.tasks.record import metadata_problem

    for suite, generate in SUITES.items():
        for difficulty in (1, 2, 3):
            record = generate(0, 5, difficulty)
            assert metadata_problem(record.metadata, len(record.images)) is None, suite


def test_a_source_that_returns_no_record_fails_at_reset_naming_the_item():
    class Broken(drawenv.TaskSource):
        size = 3

        def __getitem__(self, index: int):
            return {"id": f"x-{index}"}

    env = DrawSpatialEnv(task=Broken())
    with pytest.raises(drawenv.DrawEnvError, match=r"item 2 of the task source .*got dict"):
        env.reset(options={"index": 2})


@pytest.mark.parametrize(
    "image, fragment",
    [
        (np.zeros((2, 500, 3), np.uint8), "aspect ratio of at most 200, got 500x2"),
        (np.zeros((40, 50, 3), np.float32), "uint8 array"),
        (np.zeros((100, 100, 3), np.uint8), "max_image_pixels=5,000 pixels, got 100x100"),
    ],
)
def test_a_bad_image_array_fails_at_reset_naming_the_task(image, fragment):
    env = DrawSpatialEnv(task=[record_fields(images=(image,))], max_image_pixels=5_000)
    with pytest.raises(drawenv.DrawEnvError) as caught:
        env.reset(seed=0)
    message = str(caught.value)
    assert "task 'bad-1'" in message and "mage 1" in message and fragment in message
