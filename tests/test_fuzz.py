"""Any model text ends in a defined outcome: no exception, originals intact, errors explained."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drawenv.env import DrawSpatialEnv
from drawenv.termination import ENV_TERMINATIONS
from tests.conftest import grey_image

ORIGINAL = grey_image(224, 168)
RECORD = {
    "id": "fuzz",
    "images": [ORIGINAL],
    "question": "How many?",
    "answer_type": "count",
    "answer": 2,
}
ENV = DrawSpatialEnv(task=[RECORD], repeat_policy="feedback", max_turns=1000)


def json_block(items) -> str:
    return f"<think> t </think> Action: Object Mapper\n```json\n{json.dumps(items)}\n```"


def check_outcome(text: str) -> None:
    ENV.reset(seed=0)
    obs, reward, terminated, truncated, info = ENV.step(text)
    assert 0.0 <= reward <= 1.0
    assert info.get("termination") in (None, *ENV_TERMINATIONS)
    if not info["new_image_indices"] and not terminated:
        assert info["errors"], "a rejected step must say why"
    assert all(isinstance(e, str) for e in info["errors"])
    assert np.array_equal(ORIGINAL, grey_image(224, 168))
    assert obs in ENV.observation_space


NASTY = [
    "",
    "x" * 1_000_000,
    bytes(range(256)).decode("latin-1") * 100,
    '<think> a </think> Action: Object Mapper\n```json\n[{"index": 1, "bbox_2d": [NaN, 1, 2, 3],'
    ' "label": "n"}]```',
    json_block([{"index": 1, "bbox_2d": [1e308, -1e308, 1e308, 1e308], "label": "big"}]),
    json_block([{"index": -3, "bbox_2d": [1, 2, 30, 40], "label": "neg"}]),
    json_block([{"index": 10**30, "bbox_2d": [1, 2, 30, 40], "label": "huge"}]),
    json_block([{"index": 1, "bbox_2d": [1, 2, 3], "label": "arity"}]),
    json_block([{"index": 1, "start_point_2d": [1, 2, 3], "end_point_2d": [4], "label": "l"}]),
    json_block([{"index": 1, "bbox_2d": [1, 2, 30, 40], "label": "沙发 🛋️ \u202e\x00"}]),
    json_block(
        [{"index": 1, "bbox_2d": [i, i, i + 5, i + 5], "label": f"b{i}"} for i in range(1000)]
    ),
    json_block([{"index": 1, "bbox_2d": [1, 2, 30, 40], "label": "x" * 65}]),
    json_block([{"index": 1, "bbox_2d": [1, 2, 30, 40], "label": ""}]),
    json_block([{"index": 1, "bbox_2d": ["1", 2, 30, 40], "label": "s"}]),
    "```json\n" + "[" * 100_000,
    "<answer>" * 10_000,
    "<tool_call>" * 10_000,
]


@pytest.mark.parametrize("text", NASTY, ids=range(len(NASTY)))
def test_nasty_inputs(text):
    check_outcome(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_arbitrary_text(text):
    check_outcome(text)


coordinate = st.one_of(
    st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True)
)
item = st.fixed_dictionaries(
    {
        "index": st.one_of(st.integers(-5, 5), st.floats()),
        "bbox_2d": st.lists(coordinate, min_size=0, max_size=5),
        "label": st.text(max_size=70),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item, max_size=40))
def test_arbitrary_operations(items):
    check_outcome(json_block(items))
