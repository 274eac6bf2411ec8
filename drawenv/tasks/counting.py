"""``counting``: how many shapes of one colour and kind are in a cluttered scene?

A tabletop of paper cut-outs (circles, squares, triangles, stars, hexagons in several colours) with
soft shadows on a textured background; the question asks for one colour-kind pair ("How many red
stars are there?", answer type ``count``, scored with MRA like VSI-Bench's counting questions).

Drawing helps: boxing each counted shape, one label per instance, keeps track of what was already
counted among overlapping shapes, same-colour shapes of another kind and look-alike shades.

Difficulty (``LEVELS``): level 1 has no overlaps and every distractor differs in colour from the
targets (colour alone decides); level 2 adds same-colour shapes of other kinds and light overlaps;
level 3 adds near-miss shades of the target colour, heavier overlaps and more shapes. Targets
always stay at least ``min_visible`` visible, so the count is well defined.

Metadata beyond the common keys: ``target`` ("red star"), ``target_rgb``, ``count``,
``question_kind`` ("count"), ``distractors`` (how many shapes of each kind of distractor: "other"
colour, "same_colour" other kind, "near_miss" shade) and ``visible_share`` (per target, the share
of its area left uncovered); ``objects`` lists every target instance ("red star A", "red star B",
...) with the tight box of its visible part, in reading order (by top edge, then left edge), and
``key_drawings`` one box per target in the same order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from drawenv.tasks.record import LETTERS, TaskRecord
from drawenv.tasks.scene import Painter, item_rng, textured_background


class Level(NamedTuple):
    """One difficulty level's knobs."""

    targets: tuple[int, int]  # inclusive range of the answer, drawn uniformly
    distractors: tuple[int, int]
    radius: tuple[float, float]  # shape size in px
    overlap: float  # chance that a shape is placed against an earlier one
    min_visible: float  # share of each target's area left uncovered
    same_colour: bool  # distractors of the target colour but another kind
    near_miss: bool  # distractors in a shade close to the target colour


LEVELS = {
    1: Level((1, 8), (6, 12), (16.0, 25.0), 0.0, 1.0, False, False),
    2: Level((1, 12), (10, 18), (14.0, 22.0), 0.2, 0.8, True, False),
    3: Level((1, 16), (18, 28), (12.0, 21.0), 0.4, 0.65, True, True),
}
MAX_TARGETS = 24  # one key box per target, within the env's 32 operations per turn
SIZE = 448  # a multiple of 28: shown unresized
# Fill colours far apart from each other and from the backgrounds, each with a near-miss shade.
COLOURS = {
    "red": (214, 44, 48),
    "orange": (246, 140, 28),
    "yellow": (240, 208, 40),
    "green": (44, 158, 70),
    "blue": (38, 96, 214),
    "purple": (128, 64, 184),
    "pink": (236, 110, 178),
}
NEAR_MISS = {
    "red": (226, 92, 40),
    "orange": (246, 180, 50),
    "yellow": (200, 216, 64),
    "green": (96, 176, 50),
    "blue": (84, 70, 200),
    "purple": (166, 66, 176),
    "pink": (236, 90, 130),
}
KINDS = ("circle", "square", "triangle", "star", "hexagon")
TINTS = ((222, 212, 194), (200, 202, 206), (214, 206, 210), (226, 222, 210))
QUESTIONS = (
    "How many {colour} {kind}s are there in the image?",
    "Count the {colour} {kind}s in this picture. How many are there?",
    "How many {colour} {kind}s can you see on the table?",
)


class Shape(NamedTuple):
    """One cut-out: its colour, polygon outline and role ("target", "other" colour,
    "same_colour" other kind, "near_miss" shade)."""

    rgb: tuple[int, int, int]
    points: list[tuple[float, float]]
    role: str


