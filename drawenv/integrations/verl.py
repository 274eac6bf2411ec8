"""verl with drawing: a ``BaseTool`` per drawing tool, a ``compute_score`` for verl's reward
manager, and an ``AgentLoopBase`` that plays whole episodes. Needs ``drawenv[verl]`` (verl pins
its own transformers: give it its own environment, ``scripts/verl_env.sh``).

Two paths (``docs/integrations.md`` has the YAML files and launch commands):

- **tools** in verl's own ``tool_agent`` loop: :class:`DrawTool` (one per tool name in the tool
  YAML) steps the row's episode one call at a time; :func:`compute_score` replays the calls and
  the final turn in a plain env and pays its reward.
- **agent loop** :class:`DrawAgentLoop` (``agent_name: drawenv_agent``): the model writes whole
  env turns in either text protocol (``vilasr`` or ``tool_call``), the env answers with new images
  and feedback, and the output carries the env's reward (``reward_score``).

Rows (:func:`verl_rows`) carry the task in ``extra_info["drawenv"]`` (``task``, ``index`` and the
env's arguments) and the tools' ``create_kwargs``.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any, ClassVar
from uuid import uuid4

from PIL import Image
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from drawenv.env import DrawSpatialEnv
from drawenv.errors import invalid_argument
from drawenv.integrations.core import BOX_ITEMS, INDEX_HELP, LINE_ITEMS, TOOL_NAMES, ToolEpisode

DATA_SOURCE = "drawenv"
"""The ``data_source`` of :func:`verl_rows`' rows."""

_ITEMS = {"draw_boxes": ("boxes", BOX_ITEMS), "draw_lines": ("lines", LINE_ITEMS)}
_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_TOOL_RESPONSES = re.compile(r"<tool_response>.*</tool_response>", re.S)


def tool_schema(name: str) -> dict:
    """The OpenAI function schema of ``draw_boxes`` or ``draw_lines`` as verl keeps it: flat
    properties (verl's schema model has no ``items``), the item format in the description."""
    if name not in _ITEMS:
        raise invalid_argument("name", name, "draw_boxes or draw_lines")
    key, items = _ITEMS[name]
    what = "boxes" if key == "boxes" else "lines"
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"Draw labelled {what} on one image; the drawing is shown as a new "
            "image.",
            "parameters": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "description": INDEX_HELP},
                    key: {"type": "array", "description": items[0].upper() + items[1:]},
                },
                "required": ["index", key],
            },
        },
    }


def verl_rows(task: Any = "mixed", size: int | None = None, *, first: int = 0, **env_kwargs):
    """Rows for verl's ``RLHFDataset`` (write them with ``pandas.DataFrame(rows).to_parquet``):
    row ``k`` is task ``first + k`` of ``task``, its images in ``images``, the prompt (system
    message and question, one ``<image>`` per image) in ``prompt``, the truth in
    ``reward_model``, the env's arguments and the index in ``extra_info["drawenv"]`` and the
    tools' ``create_kwargs`` in ``extra_info["tools_kwargs"]``. ``env_kwargs`` must not hold
    ``protocol``: the tool path uses ``tool_call``, the agent loop its own setting."""
    import io

    episode = ToolEpisode(task=task, **env_kwargs)
    rows = []
    for index in episode.indices(first, size):
        start = episode.reset(index=index)
        images = []
        for pixels in start.images:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            images.append({"bytes": buffer.getvalue()})
        spec = {"task": str(task), "index": index, **env_kwargs}
        rows.append(
            {
                "data_source": DATA_SOURCE,
                "prompt": [
                    {"role": "system", "content": start.system_prompt},
                    {"role": "user", "content": "<image>" * len(images) + start.text},
                ],
                "images": images,
                "reward_model": {"style": "rule", "ground_truth": str(episode.env.task.answer)},
                "extra_info": {
                    "drawenv": json.dumps(spec),
                    "task_id": start.task_id,
                    "tools_kwargs": {
                        name: {"create_kwargs": {"drawenv": json.dumps(spec)}}
                        for name in TOOL_NAMES
                    },
                },
            }
        )
    return rows


# -- the tool path -------------------------------------------------------------------------------


