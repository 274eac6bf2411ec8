"""DrawSpatial-ViLaSR-v0 against ViLaSR's own rollout, case by case.

Each line of ``tests/data/vilasr_reward_reference.jsonl`` has, under ``rollout``, what ViLaSR's
RL rollout made of the case's turns (repository AntResearchNLP/ViLaSR at 61669c0: its
``process_single_response`` from ``verl/workers/rollout/vllm_rollout/vllm_rollout_spmd_video.py``
and the drawing of ``verl/utils/edit_image_video.py``, driven by a one-sample copy of its
multi-turn loop with ``num_llm_calls_available`` = the number of turns, on
``tests/data/vilasr_rollout_image.png``): how many turns it took, the md5 of every image it
held at the end, the md5 of every feedback message (``None`` for a turn it discarded), and the
reward its ``gcot_compute_score`` paid on the resulting sequence. ``vilasr_prompt_reference.json``
holds the md5 of the first messages its dataset code builds for five items.

The texts are ViLaSR's and stay out of this repository, so the comparisons of feedback and
prompts run only with a local checkout: set ``DRAWENV_VILASR_REPO`` to its folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import drawenv
from drawenv import DrawEnvError
from drawenv.tasks.convert import convert_record
from drawenv.tasks.record import TaskRecord
from drawenv.vilasr import PALETTE, ViLaSREnv, read_vilasr_prompts

DATA = Path(__file__).parent / "data"
CASES = [
    json.loads(line)
    for line in (DATA / "vilasr_reward_reference.jsonl").read_text(encoding="utf-8").splitlines()
]
BASE = np.asarray(Image.open(DATA / "vilasr_rollout_image.png").convert("RGB"))
REPO = os.environ.get("DRAWENV_VILASR_REPO")
needs_repo = pytest.mark.skipif(not REPO, reason="set DRAWENV_VILASR_REPO to a ViLaSR checkout")
VISION = "<|vision_start|><|image_pad|><|vision_end|>"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _record(case: dict) -> TaskRecord:
    # Truths such as "-3.5" or "sofa" are ViLaSR's to hold: they travel in metadata["vilasr"].
    given = {"answer": case["truth"], "question_type": case["question_type"], "data_type": "vqa"}
    return TaskRecord(
        id=case["id"],
        images=(BASE,),
        question="Q",
        answer_type="text",
        answer="x",
        metadata={"vilasr": given},
    )


def _play(case: dict, **kwargs):
    env = ViLaSREnv(task=[_record(case)], max_turns=len(case["turns"]), **kwargs)
    env.reset(seed=0)
    played, feedback = 0, []
    for turn in case["turns"]:
        obs, reward, terminated, truncated, info = env.step(turn)
        played += 1
        if info["new_image_indices"]:
            body = "".join(
                VISION if p["type"] == "image" else p["text"] for p in info["vilasr_content"]
            )
            chat = f"<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n"
            feedback.append(_md5(chat.encode()))
        elif not (terminated or truncated):
            feedback.append(None)  # a discarded turn
        if terminated or truncated:
            break
    return played, obs, reward, info, feedback


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_the_reference_covers_the_rollout_rules():
    endings = {case["rollout"]["ending"] for case in CASES}
    # not_selected: past the image cap the rollout stops calling the model
    assert endings == {"last_call", "answer", "ToolError", "IndexError", "not_selected"}
    assert sum(None in case["rollout"]["feedback_md5"] for case in CASES) == 6  # discarded turns
    assert max(len(case["rollout"]["images"]) for case in CASES) == 43


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_each_case_plays_as_vilasr_rolls_it_out(case):
    played, obs, reward, info, _ = _play(case)
    expected = case["rollout"]
    assert played == expected["played"]
    images = [_md5(np.ascontiguousarray(image).tobytes()) for image in obs["images"]]
    assert images == expected["images"]  # every pixel of every image
    assert reward == pytest.approx(expected["reward"]["overall"], abs=1e-6)
    for name in ("accuracy", "format", "reflection"):
        assert info["reward_terms"][name] == pytest.approx(expected["reward"][name], abs=1e-6)


def test_zero_mismatches_over_the_whole_reference():
    mismatches = []
    for case in CASES:
        played, obs, reward, info, _ = _play(case)
        expected = case["rollout"]
        images = [_md5(np.ascontiguousarray(image).tobytes()) for image in obs["images"]]
        got = {"overall": reward, **{k: info["reward_terms"][k] for k in expected["reward"]
                                     if k != "overall"}}  # fmt: skip
        if (
            played != expected["played"]
            or images != expected["images"]
            or any(abs(got[k] - expected["reward"][k]) > 1e-6 for k in got)
        ):
            mismatches.append(case["id"])
    assert mismatches == []


@needs_repo
def test_feedback_is_byte_identical_with_the_repository():
    for case in CASES:
        *_, feedback = _play(case, vilasr_repo=REPO)
        assert feedback == case["rollout"]["feedback_md5"], case["id"]


@needs_repo
def test_first_messages_are_byte_identical_with_the_repository(tmp_path):
    reference = json.loads((DATA / "vilasr_prompt_reference.json").read_text(encoding="utf-8"))
    Image.fromarray(BASE).save(tmp_path / "img.png")
    for entry in reference:
        record = convert_record(entry["item"])
        record["images"] = [str(tmp_path / "img.png")] * len(record["images"])
        env = ViLaSREnv(task=[record], vilasr_repo=REPO)
        _, info = env.reset(seed=0)
        assert _md5(info["system_prompt"].encode()) == entry["system_md5"]
        parts = [
            {"type": "image"}
            if p["type"] == "image"
            else {"type": "text", "md5": _md5(p["text"].encode())}
            for p in info["vilasr_content"]
        ]
        assert parts == entry["parts"], entry["item"]["question"]


# -- prompts ---------------------------------------------------------------------------------


def _fake_repo(root: Path) -> Path:
    """A stand-in with ViLaSR's layout and made-up texts; running it would fail loudly."""
    (root / "verl/utils").mkdir(parents=True)
    (root / "verl/workers/rollout/vllm_rollout").mkdir(parents=True)
    (root / "verl/utils/dataset_multimodal.py").write_text(
        'raise SystemExit("never run")\n'
        'SYSTEM_PROMPT = "SYS {width}x{height} {{json}}"\n'
        'PROMPT_TEMPLATE = "<<{question}>>"\n'
        'TYPE_TEMPLATE = {"multiple choice": " [letter]", "numerical": " [n1]",'
        ' "numerical": " [n]"}\n'
        "class D:\n"
        "    def construct_video_prompt(self, item, size):\n"
        '        prompt = "FRAMES:" + item["q"]\n'
        '        x = f"IMG {idx+1} {width} {height}|"\n'
        "    def construct_maze_vqa_prompt(self, item, size):\n"
        '        prompt = prompt + "|the index of the given image is one" + TYPE_TEMPLATE[k]\n'
    )
    (root / "verl/workers/rollout/vllm_rollout/vllm_rollout_spmd_video.py").write_text(
        "import vllm\n"
        "def _multi_turn_generate(self):\n"
        '    intermediate_prompt = "MORE {current_image_idx} {width} {height}"\n'
        '    final_prompt = "LAST {current_image_idx} {width} {height}"\n'
    )
    return root


