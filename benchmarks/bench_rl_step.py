"""Seconds per GRPO step, split into phases, with eager decoding (the baseline) and static
decoding (a CUDA graph a step on CUDA), in the same run.

Run on a GPU from the repository root (a few minutes on one H200)::

    PYTHONPATH=. python3 benchmarks/bench_rl_step.py --device cuda --model runs/evidence/sft/final \
        --out $OUT/rl_step.json

or on the CPU ``python benchmarks/bench_rl_step.py --device cpu`` (the tiny test model, two
steps a path, about a minute). Without ``--model`` the model is :mod:`random_vlm`'s
(``--model-size``, default ``16m`` on a GPU), saved to a temporary folder; a random model writes
no actions, so its episodes end after one turn. A trained model (``--model``) plays the turns a
real run plays.

Each path trains the same model with :func:`agents.train.grpo.train_grpo` on the built-in
counting suite for ``--steps`` steps from the same seed, with the settings of the RL recipe's
arms (8 prompts x 8 samples a step, 224x224 images, temperature 0.7, 256 tokens a turn, up to 4
turns, the vision tower frozen, bf16 autocast on CUDA). The first step of each path (kernel
selection, graph capture) is left out; the table gives the median over the others of each
phase the trainer times (``time/render``, ``prefill``, ``decode``, ``env``, ``optimise``), the
whole step, and RL steps per minute, with static against eager.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from random_vlm import SIZES, build_policy, device_name, print_header, write_json

from agents.train.config import GRPOConfig
from agents.train.grpo import train_grpo

PHASES = ("render", "prefill", "decode", "env", "optimise")


def run(args: argparse.Namespace, model: str, decode: str, out: Path) -> dict:
    """Train ``args.steps`` steps with ``decode``; the medians of the steps after the first."""
    config = GRPOConfig(
        model=model,
        output_dir=str(out),
        task="counting",
        difficulty=1,
        max_pixels=224 * 224,
        reward="vilasr",
        prompts_per_step=args.prompts,
        group_size=args.group_size,
        micro_batch=args.prompts * args.group_size,
        temperature=0.7,
        max_new_tokens=args.max_new_tokens,
        max_tokens=2048,
        max_turns=4,
        steps=args.steps,
        save_every=0,
        lr=1e-4,
        freeze_vision=True,
        dtype=args.dtype,
        device=args.device,
        decode=decode,
        seed=args.seed,
    )
    train_grpo(config)
    with open(out / "metrics.jsonl", encoding="utf-8") as file:
        steps = [json.loads(line) for line in file][1:]
    row = {"path": decode, "steps_timed": len(steps)}
    for phase in PHASES:
        row[phase] = statistics.median(s.get(f"time/{phase}", 0.0) for s in steps)
    row["step"] = statistics.median(s["train/step_time"] for s in steps)
    row["steps_per_minute"] = 60 / row["step"]
    row["generated_tokens"] = statistics.median(
        s["rollout/generated_tokens_mean"] * args.prompts * args.group_size for s in steps
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", help="a model folder (default: a random model, saved)")
    parser.add_argument("--model-size", choices=SIZES, default=None, help="16m on a GPU")
    parser.add_argument("--steps", type=int, default=None, help="steps a path (GPU 5, CPU 3)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts a step (GPU 8, CPU 2)")
    parser.add_argument("--group-size", type=int, default=None, help="GPU 8, CPU 2")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="GPU 256, CPU 16")
    parser.add_argument("--dtype", default="bfloat16", help="CUDA autocast dtype (bfloat16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()
    cpu = args.device == "cpu"
    args.model_size = args.model_size or ("tiny" if cpu else "16m")
    args.steps = args.steps or (3 if cpu else 5)
    args.prompts = args.prompts or (2 if cpu else 8)
    args.group_size = args.group_size or (2 if cpu else 8)
    args.max_new_tokens = args.max_new_tokens or (16 if cpu else 256)
    if cpu:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            policy = build_policy(
                size=args.model_size, device="cpu", dtype="float32", max_new_tokens=1
            )
            model = str(Path(tmp) / "model")
            policy.model.save_pretrained(model)
            policy.processor.save_pretrained(model)
        rows = [run(args, model, d, Path(tmp) / d) for d in ("eager", "static")]
    eager, static = rows
    name = device_name(args.device)
    print(
        f"\nGRPO step on {name}: {args.model or args.model_size}, {args.prompts} prompts x "
        f"{args.group_size} samples, {args.max_new_tokens} tokens a turn, median of "
        f"{eager['steps_timed']} steps after the first"
    )
    header = (
        f"{'path':>7} "
        + " ".join(f"{p:>9}" for p in PHASES)
        + f" {'step s':>8} {'steps/min':>10} {'gen tok':>8}"
    )
    print_header(header)
    for r in rows:
        print(
            f"{r['path']:>7} "
            + " ".join(f"{r[p]:>9.2f}" for p in PHASES)
            + f" {r['step']:>8.2f} {r['steps_per_minute']:>10.2f} {r['generated_tokens']:>8.0f}"
        )
    ratio = static["steps_per_minute"] / eager["steps_per_minute"]
    print(f"static/eager: {ratio:.2f}x RL steps a minute")
    if args.out:
        write_json(
            args.out,
            {
                "device": name,
                "model": args.model or args.model_size,
                "rows": rows,
                "static_vs_eager": ratio,
            },
        )


if __name__ == "__main__":
    main()
