"""The GRPO trainer on a tiny random Qwen2.5-VL (CPU, fp32): one step learns and logs every
metric, the first ratio is 1, resume is exact, DDP over two gloo ranks equals one process,
AP-GRPO keeps the gradient of a constant-reward group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from safetensors.torch import load_file  # noqa: E402

from agents.train.checkpoint import latest_checkpoint, write_atomically  # noqa: E402
from agents.train.config import GRPOConfig  # noqa: E402
from agents.train.grpo import (  # noqa: E402
    GroupSampledPolicy,
    counter_uniform,
    episode_seed,
    sample_prompts,
    train_grpo,
)
from agents.train.metrics import (  # noqa: E402
    correlation,
    eval_metrics,
    plot_metrics,
    read_metrics,
    rollout_metrics,
)
from agents.vlm.policy import GenerationSettings  # noqa: E402
from agents.vlm.testing import save_tiny_model, tiny_model  # noqa: E402
from drawenv.tasks import RecordSource  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


ROOT = Path(__file__).resolve().parents[1]


class LengthReward:
    """A scripted reward that varies with what the model wrote (so groups have signal)."""

    def __call__(self, episode):
        reward = (sum(len(text) for text in episode.outputs) % 7) / 6
        return reward, {"accuracy": reward, "format": 1.0}


class ConstantReward:
    """Every episode earns the same non-zero reward: a group without relative signal."""

    def __call__(self, episode):
        return 0.5, {"accuracy": 0.5, "format": 1.0}


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """A saved tiny model and a four-task JSONL dataset of 56x56 images (4 image tokens)."""
    return make_assets(tmp_path_factory.mktemp("grpo"))


def make_assets(root: Path) -> Path:
    """Write :func:`assets`' tiny model and dataset into ``root``."""
    save_tiny_model(root / "tiny")
    (root / "img").mkdir()
    with open(root / "tasks.jsonl", "w", encoding="utf-8") as file:
        for i in range(4):
            Image.new("RGB", (56, 56), (50 * i, 90, 200)).save(root / "img" / f"{i}.png")
            record = {
                "id": f"t{i}",
                "images": [f"img/{i}.png"],
                "question": "How many shapes?",
                "answer_type": "count",
                "answer": i + 1,
            }
            file.write(json.dumps(record) + "\n")
    return root


def make_config(assets: Path, out: Path, **overrides) -> GRPOConfig:
    settings = {
        "model": str(assets / "tiny"),
        "output_dir": str(out),
        "task": str(assets / "tasks.jsonl"),
        "prompts_per_step": 2,
        "group_size": 2,
        "micro_batch": 2,
        "max_new_tokens": 8,
        "max_tokens": 1024,
        "max_turns": 2,
        "steps": 1,
        "lr": 1e-3,
        "dtype": "float32",
        "device": "cpu",
        "freeze_vision": False,
    }
    return GRPOConfig(**(settings | overrides))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        out |= load_file(path)
    return out


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


REQUIRED_KEYS = [
    "train/grad_norm",
    "train/lr",
    "train/tokens_per_s",
    "train/advantage_mean",
    "train/advantage_std",
    "train/advantage_min",
    "train/advantage_max",
    "loss/policy",
    "loss/clip_fraction",
    "loss/approx_kl",
    "loss/ratio_mean",
    "loss/clip_fraction_epoch1",
    "loss/ratio_mean_epoch1",
    "rollout/reward_mean",
    "rollout/reward_std",
    "rollout/reward_accuracy",
    "rollout/reward_format",
    "rollout/zero_std_groups",
    "rollout/turns_mean",
    "rollout/operations_mean",
    "rollout/generated_tokens_mean",
    "rollout/reflection_rate",
    "rollout/entropy",
    "rollout/logprob_mismatch",
]