def test_templates_are_read_without_running_the_files(tmp_path):
    prompts = read_vilasr_prompts(_fake_repo(tmp_path / "vilasr"))
    assert prompts.system.format(width=5, height=6) == "SYS 5x6 {json}"
    assert prompts.type_suffix == {"multiple choice": " [letter]", "numerical": " [n]"}
    assert prompts.video_intro == "FRAMES:"
    assert prompts.single_image == "|the index of the given image is one"
    assert prompts.image_line.format(index=2, width=3, height=4) == "IMG 2 3 4|"
    assert prompts.intermediate.startswith("MORE") and prompts.final.startswith("LAST")


def test_the_env_speaks_the_repository_texts(tmp_path):
    repo = _fake_repo(tmp_path / "vilasr")
    record = {"id": "a", "images": [BASE], "question": "Which?", "answer_type": "multiple_choice",
              "answer": "B", "options": ["x", "y"]}  # fmt: skip
    env = gym.make(drawenv.VILASR_ENV_ID, task=[record], vilasr_repo=str(repo))
    obs, info = env.reset(seed=0)
    assert info["system_prompt"] == "SYS 112x112 {json}"
    assert obs["text"] == "<<Which?\nA. x\nB. y|the index of the given image is one [letter]>>"
    box = '```json\n[{"index": 1, "bbox_2d": [1, 1, 9, 9], "label": "a"}]\n```'
    obs, *_ = env.step(f"<think>t</think> Action: Object Mapper\n{box}")
    # the one-image path: the intermediate text even when the next call is the last
    assert obs["text"] == "\nMORE 2 112 112\n"
    multi = [{"index": 1, "bbox_2d": [1, 1, 9, 9], "label": "b"},
             {"index": 2, "bbox_2d": [1, 1, 9, 9], "label": "c"}]  # fmt: skip
    env = gym.make(drawenv.VILASR_ENV_ID, task=[record], vilasr_repo=str(repo), max_turns=3)
    env.reset(seed=0)
    env.step(f"<think>t</think> Action: Object Mapper\n{box}")
    obs, *_ = env.step(f"<think>t</think> Action: Object Mapper\n```json\n{json.dumps(multi)}\n```")
    # several images: lines for all but the last; the last call comes next, so the final text
    assert obs["text"] == "IMG 3 112 112|LAST 4 112 112\n\n"


