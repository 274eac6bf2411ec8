"""Distance and direction questions about top-down floor plans, from pixels and question text.

A floor plan shows furniture as filled, strongly coloured (or dark) shapes on textured floors,
each with a dark text label on a white halo next to it, and a dark scale bar with its length
written above it ("2 m"). The solver finds each named label by template matching, takes the
coloured shape the label sits beside as the object, reads the scale bar, and measures:

- numeric distance: centre-to-centre pixels divided by pixels per metre;
- closest object: the option whose centre is nearest the reference's centre;
- direction: the side of the facing axis (cross product) and ahead/behind (dot product) of the
  target, in image coordinates whose y axis points down.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import cv2
import numpy as np

from agents.scripted import vision
from agents.scripted.solvers import guarded_solve
from agents.scripted.vision import BoxXYXY, Component, Solution
from drawenv.actions import Box, Line
from drawenv.prompts import QuestionPrompt
from drawenv.tasks.record import LETTERS

# The lengths a scale bar may show, as written on the plan.
BAR_TEXTS = ("0.5 m", "1 m", "1.5 m", "2 m", "2.5 m", "3 m", "4 m", "5 m")
LABEL_GAP = 7.5  # px between a label's halo and the edge of its object
GUESS_PX_PER_M = 38.0  # a middle scale, used when no scale bar is read
DIRECTIONS = ("front-left", "front-right", "back-left", "back-right")

_NAME = r"the (.+?)"
_NUMERIC = (
    re.compile(rf"distance between {_NAME} and {_NAME}, in metres"),
    re.compile(rf"How far apart are {_NAME} and {_NAME}, measured"),
    re.compile(rf"from the centre of {_NAME} to the centre of {_NAME}\?"),
)
_CLOSEST = re.compile(rf"closest to {_NAME}, measured centre to centre")
_DIRECTION = (
    re.compile(rf"standing at {_NAME} and facing {_NAME}\. In which direction is {_NAME}\?"),
    re.compile(rf"stand at {_NAME}, looking towards {_NAME}\. Where is {_NAME} relative"),
    re.compile(rf"Seen from {_NAME} while facing {_NAME}, in which direction does {_NAME} lie"),
)


def parse(prompt: QuestionPrompt) -> tuple[str, tuple[str, ...]] | None:
    """``(kind, names)`` of a floor-plan question: ``("numeric", (a, b))``, ``("closest", (x,))``
    or ``("direction", (standing, facing, target))``; None for any other question."""
    text = " ".join(prompt.question.split())
    if prompt.answer_type == "numeric":
        for pattern in _NUMERIC:
            if match := pattern.search(text):
                return "numeric", match.groups()
    if prompt.answer_type == "multiple_choice" and prompt.options:
        if match := _CLOSEST.search(text):
            return "closest", match.groups()
        for pattern in _DIRECTION:
            if (match := pattern.search(text)) and set(prompt.options) <= set(DIRECTIONS):
                return "direction", match.groups()
    return None


def matches(prompt: QuestionPrompt) -> bool:
    """Whether the question is a floor-plan distance or direction question."""
    return parse(prompt) is not None


# -- the plan -----------------------------------------------------------------------------------


def object_components(image: np.ndarray) -> list[Component]:
    """Furniture-like blobs: strongly coloured or dark regions of object size and shape.

    Floors and rugs are pale and weakly saturated, so they drop out; walls, text strokes and door
    arcs are thin (an opening removes them) or far larger than any piece of furniture.
    """
    smooth = cv2.medianBlur(np.ascontiguousarray(image), 3)
    sat, val = vision.saturation(smooth), vision.value(smooth)
    raw = ((sat > 0.33) & (val > 60)) | (val < 110)
    core = vision.open_mask(raw, 3)
    labels = vision.component_labels(raw)
    keep = np.unique(labels[core])
    mask = np.isin(labels, keep[keep > 0])
    found = []
    for comp in vision.components(mask, min_area=40):
        short, long = sorted((comp.width, comp.height))
        fill = comp.area / (comp.width * comp.height)
        if short >= 9 and long <= 112 and fill >= 0.35:
            found.append(comp)
    return found


def _side_cost(label: BoxXYXY, box: BoxXYXY) -> tuple[float, str]:
    """How well ``box`` sits where an object of ``label`` would (0 = exactly), and the side of
    the label the object is on."""
    lcx, lcy = vision.centre(label)
    bcx, bcy = vision.centre(box)
    costs = {
        "above": abs(label[1] - box[3] - LABEL_GAP) + abs(bcx - lcx),
        "below": abs(box[1] - label[3] - LABEL_GAP) + abs(bcx - lcx),
        "left": abs(label[0] - box[2] - LABEL_GAP) + abs(bcy - lcy),
        "right": abs(box[0] - label[2] - LABEL_GAP) + abs(bcy - lcy),
    }
    side = min(costs, key=costs.__getitem__)
    return costs[side], side


def locate(
    image: np.ndarray, name: str, blobs: list[Component], taken: Sequence[BoxXYXY] = ()
) -> tuple[BoxXYXY | None, BoxXYXY | None]:
    """``(label box, object box)`` of the object called ``name``; either may be None."""
    found = vision.label_candidates(image, name, polarity="dark", top=3)
    found = [(s, b) for s, b in found if all(vision.iou(b, t) < 0.5 for t in taken)]
    if not found or found[0][0] < 0.45:
        return None, None
    label = found[0][1]
    ranked = sorted(((_side_cost(label, b.box), b) for b in blobs), key=lambda pair: pair[0][0])
    if not ranked or ranked[0][0][0] > 25:
        near = min(blobs, key=lambda b: vision.box_gap(label, b.box), default=None)
        if near is None or vision.box_gap(label, near.box) > 30:
            return label, None
        return label, near.box
    (_, side), blob = ranked[0]
    x1, y1, x2, y2 = blob.box
    lcx, lcy = vision.centre(label)
    # A label is centred on its object along one axis: trust it over a partly found blob.
    if side in ("above", "below") and abs(vision.centre(blob.box)[0] - lcx) < 5:
        half = max(lcx - x1, x2 - lcx)
        x1, x2 = lcx - half, lcx + half
    elif side in ("left", "right") and abs(vision.centre(blob.box)[1] - lcy) < 5:
        half = max(lcy - y1, y2 - lcy)
        y1, y2 = lcy - half, lcy + half
    return label, (x1, y1, x2, y2)


def read_scale_bar(image: np.ndarray) -> tuple[BoxXYXY, float, float] | None:
    """``(box, length px, length m)`` of the scale bar: a long, thin dark bar with its length
    written centred above it; None when none is found."""
    luma = vision.gray(image)
    dark = luma < 90
    best = None
    for comp in vision.components(dark, min_area=60):
        if not (35 <= comp.width <= 150 and comp.height <= 16 and comp.width >= 4 * comp.height):
            continue
        x1, y1, x2, y2 = comp.box
        region = (x1 - 16, y1 - 22, x2 + 16, y1 + 2)
        bar_cx = (x1 + x2) / 2
        for text in BAR_TEXTS:
            for score, box in vision.label_candidates(
                image, text, polarity="dark", region=region, top=2
            ):
                if abs(vision.centre(box)[0] - bar_cx) <= 4 and (best is None or score > best[0]):
                    best = (score, comp, text, box)
    if best is None or best[0] < 0.4:
        return None
    _, comp, text, text_box = best
    x1, y1, x2, y2 = comp.box
    rows = luma[int(y1) : int(y2), max(0, int(x1) - 3) : int(x2) + 3]
    row = rows[int(np.argmin(rows.mean(axis=1)))]  # the bar's darkest row
    paper, ink = float(np.median(luma[int(y1) - 2, int(x1) : int(x2)])), float(row.min())
    length = float(np.clip((paper - row) / max(paper - ink, 1.0), 0, 1).sum())
    metres = float(text.split()[0])
    box = (min(x1, text_box[0]), text_box[1], max(x2, text_box[2]), y2)
    return box, length, metres


# -- answers ------------------------------------------------------------------------------------


def _solve(images: Sequence[np.ndarray], prompt: QuestionPrompt, kind: str, names: tuple[str, ...]):
    """Measure the plan in ``images[0]`` and answer."""
    image = images[0]
    height, width = image.shape[:2]
    blobs = object_components(image)
    wanted = list(names) + (list(prompt.options) if kind == "closest" else [])
    boxes: dict[str, BoxXYXY] = {}
    taken: list[BoxXYXY] = []
    # Longer names first: "chair A" must not take the label of "chair B", and longer templates
    # are the surer matches.
    for name in sorted(dict.fromkeys(wanted), key=len, reverse=True):
        label, box = locate(image, name, blobs, taken)
        if label is not None:
            taken.append(label)
        if box is not None:
            boxes[name] = box
    ops: list[Box | Line] = [
        Box(1, vision.clip_box(box, width, height), vision.safe_label(name))
        for name, box in boxes.items()
    ]
    centres = {name: vision.centre(box) for name, box in boxes.items()}

    def line(label: str, a: str, b: str) -> None:
        if a in centres and b in centres:
            start = vision.clip_point(centres[a], width, height)
            end = vision.clip_point(centres[b], width, height)
            if start != end:
                ops.append(Line(1, start, end, vision.safe_label(label)))

    if kind == "direction":
        a, b, c = names
        line("facing", a, b)
        line(f"to {c}", a, c)
        answer = relative_direction(centres, names, prompt.options)
    else:
        bar = read_scale_bar(image)
        px_per_m = bar[1] / bar[2] if bar else GUESS_PX_PER_M
        if bar:
            ops.append(Box(1, vision.clip_box(bar[0], width, height), "scale bar"))
        if kind == "numeric":
            a, b = names
            line(f"{a} to {b}", a, b)
            if a in centres and b in centres:
                metres = math.dist(centres[a], centres[b]) / px_per_m
                answer = f"{metres:.2f}"
            else:
                answer = _guess(prompt).answer
        else:
            (x,) = names
            for option in prompt.options:
                line(f"{x} to {option}", x, option)
            answer = _closest(centres, x, prompt.options)
    return Solution(vision.unique_operations(ops), answer)


def relative_direction(centres: dict, names: tuple[str, ...], options: Sequence[str]) -> str:
    """The option letter of where ``c`` lies for someone at ``a`` facing ``b`` (``names`` is
    ``(a, b, c)``), from the objects' pixel centres; option A when one is missing."""
    a, b, c = names
    if not all(n in centres for n in names):
        return LETTERS[0]
    (ax, ay), (bx, by), (cx, cy) = centres[a], centres[b], centres[c]
    fx, fy, tx, ty = bx - ax, by - ay, cx - ax, cy - ay
    right = fx * ty - fy * tx > 0  # clockwise on screen (y points down) is to the right
    front = fx * tx + fy * ty > 0
    wanted = f"{'front' if front else 'back'}-{'right' if right else 'left'}"
    return LETTERS[list(options).index(wanted)] if wanted in options else LETTERS[0]


def _closest(centres: dict, reference: str, options: Sequence[str]) -> str:
    if reference not in centres:
        return LETTERS[0]
    known = [k for k, o in enumerate(options) if o in centres]
    if not known:
        return LETTERS[0]
    best = min(known, key=lambda k: math.dist(centres[reference], centres[options[k]]))
    return LETTERS[best]


def _guess(prompt: QuestionPrompt) -> Solution:
    """The answer without pixels: the first option, or a typical distance."""
    return Solution((), LETTERS[0] if prompt.options else "3.0")


solve = guarded_solve(parse, _solve, _guess)
