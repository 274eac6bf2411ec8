"""Tables and plots of the evidence notebook from the run folders of ``evidence.sh``.

    python experiments/evidence/report.py runs/evidence             # one set of runs
    python experiments/evidence/report.py a=runs/first b=runs/second --plots DIR

Every ``eval/NAME/results.jsonl`` under a folder becomes a row of the held-out table (accuracy is
MRA for counts; exact is the share answered exactly; format the share whose format term is 1;
corr the Pearson correlation of predicted and true counts, near 0 for a model that does not look
at the image and 0 when its predictions never change). Every ``NAME/metrics.jsonl`` becomes a
training curve: SFT runs (``train/loss``, and ``eval/accuracy`` and ``eval/corr`` when the run
validated as it trained) and RL runs (``rollout/reward_mean``, ``rollout/zero_std_groups``
and the termination reasons), and each RL run a row of the RL table: the first and last steps'
batch reward, share of zero-std groups and share of episodes ending in an answer (means over
``--window`` steps), and its terminations over all of training. With ``--start NAME``, each held-out
row also gets its accuracy difference from evaluation NAME of the same folder, item by item, with
a 95% bootstrap interval over the items (the spread of the test set, not of the seeds); with
``--constant N`` (repeatable), the same difference from always answering N, scored with MRA.
With ``--targets NAME`` (an evaluation of an agent that boxes exactly the targets, such as the
oracle, on the same items), where each model's boxes land: the share of its box centres inside
a target's box, and the share of targets with such a centre. With
``--plots DIR`` the curves are also drawn as PNG files (needs matplotlib, in the ``train``
extra): one panel per LABEL, and the seeds of an arm (runs named ``ARM-sSEED``) in one colour,
thin, with their mean drawn thick.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from agents.evaluate import summarise
from agents.train.metrics import eval_metrics, read_metrics
from drawenv.rewards import mra


def _label(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.partition("=")
    return (label, Path(path)) if sep else ("", Path(spec))


def eval_row(
    name: str, results: list[dict[str, Any]], start: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One held-out table row from an evaluation's records; with ``start``, also ``delta``."""
    (summary,) = summarise(results)
    metrics = {key.removeprefix("eval/"): value for key, value in eval_metrics(results).items()}
    row = {
        "run": name,
        **metrics,
        "turns": summary["turns"],
        "reflection": summary["reflection"],
        "terminations": summary["terminations"],
    }
    if start is not None:
        row["delta"] = paired_difference(results, start)
    return row


def paired_difference(
    results: list[dict[str, Any]], start: list[dict[str, Any]], draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean accuracy of ``results`` minus that of ``start`` on the same items (matched by reset
    seed), with the 2.5% and 97.5% points of its bootstrap over the items."""
    before = {r["seed"]: r["accuracy"] for r in start}
    if sorted(before) != sorted(r["seed"] for r in results):
        raise ValueError(
            "paired_difference needs two evaluations of the same items (reset seeds): evaluate "
            "both models with the same --seed and -n."
        )
    diffs = [r["accuracy"] - before[r["seed"]] for r in results]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(draws))
    return sum(diffs) / len(diffs), means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def interval(difference: tuple[float, float, float]) -> str:
    """A :func:`paired_difference` as ``+0.081 [-0.002, +0.161]``."""
    return "{:+.3f} [{:+.3f}, {:+.3f}]".format(*difference)


def constant_answer(results: list[dict[str, Any]], answer: float) -> list[dict[str, Any]]:
    """The records of always answering ``answer`` on the items of ``results`` (MRA scored)."""
    return [
        {"seed": r["seed"], "accuracy": float(mra(answer, float(r["answer"])))} for r in results
    ]


def constant_table(evaluations: dict[str, list[dict[str, Any]]], answers: list[float]) -> str:
    """Each evaluation's difference from always answering each of ``answers``, item by item."""
    lines = [
        "| run | " + " | ".join(f"always {a:g}" for a in answers) + " |",
        "|---|" + "---|" * len(answers),
    ]
    for name, results in evaluations.items():
        cells = [interval(paired_difference(results, constant_answer(results, a))) for a in answers]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines)


def boxes(record: dict[str, Any]) -> list[list[float]]:
    """The corners of every box an episode drew, over all its turns."""
    return [
        op["bbox"] for turn in record["turns"] for op in turn["operations"] if op["kind"] == "box"
    ]


