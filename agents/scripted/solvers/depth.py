"""Depth questions about perspective photos of objects on a tiled plaza, from pixels and text.

The camera is a pinhole above flat ground, pitched down, with its principal point at the image
centre; the question states its height and that the ground tiles are 1 m squares. The solver

1. finds the horizon: the sharp step from the hazy hills to the brighter, hazier far ground;
2. finds the focal length: the one whose predicted rows of the tile joints (every metre, darker
   every 5 m) fall on the darkest rows of the ground, given the horizon and the camera height;
3. finds each named object: its label (light text on a dark halo) and, next to it, the blob of
   the colour the name says; the lowest blob pixel is its ground contact;
4. casts the contact pixel's ray onto the ground for the object's position, and measures from
   the camera to the object's centre.

"Which is closer" questions rank the options by that distance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.scripted import vision
from agents.scripted.solvers import guarded_solve
from agents.scripted.vision import BoxXYXY, Solution
from drawenv.actions import Box, Line
from drawenv.prompts import QuestionPrompt
from drawenv.tasks.record import LETTERS

# Typical hues (degrees) of colour words, for telling apart touching objects.
HUES = {
    "red": 2.0,
    "orange": 28.0,
    "yellow": 48.0,
    "green": 125.0,
    "teal": 177.0,
    "blue": 223.0,
    "purple": 272.0,
    "pink": 326.0,
}
HUE_TOLERANCE = 13.0
LABEL_GAP = 3.5  # px between a label's halo and its object's box
FOCALS = np.arange(300.0, 520.0, 1.0)  # focal lengths (px) tried against the tile joints
GUESS_METRES = "10"

_NUMERIC = re.compile(
    r"camera is ([\d.]+) m above flat ground.*How far is the (.+?) from the camera", re.S
)
_CLOSER = re.compile(r"Which (?:object is closer|of these objects is closest) to the camera\?")


@dataclass(frozen=True)
class Ground:
    """The ground plane as the camera sees it: horizon row, focal length, principal point."""

    horizon: float
    focal: float
    cx: float
    cy: float
    height: float

    @property
    def pitch(self) -> float:
        """Downward pitch of the camera in radians."""
        return math.atan2(self.cy - self.horizon, self.focal)

    def to_ground(self, u: float, v: float) -> tuple[float, float]:
        """Ground position ``(x right, z forward)`` in metres of pixel ``(u, v)`` below the
        horizon."""
        s, c = math.sin(self.pitch), math.cos(self.pitch)
        up = -(v - self.cy) / self.focal
        fall = max(s - up * c, 1e-3)
        t = self.height / fall
        return t * (u - self.cx) / self.focal, t * (up * s + c)

    def metres_per_px(self, v: float) -> float:
        """Metres per pixel across the image at row ``v`` on the ground."""
        return self.height / (math.cos(self.pitch) * max(v - self.horizon, 1.0))


def parse(prompt: QuestionPrompt) -> tuple[str, float | None, tuple[str, ...]] | None:
    """``("numeric", camera height, (name,))`` or ``("closer", None, options)``; None for any
    other question."""
    text = " ".join(prompt.question.split())
    if prompt.answer_type == "numeric" and (match := _NUMERIC.search(text)):
        return "numeric", float(match[1]), (match[2],)
    if prompt.answer_type == "multiple_choice" and prompt.options and _CLOSER.search(text):
        return "closer", None, tuple(prompt.options)
    return None


def matches(prompt: QuestionPrompt) -> bool:
    """Whether the question asks how far an object is from the camera, or which is closer."""
    return parse(prompt) is not None


# -- the camera ---------------------------------------------------------------------------------


def find_horizon(image: np.ndarray) -> float:
    """The horizon row: the first sharp brightening going down from the sky (hills to haze)."""
    profile = np.median(vision.gray(image), axis=1)
    step = np.diff(profile)
    for v in range(10, len(step) // 2 + 60):
        # Thin joints also brighten row to row; only the horizon stays brighter below.
        if step[v] > 15 and profile[v + 1 : v + 6].mean() - profile[v - 5 : v].mean() > 20:
            return float(v + 1)
    return image.shape[0] * 0.3


def find_focal(image: np.ndarray, horizon: float, height: float) -> float:
    """The focal length whose tile joints line up with the dark rows of the ground."""
    rows, cols = image.shape[:2]
    luma = vision.gray(image)
    plain = vision.saturation(image) < 0.3  # the ground, not the objects
    profile = np.array(
        [
            np.median(row[keep]) if keep.sum() > 20 else np.median(row)
            for row, keep in zip(luma, plain)
        ]
    )
    padded = np.pad(profile, 3, mode="edge")
    baseline = np.median(np.lib.stride_tricks.sliding_window_view(padded, 7), axis=1)
    darkness = np.minimum(profile - baseline, 0.0)
    cy = rows / 2
    best, best_score = 400.0, 0.0
    depths = np.arange(1.0, 60.0)
    weights = np.where(depths % 5 == 0, 2.0, 1.0)
    for focal in FOCALS:
        pitch = math.atan2(cy - horizon, focal)
        s, c = math.sin(pitch), math.cos(pitch)
        v = horizon + focal * height / (c * (depths * c + height * s)) - 0.5
        inside = (v > horizon + 3) & (v < rows - 1)
        if inside.sum() < 3:
            continue
        score = float(np.sum(weights[inside] * np.interp(v[inside], np.arange(rows), darkness)))
        if score < best_score:
            best, best_score = float(focal), score
    return best


# -- objects ------------------------------------------------------------------------------------


def colour_mask(image: np.ndarray, name: str, horizon: float) -> np.ndarray:
    """Pixels of strong colour, of the hue the name's colour word says when it says one; the sky
    (blue, above the horizon) is left out."""
    sat, val, hue = vision.saturation(image), vision.value(image), vision.hue(image)
    mask = (sat > 0.4) & (val > 40)
    word = next((w for w in name.lower().split() if w in HUES), None)
    if word is not None:
        gap = np.abs((hue - HUES[word] + 180.0) % 360.0 - 180.0)
        mask &= gap < HUE_TOLERANCE
    sky_hue = float(np.median(hue[: max(1, int(horizon) // 3)]))
    sky = np.abs((hue - sky_hue + 180.0) % 360.0 - 180.0) < 15
    mask[: max(0, int(horizon))] &= ~sky[: max(0, int(horizon))]
    return vision.open_mask(mask, 2)


def _side_cost(label: BoxXYXY, box: BoxXYXY) -> float:
    lcx, lcy = vision.centre(label)
    bcx, bcy = vision.centre(box)
    return min(
        abs(box[1] - label[3] - LABEL_GAP) + 0.5 * abs(bcx - lcx),  # label above the object
        abs(label[0] - box[2] - LABEL_GAP) + 0.5 * abs(bcy - lcy),  # label right of it
        abs(box[0] - label[2] - LABEL_GAP) + 0.5 * abs(bcy - lcy),  # label left of it
        abs(label[1] - box[3] - LABEL_GAP) + 0.5 * abs(bcx - lcx),  # label below it
    )


def locate(
    image: np.ndarray, name: str, horizon: float, taken: Sequence[BoxXYXY] = ()
) -> tuple[BoxXYXY | None, BoxXYXY | None, np.ndarray | None]:
    """``(label box, object box, object mask)`` of the object called ``name``; any may be
    None."""
    found = vision.label_candidates(image, name, polarity="light", top=3)
    found = [(s, b) for s, b in found if all(vision.iou(b, t) < 0.5 for t in taken)]
    if not found or found[0][0] < 0.4:
        return None, None, None
    label = found[0][1]
    mask = colour_mask(image, name, horizon)
    lx1, ly1, lx2, ly2 = (int(v) for v in label)
    mask[max(0, ly1) : ly2, max(0, lx1) : lx2] = False  # the label is not the object
    labels = vision.component_labels(mask)
    blobs = vision.components(mask, min_area=6)
    if not blobs:
        return label, None, None
    blob = min(blobs, key=lambda b: _side_cost(label, b.box) - 0.02 * min(b.area, 400))
    return label, blob.box, labels == blob.label


def ground_contact(mask: np.ndarray) -> tuple[float, float]:
    """``(u, v)`` of the lowest pixels of an object mask (their mean column, the bottom row)."""
    rows = np.nonzero(mask.any(axis=1))[0]
    bottom = int(rows.max())
    cols = np.nonzero(mask[bottom])[0]
    return float(cols.mean()) + 0.5, float(bottom) + 1.0


def distance_to(ground: Ground, box: BoxXYXY, mask: np.ndarray, name: str) -> float:
    """Straight-line metres from the camera to the centre of the object in ``mask``."""
    u, v = ground_contact(mask)
    x, z = ground.to_ground(u, v)
    per_px = ground.metres_per_px(v)
    width = (box[2] - box[0]) * per_px
    tall = (box[3] - box[1]) * per_px * 0.8
    # The lowest pixel is the nearest point of the footprint; its centre lies further back.
    back = 0.1 * width if "ball" in name.lower() else 0.35 * width
    z += back
    return math.sqrt(x * x + z * z + (ground.height - tall / 2) ** 2)


# -- answers ------------------------------------------------------------------------------------


def _solve(images: Sequence[np.ndarray], prompt: QuestionPrompt, kind: str, height, names):
    """Measure the scene in ``images[0]`` and answer."""
    image = images[0]
    rows, cols = image.shape[:2]
    horizon = find_horizon(image)
    camera_height = height if height else 1.4
    focal = find_focal(image, horizon, camera_height)
    ground = Ground(horizon, focal, cols / 2, rows / 2, camera_height)
    ops: list[Box | Line] = []
    distances: dict[str, float] = {}
    taken: list[BoxXYXY] = []
    for name in sorted(dict.fromkeys(names), key=len, reverse=True):
        label, box, mask = locate(image, name, horizon, taken)
        if label is not None:
            taken.append(label)
        if box is None or mask is None:
            continue
        ops.append(Box(1, vision.clip_box(box, cols, rows), vision.safe_label(name)))
        u, v = ground_contact(mask)
        start, end = vision.clip_point((cols / 2, rows - 1), cols, rows), (u, v - 0.5)
        end = vision.clip_point(end, cols, rows)
        if start != end:
            ops.append(Line(1, start, end, vision.safe_label(f"to {name}")))
        distances[name] = distance_to(ground, box, mask, name)
    if kind == "numeric":
        name = names[0]
        answer = f"{distances[name]:.2f}" if name in distances else GUESS_METRES
    else:
        known = [k for k, o in enumerate(names) if o in distances]
        answer = LETTERS[min(known, key=lambda k: distances[names[k]])] if known else LETTERS[0]
    return Solution(vision.unique_operations(ops), answer)


def _guess(prompt: QuestionPrompt) -> Solution:
    """The answer without pixels: the first option, or a typical distance."""
    return Solution((), LETTERS[0] if prompt.options else GUESS_METRES)


solve = guarded_solve(parse, _solve, _guess)
