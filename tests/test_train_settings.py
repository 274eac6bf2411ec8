"""Every trainer setting that reaches the math is checked against the math.

Each test runs the real GRPO or SFT trainer on the tiny model for a step or two and compares what
it logged (``metrics.jsonl``, ``rollouts.jsonl``, the checkpoint) with values computed here from
the config and the logged rewards: an ignored or miswired setting changes the logged value.

The GRPO runs use a tiny model whose end-of-turn logit is scaled up, so its turns end after
different numbers of tokens: the loss normalisations (per sequence, per token, constant) then
give different values, and a wrongly weighted micro-batch shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.train.checkpoint import STATE_FILE, latest_checkpoint  # noqa: E402
from agents.train.grpo import make_envs, train_grpo  # noqa: E402
from agents.train.losses import group_advantages  # noqa: E402
from agents.train.metrics import read_metrics  # noqa: E402
from agents.train.optim import lr_factor  # noqa: E402
from agents.vlm.testing import tiny_model  # noqa: E402
from tests.test_train_grpo import LengthReward, make_assets, make_config, weights  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

STOP_SCALE = 60.0
"""How much the end-of-turn token's output row is scaled: turns of 2 to 12 tokens."""


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """The GRPO tests' tiny model and four-task dataset."""
    return make_assets(tmp_path_factory.mktemp("settings"))


@pytest.fixture(scope="module")
def stoppy(assets) -> Path:
    """A tiny model that ends its turns after varying numbers of tokens."""
    model, processor = tiny_model(seed=0)
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        model.lm_head.weight[end] *= STOP_SCALE
    path = assets / "stoppy"
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def run(assets: Path, stoppy: Path, out: Path, *, scripted: bool = True, **overrides):
    """Train (with the scripted :class:`LengthReward`, or with ``scripted=False`` the config's
    own reward preset), then return (config, metrics lines, rollouts lines)."""
    settings = {
        "prompts_per_step": 2,
        "group_size": 4,
        "micro_batch": 8,
        "max_new_tokens": 12,
        "log_rollouts": True,
    }
    config = make_config(assets, out, **(settings | overrides))
    config.model = str(stoppy)
    train_grpo(config, reward=LengthReward() if scripted else None)
    return config, read_metrics(out / "metrics.jsonl"), read_metrics(out / "rollouts.jsonl")


def steps_of(rollouts: list[dict], step: int) -> list[dict]:
    return [r for r in rollouts if r["step"] == step]


