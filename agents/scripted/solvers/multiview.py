"""Multiview solver: which object moved between the first and last frame, or in what order did
objects first appear?

Each frame is segmented by labelling every pixel with the nearest paint in Lab (the object
colours, their darker rims and lighter trims, the dark parts objects carry, and the table's own
shades): one object is a connected blob of one colour. Each blob gets a few shape cues (how round
it is, its aspect, how much of it is light trim or dark insert) that tell a mug from a plate or a
phone. Options name objects ("teal mug"), and names map to blobs by colour first and shape cues
second.

- moved: blobs of frame 1 and the last frame are paired by look; a camera model (zoom and pan,
  ``x' = s·x + t``) is fitted robustly to all pairs (RANSAC over pairs of pairs); the named object
  whose position disagrees most with that model moved.
- order: consecutive frames are aligned the same way; in each frame the blob farthest from
  anything of its colour in the previous frame is the new arrival. The option whose ordering
  best fits the arrivals' looks wins.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from agents.scripted.solvers import guarded_solve
from agents.scripted.solvers.counting import nearest_paint
from agents.scripted.vision import Solution, clip_box, safe_label, unique_operations
from drawenv.actions import Box
from drawenv.prompts import QuestionPrompt

# The colour words and kinds the questions use, as the suite paints them: domain knowledge of
# the suite's look, not an item's ground truth.
from drawenv.tasks.multiview import COLOURS, KINDS
from drawenv.tasks.record import LETTERS

RIM, TRIM = 0.6, 0.5  # outlines are darker; trims (plate middles, box ribbons) lighter
# Parts that are no object's colour: coffee, phone screens, car windows, book pages.
INSERTS = {"dark": (34, 32, 36), "coffee": (72, 46, 30), "glass": (64, 74, 94)}
PAGES = (238, 232, 214)
MIN_AREA = 250  # px; the smallest object covers well over 600
# Shape cues of each kind as drawn: (roundness, aspect, trim share, insert share), and how far
# each cue may stray. Round kinds fill ~0.94 of their enclosing circle; a mug's handle, a box's
# corners and the oblong kinds much less.
PROTOTYPES = {
    "ball": (0.94, 1.0, 0.065, 0.0),
    "plate": (0.95, 1.0, 0.45, 0.0),
    "mug": (0.67, 1.14, 0.0, 0.47),
    "box": (0.66, 1.0, 0.24, 0.0),
    "book": (0.58, 1.55, 0.016, 0.0),
    "phone": (0.54, 1.84, 0.0, 0.55),
    "toy car": (0.535, 1.9, 0.0, 0.157),
}
SPREAD = (0.04, 0.1, 0.05, 0.06)
_NAME = re.compile(r"\b(" + "|".join(COLOURS) + r")\s+(" + "|".join(KINDS) + r")\b")


def matches(prompt: QuestionPrompt) -> bool:
    """The two multiview question kinds, with options naming coloured objects."""
    text = prompt.question.lower()
    return bool(prompt.options) and (
        "which object moved" in text or ("in what order" in text and "appear" in text)
    )


@dataclass(frozen=True)
class Blob:
    """One object's pixels in one frame: colour name, box, centre, area and shape cues."""

    colour: str
    box: tuple[float, float, float, float]
    centre: tuple[float, float]
    area: int
    cues: tuple[float, ...]


def parse(prompt: QuestionPrompt) -> tuple[list[list[tuple[str, str]]]]:
    """The (colour, kind) objects each option names."""
    return ([_names(option) for option in prompt.options],)


def _solve(images: Sequence[np.ndarray], prompt: QuestionPrompt, options) -> Solution:
    """Answer a moved or order question from the frames' pixels."""
    frames = [find_blobs(image) for image in images]
    if "which object moved" in prompt.question.lower():
        return _moved(frames, options, images)
    return _order(frames, options, images)


def _guess(prompt: QuestionPrompt) -> Solution:
    """The answer without pixels: the first option."""
    return Solution((), "A")


def _names(text: str) -> list[tuple[str, str]]:
    """The (colour, kind) pairs named in ``text``, in order."""
    return [(m[1], m[2]) for m in _NAME.finditer(text.lower())]


def kind_cost(blob: Blob, kind: str) -> float:
    """How unlike ``kind`` the blob looks (0: a perfect match; about 1: at the edge of a kind)."""
    return float(
        np.sqrt(sum(((c - p) / d) ** 2 for c, p, d in zip(blob.cues, PROTOTYPES[kind], SPREAD))) / 2
    )


