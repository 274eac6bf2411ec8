"""Counting solver: "How many <colour> <kind>s are there in the image?"

Every pixel is labelled with the nearest colour of the suite's paint box in Lab (the named fills,
their darker rims and the look-alike shades painted next to them, plus the table), so shading
and near-miss shades fall to their own label. The fill of the named colour splits into one
connected component per visible shape (a shape painted on top draws its rim across the one
below); each component is classified as circle, square, triangle, star or hexagon from its
solidity and how much of its enclosing circle it fills. Each counted shape gets a box; the answer
is their number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import cv2
import numpy as np

from agents.scripted.solvers import guarded_solve
from agents.scripted.vision import Solution, clip_box, safe_label, unique_operations
from drawenv.actions import Box
from drawenv.prompts import QuestionPrompt

# The colour words and kinds the questions use, as the suite paints them: domain knowledge of
# the suite's look, not an item's ground truth.
from drawenv.tasks.counting import COLOURS, KINDS

# Shades painted next to the named colours (vermilion, amber, lime, ...): never the named colour.
SHADES = (
    (226, 92, 40),
    (246, 180, 50),
    (200, 216, 64),
    (96, 176, 50),
    (84, 70, 200),
    (166, 66, 176),
    (236, 90, 130),
)
RIM = 0.62  # shapes are outlined in a darker version of their fill
# Share of its enclosing circle that the fill of a whole shape covers, as drawn (the rim and the
# pixel grid take a little off the ideal 1.0, 0.827, 0.637 and 0.413).
FILL = {"circle": 0.94, "hexagon": 0.82, "square": 0.66, "triangle": 0.455}
MIN_AREA = 40  # smaller fill components are slivers of covered shapes or anti-aliasing
MAX_BOXES = 32
_QUESTION = re.compile(
    r"\b(" + "|".join(COLOURS) + r")\s+(" + "|".join(KINDS) + r")(?:e?s)?\b", re.IGNORECASE
)


def matches(prompt: QuestionPrompt) -> bool:
    """Counting questions name one colour and one shape kind and ask for a count."""
    return prompt.answer_type == "count" and _QUESTION.search(prompt.question) is not None


def parse(prompt: QuestionPrompt) -> tuple[str, str] | None:
    """The colour and shape kind a counting question names, or None."""
    found = _QUESTION.search(prompt.question)
    return None if found is None else (found[1].lower(), found[2].lower())


def _solve(images: Sequence[np.ndarray], prompt: QuestionPrompt, colour: str, kind: str):
    """Box every shape of the named colour and kind in the first image and count them."""
    boxes = find_shapes(images[0], colour, kind)
    height, width = images[0].shape[:2]
    ops = [
        Box(1, clip_box(box, width, height), safe_label(f"{colour} {kind} {n}"))
        for n, box in enumerate(boxes[:MAX_BOXES], start=1)
    ]
    return Solution(unique_operations(ops), str(len(boxes)))


def _guess(prompt: QuestionPrompt) -> Solution:
    """The answer without pixels: a typical count."""
    return Solution((), "4")


solve = guarded_solve(parse, _solve, _guess)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (OpenCV float scaling: L in 0..100) of an ``...x3`` uint8 RGB array."""
    flat = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(np.shape(rgb))


# Pixels are looked up in a table over 32 levels per channel: the paints are tens of levels
# apart, so the rounding never changes which is nearest, and the table is 6x smaller than a frame.
_LEVELS = (np.arange(32, dtype=np.float32) * 8 + 4).astype(np.uint8)
_GRID = np.stack(np.meshgrid(_LEVELS, _LEVELS, _LEVELS, indexing="ij"), -1).reshape(-1, 3)
_GRID_LAB = _lab(_GRID)


def nearest_paint(image: np.ndarray, paints: list, *, lightness: float = 0.5) -> np.ndarray:
    """Per pixel the index of the nearest of ``paints`` (RGB) in Lab, lightness weighted by
    ``lightness`` because shading and lighting change lightness far more than hue."""
    weights = np.array([lightness, 1.0, 1.0], dtype=np.float32)
    grid = _GRID_LAB * weights
    centres = _lab(np.clip(np.array(paints), 0, 255).astype(np.uint8)) * weights
    # squared distances expanded, so the work is one matrix product
    dist = (centres**2).sum(1)[None, :] - 2 * grid @ centres.T
    table = dist.argmin(1).astype(np.int32)
    q = image.astype(np.int32) >> 3
    return table[(q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]]


def colour_labels(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per pixel the index of the nearest paint (fills, rims, shades, the table) and the paints'
    names: ``"fill:red"``, ``"rim:red"``, ``"shade"``, ``"table"``."""
    names, paints = [], []
    for name, rgb in COLOURS.items():
        names += [f"fill:{name}", f"rim:{name}"]
        paints += [rgb, tuple(RIM * v for v in rgb)]
    for rgb in SHADES:
        names += ["shade", "shade"]
        paints += [rgb, tuple(RIM * v for v in rgb)]
    # the table: its median colour, and darker where shadows fall
    table = np.median(image.reshape(-1, 3), axis=0)
    for k in (1.0, 0.85, 0.7):
        names.append("table")
        paints.append(tuple(k * table))
    return nearest_paint(image, paints), names


def classify(mask: np.ndarray) -> tuple[str, float]:
    """The kind of one shape's (visible) pixels, and its radius estimate in px."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    hull = cv2.convexHull(contour)
    area = float(mask.sum())
    solidity = area / max(cv2.contourArea(hull), 1.0)
    (_, _), radius = cv2.minEnclosingCircle(hull)
    radius += 0.5  # pixel centres sit half a pixel inside the drawn outline
    fill = area / (math.pi * radius * radius)
    if solidity < 0.82:
        return "star", radius
    # the convex kinds by how much of the enclosing circle the fill covers
    kind = min(("circle", "hexagon", "square", "triangle"), key=lambda k: abs(FILL[k] - fill))
    return kind, radius


def find_shapes(
    image: np.ndarray, colour: str, kind: str
) -> list[tuple[float, float, float, float]]:
    """Boxes of the shapes of ``colour`` and ``kind`` in ``image``."""
    labels, names = colour_labels(image)
    fill = labels == names.index(f"fill:{colour}")
    fill = cv2.morphologyEx(fill.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    count, comp, stats, _ = cv2.connectedComponentsWithStats(fill, connectivity=4)
    boxes = []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < MIN_AREA:
            continue
        part = comp[y : y + h, x : x + w] == k
        found, _ = classify(part)
        if found == kind:
            boxes.append((float(x), float(y), float(x + w), float(y + h)))
    return boxes
