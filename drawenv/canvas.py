"""Drawing annotation layers onto an image (docs/environment.md, Drawing semantics).

:func:`render` is pure: it takes the root original pixels and the checked, pixel-coordinate
layers of an image and returns a new array, so a replaced layer never lingers. Shapes are drawn with
OpenCV straight into the numpy array; label text is drawn once per (label, size) with Pillow's
built-in scalable font onto a small tag, cached, and pasted into the array
(``benchmarks/bench_step.py`` measures it against OpenCV alone and against Pillow alone).
"""

from __future__ import annotations

import colorsys
import functools
import math
import zlib
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from drawenv.actions import Box, Line
from drawenv.errors import invalid_argument


def _hsv_colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


# 12 hues in three tones (vivid, deep, light): saturated enough to stand out on photos, and no
# greys, so they never blend with the black and white endpoint dots.
_TONES = ((0.85, 1.0), (0.9, 0.6), (0.45, 1.0))
PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    _hsv_colour(hue / 12, saturation, value) for saturation, value in _TONES for hue in range(12)
)
LINE_START_COLOUR = (255, 255, 255)
LINE_END_COLOUR = (0, 0, 0)

SHAPE_BACKEND = "opencv"
"""The library that draws shapes; measured faster than Pillow by ``benchmarks/bench_step.py``."""

# Bits of sub-pixel precision handed to OpenCV, so float coordinates are not truncated.
_SHIFT = 4


@functools.lru_cache(maxsize=4096)
def label_colour(label: str) -> tuple[int, int, int]:
    """The palette colour of ``label``: a fixed function of its text, the same in every process."""
    # surrogatepass: a label parsed from JSON may hold a lone surrogate, which utf-8 refuses.
    digest = zlib.crc32(label.encode("utf-8", "surrogatepass"))
    return PALETTE[digest % len(PALETTE)]


def stroke_width(width: int, height: int) -> int:
    """Outline and line width in pixels for a ``width`` x ``height`` image."""
    return max(2, round(min(width, height) / 112))


def font_size(width: int, height: int) -> int:
    """Label font size in pixels for a ``width`` x ``height`` image."""
    return max(10, round(min(width, height) / 28))


def render(original: np.ndarray, layers: Sequence[Box | Line]) -> np.ndarray:
    """Return a new HxWx3 uint8 image: ``original`` with every layer drawn on it, in order.

    ``layers`` are operations already checked by :func:`drawenv.geometry.check_operation` (pixel
    coordinates of this image). Labels go on top of all shapes so no outline hides a label.
    ``original`` is never modified.
    """
    if not (
        isinstance(original, np.ndarray)
        and original.dtype == np.uint8
        and original.ndim == 3
        and original.shape[2] == 3
    ):
        shown = getattr(original, "shape", type(original).__name__)
        raise invalid_argument("original", shown, "a uint8 array of shape HxWx3")
    return render_layers(original, (), layers, layers)[0]


LabelBoxes = tuple[tuple[int, int, int, int], ...]
"""Where an image's label tags lie, one ``(x1, y1, x2, y2)`` (exclusive ends) per layer."""


def render_layers(
    base: np.ndarray,
    labels: LabelBoxes,
    shapes: Sequence[Box | Line],
    layers: Sequence[Box | Line],
) -> tuple[np.ndarray, LabelBoxes]:
    """Draw ``shapes`` on a copy of ``base``, then the labels of ``layers``; returns the image
    and where its labels lie.

    With ``base`` an original and ``labels`` empty, ``layers`` are all drawn (``shapes`` equal
    to ``layers``: this is :func:`render`). With ``base`` a rendered image, ``labels`` where its
    labels lie and ``layers`` its layers followed by ``shapes`` (none replaced), it gives the
    pixels of rendering every layer from the original without drawing the earlier ones again:
    labels stay on top of all shapes, so only the earlier tags that a new shape touches are
    pasted again (with the later tags that overlap them, in order), then the new tags.
    """
    image = np.array(base, order="C", copy=True)
    height, width = image.shape[:2]
    stroke, size = stroke_width(width, height), font_size(width, height)
    for op in shapes:
        _draw_shape(image, op, stroke)
    boxes = list(labels)
    boxes += [_label_box(op, width, height, stroke, size) for op in layers[len(labels) :]]
    again = [False] * len(labels)
    touched = [_shape_box(op, width, height, stroke) for op in shapes] if labels else []
    for number, box in enumerate(labels):
        if again[number] or any(_overlap(box, other) for other in touched):
            again[number] = True
            for later in range(number + 1, len(labels)):
                again[later] = again[later] or _overlap(box, labels[later])
    for number, op in enumerate(layers):
        if number >= len(labels) or again[number]:
            x1, y1, x2, y2 = boxes[number]
            image[y1:y2, x1:x2] = _tag(op.label, size)[: y2 - y1, : x2 - x1]
    return image, tuple(boxes)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _shape_box(op: Box | Line, width: int, height: int, stroke: int) -> tuple[int, int, int, int]:
    """A box (exclusive ends) holding every pixel that drawing ``op``'s shape can change."""
    if op.kind == "box":
        left, top, right, bottom = box_pixels(op.bbox, width, height)
        return left, top, right + 1, bottom + 1
    reach = dot_radius(stroke) + stroke + 2  # the dots' rims and the line's width, rounded up
    xs, ys = (op.start[0], op.end[0]), (op.start[1], op.end[1])
    return (
        math.floor(min(xs)) - reach,
        math.floor(min(ys)) - reach,
        math.ceil(max(xs)) + reach,
        math.ceil(max(ys)) + reach,
    )


