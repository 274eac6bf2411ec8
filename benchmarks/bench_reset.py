"""Resets: what one costs per suite, where it goes, and what a group of resets on one item costs.

- Per suite: ``env.reset(options={"index": i})`` on items not rendered before in the process
  (the render cache misses), ``--items`` items each; then a new item reset 8 times in a row,
  as the envs of a GRPO group do (same seed, so the same index), against one reset. Suites take
  turns item by item, so that load from other processes falls on all of them alike.
- Rendering parts, timed alone: downsampling a supersampled 1344x1344 canvas (the counting
  suite's) with Pillow's LANCZOS filter, ``Image.reduce`` and OpenCV's ``INTER_AREA``; one
  ``textured_background`` of 448x448.
- One episode of 4 turns (reset and 4 steps of 4 operations): the share of the env's time spent
  in the reset.

Medians in milliseconds. Run ``python benchmarks/bench_reset.py`` (about a minute on 2 CPU
cores); bigger runs with ``--items 20``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from drawenv import Box, Draw, Line
from drawenv.env import DrawSpatialEnv
from drawenv.tasks import SUITES
from drawenv.tasks.scene import textured_background

GROUP = 8


def seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    return 1e3 * statistics.median(seconds(call) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=12, help="fresh items reset per suite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fresh = itertools.count(10_000 + 1000 * args.seed)  # indices no earlier row rendered

    print(f"{'suite':<11} {'reset ms':>9} {f'{GROUP} resets, one item ms':>22} {'x one':>7}")
    print("-" * 52)
    envs = {suite: DrawSpatialEnv(task=suite) for suite in SUITES}
    for env in envs.values():
        env.reset(options={"index": next(fresh)})  # imports, fonts
    ones: dict[str, list[float]] = {suite: [] for suite in SUITES}
    groups: dict[str, list[float]] = {suite: [] for suite in SUITES}
    for _ in range(args.items):  # suites in turn, so that load from other jobs falls on all
        for suite, env in envs.items():
            ones[suite].append(seconds(lambda env=env: env.reset(options={"index": next(fresh)})))
            index = next(fresh)
            groups[suite].append(
                seconds(
                    lambda env=env, index=index: [
                        env.reset(options={"index": index}) for _ in range(GROUP)
                    ]
                )
            )
    for suite in SUITES:
        one, group = statistics.median(ones[suite]), statistics.median(groups[suite])
        print(f"{suite:<11} {1e3 * one:>9.1f} {1e3 * group:>22.1f} {group / one:>7.2f}")

    rng = np.random.default_rng(args.seed)
    big = Image.fromarray(rng.integers(0, 256, (1344, 1344, 3), dtype=np.uint8))
    array = np.asarray(big)
    parts = {
        "downsample 1344->448, LANCZOS": lambda: big.resize((448, 448), Image.Resampling.LANCZOS),
        "downsample 1344->448, Image.reduce(3)": lambda: big.reduce(3),
        "downsample 1344->448, cv2 INTER_AREA": lambda: cv2.resize(
            array, (448, 448), interpolation=cv2.INTER_AREA
        ),
        "textured_background 448x448": lambda: textured_background(rng, 448, 448, (200, 190, 170)),
    }
    print(f"\n{'rendering part':<40} {'ms':>7}")
    print("-" * 48)
    for name, call in parts.items():
        print(f"{name:<40} {median_ms(call, 15):>7.2f}")

    env = DrawSpatialEnv(task="counting")
    turn = Draw(
        [
            Box(1, (20, 20, 200, 180), "first"),
            Line(1, (30, 300), (400, 310), "path"),
            Box(1, (220, 40, 420, 200), "second"),
            Line(1, (50, 60), (60, 420), "edge"),
        ]
    )
    resets, steps = [], []
    for _ in range(args.items):
        index = next(fresh)
        resets.append(seconds(lambda index=index: env.reset(options={"index": index})))
        for k in range(4):
            action = Draw([Box(1, (20 + k, 20, 200 + k, 180), f"box {k}")]) if k else turn
            steps.append(seconds(lambda action=action: env.step(action)))
    reset, step = statistics.median(resets), statistics.median(steps)
    print(
        f"\ncounting, one episode of 4 turns: reset {1e3 * reset:.1f} ms, step "
        f"{1e3 * step:.2f} ms; the reset is {reset / (reset + 4 * step):.0%} of the episode "
        f"and costs {reset / step:.0f} steps"
    )


if __name__ == "__main__":
    main()
