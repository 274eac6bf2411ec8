"""drawenv's verl adapters against the real verl classes (verl's own environment:
``bash scripts/verl_env.sh``), with the tiny random Qwen2.5-VL behind verl's server-manager
interface.

The random model cannot write a tool call or an env turn by itself, so the test server writes
scripted turns with the real ``generate`` (each token forced by ``prefix_allowed_tokens_fn``),
the script chosen by how many tool responses or env messages the prompt already holds.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import ClassVar

import pytest

pytest.importorskip("verl", reason="the verl adapter's tests run in verl's environment")
import hydra
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
from verl.tools.tool_registry import initialize_tools_from_config
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.workers.rollout.replica import TokenOutput

from agents.vlm.testing import tiny_model
from drawenv.env import DrawSpatialEnv
from drawenv.integrations import qwen
from drawenv.integrations.verl import (
    DrawAgentLoop,
    DrawTool,
    compute_score,
    tool_schema,
    verl_rows,
)

ROOT = Path(__file__).resolve().parents[1]
CALL = {"index": 1, "boxes": [{"bbox_2d": [10, 10, 60, 60], "label": "dot"}]}
TOOL_TURN = (
    "<think> mark the dots </think>\n<tool_call>\n"
    + json.dumps({"name": "draw_boxes", "arguments": CALL})
    + "\n</tool_call>"
)
ANSWER_TURN = "<think> three dots </think>\n<answer> 3 </answer>"
ENV = {"max_turns": 2}


def docs_block(heading: str) -> str:
    """The first code block after ``heading`` in docs/integrations.md."""
    docs = (ROOT / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = docs.split(heading, 1)[1]
    return re.search(r"```\w*\n(.*?)```", section, flags=re.S).group(1)


@pytest.fixture
def tasks(dot_tasks) -> Path:
    return dot_tasks


class PromptImages(RLHFDataset):
    """RLHFDataset whose image extraction needs no torchvision: verl's own goes through
    qwen_vl_utils, which imports torchvision, and PyPI's torchvision wheel does not load with
    torch's CPU build. The env's images are already resized, so they are taken as they are."""

    @classmethod
    async def process_multi_modal_info(cls, messages, image_patch_size=14, config=None):
        images = [
            part["image"]
            for message in messages
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if part.get("type") == "image"
        ]
        return images or None, None, None


class TinyServer:
    """verl's server-manager interface (``generate`` → ``TokenOutput``) around the tiny model."""

    def __init__(self, model, processor, scripts: list[str], marker: str):
        self.model, self.processor = model, processor
        self.scripts, self.marker = scripts, marker
        self.calls: list[dict] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **kw):
        tokenizer = self.processor.tokenizer
        turn = tokenizer.decode(prompt_ids).count(self.marker)
        script = tokenizer(self.scripts[turn], add_special_tokens=False)["input_ids"]
        script.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        inputs = {"input_ids": torch.tensor([prompt_ids])}
        if image_data:
            inputs.update(self.processor.image_processor(images=image_data, return_tensors="pt"))
        self.calls.append({"images": len(image_data or []), "grid": inputs.get("image_grid_thw")})
        start = len(prompt_ids)
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=len(script),
                do_sample=True,
                output_logits=True,
                return_dict_in_generate=True,
                prefix_allowed_tokens_fn=lambda _, ids: [
                    script[min(len(ids) - start, len(script) - 1)]
                ],
                **qwen.generation_kwargs(self.processor),
            )
        tokens = out.sequences[0, start:]
        logprobs = [
            torch.log_softmax(step[0].float(), -1)[token].item()
            for step, token in zip(out.logits, tokens, strict=True)
        ]
        return TokenOutput(token_ids=tokens.tolist(), log_probs=logprobs, stop_reason="completed")


def model_and_processor():
    model, parts = tiny_model(seed=0)
    processor = qwen.Qwen2_5_VLImageProcessor(parts.image_processor, parts.tokenizer)
    return model, qwen.use_tools_template(processor)


def verl_config(**multi_turn):
    rollout = {
        "prompt_length": 4096,
        "response_length": 1024,
        "full_determinism": False,
        "multi_turn": {
            "max_user_turns": 2,
            "max_assistant_turns": 2,  # = max_turns: verl counts the answer turn too
            "max_parallel_calls": 1,
            "max_tool_response_length": 1024,
            "tool_response_truncate_side": "right",
            "format": "hermes",
            **multi_turn,
        },
    }
    config = OmegaConf.create({"actor_rollout_ref": {"rollout": rollout}})
    data = OmegaConf.create({"apply_chat_template_kwargs": {}, "mm_processor_kwargs": {}})
    return DictConfigWrap(config), DictConfigWrap(data)


