"""Rollout throughput: batched multi-turn episodes of a random-weight Qwen2.5-VL in the env.

Run on a GPU from the repository root (with ``benchmarks/bench_grpo.py``, a few minutes on one
H200)::

    PYTHONPATH=. python3 benchmarks/bench_rollout.py --device cuda --out $OUT/rollout.json
    PYTHONPATH=. python3 benchmarks/bench_rollout.py --device cuda --model-size 16m \
        --out $OUT/rollout_16m.json
    PYTHONPATH=. python3 benchmarks/bench_grpo.py --device cuda --out $OUT/grpo.json

or on the CPU ``python benchmarks/bench_rollout.py --device cpu`` (the tiny test model at batch 1
and 4 unless ``--model-size`` / ``--sizes``). Larger runs: ``--sizes 1,16,64,128
--naive-episodes 16 --max-new-tokens 256 --max-turns 4``.

The model is :mod:`random_vlm`'s: ``--model-size 0.8b`` (the default on a GPU) a ~0.8B
random-weight Qwen2.5-VL in bf16, ``16m`` the ~16M model of ``ScratchConfig``'s defaults,
``tiny`` the test model (the default on the CPU, in fp32). Every turn is exactly
``--max-new-tokens`` tokens, the first turn opens with a scripted drawing, ``--max-turns`` 2.
Each batched row times whole :func:`~agents.vlm.rollout.rollout` calls (prefill, decoding, env
steps, token bookkeeping) by three paths, each after an untimed call of the same size: the old
path (``reuse_cache=False, read_every=1``, eager decoding: every turn prefills each episode's
whole sequence, and tokens are read back every step) as the baseline; ``kept``
(``reuse_cache=True, read_every=READ_EVERY``, eager decoding: the KV cache kept from turn to
turn, only the new part of each sequence prefilled, tokens read back every ``READ_EVERY``
steps); and the new path, the kept cache with static decoding (a CUDA graph a step on CUDA).
With ``--repeat N`` each path is timed ``N`` times, the paths taking turns, and the fastest
counts. All sample from the same seed; the ``same`` column says whether the new path wrote the
old path's tokens.

A second table compares the new path with the naive loop (:func:`naive_episode`): the first
``--naive-episodes`` of the same episodes played one at a time, each turn encoding the whole
chat (text and images) again and sampling it with transformers' ``model.generate``. Its ratio
columns are tokens/s against the naive loop and against batch 1. Every ratio compares rows
measured in the same run.
"""

from __future__ import annotations

import argparse

import torch
from random_vlm import (
    SIZES,
    BenchPolicy,
    build_policy,
    device_name,
    peak_gib,
    print_header,
    seconds_since,
    start_clock,
    write_json,
)
from transformers import LogitsProcessor, LogitsProcessorList

from agents.vlm.policy import READ_EVERY, Segment
from agents.vlm.rollout import rollout
from drawenv.env import DrawSpatialEnv


class NaiveRules(LogitsProcessor):
    """The rules :class:`BenchPolicy` samples under, for ``model.generate``: only tokens the
    tokenizer has and no image placeholders, and the scripted opening at the start of the
    first turn."""

    def __init__(self, policy: BenchPolicy, prompt_length: int, first_turn: bool):
        self.policy = policy
        self.prompt_length = prompt_length
        self.opening = policy.opening if first_turn else []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        scores[:, self.policy.vocab_limit :] = float("-inf")
        scores[:, self.policy.banned_token_ids] = float("-inf")
        done = input_ids.shape[1] - self.prompt_length
        if done < len(self.opening):
            scores.fill_(float("-inf"))
            scores[:, self.opening[done]] = 0.0
        return scores


