"""Geometry: smart resize, operation checking, IoU / Hausdorff and the repeat test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drawenv.actions import Box, Line
from drawenv.errors import DrawEnvError
from drawenv.geometry import (
    Checked,
    box_iou,
    check_operation,
    line_hausdorff,
    resize_image,
    same_geometry,
    smart_resize,
)

NAN, INF = float("nan"), float("inf")
W, H = 448, 336


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (448, 448, (448, 448)),  # already multiples of 28, area within bounds
        (100, 100, (112, 112)),  # 100/28 = 3.57 rounds to 4 patches
        (
            1000,
            1000,
            (448, 448),
        ),  # 1008^2 too large: beta = sqrt(1e6 / 200704) -> 16 patches
        (
            476,
            644,
            (364, 504),
        ),  # beta = 1.2359: 476/beta/28 = 13.75, 644/beta/28 = 18.6
        (10, 10, (56, 56)),  # 28^2 < 3136: beta = 5.6, 56/28 = 2 patches each side
        (30, 6000, (28, 5992)),  # aspect 200 is allowed; 6000/28 = 214.3 -> 214
    ],
)
def test_smart_resize(height, width, expected):
    assert smart_resize(height, width) == expected


@pytest.mark.parametrize(("height", "width"), [(1000, 1000), (10, 10), (37, 3001), (2000, 91)])
def test_smart_resize_gives_patch_multiples_within_bounds(height, width):
    h, w = smart_resize(height, width)
    assert h % 28 == 0 and w % 28 == 0
    assert 4 * 28 * 28 <= h * w <= 256 * 28 * 28


def test_smart_resize_custom_bounds():
    # 560x560 is 400 patches of 28; with max 100 patches it becomes 10x10 patches.
    assert smart_resize(560, 560, max_pixels=100 * 28 * 28) == (280, 280)
    assert smart_resize(64, 64, factor=32, min_pixels=16 * 32 * 32) == (128, 128)


@pytest.mark.parametrize(("height", "width"), [(1, 201), (201, 1), (0, 10), (10, -5), (2.5, 10)])
def test_smart_resize_rejects_bad_sizes(height, width):
    with pytest.raises(DrawEnvError):
        smart_resize(height, width)


def test_resize_image_converts_gray_and_rgba():
    gray = np.full((56, 56), 7, np.uint8)
    assert resize_image(gray).tolist() == np.full((56, 56, 3), 7).tolist()
    rgba = np.zeros((56, 56, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)  # transparent -> white
    rgba[0, 1] = (255, 0, 0, 255)  # opaque -> itself
    rgba[0, 2] = (0, 0, 0, 128)  # half -> (255 * 127 + 127) // 255 = 127
    out = resize_image(rgba)
    assert out.shape == (56, 56, 3)
    assert out[0, :3].tolist() == [[255, 255, 255], [255, 0, 0], [127, 127, 127]]


@pytest.mark.parametrize("shape", [(56, 56, 3), (1000, 700, 3), (10, 10, 4), (30, 40)])
def test_resize_image_returns_new_array_and_keeps_input(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    before = image.copy()
    out = resize_image(image)
    assert out.shape == (*smart_resize(*shape[:2]), 3)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.flags.writeable
    assert not np.shares_memory(out, image)
    np.testing.assert_array_equal(image, before)


def test_resize_image_same_size_is_exact_copy():
    image = np.random.default_rng(1).integers(0, 256, (56, 84, 3), dtype=np.uint8)
    out = resize_image(image)
    assert out is not image
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((56, 56, 3), np.float32),
        np.zeros((56, 56, 2), np.uint8),
        np.zeros((2, 56, 56, 3), np.uint8),
        np.zeros((0, 56, 3), np.uint8),
        [[0, 0], [0, 0]],
    ],
)
def test_resize_image_rejects_bad_arrays(image):
    with pytest.raises(DrawEnvError, match="images"):
        resize_image(image)


def box(*bbox, label="obj"):
    return Box(1, bbox, label)


def line(start, end, label="path"):
    return Line(1, start, end, label)


@pytest.mark.parametrize(
    ("op", "coords", "expected", "warning"),
    [
        (box(10, 20, 30, 40), "pixel", box(10.0, 20.0, 30.0, 40.0), None),
        (box(30, 40, 10, 20), "pixel", box(10, 20, 30, 40), None),  # corners reordered
        (box(0, 0, W, H), "pixel", box(0, 0, W, H), None),  # the whole image is inside
        (box(100, 200, 500, 1000), "norm1000", box(44.8, 67.2, 224.0, 336.0), None),
        (box(1000, 1000, 0, 0), "norm1000", box(0, 0, W, H), None),
        (box(-10, 5, 50, 400), "pixel", box(0, 5, 50, H), f"box clipped to the image ({W}x{H})"),
        (box(400, 300, 1e308, -1e308), "pixel", box(400, 0, W, 300), "box clipped"),
        (box(-1e308, 0, 1e308, 1e308), "norm1000", box(0, 0, W, H), "box clipped"),
        (line((1, 2), (3, 4)), "pixel", line((1.0, 2.0), (3.0, 4.0)), None),
        (line((500, 0), (0, 1000)), "norm1000", line((224, 0), (0, 336)), None),
        (line((-10, 10), (10, 10)), "pixel", line((0, 10), (10, 10)), "line clipped"),
        (line((-100, -100), (1000, 1000)), "pixel", line((0, 0), (H, H)), "line clipped"),
        (line((-1e308, -1e308), (1e308, 1e308)), "pixel", line((0, 0), (H, H)), "line clipped"),
        (line((-5, 0), (500, 0)), "pixel", line((0, 0), (W, 0)), "line clipped"),  # along an edge
    ],
)
def test_check_operation_converts(op, coords, expected, warning):
    checked = check_operation(op, width=W, height=H, coords=coords)
    assert checked.error is None
    assert checked.op == expected
    if warning is None:
        assert checked.warning is None
    else:
        assert checked.warning.startswith(warning)


@pytest.mark.parametrize(
    ("op", "error"),
    [
        (box(5, 5, 5, 9), "zero-area box"),
        (box(1, 7, 9, 7), "zero-area box"),
        (box(-5, -5, -5, 10), "zero-area box"),  # zero area is checked before clipping
        (line((3, 3), (3, 3)), "zero-length line"),
        (box(-10, -10, -1, -1), f"box lies entirely outside the {W}x{H} image"),
        (box(-10, 0, 0, 10), f"box lies entirely outside the {W}x{H} image"),  # touches the edge
        (box(W, 0, W + 10, H), f"box lies entirely outside the {W}x{H} image"),
        (line((-5, -1), (500, -1)), f"line lies entirely outside the {W}x{H} image"),
        (line((-10, 10), (10, -10)), f"line lies entirely outside the {W}x{H} image"),  # a corner
        (line((W, H), (W + 5, H + 5)), f"line lies entirely outside the {W}x{H} image"),
        (box(NAN, 0, 1, 1), "coordinates must be finite numbers, got nan"),
        (box(0, INF, 1, 1), "coordinates must be finite numbers, got inf"),
        (line((0, 0), (-INF, 1)), "coordinates must be finite numbers, got -inf"),
        (box(10**400, 0, 1, 1), "coordinates must be finite numbers, got an integer of 1329 bits"),
        (box(0, 0, 1, "2"), "coordinates must be numbers, got '2'"),
        (box(0, 0, 1, True), "coordinates must be numbers, got True"),
        (Box(1, (1, 2, 3), "x"), "box needs 4 coordinates, got (1, 2, 3)"),
        (Line(1, (1, 2, 3), (4, 5), "x"), "line start needs 2 coordinates, got (1, 2, 3)"),
        (box(0, 0, 1, 1, label="   "), "label is empty"),
        (box(0, 0, 1, 1, label="x" * 70), "label longer than 64 characters (70)"),
    ],
)
def test_check_operation_rejects(op, error):
    assert check_operation(op, width=W, height=H, coords="pixel") == Checked(None, error)


def test_check_operation_keeps_index_and_label():
    checked = check_operation(Box(7, (1, 2, 3, 4), "x" * 64), width=W, height=H, coords="pixel")
    assert checked.op == Box(7, (1, 2, 3, 4), "x" * 64)


def test_check_operation_rejects_unknown_coords():
    with pytest.raises(DrawEnvError, match="coords"):
        check_operation(box(0, 0, 1, 1), width=W, height=H, coords="relative")


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.integers(min_value=-2000, max_value=2000),
    st.sampled_from([0, 1e308, -1e308, 10**400, -(10**400), 5e-324]),
)
operations = st.one_of(
    st.builds(Box, st.integers(), st.tuples(numbers, numbers, numbers, numbers), st.text()),
    st.builds(
        Line, st.integers(), st.tuples(numbers, numbers), st.tuples(numbers, numbers), st.text()
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    op=operations,
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    coords=st.sampled_from(["pixel", "norm1000"]),
)
def test_check_operation_never_raises(op, width, height, coords):
    checked = check_operation(op, width=width, height=height, coords=coords)
    assert (checked.op is None) != (checked.error is None)
    if checked.op is None:
        return
    if checked.op.kind == "box":
        x1, y1, x2, y2 = checked.op.bbox
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    else:
        points = (checked.op.start, checked.op.end)
        assert all(0 <= x <= width and 0 <= y <= height for x, y in points)
        assert checked.op.start != checked.op.end


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 2, 2), (0, 0, 2, 2), 1.0),
        ((2, 2, 0, 0), (0, 0, 2, 2), 1.0),  # corner order does not matter
        ((0, 0, 2, 2), (1, 1, 3, 3), 1 / 7),  # overlap 1, union 4 + 4 - 1
        ((0, 0, 4, 4), (0, 0, 2, 2), 0.25),
        ((0, 0, 1, 1), (2, 2, 3, 3), 0.0),
        ((0, 0, 1, 1), (1, 0, 2, 1), 0.0),  # sharing an edge only
    ],
)
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (line((0, 0), (10, 0)), line((0, 3), (10, 3)), 3.0),
        (line((10, 0), (0, 0)), line((0, 0), (10, 0)), 0.0),  # direction ignored
        (line((0, 0), (10, 0)), line((0, 0), (5, 0)), 5.0),
        (line((0, 0), (10, 0)), line((0, 0), (0, 10)), 10.0),
        (line((0, 0), (3, 0)), line((3, 4), (0, 4)), 4.0),
    ],
)
def test_line_hausdorff(a, b, expected):
    assert line_hausdorff(a, b) == pytest.approx(expected)


def test_closed_form_iou_and_hausdorff_agree_with_shapely():
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(0)
    for trial in range(2000):
        a = [float(v) for v in rng.uniform(0, 500, 4)]
        # Near copies (the repeat test's case), rounded copies and unrelated boxes.
        if trial % 3 == 0:
            b = [v + float(rng.normal(0, 3)) for v in a]
        elif trial % 3 == 1:
            b = [float(round(v)) for v in a]
        else:
            b = [float(v) for v in rng.uniform(0, 500, 4)]
        first, second = (
            shapely.box(min(p[0], p[2]), min(p[1], p[3]), max(p[0], p[2]), max(p[1], p[3]))
            for p in (a, b)
        )
        union = first.union(second).area
        expected = first.intersection(second).area / union if union else 0.0
        assert box_iou(a, b) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        segments = [line(tuple(p[:2]), tuple(p[2:])) for p in (a, b)]
        geometry = [shapely.LineString([s.start, s.end]) for s in segments]
        expected = geometry[0].hausdorff_distance(geometry[1])
        assert line_hausdorff(*segments) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (box(0, 0, 100, 100), box(0, 0, 100, 100), True),
        (box(0, 0, 100, 100), box(0, 0, 98, 100), True),  # IoU 0.98 = 1 - tol exactly
        (box(0, 0, 100, 100), box(0, 0, 97.9, 100), False),  # IoU 0.979
        (box(0, 0, 100, 100), box(0, 0, 99, 100, label="other"), True),  # labels not compared
        (line((0, 0), (100, 0)), line((100, 10), (0, 10)), True),  # 10 = 0.02 * 500 exactly
        (line((0, 0), (100, 0)), line((0, 10.1), (100, 10.1)), False),
        (line((0, 0), (100, 0)), line((0, 9.9), (100, 9.9)), True),
        (box(0, 0, 100, 100), line((0, 0), (100, 100)), False),  # kinds differ
    ],
)
def test_same_geometry_at_tolerance(a, b, same):
    assert same_geometry(a, b, tol=0.02, diagonal=500.0) is same


def test_same_geometry_zero_tolerance_needs_identical():
    assert same_geometry(box(0, 0, 10, 10), box(0, 0, 10, 10), tol=0.0, diagonal=math.hypot(W, H))
    assert not same_geometry(box(0, 0, 10, 10), box(0, 0, 10, 10.5), tol=0.0, diagonal=560.0)
