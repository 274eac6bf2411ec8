"""Every stage's config: one dataclass each, read from a TOML file plus ``key=value`` overrides.

The shared fields are declared once: :class:`RunConfig` (every stage: ``output_dir``, ``seed``),
:class:`ModelConfig` (a stage that loads a model), :class:`TrainConfig` (a stage that optimises
it), and the mix-in :class:`RolloutConfig` (a stage that samples episodes in the env). The stages
add only their own: :class:`ScratchConfig` (``drawenv train init``), :class:`SFTConfig`,
:class:`ReflectConfig` and :class:`GRPOConfig`.

Every field carries a one-line ``help``; ``__post_init__`` derives sizes and raises
``ValueError`` (a :class:`drawenv.errors.DrawEnvError`) naming the field, the bad value and the
fix. :func:`parse_config` is every stage's command line: ``--config FILE``, then ``key=value``
overrides parsed to each field's type (:func:`load_config`), and ``--help`` from the field docs.

    cfg = load_config(GRPOConfig, "grpo.toml", ["lr=2e-6", "task=maze,counting"])
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import sys
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from drawenv.errors import check_choice, check_number, invalid_argument
from drawenv.protocol import COORD_MODES, PROTOCOLS
from drawenv.rewards import REWARD_PRESETS, get_reward
from drawenv.tasks import SEED_RANGES, SUITES

LR_SCHEDULES = ("constant", "cosine", "linear")
"""Learning-rate schedules after the linear warm-up."""
DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""Precision names (the keys of :data:`agents.vlm.device.DTYPES`)."""
LOSS_TYPE_NAMES = ("grpo", "dr_grpo", "dapo")
"""Keep in step with :data:`agents.train.losses.LOSS_TYPES` (tested)."""
ADVANTAGE_NAMES = ("grpo", "ap_grpo", "ap_grpo_mul")
"""Keep in step with :data:`agents.train.losses.ADVANTAGE_KINDS` (tested)."""
REWARD_SCALE_NAMES = ("group", "batch", "none")
"""Keep in step with :data:`agents.train.losses.REWARD_SCALES` (tested)."""

C = TypeVar("C")


def setting(default: Any, text: str) -> Any:
    """A dataclass field with a default and its one-line help."""
    return field(default=default, metadata={"help": text})


def _check_device(device: str) -> None:
    head = device.split(":")[0]
    if head not in ("auto", "cpu", "cuda", "mps") or (":" in device and head != "cuda"):
        raise invalid_argument(
            "device",
            device,
            "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
            "'auto' picks CUDA when available.",
        )


# -- the shared fields -----------------------------------------------------------------------


@dataclass
class RunConfig:
    """What every stage has: where it writes and its seed."""

    output_dir: str = setting("runs/run", "Folder the stage writes everything it makes to.")
    seed: int = setting(0, "Seed of everything random in the stage.")

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise invalid_argument(
                "output_dir", self.output_dir, "a folder path", "Set output_dir=PATH."
            )
        check_number("seed", self.seed, low=0, integer=True)


@dataclass
class ModelConfig(RunConfig):
    """A stage that loads a model: which one, where it runs, in what precision."""

    model: str = setting("", "Local folder of the model (config.json, weights, processor).")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps; auto picks CUDA when available.")
    dtype: str = setting(
        "bfloat16",
        "Precision of the forward passes on CUDA (float32, bfloat16, float16), under autocast; "
        "weights stay float32. Other devices run float32.",
    )

    def __post_init__(self) -> None:
        RunConfig.__post_init__(self)
        if not self.model:
            raise invalid_argument(
                "model", self.model, "the local folder of a saved model", "Set model=PATH."
            )
        check_choice("dtype", self.dtype, DTYPE_NAMES)
        _check_device(self.device)


