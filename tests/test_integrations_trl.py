"""TRL's real GRPOTrainer with drawenv's environment_factory, on the tiny random Qwen2.5-VL (CPU).

The random model cannot write a tool call by itself, so generation is steered with a real
``sequence_bias`` (a transformers generation setting): after the prompt it writes one fixed
``draw_boxes`` call; after the tool result it picks, by sampling, one of four final turns (with or
without ``<think>``, answer 3 or 4), so rewards differ within a group and the update is not zero.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl", reason="the TRL adapter's test needs drawenv[trl]")
import torch

from agents.vlm.testing import tiny_model
from drawenv.env import DrawSpatialEnv
from drawenv.integrations import qwen
from drawenv.integrations.trl import (
    TRLDrawingEnv,
    TRLEnvReward,
    final_text,
    trl_dataset,
)
from drawenv.rewards.trl import TRLFormatReward
from examples.trl_grpo import train

ROOT = Path(__file__).resolve().parents[1]
CALL = {"index": 1, "boxes": [{"bbox_2d": [10, 10, 60, 60], "label": "dot"}]}
FIRST = (
    "<think> mark the dots </think>\n<tool_call>\n"
    + json.dumps({"name": "draw_boxes", "arguments": CALL})
    + "\n</tool_call><|im_end|>"
)
FINALS = [
    "<think> three dots </think>\n<answer> 3 </answer><|im_end|>",  # 1.0
    "<think> four dots </think>\n<answer> 4 </answer><|im_end|>",  # 0.5 * MRA 0.4 + 0.5 = 0.7
    "<answer> 3 </answer><|im_end|>",  # 0.5: no reasoning
    "<answer> 4 </answer><|im_end|>",  # 0.2
]
ENV = {"max_turns": 3}
ANSWER = "<answer> 3 </answer>"


@pytest.fixture
def tasks(dot_tasks) -> Path:
    return dot_tasks


def processor_and_model():
    model, parts = tiny_model(seed=0)
    processor = qwen.Qwen2_5_VLImageProcessor(parts.image_processor, parts.tokenizer)
    return model, qwen.use_tools_template(processor)


def steering_bias(processor, tasks: Path, context: int = 32) -> dict:
    """sequence_bias entries: after each conversation tail, the scripted continuations (each
    keyed by the ``context`` tokens before it, enough to tell the two tails apart)."""
    tools = [TRLDrawingEnv.draw_boxes, TRLDrawingEnv.draw_lines]
    env = TRLDrawingEnv(task=str(tasks), **ENV)
    row = trl_dataset(str(tasks), size=1, **ENV)[0]
    shown = env.reset(**row)
    conversation = [row["prompt"][0], {"role": "user", "content": shown}]
    first_tail = _ids(processor, conversation, tools)
    call = {"type": "function", "function": {"name": "draw_boxes", "arguments": CALL}}
    conversation += [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "name": "draw_boxes", "content": env.draw_boxes(**CALL)},
    ]
    second_tail = _ids(processor, conversation, tools)
    bias = {}
    for tail, texts in ((first_tail, [FIRST]), (second_tail, FINALS)):
        for text in texts:
            ids = tail[-context:] + processor.tokenizer(text, add_special_tokens=False)["input_ids"]
            for i in range(context, len(ids)):
                bias[tuple(ids[i - context : i + 1])] = 100.0
    return bias


def _ids(processor, conversation, tools) -> list[int]:
    out = processor.apply_chat_template(
        [conversation], tools=tools, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(out["input_ids"][0])


class Recorder(TRLEnvReward):
    """The reward as TRL calls it, keeping what each rollout was."""

    seen: list

    def __call__(self, completions, environments=None, **kwargs):
        rewards = super().__call__(completions, environments=environments, **kwargs)
        for messages, env, reward in zip(completions, environments, rewards, strict=True):
            self.seen.append((env.episode.env.task.id, messages, reward))
        return rewards


def replay(tasks: Path, task_id: str, messages: list) -> float:
    """A plain tool_call env stepped with the completion's own turns: one per call, the
    message's reasoning as <think>, then the final turn."""
    env = DrawSpatialEnv(task=str(tasks), protocol="tool_call", **ENV)
    index = next(i for i in range(len(env.source)) if env.source[i].id == task_id)
    env.reset(seed=0, options={"index": index})
    turns = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            reasoning = message.get("reasoning_content")
            body = json.dumps(call["function"])
            think = f"<think> {reasoning} </think>\n" if reasoning else ""
            turns.append(f"{think}<tool_call>{body}</tool_call>")
    turns.append(final_text(messages))
    reward = None
    for turn in turns:
        _, reward, terminated, truncated, _ = env.step(turn)
        if terminated or truncated:
            break
    return reward