def _draw_shape(image: np.ndarray, op: Box | Line, stroke: int) -> None:
    height, width = image.shape[:2]
    colour = label_colour(op.label)
    if op.kind == "box":
        left, top, right, bottom = box_pixels(op.bbox, width, height)
        # The outline grows inwards, so a box clipped at the image edge keeps its full stroke.
        inner_right = min(left + stroke - 1, right)
        inner_bottom = min(top + stroke - 1, bottom)
        inner_left = max(right - stroke + 1, left)
        inner_top = max(bottom - stroke + 1, top)
        for corner_a, corner_b in (
            ((left, top), (right, inner_bottom)),
            ((left, inner_top), (right, bottom)),
            ((left, top), (inner_right, bottom)),
            ((inner_left, top), (right, bottom)),
        ):
            # Filled OpenCV rectangles: several times faster than numpy slice assignment of a
            # colour triple.
            cv2.rectangle(image, corner_a, corner_b, colour, thickness=cv2.FILLED)
        return
    start, end = _subpixel(op.start), _subpixel(op.end)
    cv2.line(image, start, end, colour, stroke, cv2.LINE_8, _SHIFT)
    radius = dot_radius(stroke)
    for centre, fill, rim in (
        (start, LINE_START_COLOUR, LINE_END_COLOUR),
        (end, LINE_END_COLOUR, LINE_START_COLOUR),
    ):
        # A thin rim of the other dot colour keeps each dot visible on any background.
        cv2.circle(image, centre, (radius + 1) << _SHIFT, rim, cv2.FILLED, cv2.LINE_8, _SHIFT)
        cv2.circle(image, centre, radius << _SHIFT, fill, cv2.FILLED, cv2.LINE_8, _SHIFT)


