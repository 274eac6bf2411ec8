"""GRPO optimisation throughput: the trainer's forward, backward and AdamW step over one batch.

Run on a GPU (from the repository root)::

    PYTHONPATH=. python3 benchmarks/bench_grpo.py --device cuda --out $OUT/grpo.json
    PYTHONPATH=. python3 benchmarks/bench_grpo.py --device cuda --gradient-checkpointing \\
        --out $OUT/grpo_checkpointing.json

or on the CPU ``python benchmarks/bench_grpo.py --device cpu`` (the tiny test model unless
``--large``). Larger runs:
``--episodes 64 --micro-batches 1,8,16,64 --max-new-tokens 256``.

The model is :mod:`random_vlm`'s (a ~0.8B random-weight Qwen2.5-VL; ``--tiny``: the test model),
set up as :func:`agents.train.grpo.train_grpo` sets it up: float32 weights and AdamW states, the
vision tower frozen, forward passes under CUDA autocast in ``--dtype``, and with
``--gradient-checkpointing`` activations recomputed in the backward pass. One batched rollout
plays ``--episodes`` episodes in groups of ``--group-size`` (the trainer's envs and advantages;
64 tokens per turn, the first turn opening with a scripted drawing, ``max_turns=2``). Each row
then times one call of :func:`agents.train.grpo.optimise` over all of them (one epoch: a forward
and backward pass per micro-batch, then one clipped AdamW step), after an untimed call on one
micro-batch. Tokens/s count the trajectories' whole sequences (what the forward passes read) and
their generated tokens (what the loss trains). The baseline is micro-batch 1, one trajectory per
forward pass, measured in the same run. A micro-batch that does not fit in GPU memory is
reported as such.
"""

from __future__ import annotations

import argparse
import math

import random_vlm as bench
import torch

from agents.train.config import GRPOConfig
from agents.train.distributed import Ranks
from agents.train.grpo import Models, config_advantages, make_envs, optimise
from agents.train.optim import enable_activation_checkpointing, freeze_vision_tower, make_optimizer
from agents.vlm.device import autocast
from agents.vlm.rollout import Trajectory, rollout


