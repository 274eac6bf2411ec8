"""GRPO's group sampling: rollouts of :class:`agents.train.grpo.GroupSampledPolicy` against the
per-episode CPU generators it used before, in one run.

Run on a GPU from the repository root (about a minute on one H200)::

    PYTHONPATH=.:benchmarks python3 benchmarks/bench_group_sampling.py --device cuda \
        --out $OUT/group_sampling.json

or on the CPU with the tiny model: ``python benchmarks/bench_group_sampling.py --device cpu``.

Both policies give each episode of a GRPO batch draws of its own, so its tokens do not depend on
the batch. The baseline (:class:`CPUGeneratorPolicy`, the trainer's sampling before) draws one
uniform per row and token from a CPU ``torch.Generator`` per episode, copies them to the device
and, keeping generator state, must read the tokens back at every step (``read_every=1``). The
new policy computes the draws on the device from (seed, turn, step) and decodes with reads every
``READ_EVERY`` steps. Each row: one batched rollout of ``--sizes`` episodes (``--model-size``'s
random model, every turn ``--max-new-tokens`` tokens, temperature 1), the fastest of
``--repeat`` timings after an untimed one, with the seconds of each rollout phase.
"""

from __future__ import annotations

import argparse

import torch
from random_vlm import SIZES, build_policy, device_name, seconds_since, start_clock, write_json

from agents.train.grpo import GroupSampledPolicy, episode_seed
from agents.vlm.device import PhaseTimes
from agents.vlm.policy import sampling_probs
from agents.vlm.rollout import policy_env, rollout


class CPUGeneratorPolicy(GroupSampledPolicy):
    """The baseline: one CPU generator per episode, one draw per row and step, read back per
    step."""

    stateless_choice = False

    def choose_tokens(self, scores, *, generator, settings, episodes, turns, generated):
        if not hasattr(self, "_generators"):
            self._generators = {}
        draws = []
        for e in episodes:
            if e not in self._generators:
                g = torch.Generator()
                g.manual_seed(int(self.episode_seeds[e]))
                self._generators[e] = g
            draws.append(torch.rand(1, generator=self._generators[e], dtype=torch.float64))
        cdf = sampling_probs(scores, settings.top_p).double().cumsum(-1)
        targets = torch.cat(draws).to(cdf.device)[:, None] * cdf[:, -1:]
        tokens = torch.searchsorted(cdf, targets, right=True).squeeze(-1)
        return tokens.clamp_(max=cdf.shape[-1] - 1)

    def seed_episodes(self, seeds):
        super().seed_episodes(seeds)
        self._generators = {}


def timed(policy: GroupSampledPolicy, envs: list, args: argparse.Namespace) -> dict:
    """The fastest of ``args.repeat`` rollouts of ``envs`` (after an untimed one)."""
    best = None
    for k in range(args.repeat + 1):
        policy.seed_episodes([episode_seed(args.seed, j) for j in range(len(envs))])
        times = PhaseTimes()
        start = start_clock(args.device)
        trajectories = rollout(policy, envs, seed=args.seed, times=times)
        seconds = seconds_since(start, args.device)
        if k and (best is None or seconds < best["seconds"]):
            tokens = sum(t.n_generated for t in trajectories)
            best = {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}
            best |= {f"time_{phase}": s for phase, s in times.seconds.items()}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-size", choices=SIZES, default=None, help="16m on a GPU")
    parser.add_argument("--sizes", default=None, help="batch sizes (GPU 1,64,128; CPU 1,4)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="tokens per turn")
    parser.add_argument("--repeat", type=int, default=3, help="timed rollouts per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="counting")
    parser.add_argument("--out", help="also write the table as JSON here")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    size = args.model_size or ("16m" if cuda else "tiny")
    dtype = "bfloat16" if cuda and size != "tiny" else "float32"
    sizes = [int(s) for s in (args.sizes or ("1,64,128" if cuda else "1,4")).split(",")]
    base = build_policy(
        size=size, device=args.device, dtype=dtype, max_new_tokens=args.max_new_tokens
    )
    policies = {
        "cpu generators, read every step": CPUGeneratorPolicy(
            base.model, base.processor, base.settings
        ),
        "device draws, read every 8": GroupSampledPolicy(base.model, base.processor, base.settings),
    }
    print(f"group sampling, {size} model, {device_name(args.device)}, {dtype}")
    header = (
        f"{'policy':34s} {'batch':>5s} {'tokens/s':>10s} {'x base':>7s} {'prefill s':>9s} "
        f"{'decode s':>9s} {'env s':>7s}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for batch in sizes:
        envs = [policy_env(base, task=args.task, max_turns=1) for _ in range(batch)]
        baseline = None
        for name, policy in policies.items():
            result = timed(policy, envs, args)
            baseline = baseline or result["tokens_per_s"]
            ratio = result["tokens_per_s"] / baseline
            rows.append({"policy": name, "batch": batch, "ratio": ratio, **result})
            print(
                f"{name:34s} {batch:5d} {result['tokens_per_s']:10.0f} {ratio:7.2f} "
                f"{result.get('time_prefill', 0):9.3f} {result.get('time_decode', 0):9.3f} "
                f"{result.get('time_env', 0):7.3f}",
                flush=True,
            )
    if args.out:
        write_json(args.out, {"device": device_name(args.device), "model": size, "rows": rows})


if __name__ == "__main__":
    main()
