"""Geometry of images and drawing operations: pure functions, no drawing.

- :func:`smart_resize` / :func:`resize_image`: the size rule of Qwen2.5-VL's image processor, so the
  pixel coordinates a model sees are the ones the env draws at (docs/environment.md,
  Constructor arguments).
- :func:`check_operation`: turns a parsed operation into pixel coordinates of its target image,
  reorders, clips and validates it (docs/environment.md, Drawing semantics). It never raises on
  model output.
- :func:`box_iou`, :func:`line_hausdorff`, :func:`same_geometry`: the repeat test
  (docs/environment.md, ``repeat_tolerance`` and Termination and truncation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Integral, Real

import numpy as np
from PIL import Image

from drawenv.actions import Box, Line
from drawenv.errors import check_choice, check_number, invalid_argument

MAX_LABEL_CHARS = 64
MAX_ASPECT_RATIO = 200


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = 28,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 256 * 28 * 28,
) -> tuple[int, int]:
    """Return ``(height, width)`` as Qwen2.5-VL's processor resizes an image of this size.

    Both sides become multiples of ``factor`` (nearest multiple, at least ``factor``); if the area
    leaves ``[min_pixels, max_pixels]`` the image is scaled, aspect kept, rounding down to fit under
    the maximum or up to reach the minimum.
    """
    return _smart_resize(height, width, factor, min_pixels, max_pixels, name="height, width")


def _smart_resize(
    height: int, width: int, factor: int, min_pixels: int, max_pixels: int, *, name: str
) -> tuple[int, int]:
    check_number("factor", factor, low=1, integer=True)
    check_number("min_pixels", min_pixels, low=1, integer=True)
    check_number("max_pixels", max_pixels, low=min_pixels, integer=True)
    sizes = (height, width)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise invalid_argument(name, sizes, "positive integer sizes")
    if max(sizes) / min(sizes) > MAX_ASPECT_RATIO:
        raise invalid_argument(
            name,
            sizes,
            f"an aspect ratio of at most {MAX_ASPECT_RATIO}",
            "Crop or pad the image before handing it to the env.",
        )
    # Python's round (half to even) is what the reference processor uses.
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def resize_image(
    image: np.ndarray,
    *,
    factor: int = 28,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 256 * 28 * 28,
) -> np.ndarray:
    """Return a new HxWx3 uint8 copy of ``image`` at its :func:`smart_resize` size (bicubic).

    Accepts HxW (gray), HxWx3 (RGB) and HxWx4 (RGBA, composited on white) uint8 arrays. The input
    is never modified, and the result is a fresh array even when the size does not change.
    """
    rgb = _to_rgb(image)
    height, width = rgb.shape[:2]
    size = _smart_resize(height, width, factor, min_pixels, max_pixels, name="images")
    if size == (height, width):
        return np.array(rgb, order="C", copy=True)
    resized = Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BICUBIC)
    return np.array(resized, order="C")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    expected = "a uint8 array of shape HxW, HxWx3 or HxWx4"
    if not isinstance(image, np.ndarray):
        raise invalid_argument("images", type(image).__name__, expected)
    shape = image.shape
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and shape[2] in (3, 4))):
        raise invalid_argument("images", f"{image.dtype} array of shape {shape}", expected)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if shape[2] == 3:
        return image
    # Composite on white so transparent regions look like an empty page, not black.
    alpha = image[:, :, 3:].astype(np.uint16)
    mixed = image[:, :, :3] * alpha + 255 * (255 - alpha)
    return ((mixed + 127) // 255).astype(np.uint8)


@dataclass(frozen=True)
class Checked:
    """The outcome of :func:`check_operation`.

    Attributes:
        op: the operation in pixel coordinates of its target image, reordered and clipped;
            ``None`` when it cannot be executed.
        error: why it cannot be executed, or ``None``.
        warning: a note on an executable operation (it was clipped), or ``None``.
    """

    op: Box | Line | None
    error: str | None = None
    warning: str | None = None


def check_operation(op: Box | Line, *, width: int, height: int, coords: str) -> Checked:
    """Validate ``op`` against a ``width`` x ``height`` image and convert it to pixel coordinates.

    ``coords`` is ``"pixel"`` (absolute pixels) or ``"norm1000"`` (0..1000 of width and height).
    The image is the continuous region ``[0, width] x [0, height]``. Never raises on any operation
    a parser can produce; the image index is not checked here.
    """
    if coords != "pixel" and coords != "norm1000":  # the hot path skips building the choices
        check_choice("coords", coords, ("pixel", "norm1000"))
    label_error = _label_error(op.label)
    if label_error:
        return Checked(None, label_error)
    if op.kind == "box":
        return _check_box(op, width, height, coords)
    return _check_line(op, width, height, coords)


def _label_error(label: object) -> str | None:
    if not isinstance(label, str):
        return f"label must be a string, got {type(label).__name__}"
    if not label.strip():
        return "label is empty"
    if len(label) > MAX_LABEL_CHARS:
        return f"label longer than {MAX_LABEL_CHARS} characters ({len(label)})"
    return None


def _to_pixels(
    values: Sequence[object], arity: int, what: str, scales: Sequence[int], coords: str
) -> list[Fraction] | str:
    """Exact pixel coordinates (or an error message): fractions cannot overflow, so 1e308 clips."""
    if not isinstance(values, Sequence) or len(values) != arity:
        return f"{what} needs {arity} coordinates, got {_describe(values)}"
    pixels = []
    for value, scale in zip(values, scales, strict=True):
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"coordinates must be numbers, got {_describe(value)}"
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            return f"coordinates must be finite numbers, got {_describe(value)}"
        exact = Fraction(int(value)) if isinstance(value, Integral) else Fraction(float(value))
        pixels.append(exact * scale / 1000 if coords == "norm1000" else exact)
    return pixels


def _describe(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _inside(values: Sequence[object], scales: Sequence[int]) -> bool:
    """Plain int or float pixel coordinates within ``[0, scale]`` each: nothing to clip, and a
    float holds each value exactly, so the exact (slower) path would give the same result."""
    if len(values) != len(scales):
        return False
    for value, scale in zip(values, scales, strict=True):
        if type(value) not in (int, float) or not 0 <= value <= scale:
            return False
    return True


def _check_box(op: Box, width: int, height: int, coords: str) -> Checked:
    scales = (width, height, width, height)
    if coords == "pixel" and _inside(op.bbox, scales):
        pixels = [float(value) for value in op.bbox]
    else:
        pixels = _to_pixels(op.bbox, 4, "box", scales, coords)
    if isinstance(pixels, str):
        return Checked(None, pixels)
    x1, x2 = sorted(pixels[0::2])
    y1, y2 = sorted(pixels[1::2])
    if x1 == x2 or y1 == y2:
        return Checked(None, "zero-area box")
    if min(x2, width) <= max(x1, 0) or min(y2, height) <= max(y1, 0):
        return Checked(None, f"box lies entirely outside the {width}x{height} image")
    clipped = (max(x1, 0), max(y1, 0), min(x2, width), min(y2, height))
    bbox = tuple(float(v) for v in clipped)
    if bbox[0] == bbox[2] or bbox[1] == bbox[3]:
        return Checked(None, "zero-area box")  # narrower than float resolution
    warning = None
    if clipped != (x1, y1, x2, y2):
        warning = f"box clipped to the image ({width}x{height})"
    return Checked(Box(op.index, bbox, op.label), warning=warning)


def _check_line(op: Line, width: int, height: int, coords: str) -> Checked:
    scales = (width, height)
    if coords == "pixel" and _inside(op.start, scales) and _inside(op.end, scales):
        start, end = tuple(map(float, op.start)), tuple(map(float, op.end))
        if start == end:
            return Checked(None, "zero-length line")
        return Checked(Line(op.index, start, end, op.label))
    start = _to_pixels(op.start, 2, "line start", scales, coords)
    end = _to_pixels(op.end, 2, "line end", scales, coords)
    for pixels in (start, end):
        if isinstance(pixels, str):
            return Checked(None, pixels)
    if start == end:
        return Checked(None, "zero-length line")
    clipped = _clip_segment(start, end, width, height)
    if clipped is None:
        return Checked(None, f"line lies entirely outside the {width}x{height} image")
    new_start, new_end = (tuple(float(v) for v in point) for point in clipped)
    if new_start == new_end:
        return Checked(None, "zero-length line")  # shorter than float resolution
    warning = None
    if clipped != (start, end):
        warning = f"line clipped to the image ({width}x{height})"
    return Checked(Line(op.index, new_start, new_end, op.label), warning=warning)


def _clip_segment(
    start: list[Fraction], end: list[Fraction], width: int, height: int
) -> tuple[list[Fraction], list[Fraction]] | None:
    """Liang-Barsky clipping to ``[0, width] x [0, height]``; ``None`` unless a positive length is
    left (a segment along an edge counts as inside, the region is closed)."""
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    low, high = Fraction(0), Fraction(1)
    # Each pair is (p, q) of the constraint p * t <= q for one side of the rectangle.
    for p, q in ((-dx, x0), (dx, width - x0), (-dy, y0), (dy, height - y0)):
        if p == 0:
            if q < 0:
                return None
        elif p < 0:
            low = max(low, q / p)
        else:
            high = min(high, q / p)
    if low >= high:
        return None
    clipped_start = start if low == 0 else [x0 + low * dx, y0 + low * dy]
    clipped_end = end if high == 1 else [x0 + high * dx, y0 + high * dy]
    return clipped_start, clipped_end


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0.0 when both are empty).

    Closed form: it agrees with the polygon overlay (``shapely``) to within 1e-15, far inside
    the slack of :func:`same_geometry`, at a few percent of its cost."""
    ax1, ay1, ax2, ay2 = _ordered(a)
    bx1, by1, bx2, by2 = _ordered(b)
    across = min(ax2, bx2) - max(ax1, bx1)
    down = min(ay2, by2) - max(ay1, by1)
    inter = across * down if across > 0 and down > 0 else 0.0
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if union <= 0:
        return 0.0
    return inter / union