def test_grpo_trainer_draws_through_tools_and_learns_from_the_env_reward(
    tasks, tmp_path, monkeypatch
):
    model, processor = processor_and_model()
    assert qwen.is_processor(processor)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    forwards = []

    def keep_images(module, args, kwargs):
        if torch.is_grad_enabled() and kwargs.get("image_grid_thw") is not None:
            forwards.append((kwargs["pixel_values"].detach().clone(), kwargs["image_grid_thw"]))

    model.register_forward_pre_hook(keep_images, with_kwargs=True)
    Recorder.seen = []
    # The example's own trainer, with the rollouts recorded as its reward sees them.
    monkeypatch.setattr("examples.trl_grpo.TRLEnvReward", Recorder)
    trainer = train(
        model,
        processor,
        str(tasks),
        str(tmp_path / "run"),
        rows=2,
        env_kwargs=ENV,
        generation_kwargs={"sequence_bias": steering_bias(processor, tasks)},
        max_completion_length=256,
        max_steps=2,
        learning_rate=1e-2,
        use_cpu=True,
        seed=1,
        logging_steps=1,
        save_strategy="no",
    )
    assert trainer._is_vlm and trainer.state.global_step == 2

    # Tool calls happened: every rollout drew once, and the env answered with an image.
    assert len(Recorder.seen) == 8
    rewards = []
    for task_id, messages, reward in Recorder.seen:
        assert messages[0]["tool_calls"][0]["function"] == {"name": "draw_boxes", "arguments": CALL}
        assert [p["type"] for p in messages[1]["content"]] == ["image", "text"]
        assert messages[1]["content"][1]["text"].startswith("The index of the given image is 2")
        # Each reward equals the same turns replayed in a plain env.
        assert reward == replay(tasks, task_id, messages)
        rewards.append(reward)
    assert set(rewards) <= {1.0, 0.7, 0.5, 0.2} and len(set(rewards)) > 1

    # The drawn images reached the training pass: two images per sequence (the task's and the
    # drawing), the drawing's pixels exactly those the env drew.
    assert forwards and all(len(grid) == 2 * 4 for _, grid in forwards)
    drawn = _drawn_image(tasks, Recorder.seen[0][0])
    expected = processor.image_processor(images=[drawn], return_tensors="pt")["pixel_values"]
    pixels, grid = forwards[0]
    chunks = torch.split(pixels, grid.prod(dim=1).tolist())
    assert any(torch.equal(chunk, expected) for chunk in chunks[1::2])

    # Parameters changed, the vision tower's included (its input is the images).
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("model.visual.") for n in changed)
    assert any(n.startswith("model.language_model.") for n in changed)
    assert trainer.state.log_history[0]["tools/call_frequency"] > 0


def _drawn_image(tasks: Path, task_id: str) -> np.ndarray:
    env = DrawSpatialEnv(task=str(tasks), protocol="tool_call", **ENV)
    index = next(i for i in range(len(env.source)) if env.source[i].id == task_id)
    env.reset(seed=0, options={"index": index})
    obs, *_ = env.step(
        "<think> x </think>\n<tool_call>"
        + json.dumps({"name": "draw_boxes", "arguments": CALL})
        + "</tool_call>"
    )
    return obs["images"][1]


# -- the pieces, without the trainer ---------------------------------------------------------------


def test_only_the_drawing_tools_are_public():
    public = {
        name
        for name in dir(TRLDrawingEnv)
        if not name.startswith("_") and callable(getattr(TRLDrawingEnv, name))
    }
    assert public == {"reset", "draw_boxes", "draw_lines"}


def test_tool_schemas_come_from_the_docstrings_with_the_item_format():
    from transformers.utils import get_json_schema

    schema = get_json_schema(TRLDrawingEnv.draw_boxes)["function"]
    assert schema["name"] == "draw_boxes"
    assert schema["parameters"]["required"] == ["index", "boxes"]
    assert (
        '"bbox_2d": [x1, y1, x2, y2]' in schema["parameters"]["properties"]["boxes"]["description"]
    )
    lines = get_json_schema(TRLDrawingEnv.draw_lines)["function"]["parameters"]["properties"]
    assert '"start_point_2d": [x, y]' in lines["lines"]["description"]


def test_reset_clears_the_last_rollout(tasks):
    env = TRLDrawingEnv(task=str(tasks))
    rows = trl_dataset(str(tasks))
    assert rows["index"] == [0, 1] and rows["task_id"] == ["dots-0", "dots-1"]
    shown = env.reset(**rows[0])
    assert [p["type"] for p in shown] == ["image", "text"] and "dots" in shown[1]["text"]
    env.draw_boxes(**CALL)
    assert env.episode.calls and env._stepped == [True]
    env.reset(**rows[1])
    assert env.episode.calls == [] and env._stepped == [] and env.episode.env.task.id == "dots-1"