def name_cost(blob: Blob, name: tuple[str, str]) -> float:
    """How unlike the named object the blob looks; another colour never matches."""
    return kind_cost(blob, name[1]) if blob.colour == name[0] else math.inf


def locate(blobs: list[Blob], name: tuple[str, str]) -> Blob | None:
    """The blob that best matches ``name``, or None if nothing of its colour is there."""
    costs = [name_cost(b, name) for b in blobs]
    if not costs or not math.isfinite(min(costs)):
        return None
    return blobs[int(np.argmin(costs))]


def pairs(first: list[Blob], second: list[Blob]) -> list[tuple[Blob, Blob]]:
    """Candidate correspondences: blobs of the same colour that could be the same kind."""
    found = []
    for a in first:
        for b in second:
            if a.colour == b.colour and _look_gap(a, b) < 2.5:
                found.append((a, b))
    return found


def _look_gap(a: Blob, b: Blob) -> float:
    """How different two blobs look, in cue spreads (size aside: the camera zooms)."""
    return float(np.sqrt(sum(((x - y) / d) ** 2 for x, y, d in zip(a.cues, b.cues, SPREAD))))


def fit_camera(matches: list[tuple[Blob, Blob]], tolerance: float = 10.0) -> tuple[float, ...]:
    """The zoom-and-pan ``(s, tx, ty)`` mapping first-frame centres onto second-frame centres
    that the most candidate pairs agree with (RANSAC over pairs of pairs, then least squares on
    the inliers). With fewer than two pairs, a pure pan (or nothing)."""
    if not matches:
        return (1.0, 0.0, 0.0)
    src = np.array([a.centre for a, _ in matches])
    dst = np.array([b.centre for _, b in matches])
    hypotheses = [(1.0, *(dst[i] - src[i])) for i in range(len(src))]
    for i, j in itertools.combinations(range(len(src)), 2):
        span = np.linalg.norm(src[i] - src[j])
        if span < 20:
            continue
        s = float(np.linalg.norm(dst[i] - dst[j]) / span)
        if 0.75 < s < 1.3:
            hypotheses.append((s, *(dst[i] - s * src[i])))
    best, best_score = hypotheses[0], -1.0
    for s, tx, ty in hypotheses:
        error = np.linalg.norm(dst - (s * src + (tx, ty)), axis=1)
        score = float(np.clip(1 - error / tolerance, 0, None).sum())
        if score > best_score:
            best, best_score = (s, tx, ty), score
    s, tx, ty = best
    inliers = np.linalg.norm(dst - (s * src + (tx, ty)), axis=1) < tolerance
    if inliers.sum() >= 2:  # least squares for (s, tx, ty) on the inliers
        a = np.zeros((2 * inliers.sum(), 3))
        a[0::2, 0], a[0::2, 1] = src[inliers, 0], 1
        a[1::2, 0], a[1::2, 2] = src[inliers, 1], 1
        refit = np.linalg.lstsq(a, dst[inliers].reshape(-1), rcond=None)[0]
        if 0.75 < refit[0] < 1.3:
            s, tx, ty = (float(v) for v in refit)
    return (s, tx, ty)


def _mapped(camera: tuple[float, ...], point: tuple[float, float]) -> tuple[float, float]:
    s, tx, ty = camera
    return (s * point[0] + tx, s * point[1] + ty)


def _moved(
    frames: list[list[Blob]], options: list[list[tuple[str, str]]], images: tuple
) -> Solution:
    """The option whose object is farthest from where the camera alone would have put it."""
    first, last = frames[0], frames[-1]
    camera = fit_camera(pairs(first, last))
    scores = []
    for names in options:
        if not names:
            scores.append(-1.0)
            continue
        a, b = locate(first, names[0]), locate(last, names[0])
        if a is None or b is None:
            scores.append(0.0)  # lost in one frame: no evidence either way
            continue
        scores.append(math.dist(_mapped(camera, a.centre), b.centre))
    pick = int(np.argmax(scores)) if scores else 0
    ops = []
    if options and options[pick]:
        name = options[pick][0]
        for f, blobs in enumerate(frames, start=1):
            blob = locate(blobs, name)
            if blob is not None:
                ops.append(_box(images, f, blob, f"{name[0]} {name[1]} f{f}"))
    return Solution(unique_operations(ops), LETTERS[pick])