@pytest.fixture(scope="module")
def one_step(assets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one_step")
    train_grpo(make_config(assets, out, ppo_epochs=2, micro_batch=1), reward=LengthReward())
    return out


def test_one_step_changes_the_parameters_and_logs_every_metric(assets, one_step):
    before, after = weights(assets / "tiny"), weights(one_step / "final")
    assert max_difference(before, after) > 0
    (record,) = read_metrics(one_step / "metrics.jsonl")
    assert record["step"] == 1
    missing = [key for key in REQUIRED_KEYS if key not in record]
    assert not missing
    assert any(key.startswith("rollout/termination/") for key in record)
    assert record["rollout/episodes"] == 4 and record["train/grad_norm"] > 0
    assert (one_step / "config.toml").is_file()


def test_the_step_time_is_split_into_its_phases(one_step):
    (record,) = read_metrics(one_step / "metrics.jsonl")
    rollout = [record[f"time/{phase}"] for phase in ("render", "prefill", "decode", "env")]
    assert all(seconds > 0 for seconds in rollout)
    # The phases are disjoint parts of the step: they add up to no more than what holds them.
    assert sum(rollout) <= record["train/rollout_time"]
    assert sum(rollout) + record["time/optimise"] <= record["train/step_time"]
    assert record["time/optimise"] > 0


def test_first_epoch_ratio_is_exactly_one(one_step):
    (record,) = read_metrics(one_step / "metrics.jsonl")
    assert record["loss/ratio_mean_epoch1"] == 1.0
    assert record["loss/clip_fraction_epoch1"] == 0.0
    assert record["loss/approx_kl_epoch1"] == 0.0
    # The second epoch sees the updated weights: the ratio has moved.
    assert record["loss/ratio_mean_epoch2"] != 1.0
    # Recomputed log-probs match the sampling ones in fp32.
    assert record["rollout/logprob_mismatch"] < 1e-4


def test_resume_after_two_steps_equals_three_steps(assets, tmp_path):
    config = make_config(assets, tmp_path / "full", steps=3, save_every=2, warmup_steps=1)
    full = train_grpo(config, reward=LengthReward())
    checkpoint = latest_checkpoint(tmp_path / "full")
    assert checkpoint is not None and checkpoint.name == "checkpoint-2"
    resumed_config = make_config(
        assets, tmp_path / "resumed", steps=3, warmup_steps=1, resume=str(checkpoint)
    )
    resumed = train_grpo(resumed_config, reward=LengthReward())
    assert max_difference(weights(full), weights(resumed)) == 0.0
    full_log = read_metrics(tmp_path / "full" / "metrics.jsonl")
    resumed_log = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert all(r["train/grad_norm"] > 0 for r in full_log)
    assert [r["step"] for r in resumed_log] == [3]
    assert resumed_log[0]["rollout/reward_mean"] == full_log[2]["rollout/reward_mean"]
    assert resumed_log[0]["train/lr"] == full_log[2]["train/lr"]


@pytest.mark.parametrize(("advantage", "moves"), [("grpo", False), ("ap_grpo", True)])
def test_ap_grpo_keeps_the_gradient_of_a_constant_reward_group(assets, tmp_path, advantage, moves):
    config = make_config(assets, tmp_path, advantage=advantage, alpha=1.0, prompts_per_step=1)
    final = train_grpo(config, reward=ConstantReward())
    (record,) = read_metrics(tmp_path / "metrics.jsonl")
    assert record["rollout/zero_std_groups"] == 1.0
    assert (record["train/grad_norm"] > 0) == moves
    assert (max_difference(weights(assets / "tiny"), weights(final)) > 0) == moves


DDP_SCRIPT = """
import sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_train_grpo import LengthReward, make_config
from agents.train.grpo import train_grpo
from pathlib import Path
train_grpo(make_config(Path({assets!r}), Path({out!r}), micro_batch=1), reward=LengthReward())
"""


def test_ddp_on_two_gloo_ranks_equals_one_process(assets, tmp_path):
    single = train_grpo(make_config(assets, tmp_path / "one", micro_batch=1), reward=LengthReward())
    script = tmp_path / "ddp.py"
    script.write_text(
        DDP_SCRIPT.format(tests=str(ROOT / "tests"), assets=str(assets), out=str(tmp_path / "two"))
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    two = weights(tmp_path / "two" / "final")
    assert max_difference(weights(single), two) < 1e-6
    assert max_difference(weights(assets / "tiny"), two) > 0
    one_log = read_metrics(tmp_path / "one" / "metrics.jsonl")[0]
    two_log = read_metrics(tmp_path / "two" / "metrics.jsonl")[0]
    assert one_log["rollout/reward_mean"] == two_log["rollout/reward_mean"]
    assert one_log["rollout/episodes"] == two_log["rollout/episodes"] == 4


def test_prompts_and_episode_seeds_are_reproducible():
    source = RecordSource(
        [
            {
                "id": str(i),
                "images": [np.zeros((28, 28, 3), np.uint8)],
                "question": "q",
                "answer_type": "text",
                "answer": "a",
            }
            for i in range(5)
        ]
    )
    first = sample_prompts(np.random.default_rng(3), source, 4)
    assert first == sample_prompts(np.random.default_rng(3), source, 4)
    assert all(0 <= index < 5 for index, _ in first)
    seeds = {episode_seed(seed, j) for _, seed in first for j in range(3)}
    assert len(seeds) == 12


@pytest.fixture(scope="module")
def group_policy() -> GroupSampledPolicy:
    model, processor = tiny_model(seed=0)
    return GroupSampledPolicy(model, processor, GenerationSettings(temperature=1.0))


SAMPLE = GenerationSettings(temperature=1.0)


def _choose(policy, scores, episodes, settings=SAMPLE, step=0, turns=None):
    return policy.choose_tokens(
        scores,
        generator=None,
        settings=settings,
        episodes=episodes,
        turns=turns or [0] * len(episodes),
        generated=SimpleNamespace(step=step),
    ).tolist()


MASK64 = (1 << 64) - 1


def splitmix(x: int) -> int:
    """SplitMix64's finaliser on Python ints (the reference for the int64 tensor version)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def test_counter_uniform_is_splitmix_of_seed_turn_and_step():
    rows = [(0, 0, 0), (11, 2, 5), (2**31 - 2, 7, 511), (123456789, 0, 3)]
    seeds, turns = (torch.tensor([r[k] for r in rows]) for k in (0, 1))
    for step in (0, 5, 511):
        got = counter_uniform(seeds, turns, step).tolist()
        expected = [(splitmix(splitmix(splitmix(s) ^ t) ^ step) >> 11) / 2**53 for s, t, _ in rows]
        assert got == expected
    # Known value: SplitMix64 of 0 is 0xE220A8397B1DCDAF.
    assert splitmix(0) == 0xE220A8397B1DCDAF
    draws = counter_uniform(torch.arange(4000), torch.zeros(4000, dtype=torch.long), 0)
    assert draws.min() >= 0.0 and draws.max() < 1.0
    assert abs(draws.mean().item() - 0.5) < 0.02  # 4,000 uniforms: standard error 0.0046


def test_group_sampling_is_the_inverse_cdf_of_each_episodes_own_draw(group_policy):
    """Weights (0, 0.25, 0.75): the token is 1 when the episode's draw for its turn and step is
    below 0.25, else 2, and never the weight-0 token."""
    seeds = [11, 12, 13, 14, 15, 16]
    turns = [0, 1, 0, 2, 0, 1]
    group_policy.seed_episodes(seeds)
    scores = torch.tensor([[0.0, 0.25, 0.75]]).log().repeat(len(seeds), 1)
    episodes = list(range(len(seeds)))
    chosen = [_choose(group_policy, scores, episodes, step=k, turns=turns) for k in range(8)]
    expected = [
        [
            1 if (splitmix(splitmix(splitmix(s) ^ t) ^ k) >> 11) / 2**53 < 0.25 else 2
            for s, t in zip(seeds, turns)
        ]
        for k in range(8)
    ]
    assert chosen == expected
    assert {1, 2} == {t for row in chosen for t in row}


def test_group_sampling_does_not_depend_on_the_batch(group_policy):
    """An episode's tokens depend on its seed alone: sampled in a batch of three or alone, and
    under top-p, the three episodes write the same tokens."""
    scores = torch.log_softmax(torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), -1)
    for settings in (GenerationSettings(temperature=1.0), GenerationSettings(top_p=0.6)):
        group_policy.seed_episodes([7, 8, 9])
        batched = [_choose(group_policy, scores, [0, 1, 2], settings, k) for k in range(5)]
        alone = []
        for row in range(3):
            group_policy.seed_episodes([7, 8, 9])
            alone.append(
                [
                    _choose(group_policy, scores[row : row + 1], [row], settings, k)[0]
                    for k in range(5)
                ]
            )
        assert [list(t) for t in zip(*alone)] == batched
        assert len({t for step in batched for t in step}) > 3  # really sampled


@pytest.mark.parametrize(
    ("rewards", "zero_std", "mean"),
    [([1.0, 1.0, 0.0, 1.0], 0.5, 0.75), ([0.0, 0.0, 0.0, 0.0], 1.0, 0.0), ([1, 0, 0, 1], 0.0, 0.5)],
)
def test_rollout_metrics_of_hand_made_groups(rewards, zero_std, mean):
    summaries = [
        {
            "reward": float(r),
            "terms": {"accuracy": float(r)},
            "termination": "answer" if r else "no_action",
            "turns": 2,
            "operations": 1,
            "generated": 10,
            "length": 100,
            "neg_logprob_sum": 5.0,
            "reflective": False,
        }
        for r in rewards
    ]
    metrics = rollout_metrics(summaries, group_size=2)
    assert metrics["rollout/zero_std_groups"] == zero_std
    assert metrics["rollout/reward_mean"] == metrics["rollout/reward_accuracy"] == mean
    assert metrics["rollout/entropy"] == 0.5
    answered = sum(1 for r in rewards if r)
    assert metrics.get("rollout/termination/answer", 0.0) == answered


def test_eval_metrics_of_hand_made_records():
    def record(prediction, answer, accuracy, fmt, ops):
        return {
            "prediction": prediction,
            "answer": answer,
            "accuracy": accuracy,
            "correct": accuracy == 1.0,
            "reward_terms": {"format": fmt},
            "n_operations": ops,
        }

    results = [
        record("2", 2, 1.0, 1.0, 2),
        record("4", 8, 0.0, 1.0, 4),
        record(None, 3, 0.0, 0.0, 0),
    ]
    metrics = eval_metrics(results)
    assert metrics["eval/episodes"] == 3
    assert metrics["eval/accuracy"] == pytest.approx(1 / 3)
    assert metrics["eval/exact"] == pytest.approx(1 / 3)
    assert metrics["eval/format"] == pytest.approx(2 / 3)
    assert metrics["eval/answered"] == pytest.approx(2 / 3)
    assert metrics["eval/operations"] == pytest.approx(2.0)
    assert metrics["eval/corr"] == pytest.approx(1.0)  # (2, 2) and (4, 8) lie on one line
    constant = [record("8", answer, 0.0, 1.0, 8) for answer in (1, 5, 8)]
    assert (
        correlation([(8.0, 1.0), (8.0, 5.0)]) is None and eval_metrics(constant)["eval/corr"] == 0
    )
    assert correlation([(1, 3), (2, 2), (3, 1)]) == pytest.approx(-1.0)


def test_plot_metrics_draws_one_panel_per_logged_main_curve(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "metrics.jsonl"
    keys = ["rollout/reward_mean", "loss/policy", "rollout/turns_mean", "rollout/reward_std"]
    lines = [{"step": s, "other": 1.0, **{k: 0.1 * s for k in keys[:2]}} for s in (1, 2, 3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    # Three panels a row, 4 x 3 inches each, saved at 80 dpi: one row is 960 x 240 pixels.
    out = plot_metrics(path, tmp_path)
    assert out == tmp_path / "curves.png"
    assert Image.open(out).size == (960, 240)
    lines = [{"step": s, **{k: 0.1 * s for k in keys}} for s in (1, 2, 3)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert Image.open(plot_metrics(path, tmp_path)).size == (960, 480)  # four panels: two rows
    path.write_text(json.dumps({"step": 1, "other": 1.0}) + "\n")
    assert plot_metrics(path, tmp_path / "none") is None  # no main curve logged


def test_a_failed_checkpoint_write_leaves_the_old_one(tmp_path):
    target = tmp_path / "checkpoint-1"
    write_atomically(target, lambda tmp: (tmp / "a.txt").write_text("old"))

    def broken(tmp: Path) -> None:
        (tmp / "a.txt").write_text("new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, broken)
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-1"]


def test_cli_train_grpo_help_lists_every_setting():
    drawenv = Path(sys.executable).with_name("drawenv")
    done = subprocess.run(
        [str(drawenv), "train", "grpo", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for name in GRPOConfig.__dataclass_fields__:
        assert name in done.stdout
    assert "resume" in done.stdout and "fsdp" in done.stdout


class ProgressReward:
    """Records the training progress each finished episode was paid at (a custom scheduled
    reward: it names no preset, so only the trainer can hand it the progress)."""

    def __init__(self):
        self.seen: list[float] = []

    def __call__(self, episode):
        self.seen.append(episode.progress)
        return 0.0, {"accuracy": 0.0, "format": 1.0}


def test_every_reward_sees_the_training_progress(assets, tmp_path):
    reward = ProgressReward()
    train_grpo(make_config(assets, tmp_path / "run", steps=2), reward=reward)
    # 2 prompts x 2 samples per step; step s of 2 is played at progress s / 2.
    assert reward.seen == [0.0] * 4 + [0.5] * 4


def test_reward_kwargs_reach_the_envs(assets, tmp_path, group_policy):
    from agents.train.grpo import make_envs

    config = make_config(
        assets, tmp_path / "run", reward="snra", reward_kwargs={"k_min": 2.0, "k_max": 6.0}
    )
    env = make_envs(config, group_policy, 1)[0]
    # The linear schedule from 2 to 6: k = 2 + 4 t.
    assert [env.reward_fn.schedule(t) for t in (0.0, 0.5, 1.0)] == [2.0, 4.0, 6.0]
