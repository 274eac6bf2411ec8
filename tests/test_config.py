"""Trainer configs: validation messages, TOML files with overrides, help text."""

from __future__ import annotations

import dataclasses

import pytest

from agents.train import losses
from agents.train.config import (
    ADVANTAGE_NAMES,
    LOSS_TYPE_NAMES,
    REWARD_SCALE_NAMES,
    GRPOConfig,
    SFTConfig,
    config_help,
    config_to_toml,
    load_config,
)


def grpo(**kwargs):
    return GRPOConfig(model="models/tiny", **kwargs)


def test_names_match_the_losses_module():
    assert LOSS_TYPE_NAMES == losses.LOSS_TYPES
    assert ADVANTAGE_NAMES == losses.ADVANTAGE_KINDS
    assert REWARD_SCALE_NAMES == losses.REWARD_SCALES


def test_rollout_batch_is_derived():
    cfg = grpo(prompts_per_step=3, group_size=4, micro_batch=6)
    assert cfg.rollout_batch == 12
    assert dataclasses.replace(cfg, group_size=2, micro_batch=3).rollout_batch == 6
    with pytest.raises(TypeError):
        GRPOConfig(model="m", rollout_batch=12)


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"group_size": 1}, "group_size", "at least two samples"),
        (
            {"prompts_per_step": 3, "group_size": 4, "micro_batch": 5},
            "micro_batch",
            "[1, 2, 3, 4, 6, 12]",
        ),
        ({"lr": 0.0}, "lr", "lr=1e-6"),
        ({"lr": float("nan")}, "lr", "finite"),
        ({"eps_low": 1.0}, "eps_low", "0 <= eps_low < 1"),
        ({"eps_low": -0.1}, "eps_low", "0 <= eps_low < 1"),
        ({"eps_high": -0.1}, "eps_high", ">= 0"),
        ({"beta": -1.0}, "beta", ">= 0"),
        ({"loss_type": "dr-grpo"}, "loss_type", "Did you mean 'dr_grpo'"),
        ({"advantage": "ap_grpo_mult"}, "advantage", "Did you mean 'ap_grpo_mul'"),
        ({"reward_scale": "groups"}, "reward_scale", "Did you mean 'group'"),
        ({"reward": "snr"}, "reward", "Did you mean 'snra'"),
        ({"task": ["maze", "countin"]}, "task", "Did you mean 'counting'"),
        ({"task": []}, "task", "suite name"),
        ({"protocol": "vilsar"}, "protocol", "Did you mean 'vilasr'"),
        ({"coords": "norm"}, "coords", "'norm1000'"),
        ({"difficulty": 4}, "difficulty", "[1, 3]"),
        ({"lr_schedule": "cosin"}, "lr_schedule", "Did you mean 'cosine'"),
        ({"temperature": 0.0}, "temperature", "greedy"),
        ({"top_p": 0.0}, "top_p", "(0, 1]"),
        ({"max_new_tokens": 600, "max_tokens": 512}, "max_new_tokens", "max_tokens (512)"),
        ({"dtype": "fp16"}, "dtype", "'float16'"),
        ({"device": "gpu"}, "device", "'cuda'"),
        ({"reward": "snra", "reward_kwargs": {"k_min": 5.0, "k_max": 2.0}}, "k_max", "k_min (5.0)"),
        ({"max_grad_norm": 0}, "max_grad_norm", "disable clipping"),
    ],
)
def test_grpo_validation_names_field_and_fix(kwargs, field, fix):
    with pytest.raises(ValueError, match=f"`{field}`") as error:
        grpo(**kwargs)
    assert fix in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "field", "fix"),
    [
        ({"model": ""}, "model", "model=PATH"),
        ({"data": ""}, "data", "export-sft"),
        ({"batch_size": 0}, "batch_size", ">= 1"),
        ({"grad_accum": 0}, "grad_accum", ">= 1"),
        ({"epochs": 0}, "epochs", ">= 1"),
        ({"steps": 0}, "steps", ">= 1"),
        ({"warmup_steps": -1}, "warmup_steps", ">= 0"),
        ({"lr": -1e-5}, "lr", "1e-5 for SFT"),
        ({"task": "counting"}, "data", "not both"),
        ({"data": "", "task": "counting"}, "steps", "never runs out"),
        ({"data": "", "task": "chess", "steps": 1}, "task", "counting"),
        ({"data": "", "task": "maze", "steps": 1, "workers": -1}, "workers", ">= 0"),
        ({"eval_every": 10}, "eval_task", "suite"),
        ({"eval_every": 10, "eval_task": "maze", "eval_episodes": 0}, "eval_episodes", ">= 1"),
    ],
)
def test_sft_validation_names_field_and_fix(kwargs, field, fix):
    with pytest.raises(ValueError, match=f"`{field}`") as error:
        SFTConfig(**{"model": "m", "data": "d.jsonl", **kwargs})
    assert fix in str(error.value)