class DrawTool(BaseTool):
    """``draw_boxes`` or ``draw_lines`` for verl's tool loop, one instance per tool name.

    verl calls ``create`` / ``execute`` / ``release`` around every single call, so the episode
    lives here, keyed by the trajectory's request id: reset lazily from the row's
    ``create_kwargs`` (``{"drawenv": spec}``, as :func:`verl_rows` writes it) at its first call,
    freed when it ends (the env ended it, or no drawing turn is left). verl never tells a tool
    that the model answered, so at most ``max_episodes`` (config, default 1024) are kept, the
    oldest dropped first. Each call's reasoning is the ``<think>`` of the message that made it;
    the env turns taken go to ``agent_data.extra_fields["drawenv_turns"]``, which verl hands
    :func:`compute_score` as ``extra_info``.
    """

    # Shared by the tools of a worker process: one trajectory calls both.
    _episodes: ClassVar[OrderedDict[str, ToolEpisode]] = OrderedDict()

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        config = dict(config or {})
        self.max_episodes = int(config.pop("max_episodes", 1024))
        self.config_name = config.pop("name", None)
        super().__init__(config, tool_schema or self._default_schema(config))
        self._pending: dict[str, dict] = {}

    def _default_schema(self, config: dict) -> OpenAIFunctionToolSchema:
        return OpenAIFunctionToolSchema.model_validate(
            tool_schema(self.config_name or "draw_boxes")
        )

    async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, Any]:
        """Remember the row's ``create_kwargs`` for the call that follows."""
        instance_id = instance_id or uuid4().hex
        self._pending[instance_id] = dict(kwargs.get("create_kwargs") or {})
        return instance_id, ToolResponse()

    async def execute(
        self, instance_id: str, parameters: dict[str, Any], **kwargs: Any
    ) -> tuple[Any, float, dict]:
        """Step the trajectory's episode with this call; the new image and the env's message."""
        agent_data = kwargs.get("agent_data")
        create_kwargs = self._pending.get(instance_id, {})
        key = getattr(agent_data, "request_id", None) or create_kwargs.get("request_id")
        if key is None:
            text = "The drawing tool needs verl's agent_data (its request id) to find the episode."
            return ToolResponse(text=text), 0.0, {"drew": 0}
        episode = self._episodes.get(key)
        if episode is None:
            spec = _spec(create_kwargs.get("drawenv"))
            episode = ToolEpisode(task=spec.pop("task"), **_env_kwargs(spec))
            episode.reset(index=spec["index"])
            self._episodes[key] = episode
            while len(self._episodes) > self.max_episodes:
                self._episodes.popitem(last=False)
        result = episode.call(self.name, parameters, thought=_message_thought(agent_data))
        if agent_data is not None:
            agent_data.extra_fields["drawenv_turns"] = episode.replay_texts()
        if episode.done or episode.calls_left == 0:
            self._episodes.pop(key, None)
        images = [Image.fromarray(pixels) for pixels in result.images]
        response = (
            ToolResponse(text=result.text, image=images)
            if images
            else ToolResponse(text=result.text)
        )
        return response, 0.0, {"drew": len(images)}

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        """Forget the call; the episode stays until it ends."""
        self._pending.pop(instance_id, None)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """The env's reward of a tool-path rollout, for verl's reward manager
    (``custom_reward_function.path`` = this module, ``name: compute_score``).

    It replays the env turns the tools took (``extra_info["drawenv_turns"]``) and the final turn
    (the text after the last tool response of ``solution_str``) in a plain
    ``DrawSpatialEnv(protocol="tool_call")`` on the row's task, and returns ``{"score": reward,
    **reward_terms}``. ``ground_truth`` is not read: the env holds the truth.
    """
    extra_info = dict(extra_info or {})
    spec = _spec(extra_info.get("drawenv"))
    env = DrawSpatialEnv(task=spec.pop("task"), protocol="tool_call", **_env_kwargs(spec))
    env.reset(options={"index": spec["index"]})
    turns = list(extra_info.get("drawenv_turns") or [])
    final = _TOOL_RESPONSES.split(solution_str)[-1] if isinstance(solution_str, str) else ""
    final = re.sub(r"^\s*(?:user\s*)?assistant\s*\n", "", final) if turns else final
    reward, info = 0.0, {}
    for text in [*turns, final.strip()]:
        _, reward, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            break
    return {"score": float(reward), **info.get("reward_terms", {})}


# -- the agent-loop path -------------------------------------------------------------------------