def box_placement(
    results: list[dict[str, Any]], targets: list[dict[str, Any]]
) -> tuple[int, float, float]:
    """The boxes drawn in ``results``, the share whose centre lies inside a box of ``targets``
    (matched by reset seed), and the share of target boxes that hold at least one such centre."""
    by_seed = {r["seed"]: boxes(r) for r in targets}
    if any(r["seed"] not in by_seed for r in results):
        raise ValueError(
            "box_placement needs the targets of the same items (reset seeds): evaluate the "
            "target agent with the same --seed and -n."
        )
    drawn = inside = hit = total = 0
    for record in results:
        centres = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in boxes(record)]
        held = [
            [x1 <= x <= x2 and y1 <= y <= y2 for x, y in centres]
            for x1, y1, x2, y2 in by_seed[record["seed"]]
        ]
        drawn += len(centres)
        inside += sum(any(column) for column in zip(*held)) if held else 0
        hit += sum(any(row) for row in held)
        total += len(held)
    return drawn, inside / max(drawn, 1), hit / max(total, 1)


def eval_table(rows: list[dict[str, Any]]) -> str:
    delta = any("delta" in r for r in rows)
    lines = [
        "| run | episodes | accuracy (MRA) | "
        + ("difference from the start [95% interval] | " if delta else "")
        + "exact | format | answered | ops | turns | reflection | corr(pred, truth) | "
        "terminations |",
        "|---|---|---|" + ("---|" if delta else "") + "---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        corr = f"{r['corr']:+.2f}"
        ends = ", ".join(f"{k} {v}" for k, v in r["terminations"].items())
        diff = ""
        if delta:
            diff = f"{interval(r['delta'])} | " if "delta" in r else "| "
        lines.append(
            f"| {r['run']} | {r['episodes']:.0f} | {r['accuracy']:.3f} | {diff}{r['exact']:.3f} | "
            f"{r['format']:.2f} | {r['answered']:.2f} | {r['operations']:.1f} | "
            f"{r['turns']:.1f} | {r['reflection']:.2f} | {corr} | {ends} |"
        )
    return "\n".join(lines)


def placement_table(evaluations: dict[str, list[dict[str, Any]]], targets: str) -> str:
    """:func:`box_placement` of each evaluation against the evaluation named ``targets`` in
    the same folder (the part of its name after the label)."""
    lines = [
        "| run | boxes | box centres inside a target | targets with a centre inside |",
        "|---|---|---|---|",
    ]
    for name, results in evaluations.items():
        label, _, run = name.rpartition(": ")
        reference = evaluations.get(f"{label}: {targets}" if label else targets)
        if reference is None or run == targets:
            continue
        try:
            drawn, inside, hit = box_placement(results, reference)
        except ValueError:  # evaluated on other items
            lines.append(f"| {name} | items other than {targets}'s | | |")
            continue
        lines.append(f"| {name} | {drawn} | {inside:.3f} | {hit:.3f} |")
    return "\n".join(lines)


def rl_row(name: str, lines: list[dict[str, Any]], window: int = 4) -> dict[str, Any]:
    """An RL run's first and last ``window`` steps (means) of the batch reward, the share of
    zero-std groups and the share of episodes ending in an answer; its terminations in all."""
    steps = [line for line in lines if "rollout/reward_mean" in line]
    row: dict[str, Any] = {"run": name, "steps": steps[-1]["step"]}
    for key in ("rollout/reward_mean", "rollout/zero_std_groups", "rollout/answer_share"):
        values = [line[key] for line in steps]
        row[key] = (
            sum(values[:window]) / len(values[:window]),
            sum(values[-window:]) / len(values[-window:]),
        )
    ends: Counter[str] = Counter()
    for line in steps:
        for key, count in line.items():
            if key.startswith("rollout/termination/"):
                ends[key.removeprefix("rollout/termination/")] += int(count)
    row["terminations"] = dict(ends.most_common())
    return row


def rl_table(rows: list[dict[str, Any]], window: int = 4) -> str:
    lines = [
        f"| run | steps | batch reward, first {window} → last {window} steps | zero-std groups | "
        "episodes ending in an answer | terminations over training |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            "{:.3f} → {:.3f}".format(*r[key])
            for key in ("rollout/reward_mean", "rollout/zero_std_groups", "rollout/answer_share")
        ]
        ends = ", ".join(f"{k} {v}" for k, v in r["terminations"].items())
        lines.append(f"| {r['run']} | {r['steps']} | {' | '.join(cells)} | {ends} |")
    return "\n".join(lines)


def with_answer_share(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rollout/answer_share`` added to each RL step: episodes ending in an answer / episodes."""
    for line in lines:
        if line.get("rollout/episodes"):
            answered = line.get("rollout/termination/answer", 0.0)
            line["rollout/answer_share"] = answered / line["rollout/episodes"]
    return lines


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


def arm_of(name: str) -> str:
    """The arm of a run named ``ARM-sSEED`` (the name itself when it has no seed)."""
    return re.sub(r"-s\d+$", "", name)


def plot_curves(curves: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One PNG per metric found in any run: its value against the step, one panel per label
    (runs named ``LABEL: RUN``), the seeds of one arm in one colour with their mean thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    titles = {
        "train/loss": ("SFT loss (assistant tokens)", "results_sft_loss.png"),
        "rollout/reward_mean": ("RL reward (mean over the batch)", "results_rl_reward.png"),
        "rollout/zero_std_groups": ("share of zero-std groups", "results_rl_zero_std.png"),
        "rollout/answer_share": ("share of episodes ending in an answer", "results_rl_answer.png"),
        "eval/accuracy": ("validation accuracy (MRA)", "results_eval_accuracy.png"),
        "eval/corr": ("validation corr(predicted, true count)", "results_eval_corr.png"),
    }
    for key, (title, filename) in titles.items():
        panels: dict[str, dict[str, dict[str, list]]] = {}  # label -> arm -> run -> points
        for name, lines in curves.items():
            points = [(m["step"], m[key]) for m in lines if key in m]
            if points:
                label, _, run = name.rpartition(": ")
                panels.setdefault(label, {}).setdefault(arm_of(run), {})[run] = points
        if not panels:
            continue
        figure, axes = plt.subplots(
            1,
            len(panels),
            figsize=(2.2 + 4.2 * len(panels), 3.6),
            dpi=110,
            sharey=True,
            squeeze=False,
        )
        colours: dict[str, str] = {}  # one colour an arm in every panel
        for arms in panels.values():
            for arm in arms:
                colours.setdefault(arm, f"C{len(colours)}")
        for axis, (label, arms) in zip(axes[0], panels.items()):
            for arm, runs in arms.items():
                style = {"color": colours[arm]}
                if len(runs) == 1:
                    axis.plot(*zip(*next(iter(runs.values()))), label=arm, linewidth=1.2, **style)
                    continue
                for points in runs.values():
                    axis.plot(*zip(*points), linewidth=0.7, alpha=0.35, **style)
                by_step: dict[int, list[float]] = {}
                for points in runs.values():
                    for step, value in points:
                        by_step.setdefault(step, []).append(value)
                steps = sorted(s for s, values in by_step.items() if len(values) == len(runs))
                means = [sum(by_step[s]) / len(runs) for s in steps]
                axis.plot(steps, means, label=f"{arm} (mean of {len(runs)})", linewidth=2, **style)
            axis.set(title=label or title, xlabel="optimiser step")
            if key == "train/loss":  # the first steps (about 6 nats) would flatten the rest
                axis.set_yscale("log")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
        if len(panels) > 1 or next(iter(panels)):
            figure.suptitle(title)
        figure.tight_layout()
        figure.savefig(out / filename)
        plt.close(figure)
        written.append(out / filename)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders, optionally LABEL=FOLDER")
    parser.add_argument(
        "--start", help="also compare each evaluation with eval/START, item by item"
    )
    parser.add_argument(
        "--constant",
        type=float,
        action="append",
        default=[],
        help="also compare each evaluation with always answering this number (repeatable)",
    )
    parser.add_argument("--targets", help="also score box placement against eval/TARGETS")
    parser.add_argument("--window", type=int, default=4, help="steps averaged in the RL table")
    parser.add_argument("--plots", type=Path, help="write the training curves as PNG here")
    args = parser.parse_args()
    rows, curves, evaluations = [], {}, {}
    for label, folder in map(_label, args.runs):
        prefix = f"{label}: " if label else ""
        start = None
        if args.start and (folder / "eval" / args.start / "results.jsonl").exists():
            start = read_metrics(folder / "eval" / args.start / "results.jsonl")
        for path in sorted(folder.glob("eval/*/results.jsonl")):
            results = read_metrics(path)
            # only evaluations of the start's items (validation items have other seeds)
            same = start and {r["seed"] for r in results} == {r["seed"] for r in start}
            rows.append(eval_row(prefix + path.parent.name, results, start if same else None))
            evaluations[prefix + path.parent.name] = results
        for path in sorted(folder.glob("*/metrics.jsonl")):
            curves[prefix + path.parent.name] = with_answer_share(read_metrics(path))
    print(eval_table(rows))
    if args.constant:
        print()
        print(constant_table(evaluations, args.constant))
    if args.targets:
        print()
        print(placement_table(evaluations, args.targets))
    rl = {
        name: lines
        for name, lines in curves.items()
        if any("rollout/episodes" in line for line in lines)
    }
    if rl:
        print()
        print(
            rl_table([rl_row(name, lines, args.window) for name, lines in rl.items()], args.window)
        )
    for name, lines in curves.items():
        if name not in rl:
            print(curve_row(name, lines))
    if args.plots:
        for path in plot_curves(curves, args.plots):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
