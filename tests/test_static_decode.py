"""Static decoding (a StaticCache of fixed length, on CUDA a captured step) writes what eager
decoding on the growing cache writes: the same ids, masks, turns and finishes, greedy or
sampled, with and without the kept cache, and log-probs within float32 rounding (the static
step's attention sums run over the whole fixed cache). Captured steps are reused by later turns
and calls, bounded in number, and dropped when the parameters' storage changes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.vlm import static_decode  # noqa: E402
from agents.vlm.policy import GenerationSettings, VLMPolicy  # noqa: E402
from agents.vlm.static_decode import CAPACITY_STEP, KEPT_STEPS, row_bucket  # noqa: E402
from agents.vlm.testing import tiny_model  # noqa: E402
from tests.test_rollout_cache import GREEDY, SAMPLED, DrawingPolicy, assert_same, play  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FREE = GenerationSettings(temperature=1.0, max_new_tokens=24)


def pair(cls, *args):
    """The same model twice, decoding eagerly and statically."""
    eager, static = cls(*args), cls(*args)
    eager.decode, static.decode = "eager", "static"
    return eager, static


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
@pytest.mark.parametrize("reuse_cache", [True, False], ids=["kept-cache", "full-prefill"])
def test_static_decoding_writes_what_eager_decoding_writes(settings, reuse_cache):
    # Episodes of 1-4 turns, turns ended by the end-of-turn token or by max_new_tokens, six
    # rows decoded in a step built for eight: every path through a turn's bookkeeping.
    eager, static = pair(DrawingPolicy)
    for read_every in (1, 8):
        first = play(eager, settings, reuse_cache=reuse_cache, read_every=read_every)
        second = play(static, settings, reuse_cache=reuse_cache, read_every=read_every)
        assert [t.n_turns for t in first] == [1, 2, 3, 4, 3, 2]
        assert_same(first, second, logprobs_atol=1e-5)


def test_a_free_running_model_writes_the_same_tokens_statically():
    # No scripted tokens: every token is the model's own draw from the static step's logits.
    eager, static = pair(VLMPolicy, *tiny_model(seed=3))
    first, second = play(eager, FREE, seed=7), play(static, FREE, seed=7)
    # A random model writes no action: one turn of 24 tokens an episode, varied tokens.
    assert [t.n_generated for t in first] == [24] * 6
    assert len({int(i) for t in first for i in t.ids[t.mask.bool()]}) > 50
    assert_same(first, second, logprobs_atol=1e-5)


def test_rows_are_bucketed_to_powers_of_two():
    assert [row_bucket(n) for n in (1, 2, 3, 5, 8, 9, 64, 65, 128)] == [
        1,
        2,
        4,
        8,
        8,
        16,
        64,
        128,
        128,
    ]


def test_steps_are_kept_per_shape_bounded_and_reused(monkeypatch):
    _, static = pair(DrawingPolicy)
    play(static, GREEDY)
    steps = dict(static._static.steps)
    assert 1 <= len(steps) <= KEPT_STEPS
    for rows, capacity, position_dims, autocast in steps:
        assert rows in (1, 2, 4, 8) and capacity % CAPACITY_STEP == 0
        assert position_dims == (3,) and autocast is None  # Qwen's 3-D rotary positions
    play(static, GREEDY)  # the same episodes again: the same steps, no new ones
    assert {k: id(v) for k, v in static._static.steps.items()} == {
        k: id(v) for k, v in steps.items()
    }
    monkeypatch.setattr(static_decode, "KEPT_STEPS", 1)
    play(static, GREEDY)
    assert len(static._static.steps) == 1


def test_new_parameter_storage_drops_the_steps():
    eager, static = pair(DrawingPolicy)
    play(static, GREEDY)
    before = list(static._static.steps.values())
    for model in (eager.model, static.model):  # new storage, new values: both models alike
        for parameter in model.parameters():
            parameter.data = parameter.data * 1.5
    second = play(static, GREEDY)
    assert not any(step in before for step in static._static.steps.values())
    assert_same(play(eager, GREEDY), second, logprobs_atol=1e-5)


def test_auto_decodes_statically_only_on_cuda():
    policy = VLMPolicy(*tiny_model())
    assert policy.decode == "auto"
    play(policy, FREE, n=2)
    assert policy._static is None  # the CPU decodes eagerly


def test_a_wrong_decode_mode_names_the_argument():
    with pytest.raises(ValueError, match=r"decode in \('auto', 'static', 'eager'\), got 'graph'"):
        VLMPolicy(*tiny_model(), decode="graph")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_captured_step_on_cuda_writes_what_eager_decoding_writes():
    eager, static = pair(DrawingPolicy)
    for policy in (eager, static):
        policy.model.to("cuda")
    for settings in (GREEDY, SAMPLED):
        assert_same(play(eager, settings), play(static, settings), logprobs_atol=1e-4)
    assert all(step.graph is not None for step in static._static.steps.values())
