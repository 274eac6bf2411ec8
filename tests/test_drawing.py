"""Drawing: which pixels each layer changes, colours, replacement, clipping and odd labels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drawenv.actions import Box, Line
from drawenv.canvas import (
    LINE_END_COLOUR,
    LINE_START_COLOUR,
    PALETTE,
    label_colour,
    render,
    stroke_width,
)
from drawenv.errors import DrawEnvError
from drawenv.geometry import check_operation

W, H = 448, 336  # stroke_width(448, 336) = round(336 / 112) = 3


@pytest.fixture
def photo() -> np.ndarray:
    """Noise, so any changed pixel shows and no colour can match the original by chance."""
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def colour_at(image: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[y, x])


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(448, 336, 3), (448, 448, 4), (100, 100, 2), (500, 168, 2), (2000, 1120, 10)],
)
def test_stroke_width(width, height, expected):
    assert stroke_width(width, height) == expected


def test_box_outline_has_label_colour_and_rest_is_untouched(photo):
    out = render(photo, [Box(1, (100, 120, 200, 220), "sofa")])
    colour = label_colour("sofa")
    # The 3-px outline covers columns 100..102 and 197..199, rows 120..122 and 217..219.
    for x, y in [
        (100, 150),
        (102, 150),
        (197, 150),
        (199, 150),
        (150, 120),
        (150, 122),
        (150, 219),
    ]:
        assert colour_at(out, x, y) == colour
    for x, y in [(103, 150), (196, 150), (150, 123), (150, 216), (99, 150), (200, 150), (150, 220)]:
        assert colour_at(out, x, y) == colour_at(photo, x, y)
    np.testing.assert_array_equal(out[:, 201:], photo[:, 201:])
    np.testing.assert_array_equal(out[221:], photo[221:])
    np.testing.assert_array_equal(out[:, :100], photo[:, :100])


def test_box_label_tag_sits_above_the_box(photo):
    out = render(photo, [Box(1, (100, 120, 200, 220), "sofa")])
    changed_rows = np.flatnonzero((out != photo).any(axis=(1, 2)))
    assert changed_rows.min() < 120  # the tag is above the top edge
    assert colour_at(out, 101, changed_rows.min()) == label_colour("sofa")  # tag fill


def test_line_dots_and_stroke(photo):
    # Continuous (50.5, 300.5) is the centre of pixel (50, 300).
    out = render(photo, [Line(1, (50.5, 300.5), (400.5, 100.5), "path")])
    assert colour_at(out, 50, 300) == LINE_START_COLOUR
    assert colour_at(out, 400, 100) == LINE_END_COLOUR
    assert colour_at(out, 225, 200) == label_colour("path")  # the midpoint, the tag is above it
    np.testing.assert_array_equal(out[310:], photo[310:])
    np.testing.assert_array_equal(out[:85], photo[:85])


def test_replaced_box_leaves_no_trace(photo):
    old = Box(1, (50, 50, 150, 150), "cup")
    new = Box(1, (250, 200, 350, 300), "cup")
    first = render(photo, [old])
    assert colour_at(first, 50, 100) == label_colour("cup")
    second = render(photo, [new])
    np.testing.assert_array_equal(second[:160, :160], photo[:160, :160])
    assert colour_at(second, 250, 250) == label_colour("cup")


def test_layers_draw_in_order_and_later_shapes_cover_earlier(photo):
    a, b = Box(1, (10, 100, 200, 200), "table"), Box(1, (10, 100, 300, 200), "chair")
    assert label_colour("table") != label_colour("chair")
    out = render(photo, [a, b])
    assert colour_at(out, 100, 199) == label_colour("chair")  # shared bottom edge


def test_clipped_box_and_line_at_the_edge(photo):
    box = check_operation(Box(1, (-20, 100, 100, 180), "edge"), width=W, height=H, coords="pixel")
    line = check_operation(
        Line(1, (-50, 300), (200, 300), "rail"), width=W, height=H, coords="pixel"
    )
    assert box.warning and line.warning
    out = render(photo, [box.op, line.op])
    for x in (0, 1, 2):
        assert colour_at(out, x, 150) == label_colour("edge")  # the full stroke stays visible
    assert colour_at(out, 3, 150) == colour_at(photo, 3, 150)
    assert colour_at(out, 50, 179) == label_colour("edge")
    assert colour_at(out, 1, 299) == LINE_START_COLOUR  # the start moved to the image edge


def test_box_tag_moves_inside_at_the_top_edge(photo):
    out = render(photo, [Box(1, (420, 0, 448, 50), "a long label near the corner")])
    assert out.shape == photo.shape
    # No room above or to the right: the tag is pulled inside, ending at the right edge.
    assert colour_at(out, W - 2, 2) == label_colour("a long label near the corner")
    changed = np.flatnonzero((out[2] != photo[2]).any(axis=1))
    assert changed.min() < 420 and changed.max() == W - 1


def test_norm1000_box_is_drawn_at_the_mapped_pixels(photo):
    checked = check_operation(
        Box(1, (250, 500, 750, 1000), "rug"), width=W, height=H, coords="norm1000"
    )
    assert checked.op.bbox == (112.0, 168.0, 336.0, 336.0)
    out = render(photo, [checked.op])
    colour = label_colour("rug")
    assert colour_at(out, 112, 250) == colour and colour_at(out, 335, 250) == colour
    assert colour_at(out, 200, 335) == colour  # bottom edge is the last image row
    assert colour_at(out, 111, 250) == colour_at(photo, 111, 250)
    assert colour_at(out, 336, 250) == colour_at(photo, 336, 250)


# By hand from canvas.py: label_colour is PALETTE[crc32(utf-8 label) % 36], and entry
# 12 * tone + hue is HSV (hue / 12, s, v) with tones (s, v) = vivid (0.85, 1), deep (0.9, 0.6),
# light (0.45, 1). At hues 0°, 120° and 180° HSV's RGB is (v, p, p), (p, v, p) and (p, v, v), where
# p = v * (1 - s). The CRC-32s are the ones gzip stores (`printf sofa | gzip | tail -c8 | od -tx4`).
@pytest.mark.parametrize(
    ("label", "expected"),
    [
        # CRC-32 of no bytes is 0 -> index 0: vivid, hue 0 (red); p = 0.15 * 255 = 38.25
        ("", (255, 38, 38)),
        # 0x1257C19C = 307,741,084 = 36 * 8,548,363 + 16: deep, hue 4 (120°, green);
        # v = 0.6 * 255 = 153, p = 0.06 * 255 = 15.3
        ("sofa", (15, 153, 15)),
        # 0xFCDCEB2E = 4,242,336,558 = 36 * 117,842,682 + 6: vivid, hue 6 (180°, cyan)
        ("goal", (38, 255, 255)),
        # 0xB3EC7A04 = 3,018,619,396 = 36 * 83,850,538 + 28: light, hue 4 (green);
        # p = 0.55 * 255 = 140.25
        ("tv", (140, 255, 140)),
    ],
)
def test_label_colour_is_the_palette_entry_of_the_labels_crc32(label, expected):
    assert label_colour(label) == expected


def test_label_colour_is_the_same_in_every_process():
    # str hashes change with PYTHONHASHSEED; the label's colour must not.
    code = "from drawenv.canvas import label_colour; print(label_colour('sofa'))"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": root}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "(15, 153, 15)"


def test_labels_spread_over_the_palette():
    labels = [
        "sofa", "chair", "table", "bed", "lamp", "door", "window", "tv", "plant", "shelf",
        "desk", "sink", "fridge", "oven", "toilet", "bathtub", "rug", "clock", "path", "goal",
    ]  # fmt: skip
    assert len({label_colour(label) for label in labels}) >= 15


def test_palette_and_dot_colours():
    assert len(set(PALETTE)) == len(PALETTE) >= 20
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in PALETTE)
    assert LINE_START_COLOUR != LINE_END_COLOUR
    assert LINE_START_COLOUR not in PALETTE and LINE_END_COLOUR not in PALETTE


@pytest.mark.parametrize(
    "label",
    [
        "😀 sofa",
        "你好世界",
        "\x00",
        "a\x00b\x07c",
        "\u202eright-to-left",
        "مرحبا",
        "\ud800 lone surrogate",
        "tab\there\nnewline",
        "👨‍👩‍👧 family",
        "e\u0301",
        "\U0010ffff\ue000",
        "W" * 64,
    ],
)
def test_any_unicode_label_renders(photo, label):
    layers = [Box(1, (10, 10, 200, 200), label), Line(1, (5, 300), (440, 20), label)]
    out = render(photo, layers)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert colour_at(out, 10, 100) == label_colour(label)


def test_render_is_pure(photo):
    before = photo.copy()
    out = render(photo, [Box(1, (10, 10, 100, 100), "a"), Line(1, (0, 0), (W, H), "b")])
    np.testing.assert_array_equal(photo, before)
    assert out is not photo and not np.shares_memory(out, photo)
    empty = render(photo, [])
    assert empty is not photo
    np.testing.assert_array_equal(empty, photo)


def test_render_accepts_non_contiguous_input(photo):
    view = photo[:, ::-1]
    out = render(view, [Box(1, (10, 10, 100, 100), "a")])
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out[200:], view[200:])


@pytest.mark.parametrize(
    "image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float64), "not an image"]
)
def test_render_rejects_bad_images(image):
    with pytest.raises(DrawEnvError, match="original"):
        render(image, [])


@pytest.mark.parametrize("size", [10, 16, 23, 40])
@pytest.mark.parametrize(
    "text", ["object 12", "AV To", "fi ffl", "Wj", "left  wall", "é→✓ 中文", "x", ".,;", "W" * 30]
)
def test_label_text_has_the_pixels_of_pillows_whole_string(text, size):
    from PIL import Image, ImageDraw

    from drawenv.canvas import font, text_mask

    face = font(size)
    left, top, right, bottom = face.getbbox(text)
    whole = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(whole).text((-left, -top), text, font=face, fill=255)
    np.testing.assert_array_equal(text_mask(text, size), np.asarray(whole))


def test_chained_drawing_has_the_pixels_of_one_render_from_the_original(photo):
    from drawenv.state import ImageState

    state = ImageState([photo.copy()])
    turns = [
        [Box(1, (10, 10, 200, 150), "first"), Line(1, (5, 300), (440, 20), "path")],
        [Box(2, (100, 60, 300, 250), "second")],  # its outline crosses the first label
        [Line(3, (0, 40), (447, 45), "edge"), Box(3, (20, 5, 60, 30), "tiny")],
        [Box(4, (12, 12, 190, 140), "first")],  # replaces a layer: rendered from the root
        [Box(5, (300, 200, 420, 320), "last")],
    ]
    for ops in turns:
        plan = state.plan(ops, coords="pixel", tolerance=0.02)
        assert not plan.errors
        state.apply(plan)
        expected = render(photo, list(state.images[-1].layers.values()))
        np.testing.assert_array_equal(state.images[-1].pixels, expected)
    assert [op.label for op in state.images[-1].layers.values()] == [
        "first",
        "path",
        "second",
        "edge",
        "tiny",
        "last",
    ]
