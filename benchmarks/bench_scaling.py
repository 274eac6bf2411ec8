"""Scaling: how an env step's time grows with the image size and with the images already held.

Image size: one step of 4 operations on a fresh single-image episode at each pixel budget, next
to baseline (a) of ``bench_step.py`` (``np.copy`` plus OpenCV primitives and text for the same
operations) at the same size, interleaved call by call; the ratio column is env / baseline.

History: an episode that already holds ``H`` images (drawn untimed, one box a turn), then one
timed step of the same 4 operations on image 1, with ``copy_images=True`` (the default: images
already shown are copied into each observation) and ``copy_images=False`` (observations hand out
the stored read-only images). The ratio column is against ``H = 1`` of the same setting.

Run ``python benchmarks/bench_scaling.py`` (under a minute on 2 CPU cores); bigger runs with
``--repeats 500 --pixels 16,64,256,1024,4096 --history 1,2,5,10,20,40,80``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np
from bench_step import PATCH, env_step, fixed, make_ops, opencv_baseline, square_side
from bench_step import time_interleaved as timed

from drawenv import Box, Draw
from drawenv.env import DrawSpatialEnv

OPS = 4


def history_step(
    image: np.ndarray, action: Draw, held: int, copy_images: bool
) -> Callable[[], Callable[[], object]]:
    """A setup returning one timed step on an episode that holds ``held`` images."""
    record = {"id": "scaling", "images": [image], "question": "How many?", "answer_type": "count"}
    env = DrawSpatialEnv(
        task=[{**record, "answer": 3}],
        max_pixels=image.shape[0] * image.shape[1],
        max_images=held + 1,
        max_turns=held + 1,
        copy_images=copy_images,
    )
    earlier = [Draw([Box(1, (8 + i, 8, 120 + i, 100), f"earlier {i}")]) for i in range(held - 1)]

    def setup() -> Callable[[], object]:
        env.reset(seed=0)
        for turn in earlier:
            env.step(turn)
        return lambda: env.step(action)

    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pixels", default="64,256,1024,4096", help="sizes, in units of 28*28 px")
    parser.add_argument("--history", default="1,2,5,10,20,40", help="images held before the step")
    parser.add_argument("--repeats", type=int, default=150, help="timed calls per row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print(f"{'image size':<22} {'env step us':>12} {'opencv (a) us':>14} {'x opencv':>9}")
    print("-" * 60)
    for units in (int(v) for v in args.pixels.split(",")):
        side = square_side(units * PATCH)
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        ops = make_ops(OPS, side, rng)
        variants = {
            "env": env_step(image, Draw(ops)),
            "opencv": fixed(opencv_baseline(image, ops)),
        }
        medians = {k: statistics.median(v) for k, v in timed(variants, args.repeats).items()}
        print(
            f"{f'{units}*28*28 ({side}x{side})':<22} {1e6 * medians['env']:>12.1f} "
            f"{1e6 * medians['opencv']:>14.1f} {medians['env'] / medians['opencv']:>9.2f}"
        )

    side = square_side(256 * PATCH)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    action = Draw(make_ops(OPS, side, rng))
    held = [int(v) for v in args.history.split(",")]
    print(
        f"\n{'images held':<12} {'copy_images':<12} {'step us':>9} {'x H=1':>7}   ({side}x{side})"
    )
    print("-" * 44)
    for copy_images in (True, False):
        variants = {h: history_step(image, action, h, copy_images) for h in held}
        medians = {k: statistics.median(v) for k, v in timed(variants, args.repeats).items()}
        for h in held:
            ratio = medians[h] / medians[held[0]]
            print(f"{h:<12} {copy_images!s:<12} {1e6 * medians[h]:>9.1f} {ratio:>7.2f}")


if __name__ == "__main__":
    main()