def generate(seed: int, index: int, difficulty: int = 1) -> TaskRecord:
    """Item ``index`` of the suite: a pure function of (seed, index, difficulty)."""
    rng = item_rng("counting", seed, index, difficulty)
    level = LEVELS[difficulty]
    colour, kind = str(rng.choice(list(COLOURS))), str(rng.choice(KINDS))
    count = min(int(rng.integers(*level.targets, endpoint=True)), MAX_TARGETS)
    question = str(rng.choice(QUESTIONS)).format(colour=colour, kind=kind)
    specs = [(COLOURS[colour], kind, "target")] * count
    specs += [
        _distractor(rng, level, colour, kind)
        for _ in range(int(rng.integers(*level.distractors, endpoint=True)))
    ]
    specs = [specs[i] for i in rng.permutation(len(specs))]  # paint order mixes them
    shapes, boxes, visible = _place(rng, level, specs)
    # Targets in reading order (top edge, then left edge), so the key boxes A, B, C, ... sweep
    # the scene top to bottom: one deterministic order to learn from the image.
    order = sorted(range(count), key=lambda n: (boxes[n][1], boxes[n][0]))
    boxes, visible = [boxes[n] for n in order], [visible[n] for n in order]
    image = _render(rng, shapes)
    objects = [{"name": f"{colour} {kind} {LETTERS[n]}", "box": box} for n, box in enumerate(boxes)]
    return TaskRecord(
        id=f"counting-{seed}-{difficulty}-{index}",
        images=(image,),
        question=question,
        answer_type="count",
        answer=count,
        metadata={
            "suite": "counting",
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
            "question_kind": "count",
            "target": f"{colour} {kind}",
            "target_rgb": list(COLOURS[colour]),
            "count": count,
            "distractors": {
                role: sum(s.role == role for s in shapes)
                for role in ("other", "same_colour", "near_miss")
            },
            "visible_share": visible,
            "objects": objects,
            "key_drawings": [
                {"kind": "box", "index": 1, "bbox": o["box"], "label": o["name"]} for o in objects
            ],
        },
    )


def _distractor(
    rng: np.random.Generator, level: Level, colour: str, kind: str
) -> tuple[tuple[int, int, int], str, str]:
    """A non-target: another colour, or (by level) the target colour or a near-miss shade."""
    others = [k for k in KINDS if k != kind]
    roll = rng.random()
    if level.near_miss and roll < 0.2:
        return NEAR_MISS[colour], str(rng.choice(KINDS)), "near_miss"
    if level.same_colour and roll < 0.4:
        return COLOURS[colour], str(rng.choice(others)), "same_colour"
    other = str(rng.choice([c for c in COLOURS if c != colour]))
    return COLOURS[other], str(rng.choice(KINDS)), "other"  # half of these share the target kind


