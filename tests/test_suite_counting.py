"""The counting suite: determinism, spread of the counts, ground truth checked against the pixels
(target colour inside each tight box, connected components at level 1), maximum reward for the
recorded answer under every preset, and difficulty levels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

import drawenv
from drawenv.tasks import counting

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 30  # largest per-channel difference from the fill colour (noise is about 2 levels)


def colour_mask(image: np.ndarray, rgb: list[int]) -> np.ndarray:
    """Pixels within TOLERANCE of ``rgb`` in every channel."""
    return (np.abs(image.astype(int) - np.asarray(rgb)).max(axis=2) <= TOLERANCE).astype(np.uint8)


def test_counts_spread_over_a_wide_range(monkeypatch):
    # The count is drawn before the scene is painted, so skipping the paint keeps every answer.
    monkeypatch.setattr(counting, "_render", lambda rng, shapes: np.zeros((28, 28, 3), np.uint8))
    answers = {d: [counting.generate(1, i, d).answer for i in range(500)] for d in (1, 2, 3)}
    for level, values in answers.items():
        low, high = counting.LEVELS[level].targets
        seen = Counter(values)
        assert set(seen) == set(range(low, high + 1)), level  # every count in range occurs
        fair = len(values) / (high - low + 1)
        assert max(seen.values()) < 1.6 * fair, (level, seen)
    hard = answers[3]
    assert max(hard) >= 15 and np.mean(hard) > 7 and np.std(hard) > 3.5


def test_names_and_key_boxes_follow_the_objects():
    for index in range(30):
        record = counting.generate(2, index, 1 + index % 3)
        meta = record.metadata
        names = [o["name"] for o in meta["objects"]]
        assert len(names) == record.answer == meta["count"] == len(meta["visible_share"])
        assert all(name.startswith(meta["target"] + " ") for name in names)
        assert not any(a != b and a in b for a in names for b in names)  # no name inside another
        assert [(d["label"], d["bbox"], d["index"]) for d in meta["key_drawings"]] == [
            (o["name"], o["box"], 1) for o in meta["objects"]
        ]
        assert str(meta["target"]).split()[1] + "s" in record.question
        json.dumps(meta)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_each_box_holds_its_target_tightly(difficulty):
    for index in range(12):
        record = counting.generate(4, index, difficulty)
        mask = colour_mask(record.images[0], record.metadata["target_rgb"])
        for obj in record.metadata["objects"]:
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            inside = mask[y1:y2, x1:x2]
            assert inside.mean() > 0.15, (record.id, obj)
            # tight: fill colour within 8 px of every side (a star's thin tip is mostly rim)
            assert inside[:, :8].any() and inside[:, -8:].any(), (record.id, obj)
            assert inside[:8].any() and inside[-8:].any(), (record.id, obj)


def test_level_1_blobs_of_the_target_colour_are_the_targets():
    for index in range(40):
        record = counting.generate(5, index, 1)
        mask = colour_mask(record.images[0], record.metadata["target_rgb"])
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blobs = [stats[n, :4] for n in range(1, count) if stats[n, cv2.CC_STAT_AREA] >= 25]
        assert len(blobs) == record.answer, record.id
        boxes = [o["box"] for o in record.metadata["objects"]]
        for x, y, w, h in blobs:  # each blob fills exactly one box, up to the rim and thin tips
            holders = [
                b
                for b in boxes
                if b[0] - 1 <= x and x + w <= b[2] + 1 and b[1] - 1 <= y and y + h <= b[3] + 1
            ]
            assert len(holders) == 1, (record.id, (x, y, w, h))
            x1, y1, x2, y2 = holders[0]
            assert max(x - x1, y - y1, x2 - x - w, y2 - y - h) <= 8, (record.id, holders[0])


def test_harder_levels_have_more_shapes_more_look_alikes_and_more_overlap():
    stats = {}
    for level in (1, 2, 3):
        metas = [counting.generate(8, i, level).metadata for i in range(20)]
        stats[level] = {
            "shapes": np.mean([m["count"] + sum(m["distractors"].values()) for m in metas]),
            "same_colour": sum(m["distractors"]["same_colour"] for m in metas),
            "near_miss": sum(m["distractors"]["near_miss"] for m in metas),
            "hidden": np.mean([1 - s for m in metas for s in m["visible_share"]]),
            "lowest": min(s for m in metas for s in m["visible_share"]),
        }
    assert stats[1]["shapes"] < stats[2]["shapes"] < stats[3]["shapes"]
    assert stats[1]["same_colour"] == stats[1]["near_miss"] == stats[2]["near_miss"] == 0
    assert stats[2]["same_colour"] > 0 and stats[3]["near_miss"] > 0
    assert stats[1]["hidden"] == 0 < stats[2]["hidden"] < stats[3]["hidden"]
    assert stats[3]["lowest"] >= counting.LEVELS[3].min_visible
    with pytest.raises(drawenv.DrawEnvError):
        counting.generate(0, 0, 4)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_targets_are_listed_in_reading_order(difficulty):
    """Objects and key boxes go top to bottom (then left to right), lettered A, B, C, ... in that
    order, and the visible shares follow the same order."""
    for index in range(15):
        meta = counting.generate(2, index, difficulty).metadata
        tops = [(o["box"][1], o["box"][0]) for o in meta["objects"]]
        assert tops == sorted(tops)
        letters = [o["name"].rsplit(" ", 1)[1] for o in meta["objects"]]
        assert letters == [chr(ord("A") + n) for n in range(len(letters))]
        assert [k["bbox"] for k in meta["key_drawings"]] == [o["box"] for o in meta["objects"]]
        assert len(meta["visible_share"]) == len(meta["objects"]) == meta["count"]
