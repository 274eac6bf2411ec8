"""The multiview suite: determinism, answer balance, ground truth checked against the pixels of
every frame (each object inside its box, absent objects absent), the recorded move and order
against the camera path, maximum reward for the recorded answer under every preset, and
difficulty levels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import drawenv
from drawenv.tasks import multiview

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 40  # per channel: lighting drifts up to about 8 %, plus colour cast and grain


def colour_mask(image: np.ndarray, rgb: list[int]) -> np.ndarray:
    return np.abs(image.astype(int) - np.asarray(rgb)).max(axis=2) <= TOLERANCE


def to_table(box: list[float], camera: dict) -> np.ndarray:
    """A frame box mapped back to table coordinates through the recorded camera."""
    scale, (ox, oy) = camera["scale"], camera["offset"]
    return (np.asarray(box) - [ox, oy, ox, oy]) / scale


def to_frame(box: np.ndarray, camera: dict) -> list[int]:
    scale, (ox, oy) = camera["scale"], camera["offset"]
    return [round(v) for v in box * scale + [ox, oy, ox, oy]]


@pytest.fixture
def unpainted(monkeypatch):
    """Skip painting the frames, for tests of answers and metadata only: everything but the
    pixels is fixed before the frames are painted, so every record stays the same otherwise."""
    monkeypatch.setattr(
        multiview,
        "_render",
        lambda rng, drawn, cameras: tuple(np.zeros((28, 28, 3), np.uint8) for _ in cameras),
    )


def test_letters_kinds_and_wording_are_balanced(unpainted):
    records = [multiview.generate(1, i, 1 + i % 3) for i in range(500)]
    assert {len(r.options) for r in records} == {4}
    letters = Counter(r.answer for r in records)
    assert set(letters) == set("ABCD") and max(letters.values()) <= 1.5 * 500 / 4, letters
    kinds = Counter(r.metadata["question_kind"] for r in records)
    assert min(kinds.values()) > 0.4 * 500, kinds
    longest = shortest = 0
    for r in records:
        lengths = [len(o) for o in r.options]
        correct = lengths["ABCD".index(r.answer)]
        longest += lengths.count(max(lengths)) == 1 and correct == max(lengths)
        shortest += lengths.count(min(lengths)) == 1 and correct == min(lengths)
    assert longest < 1.5 * 500 / 4 and shortest < 1.5 * 500 / 4, (longest, shortest)
    # the question never lists the objects in their true order more often than chance would
    listed_in_order = sum(
        r.question.index(r.metadata["order"][0]) < r.question.index(r.metadata["order"][1])
        for r in records
        if r.metadata["question_kind"] == "order"
    )
    assert listed_in_order < 0.65 * kinds["order"]


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_every_frame_box_holds_its_object_and_absent_objects_are_absent(difficulty):
    for index in range(8):
        record = multiview.generate(2, index, difficulty)
        meta = record.metadata
        assert len(record.images) == len(meta["frames"]) == len(meta["cameras"])
        assert len({image.shape for image in record.images}) == 1
        seen: dict[str, np.ndarray] = {}  # table box of every object, from any frame
        for image, frame, camera in zip(record.images, meta["frames"], meta["cameras"]):
            for obj in frame:
                mask = colour_mask(image, meta["colours"][obj["name"]])
                x1, y1, x2, y2 = (round(v) for v in obj["box"])
                inside = mask[y1:y2, x1:x2]
                assert inside.mean() > 0.1, (record.id, obj)
                # tight: the colour reaches within 8 px of every side (wheels, rims are darker)
                assert inside[:, :8].any() and inside[:, -8:].any(), (record.id, obj)
                assert inside[:8].any() and inside[-8:].any(), (record.id, obj)
                ring = (
                    mask[y1 - 5 : y2 + 5, x1 - 5 : x2 + 5].sum()
                    - mask[y1 - 1 : y2 + 1, x1 - 1 : x2 + 1].sum()
                )
                assert ring < 0.02 * inside.size, (record.id, obj)
                seen.setdefault(obj["name"], to_table(obj["box"], camera))
        for image, frame, camera in zip(record.images, meta["frames"], meta["cameras"]):
            for name in set(seen) - {o["name"] for o in frame}:
                x1, y1, x2, y2 = to_frame(seen[name], camera)
                assert colour_mask(image, meta["colours"][name])[y1:y2, x1:x2].mean() < 0.02


def test_only_the_recorded_object_moves_on_the_table(unpainted):
    checked = 0
    for index in range(60):
        record = multiview.generate(4, index, 1 + index % 3)
        meta = record.metadata
        if meta["question_kind"] != "moved":
            continue
        checked += 1
        moved, cameras = meta["moved"], meta["cameras"]
        start = {o["name"]: to_table(o["box"], cameras[0]) for o in meta["frames"][0]}
        for f, (frame, camera) in enumerate(zip(meta["frames"], cameras)):
            assert {o["name"] for o in frame} == set(start)
            for obj in frame:
                shift = to_table(obj["box"], camera) - start[obj["name"]]
                expected = [0, 0, 0, 0]
                if obj["name"] == moved["name"] and f + 1 >= moved["frame"]:
                    expected = moved["shift"] * 2
                assert np.allclose(shift, expected, atol=0.3), (record.id, obj, shift)
        assert np.hypot(*moved["shift"]) >= multiview.LEVELS[meta["difficulty"]].shift[0] - 1
        assert record.options["ABCD".index(record.answer)] == moved["name"]
        assert all(option in start for option in record.options)
        labels = [(d["index"], d["label"]) for d in meta["key_drawings"]]
        assert labels == [(f, f"{moved['name']} f{f}") for f in range(1, len(cameras) + 1)]
    assert checked >= 20


def test_order_matches_when_objects_first_show_up(unpainted):
    checked = 0
    for index in range(60):
        record = multiview.generate(5, index, 1 + index % 3)
        meta = record.metadata
        if meta["question_kind"] != "order":
            continue
        checked += 1
        first: dict[str, int] = {}
        for f, frame in enumerate(meta["frames"], start=1):
            for obj in frame:
                first.setdefault(obj["name"], f)
            new = [o["name"] for o in frame if first[o["name"]] == f]
            assert len(new) == (1 if f > 1 else len(frame)), (record.id, f, new)
        order = meta["order"]
        assert [first[name] for name in order] == list(range(1, len(meta["frames"]) + 1))
        assert record.options["ABCD".index(record.answer)] == ", then ".join(order)
        assert all(sorted(o.split(", then ")) == sorted(order) for o in record.options)
        assert len(set(record.options)) == 4
        assert [(d["index"], d["label"]) for d in meta["key_drawings"]] == [
            (first[name], f"{name} f{first[name]}") for name in order
        ]
    assert checked >= 20


def test_image_1_key_boxes_are_objects_and_names_are_distinct(unpainted):
    for index in range(30):
        meta = multiview.generate(6, index, 1 + index % 3).metadata
        names = [o["name"] for o in meta["objects"]]
        everyone = list(meta["colours"])
        assert not any(a != b and a in b for a in everyone for b in everyone)
        assert meta["objects"] == meta["frames"][0]
        for drawing in meta["key_drawings"]:
            frame = {o["name"]: o["box"] for o in meta["frames"][drawing["index"] - 1]}
            name = drawing["label"].rsplit(" f", 1)[0]
            assert frame[name] == drawing["bbox"]
            if drawing["index"] == 1:
                assert [n for n in names if n in drawing["label"]] == [name]
        json.dumps(meta)


def test_harder_levels_have_more_frames_objects_look_alikes_and_camera_motion(unpainted):
    stats = {}
    for level in (1, 2, 3):
        metas = [multiview.generate(8, i, level).metadata for i in range(30)]
        moved = [m for m in metas if m["question_kind"] == "moved"]
        looks = [[name.split(" ", 1) for name in m["colours"]] for m in metas]
        stats[level] = {
            "frames": {len(m["frames"]) for m in moved},
            "objects": np.mean([len(m["colours"]) for m in metas]),
            "shared_kind": np.mean([len({k for _, k in x}) < len(x) for x in looks]),
            "shared_colour": np.mean([len({c for c, _ in x}) < len(x) for x in looks]),
            "camera": np.mean(
                [
                    max(
                        abs(c["offset"][0] - m["cameras"][0]["offset"][0])
                        + abs(c["offset"][1] - m["cameras"][0]["offset"][1])
                        + 224 * abs(c["scale"] - m["cameras"][0]["scale"])
                        for c in m["cameras"]
                    )
                    for m in metas
                ]
            ),
            "move": np.mean([np.hypot(*m["moved"]["shift"]) for m in moved]),
        }
    assert [stats[level]["frames"] for level in (1, 2, 3)] == [{2}, {3}, {4}]
    assert stats[1]["objects"] < stats[2]["objects"] < stats[3]["objects"]
    assert stats[1]["shared_kind"] == stats[1]["shared_colour"] == stats[2]["shared_colour"] == 0
    assert stats[2]["shared_kind"] > 0.5 and stats[3]["shared_colour"] > 0.5
    assert stats[1]["camera"] < stats[2]["camera"] < stats[3]["camera"]
    assert stats[1]["move"] > stats[2]["move"] > stats[3]["move"]
    with pytest.raises(drawenv.DrawEnvError):
        multiview.generate(0, 0, 0)
