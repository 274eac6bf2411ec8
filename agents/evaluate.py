"""Play agents in DrawSpatial-v0 and record what happened, turn by turn.

:func:`play_episode` runs one episode and returns its record (the ``results.jsonl`` schema of
``docs/cli.md``); :func:`evaluate` runs many; :func:`summarise` makes the agent x suite table.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agents.base import Agent
from drawenv import VILASR_ENV_ID
from drawenv.env import DrawSpatialEnv
from drawenv.rewards import vilasr_eval_score
from drawenv.vilasr import ViLaSREnv, format_type_table


def play_episode(
    env: DrawSpatialEnv,
    agent: Agent,
    *,
    seed: int,
    index: int | None = None,
    image_dir: Path | None = None,
    episode: int = 0,
) -> dict[str, Any]:
    """Play one episode; with ``image_dir``, every image is saved there as PNG and referenced."""
    options = {} if index is None else {"index": index}
    obs, info = env.reset(seed=seed, options=options)
    task = env.task
    agent.reset(
        obs,
        info,
        protocol=env.protocol.name,
        coords=env.coords,
        seed=seed,
        task=task if agent.uses_ground_truth else None,
    )
    record: dict[str, Any] = {
        "episode": episode,
        "agent": agent.name,
        "suite": str(task.metadata.get("suite", "custom")),
        "task_id": task.id,
        "seed": seed,
        "prompt": obs["text"],
        "system_prompt": info["system_prompt"],
        "answer": task.answer,
        "answer_type": task.answer_type,
        "images": save_images(obs["images"], range(1, len(obs["images"]) + 1), image_dir, episode),
        "turns": [],
    }
    done = False
    while not done:
        text = agent.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(text)
        done = terminated or truncated
        new = info["new_image_indices"]
        record["turns"].append(
            {
                "text": text,
                "operations": [{"kind": op.kind, **asdict(op)} for op in info["operations"]],
                "new_images": new,
                "new_image_paths": save_images(obs["images"], new, image_dir, episode),
                "errors": info["errors"],
                "message": obs["text"],
                "reward": reward,
            }
        )
    terms = info["reward_terms"]
    record.update(
        prediction=info["prediction"],
        accuracy=terms.get("accuracy", 0.0),
        correct=terms.get("accuracy", 0.0) >= 1.0,
        reward=reward,
        reward_terms=terms,
        termination=info["termination"],
        n_turns=info["turn"],
        n_operations=sum(len(turn["operations"]) for turn in record["turns"]),
    )
    given = task.metadata.get("vilasr")
    if given:  # a record converted from ViLaSR's files: also scored as their eval script does
        last = record["turns"][-1]["text"] if record["turns"] else ""
        record["vilasr_score"] = vilasr_eval_score(last, given["answer"], given["question_type"])
        record["vilasr_type"] = str(
            task.metadata.get("original_question_type") or given["question_type"]
        )
    return record


def save_images(
    images: Sequence[np.ndarray], indices: Iterable[int], image_dir: Path | None, episode: int
) -> list[str]:
    """Save the 1-based ``indices`` of ``images`` as PNG in ``image_dir``; returns their paths
    relative to its parent, as records reference them (nothing is saved without ``image_dir``)."""
    if image_dir is None:
        return []
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in indices:
        path = image_dir / f"ep{episode}_img{k}.png"
        Image.fromarray(images[k - 1]).save(path, compress_level=1)
        paths.append(f"{image_dir.name}/{path.name}")
    return paths


def evaluate(
    agent: Agent,
    *,
    task: Any = "mixed",
    episodes: int = 10,
    seed: int = 0,
    image_dir: Path | None = None,
    first_episode: int = 0,
    progress: bool = False,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """Play ``episodes`` episodes with seeds ``seed, seed + 1, …``; item ``i`` of a finite source
    or a sampled item of an endless one. ``env_id="DrawSpatial-ViLaSR-v0"`` in ``env_kwargs``
    plays ViLaSR's rollout (:class:`~drawenv.vilasr.ViLaSREnv`) instead of DrawSpatial-v0."""
    env_id = env_kwargs.pop("env_id", None)
    env = (ViLaSREnv if env_id == VILASR_ENV_ID else DrawSpatialEnv)(task=task, **env_kwargs)
    results = []
    for i in range(episodes):
        index = i if env.source.size is not None else None
        results.append(
            play_episode(
                env,
                agent,
                seed=seed + i,
                index=index,
                image_dir=image_dir,
                episode=first_episode + i,
            )
        )
        if progress:
            print_progress(f"{agent.name} on {task}", i + 1, episodes)
    return results