def raw_prompt(row) -> list[dict]:
    """The row's prompt as RLHFDataset builds it: ``<image>`` replaced by the image itself."""
    from io import BytesIO

    from PIL import Image

    images = [Image.open(BytesIO(item["bytes"])).convert("RGB") for item in row["images"]]
    system, user = row["prompt"]
    text = user["content"].replace("<image>", "")
    content = [
        *({"type": "image", "image": image} for image in images),
        {"type": "text", "text": text},
    ]
    return [system, {"role": "user", "content": content}]


def test_the_tools_in_verls_own_tool_loop_and_the_score(tasks, tmp_path):
    yaml = tmp_path / "tools.yaml"
    yaml.write_text(docs_block("### The tool YAML"), encoding="utf-8")
    tools = initialize_tools_from_config(str(yaml))
    assert [type(t) for t in tools] == [DrawTool, DrawTool]
    assert [t.name for t in tools] == ["draw_boxes", "draw_lines"]
    model, processor = model_and_processor()
    server = TinyServer(model, processor, [TOOL_TURN, ANSWER_TURN], "</tool_response>")
    config, data = verl_config()
    loop = ToolAgentLoop(
        trainer_config=config,
        server_manager=server,
        tokenizer=processor.tokenizer,
        processor=processor,
        dataset_cls=PromptImages,
        data_config=data,
        hf_model_type="qwen2_5_vl",
        tools=ToolListWrap(tools),
    )
    row = verl_rows(str(tasks), size=1, **ENV)[0]
    # On the event loop the agent loop was built with, as verl's worker runs it.
    output = loop.loop.run_until_complete(
        loop.run(
            {"temperature": 1.0},
            raw_prompt=raw_prompt(row),
            tools_kwargs=row["extra_info"]["tools_kwargs"],
            extra_info=row["extra_info"],
        )
    )
    # The call reached the env and its drawing went back to the model as a second image.
    assert [c["images"] for c in server.calls] == [1, 2]
    assert output.multi_modal_data["images"][1].size == (112, 112)
    turns = output.extra_fields["drawenv_turns"]
    assert len(turns) == 1 and turns[0].startswith("<think> mark the dots </think>\n<tool_call>")
    assert DrawTool._episodes == {}  # freed: the call used the only drawing turn (max_turns 2)
    # The score, as verl's reward manager computes it from the decoded response.
    response = processor.tokenizer.decode(output.response_ids, skip_special_tokens=True)
    extra = {**row["extra_info"], **output.extra_fields}
    score = compute_score("drawenv", response, row["reward_model"]["ground_truth"], extra)
    assert score["score"] == 1.0 and score["accuracy"] == 1.0 and score["format"] == 1.0
    env = DrawSpatialEnv(task=str(tasks), protocol="tool_call", **ENV)
    env.reset(options={"index": 0})
    env.step(TOOL_TURN)
    assert env.step(ANSWER_TURN)[1] == score["score"]


def test_each_call_is_one_step_of_the_request_s_episode(tasks):
    """create / execute / release around every call, as verl's tool loop does."""
    boxes, lines = (
        DrawTool({"type": "native", "name": "draw_boxes"}, None),
        DrawTool({"type": "native", "name": "draw_lines"}, None),
    )
    row = verl_rows(str(tasks), size=1, max_turns=3)[0]

    class AgentData:
        request_id = "r1"
        messages: ClassVar = [{"role": "assistant", "content": "<think> mark </think>"}]
        extra_fields: ClassVar[dict] = {}

    async def call(tool, parameters):
        kwargs = row["extra_info"]["tools_kwargs"][tool.name]
        instance, _ = await tool.create(create_kwargs=kwargs["create_kwargs"])
        try:
            return await tool.execute(instance, parameters, agent_data=AgentData)
        finally:
            await tool.release(instance)

    first, _, _ = asyncio.run(call(boxes, CALL))
    assert len(first.image) == 1 and first.text.startswith("The index of the given image is 2")
    line = {
        "index": 2,
        "lines": [{"start_point_2d": [0, 0], "end_point_2d": [50, 50], "label": "p"}],
    }
    second, _, _ = asyncio.run(call(lines, line))
    assert second.text.startswith("The index of the given image is 3")
    assert len(AgentData.extra_fields["drawenv_turns"]) == 2
    assert DrawTool._episodes == {}  # max_turns 3: two calls drew, the last turn is the answer's
    bad, _, _ = asyncio.run(call(boxes, {"index": 9, "boxes": []}))
    assert bad.image is None and "rejected" in bad.text
    assert boxes._pending == {} and lines._pending == {}
    DrawTool._episodes.clear()


