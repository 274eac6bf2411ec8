"""The experiment's configs load as the trainers' configs, with the settings every run shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.train.config import GRPOConfig, SFTConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    ("name", "cls", "pixels"),
    [
        ("sft.toml", SFTConfig, 224 * 224),
        ("sft_448.toml", SFTConfig, 448 * 448),
        ("grpo.toml", GRPOConfig, 448 * 448),
        ("ap_grpo.toml", GRPOConfig, 448 * 448),
        ("grpo_snra.toml", GRPOConfig, 448 * 448),
    ],
)
def test_the_shipped_evidence_configs_load(name, cls, pixels):
    config = load_config(cls, CONFIGS / name)
    assert config.task == "counting" and config.difficulty == 1
    assert config.max_pixels == pixels
    assert config.output_dir.startswith("runs/evidence/")
    assert config.freeze_vision  # every evidence run keeps the random tower frozen
