"""Env step against baselines written here: a bare copy, OpenCV, and a Pillow implementation.

Main table: one drawing step of ``n`` operations (boxes and lines alternating, a label each) on
a single image of ``P`` pixels (default 448x448, 2 boxes + 2 lines), timed six ways in the same
run, interleaved call by call so that load from other processes falls on all of them alike:

- ``numpy copy``: ``np.copy`` of the image alone, the floor of any step that returns a new image.
- ``opencv (a)``: the irreducible work: ``np.copy`` of the image, then ``cv2.rectangle`` /
  ``cv2.line`` and ``cv2.putText`` for each operation.
- ``pillow (b)``: the ViLaSR approach: ``Image.copy()`` of a Pillow image, then ``ImageDraw``
  ``rectangle`` / ``line`` and ``text`` (Pillow's built-in font at the env's label size).
- ``env typed``: ``env.step(Draw(ops))`` on a fresh episode (reset untimed), default arguments.
- ``env typed, no copy``: the same with ``copy_images=False``.
- ``env text``: ``env.step(text)`` with the same turn already written as protocol text.

Columns: median and 90th-percentile latency, steps/s (calls per second of summed time), and the
median as a multiple of the ``opencv`` and ``pillow`` medians of the same case.

Then, at 448x448 with the same 4 operations (medians, interleaved):

- new labels: the step with 4 labels never drawn before in the process, against the same step
  with labels already drawn;
- history: a step on image 1 of an episode already holding 1 or 40 images (drawn untimed);
- chained drawing: a step that draws one box on the newest image when it holds 1 or 40 layers
  (every turn of the episode drew on the image the previous turn made);
- parts: the typed step split into its parts, each timed alone.

Run ``python benchmarks/bench_step.py`` (about a minute on 2 CPU cores); bigger runs with
``--repeats 2000 --pixels 64,256,1024,4096 --ops 1,4,16,32``.
"""

from __future__ import annotations

import argparse
import itertools
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


def make_ops(count: int, side: int, rng: np.random.Generator, prefix: str = "") -> list[Box | Line]:
    """``count`` operations on image 1, boxes and lines alternating, integer pixel coordinates."""
    ops: list[Box | Line] = []
    for index in range(count):
        x = sorted(int(v) for v in rng.integers(0, side, 2))
        y = sorted(int(v) for v in rng.integers(0, side, 2))
        if index % 2 == 0:
            ops.append(Box(1, (x[0], y[0], x[1] + 1, y[1] + 1), f"{prefix}object {index}"))
        else:
            ops.append(Line(1, (x[0], y[0]), (x[1] + 1, y[1]), f"{prefix}path {index}"))
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


def bench_env(image: np.ndarray, **kwargs) -> DrawSpatialEnv:
    """An env whose only task is ``image`` (shown unresized)."""
    record = {"id": "bench", "images": [image], "question": "How many?", "answer_type": "count"}
    return DrawSpatialEnv(
        task=[{**record, "answer": 3}], max_pixels=image.shape[0] * image.shape[1], **kwargs
    )


def env_step(image: np.ndarray, action: object, **kwargs) -> Callable[[], Callable[[], object]]:
    """A setup returning one timed call: a fresh episode on ``image`` (untimed), then one step."""
    env = bench_env(image, **kwargs)

    def setup() -> Callable[[], object]:
        env.reset(seed=0)
        return lambda: env.step(action)

    return setup


def new_label_step(image: np.ndarray, ops: list[Box | Line]) -> Callable[[], Callable[[], object]]:
    """Like :func:`env_step`, with labels never drawn before in this process on every call."""
    env = bench_env(image)
    fresh = itertools.count()

    def setup() -> Callable[[], object]:
        env.reset(seed=0)
        tag = f"n{next(fresh)} "
        action = Draw([_relabel(op, tag + op.label) for op in ops])
        return lambda: env.step(action)

    return setup


def _relabel(op: Box | Line, label: str) -> Box | Line:
    if op.kind == "box":
        return Box(op.index, op.bbox, label)
    return Line(op.index, op.start, op.end, label)


def history_step(
    image: np.ndarray, action: Draw, held: int, copy_images: bool
) -> Callable[[], Callable[[], object]]:
    """A setup returning one timed step on image 1 of an episode that holds ``held`` images."""
    env = bench_env(image, max_images=held + 1, max_turns=held + 1, copy_images=copy_images)
    earlier = [Draw([Box(1, (8 + i, 8, 120 + i, 100), f"earlier {i}")]) for i in range(held - 1)]

    def setup() -> Callable[[], object]:
        env.reset(seed=0)
        for turn in earlier:
            env.step(turn)
        return lambda: env.step(action)

    return setup


