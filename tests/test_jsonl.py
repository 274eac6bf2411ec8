"""Local JSONL datasets: validation at load time (file, line, field), path confinement, lazy
images, random access, and a loaded record playing through the env."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drawenv import Answer, DrawEnvError
from drawenv.env import DrawSpatialEnv
from drawenv.tasks.jsonl import JsonlSource, load_jsonl


def png(path: Path, size: tuple[int, int] = (56, 84), value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def record(**fields) -> dict:
    base = {
        "id": "mc-1",
        "images": ["img/a.png"],
        "question": "Which is closer to the camera?",
        "answer_type": "multiple_choice",
        "options": ["the cup", "the jug"],
        "answer": "B",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def write(path: Path, lines: list) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    png(tmp_path / "img" / "a.png")
    png(tmp_path / "img" / "b.png", (112, 56), 200)
    return write(
        tmp_path / "tasks.jsonl",
        [
            record(),
            "",
            record(id="count-1", answer_type="count", answer=3, options=..., metadata={"k": 1}),
            "   ",
            record(
                id="num-1",
                images=["img/a.png", "./img/b.png"],
                answer_type="numeric",
                answer=2.5,
                options=...,
            ),
            record(id="text-1", answer_type="text", answer="a red mug", options=...),
        ],
    )


# -- a valid file ---------------------------------------------------------------------------


def test_valid_file_loads_with_absolute_paths(dataset):
    source = load_jsonl(dataset)
    assert isinstance(source, JsonlSource) and source.size == len(source) == 4
    assert [source[i].id for i in range(4)] == ["mc-1", "count-1", "num-1", "text-1"]
    num = source[2]
    assert num.images == (
        str(dataset.parent.resolve() / "img" / "a.png"),
        str(dataset.parent.resolve() / "img" / "b.png"),
    )
    assert num.answer == 2.5 and num.options == ()
    assert source[1].answer == 3 and source[1].metadata == {"k": 1}
    assert source[0].options == ("the cup", "the jug")
    assert source[-1].id == "text-1"
    images = num.load_images()
    assert images[1].shape == (56, 112, 3) and images[1].dtype == np.uint8
    assert int(images[1][0, 0, 0]) == 200


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_loaded_records_play_in_the_env(dataset, index):
    source = JsonlSource(dataset)
    env = DrawSpatialEnv(task=source)
    obs, info = env.reset(seed=0, options={"index": index})
    task = source[index]
    assert info["task_id"] == task.id and len(obs["images"]) == len(task.images)
    _, reward, terminated, _, info = env.step(Answer(str(task.answer), thought="looked"))
    assert terminated and info["termination"] == "answer" and reward == 1.0


def test_random_access_bounds(dataset):
    source = JsonlSource(dataset)
    with pytest.raises(IndexError):
        source[4]
    with pytest.raises(IndexError):
        source[-5]


def test_source_pickles(dataset):
    source = JsonlSource(dataset)
    copy = pickle.loads(pickle.dumps(source))
    assert copy.size == 4 and copy[2] == source[2]


def test_byte_order_mark_and_crlf_are_accepted(tmp_path):
    png(tmp_path / "img" / "a.png")
    text = json.dumps(record()) + "\r\n" + json.dumps(record(id="mc-2")) + "\r\n"
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    source = JsonlSource(path)
    assert [source[0].id, source[1].id] == ["mc-1", "mc-2"]


def test_file_changed_after_loading_is_reported(dataset):
    source = JsonlSource(dataset)
    with open(dataset, "a", encoding="utf-8") as file:
        file.write(json.dumps(record(id="late")) + "\n")
    with pytest.raises(DrawEnvError, match="changed after it was loaded"):
        source[0]


@pytest.mark.parametrize("name", ["missing.jsonl", "."])
def test_path_must_be_an_existing_file(tmp_path, name):
    with pytest.raises(DrawEnvError, match="Invalid `path`"):
        JsonlSource(tmp_path / name)


def test_empty_file_is_rejected(tmp_path):
    path = write(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(DrawEnvError, match="at least one task record"):
        JsonlSource(path)


# -- malformed records: one case per class, always on line 4 (a blank line before it) ------------

MALFORMED = [
    ("invalid-json", '{"id": "x", "images": [', None, "invalid JSON"),
    ("not-an-object", "[1, 2, 3]", None, "expected a JSON object"),
    ("missing-field", record(answer=...), "answer", "missing field"),
    ("unknown-field", {**record(), "answr": "B"}, "answr", "Did you mean 'answer'?"),
    ("id-not-string", record(id=12), "id", "got 12"),
    ("empty-question", record(question="  "), "question", "non-empty string"),
    ("images-not-list", record(images="img/a.png"), "images", "non-empty list"),
    ("images-empty", record(images=[]), "images", "non-empty list"),
    ("image-not-string", record(images=[3]), "images[0]", "path string"),
    ("options-not-list", record(options="cup, jug"), "options", "list of strings"),
    ("options-not-strings", record(options=["cup", 2]), "options", "list of strings"),
    ("metadata-not-object", record(metadata=[1]), "metadata", "JSON object"),
    ("bad-answer-type", record(answer_type="multiple choice"), "answer_type", "'multiple_choice'?"),
    ("mc-letter-out-of-range", record(answer="C"), "answer", "among 'AB'"),
    ("mc-option-text", record(answer="the jug"), "answer", "Use the letter 'B'"),
    ("mc-lowercase", record(answer="b"), "answer", "among 'AB'"),
    ("mc-one-option", record(options=["the cup"], answer="A"), "options", "at least two"),
    ("mc-no-options", record(options=...), "options", "at least two"),
    ("numeric-zero", record(answer_type="numeric", answer=0), "answer", "y <= 0"),
    ("numeric-negative", record(answer_type="numeric", answer=-2.5), "answer", "y <= 0"),
    ("numeric-string", record(answer_type="numeric", answer="2.5"), "answer", "finite number"),
    ("numeric-bool", record(answer_type="numeric", answer=True), "answer", "finite number"),
    ("count-fraction", record(answer_type="count", answer=2.5), "answer", "integer >= 0"),
    ("count-negative", record(answer_type="count", answer=-1), "answer", "integer >= 0"),
    ("count-float", record(answer_type="count", answer=3.0), "answer", "integer >= 0"),
    ("text-empty", record(answer_type="text", answer=""), "answer", "non-empty string"),
    ("text-number", record(answer_type="text", answer=4), "answer", "non-empty string"),
    # metadata that drawenv reads: checked here, not at the end of an episode
    (
        "object-without-box",
        record(metadata={"objects": [{"name": "cup", "box": [1, 2, 3, 4]}, {"name": "jug"}]}),
        "metadata.objects[1].box",
        "got nothing (the key is missing)",
    ),
    (
        "object-box-of-3",
        record(metadata={"objects": [{"name": "cup", "box": [1, 2, 3]}]}),
        "metadata.objects[0].box",
        "4 finite numbers",
    ),
    (
        "object-box-strings",
        record(metadata={"objects": [{"name": "cup", "box": ["1", 2, 3, 4]}]}),
        "metadata.objects[0].box",
        "4 finite numbers",
    ),
    (
        "object-without-name",
        record(metadata={"objects": [{"box": [1, 2, 3, 4]}]}),
        "metadata.objects[0].name",
        "a string",
    ),
    (
        "objects-not-list",
        record(metadata={"objects": {"cup": [1, 2, 3, 4]}}),
        "metadata.objects",
        "a list",
    ),
    ("max-turns-string", record(metadata={"max_turns": "x"}), "metadata.max_turns", "integer >= 1"),
    ("max-turns-negative", record(metadata={"max_turns": -5}), "metadata.max_turns", "got -5"),
    ("max-turns-zero", record(metadata={"max_turns": 0}), "metadata.max_turns", "integer >= 1"),
    ("max-turns-bool", record(metadata={"max_turns": True}), "metadata.max_turns", "integer >= 1"),
    ("max-turns-float", record(metadata={"max_turns": 5.0}), "metadata.max_turns", "integer >= 1"),
    (
        "key-drawing-kind",
        record(metadata={"key_drawings": [{"kind": "circle", "index": 1, "label": "c"}]}),
        "metadata.key_drawings[0].kind",
        "'box' or 'line'",
    ),
    (
        "key-drawing-index",
        record(
            metadata={
                "key_drawings": [{"kind": "box", "index": 2, "bbox": [1, 2, 3, 4], "label": "c"}]
            }
        ),
        "metadata.key_drawings[0].index",
        "an image number in 1..1",
    ),
    (
        "key-drawing-line-end",
        record(
            metadata={"key_drawings": [{"kind": "line", "index": 1, "start": [1, 2], "label": "c"}]}
        ),
        "metadata.key_drawings[0].end",
        "2 finite numbers",
    ),
]


@pytest.mark.parametrize(
    "line, field, fragment", [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_record_names_file_line_and_field(tmp_path, line, field, fragment):
    png(tmp_path / "img" / "a.png")
    path = write(tmp_path / "bad.jsonl", [record(id="a"), record(id="b"), "", line])
    with pytest.raises(DrawEnvError) as caught:
        JsonlSource(path)
    message = str(caught.value)
    assert f"{path}, line 4: " in message
    if field is not None:
        assert f"`{field}`" in message
    assert fragment in message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numeric_answer(tmp_path, constant):
    png(tmp_path / "img" / "a.png")
    line = json.dumps(record(answer_type="numeric", answer=1.0)).replace("1.0", constant)
    path = write(tmp_path / "bad.jsonl", [line])
    with pytest.raises(DrawEnvError, match=r"line 1: invalid `answer`: expected a finite number"):
        JsonlSource(path)


def test_duplicate_id_names_both_lines(tmp_path):
    path = write(tmp_path / "dup.jsonl", [record(id="a"), "", record(id="b"), record(id="a")])
    with pytest.raises(DrawEnvError, match=r"line 4: invalid `id`.*'a', already used on line 1"):
        JsonlSource(path)


def test_invalid_utf8(tmp_path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(json.dumps(record()).encode() + b"\n\xff\xfe{}\n")
    with pytest.raises(DrawEnvError, match=r"line 2: invalid UTF-8"):
        JsonlSource(path)


# -- paths are confined to the file's folder -------------------------------------------------


def test_parent_path_escape_is_rejected(tmp_path):
    png(tmp_path / "outside.png")
    (tmp_path / "data").mkdir()
    path = write(tmp_path / "data" / "t.jsonl", [record(images=["../outside.png"])])
    with pytest.raises(DrawEnvError, match=r"line 1: invalid `images\[0\]`: expected a path in"):
        JsonlSource(path)


def test_escape_through_an_inner_folder_is_rejected(tmp_path):
    png(tmp_path / "data" / "img" / "a.png")
    png(tmp_path / "secret.png")
    path = write(tmp_path / "data" / "t.jsonl", [record(images=["img/../../secret.png"])])
    with pytest.raises(DrawEnvError, match=r"`images\[0\]`"):
        JsonlSource(path)


def test_symlink_escape_is_rejected(tmp_path):
    outside = png(tmp_path / "elsewhere" / "x.png")
    (tmp_path / "data" / "img").mkdir(parents=True)
    os.symlink(outside, tmp_path / "data" / "img" / "link.png")
    os.symlink(outside.parent, tmp_path / "data" / "linkdir")
    for image in ("img/link.png", "linkdir/x.png"):
        path = write(tmp_path / "data" / "t.jsonl", [record(images=[image])])
        with pytest.raises(DrawEnvError, match=r"`images\[0\]`.*resolves to .*elsewhere"):
            JsonlSource(path)


def test_symlink_inside_the_folder_is_accepted(tmp_path):
    target = png(tmp_path / "img" / "a.png")
    os.symlink(target, tmp_path / "alias.png")
    source = JsonlSource(write(tmp_path / "t.jsonl", [record(images=["alias.png"])]))
    assert source[0].images == (str(target.resolve()),)


def test_symlink_swapped_after_loading_is_rejected_at_access(tmp_path):
    png(tmp_path / "data" / "img" / "a.png")
    outside = png(tmp_path / "elsewhere.png")
    link = tmp_path / "data" / "img" / "link.png"
    os.symlink(tmp_path / "data" / "img" / "a.png", link)
    source = JsonlSource(write(tmp_path / "data" / "t.jsonl", [record(images=["img/link.png"])]))
    link.unlink()
    os.symlink(outside, link)
    with pytest.raises(DrawEnvError, match="path inside the dataset folder"):
        source[0]


@pytest.mark.parametrize("image", ["/etc/passwd", "C:\\images\\a.png", "\\\\server\\a.png"])
def test_absolute_path_is_rejected(tmp_path, image):
    path = write(tmp_path / "t.jsonl", [record(images=["img/a.png", image])])
    with pytest.raises(DrawEnvError, match=r"line 1: invalid `images\[1\]`: expected a path rel"):
        JsonlSource(path)


# -- lazy images ---------------------------------------------------------------------------


def test_missing_image_fails_at_access_not_at_load(tmp_path):
    path = write(tmp_path / "t.jsonl", [record(id="lost-1", images=["img/gone.png"])])
    source = JsonlSource(path)
    task = source[0]
    with pytest.raises(DrawEnvError) as caught:
        task.load_images()
    message = str(caught.value)
    assert "gone.png" in message and "'lost-1'" in message and "does not exist" in message
    env = DrawSpatialEnv(task=source)
    with pytest.raises(DrawEnvError, match=r"gone\.png"):
        env.reset(seed=0)


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG file that declares ``width x height`` RGB pixels but holds only a few bytes of image
    data: any attempt to decode it fails, so an error about its size proves that only the header
    was read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


@pytest.mark.parametrize(
    "width, height, fragment",
    [
        (20_000, 20_000, "too large to decode"),  # beyond Pillow's own decompression-bomb limit
        (12_000, 12_000, "expected at most max_image_pixels=64,000,000 pixels, got 12000x12000"),
        (8_001, 8_000, "expected at most max_image_pixels=64,000,000 pixels, got 8001x8000"),
    ],
)
def test_an_oversized_image_fails_at_reset_naming_file_and_task(tmp_path, width, height, fragment):
    png_header(tmp_path / "img" / "huge.png", width, height)
    path = write(tmp_path / "t.jsonl", [record(id="huge-1", images=["img/huge.png"])])
    env = DrawSpatialEnv(task=path)
    with pytest.raises(DrawEnvError) as caught:
        env.reset(seed=0)
    message = str(caught.value)
    assert fragment in message
    assert "huge.png" in message and "task 'huge-1'" in message and "max_image_pixels" in message


def test_the_pixel_cap_is_an_env_argument(tmp_path):
    png(tmp_path / "img" / "a.png", (56, 84))  # 4,704 pixels
    path = write(tmp_path / "t.jsonl", [record()])
    with pytest.raises(DrawEnvError, match=r"at most max_image_pixels=4,000 pixels, got 56x84"):
        DrawSpatialEnv(task=path, max_image_pixels=4_000).reset(seed=0)
    obs, _ = DrawSpatialEnv(task=path, max_image_pixels=4_704).reset(seed=0)
    assert len(obs["images"]) == 1
    for bad in (0, 2.5, "64M", None):
        with pytest.raises(DrawEnvError, match="Invalid `max_image_pixels`"):
            DrawSpatialEnv(task=path, max_image_pixels=bad)


def test_an_image_too_narrow_fails_at_reset_naming_the_file(tmp_path):
    png(tmp_path / "img" / "strip.png", (402, 2))
    path = write(tmp_path / "t.jsonl", [record(id="strip-1", images=["img/strip.png"])])
    with pytest.raises(DrawEnvError) as caught:
        DrawSpatialEnv(task=path).reset(seed=0)
    message = str(caught.value)
    assert "strip.png" in message and "task 'strip-1'" in message
    assert "aspect ratio of at most 200, got 402x2" in message and "Crop or pad" in message


def test_no_image_is_opened_until_the_env_asks(tmp_path, monkeypatch):
    png(tmp_path / "img" / "7.png")
    lines = [record(id=f"t{i}", images=[f"img/{i}.png"]) for i in range(2000)]
    path = write(tmp_path / "many.jsonl", lines)  # only image 7 exists
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    source = JsonlSource(path)
    task = source[7]
    assert source.size == 2000 and source[1234].images[0].endswith("1234.png")
    assert opened == []
    assert task.load_images()[0].shape == (84, 56, 3)
    assert len(opened) == 1
