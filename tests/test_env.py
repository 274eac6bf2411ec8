"""DrawSpatial-v0 behaviour: termination order, rewards through the env, info, images, arguments."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from drawenv import Answer, Box, Draw, DrawEnvError, Line
from drawenv.canvas import label_colour
from drawenv.env import DrawSpatialEnv
from drawenv.rewards import SharpnessSchedule, SNRAPresetReward
from tests.conftest import grey_image

BOX = Box(1, (40, 40, 200, 160), "sofa")


def make(task, **kwargs) -> DrawSpatialEnv:
    env = DrawSpatialEnv(task=[task], **kwargs)
    env.reset(seed=0)
    return env


# -- termination, one test per reason, in docs/environment.md's order ------------------------------


def test_answer_terminates_and_pays(mc_task):
    env = make(mc_task)
    env.step(Draw([BOX], thought="mark the sofa"))
    obs, reward, terminated, truncated, info = env.step(Answer("B", thought="the lamp"))
    assert (terminated, truncated, info["termination"]) == (True, False, "answer")
    assert reward == 1.0  # vilasr: 0.5 * accuracy 1 + 0.5 * format 1
    assert info["answer"] == "B" and info["prediction"] == "B"
    assert info["reward_terms"]["accuracy"] == 1.0 and info["reward_terms"]["format"] == 1.0


def test_wrong_answer_pays_nothing(mc_task):
    env = make(mc_task)
    _, reward, terminated, _, info = env.step(Answer("C"))
    assert terminated and reward == 0.0 and info["reward_terms"]["accuracy"] == 0.0


def test_answer_wins_over_drawing_in_the_same_turn(mc_task):
    env = make(mc_task)
    text = env.unwrapped.protocol.format(Draw([BOX], thought="x")) + "\n<answer> B </answer>"
    _, reward, terminated, _, info = env.step(text)
    assert info["termination"] == "answer" and len(env.unwrapped._state.images) == 1
    assert info["reward_terms"]["format"] == 0.0 and reward == 0.5


@pytest.mark.parametrize("text", ["", "   ", "I think it is the lamp.", "<think> hmm </think>"])
def test_no_action(mc_task, text):
    env = make(mc_task)
    _, reward, terminated, truncated, info = env.step(text)
    assert (terminated, truncated, info["termination"], reward) == (True, False, "no_action", 0.0)
    assert info["errors"]


def test_invalid_drawing_feedback_counts_the_turn_and_draws_nothing(mc_task):
    env = make(mc_task)
    obs, reward, terminated, truncated, info = env.step(Draw([Box(1, (10, 10, 10, 50), "x")]))
    assert not terminated and not truncated and "termination" not in info
    assert len(obs["images"]) == 1 and info["turn"] == 1 and info["new_image_indices"] == []
    assert "zero-area" in obs["text"] and any("operation 1" in e for e in info["errors"])
    # the episode goes on, but the format reward is lost for good
    _, reward, terminated, _, info = env.step(Answer("B"))
    assert terminated and reward == 0.5 and info["reward_terms"]["format"] == 0.0


def test_invalid_drawing_terminate_policy(mc_task):
    env = make(mc_task, invalid_policy="terminate")
    bad = Draw([BOX, Box(7, (10, 10, 50, 50), "ghost")])  # image 7 does not exist
    obs, reward, terminated, _, info = env.step(bad)
    assert (terminated, info["termination"], reward) == (True, "invalid_action", 0.0)
    assert len(obs["images"]) == 1  # the valid box is not drawn either: the step is one unit
    assert any("operation 2" in e and "between 1 and 1" in e for e in info["errors"])


def test_format_only_problem_draws_but_loses_the_format_reward(mc_task):
    env = make(mc_task)
    no_think = (
        'Action: Object Mapper\n```json\n[{"index": 1, "bbox_2d": [40, 40, 200, 160], '
        '"label": "s"}]\n```'
    )
    obs, _, terminated, _, info = env.step(no_think)
    assert not terminated and info["new_image_indices"] == [2]
    assert any("<think>" in e for e in info["errors"])
    _, reward, _, _, info = env.step(Answer("B"))
    assert reward == 0.5 and info["reward_terms"]["format"] == 0.0


def test_unparseable_drawing_is_invalid_not_no_action(mc_task):
    env = make(mc_task)
    text = '<think> box it </think> Action: Object Mapper\n```json\n[{"index": 1, "bbox_2d": [1, 2'
    _, _, terminated, _, info = env.step(text)
    assert not terminated and info["errors"]


@pytest.mark.parametrize(
    "repeat",
    [
        Box(1, (41, 40, 200, 161), "sofa"),  # IoU ~0.99 >= 1 - 0.02
        Box(2, (40, 40, 200, 160), "sofa"),  # already a layer of image 2
    ],
)
def test_repeated_operation_terminates(mc_task, repeat):
    env = make(mc_task)
    env.step(Draw([BOX]))
    _, reward, terminated, _, info = env.step(Draw([repeat]))
    assert (terminated, info["termination"], reward) == (True, "repeated_action", 0.0)


def test_redraw_with_new_geometry_is_not_a_repeat(mc_task):
    env = make(mc_task)
    env.step(Draw([BOX]))
    obs, _, terminated, _, info = env.step(Draw([Box(2, (240, 40, 400, 160), "sofa")]))
    assert not terminated and info["new_image_indices"] == [3]


def test_same_geometry_with_another_label_is_not_a_repeat(mc_task):
    env = make(mc_task)
    env.step(Draw([BOX]))
    _, _, terminated, _, _ = env.step(Draw([Box(1, BOX.bbox, "couch")]))
    assert not terminated


def test_repeated_line_ignores_direction(mc_task):
    env = make(mc_task)
    env.step(Draw([Line(1, (10, 10), (300, 200), "path")]))
    _, _, terminated, _, info = env.step(Draw([Line(1, (300, 200), (10, 10), "path")]))
    assert info["termination"] == "repeated_action"


def test_repeat_feedback_and_off(mc_task):
    env = make(mc_task, repeat_policy="feedback")
    env.step(Draw([BOX]))
    obs, _, terminated, _, info = env.step(Draw([BOX]))
    assert not terminated and len(obs["images"]) == 2 and "repeats" in obs["text"]
    env = make(mc_task, repeat_policy="off")
    env.step(Draw([BOX]))
    obs, _, terminated, _, _ = env.step(Draw([BOX]))
    assert not terminated and len(obs["images"]) == 3


def test_image_budget_answer_now_then_max_images(mc_task):
    env = make(mc_task, max_images=3)
    obs, *_ = env.step(Draw([BOX]))
    assert "answer now" not in obs["text"].lower()
    obs, _, terminated, _, _ = env.step(Draw([Box(2, (240, 40, 400, 160), "lamp")]))
    assert not terminated and len(obs["images"]) == 3
    assert "final answer now" in obs["text"]  # the budget is reached exactly
    obs, reward, terminated, _, info = env.step(Draw([Box(3, (10, 200, 90, 300), "door")]))
    assert (terminated, info["termination"], reward) == (True, "max_images", 0.0)
    assert len(obs["images"]) == 3


def test_step_that_would_pass_the_budget_with_two_targets(mc_task):
    env = make(mc_task, max_images=2)
    _, _, terminated, _, info = env.step(Draw([BOX]))
    assert not terminated
    two_targets = Draw([Box(1, (300, 10, 400, 90), "lamp"), Box(2, (300, 200, 400, 300), "x")])
    _, _, terminated, _, info = env.step(two_targets)
    assert info["termination"] == "max_images"


def test_repeat_is_checked_before_the_budget(mc_task):
    env = make(mc_task, max_images=2)
    env.step(Draw([BOX]))
    _, _, _, _, info = env.step(Draw([BOX]))
    assert info["termination"] == "repeated_action"


def test_max_turns_truncates_and_warns_on_the_last_turn(mc_task):
    env = make(mc_task, max_turns=2)
    obs, _, terminated, truncated, _ = env.step(Draw([BOX]))
    assert not terminated and not truncated and "final answer now" in obs["text"]
    obs, reward, terminated, truncated, info = env.step(Draw([Box(2, (240, 40, 400, 160), "x")]))
    assert (terminated, truncated, info["termination"], reward) == (False, True, "max_turns", 0.0)


def test_step_after_the_end_raises(mc_task):
    env = make(mc_task)
    env.step(Answer("B"))
    with pytest.raises(DrawEnvError, match="reset"):
        env.step(Answer("B"))


# -- images ------------------------------------------------------------------------------------


def test_one_new_image_per_target_in_order_of_first_appearance(mc_task):
    env = make(mc_task)
    env.step(Draw([BOX]))  # image 2
    ops = [
        Box(2, (10, 10, 60, 60), "a"),
        Line(1, (0, 0), (100, 100), "b"),
        Box(2, (200, 200, 260, 260), "c"),
    ]
    obs, _, _, _, info = env.step(Draw(ops))
    assert info["new_image_indices"] == [3, 4]
    image3, image4 = obs["images"][2], obs["images"][3]
    colour = np.array(label_colour("sofa"))
    assert (image3[40, 120] == colour).all()  # image 3 derives from image 2: keeps the sofa box
    assert not (image4[40, 120] == colour).all()  # image 4 derives from image 1: no sofa


def test_replaced_box_does_not_linger(mc_task):
    env = make(mc_task)
    env.step(Draw([BOX]))
    obs, *_ = env.step(Draw([Box(2, (240, 200, 400, 300), "sofa")]))
    old_outline_left_edge = obs["images"][2][100, 40]
    assert (old_outline_left_edge == 128).all()  # back to the original grey
    assert (obs["images"][2][250, 240] == np.array(label_colour("sofa"))).all()


def test_norm1000_coordinates(mc_task):
    env = make(mc_task, coords="norm1000")
    obs, *_ = env.step(Draw([Box(1, (500, 500, 750, 1000), "half")]))
    # x 500/1000*448 = 224, y 500/1000*336 = 168: the outline's left edge runs through (224, 250)
    assert (obs["images"][1][250, 224] == np.array(label_colour("half"))).all()
    assert (obs["images"][1][250, 150] == 128).all()


def test_originals_are_resized_like_qwen_and_never_mutated():
    original = grey_image(1000, 700)
    record = {
        "id": "big",
        "images": [original],
        "question": "How far?",
        "answer_type": "numeric",
        "answer": 2.5,
    }
    before = original.copy()
    env = DrawSpatialEnv(task=[record])
    obs, info = env.reset(seed=0)
    height, width, _ = obs["images"][0].shape
    assert (width % 28, height % 28) == (0, 0) and width * height <= 256 * 28 * 28
    assert f"(width: {width}, height: {height})" in obs["text"]
    env.step(Draw([Box(1, (0, 0, width, height), "all")]))
    assert np.array_equal(original, before)


def test_observations_are_read_only_and_share_no_memory(mc_task):
    env = DrawSpatialEnv(task=[mc_task])
    obs0, _ = env.reset(seed=0)
    obs1, *_ = env.step(Draw([BOX]))
    obs2, *_ = env.step(Draw([Box(2, (240, 40, 400, 160), "lamp")]))
    images = [*obs0["images"], *obs1["images"], *obs2["images"]]
    assert len(images) == 1 + 2 + 3
    for i, a in enumerate(images):
        assert not any(np.shares_memory(a, b) for b in images[i + 1 :])
        with pytest.raises(ValueError):
            a[0, 0] = 0  # the caller cannot scribble on what it got
        with pytest.raises(ValueError):
            a.flags.writeable = True
    assert np.array_equal(obs0["images"][0], obs2["images"][0])
    assert np.array_equal(obs1["images"][1], obs2["images"][1])
    assert (mc_task.images[0] == 128).all()


def test_copy_images_false_hands_out_the_stored_images_read_only(mc_task):
    env = DrawSpatialEnv(task=[mc_task], copy_images=False)
    obs0, _ = env.reset(seed=0)
    obs1, *_ = env.step(Draw([BOX]))
    assert np.shares_memory(obs0["images"][0], obs1["images"][0])
    with pytest.raises(ValueError):
        obs1["images"][1].flags.writeable = True
    copied = DrawSpatialEnv(task=[mc_task])
    copied.reset(seed=0)
    assert np.array_equal(copied.step(Draw([BOX]))[0]["images"][1], obs1["images"][1])


def test_render_rgb_array_is_the_latest_image(mc_task):
    env = make(mc_task, render_mode="rgb_array")
    assert env.render().shape == (336, 448, 3)
    obs, *_ = env.step(Draw([BOX]))
    assert np.array_equal(env.render(), obs["images"][-1])
    assert make(mc_task).render() is None


# -- prompts and info --------------------------------------------------------------------------


def test_reset_prompt_and_info(mc_task):
    env = DrawSpatialEnv(task=[mc_task])
    obs, info = env.reset(seed=3)
    text = obs["text"]
    assert "The index of the given image is 1 (width: 448, height: 336)." in text
    assert mc_task.question in text and "B. the lamp" in text and "letter" in text
    assert "448" in info["system_prompt"] and info["task_id"] == "mc-1"
    assert {"reward_terms", "operations", "new_image_indices", "errors", "turn"} <= set(info)
    assert "termination" not in info


def test_step_info_keys(mc_task):
    env = make(mc_task)
    obs, _, _, _, info = env.step(Draw([BOX, Line(1, (0, 0), (40, 40), "p")]))
    assert info["operations"] == [BOX, Line(1, (0, 0), (40, 40), "p")]
    assert info["new_image_indices"] == [2] and info["turn"] == 1 and info["reward_terms"] == {}
    assert "The index of the given image is 2 (width: 448, height: 336)." in obs["text"]


def test_clipping_is_a_warning_not_an_error(mc_task):
    env = make(mc_task)
    obs, _, _, _, info = env.step(Draw([Box(1, (400, 300, 600, 500), "edge")]))
    assert info["new_image_indices"] == [2]
    assert any(e.startswith("warning:") and "clipped" in e for e in info["errors"])
    _, reward, *_ = env.step(Answer("B"))
    assert reward == 1.0


# -- rewards through the env -------------------------------------------------------------------


def test_count_task_mra_and_sr_real_detection(count_task):
    env = make(count_task, reward="sr_real")
    env.step(Draw([Box(1, (101, 100, 141, 140), "red circle")]))
    _, reward, _, _, info = env.step(Answer("3"))
    # centre offset 1 px over a 448*sqrt(2) diagonal -> 10*d/diag = 0.016 < 0.1 -> detection 1.0
    assert info["reward_terms"]["detection"] == 1.0
    assert reward == pytest.approx(0.8 * 1.0 + 0.1 * 1.0 + 0.1 * 1.0)


def test_count_task_partial_mra(count_task):
    env = make(count_task)
    _, reward, _, _, info = env.step(Answer("4"))
    # |4-3|/3 = 0.333: below 1-θ for θ in {0.50, 0.55, 0.60, 0.65} -> MRA 0.4
    assert info["reward_terms"]["accuracy"] == pytest.approx(0.4)
    assert reward == pytest.approx(0.5 * 0.4 + 0.5)


def test_snra_progress_from_reset_options(count_task):
    env = DrawSpatialEnv(task=[count_task], reward="snra")
    env.reset(seed=0, options={"progress": 1.0})
    _, reward, _, _, info = env.step(Answer("4"))
    e2 = (1 / 3) ** 2
    expected_acc = 2 / (1 + np.exp(100 * e2))
    assert info["reward_terms"]["accuracy"] == pytest.approx(expected_acc)


@pytest.mark.parametrize(
    ("reward", "reward_kwargs", "progress", "expected"),
    [
        # count truth 3, answer 4: e = 1/3, e² = 1/9; the snra preset pays 0.5 · SNRA + 0.5 · format
        ("snra", {"k_min": 2, "k_max": 2}, 0.5, 0.5 * 2 / (1 + math.exp(2 / 9)) + 0.5),
        ("snra", {"k_max": 50}, 1.0, 0.5 * 2 / (1 + math.exp(50 / 9)) + 0.5),
        ("snra", {"k_max": 50}, 0.0, 0.5 * 2 / (1 + math.exp(1 / 9)) + 0.5),
        (
            "snra",
            {"k_min": 4, "k_max": 4, "schedule": "cosine"},
            0.3,
            1 / (1 + math.exp(4 / 9)) + 0.5,
        ),
        ("vilasr_paper", {"beta": 0.3}, 0.0, 1.4),  # MRA 0.4 > 0.3: 0.4 + 1
        ("vilasr_paper", {"beta": 0.5}, 0.0, 0.0),  # MRA 0.4 is not > 0.5
        ("vilasr", None, 0.0, 0.7),  # 0.5 · 0.4 + 0.5
        ("vilasr", {}, 0.0, 0.7),
    ],
)
def test_reward_kwargs_build_the_preset(count_task, reward, reward_kwargs, progress, expected):
    env = DrawSpatialEnv(task=[count_task], reward=reward, reward_kwargs=reward_kwargs)
    env.reset(seed=0, options={"progress": progress})
    _, r, _, _, info = env.step(Answer("4"))
    assert r == pytest.approx(expected, abs=1e-12)


def test_reward_kwargs_through_gym_make():
    env = gym.make("DrawSpatial-v0", reward="snra", reward_kwargs={"k_max": 50})
    assert env.unwrapped.reward_fn == SNRAPresetReward(SharpnessSchedule(k_max=50))


def test_every_reward_sees_the_training_progress(mc_task):
    def progress_reward(episode):
        return episode.progress, {}

    env = make(mc_task, reward=progress_reward)
    env.unwrapped.set_training_progress(0.25)
    assert env.step(Answer("B"))[1] == 0.25


def test_callable_reward(mc_task):
    def reward(episode):
        return float(len(episode.outputs)), {"turns": float(len(episode.outputs))}

    env = make(mc_task, reward=reward)
    env.step(Draw([BOX]))
    _, r, _, _, info = env.step(Answer("A"))
    assert r == 2.0 and info["reward_terms"] == {"turns": 2.0}


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"protocol": "vilsar"}, ["protocol", "vilsar", "vilasr"]),
        ({"coords": "norm"}, ["coords", "pixel", "norm1000"]),
        ({"repeat_policy": "stop"}, ["repeat_policy", "terminate"]),
        ({"invalid_policy": "ignore"}, ["invalid_policy", "feedback"]),
        ({"reward": "f1"}, ["reward", "vilasr"]),
        ({"max_images": 0}, ["max_images", "0"]),
        ({"max_turns": 2.5}, ["max_turns", "integer"]),
        ({"repeat_tolerance": 2}, ["repeat_tolerance"]),
        ({"max_pixels": 10}, ["max_pixels"]),
        ({"render_mode": "human"}, ["render_mode", "rgb_array"]),
        ({"copy_images": "yes"}, ["copy_images", "True or False"]),
        ({"task": "mazes"}, ["task", "mixed"]),
        ({"task": 42}, ["task", "suite name"]),
        ({"task": []}, ["task"]),
        ({"difficulty": 7}, ["difficulty"]),
        ({"reward_kwargs": [("k_max", 50)]}, ["reward_kwargs", "mapping"]),
        ({"reward_kwargs": {1: 50}}, ["reward_kwargs", "mapping"]),
        ({"reward": "snra", "reward_kwargs": {"k_mx": 5}}, ["'k_mx'", "'snra'", "'k_max'"]),
        ({"reward_kwargs": {"beta": 0.5}}, ["'beta'", "'vilasr'", "'mra'"]),
        ({"reward": "snra", "reward_kwargs": {"k_max": -1}}, ["k_max"]),
        ({"reward": print, "reward_kwargs": {"k": 1}}, ["reward_kwargs", "callable"]),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, words):
    with pytest.raises(DrawEnvError) as error:
        DrawSpatialEnv(**kwargs)
    for word in words:
        assert word in str(error.value)


def test_bad_reset_option_and_action(mc_task):
    env = DrawSpatialEnv(task=[mc_task])
    with pytest.raises(DrawEnvError, match="options"):
        env.reset(options={"seed": 1})
    env.reset()
    with pytest.raises(DrawEnvError, match="action"):
        env.step(42)


def test_question_prompt_reads_back(mc_task):
    from drawenv.prompts import question_prompt, read_question_prompt

    prompt = read_question_prompt(question_prompt(mc_task, [(448, 336), (224, 224)]))
    assert prompt.question == mc_task.question and prompt.options == mc_task.options
    assert prompt.answer_type == "multiple_choice"
    assert prompt.image_sizes == ((448, 336), (224, 224))


def test_copy_images_false_in_a_sync_vector_env_matches_the_default(mc_task):
    from gymnasium.vector import SyncVectorEnv

    def make_envs(copy_images):
        envs = SyncVectorEnv([lambda: DrawSpatialEnv(task=[mc_task], copy_images=copy_images)])
        envs.reset(seed=0)
        return envs

    shared, copied = make_envs(False), make_envs(True)
    for step in range(3):
        action = (Draw([Box(1 + step, (40, 40, 200 - step, 160), f"b{step}")]),)
        a, b = shared.step(action)[0], copied.step(action)[0]
        assert all(np.array_equal(x, y) for x, y in zip(a["images"][0], b["images"][0]))
