"""An episode driven one tool call at a time, for trainers that run tools themselves.

TRL's ``environment_factory`` and verl's tool and agent loops parse the model's function calls
and call a tool per call; :class:`ToolEpisode` is the one bridge both adapters use. It wraps a
:class:`~drawenv.env.DrawSpatialEnv` with the ``tool_call`` protocol and turns every call into one
env step, so rewards, budgets, repeat and invalid checks are the env's own::

    episode = ToolEpisode(task="counting")
    start = episode.reset(seed=0)                  # images + question
    result = episode.call("draw_boxes", {"index": 1, "boxes": [...]}, thought="…")
    reward = episode.finish("<think> … </think> <answer> 3 </answer>")

How this differs from a ``DrawSpatial-v0`` turn (see ``docs/integrations.md``):

- one call is one env step: a turn of three calls on image 1 makes three new images (2, 3, 4),
  each shown at once and drawable by the next call, where one env turn makes one new image per
  image it draws on and shows them after the turn;
- every call counts against ``max_turns``; the last turn is kept for the answer, so at most
  ``max_turns - 1`` calls draw and later ones are refused with a message (no step is taken);
- :meth:`ToolEpisode.replay_texts` gives the env turns that replay the episode in a plain env.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drawenv.env import DrawSpatialEnv
from drawenv.errors import DrawEnvError, invalid_argument

TOOL_NAMES = ("draw_boxes", "draw_lines")
"""The drawing tools an episode accepts, as named in the ``tool_call`` protocol."""

BOX_ITEMS = (
    'a list of boxes, each an object {"bbox_2d": [x1, y1, x2, y2], "label": "name"}: the '
    "top-left and bottom-right corners in pixels of the image drawn on, and a short label"
)
LINE_ITEMS = (
    'a list of lines, each an object {"start_point_2d": [x, y], "end_point_2d": [x, y], '
    '"label": "name"}: start and end in pixels of the image drawn on, and a short label'
)
INDEX_HELP = "1-based number of the image to draw on, over every image shown so far"
"""How the tools' arguments are written, in words: trainers whose tool schemas keep only flat
properties (verl's, TRL's from docstrings) drop the nested item schema, so the descriptions carry
the item format."""


@dataclass(frozen=True)
class Start:
    """What :meth:`ToolEpisode.reset` shows the model.

    Attributes:
        images: the task's images (``HxWx3`` uint8), numbered 1, 2, … in this order.
        text: the question prompt (image lines, question, options, answer instruction).
        system_prompt: the env's instructions for the ``tool_call`` protocol.
        task_id: the task record's id.
    """

    images: tuple[np.ndarray, ...]
    text: str
    system_prompt: str
    task_id: str


@dataclass(frozen=True)
class CallResult:
    """The outcome of one tool call.

    Attributes:
        images: the images the call created (one at most), to show to the model.
        indices: their 1-based numbers.
        text: the env's message: the new images' lines, or why nothing was drawn.
        errors: the problems found in the call (empty when it drew cleanly).
        done: the episode has ended (a repeat or invalid call under a ``"terminate"`` policy, or
            the image budget); :meth:`ToolEpisode.finish` then returns the reward already paid.
    """

    images: tuple[np.ndarray, ...]
    indices: tuple[int, ...]
    text: str
    errors: tuple[str, ...] = ()
    done: bool = False


@dataclass
class _Call:
    name: str
    arguments: Any
    thought: str | None
    text: str = field(default="")


class ToolEpisode:
    """A ``DrawSpatial-v0`` episode stepped one tool call at a time.

    Args:
        env: an existing :class:`~drawenv.env.DrawSpatialEnv` with ``protocol="tool_call"``, or
            ``None`` to build one from ``env_kwargs``.
        **env_kwargs: arguments of :class:`~drawenv.env.DrawSpatialEnv` (``task``,
            ``max_turns``, ``reward``, …); ``protocol`` is always ``"tool_call"``.
    """

    def __init__(self, env: DrawSpatialEnv | None = None, **env_kwargs: Any):
        if env is not None and env_kwargs:
            raise invalid_argument(
                "env_kwargs", sorted(env_kwargs), "none when env is given", "Configure the env."
            )
        if env is None:
            if env_kwargs.setdefault("protocol", "tool_call") != "tool_call":
                raise invalid_argument("protocol", env_kwargs["protocol"], "'tool_call'")
            env = DrawSpatialEnv(**env_kwargs)
        elif getattr(env.unwrapped, "protocol", None) is None or env.unwrapped.protocol.name != (
            "tool_call"
        ):
            raise invalid_argument("env", env, "a DrawSpatialEnv with protocol='tool_call'")
        self.env = env.unwrapped
        self._calls: list[_Call] = []
        self._reset_args: dict[str, Any] | None = None
        self._result: tuple[float, dict[str, Any]] | None = None
        self._start: Start | None = None

    # -- episode -----------------------------------------------------------------------------

    def indices(self, first: int = 0, size: int | None = None) -> range:
        """The task indices ``first .. first + size - 1`` (``size`` ``None``: to the end of a
        finite source), for building a trainer's dataset one row per item."""
        source = self.env.source
        if size is None:
            if source.size is None:
                raise invalid_argument("size", None, "a row count for an endless suite", "size=256")
            size = source.size - first
        if not (isinstance(size, int) and size >= 1):
            raise invalid_argument("size", size, "a positive number of rows")
        return range(first, first + size)

    def reset(
        self, *, seed: int | None = None, index: int | None = None, progress: float | None = None
    ) -> Start:
        """Start an episode on task ``index`` of the env's source (else one sampled from
        ``seed``); ``progress`` is the training progress every reward sees. Clears all state."""
        options: dict[str, Any] = {}
        if index is not None:
            options["index"] = int(index)
        if progress is not None:
            options["progress"] = progress
        self._reset_args = {"seed": seed, "options": options}
        obs, info = self.env.reset(seed=seed, options=dict(options))
        self._calls = []
        self._result = None
        self._start = Start(
            images=tuple(obs["images"]),
            text=obs["text"],
            system_prompt=info["system_prompt"],
            task_id=info["task_id"],
        )
        return self._start

    @property
    def start(self) -> Start:
        """What the last :meth:`reset` returned."""
        if self._start is None:
            raise DrawEnvError("No episode yet: call `reset()` first.")
        return self._start

    @property
    def done(self) -> bool:
        """The episode has ended (answered, or ended by a call)."""
        return self._result is not None

    @property
    def calls_left(self) -> int:
        """How many more calls may be stepped: the env's last turn is kept for the answer, and none
        once the image budget is full (a call past either budget would end the episode unpaid)."""
        self._check_started()
        if len(self.env._state.images) >= self.env.max_images:
            return 0
        return max(self.env._max_turns - 1 - len(self._calls), 0)

    def call(self, name: str, arguments: Any, thought: str | None = "") -> CallResult:
        """Run one tool call as one env step; never raises on what the model wrote.

        Args:
            name: the tool's name (``draw_boxes`` or ``draw_lines``).
            arguments: the call's arguments, a mapping (or its JSON text) with ``index`` and
                ``boxes`` or ``lines``.
            thought: the reasoning written before the call, or ``None`` where the model wrote
                none (the env's format rule then fails the episode's format, as it would fail a
                turn without ``<think>``).
        """
        self._check_started()
        if self._result is not None:
            return CallResult((), (), "The episode has ended; no more drawing.", ("ended",), True)
        if name not in TOOL_NAMES:
            problem = f"unknown tool {name!r}; the tools are draw_boxes and draw_lines"
            return CallResult((), (), f"Nothing was drawn: {problem}.", (problem,))
        if self.calls_left == 0:
            problem = "no drawing turn is left"
            return CallResult(
                (), (), "You cannot draw any more. Give your final answer now.", (problem,)
            )
        entry = _Call(name, arguments, thought)
        entry.text = _turn_text(thought, _call_json(name, arguments))
        self._calls.append(entry)
        obs, reward, terminated, truncated, info = self.env.step(entry.text)
        if terminated or truncated:
            self._result = (reward, info)
        indices = tuple(info["new_image_indices"])
        images = tuple(obs["images"][k - 1] for k in indices)
        return CallResult(images, indices, obs["text"], tuple(info["errors"]), self.done)

    def finish(self, text: str, thoughts: Sequence[str | None] | None = None) -> float:
        """End the episode with the model's final turn (``<think>…</think> <answer>…</answer>``)
        and return its reward; later calls return the same reward.

        ``thoughts`` (one per call so far) replaces the reasoning given to :meth:`call`: trainers
        that call tools before the reward function sees the messages pass it here, and the
        episode is replayed with it (same task, same drawings) before the final turn.
        """
        self._check_started()
        if self._result is None:
            if thoughts is not None:
                self._rethink(thoughts)
            if self._result is None:
                _, reward, _, _, info = self.env.step(text if isinstance(text, str) else "")
                self._result = (reward, info)
        return self._result[0]

    @property
    def info(self) -> dict[str, Any]:
        """The env's ``info`` of the episode's last step (``reward_terms``, ``termination``, …);
        empty until the episode has ended."""
        return dict(self._result[1]) if self._result is not None else {}

    def replay_texts(self) -> list[str]:
        """The env turns this episode took so far: step a plain ``DrawSpatialEnv`` with
        ``protocol="tool_call"`` (same task, same arguments) through them to replay it."""
        return [c.text for c in self._calls]

    @property
    def calls(self) -> list[tuple[str, Any]]:
        """The ``(name, arguments)`` of every call that was stepped, in order."""
        return [(c.name, c.arguments) for c in self._calls]

    # -- internals ---------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self._reset_args is None:
            raise DrawEnvError("No episode yet: call `reset()` before `call()` or `finish()`.")

    def _rethink(self, thoughts: Sequence[str | None]) -> None:
        if len(thoughts) != len(self._calls):
            raise invalid_argument(
                "thoughts",
                f"{len(thoughts)} thoughts",
                f"one per call ({len(self._calls)})",
            )
        if all(t == c.thought for t, c in zip(thoughts, self._calls)):
            return
        assert self._reset_args is not None
        calls = self._calls
        self.env.reset(seed=self._reset_args["seed"], options=dict(self._reset_args["options"]))
        self._calls = []
        for c, thought in zip(calls, thoughts):
            c.thought, c.text = thought, _turn_text(thought, _call_json(c.name, c.arguments))
            self._calls.append(c)
            _, reward, terminated, truncated, info = self.env.step(c.text)
            if terminated or truncated:
                self._result = (reward, info)
                return


def _call_json(name: str, arguments: Any) -> str:
    """A ``<tool_call>`` body; values that are not JSON are written as their ``repr`` text (and a
    structure that cannot be written at all as text) for the protocol to reject with its
    message."""
    if isinstance(arguments, Mapping):
        arguments = dict(arguments)
    try:
        body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        body = json.dumps({"name": name, "arguments": str(arguments)}, ensure_ascii=False)
    # As the protocol writes it: "<" and "`" escaped, so a label cannot close the tag.
    return body.replace("<", "\\u003c").replace("`", "\\u0060")


def _turn_text(thought: str | None, body: str) -> str:
    call = f"<tool_call>{body}</tool_call>"
    if thought is None:
        return call
    # The protocol's tags inside a thought would change how the turn parses; the call is the
    # turn's action, so they are dropped from the reasoning.
    return f"<think> {_TAGS.sub('', thought).strip()} </think>\n{call}"


_TAGS = re.compile(r"</?(?:think|answer|tool_call)>")


__all__ = [
    "BOX_ITEMS",
    "INDEX_HELP",
    "LINE_ITEMS",
    "TOOL_NAMES",
    "CallResult",
    "Start",
    "ToolEpisode",
]