def test_without_the_repository_drawenv_prompts_and_one_warning(monkeypatch):
    import drawenv.vilasr as module

    monkeypatch.setattr(module, "_warned_own_prompts", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ViLaSREnv(task="counting")
        ViLaSREnv(task="counting")
    assert [str(w.message)[:40] for w in caught] == ["DrawSpatial-ViLaSR-v0 without `vilasr_re"]
    obs, info = ViLaSREnv(task="counting").reset(seed=0)
    assert obs["text"].startswith("The index of the given image is 1")
    assert info["prompt_source"] == "drawenv"


def test_a_missing_repository_is_a_clear_error(tmp_path):
    with pytest.raises(DrawEnvError, match="vilasr_repo"):
        ViLaSREnv(task="counting", vilasr_repo=tmp_path)
    with pytest.raises(DrawEnvError, match="`invalid_policy`"):
        ViLaSREnv(task="counting", invalid_policy="terminate")


# -- episode rules ---------------------------------------------------------------------------

DRAW = (
    "<think>t</think> Action: Object Mapper\n```json\n"
    '[{"index": 1, "bbox_2d": [%d, 10, 40, 40], "label": "a"}]\n```'
)


def _task(**vilasr) -> dict:
    given = {"answer": "2", "question_type": "numerical", **vilasr}
    return {"id": "t", "images": [BASE], "question": "How many?", "answer_type": "count",
            "answer": 2, "metadata": {"vilasr": given}}  # fmt: skip


def test_ten_calls_and_twenty_for_a_maze():
    for vilasr, calls in (({}, 10), ({"grid_size": 5}, 20)):
        env = ViLaSREnv(task=[_task(**vilasr)])
        env.reset(seed=0)
        for turn in range(1, calls + 1):
            _, reward, terminated, truncated, info = env.step(DRAW % turn)
            if turn < calls:
                assert not (terminated or truncated) and info["new_image_indices"] == [turn + 1]
        # the last call is taken as it is: not drawn, and scored (no answer: format 0)
        assert truncated and not terminated and info["termination"] == "max_turns"
        assert info["new_image_indices"] == [] and reward == 0.0


def test_an_invalid_drawing_ends_the_episode_and_is_still_paid():
    env = ViLaSREnv(task=[_task()])
    env.reset(seed=0)
    # No drawable item; the first number of the turn, 2, is the answer ViLaSR's reward reads.
    _, reward, terminated, _, info = env.step("<think>I see 2 cups</think> Action: Object Mapper")
    assert terminated and info["termination"] == "invalid_action"
    assert info["reward_terms"]["accuracy"] == 1.0 and reward == 0.5


def test_a_turn_the_rollout_cannot_process_is_discarded():
    env = ViLaSREnv(task=[_task()], max_turns=3)
    obs, _ = env.reset(seed=0)
    before = obs["text"]
    obs, _, terminated, truncated, info = env.step(
        "<think>t</think> Action: Object Mapper\n```json\n"
        '[{"index": "1", "bbox_2d": [1, 2, 3, 4], "label": "a"}]\n```'
    )
    assert not (terminated or truncated) and obs["text"] == before and len(obs["images"]) == 1
    assert "discarded" in info["errors"][0]
    _, reward, terminated, *_ = env.step("<think>t</think> Action: Answer\n<answer>2</answer>")
    assert terminated and reward == 1.0  # the discarded turn is not in the scored dialog


def _white(size: int = 112) -> dict:
    white = np.full((size, size, 3), 255, np.uint8)
    return {"id": "w", "images": [white], "question": "Q?", "answer_type": "count", "answer": 1}


def _draw(env, items: list[dict]) -> np.ndarray:
    text = f"<think>t</think> Action: Object Mapper\n```json\n{json.dumps(items)}\n```"
    obs, *_ = env.step(text)
    return np.asarray(obs["images"][-1])


def test_drawing_width_palette_and_labels():
    env = ViLaSREnv(task=[_white()])
    env.reset(seed=0)
    image = _draw(env, [{"index": 1, "bbox_2d": [20, 20, 60, 60], "label": ""},
                        {"index": 1, "bbox_2d": [70, 20, 100, 60], "label": "x"}])  # fmt: skip
    assert PALETTE[:3] == ("red", "green", "blue")
    assert tuple(image[40, 20]) == (255, 0, 0) and tuple(image[40, 23]) == (255, 0, 0)  # width 4
    assert tuple(image[40, 24]) == (255, 255, 255)
    assert tuple(image[40, 70]) == (0, 128, 0)  # the second box: PIL's "green"
    # the label "x" sits at (x1 + 8, y1 + 6): green ink there, none left of x1 + 8
    patch = image[26:40, 78:90]
    assert (patch != 255).any() and (image[26:40, 74:78] == 255).all()


def test_drawing_on_the_indexed_image_keeps_a_replaced_box():
    env = ViLaSREnv(task=[_white()])
    env.reset(seed=0)
    _draw(env, [{"index": 1, "bbox_2d": [10, 10, 50, 50], "label": ""}])
    # the same label again, moved, on image 2 (which shows the first box): both stay visible
    image = _draw(env, [{"index": 2, "bbox_2d": [60, 60, 100, 100], "label": ""}])
    assert tuple(image[30, 10]) == (255, 0, 0) and tuple(image[80, 60]) == (255, 0, 0)
    # on image 1 the label's old box is replaced: only the new one is drawn
    image = _draw(env, [{"index": 1, "bbox_2d": [60, 60, 100, 100], "label": ""}])
    assert tuple(image[30, 10]) == (255, 255, 255) and tuple(image[80, 60]) == (255, 0, 0)


def test_boxes_are_drawn_before_lines():
    env = ViLaSREnv(task=[_white()])
    env.reset(seed=0)
    items = [{"index": 1, "start_point_2d": [0, 40], "end_point_2d": [111, 40], "label": "l"},
             {"index": 1, "bbox_2d": [50, 20, 90, 60], "label": ""}]  # fmt: skip
    image = _draw(env, items)
    assert tuple(image[40, 51]) == (0, 0, 0)  # the black line crosses over the red edge
    assert tuple(image[21, 70]) == (255, 0, 0)


def test_the_token_budget_counts_the_template_and_256_per_image():
    # Every text counts 1000 tokens: a drawing turn needs 1000 (the turn) + 1000 (the feedback
    # template) + 256 (the image) = 2256. After five turns 11280 are spent; the sixth turn fits
    # (12280 < 13312) but its image does not (13536): the episode ends there, the turn kept.
    env = ViLaSREnv(task=[_task()], count_tokens=lambda text: 1000)
    env.reset(seed=0)
    for turn in range(1, 6):
        obs, _, terminated, truncated, info = env.step(DRAW % turn)
        assert not (terminated or truncated) and len(obs["images"]) == turn + 1
    obs, reward, terminated, truncated, info = env.step(DRAW % 6)
    assert truncated and info["termination"] == "max_tokens" and len(obs["images"]) == 6
    assert info["reward_terms"]["format"] == 0.0  # the last turn holds no answer
    env = ViLaSREnv(task=[_task()], count_tokens=lambda text: 13312)
    env.reset(seed=0)
    *_, truncated, info = env.step(DRAW % 1)  # the turn alone exhausts the budget
    assert truncated and info["termination"] == "max_tokens"


def test_a_turn_cut_off_at_1024_tokens_ends_the_episode_and_is_paid():
    env = ViLaSREnv(task=[_task()], count_tokens=lambda text: len(text.split()))
    env.reset(seed=0)
    long = "<think>" + "word " * 1030 + "I count 2 mugs</think> Action: Object Mapper"
    _, reward, _, truncated, info = env.step(long)
    assert truncated and info["termination"] == "max_tokens" and info["new_image_indices"] == []
    assert info["reward_terms"]["accuracy"] == 1.0 and reward == 0.5  # "2" read from the turn
