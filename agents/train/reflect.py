"""Reflective rejection sampling: keep the policy's own self-corrections as SFT data.

The second training stage of ViLaSR (arXiv 2506.09965): sample ``k`` trajectories of every task
with the cold-started policy and keep those that are

- **correct**: accuracy 1 (``reward_terms["accuracy"] >= 1``),
- **format-valid**: ``reward_terms["format"] == 1`` (every turn well formed, every operation
  executed), and
- **reflective**: some label drawn at two different steps with different geometry
  (:func:`agents.evaluate.is_reflective`), i.e. the model looked at its drawing and fixed it.

Kept trajectories are written in the chat JSONL schema of :mod:`agents.train.sft_data` (images saved
as PNG in a folder beside the file), ready for ``drawenv train sft data=FILE``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.evaluate import is_reflective
from agents.train.config import ReflectConfig, run_stage
from agents.train.sft_data import sft_line

if TYPE_CHECKING:  # torch and transformers load only when sampling (the `agents` extra)
    from agents.vlm.policy import VLMPolicy
    from agents.vlm.rollout import Trajectory


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


def turn_tokens(trajectory: Trajectory) -> list[int]:
    """Tokens the model wrote in each of its turns (the runs of ``trajectory.mask``)."""
    mask = trajectory.mask.tolist()
    runs: list[int] = []
    for previous, current in zip([0, *mask], mask):
        if current and not previous:
            runs.append(0)
        if current:
            runs[-1] += 1
    return runs


def sample_line(trajectory: Trajectory, task: int, sample: int) -> dict[str, Any]:
    """What one sampled trajectory earned and cost, and the filters' verdict on it."""
    correct, format_ok, reflective = verdict(trajectory)
    return {
        "task": task,
        "sample": sample,
        "seed": trajectory.seed,
        "reward": float(trajectory.reward),
        "turn_tokens": turn_tokens(trajectory),
        "termination": trajectory.termination,
        "prediction": trajectory.prediction,
        "correct": correct,
        "format_valid": format_ok,
        "reflective": reflective,
        "kept": correct and format_ok and reflective,
    }


def reflective_rejection_sampling(
    policy: VLMPolicy,
    *,
    out: str | Path = "reflect.jsonl",
    tasks: int = 100,
    k: int = 8,
    log_samples: bool = False,
    **sampling: Any,
) -> tuple[Path, ReflectStats]:
    """Sample ``k`` trajectories of each of ``tasks`` tasks and write the kept ones to ``out``.

    Task ``i`` is played by ``k`` envs reset with seed ``seed + i`` (and item ``i`` of a finite
    source), several tasks per batched rollout; ``sampling`` holds the task, seed, settings,
    batch size, token budget and env arguments of :func:`agents.vlm.evaluate.sample_tasks`.
    With ``log_samples``, every sampled trajectory also gets a line of :func:`sample_line` in
    ``samples.jsonl`` beside ``out``. Returns the JSONL path and the filter counts.
    """
    from agents.vlm.evaluate import sample_tasks, to_record

    out = Path(out)
    image_dir = out.parent / f"{out.stem}_images"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = ReflectStats()
    with ExitStack() as files:
        file = files.enter_context(open(out, "w", encoding="utf-8"))
        log = None
        if log_samples:
            log = files.enter_context(open(out.parent / "samples.jsonl", "w", encoding="utf-8"))
        for env, i, j, trajectory in sample_tasks(policy, tasks=tasks, k=k, **sampling):
            correct, format_ok, reflective = verdict(trajectory)
            stats.sampled += 1
            stats.correct += correct
            stats.format_valid += correct and format_ok
            stats.reflective += correct and format_ok and reflective
            kept = correct and format_ok and reflective
            if log is not None:
                log.write(json.dumps(sample_line(trajectory, i, j)) + "\n")
            if not kept:
                continue
            record = to_record(trajectory, env, episode=stats.kept, image_dir=image_dir)
            line = sft_line(record, task=i, sample=j)
            file.write(json.dumps(line, ensure_ascii=False) + "\n")
            stats.kept += 1
    return out, stats


def run_reflect(config: ReflectConfig) -> tuple[Path, ReflectStats]:
    """Load ``config.model`` and run :func:`reflective_rejection_sampling` into
    ``output_dir/reflect.jsonl``; prints the counts."""
    import torch

    from agents.vlm.device import autocast, resolve_device
    from agents.vlm.policy import VLMPolicy

    device = torch.device(resolve_device(config.device))
    policy = VLMPolicy.from_pretrained(
        config.model,
        device=device,
        dtype="float32",
        settings=config.generation(),
        decode=config.decode,
    )
    with torch.no_grad(), autocast(device, config.dtype):
        path, stats = reflective_rejection_sampling(
            policy,
            tasks=config.tasks,
            k=config.k,
            out=Path(config.output_dir) / "reflect.jsonl",
            seed=config.seed,
            batch_size=config.batch_size,
            max_tokens=config.max_tokens,
            log_samples=config.log_samples,
            **config.env_kwargs(),
        )
    print(f"reflective rejection sampling: {stats}")
    print(f"wrote {path}; next: drawenv train sft --config FILE data={path}")
    return path, stats


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``python -m agents.train.reflect --config FILE``."""
    description = "Reflective rejection sampling (see docs/training.md)."
    run_stage(
        ReflectConfig, run_reflect, argv, prog="drawenv train reflect", description=description
    )


__all__ = [
    "ReflectConfig",
    "ReflectStats",
    "main",
    "reflective_rejection_sampling",
    "run_reflect",
    "sample_line",
    "turn_tokens",
    "verdict",
]

if __name__ == "__main__":
    main()