def _ordered(box: Sequence[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def line_hausdorff(a: Line, b: Line) -> float:
    """Hausdorff distance between two line segments; the direction of either does not matter.

    The distance to a segment is convex along the other segment, so the largest one is at an
    endpoint: the maximum of the four endpoint-to-segment distances (it agrees with
    ``shapely``'s to a relative 1e-13)."""
    return max(
        _point_segment(a.start, b.start, b.end),
        _point_segment(a.end, b.start, b.end),
        _point_segment(b.start, a.start, a.end),
        _point_segment(b.end, a.start, a.end),
    )


def _point_segment(point: Sequence[float], start: Sequence[float], end: Sequence[float]) -> float:
    (px, py), (ax, ay), (bx, by) = point, start, end
    dx, dy = bx - ax, by - ay
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else min(1.0, max(0.0, ((px - ax) * dx + (py - ay) * dy) / length))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


# A relative slack so that geometry exactly at the tolerance is not flipped by float rounding.
_TOLERANCE_SLACK = 1e-9


def same_geometry(a: Box | Line, b: Box | Line, *, tol: float, diagonal: float) -> bool:
    """Whether ``a`` and ``b`` (pixel coordinates) have the same geometry within ``tol``.

    Boxes: IoU >= 1 - tol. Lines: Hausdorff distance <= tol * diagonal. Different kinds never
    match; labels are not compared.
    """
    if a.kind != b.kind:
        return False
    if a.kind == "box":
        return box_iou(a.bbox, b.bbox) >= 1 - tol - _TOLERANCE_SLACK
    return line_hausdorff(a, b) <= tol * diagonal * (1 + _TOLERANCE_SLACK)
