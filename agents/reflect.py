"""Reflective rejection sampling: keep the policy's own self-corrections as SFT data.

The second training stage of ViLaSR (arXiv 2506.09965): sample ``k`` trajectories of every task
with the cold-started policy and keep those that are

- **correct**: accuracy 1 (``reward_terms["accuracy"] >= 1``),
- **format-valid**: ``reward_terms["format"] == 1`` (every turn well formed, every operation
  executed), and
- **reflective**: some label drawn at two different steps with different geometry
  (:func:`agents.evaluate.is_reflective`), i.e. the model looked at its drawing and fixed it.

Kept trajectories are written in the chat JSONL schema of :mod:`agents.sft_data` (images saved
as PNG in a folder beside the file), ready for ``drawenv train sft data=FILE``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.config import config_help, load_config, setting
from agents.evaluate import is_reflective
from agents.sft_data import sft_line
from drawenv.errors import check_choice, check_number, invalid_argument
from drawenv.protocol import COORD_MODES, PROTOCOLS

if TYPE_CHECKING:  # torch and transformers load only when sampling (the `agents` extra)
    from agents.policy import GenerationSettings, VLMPolicy
    from agents.rollout import Trajectory


@dataclass
class ReflectConfig:
    """Reflective rejection sampling: ``k`` samples per task, keep correct self-corrections."""

    model: str = setting("", "Local folder of the sampling model (e.g. the cold-start SFT output).")
    out: str = setting(
        "runs/reflect/reflect.jsonl", "Output chat JSONL; images go in <stem>_images beside it."
    )
    task: str | list[str] = field(
        default="mixed",
        metadata={"help": "Suite name, list of suite names, 'mixed' or a .jsonl task file."},
    )
    tasks: int = setting(100, "Tasks to sample (task i: seed + i, item i of a finite source).")
    k: int = setting(8, "Trajectories sampled per task.")
    protocol: str = setting("vilasr", "Env action protocol: vilasr or tool_call.")
    coords: str | None = setting(
        None, "Env coordinate mode: pixel or norm1000 (None: the model family's)."
    )
    difficulty: int = setting(1, "Procedural task difficulty, 1 to 3.")
    temperature: float = setting(1.0, "Sampling temperature (> 0 gives k different samples).")
    top_p: float = setting(1.0, "Nucleus sampling mass, in (0, 1].")
    max_new_tokens: int = setting(512, "Most tokens the model writes in one turn.")
    max_tokens: int | None = setting(8192, "Most tokens of a whole episode (None: no budget).")
    max_turns: int | None = setting(None, "Most model turns per episode (None: the env's default).")
    batch_size: int = setting(32, "Episodes per batched rollout.")
    seed: int = setting(0, "First task seed; also seeds the sampling.")
    dtype: str = setting("bfloat16", "Weight dtype: float32, bfloat16 or float16.")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N; auto picks CUDA when available.")

    def __post_init__(self) -> None:
        if not self.model:
            raise invalid_argument("model", self.model, "a local model folder", "Set model=PATH.")
        if not str(self.out).endswith(".jsonl"):
            raise invalid_argument("out", self.out, "a path ending in .jsonl")
        check_number("tasks", self.tasks, low=1, integer=True)
        check_number("k", self.k, low=1, integer=True)
        check_choice("protocol", self.protocol, PROTOCOLS)
        if self.coords is not None:
            check_choice("coords", self.coords, COORD_MODES)
        check_number("difficulty", self.difficulty, low=1, high=3, integer=True)
        check_number("temperature", self.temperature, low=0)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        check_choice("dtype", self.dtype, ("float32", "bfloat16", "float16"))


@dataclass
class ReflectStats:
    """How many trajectories passed each filter (each count includes the earlier filters)."""

    sampled: int = 0
    correct: int = 0
    format_valid: int = 0
    reflective: int = 0
    kept: int = 0

    def __str__(self) -> str:
        share = self.kept / self.sampled if self.sampled else 0.0
        return (
            f"sampled {self.sampled}, correct {self.correct}, format-valid {self.format_valid}, "
            f"reflective {self.reflective}, kept {self.kept} ({share:.1%})"
        )


def verdict(trajectory: Trajectory) -> tuple[bool, bool, bool]:
    """Whether a trajectory is (correct, format-valid, reflective)."""
    terms = trajectory.reward_terms
    correct = terms.get("accuracy", 0.0) >= 1.0
    format_ok = terms.get("format", 0.0) == 1.0
    return correct, format_ok, is_reflective({"turns": trajectory.turns})


def reflective_rejection_sampling(
    policy: VLMPolicy,
    *,
    task: Any = "mixed",
    tasks: int = 100,
    k: int = 8,
    out: str | Path = "reflect.jsonl",
    seed: int = 0,
    settings: GenerationSettings | None = None,
    batch_size: int = 32,
    max_tokens: int | None = None,
    **env_kwargs: Any,
) -> tuple[Path, ReflectStats]:
    """Sample ``k`` trajectories of each of ``tasks`` tasks and write the kept ones to ``out``.

    Task ``i`` is played by ``k`` envs reset with seed ``seed + i`` (and item ``i`` of a finite
    source), several tasks per batched rollout. Returns the JSONL path and the filter counts.
    """
    from agents.vlm_eval import sample_tasks, to_record

    if k < 1 or tasks < 1 or batch_size < 1:
        raise ValueError(f"Expected k, tasks and batch_size >= 1, got {k}, {tasks}, {batch_size}.")
    out = Path(out)
    image_dir = out.parent / f"{out.stem}_images"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = ReflectStats()
    with open(out, "w", encoding="utf-8") as file:
        for env, i, j, trajectory in sample_tasks(
            policy,
            task=task,
            tasks=tasks,
            k=k,
            seed=seed,
            settings=settings,
            batch_size=batch_size,
            max_tokens=max_tokens,
            **env_kwargs,
        ):
            correct, format_ok, reflective = verdict(trajectory)
            stats.sampled += 1
            stats.correct += correct
            stats.format_valid += correct and format_ok
            stats.reflective += correct and format_ok and reflective
            if not (correct and format_ok and reflective):
                continue
            record = to_record(trajectory, env, episode=stats.kept, image_dir=image_dir)
            line = sft_line(record, task=i, sample=j)
            file.write(json.dumps(line, ensure_ascii=False) + "\n")
            stats.kept += 1
    return out, stats


def run_reflect(config: ReflectConfig) -> tuple[Path, ReflectStats]:
    """Load ``config.model`` and run :func:`reflective_rejection_sampling`; prints the counts."""
    from agents.policy import GenerationSettings, VLMPolicy
    from agents.train_sft import resolve_device

    device = resolve_device(config.device)
    settings = GenerationSettings(
        temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens
    )
    policy = VLMPolicy.from_pretrained(
        config.model, device=device, dtype=config.dtype, settings=settings
    )
    path, stats = reflective_rejection_sampling(
        policy,
        task=config.task,
        tasks=config.tasks,
        k=config.k,
        out=config.out,
        seed=config.seed,
        batch_size=config.batch_size,
        max_tokens=config.max_tokens,
        protocol=config.protocol,
        coords=config.coords,
        difficulty=config.difficulty,
        max_turns=config.max_turns,
    )
    print(f"reflective rejection sampling: {stats}")
    print(f"wrote {path}; next: drawenv train sft --config FILE data={path}")
    return path, stats


def build_parser() -> argparse.ArgumentParser:
    """``python -m agents.reflect --config FILE [key=value …]``."""
    parser = argparse.ArgumentParser(
        prog="drawenv train reflect",
        description="Reflective rejection sampling (see docs/training.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"config keys (TOML file or key=value):\n{config_help(ReflectConfig)}",
    )
    parser.add_argument("--config", help="flat TOML file of ReflectConfig keys")
    parser.add_argument("overrides", nargs="*", help="key=value settings over the file's")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python -m agents.reflect --config FILE``."""
    args = build_parser().parse_args(argv)
    try:
        run_reflect(load_config(ReflectConfig, args.config, args.overrides))
    except ValueError as error:
        print(f"drawenv train reflect: {error}", file=sys.stderr)
        sys.exit(2)


__all__ = [
    "ReflectConfig",
    "ReflectStats",
    "main",
    "reflective_rejection_sampling",
    "run_reflect",
    "verdict",
]

if __name__ == "__main__":
    main()