def test_tool_schemas_keep_the_item_format_in_verls_flat_schema():
    from verl.tools.schemas import OpenAIFunctionToolSchema

    for name, key, fragment in [
        ("draw_boxes", "boxes", '"bbox_2d": [x1, y1, x2, y2]'),
        ("draw_lines", "lines", '"start_point_2d": [x, y]'),
    ]:
        schema = OpenAIFunctionToolSchema.model_validate(tool_schema(name))
        assert fragment in schema.function.parameters.properties[key].description


@pytest.mark.parametrize("protocol", ["vilasr", "tool_call"])
def test_the_agent_loop_plays_a_whole_episode(tasks, protocol):
    from drawenv import Answer, Box, Draw
    from drawenv.protocol import get_protocol

    text = get_protocol(protocol)
    draw = text.format(Draw([Box(1, (10, 10, 60, 60), "dot")], thought="mark the dots"))
    answer = text.format(Answer("3", thought="three dots"))
    model, processor = model_and_processor()
    server = TinyServer(model, processor, [draw, answer], "The index of the given image is")
    # The marker counts the image lines: the question shows one, each feedback one more.
    server.scripts = [draw, draw, answer]
    config, data = verl_config()
    # Built as verl's worker builds it: hydra.utils.instantiate on the docs' YAML entry.
    entry = OmegaConf.create(docs_block("### The agent-loop YAML"))[0]
    entry.env = {**entry.env, "protocol": protocol, **ENV}
    loop = hydra.utils.instantiate(
        config=entry,
        trainer_config=config,
        server_manager=server,
        tokenizer=processor.tokenizer,
        processor=processor,
        hf_model_type="qwen2_5_vl",
        dataset_cls=RLHFDataset,
        data_config=data,
        tools=ToolListWrap([]),
    )
    assert isinstance(loop, DrawAgentLoop)
    row = verl_rows(str(tasks), size=1, **ENV)[0]
    output = loop.loop.run_until_complete(
        loop.run({"temperature": 1.0}, extra_info=row["extra_info"])
    )
    assert output.reward_score == 1.0 and output.num_turns == 4
    assert len(output.multi_modal_data["images"]) == 2 and [c["images"] for c in server.calls] == [
        1,
        2,
    ]
    # The env's message sits between the two turns, masked out of the loss; the log-probs the
    # server returned line up with the model's tokens.
    assert 0 in output.response_mask and output.response_mask[0] == 1
    assert len(output.response_logprobs) == len(output.response_mask)
    assert all((p < 0) == bool(m) for p, m in zip(output.response_logprobs, output.response_mask))
    decoded = processor.tokenizer.decode(output.response_ids, skip_special_tokens=True)
    assert "The index of the given image is 2" in decoded


def test_the_docs_data_example_writes_rows_verl_reads(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    exec(compile(docs_block("### Data"), "docs/integrations.md", "exec"), {})
    train = pd.read_parquet("train.parquet")
    assert len(train) == 16 and len(pd.read_parquet("val.parquet")) == 4
    row = train.iloc[0]
    assert row["data_source"] == "drawenv" and row["prompt"][1]["content"].startswith("<image>")
    assert json.loads(row["extra_info"]["drawenv"]) == {
        "task": "counting",
        "index": 0,
        "max_turns": 4,
    }
    # The row's spec rebuilds the same task, in the tools and in compute_score.
    env = DrawSpatialEnv(task="counting", max_turns=4)
    env.reset(options={"index": 0})
    assert row["extra_info"]["task_id"] == env.task.id
    assert row["reward_model"]["ground_truth"] == str(env.task.answer)


def test_scripts_set_up_and_the_docs_name_the_same_classes():
    script = (ROOT / "scripts" / "verl_env.sh").read_text()
    assert "verl==0.9.1" in script
    agent = docs_block("### The agent-loop YAML")
    assert "drawenv.integrations.verl.DrawAgentLoop" in agent
