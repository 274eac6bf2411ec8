"""The ``distance`` suite: determinism, balance, pixel-checked ground truth, maximum reward.

The pixel helpers here are shared with ``test_suite_direction.py`` (same floor plans).
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

from drawenv.tasks import distance
from drawenv.tasks.floorplan import BAR, KINDS, PLATE


def same_colour(image: np.ndarray, colour, tol: int = 20) -> np.ndarray:
    return np.abs(image.astype(int) - np.asarray(colour)).max(axis=-1) <= tol


def check_object_boxes(record) -> None:
    """Each furniture box holds its shape's colour, its edges touch the shape, and a ring
    2..5 px outside it holds (almost) none of that colour: the box is tight and complete."""
    image = record.images[0]
    height, width = image.shape[:2]
    for obj in record.metadata["objects"]:
        if obj["name"] == "scale bar":
            continue
        colour = KINDS[obj["name"].split(" ")[0]][2]
        x1, y1, x2, y2 = obj["box"]
        ix1, iy1, ix2, iy2 = math.ceil(x1), math.ceil(y1), math.floor(x2), math.floor(y2)
        inside = same_colour(image[iy1:iy2, ix1:ix2], colour)
        assert inside.mean() > 0.2, (record.id, obj)
        shape = same_colour(image, colour, 30) | same_colour(image, [c * 0.7 for c in colour], 30)
        mx, my = (ix1 + ix2) // 2, (iy1 + iy2) // 2
        qx, qy = max(1, (ix2 - ix1) // 6), max(1, (iy2 - iy1) // 6)
        edges = [
            shape[iy1 : iy1 + 2, mx - qx : mx + qx + 1],
            shape[iy2 - 2 : iy2, mx - qx : mx + qx + 1],
            shape[my - qy : my + qy + 1, ix1 : ix1 + 2],
            shape[my - qy : my + qy + 1, ix2 - 2 : ix2],
        ]
        assert all(edge.any() for edge in edges), (record.id, obj)
        ring = np.zeros((height, width), bool)
        ring[max(0, iy1 - 5) : iy2 + 5, max(0, ix1 - 5) : ix2 + 5] = True
        ring[iy1 - 2 : iy2 + 2, ix1 - 2 : ix2 + 2] = False
        assert same_colour(image, colour)[ring].mean() < 0.03, (record.id, obj)


def measured_bar_px(record) -> float:
    """The bar's length read from the pixels: its darkest row's summed coverage (anti-aliasing
    keeps area, so partly covered end pixels add up to the true length)."""
    x1, y1, x2, y2 = (round(v) for v in record.metadata["scale_bar"])
    grey = record.images[0][y1 - 3 : y2 + 3, x1 - 3 : x2 + 3].astype(float).mean(axis=-1)
    coverage = np.clip((PLATE[0] - grey) / (PLATE[0] - BAR[0]), 0, 1)
    return float(coverage.sum(axis=1).max())


def check_scale_bar(record) -> None:
    meta = record.metadata
    assert {"name": "scale bar", "box": meta["scale_bar"]} in meta["objects"]
    expected = meta["scale_px_per_m"] * meta["scale_bar_m"]
    assert abs(measured_bar_px(record) - expected) <= 2.0, (record.id, expected)
    x1, y1, x2, y2 = (round(v) for v in meta["scale_bar"])
    image = record.images[0].astype(int)
    ring = np.zeros(image.shape[:2], bool)
    ring[y1 - 5 : y2 + 5, x1 - 5 : x2 + 5] = True
    ring[y1 - 2 : y2 + 2, x1 - 2 : x2 + 2] = False
    assert (image.mean(axis=-1)[ring] < 120).mean() < 0.02, record.id


def test_letters_balanced_and_numeric_answers_spread_over_500_items(unpainted_pixels):
    letters = collections.defaultdict(collections.Counter)
    numbers = []
    for index in range(500):
        record = distance.generate(11, index, 1 + index % 3)
        if record.answer_type == "numeric":
            numbers.append(record.answer)
        else:
            letters[len(record.options)][record.answer] += 1
    for n_options, counts in letters.items():
        fair = sum(counts.values()) / n_options
        assert len(counts) == n_options and max(counts.values()) <= 1.5 * fair, counts
    assert 150 < len(numbers) < 350
    assert min(numbers) <= 1.0 and max(numbers) >= 9.0 and len(set(numbers)) > 60


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_boxes_hold_their_shapes_and_the_scale_bar_has_its_length(difficulty):
    for index in range(12):
        record = distance.generate(5, index, difficulty)
        check_object_boxes(record)
        check_scale_bar(record)


def test_answers_match_recorded_centres_and_scale():
    for index in range(60):
        record = distance.generate(8, index, 1 + index % 3)
        meta = record.metadata
        scale, centres = meta["scale_px_per_m"], meta["centres_px"]
        for obj in meta["objects"][:-1]:
            x1, y1, x2, y2 = obj["box"]
            assert centres[obj["name"]] == pytest.approx([(x1 + x2) / 2, (y1 + y2) / 2], abs=0.01)
        if record.answer_type == "numeric":
            a, b = meta["pair"]
            assert record.answer == round(math.dist(centres[a], centres[b]) / scale, 1)
            assert record.answer > 0
        else:
            x = meta["reference"]
            metres = {o: math.dist(centres[x], centres[o]) / scale for o in record.options}
            correct = record.options["ABCD".index(record.answer)]
            assert correct == meta["correct"] and x not in record.options
            assert all(metres[o] >= 1.15 * metres[correct] for o in record.options if o != correct)
            assert x in record.question and not any(o in record.question for o in record.options)


def test_harder_levels_have_more_objects_repeats_and_scales(unpainted_pixels):
    stats = {}
    for difficulty in (1, 2, 3):
        records = [distance.generate(4, i, difficulty) for i in range(30)]
        names = [[o["name"] for o in r.metadata["objects"][:-1]] for r in records]
        scales = [r.metadata["scale_px_per_m"] for r in records]
        stats[difficulty] = (
            np.mean([len(n) for n in names]),
            np.mean([sum(name[-2:] in (" A", " B") for name in n) for n in names]),
            max(scales) - min(scales),
        )
        assert all(len(n) >= distance.LEVELS[difficulty]["objects"][0] for n in names)
    assert stats[1][0] < stats[2][0] < stats[3][0]
    assert stats[1][1] == 0 < stats[2][1] < stats[3][1]
    assert stats[1][2] < stats[3][2]
