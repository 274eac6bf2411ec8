"""Shared pieces of the procedural suites: seeding, textured backgrounds, anti-aliased painting,
and multiple-choice options with the correct letter spread evenly.

Every suite item is a pure function of ``(seed, index, difficulty)``: :func:`item_rng` derives one
generator from them (and the suite's name), so items are random access, reproducible and shardable.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from drawenv.canvas import font
from drawenv.errors import check_number
from drawenv.tasks.record import LETTERS

DIFFICULTIES = (1, 2, 3)
Colour = tuple[int, int, int]


def item_rng(suite: str, seed: int, index: int, difficulty: int) -> np.random.Generator:
    """The one random generator of an item: a pure function of its suite, seed, index, level."""
    check_number("difficulty", difficulty, low=1, high=3, integer=True)
    check_number("index", index, low=0, integer=True)
    return np.random.default_rng([zlib.crc32(suite.encode()), seed, index, difficulty])


def textured_background(
    rng: np.random.Generator, width: int, height: int, tint: Colour, *, grain: float = 8.0
) -> np.ndarray:
    """A paper- or floor-like background: a tint with soft blotches, a light gradient and grain."""
    low = rng.normal(0, 1, size=(height // 32 + 2, width // 32 + 2)).astype(np.float32)
    blotches = np.asarray(
        Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32
    )
    ramp = np.linspace(-1, 1, height, dtype=np.float32)[:, None] * rng.uniform(-6, 6)
    shade = 6 * blotches + ramp + rng.normal(0, grain, size=(height, width)).astype(np.float32)
    # One contiguous plane per channel, merged at the end: the same float32 sums as broadcasting
    # the tint over an HxWx3 array, about twenty times faster.
    planes = [np.clip(shade + np.float32(value), 0, 255).astype(np.uint8) for value in tint]
    return cv2.merge(planes)


class Painter:
    """Draw in final-pixel coordinates on a supersampled canvas; :meth:`result` anti-aliases.

    Pillow's primitives are not anti-aliased, so everything is drawn ``scale`` times larger and
    downsampled by averaging each ``scale`` x ``scale`` block (``Image.reduce``: a box filter,
    about ten times faster than a Lanczos resize and free of its ringing at hard edges).
    """

    def __init__(self, background: np.ndarray, *, scale: int = 3):
        height, width = background.shape[:2]
        self.width, self.height, self.scale = width, height, scale
        self.image = Image.fromarray(background).resize(
            (width * scale, height * scale), Image.Resampling.NEAREST
        )
        self.draw = ImageDraw.Draw(self.image)

    def _xy(self, points: Sequence[float]) -> list[float]:
        return [float(v) * self.scale for v in points]

    def ellipse(
        self, box: Sequence[float], fill: Colour, outline: Colour | None = None, width: float = 1.5
    ) -> None:
        """An ellipse inside ``box`` = (x1, y1, x2, y2)."""
        self.draw.ellipse(self._xy(box), fill=fill, outline=outline, width=self._w(width))

    def rectangle(
        self,
        box: Sequence[float],
        fill: Colour | None,
        outline: Colour | None = None,
        width: float = 1.5,
        radius: float = 0,
    ) -> None:
        """A (rounded) rectangle ``box`` = (x1, y1, x2, y2)."""
        self.draw.rounded_rectangle(
            self._xy(box),
            radius=radius * self.scale,
            fill=fill,
            outline=outline,
            width=self._w(width),
        )

    def polygon(
        self,
        points: Sequence[tuple[float, float]],
        fill: Colour | None,
        outline: Colour | None = None,
        width: float = 1.5,
    ) -> None:
        """A closed polygon through ``points``."""
        flat = [v for point in points for v in point]
        self.draw.polygon(self._xy(flat), fill=fill, outline=outline, width=self._w(width))

    def line(self, points: Sequence[tuple[float, float]], fill: Colour, width: float = 2) -> None:
        """A polyline through ``points``, with round joints."""
        flat = [v for point in points for v in point]
        self.draw.line(self._xy(flat), fill=fill, width=self._w(width), joint="curve")

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        size: float,
        fill: Colour,
        *,
        anchor: str = "mm",
        halo: Colour | None = None,
    ) -> tuple[float, float, float, float]:
        """Draw ``text`` anchored at ``xy`` (Pillow anchors, default centred); a ``halo`` outline
        keeps it readable on busy backgrounds. Returns its box in final pixels."""
        face = font(round(size * self.scale))
        position = (xy[0] * self.scale, xy[1] * self.scale)
        stroke = max(1, round(size * self.scale / 8)) if halo else 0
        self.draw.text(
            position,
            text,
            font=face,
            fill=fill,
            anchor=anchor,
            stroke_width=stroke,
            stroke_fill=halo,
        )
        left, top, right, bottom = self.draw.textbbox(
            position, text, font=face, anchor=anchor, stroke_width=stroke
        )
        return left / self.scale, top / self.scale, right / self.scale, bottom / self.scale

    def _w(self, width: float) -> int:
        return max(1, round(width * self.scale))

    def result(self, *, blur: float = 0.0) -> np.ndarray:
        """The final ``height x width x 3`` uint8 array."""
        image = self.image.reduce(self.scale)
        if blur:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        return np.asarray(image).copy()


def shuffled_options(
    rng: np.random.Generator, correct: str, wrong: Sequence[str]
) -> tuple[tuple[str, ...], str]:
    """Options with ``correct`` at a uniformly random position; returns (options, its letter)."""
    options = [str(w) for w in wrong]
    rng.shuffle(options)
    position = int(rng.integers(0, len(options) + 1))
    options.insert(position, correct)
    return tuple(options), LETTERS[position]


def fixed_options(
    rng: np.random.Generator, options: Sequence[str]
) -> tuple[int, tuple[str, ...], str]:
    """For questions with a fixed option list (e.g. four directions): pick the correct option
    uniformly first, so the generator builds the scene to match. Returns (position, options,
    letter)."""
    position = int(rng.integers(0, len(options)))
    return position, tuple(options), LETTERS[position]