def measure(
    config: GRPOConfig, trajectories: list[Trajectory], advantages: torch.Tensor, models: Models
) -> dict:
    """Time one :func:`optimise` call over ``trajectories`` in micro-batches of
    ``config.micro_batch``."""
    ranks = Ranks(0, 1, models.policy.device)
    size = config.micro_batch
    sequence = sum(len(t.ids) for t in trajectories)
    generated = sum(t.n_generated for t in trajectories)
    result = {
        "micro_batch": size,
        "forwards": math.ceil(len(trajectories) / size),
        "sequence_tokens": sequence,
        "generated_tokens": generated,
    }
    try:
        # Untimed on one micro-batch first: kernel selection, allocator growth, AdamW state.
        optimise(config, models, trajectories[:size], advantages[:size], ranks)
        start = bench.start_clock(config.device)
        metrics = optimise(config, models, trajectories, advantages, ranks)
        seconds = bench.seconds_since(start, config.device)
    except torch.OutOfMemoryError:
        seconds = None
    if seconds is None:
        models.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        return {**result, "out_of_memory": True}
    return {
        **result,
        "out_of_memory": False,
        "seconds": seconds,
        "sequence_tokens_per_s": sequence / seconds,
        "generated_tokens_per_s": generated / seconds,
        "peak_gpu_gib": bench.peak_gib(config.device),
        "grad_norm": metrics["train/grad_norm"],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny test model (the default on the CPU)"
    )
    parser.add_argument("--large", action="store_true", help="the ~0.8B model even on the CPU")
    parser.add_argument("--episodes", type=int, default=32, help="trajectories (default 32)")
    parser.add_argument("--group-size", type=int, default=8, help="GRPO group size (default 8)")
    parser.add_argument(
        "--micro-batches", default="1,8,32", help="micro-batch sizes (default 1,8,32)"
    )
    parser.add_argument("--dtype", default="bfloat16", help="CUDA autocast dtype (bfloat16)")
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations"
    )
    parser.add_argument("--task", default="counting", help="env task (default counting)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()
    args.tiny = args.tiny or (args.device == "cpu" and not args.large)  # a minute on a CPU
    if args.episodes % args.group_size:
        parser.error(f"--episodes must be a multiple of --group-size, got {args.episodes}")
    return args


def configs_of(args: argparse.Namespace) -> list[GRPOConfig]:
    """One config per micro-batch size, micro-batch 1 (the baseline) first."""
    sizes = [int(s) for s in args.micro_batches.split(",")]
    if sizes[0] != 1:
        sizes.insert(0, 1)
    return [
        GRPOConfig(
            model="random weights",  # never loaded: the policy is built in main
            task=args.task,
            prompts_per_step=max(1, args.episodes // args.group_size),
            group_size=args.group_size,
            micro_batch=size,
            max_new_tokens=args.max_new_tokens,
            max_turns=2,
            dtype=args.dtype,
            device=args.device,
            gradient_checkpointing=args.gradient_checkpointing,
            seed=args.seed,
        )
        for size in sizes
    ]


def print_table(rows: list[dict], args: argparse.Namespace, params: int, trained: int) -> None:
    dtype = args.dtype if args.device.startswith("cuda") else "float32"
    print(
        f"GRPO optimisation on {bench.device_name(args.device)}: Qwen2.5-VL random weights, "
        f"{params / 1e6:,.1f}M params ({trained / 1e6:,.1f}M trained), fp32 weights, {dtype} "
        f"forward, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}; "
        f"{args.episodes} trajectories of {args.task} (groups of {args.group_size}, "
        f"{rows[0]['sequence_tokens'] / args.episodes:,.0f} tokens each, "
        f"{rows[0]['generated_tokens'] / args.episodes:,.0f} generated)"
    )
    header = (
        f"{'micro':>5} {'forwards':>8} {'seconds':>8} {'seq tok/s':>10} {'gen tok/s':>10} "
        f"{'peak GiB':>9} {'x micro 1':>10}"
    )
    bench.print_header(header)
    for r in rows:
        if r["out_of_memory"]:
            print(f"{r['micro_batch']:>5} {r['forwards']:>8}  out of GPU memory")
            continue
        peak = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}"
        ratio = r.get("ratio_vs_micro_batch1")
        print(
            f"{r['micro_batch']:>5} {r['forwards']:>8} {r['seconds']:>8.2f} "
            f"{r['sequence_tokens_per_s']:>10.0f} {r['generated_tokens_per_s']:>10.0f} "
            f"{peak:>9} {'-' if ratio is None else f'{ratio:.2f}':>10}"
        )


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = configs_of(args)
    config = configs[0]
    policy = bench.build_policy(
        tiny=args.tiny, device=args.device, dtype="float32", max_new_tokens=args.max_new_tokens
    )
    model = policy.model
    if config.freeze_vision:
        freeze_vision_tower(model)
    if config.gradient_checkpointing:
        enable_activation_checkpointing(model)
    params = sum(p.numel() for p in model.parameters())
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda update: 1.0)
    models = Models(policy, model, optimizer, scheduler, reference=None, fsdp=False)

    # One rollout batch as the trainer plays it: groups of envs reset with the same seed.
    envs = make_envs(config, policy, args.episodes)
    seeds = [args.seed + i // args.group_size for i in range(args.episodes)]
    start = bench.start_clock(args.device)
    with torch.no_grad(), autocast(policy.device, args.dtype):
        trajectories = rollout(policy, envs, seed=seeds, max_tokens=config.max_tokens)
    rollout_seconds = bench.seconds_since(start, args.device)
    advantages = config_advantages(config, [t.reward for t in trajectories])
    rows = [measure(c, trajectories, advantages, models) for c in configs]
    baseline = rows[0].get("sequence_tokens_per_s")
    for r in rows:
        if baseline and not r["out_of_memory"]:
            r["ratio_vs_micro_batch1"] = r["sequence_tokens_per_s"] / baseline
    print_table(rows, args, params, trained)
    if args.out:
        report = {
            "device": bench.device_name(args.device),
            "torch": torch.__version__,
            "model": {"params": params, "trained": trained, "tiny": args.tiny},
            "forward_dtype": args.dtype if args.device.startswith("cuda") else "float32",
            "gradient_checkpointing": args.gradient_checkpointing,
            "task": args.task,
            "episodes": args.episodes,
            "group_size": args.group_size,
            "max_new_tokens": args.max_new_tokens,
            "max_turns": 2,
            "rollout_seconds": rollout_seconds,
            "rows": rows,
        }
        bench.write_json(args.out, report)


if __name__ == "__main__":
    main()
