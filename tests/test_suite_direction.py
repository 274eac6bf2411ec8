"""The ``direction`` suite: determinism, balance, pixel-checked ground truth, maximum reward."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

from drawenv.tasks import direction
from tests.test_suite_distance import check_object_boxes, check_scale_bar


def quadrant(standing, facing_point, target) -> str:
    """front/back from the dot product, left/right from the sign of the 2D cross product (image
    y points down, so a positive cross product is clockwise on screen: to the viewer's right)."""
    fx, fy = facing_point[0] - standing[0], facing_point[1] - standing[1]
    vx, vy = target[0] - standing[0], target[1] - standing[1]
    front = fx * vx + fy * vy > 0
    right = fx * vy - fy * vx > 0
    return f"{'front' if front else 'back'}-{'right' if right else 'left'}"


@pytest.mark.parametrize(
    ("target", "expected"),
    [((20, 5), "front-right"), ((20, -5), "front-left"), ((-3, 9), "back-right"),
     ((-3, -9), "back-left")],
)  # fmt: skip
def test_quadrant_formula_by_hand(target, expected):
    # standing at the origin facing +x (to the right of the image): +y (down) is the right hand
    assert quadrant((0, 0), (10, 0), target) == expected


def test_letters_balanced_over_500_items(unpainted_pixels):
    counts = collections.Counter(direction.generate(11, i, 1 + i % 3).answer for i in range(500))
    assert set(counts) == set("ABCD") and max(counts.values()) <= 1.5 * 500 / 4, counts


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_boxes_hold_their_shapes_and_the_scale_bar_has_its_length(difficulty):
    for index in range(12):
        record = direction.generate(5, index, difficulty)
        check_object_boxes(record)
        check_scale_bar(record)


def test_answer_matches_an_independent_quadrant_of_the_recorded_positions():
    for index in range(90):
        difficulty = 1 + index % 3
        record = direction.generate(8, index, difficulty)
        meta = record.metadata
        boxes = {o["name"]: o["box"] for o in meta["objects"]}
        for name, (x, y) in meta["positions"].items():
            x1, y1, x2, y2 = boxes[name]
            assert (x, y) == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2), abs=0.01)
        a, b, c = (meta["positions"][meta[k]] for k in ("standing", "facing_object", "target"))
        assert record.options == ("front-left", "front-right", "back-left", "back-right")
        assert record.options["ABCD".index(record.answer)] == quadrant(a, b, c)
        assert meta["facing"] == pytest.approx([b[0] - a[0], b[1] - a[1]], abs=0.01)
        # clearly inside the quadrant: far from straight ahead, behind, left and right
        fx, fy, vx, vy = b[0] - a[0], b[1] - a[1], c[0] - a[0], c[1] - a[1]
        cosine = (fx * vx + fy * vy) / math.hypot(fx, fy) / math.hypot(vx, vy)
        angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
        margin = min(angle, abs(90 - angle), 180 - angle)
        assert margin >= direction.LEVELS[difficulty]["margin"] - 0.5, (record.id, angle)
        assert abs(abs(meta["signed_angle_deg"]) - angle) < 0.5


def test_harder_levels_have_more_objects_and_smaller_angle_margins(unpainted_pixels):
    stats = {}
    for difficulty in (1, 2, 3):
        records = [direction.generate(4, i, difficulty) for i in range(40)]
        counts = [len(r.metadata["objects"]) - 1 for r in records]
        margins = [min(abs(r.metadata["signed_angle_deg"]) % 90, 90 - abs(r.metadata[
            "signed_angle_deg"]) % 90) for r in records]  # fmt: skip
        assert min(counts) >= direction.LEVELS[difficulty]["objects"][0]
        stats[difficulty] = (np.mean(counts), min(margins))
    assert stats[1][0] < stats[2][0] < stats[3][0]
    assert stats[1][1] >= 30 - 0.5 and stats[3][1] < 25
