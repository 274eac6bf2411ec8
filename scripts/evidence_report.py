"""Tables and plots of docs/results.md from the run folders of ``scripts/evidence.sh``.

    python scripts/evidence_report.py runs/evidence                 # one set of runs
    python scripts/evidence_report.py a=runs/first b=runs/second --plots docs/images

Every ``eval/NAME/results.jsonl`` under a folder becomes a row of the held-out table (accuracy is
MRA for counts; exact is the share answered exactly; format the share whose format term is 1;
corr the Pearson correlation of predicted and true counts, near 0 for a model that does not look
at the image and 0 when its predictions never change). Every ``NAME/metrics.jsonl`` becomes a
training curve: SFT runs (``train/loss``, and ``eval/accuracy`` and ``eval/corr`` when the run
validated as it trained) and RL runs (``rollout/reward_mean``, ``rollout/zero_std_groups``
and the termination reasons). With ``--plots DIR`` the curves are also drawn as PNG files
(needs matplotlib, in the ``train`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agents.evaluate import summarise
from agents.metrics import eval_metrics, read_metrics


def _label(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.partition("=")
    return (label, Path(path)) if sep else ("", Path(spec))


def eval_row(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One held-out table row from an evaluation's records."""
    (summary,) = summarise(results)
    metrics = {key.removeprefix("eval/"): value for key, value in eval_metrics(results).items()}
    return {
        "run": name,
        **metrics,
        "turns": summary["turns"],
        "reflection": summary["reflection"],
        "terminations": summary["terminations"],
    }


def eval_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| run | episodes | accuracy (MRA) | exact | format | answered | ops | turns | "
        "reflection | corr(pred, truth) | terminations |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        corr = f"{r['corr']:+.2f}"
        ends = ", ".join(f"{k} {v}" for k, v in r["terminations"].items())
        lines.append(
            f"| {r['run']} | {r['episodes']:.0f} | {r['accuracy']:.3f} | {r['exact']:.3f} | "
            f"{r['format']:.2f} | {r['answered']:.2f} | {r['operations']:.1f} | "
            f"{r['turns']:.1f} | {r['reflection']:.2f} | {corr} | {ends} |"
        )
    return "\n".join(lines)


def curve_row(name: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last values of a training run's main curves."""
    steps = [line for line in lines if "train/loss" in line or "rollout/reward_mean" in line]
    first, last = steps[0], steps[-1]
    row: dict[str, Any] = {"run": name, "steps": last["step"]}
    for key in ("train/loss", "rollout/reward_mean", "rollout/zero_std_groups"):
        if key in last:
            row[key] = (first[key], last[key])
    if "time/elapsed_s" in last:
        row["seconds"] = last["time/elapsed_s"]
    return row


def plot_curves(curves: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One PNG per metric found in any run: its value against the step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    titles = {
        "train/loss": ("SFT loss (assistant tokens)", "results_sft_loss.png"),
        "rollout/reward_mean": ("RL reward (mean over the batch)", "results_rl_reward.png"),
        "rollout/zero_std_groups": ("share of zero-std groups", "results_rl_zero_std.png"),
        "eval/accuracy": ("validation accuracy (MRA)", "results_eval_accuracy.png"),
        "eval/corr": ("validation corr(predicted, true count)", "results_eval_corr.png"),
    }
    for key, (title, filename) in titles.items():
        runs = {name: [(m["step"], m[key]) for m in ms if key in m] for name, ms in curves.items()}
        runs = {name: points for name, points in runs.items() if points}
        if not runs:
            continue
        figure, axis = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        for name, points in runs.items():
            axis.plot(*zip(*points), label=name, linewidth=1.2)
        axis.set(title=title, xlabel="optimiser step")
        if key == "train/loss":  # the first steps (about 6 nats) would flatten the rest
            axis.set_yscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / filename)
        plt.close(figure)
        written.append(out / filename)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders, optionally LABEL=FOLDER")
    parser.add_argument("--plots", type=Path, help="write the training curves as PNG here")
    args = parser.parse_args()
    rows, curves = [], {}
    for label, folder in map(_label, args.runs):
        prefix = f"{label}: " if label else ""
        for path in sorted(folder.glob("eval/*/results.jsonl")):
            results = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
            rows.append(eval_row(prefix + path.parent.name, results))
        for path in sorted(folder.glob("*/metrics.jsonl")):
            curves[prefix + path.parent.name] = read_metrics(path)
    print(eval_table(rows))
    print()
    for name, lines in curves.items():
        print(curve_row(name, lines))
    if args.plots:
        for path in plot_curves(curves, args.plots):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
