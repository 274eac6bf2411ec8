"""Trainer configs: one dataclass per trainer, a flat TOML file plus ``key=value`` overrides.

Every field carries a one-line ``help``; ``__post_init__`` derives sizes and raises
``ValueError`` (a :class:`drawenv.errors.DrawEnvError`) naming the field, the bad value and the
fix. :func:`load_config` reads a TOML file of flat keys, then applies command-line overrides
parsed to each field's type; :func:`config_help` prints the fields for ``--help``.

    cfg = load_config(GRPOConfig, "grpo.toml", ["lr=2e-6", "task=maze,counting"])
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from drawenv.errors import check_choice, check_number, invalid_argument
from drawenv.protocol import COORD_MODES, PROTOCOLS
from drawenv.rewards import REWARD_PRESETS, SCHEDULE_KINDS
from drawenv.tasks import SUITES

LR_SCHEDULES = ("constant", "cosine", "linear")
"""Learning-rate schedules after the linear warm-up."""
DTYPE_NAMES = ("float32", "bfloat16", "float16")
"""Weight dtypes (the keys of :data:`agents.policy.DTYPES`)."""
LOSS_TYPE_NAMES = ("grpo", "dr_grpo", "dapo")
"""Keep in step with :data:`agents.losses.LOSS_TYPES` (tested)."""
ADVANTAGE_NAMES = ("grpo", "ap_grpo", "ap_grpo_mul")
"""Keep in step with :data:`agents.losses.ADVANTAGE_KINDS` (tested)."""
REWARD_SCALE_NAMES = ("group", "batch", "none")
"""Keep in step with :data:`agents.losses.REWARD_SCALES` (tested)."""

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


def _check_common(cfg: Any) -> None:
    """Checks shared by every trainer config."""
    if not cfg.model:
        raise invalid_argument(
            "model", cfg.model, "the local folder of a saved model", "Set model=PATH."
        )
    if not cfg.output_dir:
        raise invalid_argument(
            "output_dir", cfg.output_dir, "a folder path", "Set output_dir=PATH."
        )
    if not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise invalid_argument(
            "lr", cfg.lr, "a finite number > 0", "Try lr=1e-6 for RL, 1e-5 for SFT."
        )
    check_number("weight_decay", cfg.weight_decay, low=0)
    check_number("warmup_steps", cfg.warmup_steps, low=0, integer=True)
    check_choice("lr_schedule", cfg.lr_schedule, LR_SCHEDULES)
    if not (isinstance(cfg.max_grad_norm, (int, float)) and cfg.max_grad_norm > 0):
        raise invalid_argument(
            "max_grad_norm",
            cfg.max_grad_norm,
            "a number > 0",
            "Use a large value to disable clipping.",
        )
    check_choice("dtype", cfg.dtype, DTYPE_NAMES)
    _check_device(cfg.device)
    check_number("seed", cfg.seed, low=0, integer=True)
    check_number("log_every", cfg.log_every, low=1, integer=True)
    check_number("save_every", cfg.save_every, low=0, integer=True)


@dataclass
class SFTConfig:
    """Cold-start supervised fine-tuning on chat JSONL written by ``drawenv export-sft``."""

    model: str = setting(
        "", "Local folder of the model to fine-tune (config.json, weights, processor)."
    )
    data: str = setting(
        "", "Chat JSONL from `drawenv export-sft`; image paths are relative to its folder."
    )
    task: str | None = setting(
        None,
        "Instead of `data`: a suite whose oracle trajectories are played afresh for every "
        "example, in `workers` background processes (needs max_steps).",
    )
    difficulty: int = setting(1, "With `task`: procedural difficulty, 1 to 3.")
    max_pixels: int | None = setting(
        None, "With `task`: the env's image budget in pixels (None: 200704)."
    )
    corrections: float = setting(
        0.5, "With `task`: share of episodes with an injected self-correction."
    )
    workers: int = setting(4, "With `task`: processes that play the oracle episodes.")
    eval_every: int = setting(
        0, "Every this many steps, play held-out episodes greedily and log eval/ (0: never)."
    )
    eval_task: str | None = setting(
        None, "Suite of those episodes (None: `task`), at `difficulty` and `max_pixels`."
    )
    eval_episodes: int = setting(64, "Held-out episodes per validation.")
    eval_seed: int = setting(
        2_000_000, "Reset seed of the first held-out episode (the next ones count up)."
    )
    eval_max_turns: int = setting(4, "Most model turns of a held-out episode.")
    output_dir: str = setting(
        "runs/sft",
        "Folder for metrics.jsonl, config.toml, checkpoints and the final model (final/).",
    )
    epochs: int = setting(1, "Passes over the data.")
    max_steps: int | None = setting(
        None, "Stop after this many optimiser steps (None: run all epochs)."
    )
    batch_size: int = setting(1, "Examples per forward pass (micro-batch).")
    grad_accum: int = setting(
        1, "Micro-batches per optimiser step; effective batch = batch_size * grad_accum."
    )
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
    dtype: str = setting(
        "bfloat16", "CUDA autocast dtype (float32, bfloat16, float16); weights stay float32."
    )
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps; auto picks CUDA when available.")
    seed: int = setting(0, "Seed of the data order and of torch.")
    max_length: int | None = setting(
        8192, "Skip examples whose token sequence is longer (None: keep all)."
    )
    shuffle: bool = setting(True, "Shuffle the examples every epoch.")
    log_every: int = setting(1, "Write a metrics line every this many optimiser steps.")
    save_every: int = setting(
        0, "Save a checkpoint every this many steps (0: only the final model)."
    )
    resume: bool = setting(
        False,
        "Continue from the latest checkpoint-STEP in output_dir: weights, optimiser, schedule, "
        "data position and random states, as if the run had never stopped.",
    )
    attn_implementation: str = setting(
        "sdpa", "Attention kernel passed to transformers (sdpa, eager, flash_attention_2)."
    )
    tensorboard: bool = setting(False, "Also write TensorBoard events under output_dir.")

    def __post_init__(self) -> None:
        _check_common(self)
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
            if self.max_steps is None:
                raise invalid_argument(
                    "max_steps", None, "a number of steps", "A streamed `task` never runs out."
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
        if self.max_steps is not None:
            check_number("max_steps", self.max_steps, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("grad_accum", self.grad_accum, low=1, integer=True)
        if self.max_length is not None:
            check_number("max_length", self.max_length, low=2, integer=True)


@dataclass
class GRPOConfig:
    """Multi-turn GRPO and its variants (Dr. GRPO, DAPO, AP-GRPO) in ``DrawSpatial-v0``.

    Sizes: each step samples ``prompts_per_step`` tasks, ``group_size`` trajectories each, so
    ``rollout_batch = prompts_per_step * group_size`` trajectories (derived, not settable); they
    are trained for ``ppo_epochs`` passes in micro-batches of ``micro_batch``.

    ``reward_scale`` left unset (None) resolves to ``"none"`` when ``loss_type == "dr_grpo"``
    (Dr. GRPO drops the std division) and to ``"group"`` otherwise; an explicit value always wins.
    """

    model: str = setting("", "Local folder of the starting model (e.g. the SFT output).")
    output_dir: str = setting(
        "runs/grpo",
        "Folder for metrics.jsonl, config.toml, checkpoints and the final model (final/).",
    )
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
    reward: str = setting("vilasr", "Env reward preset: vilasr, vilasr_paper, snra or sr_real.")
    snra_schedule: str = setting(
        "linear", "SNRA sharpness schedule over training: linear, cosine or sigmoid."
    )
    snra_k_min: float = setting(1.0, "SNRA sharpness at the start of training.")
    snra_k_max: float = setting(100.0, "SNRA sharpness at the end of training.")
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
    lr: float = setting(1e-6, "Peak AdamW learning rate.")
    weight_decay: float = setting(0.0, "AdamW decoupled weight decay.")
    warmup_steps: int = setting(0, "Optimiser steps of linear warm-up from 0 to lr.")
    lr_schedule: str = setting(
        "constant", "Learning rate after warm-up: constant, cosine or linear (decay to 0)."
    )
    max_grad_norm: float = setting(1.0, "Clip the global gradient norm to this value.")
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
    temperature: float = setting(1.0, "Sampling temperature of the rollouts (> 0).")
    top_p: float = setting(1.0, "Nucleus sampling mass of the rollouts, in (0, 1].")
    max_new_tokens: int = setting(512, "Most tokens the model writes in one turn.")
    max_tokens: int = setting(
        8192,
        "Most tokens of a whole episode (prompt, images, turns); dr_grpo's loss normaliser.",
    )
    max_turns: int | None = setting(None, "Most model turns per episode (None: the env's default).")
    steps: int = setting(100, "Training steps (one rollout batch each).")
    dtype: str = setting(
        "bfloat16", "CUDA autocast dtype (float32, bfloat16, float16); weights stay float32."
    )
    device: str = setting("auto", "auto, cpu, cuda, cuda:N or mps; auto picks CUDA when available.")
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass to save memory."
    )
    freeze_vision: bool = setting(True, "Keep the vision tower (and its merger) frozen.")
    seed: int = setting(0, "Seed of task sampling, rollouts and torch.")
    log_every: int = setting(1, "Write a metrics line every this many steps.")
    save_every: int = setting(
        0, "Save a checkpoint every this many steps (0: only the final model)."
    )
    tensorboard: bool = setting(False, "Also write TensorBoard events under output_dir.")

    def __post_init__(self) -> None:
        _check_common(self)
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
        check_choice("reward", self.reward, REWARD_PRESETS)
        check_choice("snra_schedule", self.snra_schedule, SCHEDULE_KINDS)
        check_number("snra_k_min", self.snra_k_min, low=0)
        if not self.snra_k_max >= self.snra_k_min:
            raise invalid_argument(
                "snra_k_max", self.snra_k_max, f"a number >= snra_k_min ({self.snra_k_min})"
            )
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
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise invalid_argument(
                "temperature",
                self.temperature,
                "a number > 0",
                "GRPO needs sampled groups; greedy (0) gives identical trajectories.",
            )
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise invalid_argument("top_p", self.top_p, "a number in (0, 1]")
        check_number("max_new_tokens", self.max_new_tokens, low=1, integer=True)
        check_number("max_tokens", self.max_tokens, low=1, integer=True)
        if self.max_new_tokens > self.max_tokens:
            raise invalid_argument(
                "max_new_tokens",
                self.max_new_tokens,
                f"at most max_tokens ({self.max_tokens})",
                "A turn cannot be longer than the whole episode budget.",
            )
        if self.max_turns is not None:
            check_number("max_turns", self.max_turns, low=1, integer=True)
        check_number("steps", self.steps, low=1, integer=True)


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
            if isinstance(value, dict):
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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
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


def config_help(cls: type) -> str:
    """One line per field: name, type, default and help, for ``--help`` (derived fields are
    marked and cannot be set)."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    width = max(len(f.name) for f in fields)
    lines = []
    for f in fields:
        kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
        default = repr(f.default) if f.init else "(derived)"
        lines.append(f"  {f.name:<{width}}  {kind} = {default}  {f.metadata.get('help', '')}")
    return "\n".join(lines)


__all__ = [
    "ADVANTAGE_NAMES",
    "DTYPE_NAMES",
    "LOSS_TYPE_NAMES",
    "LR_SCHEDULES",
    "REWARD_SCALE_NAMES",
    "GRPOConfig",
    "SFTConfig",
    "config_help",
    "config_to_toml",
    "load_config",
    "parse_config",
]
