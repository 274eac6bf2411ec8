"""Small pixel helpers shared by the heuristic solvers.

Everything here reads only pixels: finding a text label by template matching against the env's
own font (:func:`find_label`), colour masks (:func:`saturation`, :func:`flat_mask`), connected
components with their boxes (:func:`components`) and a few box helpers. Images are ``HxWx3``
uint8 RGB arrays; boxes are ``(x1, y1, x2, y2)`` floats in pixel coordinates, ``x2``/``y2``
exclusive, so a box always has positive area.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

from drawenv.actions import Box, Line
from drawenv.canvas import font

BoxXYXY = tuple[float, float, float, float]
MAX_OPERATIONS = 32
SUPERSAMPLE = 2  # labels are drawn this many times larger and downsampled


@dataclass(frozen=True)
class Solution:
    """What a solver found and its answer.

    ``operations`` are the boxes and lines to draw (pixel coordinates of the shown images, 1-based
    image index, object names as labels, at most :data:`MAX_OPERATIONS`); ``answer`` is the answer
    text: an option letter for multiple choice, a number for numeric questions.
    """

    operations: tuple[Box | Line, ...]
    answer: str


@dataclass(frozen=True)
class Component:
    """One connected component of a mask: its pixel count, box and centroid."""

    area: int
    box: BoxXYXY
    centre: tuple[float, float]
    label: int

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]


# -- text labels --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def label_template(
    text: str, size: int, phase: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """``text`` as the env draws labels: (ink coverage in 0..1, mask of ink plus halo), float32.

    The text is rendered :data:`SUPERSAMPLE` times larger with Pillow's built-in font, shifted by
    ``phase`` supersampled pixels, and downsampled, as the env's painter does; the halo is a
    stroke of ``size / 8`` px.
    """
    face = font(round(size * SUPERSAMPLE))
    stroke = max(1, round(size * SUPERSAMPLE / 8))
    left, top, right, bottom = face.getbbox(text, stroke_width=stroke)
    pad = SUPERSAMPLE * 2
    width = right - left + 2 * pad
    height = bottom - top + 2 * pad
    width += -width % SUPERSAMPLE
    height += -height % SUPERSAMPLE
    ink, rim = Image.new("L", (width, height)), Image.new("L", (width, height))
    origin = (pad - left + phase[0], pad - top + phase[1])
    ImageDraw.Draw(ink).text(origin, text, font=face, fill=255)
    ImageDraw.Draw(rim).text(
        origin, text, font=face, fill=255, stroke_width=stroke, stroke_fill=255
    )
    small = (width // SUPERSAMPLE, height // SUPERSAMPLE)
    ink_small = np.asarray(ink.resize(small, Image.Resampling.BOX), np.float32) / 255
    rim_small = np.asarray(rim.resize(small, Image.Resampling.BOX), np.float32) / 255
    mask = rim_small > 0.05
    if not mask.any():  # nothing visible to match (e.g. only invisible characters)
        return np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32)
    ys, xs = np.nonzero(mask)
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return ink_small[crop].copy(), mask[crop].astype(np.float32)


def gray(image: np.ndarray) -> np.ndarray:
    """Luma of an RGB image as float32."""
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _peaks(score: np.ndarray, count: int, th: int, tw: int) -> list[tuple[float, int, int]]:
    """The ``count`` best ``(score, x, y)`` of a score map, at least half a template apart."""
    score = score.copy()
    found = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[y, x] <= -1:
            break
        found.append((float(score[y, x]), int(x), int(y)))
        score[max(0, y - th // 2) : y + th // 2 + 1, max(0, x - tw // 2) : x + tw // 2 + 1] = -1
    return found


def _oriented(score: np.ndarray, polarity: str) -> np.ndarray:
    score = np.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0)
    return -score if polarity == "dark" else np.abs(score) if polarity == "any" else score


def label_candidates(
    image: np.ndarray,
    text: str,
    *,
    sizes: Sequence[int] = (13,),
    polarity: str = "any",
    region: BoxXYXY | None = None,
    top: int = 5,
) -> list[tuple[float, BoxXYXY]]:
    """The best ``top`` places of ``text`` in ``image``, as ``(score, box)``, best first.

    The score is the normalised correlation (-1..1) of the image's luma with the ink of the text,
    counted only over the glyphs and their halo, so whatever lies around a label does not matter.
    ``polarity`` is ``"dark"`` (dark text on a light halo), ``"light"`` or ``"any"``. ``region``
    limits the search to a box. A fast unmasked pass shortlists places; each is then scored with
    the mask at every sub-pixel phase. Overlapping places are merged, keeping the best.
    """
    if polarity not in ("dark", "light", "any"):
        raise ValueError(f"Expected polarity 'dark', 'light' or 'any', got {polarity!r}.")
    luma = gray(image)
    height, width = luma.shape
    ox, oy = 0, 0
    if region is not None:
        ox, oy = max(0, int(region[0])), max(0, int(region[1]))
        luma = luma[oy : min(height, math.ceil(region[3])), ox : min(width, math.ceil(region[2]))]
    found: list[tuple[float, BoxXYXY]] = []
    for size in sizes if text.strip() else ():
        ink, mask = label_template(text, size)
        th, tw = ink.shape
        if luma.shape[0] < th + 2 or luma.shape[1] < tw + 2:
            continue
        # Ink +1, halo -1, elsewhere 0: the halo's contrast counts even without a mask.
        contrast = 2 * ink - mask
        coarse = _oriented(cv2.matchTemplate(luma, contrast, cv2.TM_CCOEFF_NORMED), polarity)
        for _, x, y in _peaks(coarse, top + 5, th, tw):
            window = luma[max(0, y - 3) : y + th + 4, max(0, x - 3) : x + tw + 4]
            for phase in ((px, py) for px in range(SUPERSAMPLE) for py in range(SUPERSAMPLE)):
                ink, mask = label_template(text, size, phase)
                if window.shape[0] < ink.shape[0] or window.shape[1] < ink.shape[1]:
                    continue
                fine = cv2.matchTemplate(window, ink, cv2.TM_CCOEFF_NORMED, mask=mask)
                fine = _oriented(fine, polarity)
                dy, dx = np.unravel_index(int(np.argmax(fine)), fine.shape)
                left, upper = ox + max(0, x - 3) + int(dx), oy + max(0, y - 3) + int(dy)
                box = (
                    float(left),
                    float(upper),
                    float(left + ink.shape[1]),
                    float(upper + ink.shape[0]),
                )
                found.append((float(fine[dy, dx]), box))
    found.sort(key=lambda item: -item[0])
    kept: list[tuple[float, BoxXYXY]] = []
    for score_box in found:
        if all(iou(score_box[1], other[1]) < 0.3 for other in kept):
            kept.append(score_box)
    return kept[:top]


def find_label(
    image: np.ndarray,
    text: str,
    *,
    sizes: Sequence[int] = (13,),
    polarity: str = "any",
    region: BoxXYXY | None = None,
    threshold: float = 0.45,
) -> BoxXYXY | None:
    """The box of the text label ``text`` (glyphs and halo) in ``image``, or None if not found.

    Template matching of the text rendered with the env's font at each of ``sizes`` px; see
    :func:`label_candidates` for ``polarity`` and ``region``. None when the best score is below
    ``threshold``.
    """
    found = label_candidates(image, text, sizes=sizes, polarity=polarity, region=region, top=1)
    if not found or found[0][0] < threshold:
        return None
    return found[0][1]


# -- masks and components -----------------------------------------------------------------------


def saturation(image: np.ndarray) -> np.ndarray:
    """HSV saturation in 0..1 (max - min over max), float32."""
    rgb = image.astype(np.float32)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    return (high - low) / np.maximum(high, 1.0)


def value(image: np.ndarray) -> np.ndarray:
    """HSV value (the brightest channel) in 0..255, float32."""
    return image.max(axis=2).astype(np.float32)


def hue(image: np.ndarray) -> np.ndarray:
    """HSV hue in degrees 0..360, float32."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV_FULL)
    return hsv[..., 0].astype(np.float32) * (360 / 256)


