"""Batched multi-turn rollouts with a tiny random Qwen2.5-VL: records, mask, log-probs, seeds."""

from __future__ import annotations

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import drawenv  # noqa: E402
from agents.evaluate import format_table, summarise  # noqa: E402
from agents.viewer import write_viewer  # noqa: E402
from agents.vlm.evaluate import evaluate_vlm, format_pass_table, pass_at_k, pass_rates  # noqa: E402
from agents.vlm.policy import GenerationSettings, VLMPolicy  # noqa: E402
from agents.vlm.rollout import rollout  # noqa: E402
from agents.vlm.testing import tiny_model  # noqa: E402
from drawenv.actions import Answer, Box, Draw  # noqa: E402
from drawenv.env import DrawSpatialEnv  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = {"task": "counting", "max_turns": 3, "max_pixels": 168 * 168}
"""Small images (at most 36 image tokens each) keep a CPU rollout in the second range."""


class ScriptedPolicy(VLMPolicy):
    """The tiny model, made to write given texts: episode ``e``'s turn ``t`` is
    ``scripts[e][t]``; a text ending in ``…`` is cut by ``max_new_tokens`` (no end token)."""

    def __init__(self, scripts, **kwargs):
        super().__init__(*tiny_model(seed=1), **kwargs)
        self.scripts = scripts

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        picks = []
        for episode, turn, done in zip(episodes, turns, generated):
            text = self.scripts[episode][min(turn, len(self.scripts[episode]) - 1)]
            ids = self.tokenizer(text.rstrip("…"), add_special_tokens=False)["input_ids"]
            ids = ids if text.endswith("…") else [*ids, self.stop_token_ids[0]]
            filler = self.tokenizer(" ", add_special_tokens=False)["input_ids"][0]
            picks.append(ids[len(done)] if len(done) < len(ids) else filler)
        return torch.tensor(picks, device=scores.device)


FORMAT = drawenv.protocol.get_protocol("vilasr").format
DRAW_1 = FORMAT(Draw([Box(1, (10, 10, 60, 60), "a")], thought="mark it"))
DRAW_2 = FORMAT(Draw([Box(2, (20, 20, 80, 70), "b")], thought="again"))
DRAW_3 = FORMAT(Draw([Box(3, (5, 30, 50, 90), "c")], thought="once more"))
ANSWER = FORMAT(Answer("3", thought="three"))
SCRIPTS = [[ANSWER], [DRAW_1, ANSWER], [DRAW_1, DRAW_2, ANSWER], [DRAW_1 + "…", DRAW_2, DRAW_3]]


@pytest.fixture(scope="module")
def policy(one_thread) -> VLMPolicy:
    return VLMPolicy(*tiny_model(seed=0), GenerationSettings(max_new_tokens=12))


@pytest.fixture(scope="module")
def scripted(one_thread) -> tuple[ScriptedPolicy, list]:
    tokenizer = ScriptedPolicy([[]]).tokenizer
    cut = max(len(tokenizer(text)["input_ids"]) for text in (DRAW_1, DRAW_2, DRAW_3, ANSWER)) + 2
    policy = ScriptedPolicy(SCRIPTS, settings=GenerationSettings(max_new_tokens=cut))
    envs = [DrawSpatialEnv(**SMALL) for _ in SCRIPTS]
    return policy, rollout(policy, envs, seed=5)


