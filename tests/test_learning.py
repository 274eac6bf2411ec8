"""GRPO and AP-GRPO learn: on the tiny random Qwen2.5-VL (CPU, fp32, one thread, fixed seed), each
raises the batch reward of a trivially learnable reward from about 0.3 to about 1 in 20 steps.

The episode is one token long (``max_new_tokens=1``, ``max_turns=1``), so the test fails when any
link of the learning signal breaks: advantages that are zero or have the wrong sign, a loss mask
that misses the generated token (shifted by one it covers none), or an optimiser that does not
step or ignores ``lr`` (AdamW's default 1e-3 learns nothing in 20 steps here)."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_train_grpo import make_assets, make_config

from agents.train.grpo import train_grpo
from agents.train.metrics import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


class LeadingSpaceReward:
    """1 when the model's text starts with a space, else 0.

    About a third of the tiny tokenizer's tokens are word pieces that start with one
    (``" whole"``, ``" label"``, …), so the random model earns about 0.3 per one-token episode,
    and a policy that puts its mass on those tokens earns 1.
    """

    def __call__(self, episode):
        reward = float("".join(episode.outputs).startswith(" "))
        return reward, {"accuracy": reward, "format": 1.0}


ARMS = {"grpo": {"advantage": "grpo"}, "ap_grpo": {"advantage": "ap_grpo", "alpha": 1.0}}
STEPS = 20
WINDOW = 3  # steps averaged at the start and at the end of a run
RISE = 0.3  # what the reward must gain; a run that does not learn moves by noise (~0.1)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """The tiny model and four-task dataset of ``test_train_grpo``."""
    return make_assets(tmp_path_factory.mktemp("learning"))


def train(assets: Path, out: Path, **arm) -> list[dict]:
    """The ``metrics.jsonl`` records of a run of the arm ``arm`` on :class:`LeadingSpaceReward`."""
    config = make_config(
        assets,
        out,
        **arm,
        steps=STEPS,
        lr=2e-2,
        lr_schedule="constant",
        warmup_steps=0,
        seed=0,
        prompts_per_step=2,
        group_size=4,
        micro_batch=8,
        ppo_epochs=1,
        max_turns=1,
        max_new_tokens=1,
        freeze_vision=True,
    )
    train_grpo(config, reward=LeadingSpaceReward())
    return read_metrics(out / "metrics.jsonl")


def test_grpo_and_ap_grpo_raise_a_learnable_reward(assets, tmp_path):
    logs = {name: train(assets, tmp_path / name, **arm) for name, arm in ARMS.items()}
    assert [len(log) for log in logs.values()] == [STEPS] * len(ARMS)
    grpo, ap_grpo = logs.values()
    # The first batch is sampled before any update: the seed alone fixes it, whatever the arm.
    for key in ("rollout/reward_mean", "rollout/entropy"):
        assert grpo[0][key] == ap_grpo[0][key]
    curves = {name: [r["rollout/reward_mean"] for r in log] for name, log in logs.items()}
    ends = {name: (mean(curve[:WINDOW]), mean(curve[-WINDOW:])) for name, curve in curves.items()}
    assert all(end >= start + RISE for start, end in ends.values()), (ends, curves)
