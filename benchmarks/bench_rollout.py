"""Rollout throughput: batched multi-turn episodes of a random-weight Qwen2.5-VL in the env.

Run ``python benchmarks/bench_rollout.py --device cuda --out rollout.json`` on a GPU, or the CPU
smoke test ``python benchmarks/bench_rollout.py --device cpu --sizes 1,2 --tiny``.

The model is built from a config with random weights (no download): by default a ~0.8B
Qwen2.5-VL (a Qwen2.5-0.5B-sized text model with its 151,936-row vocabulary, untied, and an
8-block vision tower of Qwen2.5-VL's width), bf16, SDPA attention; ``--tiny`` uses the test
model.
Random weights never choose to stop, so every turn writes exactly ``--max-new-tokens`` tokens
(``min_new_tokens`` equals it). Each episode's first turn starts with a scripted drawing (then
samples the rest), so the env draws an image and the second turn is prefilled with two images;
episodes end at ``max_turns=2``. Each row times one whole :func:`~agents.rollout.rollout` call
(prefill, decoding, env steps, token bookkeeping) after a warm-up; the ratio column is tokens/s
against batch 1, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from agents.policy import GenerationSettings, VLMPolicy
from agents.rollout import rollout
from agents.testing import special_token_ids, tiny_config, tiny_model, tiny_processor
from drawenv.actions import Box, Draw
from drawenv.env import DrawSpatialEnv
from drawenv.protocol import get_protocol

TEXT = {  # the size of Qwen2.5-0.5B's text model
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_parameters": {"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 1e6},
}
VISION = {  # Qwen2.5-VL's vision width, 8 blocks instead of 32
    "depth": 8,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 896,
    "fullatt_block_indexes": [3, 7],
}


class BenchPolicy(VLMPolicy):
    """Samples as usual, except that each episode's first turn opens with a drawing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        text = get_protocol("vilasr").format(Draw([Box(1, (8, 8, 120, 120), "object")], "look"))
        self.opening = self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        tokens = super().choose_tokens(
            scores,
            generator=generator,
            settings=settings,
            episodes=episodes,
            turns=turns,
            generated=generated,
        )
        for row, (turn, done) in enumerate(zip(turns, generated)):
            if turn == 0 and len(done) < len(self.opening):
                tokens[row] = self.opening[len(done)]
        return tokens


def build_policy(args: argparse.Namespace) -> BenchPolicy:
    dtype = getattr(torch, args.dtype)
    if args.tiny:
        model, processor = tiny_model(seed=0)
    else:
        processor = tiny_processor()
        config = tiny_config(
            TEXT["vocab_size"], special_token_ids(processor.tokenizer), text=TEXT, vision=VISION
        )
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        with torch.device(args.device):
            from transformers import Qwen2_5_VLForConditionalGeneration

            model = Qwen2_5_VLForConditionalGeneration(config)
    settings = GenerationSettings(
        temperature=1.0, max_new_tokens=args.max_new_tokens, min_new_tokens=args.max_new_tokens
    )
    return BenchPolicy(model.to(args.device, dtype).eval(), processor, settings)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def measure(policy: BenchPolicy, size: int, args: argparse.Namespace) -> dict:
    envs = [
        DrawSpatialEnv(task=args.task, max_turns=2, patch_factor=policy.patch_factor)
        for _ in range(size)
    ]
    cuda = args.device.startswith("cuda")
    # One untimed rollout first, so kernel selection and allocator growth for this batch shape
    # are not charged to the timed one.
    rollout(policy, envs, seed=args.seed + 1000)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trajectories = rollout(policy, envs, seed=args.seed)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(t.n_generated for t in trajectories)
    return {
        "batch": size,
        "episodes": size,
        "turns": sum(t.n_turns for t in trajectories),
        "generated_tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "episodes_per_s": size / seconds,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "mean_sequence_tokens": sum(len(t.ids) for t in trajectories) / size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="1,16,64", help="batch sizes (default 1,16,64)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model (smoke test)")
    parser.add_argument("--dtype", default=None, help="default bfloat16, float32 with --tiny")
    parser.add_argument("--task", default="counting", help="env task (default counting)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per turn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()
    args.dtype = args.dtype or ("float32" if args.tiny else "bfloat16")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes[0] != 1:
        sizes.insert(0, 1)  # the baseline
    policy = build_policy(args)
    params = sum(p.numel() for p in policy.model.parameters())
    measure(policy, 1, args)  # warm-up: kernels, allocator, lazy imports
    rows = [measure(policy, size, args) for size in sizes]
    baseline = rows[0]["tokens_per_s"]
    for row in rows:
        row["ratio_vs_batch1"] = row["tokens_per_s"] / baseline

    name = device_name(args.device)
    print(
        f"rollout throughput on {name}: Qwen2.5-VL random weights, {params / 1e6:,.1f}M params, "
        f"{args.dtype}, task={args.task}, max_turns=2, {args.max_new_tokens} tokens per turn"
    )
    header = (
        f"{'batch':>5} {'turns':>6} {'gen tok':>8} {'seconds':>8} {'tok/s':>9} {'ep/s':>7} "
        f"{'peak GiB':>9} {'x batch 1':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        peak = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}"
        print(
            f"{r['batch']:>5} {r['turns']:>6} {r['generated_tokens']:>8} {r['seconds']:>8.2f} "
            f"{r['tokens_per_s']:>9.1f} {r['episodes_per_s']:>7.2f} {peak:>9} "
            f"{r['ratio_vs_batch1']:>10.2f}"
        )
    if args.out:
        report = {
            "device": name,
            "model": {"params": params, "dtype": args.dtype, "tiny": args.tiny},
            "task": args.task,
            "max_new_tokens": args.max_new_tokens,
            "max_turns": 2,
            "rows": rows,
        }
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