def chained_step(
    image: np.ndarray, layers: int, copy_images: bool
) -> Callable[[], Callable[[], object]]:
    """A setup returning one timed step that draws one box on the newest image, which then holds
    ``layers`` layers: every earlier turn drew one box on the image the turn before made."""
    env = bench_env(image, max_images=layers + 1, max_turns=layers + 1, copy_images=copy_images)

    def turn(k: int) -> Draw:
        return Draw([Box(k, (8 + 4 * k, 8 + 3 * k, 120 + 4 * k, 100 + 3 * k), f"layer {k}")])

    def setup() -> Callable[[], object]:
        env.reset(seed=0)
        for k in range(1, layers):
            env.step(turn(k))
        last = turn(layers)
        return lambda: env.step(last)

    return setup


def time_interleaved(variants: dict, repeats: int, warmup: int = 5) -> dict[str, list[float]]:
    """Seconds per call of each variant; one call of each in turn, ``repeats`` rounds."""
    times: dict = {name: [] for name in variants}
    for round_ in range(repeats + warmup):
        for name, setup in variants.items():
            call = setup()
            start = time.perf_counter()
            call()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:  # the first rounds warm caches and allocators
                times[name].append(elapsed)
    return times


def fixed(call: Callable[[], object]) -> Callable[[], Callable[[], object]]:
    return lambda: call


def medians_of(variants: dict, repeats: int) -> dict:
    return {k: statistics.median(v) for k, v in time_interleaved(variants, repeats).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pixels", default="256", help="image sizes, in units of 28*28 px")
    parser.add_argument("--ops", default="4", help="operations per step")
    parser.add_argument("--repeats", type=int, default=400, help="timed calls per variant")
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
    for units in (int(v) for v in args.pixels.split(",")):
        side = square_side(units * PATCH)
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        for count in (int(v) for v in args.ops.split(",")):
            ops = make_ops(count, side, rng)
            action = Draw(ops, thought="Mark the objects and trace the paths.")
            variants = {
                "numpy copy": fixed(lambda image=image: np.copy(image)),
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

    side = square_side(256 * PATCH)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    ops = make_ops(4, side, rng, prefix="cached ")
    action = Draw(ops, thought="Mark the objects and trace the paths.")
    repeats = max(args.repeats // 4, 20)
    print(f"\n{'448x448, 4 ops':<44} {'median us':>10} {'ratio':>7}")
    print("-" * 63)
    labels = medians_of(
        {"cached": env_step(image, action), "new": new_label_step(image, ops)}, repeats
    )
    print(f"{'cached labels':<44} {1e6 * labels['cached']:>10.1f} {1:>7.2f}")
    print(
        f"{'4 new labels (x cached)':<44} {1e6 * labels['new']:>10.1f} "
        f"{labels['new'] / labels['cached']:>7.2f}"
    )
    for copy_images in (True, False):
        held = medians_of(
            {h: history_step(image, action, h, copy_images) for h in (1, 40)}, repeats
        )
        for h in (1, 40):
            print(
                f"{f'history: {h} images held, copy_images={copy_images}':<44} "
                f"{1e6 * held[h]:>10.1f} {held[h] / held[1]:>7.2f}"
            )
    for copy_images in (True, False):
        chained = medians_of({n: chained_step(image, n, copy_images) for n in (1, 40)}, repeats)
        for n in (1, 40):
            print(
                f"{f'chained: {n} layers, copy_images={copy_images}':<44} "
                f"{1e6 * chained[n]:>10.1f} {chained[n] / chained[1]:>7.2f}"
            )
    print_parts(image, ops, action, protocol, args.repeats)


def print_parts(image, ops, action, protocol, repeats) -> None:
    """Where the typed step's time goes: each part timed alone, next to the whole step."""
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
        "env typed step": env_step(image, action),
    }
    medians = medians_of(parts, repeats)
    step = medians["env typed step"]
    print(f"\nparts of one typed step, {side}x{side}, {len(ops)} ops (median us, share of step)")
    for name, median in medians.items():
        print(f"  {name:<24} {1e6 * median:>9.1f} {median / step:>8.0%}")


if __name__ == "__main__":
    main()