# -- advantages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"advantage": "ap_grpo", "alpha": 0.5, "reward_scale": "group"},
        {"advantage": "ap_grpo_mul", "alpha": 2.0, "reward_scale": "batch"},
        {"advantage": "grpo", "reward_scale": "none"},
        {"loss_type": "dr_grpo"},  # reward_scale resolves to "none"
        {"advantage": "ap_grpo", "alpha": 0.0},
    ],
)
def test_logged_advantages_are_the_configs(assets, stoppy, tmp_path, overrides):
    config, metrics, rollouts = run(assets, stoppy, tmp_path / "run", **overrides)
    rewards = torch.tensor([r["reward"] for r in rollouts])
    expected = group_advantages(
        rewards,
        config.group_size,
        kind=config.advantage,
        alpha=config.alpha,
        scale=config.reward_scale,
    )
    assert len(set(rewards.tolist())) > 1  # the rewards vary, so every setting shows
    got = torch.tensor([r["advantage"] for r in rollouts])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert metrics[0]["train/advantage_mean"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert metrics[0]["train/advantage_max"] == pytest.approx(float(expected.max()), abs=1e-6)


def test_groups_share_their_prompt(assets, stoppy, tmp_path):
    config, _, rollouts = run(assets, stoppy, tmp_path / "run", steps=2)
    for step in (1, 2):
        rows = steps_of(rollouts, step)
        assert len(rows) == config.prompts_per_step * config.group_size
        for p in range(config.prompts_per_step):
            group = [r for r in rows if r["prompt"] == p]
            assert [r["sample"] for r in group] == list(range(config.group_size))
            assert len({(r["task_index"], r["seed"]) for r in group}) == 1


# -- the loss and its micro-batches -------------------------------------------------------------


def first_epoch_loss(config, rollouts: list[dict]) -> float:
    """The clipped loss at ratio 1 (the first epoch's only pass): every generated token's
    objective is its trajectory's advantage, so the loss is a weighted sum of advantages."""
    a = [r["advantage"] for r in rollouts]
    n = [r["generated"] for r in rollouts]
    b = len(rollouts)
    if config.loss_type == "grpo":  # mean over each trajectory's tokens, then over trajectories
        return -sum(ai for ai, ni in zip(a, n) if ni) / b
    if config.loss_type == "dr_grpo":  # a constant normaliser
        return -sum(ai * ni for ai, ni in zip(a, n)) / (b * config.max_tokens)
    return -sum(ai * ni for ai, ni in zip(a, n)) / sum(n)  # dapo: mean over every token


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("micro_batch", [8, 2, 1])
def test_first_epoch_loss_is_the_configs_normalisation(
    assets, stoppy, tmp_path, loss_type, micro_batch
):
    config, metrics, rollouts = run(
        assets,
        stoppy,
        tmp_path / "run",
        loss_type=loss_type,
        micro_batch=micro_batch,
        advantage="ap_grpo",  # non-zero mean advantages: every normalisation gives another value
        reward_scale="group",
    )
    assert len({r["generated"] for r in rollouts}) > 2  # uneven micro-batches
    assert metrics[0]["loss/policy"] == pytest.approx(first_epoch_loss(config, rollouts), abs=1e-6)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_micro_batches_give_the_full_batch_gradient(assets, stoppy, tmp_path, loss_type):
    logs = {}
    for micro_batch in (1, 8):
        _, metrics, _ = run(
            assets,
            stoppy,
            tmp_path / str(micro_batch),
            loss_type=loss_type,
            micro_batch=micro_batch,
        )
        logs[micro_batch] = metrics[0]
    assert logs[1]["train/grad_norm"] == pytest.approx(logs[8]["train/grad_norm"], rel=1e-4)
    assert logs[1]["loss/policy"] == pytest.approx(logs[8]["loss/policy"], abs=1e-6)
    # AdamW's first step moves each weight by about lr * sign(gradient): an element whose
    # gradient is within rounding of 0 may go either way (1 and 2 of 265,440 here). Micro-batches
    # weighted wrongly turn the sign of many.
    one, eight = weights(tmp_path / "1" / "final"), weights(tmp_path / "8" / "final")
    moved = {name: int(((one[name] - eight[name]).abs() > 1e-5).sum()) for name in one}
    assert sum(moved.values()) <= sum(t.numel() for t in one.values()) // 10_000, moved


def test_clip_range_reaches_the_second_epoch(assets, stoppy, tmp_path):
    """At ratio 1 nothing is clipped. In the second epoch, with ratios that moved by far less than
    the default range of 0.2, a zero range on one side clips exactly the tokens whose ratio moved
    the way their advantage pushes on that side, and a huge range clips none."""
    clipped = {}
    for name, eps_low, eps_high in [
        ("low", 0.0, 100.0),
        ("high", 0.99, 0.0),
        ("none", 0.99, 100.0),
    ]:
        _, metrics, _ = run(
            assets,
            stoppy,
            tmp_path / name,
            ppo_epochs=2,
            eps_low=eps_low,
            eps_high=eps_high,
            lr=1e-4,
        )
        assert metrics[0]["loss/clip_fraction_epoch1"] == 0.0
        clipped[name] = metrics[0]["loss/clip_fraction_epoch2"]
    assert clipped["low"] > 0.05  # A < 0 tokens whose probability fell
    assert clipped["high"] > 0.05  # A > 0 tokens whose probability rose
    assert clipped["none"] == 0.0


def test_kl_term_follows_beta(assets, stoppy, tmp_path):
    _, plain, _ = run(assets, stoppy, tmp_path / "plain", ppo_epochs=2)
    _, kl, _ = run(assets, stoppy, tmp_path / "kl", ppo_epochs=2, beta=0.5)
    assert "loss/kl" not in plain[0]
    # The first pass scores the start itself (KL 0, zero gradient): both runs take the same
    # first update, and only the second epoch's loss carries the KL term.
    assert kl[0]["loss/kl_epoch1"] == 0.0
    assert kl[0]["loss/kl_epoch2"] > 0.0
    assert kl[0]["loss/ratio_mean_epoch2"] == pytest.approx(plain[0]["loss/ratio_mean_epoch2"])
    assert kl[0]["loss/policy"] != pytest.approx(plain[0]["loss/policy"], abs=1e-9)


def test_ppo_epochs_passes(assets, stoppy, tmp_path):
    _, metrics, _ = run(assets, stoppy, tmp_path / "run", ppo_epochs=3)
    assert {"loss/ratio_mean_epoch1", "loss/ratio_mean_epoch3"} <= set(metrics[0])
    assert "loss/ratio_mean_epoch4" not in metrics[0]
    assert metrics[0]["loss/ratio_mean_epoch1"] == 1.0
    assert metrics[0]["loss/ratio_mean_epoch3"] != 1.0


# -- the optimiser and its schedule -------------------------------------------------------------


def test_lr_follows_warmup_and_schedule_over_all_updates(assets, stoppy, tmp_path):
    config, metrics, _ = run(
        assets,
        stoppy,
        tmp_path / "run",
        steps=3,
        ppo_epochs=2,
        warmup_steps=2,
        lr_schedule="linear",
        lr=4e-3,
    )
    total = config.steps * config.ppo_epochs
    # train/lr is the rate after the step's updates: 2 per step here.
    expected = [
        4e-3 * lr_factor(2 * s, warmup_steps=2, total_steps=total, schedule="linear")
        for s in (1, 2, 3)
    ]
    assert [m["train/lr"] for m in metrics] == pytest.approx(expected, rel=1e-12)


def test_optimizer_gets_lr_and_weight_decay(assets, stoppy, tmp_path):
    run(assets, stoppy, tmp_path / "run", lr=3e-3, weight_decay=0.25, save_every=1)
    state = torch.load(
        latest_checkpoint(tmp_path / "run") / STATE_FILE, map_location="cpu", weights_only=True
    )
    groups = state["optimizer"]["param_groups"]
    # Matrices decay, biases and norms (1-D) do not.
    assert [g["weight_decay"] for g in groups] == [0.25, 0.0]
    assert [g["initial_lr"] for g in groups] == [3e-3, 3e-3]


def test_max_grad_norm_clips_the_update(assets, stoppy, tmp_path):
    start = weights(stoppy)
    moved = {}
    for name, norm in [("default", 1.0), ("tiny", 1e-12)]:
        run(assets, stoppy, tmp_path / name, max_grad_norm=norm, lr=1e-3)
        end = weights(tmp_path / name / "final")
        moved[name] = max(float((end[k] - start[k]).abs().max()) for k in start)
    # Adam's first update is about lr per weight; a gradient clipped far below Adam's eps
    # (1e-8) moves nothing visibly.
    assert moved["default"] > 5e-4
    assert moved["tiny"] < 1e-6


# -- sampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{"temperature": 1e-4}, {"top_p": 1e-6}])
def test_near_greedy_sampling_makes_groups_identical(assets, stoppy, tmp_path, overrides):
    _, free, free_rollouts = run(assets, stoppy, tmp_path / "free")
    _, sharp, sharp_rollouts = run(assets, stoppy, tmp_path / "sharp", **overrides)
    assert free[0]["rollout/zero_std_groups"] < 1.0
    assert sharp[0]["rollout/zero_std_groups"] == 1.0
    for p in (0, 1):
        lengths = {r["generated"] for r in sharp_rollouts if r["prompt"] == p}
        assert len(lengths) == 1


def test_token_budgets_reach_the_rollouts(assets, stoppy, tmp_path):
    config, _, rollouts = run(assets, stoppy, tmp_path / "run", max_new_tokens=5, max_turns=1)
    assert max(r["generated"] for r in rollouts) == 5
    assert all(r["turns"] == 1 for r in rollouts)
    envs = make_envs(config, _policy(stoppy), 1)
    assert envs[0].max_turns == 1


def _policy(path: Path):
    from agents.vlm.policy import VLMPolicy

    return VLMPolicy.from_pretrained(path)


# -- a real reward preset -----------------------------------------------------------------------


def test_snra_preset_its_parameters_and_the_progress_reach_the_reward(assets, stoppy, tmp_path):
    """No scripted reward: the env pays the config's ``snra`` preset with its ``reward_kwargs``,
    at the progress the trainer hands the envs (step / steps)."""
    _, metrics, _ = run(
        assets,
        stoppy,
        tmp_path / "run",
        scripted=False,
        reward="snra",
        steps=2,
        reward_kwargs={"k_min": 3.0, "k_max": 7.0},
    )
    # Linear schedule: k = 3 + 4 t, t = 0 then 0.5.
    assert [m["rollout/reward_k"] for m in metrics] == [3.0, 5.0]
    assert all("rollout/reward_format" in m for m in metrics)


# -- SFT ----------------------------------------------------------------------------------------


def test_sft_lr_schedule_and_optimizer(tmp_path):
    from agents.train.config import SFTConfig
    from agents.train.sft import train_sft
    from agents.train.sft_data import export_sft
    from agents.vlm.testing import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    data, _ = export_sft(
        ["counting"], episodes=4, out=str(tmp_path / "d" / "sft.jsonl"), max_pixels=12544
    )
    config = SFTConfig(
        model=str(model),
        data=str(data),
        output_dir=str(tmp_path / "sft"),
        steps=4,
        lr=2e-3,
        warmup_steps=1,
        lr_schedule="cosine",
        weight_decay=0.5,
        save_every=2,
        device="cpu",
        dtype="float32",
        shuffle=False,
    )
    train_sft(config)
    lines = [m for m in read_metrics(tmp_path / "sft" / "metrics.jsonl") if "train/lr" in m]
    # train/lr is the rate the step used: the factor of the updates made before it.
    expected = [
        2e-3 * lr_factor(k, warmup_steps=1, total_steps=4, schedule="cosine") for k in range(4)
    ]
    assert [m["train/lr"] for m in lines] == pytest.approx(expected, rel=1e-12)
    state = torch.load(
        latest_checkpoint(tmp_path / "sft") / STATE_FILE, map_location="cpu", weights_only=True
    )
    assert [g["weight_decay"] for g in state["optimizer"]["param_groups"]] == [0.5, 0.0]
    assert (
        json.loads((tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()[0])[
            "train/total_steps"
        ]
        == 4
    )


# -- reflective rejection sampling --------------------------------------------------------------


def reflect(assets: Path, stoppy: Path, out: Path, **overrides) -> list[dict]:
    """Run ``drawenv train reflect``'s stage on the varying-length model; its samples.jsonl."""
    from agents.train.config import ReflectConfig
    from agents.train.reflect import run_reflect

    settings = {
        "model": str(stoppy),
        "task": str(assets / "tasks.jsonl"),
        "output_dir": str(out),
        "tasks": 2,
        "k": 4,
        "batch_size": 8,
        "max_new_tokens": 12,
        "max_turns": 2,
        "max_tokens": 1024,
        "seed": 5,
        "device": "cpu",
        "dtype": "float32",
        "log_samples": True,
    }
    run_reflect(ReflectConfig(**(settings | overrides)))
    return read_metrics(out / "samples.jsonl")


def test_reflect_samples_follow_seed_and_turn_budgets(assets, stoppy, tmp_path):
    free = reflect(assets, stoppy, tmp_path / "free")
    assert [(s["task"], s["sample"]) for s in free] == [(i, j) for i in (0, 1) for j in range(4)]
    assert [s["seed"] for s in free] == [5] * 4 + [6] * 4  # task i: seed + i
    longest = max(max(s["turn_tokens"]) for s in free)
    assert longest > 5  # so the budget below cuts turns
    short = reflect(assets, stoppy, tmp_path / "short", max_new_tokens=5, max_turns=1)
    assert {len(s["turn_tokens"]) for s in short} == {1}
    assert max(s["turn_tokens"][0] for s in short) == 5


def test_reflect_episode_token_budget(assets, stoppy, tmp_path):
    free = reflect(assets, stoppy, tmp_path / "free", max_tokens=1024)
    assert "max_tokens" not in {s["termination"] for s in free}
    # The prompt (system text, one 56x56 image, question) alone is a few hundred tokens: a budget
    # just above it leaves room for a few tokens of the first turn only.
    capped = reflect(assets, stoppy, tmp_path / "capped", max_tokens=_prompt_tokens(assets) + 3)
    assert "max_tokens" in {s["termination"] for s in capped}
    assert max(sum(s["turn_tokens"]) for s in capped) <= 3


@pytest.mark.parametrize("overrides", [{"temperature": 1e-4}, {"top_p": 1e-6}])
def test_reflect_near_greedy_sampling_makes_a_tasks_samples_identical(
    assets, stoppy, tmp_path, overrides
):
    def distinct(samples: list[dict], task: int) -> int:
        return len({tuple(s["turn_tokens"]) for s in samples if s["task"] == task})

    free = reflect(assets, stoppy, tmp_path / "free")
    sharp = reflect(assets, stoppy, tmp_path / "sharp", **overrides)
    assert max(distinct(free, t) for t in (0, 1)) > 1
    assert [distinct(sharp, t) for t in (0, 1)] == [1, 1]


def _prompt_tokens(assets: Path) -> int:
    """Tokens of the longest task prompt as the policy builds it, before the model writes."""
    from agents.vlm.rollout import policy_env

    policy = _policy(assets / "tiny")
    env = policy_env(policy, task=str(assets / "tasks.jsonl"), max_turns=1)
    lengths = []
    for index in (0, 1):
        obs, info = env.reset(seed=5 + index, options={"index": index})
        segment = policy.prompt_segment(info["system_prompt"], obs["text"], obs["images"])
        lengths.append(len(segment.ids))
    return max(lengths)