@dataclass
class TrainConfig(ModelConfig):
    """A stage that optimises the model: AdamW, its schedule, logging, checkpoints, resuming."""

    lr: float = setting(1e-5, "Peak AdamW learning rate.")
    weight_decay: float = setting(0.0, "AdamW decoupled weight decay.")
    warmup_steps: int = setting(0, "Optimiser steps of linear warm-up from 0 to lr.")
    lr_schedule: str = setting(
        "cosine", "Learning rate after warm-up: constant, cosine or linear (decay to 0)."
    )
    max_grad_norm: float = setting(1.0, "Clip the global gradient norm to this value.")
    freeze_vision: bool = setting(True, "Keep the vision tower (and its merger) frozen.")
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass to save memory."
    )
    log_every: int = setting(1, "Write a metrics line every this many optimiser steps.")
    save_every: int = setting(
        0, "Save a checkpoint every this many steps (0: only the final model)."
    )
    keep_last: int = setting(
        3, "Keep only the newest this many checkpoint-STEP folders (0: keep all)."
    )
    resume: bool | str = setting(
        False,
        "true: continue from the latest checkpoint-STEP in output_dir (weights, optimiser, "
        "schedule, data position, random states), as if the run had never stopped; a folder: "
        "continue from that checkpoint.",
    )
    tensorboard: bool = setting(False, "Also write TensorBoard events under output_dir.")

    def __post_init__(self) -> None:
        ModelConfig.__post_init__(self)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise invalid_argument(
                "lr", self.lr, "a finite number > 0", "Try lr=1e-6 for RL, 1e-5 for SFT."
            )
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("warmup_steps", self.warmup_steps, low=0, integer=True)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not (isinstance(self.max_grad_norm, (int, float)) and self.max_grad_norm > 0):
            raise invalid_argument(
                "max_grad_norm",
                self.max_grad_norm,
                "a number > 0",
                "Use a large value to disable clipping.",
            )
        check_number("log_every", self.log_every, low=1, integer=True)
        check_number("save_every", self.save_every, low=0, integer=True)
        check_number("keep_last", self.keep_last, low=0, integer=True)
        if self.resume == "":
            raise invalid_argument(
                "resume", self.resume, "true, false or a checkpoint folder", "Set resume=true."
            )


@dataclass
class RolloutConfig:
    """The fields of a stage that samples the policy's episodes in the env (a mix-in)."""

    task: str | list[str] = field(
        default="mixed",
        metadata={"help": "Suite name, list of suite names, 'mixed' or a .jsonl task file."},
    )
    protocol: str = setting("vilasr", "Env action protocol: vilasr or tool_call.")
    coords: str | None = setting(
        None, "Env coordinate mode: pixel or norm1000 (None: the model family's)."
    )
    difficulty: int = setting(1, "Procedural task difficulty, 1 to 3.")
    max_pixels: int | None = setting(
        None,
        "Env image budget: each image is resized to at most this many pixels (None: 256*28*28).",
    )
    max_turns: int | None = setting(None, "Most model turns per episode (None: the env's default).")
    temperature: float = setting(1.0, "Sampling temperature (> 0).")
    top_p: float = setting(1.0, "Nucleus sampling mass, in (0, 1].")
    max_new_tokens: int = setting(512, "Most tokens the model writes in one turn.")
    max_tokens: int = setting(
        8192,
        "Most tokens of a whole episode (prompt, images, turns); dr_grpo's loss normaliser.",
    )
    decode: str = setting(
        "auto",
        "How rollouts decode: static (a fixed-length cache, each step a CUDA graph on CUDA), "
        "eager (a growing cache) or auto (static on CUDA, eager elsewhere).",
    )

    def __post_init__(self) -> None:
        tasks = [self.task] if isinstance(self.task, str) else list(self.task)
        if not tasks:
            raise invalid_argument(
                "task", self.task, "a suite name, a list of suite names or 'mixed'"
            )
        for name in tasks:
            if not (isinstance(name, str) and name.endswith(".jsonl")):
                check_choice("task", name, [*SUITES, "mixed"])
        check_choice("protocol", self.protocol, PROTOCOLS)
        if self.coords is not None:
            check_choice("coords", self.coords, COORD_MODES)
        check_number("difficulty", self.difficulty, low=1, high=3, integer=True)
        if self.max_pixels is not None:
            check_number("max_pixels", self.max_pixels, low=4 * 28 * 28, integer=True)
        if self.max_turns is not None:
            check_number("max_turns", self.max_turns, low=1, integer=True)
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise invalid_argument(
                "temperature",
                self.temperature,
                "a number > 0",
                "Sampled groups need it; greedy (0) gives identical trajectories.",
            )
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise invalid_argument("top_p", self.top_p, "a number in (0, 1]")
        check_number("max_new_tokens", self.max_new_tokens, low=1, integer=True)
        check_number("max_tokens", self.max_tokens, low=1, integer=True)
        check_choice("decode", self.decode, ["auto", "static", "eager"])
        if self.max_new_tokens > self.max_tokens:
            raise invalid_argument(
                "max_new_tokens",
                self.max_new_tokens,
                f"at most max_tokens ({self.max_tokens})",
                "A turn cannot be longer than the whole episode budget.",
            )

    def env_kwargs(self) -> dict[str, Any]:
        """The env arguments these fields set (for :func:`agents.vlm.rollout.policy_env`)."""
        return {
            "task": self.task,
            "protocol": self.protocol,
            "coords": self.coords,
            "difficulty": self.difficulty,
            "max_pixels": self.max_pixels,
            "max_turns": self.max_turns,
        }

    def generation(self) -> Any:
        """These fields' :class:`agents.vlm.policy.GenerationSettings` (imports torch)."""
        from agents.vlm.policy import GenerationSettings

        return GenerationSettings(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens
        )