def naive_episode(policy: BenchPolicy, env: DrawSpatialEnv, seed: int) -> dict:
    """Play one episode the obvious way: each turn, encode the whole chat so far again and
    sample the turn with ``model.generate``. Returns its turns, generated tokens and final ids."""
    settings = policy.settings
    obs, info = env.reset(seed=seed)
    system, question, first = str(info["system_prompt"]), str(obs["text"]), list(obs["images"])
    shown = len(first)
    sampling = {"do_sample": False}  # greedy at temperature 0, as the policy
    if settings.temperature > 0:
        sampling = {"do_sample": True, "temperature": settings.temperature, "top_k": 0}
        sampling["top_p"] = settings.top_p
    history = []  # per model turn: its tokens, then the env's reply and the images it drew
    while True:
        chat = [policy.prompt_segment(system, question, first)]
        for turn, reply, images in history:
            last = turn[-1] if turn[-1] in policy.stop_token_ids else None
            chat += [Segment(turn), policy.observation_segment(reply, images, last_token=last)]
        ids = torch.tensor([[i for part in chat for i in part.ids]], device=policy.device)
        pixels = torch.cat([part.pixel_values for part in chat if part.pixel_values is not None])
        grids = torch.cat([part.image_grid_thw for part in chat if part.image_grid_thw is not None])
        rules = NaiveRules(policy, ids.shape[1], first_turn=not history)
        out = policy.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            mm_token_type_ids=(ids == policy.image_token_id).int(),
            pixel_values=pixels.to(policy.device, policy.model.dtype),
            image_grid_thw=grids.to(policy.device),
            **sampling,
            max_new_tokens=settings.max_new_tokens,
            min_new_tokens=settings.min_new_tokens,
            eos_token_id=list(policy.stop_token_ids),
            pad_token_id=policy.pad_token_id,
            logits_processor=LogitsProcessorList([rules]),
        )
        turn = out[0, ids.shape[1] :].tolist()
        obs, _, terminated, truncated, _ = env.step(
            policy.tokenizer.decode(turn, skip_special_tokens=True)
        )
        history.append((turn, str(obs["text"]), list(obs["images"])[shown:]))
        shown = len(obs["images"])
        if terminated or truncated:
            generated = sum(len(t) for t, _, _ in history)
            return {"turns": len(history), "generated": generated, "ids": out[0].tolist()}


def row(loop: str, batch: int, episodes: list[dict], seconds: float, device: str) -> dict:
    """One table row from the per-episode ``turns``, ``generated`` and ``ids``."""
    tokens = sum(e["generated"] for e in episodes)
    return {
        "loop": loop,
        "batch": batch,
        "episodes": len(episodes),
        "turns": sum(e["turns"] for e in episodes),
        "generated_tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "episodes_per_s": len(episodes) / seconds,
        "peak_gpu_gib": peak_gib(device),
        "mean_sequence_tokens": sum(len(e["ids"]) for e in episodes) / len(episodes),
    }


def make_env(policy: BenchPolicy, task: str, max_turns: int = 2) -> DrawSpatialEnv:
    return DrawSpatialEnv(task=task, max_turns=max_turns, patch_factor=policy.patch_factor)


PATHS = {
    "old": ({"reuse_cache": False, "read_every": 1}, "eager"),
    "kept": ({"reuse_cache": True}, "eager"),
    "new": ({"reuse_cache": True}, "static"),
}
"""Per path, the rollout arguments and the policy's ``decode``: the old path (the baseline),
the kept cache decoded eagerly, and the new path (the kept cache, static decoding: a CUDA graph
a step on CUDA)."""


