"""Shape drawing: OpenCV against Pillow, for the same layers on the same images.

Run ``python benchmarks/bench_drawing.py``. Both variants draw identical shapes (outlines grown
inwards, strokes, endpoint dots) and share the label step, so the ratio isolates the shape backend.
The OpenCV column is ``drawenv.canvas.render`` itself; the Pillow variant lives only here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from drawenv import canvas
from drawenv.actions import Box, Line

REPEATS = 200


def render_pillow(original: np.ndarray, layers: Sequence[Box | Line]) -> np.ndarray:
    """``canvas.render`` with the shapes drawn by Pillow instead of OpenCV."""
    height, width = original.shape[:2]
    stroke = canvas.stroke_width(width, height)
    radius = canvas.dot_radius(stroke)
    picture = Image.fromarray(original)
    draw = ImageDraw.Draw(picture)
    for op in layers:
        colour = canvas.label_colour(op.label)
        if op.kind == "box":
            draw.rectangle(canvas.box_pixels(op.bbox, width, height), outline=colour, width=stroke)
            continue
        start = (op.start[0] - 0.5, op.start[1] - 0.5)
        end = (op.end[0] - 0.5, op.end[1] - 0.5)
        draw.line([start, end], fill=colour, width=stroke)
        for (x, y), fill, rim in (
            (start, canvas.LINE_START_COLOUR, canvas.LINE_END_COLOUR),
            (end, canvas.LINE_END_COLOUR, canvas.LINE_START_COLOUR),
        ):
            draw.ellipse([x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1], rim)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill)
    image = np.array(picture)
    for op in layers:
        canvas._draw_label(image, op)
    return image


def make_layers(count: int, width: int, height: int, rng: np.random.Generator) -> list[Box | Line]:
    """``count`` operations, boxes and lines alternating, with a label each."""
    layers: list[Box | Line] = []
    for index in range(count):
        x = np.sort(rng.uniform(0, width, 2)).tolist()
        y = np.sort(rng.uniform(0, height, 2)).tolist()
        if index % 2 == 0:
            layers.append(Box(1, (x[0], y[0], x[1] + 1, y[1] + 1), f"object {index}"))
        else:
            layers.append(Line(1, (x[0], y[0]), (x[1], y[1]), f"path {index}"))
    return layers


def best_ms(function: Callable[[], object]) -> float:
    """Best of ``REPEATS`` timings in milliseconds (the least disturbed by other processes)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'case':<22}{'opencv ms':>11}{'pillow ms':>11}{'pillow/opencv':>15}")
    for width, height in ((448, 448), (644, 476)):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for count in (1, 8, 32):
            layers = make_layers(count, width, height, rng)
            canvas.render(image, layers)  # warm the font and tag caches for both variants
            opencv = best_ms(lambda: canvas.render(image, layers))  # noqa: B023
            pillow = best_ms(lambda: render_pillow(image, layers))  # noqa: B023
            case = f"{width}x{height}, {count} ops"
            print(f"{case:<22}{opencv:>11.3f}{pillow:>11.3f}{pillow / opencv:>15.2f}")
    print(f"canvas.render draws shapes with: {canvas.SHAPE_BACKEND}")


if __name__ == "__main__":
    main()
