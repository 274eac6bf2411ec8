"""Training metrics: per-episode summaries, rollout statistics, a JSONL/TensorBoard logger, plots.

Keys are namespaced the CleanRL way: ``train/`` (optimisation bookkeeping), ``loss/`` (what the
loss saw) and ``rollout/`` (what the policy did in the env). :func:`episode_summary` reduces a
:class:`~agents.vlm.rollout.Trajectory` to a few plain numbers, small enough to gather from every
rank of a distributed run; :func:`rollout_metrics` turns a batch of them into the ``rollout/``
keys. :class:`MetricsLogger` writes one JSON line per step (``metrics.jsonl``) and, when
``torch.utils.tensorboard`` can be imported, TensorBoard events. :func:`plot_metrics` draws the
main curves as PNG files when matplotlib is installed (the ``train`` extra).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agents.evaluate import is_reflective
from drawenv.rewards import parse_number

MAIN_CURVES = (
    "rollout/reward_mean",
    "rollout/reward_std",
    "rollout/zero_std_groups",
    "rollout/reflection_rate",
    "rollout/turns_mean",
    "rollout/generated_tokens_mean",
    "loss/policy",
    "loss/clip_fraction",
    "loss/approx_kl",
    "rollout/entropy",
    "train/grad_norm",
    "train/lr",
)
"""Keys that :func:`plot_metrics` draws by default, one panel each."""


def episode_summary(trajectory: Any) -> dict[str, Any]:
    """The numbers of one trajectory that the rollout metrics need (JSON-able, rank-portable)."""
    on = trajectory.mask.bool()
    return {
        "reward": float(trajectory.reward),
        "terms": {k: float(v) for k, v in trajectory.reward_terms.items()},
        "termination": trajectory.termination or "unknown",
        "turns": trajectory.n_turns,
        "operations": trajectory.n_operations,
        "generated": int(on.sum()),
        "length": len(trajectory.ids),
        # −log p of the sampled tokens: its mean is a Monte Carlo estimate of the entropy.
        "neg_logprob_sum": float(-trajectory.logprobs[on].double().sum()),
        "reflective": is_reflective({"turns": trajectory.turns}),
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _std(values: Sequence[float]) -> float:
    mean = _mean(values)
    return math.sqrt(_mean([(v - mean) ** 2 for v in values])) if values else 0.0


def rollout_metrics(summaries: Sequence[dict[str, Any]], group_size: int) -> dict[str, float]:
    """``rollout/`` metrics of a batch of :func:`episode_summary` records laid out in groups.

    Reward mean and (population) std, the mean of every reward term, the share of groups whose
    rewards are all equal (no GRPO signal), turns, operations and generated tokens per episode,
    the reflection rate, the sampled-token entropy estimate and one count per termination reason.
    """
    rewards = [s["reward"] for s in summaries]
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    tokens = sum(s["generated"] for s in summaries)
    metrics = {
        "rollout/episodes": float(len(summaries)),
        "rollout/reward_mean": _mean(rewards),
        "rollout/reward_std": _std(rewards),
        "rollout/zero_std_groups": _mean([float(max(g) - min(g) == 0) for g in groups]),
        "rollout/turns_mean": _mean([s["turns"] for s in summaries]),
        "rollout/operations_mean": _mean([s["operations"] for s in summaries]),
        "rollout/generated_tokens_mean": _mean([s["generated"] for s in summaries]),
        "rollout/sequence_length_mean": _mean([s["length"] for s in summaries]),
        "rollout/reflection_rate": _mean([float(s["reflective"]) for s in summaries]),
        "rollout/entropy": sum(s["neg_logprob_sum"] for s in summaries) / max(tokens, 1),
    }
    names = sorted({name for s in summaries for name in s["terms"]})
    for name in names:
        metrics[f"rollout/reward_{name}"] = _mean([s["terms"].get(name, 0.0) for s in summaries])
    for reason, count in sorted(Counter(s["termination"] for s in summaries).items()):
        metrics[f"rollout/termination/{reason}"] = float(count)
    return metrics


def correlation(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Pearson correlation of ``(x, y)`` pairs; None with fewer than two or a constant side."""
    pairs = list(pairs)
    if len(pairs) < 2:
        return None
    mx, my = _mean([x for x, _ in pairs]), _mean([y for _, y in pairs])
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def eval_metrics(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``eval/`` metrics of evaluation records (the ``results.jsonl`` schema): mean accuracy,
    the shares answered exactly, with the format term 1 and with any answer, operations per
    episode, and ``eval/corr``, the correlation of numeric predictions with the truth (0 when
    either side is constant: a model that ignores the image writes one count for every image)."""
    pairs = [
        (p, t)
        for r in results
        if r["prediction"] is not None
        and (p := parse_number(str(r["prediction"]))) is not None
        and (t := parse_number(str(r["answer"]))) is not None
    ]
    return {
        "eval/episodes": float(len(results)),
        "eval/accuracy": _mean([r["accuracy"] for r in results]),
        "eval/exact": _mean([float(r["correct"]) for r in results]),
        "eval/format": _mean([float(r["reward_terms"].get("format", 0.0) == 1.0) for r in results]),
        "eval/answered": _mean([float(r["prediction"] is not None) for r in results]),
        "eval/operations": _mean([r["n_operations"] for r in results]),
        "eval/corr": correlation(pairs) or 0.0,
    }


def advantage_metrics(advantages: Sequence[float]) -> dict[str, float]:
    """Mean, std, min and max of the advantages of a batch, as ``train/advantage_*``."""
    values = [float(a) for a in advantages]
    return {
        "train/advantage_mean": _mean(values),
        "train/advantage_std": _std(values),
        "train/advantage_min": min(values, default=0.0),
        "train/advantage_max": max(values, default=0.0),
    }


class MetricsLogger:
    """Writes one JSON line per logged record to ``output_dir/name`` (``metrics.jsonl``: one
    per step) and, with ``tensorboard=True``, TensorBoard scalars.

    A new run starts the file afresh. A resumed run passes ``keep_before=step``: the lines of
    earlier steps are kept and those the interrupted run wrote after its checkpoint are dropped.
    """

    def __init__(
        self,
        output_dir: str | Path,
        *,
        tensorboard: bool = False,
        keep_before: int | None = None,
        name: str = "metrics.jsonl",
    ):
        self.path = Path(output_dir) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_before is not None and self.path.is_file():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= keep_before]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print(
                    "tensorboard=true but the tensorboard package is missing "
                    "(`pip install tensorboard`); writing metrics.jsonl only.",
                    file=sys.stderr,
                )
            else:
                self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Append ``metrics`` for ``step``."""
        record = {"step": step, **metrics}
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.close()


def rollout_records(
    prompts: Sequence[tuple[int, int]],
    summaries: Sequence[dict[str, Any]],
    advantages: Sequence[float],
    group_size: int,
) -> list[dict[str, Any]]:
    """One record per trajectory of a step, in batch order: its prompt (place in the batch,
    task index, reset seed), its place in the group, and what it earned and cost."""
    records = []
    for i, (summary, advantage) in enumerate(zip(summaries, advantages, strict=True)):
        index, seed = prompts[i // group_size]
        records.append(
            {
                "prompt": i // group_size,
                "sample": i % group_size,
                "task_index": index,
                "seed": seed,
                "reward": summary["reward"],
                "advantage": float(advantage),
                "generated": summary["generated"],
                "turns": summary["turns"],
                "termination": summary["termination"],
            }
        )
    return records


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def plot_metrics(
    metrics_path: str | Path, out_dir: str | Path, keys: Iterable[str] = MAIN_CURVES
) -> Path | None:
    """Draw ``keys`` against the step into ``out_dir/curves.png``; ``None`` (with a message)
    when matplotlib is not installed or nothing was logged."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib is not installed: no curves.png (pip install 'drawenv[train]').",
            file=sys.stderr,
        )
        return None
    records = read_metrics(metrics_path)
    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        return None
    columns = 3
    rows = math.ceil(len(keys) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in records if key in r]
        axis.plot([p[0] for p in points], [p[1] for p in points])
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
    for axis in list(axes.flat)[len(keys) :]:
        axis.set_visible(False)
    figure.tight_layout()
    out = Path(out_dir) / "curves.png"
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out


__all__ = [
    "MAIN_CURVES",
    "MetricsLogger",
    "advantage_metrics",
    "correlation",
    "episode_summary",
    "eval_metrics",
    "plot_metrics",
    "read_metrics",
    "rollout_metrics",
]