def box_pixels(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Inclusive pixel bounds ``(left, top, right, bottom)`` covered by a pixel-coordinate box."""
    x1, y1, x2, y2 = bbox
    left = min(max(math.floor(x1), 0), width - 1)
    top = min(max(math.floor(y1), 0), height - 1)
    right = min(max(math.ceil(x2) - 1, left), width - 1)
    bottom = min(max(math.ceil(y2) - 1, top), height - 1)
    return left, top, right, bottom


def dot_radius(stroke: int) -> int:
    """Radius of a line's endpoint dots for a given stroke width."""
    return round(1.75 * stroke)


def _subpixel(point: Sequence[float]) -> tuple[int, int]:
    # Pixel (i, j) covers [i, i + 1) x [j, j + 1): its centre is at continuous (i + 0.5, j + 0.5).
    x, y = point
    return round((x - 0.5) * (1 << _SHIFT)), round((y - 0.5) * (1 << _SHIFT))


def _label_box(
    op: Box | Line, width: int, height: int, stroke: int, size: int
) -> tuple[int, int, int, int]:
    """Where ``op``'s label tag goes on a ``width`` x ``height`` image: ``(x1, y1, x2, y2)``,
    exclusive ends, clipped to the image."""
    tag_height, tag_width = _tag(op.label, size).shape[:2]
    if op.kind == "box":
        left, top, _, _ = box_pixels(op.bbox, width, height)
        x = left
        # Above the box's top-left corner; inside the box when there is no room above.
        y = top - tag_height if top >= tag_height else top
    else:
        middle_x = (op.start[0] + op.end[0]) / 2
        middle_y = (op.start[1] + op.end[1]) / 2
        x = round(middle_x - tag_width / 2)
        y = round(middle_y) - stroke - tag_height
        if y < 0:
            y = round(middle_y) + stroke
    x = min(max(x, 0), max(width - tag_width, 0))
    y = min(max(y, 0), max(height - tag_height, 0))
    return x, y, min(x + tag_width, width), min(y + tag_height, height)


@functools.lru_cache(maxsize=1024)
def _tag(label: str, size: int) -> np.ndarray:
    """The label on a filled tag of its colour, as a read-only HxWx3 array (cached: every step
    re-renders all layers of an image, with the same labels)."""
    colour = label_colour(label)
    mask = text_mask(_printable(label), size)
    height, width = mask.shape
    pad = max(2, size // 5)
    coverage = np.zeros((max(height, 1) + 2 * pad, max(width, 1) + 2 * pad), np.uint8)
    coverage[pad : pad + height, pad : pad + width] = mask
    # Coverage 0 is the tag colour itself; OpenCV's table look-up, one channel at a time, is the
    # fastest gather here.
    tag = cv2.merge([cv2.LUT(coverage, table) for table in _ink_table(colour)])
    tag.flags.writeable = False
    return tag


@functools.lru_cache(maxsize=64)
def _ink_table(colour: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """The red, green and blue tables (256 entries each) of text coverage 0..255 on a ``colour``
    tag: black ink on light tags, white on dark ones, blended as Pillow blends,
    div255(tag * (255 - alpha) + ink * alpha)."""
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = 0 if luma > 140 else 255
    alpha = np.arange(256, dtype=np.uint32)[:, None]
    mixed = np.asarray(colour, np.uint32) * (255 - alpha) + ink * alpha + 128
    table = (((mixed >> 8) + mixed) >> 8).astype(np.uint8)
    return tuple(np.ascontiguousarray(table[:, channel]) for channel in range(3))


def text_mask(text: str, size: int) -> np.ndarray:
    """The coverage of ``text`` in :func:`font` ``(size)``, cropped to its ink box (``getbbox``):
    the same uint8 pixels as Pillow's own rendering of the whole string, composed from cached
    glyphs, so a label never drawn before costs a few array operations instead of a FreeType
    layout and rasterisation of every character."""
    if not text or text[0].isspace() or text[-1].isspace():  # spaces widen Pillow's box
        return _whole_mask(text, size)
    placed = []
    pen = 0
    for number, char in enumerate(text):
        if number:
            pen += _advance(text[number - 1], char, size)
        glyph, dx, dy = _glyph(char, size)
        if glyph.size:
            placed.append((pen + dx, dy, glyph))
    if not placed:
        return _whole_mask(text, size)
    left, top = min(p[0] for p in placed), min(p[1] for p in placed)
    right = max(x + g.shape[1] for x, _, g in placed)
    bottom = max(y + g.shape[0] for _, y, g in placed)
    mask = np.zeros((bottom - top, right - left), np.uint8)
    inked = left  # columns left of this hold no ink yet
    for x, y, glyph in placed:
        region = mask[y - top : y - top + glyph.shape[0], x - left : x - left + glyph.shape[1]]
        if x < inked and region.any():  # overlap: Pillow's "screen" sum, a + b - div255(a * b)
            below, above = region.astype(np.uint32), glyph.astype(np.uint32)
            product = below * above + 128
            region[:] = below + above - (((product >> 8) + product) >> 8)
        else:
            region[:] = glyph
        inked = max(inked, x + glyph.shape[1])
    return mask


def _whole_mask(text: str, size: int) -> np.ndarray:
    face = font(size)
    left, top, right, bottom = face.getbbox(text)
    canvas = Image.new("L", (max(right - left, 0), max(bottom - top, 0)), 0)
    ImageDraw.Draw(canvas).text((-left, -top), text, font=face, fill=255)
    return np.asarray(canvas).copy()


@functools.lru_cache(maxsize=4096)
def _glyph(char: str, size: int) -> tuple[np.ndarray, int, int]:
    """One character's coverage mask and its offset from the pen position."""
    mask, (dx, dy) = font(size).getmask2(char, mode="L")
    width, height = mask.size
    array = np.array(mask, dtype=np.uint8).reshape(height, width)
    array.flags.writeable = False
    return array, dx, dy


@functools.lru_cache(maxsize=65536)
def _advance(previous: str, char: str, size: int) -> int:
    """How far the pen moves from ``previous`` to ``char``: its advance plus their kerning."""
    face = font(size)
    return round(face.getlength(previous + char) - face.getlength(char))


@functools.lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's built-in scalable font at ``size`` px (no network, no system fonts)."""
    # Module-level cache rather than an attribute: fonts do not pickle, and envs must. The basic
    # layout engine gives the same pixels whether or not libraqm is installed.
    return ImageFont.load_default(size=size).font_variant(layout_engine=ImageFont.Layout.BASIC)


def _printable(label: str) -> str:
    """``label`` made safe to draw: whitespace becomes a space, other invisible or control
    characters (NUL, format marks, lone surrogates, unassigned code points) become ``?``."""
    return "".join(" " if char.isspace() else char if char.isprintable() else "?" for char in label)