def measure_batched(policy: BenchPolicy, size: int, args: argparse.Namespace) -> dict:
    """Episodes ``seed … seed + size - 1`` in one batched rollout by each path of
    :data:`PATHS`: the new path's row, with the other paths' numbers beside it."""
    envs = [make_env(policy, args.task, args.max_turns) for _ in range(size)]
    paths = {
        path: ({"read_every": args.read_every, **kwargs}, decode)
        for path, (kwargs, decode) in PATHS.items()
    }
    for kwargs, decode in paths.values():
        # One untimed rollout first, so kernel selection, allocator growth and graph capture
        # for this batch shape are not charged to the timed ones.
        policy.decode = decode
        rollout(policy, envs, seed=args.seed + 1000, **kwargs)
    rows, ids = {}, {}
    for _ in range(args.repeat):  # the paths in turn, so that load falls on all alike
        for path, (kwargs, decode) in paths.items():
            policy.decode = decode
            start = start_clock(args.device)
            trajectories = rollout(policy, envs, seed=args.seed, **kwargs)
            seconds = seconds_since(start, args.device)
            if path in rows and rows[path]["seconds"] <= seconds:
                continue
            episodes = [
                {"turns": t.n_turns, "generated": t.n_generated, "ids": t.ids} for t in trajectories
            ]
            rows[path] = row("batched", size, episodes, seconds, args.device)
            ids[path] = [t.ids for t in trajectories]
    new = rows["new"]
    for path, name in (("old", "full_prefill"), ("kept", "kept_cache")):
        new[f"{name}_seconds"] = rows[path]["seconds"]
        new[f"{name}_tokens_per_s"] = rows[path]["tokens_per_s"]
        new[f"{name}_peak_gpu_gib"] = rows[path]["peak_gpu_gib"]
        new[f"ratio_vs_{name}"] = new["tokens_per_s"] / rows[path]["tokens_per_s"]
        new[f"same_tokens_as_{name}"] = all(
            a.shape == b.shape and bool((a == b).all()) for a, b in zip(ids[path], ids["new"])
        )
    return new


