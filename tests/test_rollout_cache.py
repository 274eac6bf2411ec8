"""Rollouts that keep the KV cache between turns and read tokens back every few steps give the
trajectories of full prefills read back every token: the same ids, masks, turns and finishes,
greedy or sampled; the same log-probs up to rounding with the cache (the kept keys and values
were computed in other kernel calls; about 1e-6 here), bitwise without it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import drawenv  # noqa: E402
from agents.vlm.policy import (  # noqa: E402
    READ_EVERY,
    GenerationSettings,
    TurnCache,
    TurnInput,
    VLMPolicy,
    pick_tokens,
)
from agents.vlm.rollout import rollout  # noqa: E402
from agents.vlm.testing import tiny_model  # noqa: E402
from drawenv.actions import Box, Draw  # noqa: E402
from drawenv.env import DrawSpatialEnv  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"task": "counting", "max_turns": 4, "max_pixels": 168 * 168}
"""Small images (at most 36 image tokens each) keep a CPU rollout in the second range."""

FORMAT = drawenv.protocol.get_protocol("vilasr").format
DRAWINGS = [
    FORMAT(Draw([Box(1, (10, 10, 60, 60), "a")], thought="mark it")),
    FORMAT(Draw([Box(2, (20, 20, 80, 70), "b")], thought="again")),
    FORMAT(Draw([Box(3, (5, 30, 50, 90), "c")], thought="once more")),
]


class DrawingPolicy(VLMPolicy):
    """The tiny model, made to open turn ``t < drawings[e]`` of episode ``e`` with drawing
    ``t`` (a later turn draws nothing, which ends the episode) and to end every turn
    ``extra[e]`` sampled tokens later with the end-of-turn token, unless ``max_new_tokens`` cuts
    it first. It reads no tokens back (``generated.step`` is the turn's step), so reads may lag
    ``read_every`` steps. Episodes differ in turns, images, turn lengths and finishes, and most
    turns end before the last step, where the lagging reads decode past the end."""

    drawings = (0, 1, 2, 3, 2, 1)
    extra = (0, 3, 0, 9, 1, 30)

    def __init__(self, seed: int = 0):
        super().__init__(*tiny_model(seed=seed))
        self.scripts = [self.tokenizer(d, add_special_tokens=False)["input_ids"] for d in DRAWINGS]

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        tokens = pick_tokens(scores, generator=generator, settings=settings)
        step, end = generated.step, self.stop_token_ids[0]
        for row, (episode, turn) in enumerate(zip(episodes, turns)):
            script = self.scripts[turn] if turn < self.drawings[episode] else []
            if step < len(script):
                tokens[row] = script[step]
            elif step == len(script) + self.extra[episode]:
                tokens[row] = end
        return tokens


@pytest.fixture(scope="module")
def drawing(one_thread) -> DrawingPolicy:
    return DrawingPolicy()


def play(policy, settings, *, n=6, seed=4, max_tokens=None, **kwargs):
    envs = [DrawSpatialEnv(**SMALL) for _ in range(n)]
    return rollout(policy, envs, seed=seed, settings=settings, max_tokens=max_tokens, **kwargs)


def assert_same(first, second, *, logprobs_atol: float):
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
        assert a.turns == b.turns and a.termination == b.termination
        assert torch.equal(a.image_grid_thw, b.image_grid_thw)
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=logprobs_atol, rtol=0)


GREEDY = GenerationSettings(temperature=0, max_new_tokens=64)
SAMPLED = GenerationSettings(temperature=1.0, top_p=0.9, max_new_tokens=64)


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_kept_cache_writes_what_full_prefills_write(drawing, settings):
    full = play(drawing, settings, reuse_cache=False, read_every=1)
    assert [t.n_turns for t in full] == [1, 2, 3, 4, 3, 2]
    assert [len(t.images) for t in full] == [1, 2, 3, 4, 3, 2]
    finishes = {turn["finish"] for t in full for turn in t.turns}
    assert finishes == {"stop", "length"}
    for read_every in (1, 3, READ_EVERY):
        kept = play(drawing, settings, reuse_cache=True, read_every=read_every)
        assert_same(full, kept, logprobs_atol=1e-5)
    # Without the cache, lagging reads change nothing at all.
    lagging = play(drawing, settings, reuse_cache=False, read_every=READ_EVERY)
    assert_same(full, lagging, logprobs_atol=0)


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_recomputed_logprobs_of_cached_rollouts_equal_the_sampling_ones(drawing, settings):
    trajectories = play(drawing, settings, read_every=READ_EVERY)
    with torch.no_grad():
        recomputed = drawing.token_logprobs(trajectories)
    for t, logprobs in zip(trajectories, recomputed):
        torch.testing.assert_close(logprobs, t.logprobs, atol=1e-5, rtol=0)


def test_token_budget_ends_the_same_episodes_with_and_without_the_cache(drawing):
    full = play(drawing, GREEDY, reuse_cache=False, read_every=1)
    budget = len(full[3].ids) - 5  # the longest episode's last turn gets 5 of its 10 tokens
    cut = play(drawing, GREEDY, max_tokens=budget, reuse_cache=False, read_every=1)
    assert "max_tokens" in {t.termination for t in cut}
    assert any(turn["finish"] == "budget" for t in cut for turn in t.turns)
    assert all(len(t.ids) <= budget for t in cut)
    kept = play(drawing, GREEDY, max_tokens=budget, read_every=READ_EVERY)
    assert_same(cut, kept, logprobs_atol=1e-5)


class Recorder:
    """Counts what the model is given: pixel rows through the vision tower, prefill lengths."""

    def __init__(self, policy: VLMPolicy):
        self.pixel_rows, self.prefills = 0, []
        model = policy.model
        self.handles = [
            model.model.visual.register_forward_pre_hook(self.vision),
            model.register_forward_pre_hook(self.forward, with_kwargs=True),
        ]

    def vision(self, module, args):
        self.pixel_rows += int(args[0].shape[0])

    def forward(self, module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            self.prefills.append(tuple(kwargs["input_ids"].shape))

    def close(self):
        for handle in self.handles:
            handle.remove()


def test_only_new_tokens_and_new_images_are_prefilled(drawing):
    counts = {}
    for reuse in (False, True):
        recorder = Recorder(drawing)
        try:
            trajectories = play(drawing, GREEDY, reuse_cache=reuse, read_every=READ_EVERY)
        finally:
            recorder.close()
        counts[reuse] = recorder
    every_image_once = sum(int(t.pixel_values.shape[0]) for t in trajectories)
    assert counts[True].pixel_rows == every_image_once < counts[False].pixel_rows
    # One prefill a turn, of the episodes still playing; with the cache only the new part.
    full, kept = counts[False].prefills, counts[True].prefills
    assert [rows for rows, _ in kept] == [rows for rows, _ in full] == [6, 5, 3, 1]
    assert kept[0] == full[0] and all(k[1] < f[1] for k, f in zip(kept[1:], full[1:]))


class Recording(DrawingPolicy):
    """Records which episodes each turn's cache holds when ``generate`` is called."""

    def generate(self, sequences, *, cache=None, **kwargs):
        self.held.append(None if cache is None else list(cache.episodes))
        return super().generate(sequences, cache=cache, **kwargs)


def test_ended_episodes_leave_the_cache():
    policy = Recording()
    policy.held = []
    trajectories = play(policy, GREEDY, read_every=READ_EVERY)
    # Before each turn the cache holds the episodes of the last turn; then only those going on.
    assert policy.held == [[], [0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [2, 3, 4]]
    assert [t.n_turns for t in trajectories] == [1, 2, 3, 4, 3, 2]


def test_appended_positions_are_the_whole_sequences_positions(drawing):
    image = np.full((56, 112, 3), 90, dtype=np.uint8)
    first = drawing.prompt_segment("s", "q", [image])
    turn = drawing.tokenizer("look", add_special_tokens=False)["input_ids"]
    second = drawing.observation_segment("again", [image[:, :56], image], last_token=None)
    ids = first.ids + turn + second.ids
    grid = torch.cat([first.image_grid_thw, second.image_grid_thw])
    whole = drawing.positions(torch.tensor([ids]), torch.ones(1, len(ids)), grid)
    head = len(first.ids) + len(turn)
    start = whole[..., :head].amax(-1, keepdim=True) + 1
    new = torch.tensor([ids[head:]])
    part = drawing.positions(new, torch.ones_like(new), second.image_grid_thw) + start
    assert torch.equal(part, whole[..., head:])


CASES = {
    "stop-strings": (GenerationSettings(max_new_tokens=40, stop_strings=("ea", "</", "0")), 3.5, 4),
    "min-new-tokens": (GenerationSettings(max_new_tokens=24, min_new_tokens=10), 4.5, 5),
    "greedy": (GenerationSettings(temperature=0, max_new_tokens=30, stop_strings=("e",)), 0.0, 0),
}
FINISHES = {
    "stop-strings": {"stop", "stop_string", "length"},
    "min-new-tokens": {"stop", "length"},
    "greedy": {"stop_string", "length"},
}


@pytest.mark.parametrize("case", CASES)
def test_lagging_reads_keep_stop_strings_min_new_tokens_and_row_limits(case):
    settings, bias, seed = CASES[case]
    policy = VLMPolicy(*tiny_model(seed=2))
    end = policy.stop_token_ids[0]

    def likely_end(module, args, logits):  # rows stop on the end-of-turn token at varied steps
        logits[..., end] += bias

    policy.model.lm_head.register_forward_hook(likely_end)
    limits = [40, 7, 1, 19, 33, 12]
    prompts = [policy.prompt_segment("s", "q" * (1 + 5 * k), []).ids for k in range(len(limits))]
    inputs = [
        TurnInput(p, None, None, m, episode=k) for k, (p, m) in enumerate(zip(prompts, limits))
    ]

    def turn(read_every):
        generator = torch.Generator().manual_seed(seed)
        outputs = policy.generate(
            inputs, generator=generator, settings=settings, read_every=read_every
        )
        return outputs, generator.get_state()

    (reference, state), others = turn(1), [turn(k) for k in (2, 5, READ_EVERY, 64)]
    assert {o.finish for o in reference} == FINISHES[case]
    for outputs, other_state in others:
        assert [o.ids for o in outputs] == [o.ids for o in reference]
        assert [o.finish for o in outputs] == [o.finish for o in reference]
        assert [o.logprobs for o in outputs] == [o.logprobs for o in reference]
        assert torch.equal(other_state, state)  # the generator ends where a token loop leaves it
    for out, limit in zip(reference, limits):
        assert 1 <= len(out.ids) <= limit
        stops = [k for k, token in enumerate(out.ids) if token in policy.stop_token_ids]
        assert stops in ([], [len(out.ids) - 1]) and (out.finish == "stop") == bool(stops)
        assert not stops or stops[0] >= settings.min_new_tokens
        cut = len(out.ids) == limit and out.finish != "stop_string" and not stops
        assert (out.finish == "length") == cut
        if out.finish == "stop_string":
            text, shorter = (policy.tokenizer.decode(ids) for ids in (out.ids, out.ids[:-1]))
            assert any(s in text for s in settings.stop_strings)
            assert not any(s in shorter for s in settings.stop_strings)


class Counting(VLMPolicy):
    """Counts the calls of its hook (state of its own, like a generator per episode); every
    row ends on the end-of-turn token at step 10."""

    calls = 0

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        self.calls += 1
        tokens = pick_tokens(scores, generator=generator, settings=settings)
        return tokens.fill_(self.stop_token_ids[0]) if generated.step == 10 else tokens


def test_a_policy_with_its_own_hook_is_called_on_the_steps_of_a_token_loop():
    policy = Counting(*tiny_model(seed=0))
    prompts = [policy.prompt_segment("s", "q" * k, []) for k in (1, 9)]
    inputs = [TurnInput(p.ids, None, None, 40, episode=k) for k, p in enumerate(prompts)]
    calls = []
    for read_every in (None, 1, READ_EVERY):
        policy.calls = 0
        outputs = policy.generate(inputs, generator=torch.Generator(), read_every=read_every)
        assert [len(o.ids) for o in outputs] == [11, 11]
        calls.append(policy.calls)
    # Reads every 8 steps see the end at step 16: the hook ran 5 steps past the last token.
    assert calls == [11, 11, 16]


class Reading(VLMPolicy):
    """Looks at what each row wrote (a read back every step): row ``r`` ends once it has
    written ``3 + 4r`` tokens or more whose sum is odd."""

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        tokens = pick_tokens(scores, generator=generator, settings=settings)
        for row, done in enumerate(generated):
            if len(done) >= 3 + 4 * row and sum(done) % 2:
                tokens[row] = self.stop_token_ids[0]
        return tokens


def test_a_hook_that_reads_what_rows_wrote_sees_every_token_at_any_read_interval():
    policy = Reading(*tiny_model(seed=1))
    prompts = [policy.prompt_segment("s", "q" * k, []) for k in (1, 4, 9)]
    inputs = [TurnInput(p.ids, None, None, 30, episode=k) for k, p in enumerate(prompts)]
    runs = []
    for read_every in (1, READ_EVERY):
        generator = torch.Generator().manual_seed(3)
        runs.append(policy.generate(inputs, generator=generator, read_every=read_every))
    assert [o.finish for o in runs[0]] == ["stop"] * 3
    assert [[o.ids, o.finish, o.logprobs] for o in runs[0]] == [
        [o.ids, o.finish, o.logprobs] for o in runs[1]
    ]


def test_pick_tokens_draws_what_choose_tokens_draws():
    policy = VLMPolicy(*tiny_model(seed=0))
    scores = torch.log_softmax(
        torch.randn(5, policy.vocab_limit, generator=torch.Generator().manual_seed(0)) * 3, -1
    )
    for settings in (SAMPLED, GREEDY, GenerationSettings(top_p=0.5)):
        for seed in range(20):
            a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            chosen = policy.choose_tokens(
                scores, generator=a, settings=settings, episodes=[], turns=[], generated=[]
            )
            assert torch.equal(chosen, pick_tokens(scores, generator=b, settings=settings))
            assert torch.equal(a.get_state(), b.get_state())


def test_decoding_scores_are_the_policys_scores():
    """The device mask the scores use blocks exactly the rows past the tokenizer and the vision
    placeholders, as setting them to -inf one by one does."""
    policy = VLMPolicy(*tiny_model(seed=0))
    logits = torch.randn(3, policy.model.config.text_config.vocab_size)
    for temperature in (0.0, 0.7, 1.0):
        reference = logits.clone()
        reference[..., policy.vocab_limit :] = float("-inf")
        reference[..., policy.banned_token_ids] = float("-inf")
        expected = torch.log_softmax(reference / (temperature or 1.0), dim=-1)
        assert torch.equal(policy._scores(logits, temperature), expected)


def test_a_cache_refuses_sequences_it_does_not_hold():
    policy = VLMPolicy(*tiny_model(seed=0))
    prompt = policy.prompt_segment("s", "q", [])
    inputs = [TurnInput(prompt.ids, None, None, 4, episode=e) for e in (0, 1)]
    cache = TurnCache()
    settings = GenerationSettings(temperature=0, max_new_tokens=4)
    generate = policy.generate
    outputs = generate(inputs, generator=torch.Generator(), settings=settings, cache=cache)
    assert cache.episodes == [0, 1] and cache.lengths == [len(prompt.ids) + 3] * 2
    grown = [
        TurnInput(prompt.ids + o.ids, None, None, 4, episode=e) for e, o in zip((0, 1), outputs)
    ]
    with pytest.raises(ValueError, match=r"\[2\] not cached"):
        generate(
            [grown[0], TurnInput(grown[1].ids, None, None, 4, episode=2)],
            generator=torch.Generator(),
            settings=settings,
            cache=cache,
        )
    with pytest.raises(ValueError, match="to extend the"):
        generate(
            [TurnInput(prompt.ids, None, None, 4, episode=0)],
            generator=torch.Generator(),
            settings=settings,
            cache=cache,
        )
    with pytest.raises(ValueError, match="read_every >= 1"):
        generate(inputs, generator=torch.Generator(), settings=settings, read_every=0)