def _order(
    frames: list[list[Blob]], options: list[list[tuple[str, str]]], images: tuple
) -> Solution:
    """The option whose ordering best fits the new arrival found in each frame."""
    arrivals: list[Blob | None] = [None]
    for before, after in itertools.pairwise(frames):
        camera = fit_camera(pairs(before, after))
        gaps = []
        for blob in after:
            near = [
                math.dist(_mapped(camera, b.centre), blob.centre) + 8 * _look_gap(b, blob)
                for b in before
                if b.colour == blob.colour
            ]
            gaps.append(min(near, default=1000.0))
        arrivals.append(after[int(np.argmax(gaps))] if gaps else None)
    costs = []
    for names in options:
        cost = 0.0
        for f, name in enumerate(names[1:], start=1):
            arrival = arrivals[f] if f < len(arrivals) else None
            if arrival is not None:
                cost += min(name_cost(arrival, name), 10.0)
        costs.append(cost if len(names) > 1 else math.inf)
    pick = int(np.argmin(costs)) if costs else 0
    ops = []
    if options and options[pick]:
        for f, name in enumerate(options[pick]):
            blob = arrivals[f] if f and f < len(arrivals) else None
            blob = blob or locate(frames[min(f, len(frames) - 1)], name)
            if blob is not None:
                ops.append(_box(images, f + 1, blob, f"{name[0]} {name[1]} f{f + 1}"))
    return Solution(unique_operations(ops), LETTERS[pick])


def _box(images: tuple, index: int, blob: Blob, label: str) -> Box:
    """A box around ``blob`` on image ``index``, clipped to it."""
    height, width = images[index - 1].shape[:2]
    x1, y1, x2, y2 = blob.box
    return Box(index, clip_box((x1 - 2, y1 - 2, x2 + 2, y2 + 2), width, height), safe_label(label))


def paint_labels(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per pixel the index of the nearest paint, and the paints' names (``"fill:red"``,
    ``"rim:red"``, ``"trim:red"``, ``"insert"``, ``"pages"``, ``"table"``)."""
    names, paints = [], []
    for name, rgb in COLOURS.items():
        names += [f"fill:{name}", f"rim:{name}", f"trim:{name}"]
        paints += [rgb, tuple(RIM * v for v in rgb), tuple(v + TRIM * (255 - v) for v in rgb)]
    for rgb in INSERTS.values():
        names.append("insert")
        paints.append(rgb)
    names.append("pages")
    paints.append(PAGES)
    # the table, its mat and seams, and shadows: shades of the frame's median colour
    table = np.median(image.reshape(-1, 3), axis=0)
    for k in (0.55, 0.65, 0.75, 0.85, 0.95, 1.05, 1.15, 1.25):
        names.append("table")
        paints.append(tuple(k * table))
    return nearest_paint(image, paints, lightness=0.6), names


def find_blobs(image: np.ndarray) -> list[Blob]:
    """The objects of one frame."""
    labels, names = paint_labels(image)
    insert = np.isin(labels, [i for i, n in enumerate(names) if n in ("insert", "pages")])
    blobs = []
    for colour in COLOURS:
        fill = labels == names.index(f"fill:{colour}")
        rim = labels == names.index(f"rim:{colour}")
        trim = labels == names.index(f"trim:{colour}")
        if fill.sum() < MIN_AREA / 2:
            continue
        mask = (fill | rim | trim).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
        count, comp, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            part = comp[y : y + h, x : x + w] == k
            solid = _fill_holes(part)
            own = fill[y : y + h, x : x + w] & solid
            if own.sum() < MIN_AREA / 2 or solid.sum() < MIN_AREA:
                continue
            cues = _cues(
                solid, own, trim[y : y + h, x : x + w] & solid, insert[y : y + h, x : x + w] & solid
            )
            ys, xs = np.nonzero(solid)
            centre = (float(xs.mean() + x), float(ys.mean() + y))
            box = (float(x), float(y), float(x + w), float(y + h))
            blobs.append(Blob(colour, box, centre, int(solid.sum()), cues))
    return blobs


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every hole (background not reachable from the border) filled."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    return (padded | (1 - flood)).astype(bool)[1:-1, 1:-1]


def _cues(solid: np.ndarray, fill: np.ndarray, trim: np.ndarray, insert: np.ndarray) -> tuple:
    """Shape cues of one object: (roundness, aspect, trim share, insert share)."""
    area = float(solid.sum())
    contours, _ = cv2.findContours(solid.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    (_, _), radius = cv2.minEnclosingCircle(contour)
    roundness = area / (math.pi * (radius + 0.5) ** 2)
    (_, _), (w, h), _ = cv2.minAreaRect(contour)
    aspect = max(w, h) / max(min(w, h), 1.0)
    return (roundness, aspect, float(trim.sum()) / area, float(insert.sum()) / area)


solve = guarded_solve(parse, _solve, _guess)
