"""ToolEpisode: one tool call per env step, rewards and images as a plain env replays them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from drawenv import DrawEnvError
from drawenv.env import DrawSpatialEnv
from drawenv.integrations import ToolEpisode

BOXES = {"index": 1, "boxes": [{"bbox_2d": [40, 40, 200, 160], "label": "sofa"}]}
LINES = {"index": 2, "lines": [{"start_point_2d": [0, 0], "end_point_2d": [100, 90], "label": "p"}]}
RIGHT = "<think> the lamp </think>\n<answer> B </answer>"


def episode(task, **kwargs) -> ToolEpisode:
    ep = ToolEpisode(task=[task], **kwargs)
    ep.reset(seed=0)
    return ep


def replay(task, texts, final, **kwargs):
    """The same turns in a plain env: (images, reward)."""
    env = DrawSpatialEnv(task=[task], protocol="tool_call", **kwargs)
    obs, _ = env.reset(seed=0)
    reward = 0.0
    for text in [*texts, final]:
        obs, reward, terminated, truncated, _ = env.step(text)
        if terminated or truncated:
            break
    return obs["images"], reward


def test_reset_shows_the_task_and_the_tool_call_prompt(mc_task):
    ep = ToolEpisode(task=[mc_task])
    start = ep.reset(seed=0)
    assert len(start.images) == 1 and start.images[0].shape == (336, 448, 3)
    assert start.text.startswith("The index of the given image is 1 (width: 448, height: 336).")
    assert "Which object is closer to the door?" in start.text
    assert "draw_boxes" in start.system_prompt and start.task_id == "mc-1"


def test_each_call_is_one_step_with_its_own_image(mc_task):
    ep = episode(mc_task)
    first = ep.call("draw_boxes", BOXES, thought="mark the sofa")
    assert first.indices == (2,) and first.errors == () and not first.done
    assert first.text.startswith("The index of the given image is 2 (width: 448, height: 336).")
    # The next call draws on the image the first one made, as no env turn could.
    second = ep.call("draw_lines", LINES, thought="trace")
    assert second.indices == (3,)
    # Image 2 holds the box; image 3 is image 2 plus the line.
    assert not np.array_equal(first.images[0], ep.start.images[0])
    assert not np.array_equal(second.images[0], first.images[0])
    assert ep.finish(RIGHT) == 1.0  # 0.5 accuracy + 0.5 format
    assert ep.info["termination"] == "answer" and ep.info["turn"] == 3
    images, reward = replay(mc_task, ep.replay_texts(), RIGHT)
    assert reward == 1.0
    assert np.array_equal(images[1], first.images[0]) and np.array_equal(
        images[2], second.images[0]
    )


def test_arguments_as_json_text_and_mapping_draw_the_same(mc_task):
    a, b = episode(mc_task), episode(mc_task)
    ra = a.call("draw_boxes", BOXES)
    rb = b.call("draw_boxes", json.dumps(BOXES))
    assert ra.indices == rb.indices == (2,) and np.array_equal(ra.images[0], rb.images[0])


def test_a_call_without_reasoning_fails_the_format(mc_task):
    ep = episode(mc_task)
    ep.call("draw_boxes", BOXES, thought=None)
    assert ep.finish(RIGHT) == 0.5  # accuracy only: the drawing turn had no <think>
    assert ep.info["reward_terms"]["format"] == 0.0
    assert replay(mc_task, ep.replay_texts(), RIGHT)[1] == 0.5


def test_finish_with_thoughts_replays_the_episode(mc_task):
    ep = episode(mc_task)
    made = ep.call("draw_boxes", BOXES)  # reasoning not known yet
    assert ep.finish(RIGHT, thoughts=[None]) == 0.5
    assert ep.replay_texts()[0].startswith("<tool_call>")
    assert np.array_equal(ep.env._state.images[1].pixels, made.images[0])
    good = episode(mc_task)
    good.call("draw_boxes", BOXES, thought=None)
    assert good.finish(RIGHT, thoughts=["mark the sofa"]) == 1.0
    with pytest.raises(DrawEnvError, match="thoughts"):
        bad = episode(mc_task)
        bad.call("draw_boxes", BOXES)
        bad.finish(RIGHT, thoughts=[])


def test_finish_is_paid_once(mc_task):
    ep = episode(mc_task)
    assert ep.finish(RIGHT) == 1.0
    assert ep.finish("<think> x </think> <answer> C </answer>") == 1.0
    assert ep.call("draw_boxes", BOXES).done


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("erase", BOXES, "unknown tool 'erase'"),
        ("draw_boxes", "not json", "arguments is not valid JSON"),
        ("draw_boxes", [1, 2], "arguments must be an object"),
        ("draw_boxes", {"index": 1}, "arguments have no boxes"),
        ("draw_boxes", {"index": 9, "boxes": BOXES["boxes"]}, "index"),
        ("draw_lines", {"index": 1, "lines": [{"label": "x"}]}, "neither bbox_2d"),
        (
            "draw_boxes",
            {"index": 1, "boxes": [{"bbox_2d": [1, 2], "label": object()}]},
            "4 numbers",
        ),
    ],
)
def test_model_mistakes_draw_nothing_and_never_raise(mc_task, name, arguments, error):
    ep = episode(mc_task)
    result = ep.call(name, arguments, thought="try")
    assert result.images == () and result.indices == () and not result.done
    assert any(error in e for e in result.errors), result.errors
    assert ep.finish(RIGHT) in (0.5, 1.0)  # answered; a rejected drawing costs the format


def test_unknown_tool_takes_no_turn(mc_task):
    ep = episode(mc_task, max_turns=2)
    ep.call("erase", {})
    assert ep.calls_left == 1 and ep.replay_texts() == []


def test_turn_budget_keeps_the_last_turn_for_the_answer(mc_task):
    ep = episode(mc_task, max_turns=3, repeat_policy="off")
    assert ep.calls_left == 2
    assert ep.call("draw_boxes", BOXES, thought="a").indices == (2,)
    assert ep.call("draw_boxes", BOXES, thought="b").indices == (3,)
    refused = ep.call("draw_boxes", BOXES, thought="c")
    assert refused.indices == () and refused.errors == ("no drawing turn is left",)
    assert not refused.done and len(ep.replay_texts()) == 2
    assert ep.finish(RIGHT) == 1.0 and ep.info["turn"] == 3


def test_image_budget_refuses_calls_instead_of_ending(mc_task):
    ep = episode(mc_task, max_images=2)
    assert ep.call("draw_boxes", BOXES, thought="a").indices == (2,)
    assert ep.calls_left == 0
    assert ep.call("draw_lines", LINES, thought="b").errors == ("no drawing turn is left",)
    assert ep.finish(RIGHT) == 1.0


def test_a_repeat_ends_the_episode_under_the_terminate_policy(mc_task):
    ep = episode(mc_task)
    ep.call("draw_boxes", BOXES, thought="a")
    again = ep.call("draw_boxes", {**BOXES, "index": 2}, thought="again")
    assert again.done and ep.info["termination"] == "repeated_action"
    assert ep.finish(RIGHT) == 0.0
    assert replay(mc_task, ep.replay_texts(), RIGHT)[1] == 0.0


def test_thought_tags_do_not_change_the_turn(mc_task):
    ep = episode(mc_task)
    result = ep.call("draw_boxes", BOXES, thought="<answer> A </answer> </think> hmm")
    assert result.indices == (2,) and ep.finish(RIGHT) == 1.0


def test_labels_cannot_close_the_tool_call(mc_task):
    ep = episode(mc_task)
    boxes = {"index": 1, "boxes": [{"bbox_2d": [40, 40, 200, 160], "label": "</tool_call>`"}]}
    assert ep.call("draw_boxes", boxes, thought="x").indices == (2,)


def test_user_mistakes_raise_clearly(mc_task):
    with pytest.raises(DrawEnvError, match="protocol"):
        ToolEpisode(task=[mc_task], protocol="vilasr")
    with pytest.raises(DrawEnvError, match="env"):
        ToolEpisode(DrawSpatialEnv(task=[mc_task]))
    with pytest.raises(DrawEnvError, match="reset"):
        ToolEpisode(task=[mc_task]).call("draw_boxes", BOXES)


def test_reset_clears_the_episode(mc_task):
    ep = episode(mc_task)
    ep.call("draw_boxes", BOXES, thought="a")
    ep.finish(RIGHT)
    ep.reset(seed=0)
    assert not ep.done and ep.replay_texts() == [] and ep.info == {}
    assert ep.call("draw_boxes", BOXES, thought="a").indices == (2,)


def test_the_docs_example_runs():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "integrations.md").read_text()
    section = docs.split("## One tool call per step", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    scope: dict = {}
    exec(compile(code, "docs/integrations.md", "exec"), scope)
    assert scope["result"].indices == (2,) and scope["result"].errors == ()
    assert scope["episode"].done and 0.0 <= scope["reward"] <= 1.0
