"""The envs of a GRPO group, reset on the same item, render it once."""

from __future__ import annotations

import numpy as np

from drawenv.env import DrawSpatialEnv
from drawenv.tasks import SUITES, GeneratedSource


class CountingGenerator:
    """The real counting suite, counting how often it renders."""

    def __init__(self):
        self.calls = 0

    def __call__(self, seed: int, index: int, difficulty: int):
        self.calls += 1
        return SUITES["counting"](seed, index, difficulty)


def test_a_group_of_resets_renders_its_item_once():
    generate = CountingGenerator()
    envs = [DrawSpatialEnv(task=GeneratedSource(generate, seed=5)) for _ in range(4)]
    first = [env.reset(seed=11, options={"index": 3})[0] for env in envs]
    assert generate.calls == 1
    for obs in first[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(obs["images"], first[0]["images"]))
    envs[0].reset(seed=11, options={"index": 4})  # another item renders anew
    assert generate.calls == 2


def test_cached_items_are_read_only_and_equal_to_a_fresh_render():
    generate = CountingGenerator()
    record = GeneratedSource(generate, seed=2)[7]
    fresh = SUITES["counting"](2, 7, 1)
    assert record.id == fresh.id and record.answer == fresh.answer
    assert all(np.array_equal(a, b) for a, b in zip(record.images, fresh.images))
    assert not any(image.flags.writeable for image in record.images)


def test_an_unhashable_generator_still_works():
    class Unhashable(CountingGenerator):
        __hash__ = None

    generate = Unhashable()
    source = GeneratedSource(generate, seed=0)
    assert source[1].id == source[1].id
    assert generate.calls == 2
