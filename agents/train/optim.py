"""What every trainer does to its model and optimiser: freezing, activation checkpointing,
AdamW and the learning-rate schedule (shared by :mod:`agents.train.sft` and
:mod:`agents.train.grpo`)."""

from __future__ import annotations

import math
from typing import Any

import torch

VISION_MODULES = ("visual", "vision_tower", "vision_model")
"""Attribute names of the vision encoder in transformers' VLMs (Qwen-VL: ``model.visual``)."""


def vision_tower(model: Any) -> torch.nn.Module | None:
    """The vision encoder (with its patch merger) of a transformers VLM, or None."""
    for owner in (model, getattr(model, "model", None)):
        for name in VISION_MODULES:
            module = getattr(owner, name, None)
            if isinstance(module, torch.nn.Module):
                return module
    return None


def freeze_vision_tower(model: Any) -> int:
    """Stop gradients through the vision encoder's weights; returns how many were frozen."""
    tower = vision_tower(model)
    if tower is None:
        raise ValueError(
            f"Expected a vision tower ({', '.join(VISION_MODULES)}) in {type(model).__name__}, "
            "found none. Set freeze_vision=false for this model."
        )
    frozen = 0
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
        frozen += parameter.numel()
    return frozen


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant checkpoints); transformers
    renamed ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable``."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then with
    ``p = (step - warmup_steps) / (total_steps - warmup_steps)`` in [0, 1): ``constant`` 1,
    ``linear`` ``1 - p``, ``cosine`` ``(1 + cos(pi p)) / 2``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "constant":
        return 1.0
    elif schedule == "linear":
        return max(0.0, 1.0 - progress)
    elif schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    else:
        raise ValueError(f"Unknown lr schedule: {schedule!r}.")


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norm weights (1-D)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def make_scheduler(optimizer: torch.optim.Optimizer, config: Any, total_steps: int) -> Any:
    """The config's warm-up and ``lr_schedule`` over ``total_steps`` optimiser steps."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step,
            warmup_steps=config.warmup_steps,
            total_steps=total_steps,
            schedule=config.lr_schedule,
        ),
    )


__all__ = [
    "VISION_MODULES",
    "enable_activation_checkpointing",
    "freeze_vision_tower",
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "vision_tower",
]