# -- the stages ------------------------------------------------------------------------------


@dataclass
class ScratchConfig(RunConfig):
    """The model ``drawenv train init`` builds: sizes of the text model and the vision tower."""

    output_dir: str = setting("runs/init", "Folder to save the model, config and processor in.")
    data: str = setting("", "Chat JSONL from `drawenv export-sft`; its text trains the tokenizer.")
    vocab_size: int = setting(2048, "Tokenizer vocabulary size, special tokens included.")
    hidden_size: int = setting(256, "Text model width.")
    layers: int = setting(8, "Text decoder layers.")
    heads: int = setting(4, "Attention heads; hidden_size / heads must be a multiple of 16.")
    kv_heads: int = setting(2, "Key-value heads (grouped-query attention); must divide heads.")
    intermediate_size: int = setting(1024, "Text MLP width.")
    rope_theta: float = setting(
        1e6,
        "Base of the text model's rotary positions. Qwen2.5-VL's 1e6 barely turns across a "
        "small image's token grid (8x8 tokens at 224x224), so a from-scratch model cannot tell "
        "image positions apart; about 20 lets it (see docs/training.md).",
    )
    vision_depth: int = setting(6, "Vision transformer blocks.")
    vision_hidden_size: int = setting(256, "Vision tower width.")
    vision_heads: int = setting(4, "Vision attention heads.")
    vision_intermediate_size: int = setting(1024, "Vision MLP width.")

    def __post_init__(self) -> None:
        RunConfig.__post_init__(self)
        if not self.data:
            raise invalid_argument(
                "data", self.data, "a chat JSONL path", "Set data=PATH (see `drawenv export-sft`)."
            )
        for name in ("vocab_size", "hidden_size", "layers", "heads", "kv_heads"):
            check_number(name, getattr(self, name), low=1, integer=True)
        for name in ("intermediate_size", "vision_depth", "vision_hidden_size", "vision_heads"):
            check_number(name, getattr(self, name), low=1, integer=True)
        check_number("vision_intermediate_size", self.vision_intermediate_size, low=1, integer=True)
        check_number("rope_theta", self.rope_theta, low=1.0)
        if self.hidden_size % self.heads or (self.hidden_size // self.heads) % 16:
            raise invalid_argument(
                "heads",
                self.heads,
                f"a divisor of hidden_size ({self.hidden_size}) leaving a head size that is a "
                "multiple of 16",
                "Multimodal rotary positions split each head in (time, height, width) parts.",
            )
        if self.heads % self.kv_heads:
            raise invalid_argument("kv_heads", self.kv_heads, f"a divisor of heads ({self.heads})")
        if self.vision_hidden_size % self.vision_heads:
            raise invalid_argument(
                "vision_heads",
                self.vision_heads,
                f"a divisor of vision_hidden_size ({self.vision_hidden_size})",
            )


@dataclass
class SFTConfig(TrainConfig):
    """Cold-start supervised fine-tuning on chat JSONL written by ``drawenv export-sft``, or on
    oracle episodes streamed from a suite."""

    output_dir: str = setting(
        "runs/sft",
        "Folder for metrics.jsonl, config.toml, checkpoints and the final model (final/).",
    )
    # -- data ----------------------------------------------------------------------------
    data: str = setting(
        "", "Chat JSONL from `drawenv export-sft`; image paths are relative to its folder."
    )
    task: str | None = setting(
        None,
        "Instead of `data`: a suite whose oracle trajectories are played afresh for every "
        "example, in `workers` background processes (needs steps).",
    )
    difficulty: int = setting(1, "With `task`: procedural difficulty, 1 to 3.")
    max_pixels: int | None = setting(
        None, "With `task`: the env's image budget in pixels (None: 200704)."
    )
    corrections: float = setting(
        0.5, "With `task`: share of episodes with an injected self-correction."
    )
    workers: int = setting(4, "With `task`: processes that play the oracle episodes.")
    max_length: int | None = setting(
        8192, "Skip examples whose token sequence is longer (None: keep all)."
    )
    shuffle: bool = setting(True, "Shuffle the examples every epoch.")
    # -- steps ---------------------------------------------------------------------------
    epochs: int = setting(1, "Passes over the data.")
    steps: int | None = setting(
        None, "Stop after this many optimiser steps (None: run all epochs)."
    )
    batch_size: int = setting(1, "Examples per forward pass (micro-batch).")
    grad_accum: int = setting(
        1, "Micro-batches per optimiser step; effective batch = batch_size * grad_accum."
    )
    attn_implementation: str = setting(
        "sdpa", "Attention kernel passed to transformers (sdpa, eager, flash_attention_2)."
    )
    # -- validation ----------------------------------------------------------------------
    eval_every: int = setting(
        0, "Every this many steps, play held-out episodes greedily and log eval/ (0: never)."
    )
    eval_task: str | None = setting(
        None, "Suite of those episodes (None: `task`), at `difficulty` and `max_pixels`."
    )
    eval_episodes: int = setting(64, "Held-out episodes per validation.")
    eval_seed: int = setting(
        SEED_RANGES["validation"].first,
        "Reset seed of the first held-out episode (the next ones count up); the default is "
        "the start of the validation seed range (docs/tasks.md).",
    )
    eval_max_turns: int = setting(4, "Most model turns of a held-out episode.")

    def __post_init__(self) -> None:
        TrainConfig.__post_init__(self)
        if bool(self.data) == bool(self.task):
            raise invalid_argument(
                "data",
                self.data,
                "a chat JSONL path, or empty with `task` set (not both)",
                "Set data=PATH (see `drawenv export-sft`) or task=SUITE to stream oracle "
                "trajectories.",
            )
        if self.task:
            check_choice("task", self.task, list(SUITES))
            if self.steps is None:
                raise invalid_argument(
                    "steps", None, "a number of steps", "A streamed `task` never runs out."
                )
            check_number("difficulty", self.difficulty, low=1, high=3, integer=True)
            if self.max_pixels is not None:
                check_number("max_pixels", self.max_pixels, low=4 * 28 * 28, integer=True)
            check_number("corrections", self.corrections, low=0, high=1)
            check_number("workers", self.workers, low=0, integer=True)
        check_number("eval_every", self.eval_every, low=0, integer=True)
        if self.eval_every:
            if not (self.eval_task or self.task):
                raise invalid_argument(
                    "eval_task", None, "a suite name", "Validation plays a suite's episodes."
                )
            check_choice("eval_task", self.eval_task or self.task, list(SUITES))
            check_number("eval_episodes", self.eval_episodes, low=1, integer=True)
            check_number("eval_seed", self.eval_seed, low=0, integer=True)
            check_number("eval_max_turns", self.eval_max_turns, low=1, integer=True)
        check_number("epochs", self.epochs, low=1, integer=True)
        if self.steps is not None:
            check_number("steps", self.steps, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("grad_accum", self.grad_accum, low=1, integer=True)
        if self.max_length is not None:
            check_number("max_length", self.max_length, low=2, integer=True)


@dataclass
class GRPOConfig(RolloutConfig, TrainConfig):
    """Multi-turn GRPO and its variants (Dr. GRPO, DAPO, AP-GRPO) in ``DrawSpatial-v0``.

    Sizes: each step samples ``prompts_per_step`` tasks, ``group_size`` trajectories each, so
    ``rollout_batch = prompts_per_step * group_size`` trajectories (derived, not settable); they
    are trained for ``ppo_epochs`` passes in micro-batches of ``micro_batch``.

    ``reward_scale`` left unset (None) resolves to ``"none"`` when ``loss_type == "dr_grpo"``
    (Dr. GRPO drops the std division) and to ``"group"`` otherwise; an explicit value always wins.
    """

    output_dir: str = setting(
        "runs/grpo",
        "Folder for metrics.jsonl, config.toml, checkpoints and the final model (final/).",
    )
    lr: float = setting(1e-6, "Peak AdamW learning rate.")
    lr_schedule: str = setting(
        "constant", "Learning rate after warm-up: constant, cosine or linear (decay to 0)."
    )
    # -- reward --------------------------------------------------------------------------
    reward: str = setting("vilasr", "Env reward preset: vilasr, vilasr_paper, snra or sr_real.")
    reward_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Parameters of the reward preset, e.g. {k_min = 1, k_max = 100, schedule = "
            '"linear"} for snra (a TOML table, or JSON on the command line).'
        },
    )
    # -- sizes ---------------------------------------------------------------------------
    steps: int = setting(100, "Training steps (one rollout batch each).")
    prompts_per_step: int = setting(8, "Distinct tasks sampled per step.")
    group_size: int = setting(8, "Trajectories per task (the GRPO group, >= 2).")
    rollout_batch: int = field(
        default=0, init=False, metadata={"help": "Derived: prompts_per_step * group_size."}
    )
    micro_batch: int = setting(
        8, "Trajectories per forward/backward pass; must divide rollout_batch."
    )
    rollout_prompts: int | None = setting(
        None,
        "Prompts per batched rollout call (None: all of a rank's prompts at once). Equal chunks "
        "on one GPU and on each rank give identical bf16 rollouts.",
    )
    ppo_epochs: int = setting(1, "Optimisation passes over each rollout batch (1: on-policy).")
    # -- loss ----------------------------------------------------------------------------
    loss_type: str = setting(
        "grpo",
        "Loss normalisation: grpo (per-sequence mean), dr_grpo (constant) or dapo (token mean).",
    )
    eps_low: float = setting(
        0.2, "Lower clip range: ratios below 1 - eps_low are clipped, 0 <= eps_low < 1."
    )
    eps_high: float = setting(
        0.2,
        "Upper clip range: ratios above 1 + eps_high are clipped (DAPO clip-higher: > eps_low).",
    )
    beta: float = setting(0.0, "KL-to-reference coefficient (0: no reference model, as in ViLaSR).")
    advantage: str = setting(
        "grpo", "Advantage: grpo, ap_grpo (A + alpha*S) or ap_grpo_mul (A * S**alpha)."
    )
    alpha: float = setting(
        1.0, "Weight of the absolute reward in ap_grpo / ap_grpo_mul (0: plain GRPO)."
    )
    reward_scale: str | None = setting(
        None,
        "Std used to scale advantages: group, batch or none (None: none for dr_grpo, else group).",
    )
    # -- logging and processes -----------------------------------------------------------
    log_rollouts: bool = setting(
        False,
        "Also write one line per trajectory (prompt, sample, task index, seed, reward, "
        "advantage, generated tokens, turns, termination) to rollouts.jsonl.",
    )
    fsdp: bool = setting(
        False, "Under torchrun, shard the model with FSDP2 (fully_shard) instead of DDP."
    )

    def __post_init__(self) -> None:
        TrainConfig.__post_init__(self)
        RolloutConfig.__post_init__(self)
        check_choice("reward", self.reward, REWARD_PRESETS)
        if not isinstance(self.reward_kwargs, dict):
            raise invalid_argument(
                "reward_kwargs",
                self.reward_kwargs,
                "a table of the preset's parameters",
                'e.g. reward_kwargs={"k_max": 50} for snra.',
            )
        get_reward(self.reward, **self.reward_kwargs)  # a bad parameter fails now, not mid-run
        check_number("steps", self.steps, low=1, integer=True)
        check_number("prompts_per_step", self.prompts_per_step, low=1, integer=True)
        if not (isinstance(self.group_size, int) and self.group_size >= 2):
            raise invalid_argument(
                "group_size",
                self.group_size,
                "an integer >= 2",
                "Group-relative advantages need at least two samples per task.",
            )
        self.rollout_batch = self.prompts_per_step * self.group_size
        check_number("micro_batch", self.micro_batch, low=1, integer=True)
        if self.rollout_prompts is not None:
            check_number("rollout_prompts", self.rollout_prompts, low=1, integer=True)
        if self.rollout_batch % self.micro_batch:
            divisors = [d for d in range(1, self.rollout_batch + 1) if self.rollout_batch % d == 0]
            raise invalid_argument(
                "micro_batch",
                self.micro_batch,
                f"a divisor of rollout_batch = prompts_per_step * group_size "
                f"({self.rollout_batch})",
                f"Pick one of {divisors}.",
            )
        check_number("ppo_epochs", self.ppo_epochs, low=1, integer=True)
        check_choice("loss_type", self.loss_type, LOSS_TYPE_NAMES)
        if not (isinstance(self.eps_low, (int, float)) and 0 <= self.eps_low < 1):
            raise invalid_argument(
                "eps_low", self.eps_low, "a number with 0 <= eps_low < 1", "Typical: 0.2."
            )
        check_number("eps_high", self.eps_high, low=0)
        check_number("beta", self.beta, low=0)
        check_choice("advantage", self.advantage, ADVANTAGE_NAMES)
        check_number("alpha", self.alpha)
        if self.reward_scale is None:
            self.reward_scale = "none" if self.loss_type == "dr_grpo" else "group"
        check_choice("reward_scale", self.reward_scale, REWARD_SCALE_NAMES)


@dataclass
class ReflectConfig(RolloutConfig, ModelConfig):
    """Reflective rejection sampling: ``k`` samples per task, keep correct self-corrections."""

    output_dir: str = setting(
        "runs/reflect",
        "Folder for reflect.jsonl (the kept chats) and reflect_images/ (their images).",
    )
    tasks: int = setting(100, "Tasks to sample (task i: seed + i, item i of a finite source).")
    k: int = setting(8, "Trajectories sampled per task.")
    batch_size: int = setting(32, "Episodes per batched rollout.")
    log_samples: bool = setting(
        False,
        "Also write one line per sampled trajectory (task, sample, seed, reward, tokens of each "
        "turn, termination, prediction, the filters' verdict) to samples.jsonl.",
    )

    def __post_init__(self) -> None:
        ModelConfig.__post_init__(self)
        RolloutConfig.__post_init__(self)
        check_number("tasks", self.tasks, low=1, integer=True)
        check_number("k", self.k, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)


# -- files and overrides ---------------------------------------------------------------------


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


ALIASES = {
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "num_generations": "group_size",
    "epsilon": "eps_low",
    "epsilon_high": "eps_high",
    "max_completion_length": "max_new_tokens",
    "scale_rewards": "reward_scale",
    "max_steps": "steps",
    "lr_scheduler_type": "lr_schedule",
}
"""Names other trainers (TRL, transformers) use for fields of ours, for the "did you mean"."""


def _unknown_key(cls: type, key: str) -> ValueError:
    allowed = list(_fields(cls))
    close = difflib.get_close_matches(key, allowed, n=1)
    if ALIASES.get(key) in allowed:
        close = [ALIASES[key]]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    derived = [f.name for f in dataclasses.fields(cls) if not f.init]
    if key in derived:
        hint = f" {key!r} is derived from other fields and cannot be set."
    return ValueError(
        f"Unknown {cls.__name__} key {key!r}.{hint} Allowed keys: {', '.join(allowed)}."
    )


def _options(annotation: Any) -> tuple[list[Any], bool]:
    """The member types of a field annotation and whether None is allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = list(typing.get_args(annotation))
    else:
        members = [annotation]
    nullable = type(None) in members
    return [m for m in members if m is not type(None)], nullable


def _parse_scalar(kind: Any, value: Any) -> Any:
    """``value`` (a TOML value or a command-line string) as ``kind``; raises ValueError."""
    text = value.strip() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "1", "yes", "on"):
            return True
        if text is not None and text.lower() in ("false", "0", "no", "off"):
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None:
            number = float(text)  # accepts 1e3 and 1_000
            if number.is_integer():
                return int(number)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            return float(text)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(kind) is dict:
        if isinstance(value, str):
            value = json.loads(text)
        if isinstance(value, dict):
            return dict(value)
    elif typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind) or (str,)
        if isinstance(value, str):
            value = json.loads(value) if text.startswith("[") else text.split(",")
        if isinstance(value, (list, tuple)):
            return [_parse_scalar(item, v.strip() if isinstance(v, str) else v) for v in value]
    raise ValueError(f"not a {getattr(kind, '__name__', kind)}")


def _parse(cls: type, key: str, value: Any) -> Any:
    hints = typing.get_type_hints(cls)
    kinds, nullable = _options(hints[key])
    if value is None or (
        nullable and isinstance(value, str) and value.strip().lower() in ("none", "null")
    ):
        if nullable:
            return None
    else:
        # A comma or a bracket means a list when the field takes one (task=maze,counting).
        if isinstance(value, str) and ("," in value or value.strip().startswith("[")):
            kinds = sorted(kinds, key=lambda k: typing.get_origin(k) is not list)
        for kind in kinds:
            try:
                return _parse_scalar(kind, value)
            except (ValueError, TypeError, json.JSONDecodeError):
                continue
    names = " or ".join(getattr(k, "__name__", str(k)) for k in kinds) + (" or None" * nullable)
    raise ValueError(f"Invalid `{key}`: expected {names}, got {value!r}.")


def load_config(cls: type[C], path: str | Path | None, overrides: list[str] | None = None) -> C:
    """Build ``cls`` from a flat TOML file (optional) and then ``key=value`` overrides.

    Values are parsed to each field's type: booleans accept true/false/1/0/yes/no, lists accept
    JSON (``["maze","depth"]``) or commas (``maze,depth``), optional fields accept ``none``.
    Unknown keys raise ``ValueError`` naming the key, the closest field and every allowed key.
    """
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as file:
            data = tomllib.load(file)
        for key, value in data.items():
            if isinstance(value, dict) and not _takes_table(cls, key):
                raise ValueError(
                    f"Expected flat keys in {str(path)!r}, got the table [{key}]. Put every "
                    "setting at the top level of the file."
                )
            values[key] = value
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Expected an override as key=value, got {item!r}.")
        values[key.strip().replace("-", "_")] = value
    known = _fields(cls)
    for key in values:
        if key not in known:
            raise _unknown_key(cls, key)
    return cls(**{key: _parse(cls, key, value) for key, value in values.items()})


def _takes_table(cls: type, key: str) -> bool:
    hint = typing.get_type_hints(cls).get(key)
    return hint is not None and any(typing.get_origin(k) is dict for k in _options(hint)[0])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"Cannot write {value!r} to TOML.")


def config_to_toml(config: Any) -> str:
    """The settable fields of ``config`` as flat TOML (None values are left out: the default
    of such fields is None), readable back with :func:`load_config`."""
    lines = []
    for name in _fields(type(config)):
        value = getattr(config, name)
        if value is not None:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def parse_config(cls: type[C], argv: Sequence[str] | None, *, prog: str, description: str) -> C:
    """The command line ``[--config FILE] [key=value ...]`` of a trainer as a ``cls`` config;
    ``--help`` lists every setting, and a bad setting exits with the parser's usage error."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog="settings (key=value):\n" + config_help(cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="flat TOML file of settings")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings after the file")
    args = parser.parse_args(argv)
    try:
        return load_config(cls, args.config, args.overrides)
    except ValueError as error:
        parser.error(str(error))


def run_stage(
    cls: type[C], run: Any, argv: Sequence[str] | None, *, prog: str, description: str
) -> Any:
    """Every stage's ``main``: its config from the command line (:func:`parse_config`), then
    ``run(config)``; a bad setting found while running (a missing file, a task that does not
    load) exits with status 2 and the message, named by ``prog``."""
    config = parse_config(cls, argv, prog=prog, description=description)
    try:
        return run(config)
    except ValueError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        sys.exit(2)


def config_help(cls: type) -> str:
    """One line per field: name, type, default and help, for ``--help`` (derived fields are
    marked and cannot be set)."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    width = max(len(f.name) for f in fields)
    lines = []
    for f in fields:
        kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
        if not f.init:
            default = "(derived)"
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = repr(f.default)
        lines.append(f"  {f.name:<{width}}  {kind} = {default}  {f.metadata.get('help', '')}")
    return "\n".join(lines)


__all__ = [
    "ADVANTAGE_NAMES",
    "DTYPE_NAMES",
    "LOSS_TYPE_NAMES",
    "LR_SCHEDULES",
    "REWARD_SCALE_NAMES",
    "GRPOConfig",
    "ModelConfig",
    "ReflectConfig",
    "RolloutConfig",
    "RunConfig",
    "SFTConfig",
    "ScratchConfig",
    "TrainConfig",
    "config_help",
    "config_to_toml",
    "load_config",
    "parse_config",
    "run_stage",
]