def runs(mask: torch.Tensor) -> list[slice]:
    """The index ranges where ``mask`` is 1."""
    flags, out, start = [*mask.tolist(), 0], [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append(slice(start, i))
            start = None
    return out


def test_batched_rollout_of_four_envs_gives_consistent_records(policy):
    envs = [DrawSpatialEnv(**SMALL) for _ in range(4)]
    trajectories = rollout(policy, envs, seed=0)
    assert [t.env_index for t in trajectories] == [0, 1, 2, 3]
    for t in trajectories:
        assert len(t.ids) == len(t.mask) == len(t.logprobs)
        assert 1 <= t.n_turns <= 3 and t.termination
        assert t.n_generated == sum(turn["n_tokens"] for turn in t.turns)
        assert torch.all(t.logprobs[t.mask == 0] == 0)
        assert torch.all(t.logprobs[t.mask == 1] < 0)
        assert t.image_grid_thw.shape[0] == len(t.images) and t.task_id


def test_scripted_episodes_end_after_their_own_number_of_turns(scripted):
    _, trajectories = scripted
    assert [t.n_turns for t in trajectories] == [1, 2, 3, 3]
    assert [t.termination for t in trajectories] == ["answer", "answer", "answer", "max_turns"]
    assert [len(t.images) for t in trajectories] == [1, 2, 3, 3]
    assert trajectories[3].turns[0]["finish"] == "length"
    assert trajectories[2].turns[1]["new_images"] == [3]


def test_mask_marks_exactly_the_generated_tokens(scripted):
    policy, trajectories = scripted
    decode = policy.tokenizer.decode
    for t in trajectories:
        spans = runs(t.mask)
        assert len(spans) == t.n_turns
        for span, turn, script in zip(spans, t.turns, SCRIPTS[t.env_index]):
            assert decode(t.ids[span], skip_special_tokens=True) == turn["text"]
            assert turn["text"].startswith(script.rstrip("…"))
            ended = int(t.ids[span][-1]) in policy.stop_token_ids
            assert ended == (turn["finish"] == "stop")
        # Everything else is the env's: the template, the prompt, observations and images.
        outside = decode(t.ids[t.mask == 0])
        assert t.prompt in outside and t.system_prompt in outside
        for turn in t.turns[:-1]:
            assert turn["message"] in outside
        assert not torch.any((t.ids == policy.image_token_id) & (t.mask == 1))
    # The cut turn got the template's closing inserted by the env side, unmasked.
    cut = trajectories[3]
    end = runs(cut.mask)[0].stop
    assert decode(cut.ids[end : end + 2]) == "<|im_end|>\n" and cut.mask[end] == 0


@pytest.mark.parametrize("which", ["sampled", "scripted"])
def test_recomputed_logprobs_equal_sampling_logprobs(policy, scripted, which):
    if which == "sampled":
        envs = [DrawSpatialEnv(**SMALL) for _ in range(3)]
        trajectories = rollout(policy, envs, seed=11)
    else:
        policy, trajectories = scripted
    with torch.no_grad():
        recomputed = policy.token_logprobs(trajectories)
    for t, logprobs in zip(trajectories, recomputed):
        torch.testing.assert_close(logprobs, t.logprobs, atol=1e-5, rtol=0)


def test_same_seed_gives_the_same_trajectories(policy):
    def play(seed):
        return rollout(policy, [DrawSpatialEnv(**SMALL) for _ in range(2)], seed=seed)

    first, again, other = play(3), play(3), play(4)
    for a, b in zip(first, again):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.logprobs, b.logprobs)
        assert a.turns == b.turns and a.reward == b.reward
    assert any(not torch.equal(a.ids, c.ids) for a, c in zip(first, other))


def test_token_budget_ends_episodes_with_max_tokens():
    scripted = ScriptedPolicy([[DRAW_1, DRAW_2, ANSWER]], settings=GenerationSettings())
    full = rollout(scripted, [DrawSpatialEnv(**SMALL)], seed=2)[0]
    assert full.termination == "answer"
    for budget in (len(full.ids) - 3, runs(full.mask)[1].start + 2):
        t = rollout(scripted, [DrawSpatialEnv(**SMALL)], seed=2, max_tokens=budget)[0]
        assert t.termination == "max_tokens" and t.reward == 0.0
        assert len(t.ids) <= budget


def test_vector_env_gives_the_same_trajectories_as_a_list(policy):
    vector = gym.vector.SyncVectorEnv([lambda: DrawSpatialEnv(**SMALL) for _ in range(2)])
    from_vector = rollout(policy, vector, seed=7)
    from_list = rollout(policy, [DrawSpatialEnv(**SMALL) for _ in range(2)], seed=7)
    vector.close()
    for a, b in zip(from_vector, from_list):
        assert torch.equal(a.ids, b.ids) and a.termination == b.termination


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (4, 1, 1, 0.25),
        (4, 1, 4, 1.0),
        (4, 2, 2, 5 / 6),
        (5, 0, 3, 0.0),
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_table_has_one_column_per_distinct_pass_rate():
    row = {"agent": "vlm", "suite": "counting", "tasks": 4, "pass@1": 0.25, "pass@3": 0.5}
    single = format_pass_table([row], 1).splitlines()
    assert single[0].split() == ["agent", "suite", "tasks", "pass@1"]
    assert single[2].split() == ["vlm", "counting", "4", "0.250"]
    double = format_pass_table([row], 3).splitlines()
    assert double[0].split() == ["agent", "suite", "tasks", "pass@1", "pass@3"]
    assert double[2].split() == ["vlm", "counting", "4", "0.250", "0.500"]


def test_vlm_eval_records_feed_the_summary_and_the_viewer(policy, tmp_path):
    results = evaluate_vlm(policy, episodes=2, k=2, image_dir=tmp_path / "images", **SMALL)
    assert [(r["task"], r["sample"]) for r in results] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all((tmp_path / r["images"][0]).is_file() for r in results)
    assert "counting" in format_table(summarise(results))
    rows = pass_rates(results, 2)
    assert rows[0]["tasks"] == 2 and "pass@2" in format_pass_table(rows, 2)
    assert write_viewer(results, tmp_path / "index.html", base_dir=tmp_path).is_file()