def measure_naive(policy: BenchPolicy, args: argparse.Namespace) -> dict:
    """Episodes ``seed … seed + naive_episodes - 1``, one at a time with :func:`naive_episode`."""
    env = make_env(policy, args.task, args.max_turns)
    torch.manual_seed(args.seed)
    naive_episode(policy, env, args.seed + 1000)  # untimed, as for the batched rows
    start = start_clock(args.device)
    episodes = [naive_episode(policy, env, args.seed + i) for i in range(args.naive_episodes)]
    return row("naive", 1, episodes, seconds_since(start, args.device), args.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--sizes", default=None, help="batch sizes (default 1,64,128 on a GPU, 1,4 on the CPU)"
    )
    parser.add_argument(
        "--naive-episodes", type=int, default=None, help="naive-loop episodes (default 8; 2 tiny)"
    )
    parser.add_argument(
        "--model-size",
        choices=SIZES,
        default=None,
        help="random model: tiny (the default on the CPU), 16m or 0.8b (the default on a GPU)",
    )
    parser.add_argument("--tiny", action="store_true", help="the same as --model-size tiny")
    parser.add_argument("--large", action="store_true", help="the same as --model-size 0.8b")
    parser.add_argument("--dtype", default=None, help="default bfloat16, float32 for tiny")
    parser.add_argument("--task", default="counting", help="env task (default counting)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="tokens per turn")
    parser.add_argument("--max-turns", type=int, default=2, help="env max_turns (default 2)")
    parser.add_argument(
        "--read-every",
        type=int,
        default=READ_EVERY,
        help=f"the new path's decoding steps between token reads (default {READ_EVERY})",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed rollouts per path and size; the best counts"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default 1 for tiny)"
    )
    parser.add_argument("--out", help="also write the tables as JSON here")
    args = parser.parse_args()
    cpu = args.device == "cpu"
    chosen = "tiny" if args.tiny else "0.8b" if args.large else None
    args.model_size = args.model_size or chosen or ("tiny" if cpu else "0.8b")
    tiny = args.model_size == "tiny"  # a minute on a CPU by default
    args.sizes = args.sizes or ("1,4" if cpu else "1,64,128")
    args.dtype = args.dtype or ("float32" if tiny else "bfloat16")
    args.naive_episodes = args.naive_episodes or (2 if tiny else 8)
    if args.threads or tiny:  # the tiny model's matrices are too small to share among threads
        torch.set_num_threads(args.threads or 1)
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes[0] != 1:
        sizes.insert(0, 1)  # the batch-1 ratio's baseline
    policy = build_policy(
        size=args.model_size,
        device=args.device,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
    )
    params = sum(p.numel() for p in policy.model.parameters())
    measure_batched(policy, 1, args)  # warm-up: kernels, allocator, lazy imports
    rows = [measure_naive(policy, args)] + [measure_batched(policy, s, args) for s in sizes]
    naive, batch1 = rows[0]["tokens_per_s"], rows[1]["tokens_per_s"]
    for r in rows:
        r["ratio_vs_naive"] = r["tokens_per_s"] / naive
        r["ratio_vs_batch1"] = r["tokens_per_s"] / batch1

    name = device_name(args.device)
    print(
        f"rollout throughput on {name}: Qwen2.5-VL random weights ({args.model_size}), "
        f"{params / 1e6:,.1f}M params, {args.dtype}, task={args.task}, "
        f"max_turns={args.max_turns}, {args.max_new_tokens} tokens per turn"
    )
    print(
        "\nold: full prefill every turn, eager decoding, tokens read back every step; "
        "kept: KV cache kept between turns, eager decoding; new: kept cache, static decoding "
        f"(a CUDA graph a step on CUDA); kept and new read tokens back every {args.read_every} "
        "steps. same: the same tokens as the old path"
    )
    header = (
        f"{'batch':>5} {'episodes':>8} {'gen tok':>8} {'old tok/s':>10} {'kept tok/s':>11} "
        f"{'new tok/s':>10} {'new/old':>8} {'new/kept':>9} {'same':>5} "
        f"{'old GiB':>8} {'new GiB':>8}"
    )
    print_header(header)
    for r in rows[1:]:
        peaks = [r["full_prefill_peak_gpu_gib"], r["peak_gpu_gib"]]
        old_gib, new_gib = ("-" if p is None else f"{p:.2f}" for p in peaks)
        print(
            f"{r['batch']:>5} {r['episodes']:>8} {r['generated_tokens']:>8} "
            f"{r['full_prefill_tokens_per_s']:>10.1f} {r['kept_cache_tokens_per_s']:>11.1f} "
            f"{r['tokens_per_s']:>10.1f} {r['ratio_vs_full_prefill']:>8.2f} "
            f"{r['ratio_vs_kept_cache']:>9.2f} "
            f"{'yes' if r['same_tokens_as_full_prefill'] else 'no':>5} {old_gib:>8} {new_gib:>8}"
        )
    print("\nthe new path against the naive loop (one episode at a time, model.generate)")
    header = (
        f"{'run':>9} {'episodes':>8} {'turns':>6} {'gen tok':>8} {'seconds':>8} {'tok/s':>9} "
        f"{'ep/s':>7} {'peak GiB':>9} {'x naive':>8} {'x batch 1':>10}"
    )
    print_header(header)
    for r in rows:
        run = "naive" if r["loop"] == "naive" else f"batch {r['batch']}"
        peak = "-" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.2f}"
        print(
            f"{run:>9} {r['episodes']:>8} {r['turns']:>6} {r['generated_tokens']:>8} "
            f"{r['seconds']:>8.2f} {r['tokens_per_s']:>9.1f} {r['episodes_per_s']:>7.2f} "
            f"{peak:>9} {r['ratio_vs_naive']:>8.2f} {r['ratio_vs_batch1']:>10.2f}"
        )
    if args.out:
        report = {
            "device": name,
            "torch": torch.__version__,
            "model": {
                "size": args.model_size,
                "params": params,
                "dtype": args.dtype,
                "tiny": tiny,
            },
            "task": args.task,
            "max_new_tokens": args.max_new_tokens,
            "max_turns": args.max_turns,
            "read_every": args.read_every,
            "repeat": args.repeat,
            "rows": rows,
        }
        write_json(args.out, report)


if __name__ == "__main__":
    main()