def flat_mask(image: np.ndarray, *, tolerance: float = 2.5, window: int = 3) -> np.ndarray:
    """Where every channel's local standard deviation over ``window`` px is below ``tolerance``:
    flat painted fills, as opposed to grainy textures."""
    rgb = image.astype(np.float32)
    mean = cv2.blur(rgb, (window, window))
    square = cv2.blur(rgb * rgb, (window, window))
    std = np.sqrt(np.maximum(square - mean * mean, 0)).max(axis=2)
    return std < tolerance


def components(mask: np.ndarray, *, min_area: int = 1) -> list[Component]:
    """8-connected components of a boolean mask with at least ``min_area`` pixels."""
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    found = []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area >= min_area:
            centre = (float(centroids[k][0]) + 0.5, float(centroids[k][1]) + 0.5)
            found.append(
                Component(area, (float(x), float(y), float(x + w), float(y + h)), centre, k)
            )
    return found


def component_labels(mask: np.ndarray) -> np.ndarray:
    """The label image of :func:`components` (same numbering), int32."""
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[1]


def open_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological opening with a ``size`` x ``size`` square: drops strokes thinner than it."""
    kernel = np.ones((size, size), np.uint8)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)


def close_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological closing with a ``size`` x ``size`` square: fills gaps narrower than it."""
    kernel = np.ones((size, size), np.uint8)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)


# -- boxes --------------------------------------------------------------------------------------


def centre(box: BoxXYXY) -> tuple[float, float]:
    """The centre of a box."""
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def iou(a: BoxXYXY, b: BoxXYXY) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_gap(a: BoxXYXY, b: BoxXYXY) -> float:
    """The shortest distance between two boxes (0 when they touch or overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


def clip_box(box: BoxXYXY, width: int, height: int, *, min_size: float = 2.0) -> BoxXYXY:
    """``box`` clipped to a ``width`` x ``height`` image, at least ``min_size`` px on each side."""
    x1 = min(max(box[0], 0.0), width - min_size)
    y1 = min(max(box[1], 0.0), height - min_size)
    x2 = max(min(box[2], float(width)), x1 + min_size)
    y2 = max(min(box[3], float(height)), y1 + min_size)
    return (round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))


def clip_point(point: tuple[float, float], width: int, height: int) -> tuple[float, float]:
    """``point`` moved inside a ``width`` x ``height`` image."""
    return (
        round(min(max(point[0], 0.0), width - 1.0), 1),
        round(min(max(point[1], 0.0), height - 1.0), 1),
    )


def safe_label(text: str) -> str:
    """``text`` as a drawing label: stripped, 1..64 characters."""
    text = " ".join(text.split())[:64]
    return text or "object"


def unique_operations(operations: Sequence[Box | Line]) -> tuple[Box | Line, ...]:
    """``operations`` with repeated (kind, label) pairs and degenerate lines dropped, at most
    :data:`MAX_OPERATIONS`: what one drawing turn accepts."""
    seen, kept = set(), []
    for op in operations:
        key = (op.kind, op.label)
        if key in seen or (op.kind == "line" and op.start == op.end):
            continue
        seen.add(key)
        kept.append(op)
    return tuple(kept[:MAX_OPERATIONS])
