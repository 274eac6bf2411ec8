"""ViLaSR's released RL and evaluation files and VSI-Bench items, converted: records shaped as
those files shape them (``image_path`` lists, ``question_type`` / ``problem_type``, mazes with a
``grid_size``, ``original_question_type``), images confined to the dataset root, one CLI call."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from drawenv import DrawEnvError
from drawenv.tasks.convert import convert_file, convert_record
from drawenv.tasks.jsonl import JsonlSource

DRAWENV = Path(sys.executable).with_name("drawenv")


def png(path: Path, size: tuple[int, int] = (56, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 200, 200)).save(path)
    return path


# The RL file (vilasr_rl_data.jsonl) as their dataset loader reads it: question, answer,
# image_path (a list), question_type, data_type, options (multiple choice), grid_size (mazes).
RL_MAZE = {
    "question": "Starting at S, which sequence of moves reaches E?",
    "answer": "B",
    "image_path": ["maze/maze_0001.png"],
    "question_type": "multiple choice",
    "data_type": "maze",
    "options": ["A. up, right", "B. right, down", "C. down, down", "D. left, up"],
    "grid_size": 5,
}
RL_VIDEO = {
    "question": "How many chairs are in the room?",
    "answer": "4",
    "image_path": ["video/scene7/00.png", "video/scene7/01.png"],
    "question_type": "numerical",
    "data_type": "video",
}
RL_NEGATIVE = {
    "question": "What is the x offset of the cup from the plate, in metres?",
    "answer": "-0.35",
    "image_path": ["vqa/cup.png"],
    "question_type": "regression",
    "data_type": "vqa",
}
# The evaluation files (ViLaSR-eval) as eval/infer.py reads them: problem_type, and for VSI-Bench
# the benchmark's own type in original_question_type.
EVAL_VSI = {
    "question": "What is the length of the longest dimension of the sofa, in centimeters?",
    "answer": "185",
    "image_path": ["vsi_bench/scene0011/00.png", "vsi_bench/scene0011/01.png"],
    "problem_type": "regression",
    "original_question_type": "object_size_estimation",
    "data_type": "video",
}
# VSI-Bench's own items, with the frames a user extracted under image_path.
VSI_ITEM = {
    "id": 12,
    "dataset": "scannet",
    "scene_name": "scene0011",
    "question_type": "object_rel_direction_medium",
    "question": "If I am standing by the sofa and facing the tv, is the lamp to my left or right?",
    "ground_truth": "B",
    "options": ["A. left", "B. right"],
    "image_path": ["vsi_bench/scene0011/00.png", "vsi_bench/scene0011/01.png"],
}


IMAGES = (
    "maze/maze_0001.png",
    "video/scene7/00.png",
    "video/scene7/01.png",
    "vqa/cup.png",
    "vsi_bench/scene0011/00.png",
    "vsi_bench/scene0011/01.png",
)


def _dataset(root: Path) -> None:
    for rel in IMAGES:
        png(root / rel)


def test_rl_maze_keeps_grid_size_as_the_turn_budget():
    record = convert_record(RL_MAZE)
    assert record["images"] == ["maze/maze_0001.png"]
    assert record["answer_type"] == "multiple_choice" and record["answer"] == "B"
    assert record["options"] == ["up, right", "right, down", "down, down", "left, up"]
    assert record["metadata"]["max_turns"] == 20
    vilasr = record["metadata"]["vilasr"]
    assert vilasr["grid_size"] == 5 and vilasr["options"] == RL_MAZE["options"]
    assert vilasr["question"] == RL_MAZE["question"] and vilasr["answer"] == "B"
    assert vilasr["question_type"] == "multiple choice" and vilasr["data_type"] == "maze"


def test_rl_video_and_eval_types():
    video = convert_record(RL_VIDEO)
    assert video["answer_type"] == "count" and video["answer"] == 4
    assert "max_turns" not in video["metadata"] and video["metadata"]["vilasr"]["grid_size"] is None
    evaluation = convert_record(EVAL_VSI)
    assert evaluation["answer_type"] == "numeric" and evaluation["answer"] == 185.0
    assert evaluation["metadata"]["original_question_type"] == "object_size_estimation"
    assert evaluation["metadata"]["question_type"] == "regression"


def test_a_negative_regression_truth_is_kept():
    record = convert_record(RL_NEGATIVE)
    assert record["answer_type"] == "text" and record["answer"] == "-0.35"
    assert record["metadata"]["vilasr"]["answer"] == "-0.35"
    assert record["metadata"]["vilasr"]["question_type"] == "regression"


def test_vsibench_question_type_decides_the_answer_type():
    record = convert_record(VSI_ITEM)
    assert record["answer_type"] == "multiple_choice" and record["answer"] == "B"
    assert record["images"] == VSI_ITEM["image_path"]
    assert record["metadata"]["question_type"] == "object_rel_direction_medium"
    counting = dict(VSI_ITEM, question_type="object_counting", ground_truth="3", options=None)
    assert convert_record(counting)["answer_type"] == "count"


def test_whole_files_convert_and_load(tmp_path):
    _dataset(tmp_path)
    rl = tmp_path / "rl" / "vilasr_rl_data.jsonl"
    rl.parent.mkdir()
    rl.write_text("".join(json.dumps(i) + "\n" for i in (RL_MAZE, RL_VIDEO, RL_NEGATIVE)))
    dst = tmp_path / "rl_tasks.jsonl"
    assert convert_file(rl, dst, "vilasr", image_root=tmp_path) == 3
    source = JsonlSource(dst)
    assert [len(source[i].images) for i in range(3)] == [1, 2, 1]
    assert source[0].metadata["max_turns"] == 20
    assert all(Path(p).is_file() for i in range(3) for p in source[i].images)
    # The evaluation files are one JSON list.
    ev = tmp_path / "vsi_bench.json"
    ev.write_text(json.dumps([EVAL_VSI, VSI_ITEM]))
    assert convert_file(ev, tmp_path / "vsi_tasks.jsonl") == 2


@pytest.mark.parametrize(
    "image", ["../outside.png", "maze/../../outside.png", "/etc/passwd", "link/outside.png"]
)
def test_paths_stay_inside_the_dataset_root(tmp_path, image):
    root = tmp_path / "data"
    png(tmp_path / "outside.png")
    _dataset(root)
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    src = root / "rl.jsonl"
    src.write_text(json.dumps(dict(RL_VIDEO, image_path=[image])) + "\n")
    with pytest.raises(DrawEnvError, match=r"rl\.jsonl, line 1: invalid `images"):
        convert_file(src, root / "tasks.jsonl")
    assert not (root / "tasks.jsonl").exists()


def test_convert_from_the_command_line(tmp_path):
    _dataset(tmp_path)
    src = tmp_path / "vilasr_rl_data.jsonl"
    src.write_text(json.dumps(RL_MAZE) + "\n" + json.dumps(RL_VIDEO) + "\n")
    run = [str(DRAWENV), "convert", str(src), str(tmp_path / "tasks.jsonl"), "--format", "vilasr"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote 2 task records" in done.stdout
    assert JsonlSource(tmp_path / "tasks.jsonl").size == 2
    bad = subprocess.run([*run[:-1], "vilasr2"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--format" in bad.stderr and "'vilasr'" in bad.stderr


def test_a_converted_negative_truth_is_scored_by_mra_under_the_vilasr_env(tmp_path):
    from drawenv.vilasr import ViLaSREnv

    png(tmp_path / "vqa" / "cup.png", (112, 112))
    record = convert_record(RL_NEGATIVE)
    record["images"] = [str(tmp_path / "vqa" / "cup.png")]
    answer = "<think>t</think> Action: Answer\n<answer>{}</answer>".format
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # drawenv's own prompts: fine here
        env = ViLaSREnv(task=[record])
    for given, accuracy in (("-0.35", 1.0), ("-0.3", 0.8), ("0.35", 0.0)):
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(answer(given))
        assert terminated and info["reward_terms"]["accuracy"] == pytest.approx(accuracy)
