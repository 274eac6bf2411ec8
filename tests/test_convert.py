"""Converters from ViLaSR RL data and VSI-Bench-style exports: option parsing, answer
normalisation, layout errors, and ``convert_file`` round trips into ``JsonlSource``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from drawenv import Answer, DrawEnvError
from drawenv.env import DrawSpatialEnv
from drawenv.tasks.convert import (
    answer_letter,
    answer_number,
    convert_file,
    convert_record,
    from_vilasr,
    from_vsibench,
    split_inline_options,
    strip_option_letters,
)
from drawenv.tasks.jsonl import JsonlSource


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), (10, 120, 30)).save(path)
    return path


# -- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, question, options",
    [
        ("Which is nearer?\nA. chair\nB. table", "Which is nearer?", ("chair", "table")),
        ("Which?\nOptions:\n(A) red\n(B) blue\n(C) green", "Which?", ("red", "blue", "green")),
        ("Which?\nA) left\nB) right\nAnswer with the letter.", "Which?\nAnswer with the letter.",
         ("left", "right")),
        ("Pick one.\nA: 1 m\nB: 2 m", "Pick one.", ("1 m", "2 m")),
        ("How many chairs?", "How many chairs?", ()),
        ("Only one:\nA. chair", "Only one:\nA. chair", ()),  # a single line is not a list
        ("Out of order\nB. x\nA. y", "Out of order\nB. x\nA. y", ()),
        ("Empty\nA.\nB.", "Empty\nA.\nB.", ()),
    ],
)  # fmt: skip
def test_split_inline_options(text, question, options):
    assert split_inline_options(text) == (question, options)


@pytest.mark.parametrize(
    "given, expected",
    [
        (["A. chair", "B. table"], ("chair", "table")),
        (["(A) chair", "(B) table"], ("chair", "table")),
        (["chair", "table"], ("chair", "table")),
        (["B. chair", "A. table"], ("B. chair", "A. table")),  # not lettered in order: kept
    ],
)
def test_strip_option_letters(given, expected):
    assert strip_option_letters(given) == expected


@pytest.mark.parametrize(
    "answer, letter",
    [
        ("B", "B"),
        ("<answer> B </answer>", "B"),
        ("(b)", "B"),
        ("B. table", "B"),
        ("Table", "B"),
        ("<answer>chair</answer>", "A"),
        ("D", None),
        ("sofa", None),
    ],
)
def test_answer_letter(answer, letter):
    assert answer_letter(answer, ("chair", "table", "lamp")) == letter


@pytest.mark.parametrize(
    "answer, number",
    [
        ("3", 3.0),
        ("<answer>2.75</answer>", 2.75),
        ("about 1,250 cm", 1250.0),
        (".5 m", 0.5),
        ("1e3", 1000.0),
        (4, 4.0),
        ("-2", -2.0),
        ("many", None),
        (True, None),
        (float("nan"), None),
    ],
)
def test_answer_number(answer, number):
    assert answer_number(answer) == number


# -- ViLaSR RL data --------------------------------------------------------------------------

VILASR = [
    (
        "mc-inline-options",
        {
            "problem_id": 17,
            "problem": "<image>\nWhich object is closer to the camera?\nA. the sofa\nB. the lamp",
            "images": ["imgs/room.png"],
            "solution": "<answer>B</answer>",
            "problem_type": "multiple choice",
            "data_source": "spar",
        },
        {
            "id": "17",
            "question": "Which object is closer to the camera?",
            "options": ["the sofa", "the lamp"],
            "answer_type": "multiple_choice",
            "answer": "B",
            "images": ["imgs/room.png"],
        },
    ),
    (
        "mc-options-field-text-answer",
        {
            "question": "<image><image>Which frame shows the door?\nA. first\nB. second",
            "image": ["f1.png", "f2.png"],
            "options": ["A. first", "B. second"],
            "answer": "second",
            "question_type": "Multiple Choice",
        },
        {
            "id": "vilasr-0",
            "question": "Which frame shows the door?",
            "options": ["first", "second"],
            "answer": "B",
            "images": ["f1.png", "f2.png"],
        },
    ),
    (
        "numerical-whole-is-count",
        {
            "problem": "<image> How many chairs are in the room?",
            "path": "scene.png",
            "solution": "<answer> 4 </answer>",
            "problem_type": "numerical",
        },
        {"question": "How many chairs are in the room?", "answer_type": "count", "answer": 4},
    ),
    (
        "numerical-zero-is-count",
        {"problem": "Cats?", "images": "a.png", "solution": "0", "problem_type": "numerical"},
        {"answer_type": "count", "answer": 0, "images": ["a.png"]},
    ),
    (
        "numerical-fraction-is-numeric",
        {"problem": "Gap?", "images": ["a.png"], "solution": "1.5", "problem_type": "numerical"},
        {"answer_type": "numeric", "answer": 1.5},
    ),
    (
        "regression-with-units",
        {
            "problem": "<image>How far apart are the bed and the desk (in metres)?",
            "images": ["a.png"],
            "solution": "<answer>2.3 meters</answer>",
            "problem_type": "regression",
        },
        {"answer_type": "numeric", "answer": 2.3},
    ),
    (
        "regression-whole-stays-numeric",
        {"problem": "Size?", "images": ["a.png"], "solution": "3", "problem_type": "regression"},
        {"answer_type": "numeric", "answer": 3.0},
    ),
    (
        "free-form",
        {"problem": "What colour is the mug?", "images": ["a.png"], "solution":
         "<answer> Red </answer>", "problem_type": "free-form"},
        {"answer_type": "text", "answer": "Red", "options": []},
    ),
    (
        "no-type-with-options",
        {"problem": "Nearer?\nA. x\nB. y", "images": ["a.png"], "answer": "A"},
        {"answer_type": "multiple_choice", "answer": "A", "options": ["x", "y"]},
    ),
    (
        "no-type-number",
        {"problem": "Height?", "images": ["a.png"], "answer": "1.8"},
        {"answer_type": "numeric", "answer": 1.8},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "item, expected", [case[1:] for case in VILASR], ids=[case[0] for case in VILASR]
)
def test_from_vilasr(item, expected):
    record = from_vilasr(item)
    for key, value in expected.items():
        assert record[key] == value, key
    assert record["metadata"]["source_format"] == "vilasr"
    assert "<image>" not in record["question"]


def test_vilasr_keeps_provenance_in_metadata():
    item = dict(VILASR[0][1], process="<think>...</think>", objects=[1])
    metadata = from_vilasr(item)["metadata"]
    assert metadata["data_source"] == "spar" and metadata["question_type"] == "multiple choice"
    # Unknown keys go under "extra", never over drawenv's own metadata keys such as "objects".
    assert metadata["extra"] == {"process": "<think>...</think>", "objects": [1]}
    assert "objects" not in metadata


# -- VSI-Bench-style exports -----------------------------------------------------------------

VSI = [
    (
        "object_counting",
        {"id": 5, "question": "How many chair(s) are in this room?", "options": None,
         "ground_truth": "4", "question_type": "object_counting", "frames": ["s/0.png"]},
        {"id": "5", "answer_type": "count", "answer": 4, "options": []},
    ),
    (
        "object_abs_distance",
        {"question": "Distance between the bed and the sofa (in meters)?", "options": None,
         "ground_truth": "1.7", "question_type": "object_abs_distance", "frames": ["s/0.png"]},
        {"answer_type": "numeric", "answer": 1.7},
    ),
    (
        "room_size_estimation",
        {"question": "Room size in square meters?", "ground_truth": "21",
         "question_type": "room_size_estimation", "images": ["s/0.png", "s/1.png"]},
        {"answer_type": "numeric", "answer": 21.0, "images": ["s/0.png", "s/1.png"]},
    ),
    (
        "object_size_estimation",
        {"question": "Length of the table (cm)?", "ground_truth": "120",
         "question_type": "object_size_estimation", "frames": ["s/0.png"]},
        {"answer_type": "numeric", "answer": 120.0},
    ),
    (
        "rel_direction-letter",
        {"question": "Standing by the bed facing the tv, is the lamp left or right?",
         "options": ["A. left", "B. right"], "ground_truth": "B",
         "question_type": "object_rel_direction_hard", "frames": ["s/0.png"]},
        {"answer_type": "multiple_choice", "answer": "B", "options": ["left", "right"]},
    ),
    (
        "rel_distance-option-text",
        {"question": "Which is closest to the sink?", "options": ["A. stove", "B. fridge",
         "C. table"], "ground_truth": "fridge", "question_type": "object_rel_distance",
         "frames": ["s/0.png"]},
        {"answer": "B", "options": ["stove", "fridge", "table"]},
    ),
    (
        "appearance-order",
        {"question": "Order of first appearance?", "options": ["A. bed, lamp", "B. lamp, bed"],
         "ground_truth": "A. bed, lamp", "question_type": "obj_appearance_order",
         "frames": ["s/0.png", "s/1.png"], "scene_name": "scene0001", "dataset": "scannet"},
        {"answer": "A", "metadata": {"source_format": "vsibench",
         "question_type": "obj_appearance_order", "scene_name": "scene0001", "dataset": "scannet"}},
    ),
    (
        "route_planning",
        {"question": "Which turn?", "options": ["A. Turn left", "B. Turn right", "C. Go forward"],
         "ground_truth": "C", "question_type": "route_planning", "frames": ["s/0.png"]},
        {"answer_type": "multiple_choice", "answer": "C"},
    ),
    (
        "unknown-type-inferred",
        {"question": "Which?", "options": ["A. a", "B. b"], "ground_truth": "A",
         "question_type": "new_kind", "frames": ["s/0.png"]},
        {"answer_type": "multiple_choice", "answer": "A"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "item, expected", [case[1:] for case in VSI], ids=[case[0] for case in VSI]
)
def test_from_vsibench(item, expected):
    record = from_vsibench(item)
    for key, value in expected.items():
        assert record[key] == value, key


# -- errors ----------------------------------------------------------------------------------

ERRORS = [
    ("unknown-layout", "auto", {"prompt": "x", "label": 1}, "unknown record layout"),
    ("vilasr-missing-images", "vilasr", {"problem": "q", "solution": "1"},
     "missing `images` or `image` or `path`"),
    ("vilasr-missing-answer", "vilasr", {"problem": "q", "images": ["a.png"]},
     "missing `answer` or `solution`"),
    ("vsibench-missing-type", "vsibench", {"question": "q", "ground_truth": "1"},
     "missing `question_type`"),
    ("vsibench-video-only", "vsibench", {"question": "q", "ground_truth": "2",
     "question_type": "object_counting", "scene_name": "scene0001", "dataset": "scannet"},
     "Extract frames first"),
    ("video-file", "auto", {"problem": "q", "path": "clip.MP4", "solution": "2",
     "problem_type": "numerical"}, "extract frames first"),
    ("mc-without-options", "vilasr", {"problem": "Which?", "images": ["a.png"], "solution": "B",
     "problem_type": "multiple choice"}, "`options`"),
    ("mc-answer-not-an-option", "vsibench", {"question": "Which?", "options": ["A. x", "B. y"],
     "ground_truth": "z", "question_type": "route_planning", "frames": ["a.png"]}, "`answer`"),
    ("numeric-not-positive", "vsibench", {"question": "d?", "ground_truth": "0",
     "question_type": "object_abs_distance", "frames": ["a.png"]}, "y <= 0"),
    ("count-fraction", "vsibench", {"question": "n?", "ground_truth": "2.5",
     "question_type": "object_counting", "frames": ["a.png"]}, "whole number"),
    ("no-number", "vilasr", {"problem": "n?", "images": ["a.png"], "solution": "several",
     "problem_type": "regression"}, "expected a number"),
    ("bad-problem-type", "vilasr", {"problem": "q", "images": ["a.png"], "solution": "A",
     "problem_type": "multiple choise"}, "Did you mean 'multiple choice'?"),
    ("not-an-object", "auto", ["a", "b"], "expected a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(
    "fmt, item, fragment", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS]
)
def test_conversion_errors_are_clear(fmt, item, fragment):
    with pytest.raises(DrawEnvError) as caught:
        convert_record(item, fmt, index=3)
    assert "record 3" in str(caught.value) and fragment in str(caught.value)


def test_auto_detects_each_layout():
    vsi = convert_record(VSI[0][1])
    vilasr = convert_record(VILASR[0][1])
    assert vsi["metadata"]["source_format"] == "vsibench"
    assert vilasr["metadata"]["source_format"] == "vilasr"
    with pytest.raises(DrawEnvError, match="Invalid `fmt`"):
        convert_record(VSI[0][1], "vsi")


# -- whole files -----------------------------------------------------------------------------


def test_vilasr_json_list_round_trip_plays_in_the_env(tmp_path):
    png(tmp_path / "data" / "imgs" / "room.png")
    png(tmp_path / "data" / "imgs" / "hall.png")
    items = [
        VILASR[0][1],
        {
            "problem_id": 18,
            "problem": "<image>How many doors?",
            "images": ["imgs/hall.png"],
            "solution": "<answer>2</answer>",
            "problem_type": "numerical",
        },
    ]
    src = tmp_path / "data" / "vilasr_rl.json"
    src.write_text(json.dumps(items, indent=2), encoding="utf-8")
    dst = tmp_path / "data" / "tasks.jsonl"
    assert convert_file(src, dst, "vilasr") == 2
    lines = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [line["images"] for line in lines] == [["imgs/room.png"], ["imgs/hall.png"]]
    source = JsonlSource(dst)
    assert source.size == 2 and source[1].answer == 2 and source[1].answer_type == "count"
    for index in range(2):
        env = DrawSpatialEnv(task=source)
        env.reset(seed=0, options={"index": index})
        _, reward, terminated, _, _ = env.step(Answer(str(source[index].answer)))
        assert terminated and reward == 1.0


def test_vsibench_jsonl_paths_are_rewritten_for_a_parent_folder(tmp_path):
    png(tmp_path / "vsi" / "scene0001" / "000.png")
    png(tmp_path / "vsi" / "scene0001" / "001.png")
    item = dict(VSI[6][1], frames=["scene0001/000.png", "scene0001/001.png"])
    src = tmp_path / "vsi" / "export.jsonl"
    src.write_text("\n" + json.dumps(item) + "\n\n", encoding="utf-8")
    dst = tmp_path / "all.jsonl"
    assert convert_file(src, dst) == 1
    assert json.loads(dst.read_text())["images"] == [
        "vsi/scene0001/000.png",
        "vsi/scene0001/001.png",
    ]
    task = JsonlSource(dst)[0]
    assert task.answer == "A" and len(task.load_images()) == 2


def test_image_root_and_absolute_source_paths(tmp_path):
    frame = png(tmp_path / "frames" / "a.png")
    items = [
        {"problem": "n?", "images": ["a.png"], "solution": "3", "problem_type": "numerical"},
        {"problem": "m?", "images": [str(frame)], "solution": "2", "problem_type": "numerical"},
    ]
    src = tmp_path / "meta" / "rl.jsonl"
    src.parent.mkdir()
    src.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    dst = tmp_path / "tasks.jsonl"
    convert_file(src, dst, image_root=tmp_path / "frames")
    assert [r["images"] for r in map(json.loads, dst.read_text().splitlines())] == [
        ["frames/a.png"],
        ["frames/a.png"],
    ]


def test_destination_must_contain_the_images_and_nothing_is_left_behind(tmp_path):
    png(tmp_path / "imgs" / "a.png")
    src = tmp_path / "rl.jsonl"
    items = [
        {"problem": "n?", "images": ["imgs/a.png"], "solution": "3", "problem_type": "numerical"}
    ]
    src.write_text(json.dumps(items[0]) + "\n", encoding="utf-8")
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "tasks.jsonl"
    with pytest.raises(DrawEnvError, match=r"line 1: invalid `images`.*destination's folder"):
        convert_file(src, dst)
    assert list((tmp_path / "out").iterdir()) == []


def test_repeated_ids_are_made_unique(tmp_path):
    png(tmp_path / "a.png")
    item = {"problem_id": 1, "problem": "n?", "images": "a.png", "solution": "3"}
    src = tmp_path / "rl.json"
    src.write_text(json.dumps([item, item]), encoding="utf-8")
    convert_file(src, tmp_path / "t.jsonl")
    source = JsonlSource(tmp_path / "t.jsonl")
    assert [source[0].id, source[1].id] == ["1", "1-1"]
    assert source[1].metadata["source_id"] == "1"


def test_conversion_error_names_the_source_line(tmp_path):
    good = {"problem": "n?", "images": "a.png", "solution": "3"}
    src = tmp_path / "rl.jsonl"
    src.write_text(json.dumps(good) + "\n\n" + json.dumps({"foo": 1}) + "\n", encoding="utf-8")
    with pytest.raises(DrawEnvError, match=r"rl\.jsonl, line 3: unknown record layout"):
        convert_file(src, tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize(
    "dst, fragment", [("t.json", "ending in '.jsonl'"), ("rl.jsonl", "other than `src`")]
)
def test_bad_destination(tmp_path, dst, fragment):
    src = tmp_path / "rl.jsonl"
    src.write_text(json.dumps({"problem": "n?", "images": "a.png", "solution": "3"}) + "\n")
    with pytest.raises(DrawEnvError, match=fragment):
        convert_file(src, tmp_path / dst)
