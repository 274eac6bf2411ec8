"""The ``depth`` suite: determinism, balance, ground truth checked against the pixels with a
projection written here independently of the generator, and full reward for the recorded answer."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from drawenv.tasks.depth import LEVELS, generate


def fingerprint(record) -> str:
    image = hashlib.sha256(record.images[0].tobytes()).hexdigest()
    fields = [record.question, record.answer, list(record.options), record.metadata]
    return image + json.dumps(fields, sort_keys=True)


def project(camera: dict, point) -> np.ndarray:
    """World (x right, y up, z forward) to pixels: K [R | -R C] with the camera pitched down."""
    pitch = math.radians(camera["pitch_deg"])
    rotation = np.array(  # rows: camera right, down, forward in world coordinates
        [
            [1.0, 0.0, 0.0],
            [0.0, -math.cos(pitch), -math.sin(pitch)],
            [0.0, -math.sin(pitch), math.cos(pitch)],
        ]
    )
    k = np.array(
        [
            [camera["focal_px"], 0.0, camera["cx"]],
            [0.0, camera["focal_px"], camera["cy"]],
            [0.0, 0.0, 1.0],
        ]
    )
    eye = np.array([0.0, camera["height_m"], 0.0])
    homogeneous = k @ rotation @ (np.asarray(point, float) - eye)
    assert homogeneous[2] > 0, "behind the camera"
    return homogeneous[:2] / homogeneous[2]


def of_colour(pixels: np.ndarray, rgb, tolerance: float = 30.0) -> np.ndarray:
    """Which pixels are a shade (lit or in shadow) of ``rgb``."""
    base = np.asarray(rgb, float)
    pixels = np.asarray(pixels, float)
    shade = np.clip(pixels @ base / (base @ base), 0.45, 1.15)
    return np.linalg.norm(pixels - shade[..., None] * base, axis=-1) < tolerance


def distance(camera: dict, centre) -> float:
    return math.dist((0.0, camera["height_m"], 0.0), centre)


ITEMS = [(11, index, 1 + index % 3) for index in range(60)]


@pytest.fixture(scope="module")
def records():
    return [generate(*item) for item in ITEMS]


def _summary(item):
    record = generate(*item)
    return record.answer_type, len(record.options), record.answer


def test_letters_balanced_and_distances_spread_over_500_items():
    items = [(3, index, 1 + index % 3) for index in range(500)]
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        summaries = list(pool.map(_summary, items, chunksize=25))
    letters: dict[int, Counter] = {}
    numbers = []
    for kind, n_options, answer in summaries:
        if kind == "multiple_choice":
            letters.setdefault(n_options, Counter())[answer] += 1
        else:
            numbers.append(answer)
    assert set(letters) == {2, 3, 4}
    for n_options, counts in letters.items():
        fair = sum(counts.values()) / n_options
        assert set(counts) == set("ABCD"[:n_options]) and max(counts.values()) <= 1.5 * fair
    assert len(numbers) > 150 and len(set(numbers)) > 0.9 * len(numbers)
    low, high = np.percentile(numbers, [5, 95])
    assert min(numbers) < 3.5 and max(numbers) > 20 and high / low > 3


def test_projected_centres_land_in_tight_boxes_of_the_objects_colour(records):
    assert sum(check_pixels(record) for record in records) > 100


def check_pixels(record) -> int:
    """Check every object of ``record`` against the image; return how many were unoccluded."""
    checked = 0
    meta, image = record.metadata, record.images[0].astype(float)
    height, width = image.shape[:2]
    camera = meta["camera"]
    assert (camera["cx"], camera["cy"]) == (width / 2, height / 2)
    for obj in meta["objects"]:
        x1, y1, x2, y2 = obj["box"]
        x, y, z = obj["centre_3d"]
        assert y > 0 and z > 0
        for point, slack in (((x, y, z), 0.0), ((x, 0.0, z), 0.5)):  # a ball touches
            u, v = project(camera, point)  # the ground at the rim of its silhouette
            within = x1 - slack < u < x2 + slack and y1 - slack < v < y2 + slack
            assert within, (record.id, obj["name"], point)
        if obj["visible"] < 1.0:
            continue
        u, v = project(camera, (x, y, z))
        assert of_colour(image[int(v), int(u)], obj["colour"]), (record.id, obj["name"])
        checked += 1
        a, b, c, d = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
        inside = of_colour(image[b:d, a:c], obj["colour"])
        assert inside.mean() > 0.25, (record.id, obj["name"])
        if min(c - a, d - b) >= 10:  # each side of the box touches the object
            edges = (inside[:, :4], inside[:, -4:], inside[:4], inside[-4:])
            assert all(edge.any() for edge in edges), (record.id, obj["name"])
        ring = np.zeros((height, width), bool)
        ring[max(0, b - 5) : d + 5, max(0, a - 5) : c + 5] = True
        ring[max(0, b - 2) : d + 2, max(0, a - 2) : c + 2] = False
        for other in meta["objects"]:  # other objects may share the colour
            if other is not obj:
                p, q, r, s = (round(t) for t in other["box"])
                ring[max(0, q - 1) : s + 2, max(0, p - 1) : r + 2] = False
        if ring.any():
            outside = of_colour(image[ring], obj["colour"])
            assert outside.mean() < 0.05, (record.id, obj["name"], outside.mean())
    return checked


def test_answers_equal_the_recomputed_distances(records):
    for record in records:
        meta = record.metadata
        camera, objects = meta["camera"], {o["name"]: o for o in meta["objects"]}
        for obj in objects.values():
            assert obj["distance_m"] == pytest.approx(distance(camera, obj["centre_3d"]), abs=0.01)
        if record.answer_type == "numeric":
            (name,) = meta["asked"]
            assert name in record.question and "from the camera" in record.question
            assert f"{camera['height_m']:.1f} m above" in record.question
            assert record.answer == pytest.approx(
                distance(camera, objects[name]["centre_3d"]), abs=0.005
            )
            continue
        assert record.question.startswith("Which")
        assert sorted(record.options) == sorted(meta["asked"])
        correct = objects[record.options["ABCD".index(record.answer)]]["centre_3d"]
        margin = LEVELS[meta["difficulty"]].margin
        assert margin >= 1.15
        for name in record.options:  # nearer both in a straight line and along the ground
            x, _, z = centre = objects[name]["centre_3d"]
            if centre != correct:
                assert distance(camera, centre) >= margin * distance(camera, correct) - 0.01
                assert math.hypot(x, z) >= margin * math.hypot(correct[0], correct[2]) - 0.01


def test_key_drawings_mark_the_asked_objects_and_their_ground_contact(records):
    for record in records:
        meta = record.metadata
        names = [o["name"] for o in meta["objects"]]
        assert not any(a != b and a in b for a in names for b in names)  # detection matches
        boxes = [d for d in meta["key_drawings"] if d["kind"] == "box"]
        lines = [d for d in meta["key_drawings"] if d["kind"] == "line"]
        assert [d["label"] for d in boxes] == [n for n in names if n in meta["asked"]]
        assert len(boxes) == len(meta["asked"]) == len(lines)
        height, width = record.images[0].shape[:2]
        for box, line in zip(boxes, lines):
            obj = meta["objects"][names.index(box["label"])]
            assert box["bbox"] == obj["box"] and line["label"] == f"to {obj['name']}"
            x, _, z = obj["centre_3d"]
            assert line["start"] == [width / 2, height - 1]
            assert np.allclose(line["end"], project(meta["camera"], (x, 0, z)), atol=0.1)
            assert obj["visible"] >= 0.6


def test_harder_levels_are_harder(records):
    by_level = {level: [r.metadata for r in records if r.metadata["difficulty"] == level]
                for level in LEVELS}  # fmt: skip

    def mean(values):
        return float(np.mean(list(values)))

    objects = [mean(len(m["objects"]) for m in by_level[level]) for level in LEVELS]
    farthest = [max(o["centre_3d"][2] for m in by_level[lv] for o in m["objects"]) for lv in LEVELS]
    hidden = [mean(1 - o["visible"] for m in by_level[lv] for o in m["objects"]) for lv in LEVELS]
    alike = [
        mean(len(m["objects"]) - len({o["kind"] for o in m["objects"]}) for m in by_level[level])
        for level in LEVELS
    ]
    assert objects == sorted(objects) and objects[0] < objects[2]
    assert farthest == sorted(farthest) and farthest[2] > 20
    assert hidden == sorted(hidden) and hidden[0] < hidden[2]
    assert alike == sorted(alike) and alike[0] < alike[2]
    assert [LEVELS[level].options for level in LEVELS] == [2, 3, 4]
    assert [LEVELS[level].margin for level in LEVELS] == sorted(
        (LEVELS[level].margin for level in LEVELS), reverse=True
    )
