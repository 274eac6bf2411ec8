"""Evaluate a VLM in DrawSpatial-v0: k samples per task, pass@1 and pass@k, the usual records.

:func:`evaluate_vlm` plays ``k`` episodes of every task with batched rollouts and returns one
record per episode in the ``results.jsonl`` schema of :func:`agents.evaluate.play_episode`, so
``summarise``, ``format_table`` and ``write_viewer`` work unchanged; each record also carries
``task`` (its task number), ``sample`` (0..k-1) and ``n_generated_tokens``. :func:`pass_rates`
adds pass@1 and pass@k per suite. :func:`run_vlm_eval` is the ``drawenv eval --agent vlm`` body.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents.evaluate import evaluate_suites, print_progress, report, save_images
from agents.vlm.policy import GenerationSettings, VLMPolicy
from agents.vlm.rollout import Trajectory, policy_env, rollout
from drawenv.env import DrawSpatialEnv


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (Chen et al., 2021):
    ``1 - C(n - c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"Expected 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}.")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_rates(results: Iterable[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """One row per (agent, suite): tasks, samples per task, pass@1 and pass@k (a task passes
    when a sample's answer is fully correct)."""
    groups: dict[tuple[str, str], dict[Any, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        groups[(r["agent"], r["suite"])][r.get("task", r["task_id"])].append(bool(r["correct"]))
    rows = []
    for (agent, suite), tasks in groups.items():
        n = min(len(samples) for samples in tasks.values())
        rows.append(
            {
                "agent": agent,
                "suite": suite,
                "tasks": len(tasks),
                "k": min(k, n),
                "pass@1": _mean(pass_at_k(len(s), sum(s), 1) for s in tasks.values()),
                f"pass@{k}": _mean(pass_at_k(len(s), sum(s), min(k, n)) for s in tasks.values()),
            }
        )
    return rows


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def format_pass_table(rows: list[dict[str, Any]], k: int) -> str:
    """The pass-rate rows as a fixed-width text table (one pass@1 column when ``k == 1``)."""
    columns = ["pass@1"] if k == 1 else ["pass@1", f"pass@{k}"]
    header = f"{'agent':<12} {'suite':<10} {'tasks':>5}" + "".join(f" {c:>7}" for c in columns)
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['agent']:<12} {r['suite']:<10} {r['tasks']:>5}"
            + "".join(f" {r[c]:>7.3f}" for c in columns)
        )
    return "\n".join(lines)


def evaluate_vlm(
    policy: VLMPolicy,
    *,
    task: Any = "mixed",
    episodes: int = 10,
    k: int = 1,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    batch_size: int = 32,
    max_tokens: int | None = None,
    image_dir: Path | None = None,
    first_episode: int = 0,
    agent: str = "vlm",
    progress: bool = False,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """Play ``k`` samples of each of ``episodes`` tasks (task ``i``: seed ``seed + i``, item
    ``i`` of a finite source) in batches of about ``batch_size`` episodes.

    The env's ``coords`` and ``patch_factor`` default to the model's (:attr:`VLMPolicy.coords`,
    :attr:`VLMPolicy.patch_factor`). Sampling defaults to the policy's settings, made greedy
    when ``k == 1``. Records follow :func:`agents.evaluate.play_episode`.
    """
    if settings is None:
        settings = policy.settings if k > 1 else replace(policy.settings, temperature=0.0)
    results: list[dict[str, Any]] = []
    for env, i, j, trajectory in sample_tasks(
        policy,
        task=task,
        tasks=episodes,
        k=k,
        seed=seed,
        settings=settings,
        batch_size=batch_size,
        max_tokens=max_tokens,
        **env_kwargs,
    ):
        record = to_record(
            trajectory,
            env,
            agent=agent,
            episode=first_episode + len(results),
            image_dir=image_dir,
        )
        record.update(task=i, sample=j)
        results.append(record)
        if progress and j == k - 1:
            print_progress(f"{agent} on {task}", i + 1, episodes)
    return results


def sample_tasks(
    policy: VLMPolicy,
    *,
    task: Any,
    tasks: int,
    k: int,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    batch_size: int = 32,
    max_tokens: int | None = None,
    **env_kwargs: Any,
) -> Iterator[tuple[DrawSpatialEnv, int, int, Trajectory]]:
    """Play ``k`` samples of each of ``tasks`` tasks, several tasks per batched rollout; yields
    ``(env, task number, sample number, trajectory)``.

    Task ``i`` is played by ``k`` envs reset with seed ``seed + i`` (and item ``i`` of a finite
    source). The env's ``coords`` and ``patch_factor`` default to the model's.
    """
    if k < 1 or tasks < 1 or batch_size < 1:
        raise ValueError(f"Expected k, tasks and batch_size >= 1, got {k}, {tasks}, {batch_size}.")
    finite = policy_env(policy, task=task, **env_kwargs).source.size is not None
    tasks_per_batch = max(1, batch_size // k)
    for start in range(0, tasks, tasks_per_batch):
        plan = [(i, j) for i in range(start, min(tasks, start + tasks_per_batch)) for j in range(k)]
        envs = [policy_env(policy, task=task, **env_kwargs) for _ in plan]
        trajectories = rollout(
            policy,
            envs,
            seed=[seed + i for i, _ in plan],
            options=[{"index": i} if finite else None for i, _ in plan],
            settings=settings,
            max_tokens=max_tokens,
            sampling_seed=seed + start,
        )
        for env, (i, j), trajectory in zip(envs, plan, trajectories):
            yield env, i, j, trajectory


def to_record(
    trajectory: Trajectory,
    env: DrawSpatialEnv,
    *,
    agent: str = "vlm",
    episode: int = 0,
    image_dir: Path | None = None,
) -> dict[str, Any]:
    """A trajectory as a ``results.jsonl`` record; ``env`` is the one it was played in (for the
    task's suite and answer). With ``image_dir`` its images are saved as PNG and referenced."""
    task = env.task
    images = trajectory.images + trajectory.final_images
    originals = len(images) - sum(len(turn["new_images"]) for turn in trajectory.turns)
    turns = []
    for turn in trajectory.turns:
        turns.append(
            {
                key: turn[key]
                for key in ("text", "operations", "new_images", "errors", "message", "reward")
            }
            | {
                "new_image_paths": save_images(images, turn["new_images"], image_dir, episode),
                "finish": turn["finish"],
            }
        )
    accuracy = trajectory.reward_terms.get("accuracy", 0.0)
    return {
        "episode": episode,
        "agent": agent,
        "suite": str(task.metadata.get("suite", "custom")),
        "task_id": task.id,
        "seed": trajectory.seed,
        "prompt": trajectory.prompt,
        "system_prompt": trajectory.system_prompt,
        "answer": task.answer,
        "answer_type": task.answer_type,
        "images": save_images(images, range(1, originals + 1), image_dir, episode),
        "turns": turns,
        "prediction": trajectory.prediction,
        "accuracy": accuracy,
        "correct": accuracy >= 1.0,
        "reward": trajectory.reward,
        "reward_terms": trajectory.reward_terms,
        "termination": trajectory.termination,
        "n_turns": trajectory.n_turns,
        "n_operations": trajectory.n_operations,
        "n_generated_tokens": trajectory.n_generated,
    }


def run_vlm_eval(
    model: str | Path,
    *,
    suites: Sequence[str],
    episodes: int = 20,
    k: int = 1,
    temperature: float | None = None,
    seed: int = 0,
    out: Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    settings: GenerationSettings | None = None,
    batch_size: int = 32,
    decode: str = "auto",
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """Load the model folder ``model`` (local files only), evaluate it on every suite, print the
    summary and pass@k tables, and with ``out`` write ``results.jsonl``, images and the viewer.

    ``temperature`` samples every episode at that temperature, ``k == 1`` included (0: greedy);
    without it sampling follows :func:`evaluate_vlm`. ``decode`` as in :class:`VLMPolicy`."""
    policy = VLMPolicy.from_pretrained(
        model, device=device, dtype=dtype, settings=settings, decode=decode
    )
    sampling = None if temperature is None else replace(policy.settings, temperature=temperature)
    play = functools.partial(
        evaluate_vlm,
        policy,
        episodes=episodes,
        k=k,
        seed=seed,
        settings=sampling,
        batch_size=batch_size,
        **env_kwargs,
    )
    results = evaluate_suites(play, suites, out)
    report(results, out, format_pass_table(pass_rates(results, k), k))
    return results


__all__ = [
    "evaluate_vlm",
    "format_pass_table",
    "pass_at_k",
    "pass_rates",
    "run_vlm_eval",
    "to_record",
]