@register("drawenv_agent")
class DrawAgentLoop(AgentLoopBase):
    """Whole ``DrawSpatial-v0`` episodes as one verl agent loop: the model writes each turn in
    the env's text protocol, the env's new images and feedback come back as the next user
    message, and the output's ``reward_score`` is the env's reward (0 when the response budget
    ran out before the episode ended).

    Agent-loop config (YAML) keys: ``env`` (a mapping of :class:`~drawenv.env.DrawSpatialEnv`
    arguments, ``protocol`` included; ``task`` and ``index`` come from the row's
    ``extra_info["drawenv"]``).
    """

    def __init__(self, *args: Any, env: dict | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.env_kwargs = dict(env or {})
        self.response_length = self.rollout_config.response_length

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Play the row's episode to its end (or the response budget)."""
        spec = _spec((kwargs.get("extra_info") or {}).get("drawenv"))
        env = DrawSpatialEnv(task=spec.pop("task"), **{**_env_kwargs(spec), **self.env_kwargs})
        obs, info = env.reset(options={"index": spec["index"]})
        images = [Image.fromarray(pixels) for pixels in obs["images"]]
        messages = [
            {"role": "system", "content": info["system_prompt"]},
            {"role": "user", "content": [*map(_image, images), _text(obs["text"])]},
        ]
        ids = await self.ct_build_initial_tokens(messages, images=images)
        mask: list[int] = []
        logprobs: list[float] | None = None
        request_id = uuid4().hex
        reward, terms, turns, done = 0.0, {}, 0, False
        while not done and len(mask) < self.response_length:
            output = await self.server_manager.generate(
                request_id=request_id,
                prompt_ids=ids,
                sampling_params=sampling_params,
                image_data=images,
            )
            if logprobs is None and output.log_probs:
                logprobs = [0.0] * len(mask)  # none so far: the first turn, or a server without
            merged, mask, logprobs = await self.ct_merge_assistant_token(
                ids, output.token_ids, mask, logprobs, assistant_logprobs=output.log_probs
            )
            ids = merged.token_ids
            text = self.tokenizer.decode(output.token_ids, skip_special_tokens=True)
            obs, reward, terminated, truncated, info = env.step(text)
            turns += 1
            done = terminated or truncated
            if done:
                terms = info["reward_terms"]
                break
            new = [Image.fromarray(obs["images"][k - 1]) for k in info["new_image_indices"]]
            previous = list(messages)
            messages += [
                {"role": "assistant", "content": text},
                {"role": "user", "content": [*map(_image, new), _text(obs["text"])]},
            ]
            merged, mask, logprobs = await self.ct_merge_context_msg(
                previous, messages, ids, mask, logprobs
            )
            ids = merged.token_ids
            images += new
        if not done:
            reward = 0.0
        response = ids[len(ids) - len(mask) :] if mask else []
        prompt = ids[: len(ids) - len(mask)]
        return AgentLoopOutput(
            prompt_ids=prompt,
            response_ids=response[: self.response_length],
            response_mask=mask[: self.response_length],
            response_logprobs=logprobs[: self.response_length] if logprobs else None,
            multi_modal_data={"images": images},
            reward_score=float(reward),
            num_turns=2 * turns,
            metrics={},
            extra_fields={"reward_extra_info": {"drawenv_turns": turns, **terms}},
        )


# -- helpers -------------------------------------------------------------------------------------


def _spec(value: Any) -> dict:
    """The row's ``extra_info["drawenv"]``: a mapping or its JSON text with task and index."""
    if isinstance(value, str):
        value = json.loads(value)
    if not (isinstance(value, dict) and "task" in value and "index" in value):
        raise invalid_argument(
            'extra_info["drawenv"]',
            value,
            "a mapping (or its JSON) with the task and the index",
            "Build the rows with drawenv.integrations.verl.verl_rows().",
        )
    return dict(value)


def _env_kwargs(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("index", "protocol")}


def _message_thought(agent_data: Any) -> str | None:
    """The ``<think>`` text of the assistant message that made the call (``None`` without)."""
    messages = getattr(agent_data, "messages", None) or []
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content") or ""
            found = _THINK.search(content) if isinstance(content, str) else None
            return found.group(1).strip() if found else None
    return None


def _image(image: Image.Image) -> dict:
    return {"type": "image", "image": image}


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


__all__ = [
    "DATA_SOURCE",
    "DrawAgentLoop",
    "DrawTool",
    "compute_score",
    "tool_schema",
    "verl_rows",
]