def test_a_dataset_for_another_task_is_refused(tasks):
    env = TRLDrawingEnv(task="counting")
    row = trl_dataset(str(tasks), size=1)[0]
    with pytest.raises(Exception, match="same task"):
        env.reset(**row)


def test_dataset_of_a_built_in_suite_needs_a_size():
    rows = trl_dataset("counting", size=2, first=5)
    assert rows["index"] == [5, 6]
    assert "draw_boxes" in rows[0]["prompt"][0]["content"][0]["text"]
    with pytest.raises(Exception, match="size"):
        trl_dataset("counting")


def completion(reasoning_first, final):
    call = {"type": "function", "function": {"name": "draw_boxes", "arguments": CALL}}
    first = {"role": "assistant", "tool_calls": [call]}
    if reasoning_first:
        first["reasoning_content"] = reasoning_first
    return [first, {"role": "tool", "name": "draw_boxes", "content": []}, final]


@pytest.mark.parametrize(
    ("reasoning", "final", "expected"),
    [
        (
            "mark",
            {"role": "assistant", "reasoning_content": "3", "content": "<answer> 3 </answer>"},
            1.0,
        ),
        (
            None,
            {"role": "assistant", "reasoning_content": "3", "content": "<answer> 3 </answer>"},
            0.5,
        ),
        ("mark", {"role": "assistant", "content": "<answer> 3 </answer>"}, 0.5),
        ("mark", {"role": "assistant", "content": "<think> a </think> <answer> 3 </answer>"}, 1.0),
        ("mark", {"role": "assistant", "content": "<think> a </think> <answer> 5 </answer>"}, 0.0),
    ],
)
def test_the_reward_judges_format_with_trls_reasoning_content(tasks, reasoning, final, expected):
    env = TRLDrawingEnv(task=str(tasks))
    env.reset(**trl_dataset(str(tasks), size=1)[0])
    env.draw_boxes(**CALL)
    assert TRLEnvReward()([completion(reasoning, final)], environments=[env]) == [expected]


def test_calls_trl_answered_itself_take_no_reasoning(tasks):
    """A call whose arguments do not bind never reaches the env (TRL answers it with an error
    text); the next message's call does, and its missing reasoning costs the format."""
    env = TRLDrawingEnv(task=str(tasks))
    env.reset(**trl_dataset(str(tasks), size=1)[0])
    env.draw_boxes(**CALL)
    bad = {"type": "function", "function": {"name": "draw_boxes", "arguments": {"box": 1}}}
    good = {"type": "function", "function": {"name": "draw_boxes", "arguments": CALL}}
    messages = [
        {"role": "assistant", "reasoning_content": "try", "tool_calls": [bad]},
        {"role": "tool", "name": "draw_boxes", "content": "{'error': 'unexpected keyword'}"},
        {"role": "assistant", "tool_calls": [good]},
        {"role": "tool", "name": "draw_boxes", "content": []},
        {"role": "assistant", "reasoning_content": "3", "content": ANSWER},
    ]
    assert TRLEnvReward()([messages], environments=[env]) == [0.5]
    assert env.episode.info["reward_terms"]["format"] == 0.0


def test_a_rollout_ending_on_a_tool_call_pays_nothing(tasks):
    env = TRLDrawingEnv(task=str(tasks))
    env.reset(**trl_dataset(str(tasks), size=1)[0])
    env.draw_boxes(**CALL)
    messages = completion("mark", {"role": "assistant", "tool_calls": [{"type": "function"}]})
    assert TRLEnvReward()([messages], environments=[env]) == [0.0]
    with pytest.raises(Exception, match="environment_factory"):
        TRLEnvReward()([messages])


def test_format_reward_reads_reasoning_content():
    messages = [
        {"role": "assistant", "reasoning_content": "so B", "content": "<answer> B </answer>"}
    ]
    assert TRLFormatReward(protocol="tool_call")([messages]) == [1.0]


def test_generation_suppresses_every_vision_token():
    _, processor = processor_and_model()
    ids = qwen.generation_kwargs(processor)["suppress_tokens"]
    tokens = processor.tokenizer.convert_ids_to_tokens(ids)
    assert set(tokens) == {"<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"}


def test_the_chat_template_renders_and_parses_tool_calls():
    from trl.chat_template_utils import is_chat_template_prefix_preserving, supports_tool_calling

    _, processor = processor_and_model()
    assert supports_tool_calling(processor) and is_chat_template_prefix_preserving(processor)
    reply = processor.tokenizer.parse_response(FIRST, prefix="<|im_start|>assistant\n")
    assert reply["reasoning_content"] == "mark the dots"
    assert reply["tool_calls"] == [
        {"type": "function", "function": {"name": "draw_boxes", "arguments": CALL}}
    ]


def test_the_docs_show_the_example_the_test_runs():
    docs = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
    code = (ROOT / "examples" / "trl_grpo.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    assert code in blocks
