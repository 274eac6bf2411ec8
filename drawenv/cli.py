"""The ``drawenv`` command line."""

from __future__ import annotations

import argparse
from collections import Counter

import gymnasium as gym

import drawenv
from drawenv.tasks import SUITES


def demo(episodes: int, seed: int) -> None:
    """Play every built-in suite with the action space's random protocol text and summarise."""
    print(f"DrawSpatial-v0, random protocol text, {episodes} episodes per suite (seed {seed})\n")
    header = f"{'suite':<12} {'reward':>7} {'turns':>6} {'images':>7}  terminations"
    print(header)
    print("-" * len(header))
    for suite in SUITES:
        env = gym.make("DrawSpatial-v0", task=suite)
        env.action_space.seed(seed)
        rewards, turns, images, reasons = [], [], [], Counter()
        obs, info = env.reset(seed=seed)
        for _ in range(episodes):
            done = False
            while not done:
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
                done = terminated or truncated
            rewards.append(reward)
            turns.append(info["turn"])
            images.append(len(obs["images"]))
            reasons[info["termination"]] += 1
            obs, info = env.reset()
        n = len(rewards)
        summary = ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        print(
            f"{suite:<12} {sum(rewards) / n:>7.3f} {sum(turns) / n:>6.2f} "
            f"{sum(images) / n:>7.2f}  {summary}"
        )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``drawenv`` console script."""
    parser = argparse.ArgumentParser(prog="drawenv", description=drawenv.__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="run episodes on every built-in suite and summarise")
    p.add_argument("-n", "--episodes", type=int, default=20, help="episodes per suite")
    p.add_argument("--seed", type=int, default=0, help="seed of the env and the sampler")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.episodes, args.seed)