def print_progress(label: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr, redrawn in place until ``done == total``; when stderr
    is not a terminal (a log file), only the final line, without ``\\r``."""
    if not sys.stderr.isatty():
        if done == total:
            print(f"{label:<28} {done}/{total}", file=sys.stderr, flush=True)
        return
    width = 30
    filled = round(width * done / total)
    end = "\n" if done == total else ""
    print(
        f"\r{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def summarise(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (agent, suite): accuracy (exact or MRA), mean reward, turns, operations per
    episode, reflection rate and the termination reasons."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        groups[(result["agent"], result["suite"])].append(result)
    rows = []
    for (agent, suite), group in groups.items():
        n = len(group)
        rows.append(
            {
                "agent": agent,
                "suite": suite,
                "episodes": n,
                "accuracy": sum(r["accuracy"] for r in group) / n,
                "reward": sum(r["reward"] for r in group) / n,
                "turns": sum(r["n_turns"] for r in group) / n,
                "operations": sum(r["n_operations"] for r in group) / n,
                "reflection": sum(is_reflective(r) for r in group) / n,
                "terminations": dict(Counter(r["termination"] for r in group).most_common()),
            }
        )
    return rows


def is_reflective(result: dict[str, Any]) -> bool:
    """Some label was drawn at two different steps with different geometry: the model looked at
    its drawing and fixed it (docs/training.md, reflective rejection sampling)."""
    seen: dict[tuple[str, str], tuple[int, Any]] = {}
    for step, turn in enumerate(result["turns"]):
        for op in turn["operations"]:
            key = (op["kind"], op["label"])
            geometry = op.get("bbox") or (op.get("start"), op.get("end"))
            if key in seen and seen[key][0] != step and seen[key][1] != geometry:
                return True
            seen.setdefault(key, (step, geometry))
    return False


def format_table(rows: list[dict[str, Any]]) -> str:
    """The summary rows as a fixed-width text table."""
    header = (
        f"{'agent':<12} {'suite':<10} {'n':>4} {'acc/MRA':>8} {'reward':>7} {'turns':>6} "
        f"{'ops':>5} {'refl':>5}  terminations"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in r["terminations"].items())
        lines.append(
            f"{r['agent']:<12} {r['suite']:<10} {r['episodes']:>4} {r['accuracy']:>8.3f} "
            f"{r['reward']:>7.3f} {r['turns']:>6.2f} {r['operations']:>5.1f} "
            f"{r['reflection']:>5.2f}  {reasons}"
        )
    return "\n".join(lines)


def write_results(results: Iterable[dict[str, Any]], path: Path) -> Path:
    """Write one JSON line per episode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        for result in results:
            file.write(json.dumps(result, ensure_ascii=False, default=_plain) + "\n")
    return path


def evaluate_suites(
    play: Callable[..., list[dict[str, Any]]],
    suites: Iterable[Any],
    out: Path | None,
    *,
    first_episode: int = 0,
) -> list[dict[str, Any]]:
    """Records of ``play(task=suite, …)`` for every suite, episodes numbered on from
    ``first_episode`` across the suites, images under ``out/images`` when ``out`` is given."""
    results: list[dict[str, Any]] = []
    for suite in suites:
        results += play(
            task=suite,
            image_dir=out / "images" if out else None,
            first_episode=first_episode + len(results),
            progress=True,
        )
    return results


def report(results: list[dict[str, Any]], out: Path | None, *tables: str) -> None:
    """Print the agent x suite table and any further ``tables``; with ``out``, write
    ``results.jsonl`` and the viewer there (:func:`save_run`)."""
    print()
    print(format_table(summarise(results)))
    vilasr = [(r["vilasr_type"], r["vilasr_score"]) for r in results if "vilasr_score" in r]
    if vilasr:
        tables = (*tables, format_type_table(vilasr))
    for table in tables:
        print()
        print(table)
    if out is not None:
        save_run(results, out)


def save_run(results: list[dict[str, Any]], out: Path) -> None:
    """Write ``out/results.jsonl`` and the viewer ``out/index.html``, and print both paths."""
    from agents.viewer import write_viewer

    path = write_results(results, out / "results.jsonl")
    page = write_viewer(results, out / "index.html", base_dir=out)
    print(f"\nresults: {path}\nviewer:  {page}")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