def _outline(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """The polygon of a shape of radius ``r`` centred at (cx, cy), turned by ``angle``."""
    if kind == "circle":
        radii, count, start = [r], 40, 0.0
    elif kind == "square":
        radii, count, start = [1.2 * r], 4, math.pi / 4
    elif kind == "triangle":
        radii, count, start = [1.25 * r], 3, -math.pi / 2
    elif kind == "star":
        radii, count, start = [1.25 * r, 0.52 * r], 10, -math.pi / 2
    else:
        radii, count, start = [1.05 * r], 6, 0.0
    return [
        (
            cx + radii[i % len(radii)] * math.cos(start + angle + 2 * math.pi * i / count),
            cy + radii[i % len(radii)] * math.sin(start + angle + 2 * math.pi * i / count),
        )
        for i in range(count)
    ]


def _place(
    rng: np.random.Generator, level: Level, specs: list[tuple[tuple[int, int, int], str, str]]
) -> tuple[list[Shape], list[list[float]], list[float]]:
    """Place shapes in paint order on an ownership map (which shape shows at each pixel), so
    every target keeps ``min_visible`` of its area. Returns the shapes, and for the targets the
    tight boxes of their visible parts and their visible shares."""
    owner = np.full((SIZE, SIZE), -1, dtype=np.int32)
    areas: list[int] = []
    visible: list[int] = []  # pixels where each shape is on top
    shapes: list[Shape] = []
    windows: list[tuple[slice, slice]] = []
    gap = 4 if level.overlap == 0 else 0  # level 1: shapes never touch
    for rgb, kind, role in specs:
        for _ in range(400 if role == "target" else 40):
            r = float(rng.uniform(*level.radius))
            if shapes and rng.random() < level.overlap:  # lean on an earlier shape
                cx, cy = np.mean(shapes[int(rng.integers(len(shapes)))].points, axis=0)
                turn, reach = rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 1.8) * r
                cx, cy = cx + reach * math.cos(turn), cy + reach * math.sin(turn)
            else:
                cx, cy = rng.uniform(1.4 * r, SIZE - 1.4 * r, size=2)
            points = _outline(kind, float(cx), float(cy), r, float(rng.uniform(0, 2 * math.pi)))
            footprint = _mask(points, grow=gap)
            if footprint is None:
                continue
            window, mask = footprint
            under = owner[window][mask]
            covered = np.bincount(under[under >= 0], minlength=len(shapes))
            if gap and covered.any():
                continue
            if all(
                visible[n] - covered[n] >= level.min_visible * areas[n]
                for n in np.flatnonzero(covered)
                if shapes[n].role == "target"
            ):
                break
        else:
            if role == "target":
                raise RuntimeError("no room for a target")  # not reached with these sizes
            continue  # a crowded scene drops a distractor rather than break the rules
        if gap:
            window, mask = _mask(points, grow=0)
        under = owner[window][mask]
        for n, pixels in enumerate(np.bincount(under[under >= 0], minlength=len(shapes))):
            visible[n] -= int(pixels)
        owner[window][mask] = len(shapes)
        areas.append(int(mask.sum()))
        visible.append(areas[-1])
        shapes.append(Shape(rgb, points, role))
        windows.append(window)
    boxes, shares = [], []
    for n, shape in enumerate(shapes):
        if shape.role == "target":
            rows, cols = windows[n]
            # the visible part without slivers thinner than the rim, which read as no shape
            mine = cv2.erode((owner[rows, cols] == n).astype(np.uint8), np.ones((3, 3), np.uint8))
            ys, xs = np.nonzero(mine)
            x, y = cols.start, rows.start
            box = (x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1)
            boxes.append([float(v) for v in box])
            shares.append(round(visible[n] / areas[n], 3))
    return shapes, boxes, shares


def _mask(
    points: list[tuple[float, float]], grow: int
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The shape's pixels (widened by ``grow``) as (window of the image, boolean map inside it),
    or None if the shape comes within 2 px of the image border."""
    x0, y0 = (math.floor(min(p[i] for p in points)) - grow - 1 for i in (0, 1))
    x1, y1 = (math.ceil(max(p[i] for p in points)) + grow + 2 for i in (0, 1))
    if min(x0, y0) < 2 or max(x1, y1) > SIZE - 2:
        return None
    canvas = Image.new("L", (x1 - x0, y1 - y0))
    ImageDraw.Draw(canvas).polygon([(x - x0, y - y0) for x, y in points], fill=255)
    mask = np.asarray(canvas)
    if grow:
        mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return (slice(y0, y1), slice(x0, x1)), mask > 0


def _render(rng: np.random.Generator, shapes: list[Shape]) -> np.ndarray:
    """Paint the shadows, then the shapes with a darker rim, then a little sensor noise."""
    tint = TINTS[int(rng.integers(len(TINTS)))]
    background = textured_background(rng, SIZE, SIZE, tint)
    shadow = Image.new("L", (SIZE, SIZE))
    draw = ImageDraw.Draw(shadow)
    for shape in shapes:
        draw.polygon([(x + 2.5, y + 3.5) for x, y in shape.points], fill=255)
    darkness = np.asarray(shadow.filter(ImageFilter.GaussianBlur(2.5)), dtype=np.float32)
    light = 1 - 0.3 * darkness / 255
    # One contiguous plane per channel: the same float32 products as broadcasting over HxWx3.
    shaded = [
        (plane.astype(np.float32) * light).astype(np.uint8) for plane in cv2.split(background)
    ]
    painter = Painter(cv2.merge(shaded))
    for shape in shapes:
        rim = tuple(int(0.62 * v) for v in shape.rgb)
        painter.polygon(shape.points, fill=shape.rgb, outline=rim, width=1.3)
    noisy = rng.normal(0, 2.0, size=(SIZE, SIZE, 3))
    noisy += painter.result()
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
