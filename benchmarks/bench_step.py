"""Env step against two baselines: the irreducible drawing work and a Pillow implementation.

One drawing step of ``n`` operations (boxes and lines alternating, a label each) on a single
image of ``P`` pixels, timed five ways in the same run, interleaved call by call so that load
from other processes falls on all of them alike:

- ``opencv``: the irreducible work, as the baseline (a): ``np.copy`` of the image, then
  ``cv2.rectangle`` / ``cv2.line`` and ``cv2.putText`` for each operation.
- ``pillow``: the ViLaSR approach, baseline (b): ``Image.copy()`` of a Pillow image, then
  ``ImageDraw`` ``rectangle`` / ``line`` and ``text`` (Pillow's built-in font at the env's label
  size) for each operation.
- ``env typed``: ``env.step(Draw(ops))`` on a fresh episode (reset untimed), default arguments.
- ``env typed, no copy``: the same with ``copy_images=False``.
- ``env text``: ``env.step(text)`` with the same turn already written as protocol text.

Columns: median and 90th-percentile latency, steps/s (calls per second of summed time), and the
median as a multiple of the ``opencv`` and ``pillow`` medians of the same case. A second table
splits the env's typed step for one case into its parts, each timed alone.

Run ``python benchmarks/bench_step.py`` (under a minute on 2 CPU cores); bigger runs with
``--repeats 2000 --pixels 64,256,1024,4096 --ops 1,4,16,32``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from drawenv import Box, Draw, Line, canvas
from drawenv.env import DrawSpatialEnv
from drawenv.geometry import check_operation
from drawenv.protocol import get_protocol
from drawenv.state import ImageState

PATCH = 28 * 28


def square_side(pixels: int) -> int:
    """The side of a square image of at most ``pixels`` pixels, a multiple of 28."""
    return int((pixels**0.5) // 28 * 28)


def make_ops(count: int, side: int, rng: np.random.Generator) -> list[Box | Line]:
    """``count`` operations on image 1, boxes and lines alternating, integer pixel coordinates."""
    ops: list[Box | Line] = []
    for index in range(count):
        x = sorted(int(v) for v in rng.integers(0, side, 2))
        y = sorted(int(v) for v in rng.integers(0, side, 2))
        if index % 2 == 0:
            ops.append(Box(1, (x[0], y[0], x[1] + 1, y[1] + 1), f"object {index}"))
        else:
            ops.append(Line(1, (x[0], y[0]), (x[1] + 1, y[1]), f"path {index}"))
    return ops


def opencv_baseline(image: np.ndarray, ops: list[Box | Line]) -> Callable[[], object]:
    """Baseline (a): copy the image, draw each primitive and its label text with OpenCV."""
    stroke = canvas.stroke_width(image.shape[1], image.shape[0])
    scale = canvas.font_size(image.shape[1], image.shape[0]) / 22  # Hershey simplex: 22 px at 1
    plain = [
        (
            op.kind == "box",
            tuple(map(int, op.bbox[:2] if op.kind == "box" else op.start)),
            tuple(map(int, op.bbox[2:] if op.kind == "box" else op.end)),
            canvas.label_colour(op.label),
            op.label,
        )
        for op in ops
    ]

    def draw() -> np.ndarray:
        out = np.copy(image)
        for is_box, first, second, colour, label in plain:
            if is_box:
                cv2.rectangle(out, first, second, colour, stroke)
            else:
                cv2.line(out, first, second, colour, stroke)
            cv2.putText(out, label, first, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1)
        return out

    return draw


def pillow_baseline(image: np.ndarray, ops: list[Box | Line]) -> Callable[[], object]:
    """Baseline (b): ViLaSR keeps Pillow images; copy one and draw with ``ImageDraw``."""
    picture = Image.fromarray(image)
    stroke = canvas.stroke_width(*picture.size)
    font = ImageFont.load_default(size=canvas.font_size(*picture.size))
    plain = [
        (
            op.kind == "box",
            list(op.bbox) if op.kind == "box" else [*op.start, *op.end],
            canvas.label_colour(op.label),
            op.label,
        )
        for op in ops
    ]

    def draw() -> Image.Image:
        out = picture.copy()
        pen = ImageDraw.Draw(out)
        for is_box, xy, colour, label in plain:
            if is_box:
                pen.rectangle(xy, outline=colour, width=stroke)
            else:
                pen.line(xy, fill=colour, width=stroke)
            pen.text((xy[0], xy[1]), label, fill=colour, font=font)
        return out

    return draw


def env_step(image: np.ndarray, action: object, **kwargs) -> Callable[[], Callable[[], object]]:
    """A setup returning one timed call: a fresh episode on ``image`` (untimed), then one step."""
    record = {"id": "bench", "images": [image], "question": "How many?", "answer_type": "count"}
    env = DrawSpatialEnv(
        task=[{**record, "answer": 3}], max_pixels=image.shape[0] * image.shape[1], **kwargs
    )

    def setup() -> Callable[[], object]:
        env.reset(seed=0)
        return lambda: env.step(action)

    return setup


def time_interleaved(
    variants: dict[str, Callable[[], Callable[[], object]]], repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each variant; one call of each in turn, ``repeats`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(repeats + 5):
        for name, setup in variants.items():
            call = setup()
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            if round_ >= 5:  # the first rounds warm caches and allocators
                times[name].append(elapsed)
    return times


def fixed(call: Callable[[], object]) -> Callable[[], Callable[[], object]]:
    return lambda: call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pixels", default="256,1024", help="image sizes, in units of 28*28 px")
    parser.add_argument("--ops", default="1,4,16", help="operations per step")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    protocol = get_protocol("vilasr")

    header = (
        f"{'pixels':>13} {'ops':>4} {'variant':<20} {'median us':>10} {'p90 us':>9} "
        f"{'steps/s':>9} {'x opencv':>9} {'x pillow':>9}"
    )
    print(header)
    print("-" * len(header))
    parts_case = None
    for units in (int(v) for v in args.pixels.split(",")):
        side = square_side(units * PATCH)
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        for count in (int(v) for v in args.ops.split(",")):
            ops = make_ops(count, side, rng)
            action = Draw(ops, thought="Mark the objects and trace the paths.")
            variants = {
                "opencv (a)": fixed(opencv_baseline(image, ops)),
                "pillow (b)": fixed(pillow_baseline(image, ops)),
                "env typed": env_step(image, action),
                "env typed, no copy": env_step(image, action, copy_images=False),
                "env text": env_step(image, protocol.format(action)),
            }
            times = time_interleaved(variants, args.repeats)
            medians = {name: statistics.median(ts) for name, ts in times.items()}
            for name, ts in times.items():
                p90 = float(np.percentile(ts, 90))
                print(
                    f"{f'{units}*28*28':>13} {count:>4} {name:<20} {1e6 * medians[name]:>10.1f} "
                    f"{1e6 * p90:>9.1f} {len(ts) / sum(ts):>9.0f} "
                    f"{medians[name] / medians['opencv (a)']:>9.2f} "
                    f"{medians[name] / medians['pillow (b)']:>9.2f}"
                )
            parts_case = (units, image, ops, action, medians)
    if parts_case is not None:
        print_parts(*parts_case, protocol, args.repeats)


def print_parts(units, image, ops, action, medians, protocol, repeats) -> None:
    """Where the typed step's time goes, for the last case: each part timed alone."""
    text = protocol.format(action)
    side = image.shape[0]
    checked = [check_operation(op, width=side, height=side, coords="pixel").op for op in ops]
    state = ImageState([image.copy()])
    parts = {
        "format Draw as text": fixed(lambda: protocol.format(action)),
        "parse text": fixed(lambda: protocol.parse(text)),
        "check ops (plan)": fixed(lambda: state.plan(ops, coords="pixel", tolerance=0.02)),
        "render (copy + draw)": fixed(lambda: canvas.render(image, checked)),
        "copy image (np.copy)": fixed(lambda: np.copy(image)),
    }
    times = time_interleaved(parts, repeats)
    step = medians["env typed"]
    print(f"\nparts of one typed step, {units}*28*28 px, {len(ops)} ops (median us, share of step)")
    for name, ts in times.items():
        median = statistics.median(ts)
        print(f"  {name:<24} {1e6 * median:>9.1f} {median / step:>8.0%}")
    print(f"  {'env typed step':<24} {1e6 * step:>9.1f} {1:>8.0%}")


if __name__ == "__main__":
    main()