def test_grpo_reward_kwargs_are_checked_by_the_preset():
    assert grpo(reward="snra", reward_kwargs={"k_max": 50.0}).reward_kwargs == {"k_max": 50.0}
    with pytest.raises(ValueError, match="Did you mean 'k_max'"):
        grpo(reward="snra", reward_kwargs={"kmax": 2.0})
    with pytest.raises(ValueError, match="`reward_kwargs`"):
        grpo(reward_kwargs=[1])
    cfg = load_config(GRPOConfig, None, ["model=m", "reward=snra", 'reward_kwargs={"k_min": 2}'])
    assert cfg.reward_kwargs == {"k_min": 2}


def test_reward_scale_default_follows_the_loss_type():
    assert grpo().reward_scale == "group"
    assert grpo(loss_type="dapo").reward_scale == "group"
    assert grpo(loss_type="dr_grpo").reward_scale == "none"
    assert grpo(loss_type="dr_grpo", reward_scale="group").reward_scale == "group"


def test_toml_then_overrides_round_trip(tmp_path):
    path = tmp_path / "grpo.toml"
    path.write_text(
        'model = "models/sft"\ntask = ["maze", "depth"]\ngroup_size = 4\nprompts_per_step = 2\n'
        "micro_batch = 4\nlr = 2e-6\nfreeze_vision = false\nmax_turns = 3\n"
    )
    cfg = load_config(
        GRPOConfig,
        path,
        ["lr=3e-6", "loss_type=dapo", "eps_high=0.28", "tensorboard=true", "max_turns=none"],
    )
    assert cfg.task == ["maze", "depth"] and cfg.rollout_batch == 8
    assert cfg.lr == 3e-6 and cfg.loss_type == "dapo" and cfg.eps_high == 0.28
    assert cfg.freeze_vision is False and cfg.tensorboard is True and cfg.max_turns is None
    again = tmp_path / "again.toml"
    again.write_text(config_to_toml(cfg))
    assert load_config(GRPOConfig, again, []) == cfg


@pytest.mark.parametrize(
    ("override", "field", "value"),
    [
        ("task=maze,counting", "task", ["maze", "counting"]),
        ('task=["maze"]', "task", ["maze"]),
        ("task=maze", "task", "maze"),
        ("group_size=4", "group_size", 4),
        ("steps=1e3", "steps", 1000),
        ("alpha=0", "alpha", 0.0),
        ("gradient_checkpointing=yes", "gradient_checkpointing", True),
        ("coords=norm1000", "coords", "norm1000"),
        ("max-new-tokens=64", "max_new_tokens", 64),
    ],
)
def test_overrides_parse_to_the_field_type(override, field, value):
    cfg = load_config(GRPOConfig, None, ["model=m", override])
    assert getattr(cfg, field) == value
    assert type(getattr(cfg, field)) is type(value)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("group_size=four", "`group_size`: expected int"),
        ("tensorboard=maybe", "`tensorboard`: expected bool"),
        ("lr", "key=value"),
        ("steps=none", "`steps`: expected int"),
    ],
)
def test_bad_override_values(override, match):
    with pytest.raises(ValueError, match=match):
        load_config(GRPOConfig, None, ["model=m", override])


def test_unknown_keys_suggest_and_list(tmp_path):
    with pytest.raises(ValueError, match=r"'loss_typ'\. Did you mean 'loss_type'") as error:
        load_config(GRPOConfig, None, ["model=m", "loss_typ=dapo"])
    assert "Allowed keys: output_dir, seed, model" in str(error.value)
    with pytest.raises(ValueError, match="Did you mean 'group_size'"):
        load_config(GRPOConfig, None, ["model=m", "num_generations=8"])
    with pytest.raises(ValueError, match="derived"):
        load_config(GRPOConfig, None, ["model=m", "rollout_batch=8"])
    path = tmp_path / "sft.toml"
    path.write_text('model = "m"\ndata = "d.jsonl"\nlearning_rate = 1e-5\n')
    with pytest.raises(ValueError, match="'learning_rate'"):
        load_config(SFTConfig, path, [])
    path.write_text('model = "m"\n[train]\nlr = 1\n')
    with pytest.raises(ValueError, match="flat keys"):
        load_config(SFTConfig, path, [])


@pytest.mark.parametrize("cls", [SFTConfig, GRPOConfig])
def test_every_field_has_help(cls):
    text = config_help(cls)
    assert len(text.splitlines()) == len(dataclasses.fields(cls))
    for f, line in zip(dataclasses.fields(cls), text.splitlines()):
        assert f.metadata.get("help"), f.name
        assert line.split()[0] == f.name and f.metadata["help"] in line
    derived = [line for line in config_help(GRPOConfig).splitlines() if "(derived)" in line]
    assert [line.split()[0] for line in derived] == ["rollout_batch"]
