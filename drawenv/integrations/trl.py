"""TRL's ``GRPOTrainer`` with drawing tools: an ``environment_factory`` class, its reward function,
and the dataset both read. Needs ``drawenv[trl]``.

::

    from functools import partial
    from trl import GRPOConfig, GRPOTrainer
    from drawenv.integrations import qwen
    from drawenv.integrations.trl import TRLDrawingEnv, TRLEnvReward, trl_dataset

    processor = qwen.use_tools_template(processor)        # Qwen2.5-VL renders and parses tools
    trainer = GRPOTrainer(
        model,
        reward_funcs=TRLEnvReward(),                      # the env's reward, format included
        args=GRPOConfig(..., generation_kwargs=qwen.generation_kwargs(processor)),
        train_dataset=trl_dataset("counting", size=256),
        processing_class=processor,
        environment_factory=partial(TRLDrawingEnv, task="counting"),
    )

TRL makes one instance per rollout, keeps it in a pool and resets it with the row's columns; every
public method of the class is offered to the model as a tool, so :class:`TRLDrawingEnv` has only
``reset``, ``draw_boxes`` and ``draw_lines`` (its episode is a property). See
``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from drawenv.errors import DrawEnvError, invalid_argument
from drawenv.integrations.core import ToolEpisode
from drawenv.rewards.trl import completion_text, progress_from


class TRLDrawingEnv:
    """One rollout's drawing episode, for ``GRPOTrainer(environment_factory=…)``.

    Args:
        task: the env's ``task`` (a suite name, ``"mixed"``, a ``.jsonl`` path, …); the same as
            the dataset's (:func:`trl_dataset`), whose rows name the task by index.
        **env_kwargs: further :class:`~drawenv.env.DrawSpatialEnv` arguments (``max_turns``,
            ``reward``, ``difficulty``, …).
    """

    def __init__(self, task: Any = "mixed", **env_kwargs: Any):
        self._episode = ToolEpisode(task=task, **env_kwargs)
        self._stepped: list[bool] = []  # per call received: did it take an env step?

    @property
    def episode(self) -> ToolEpisode:
        """The current episode (a property, so TRL does not offer it as a tool)."""
        return self._episode

    def reset(self, index: int | None = None, task_id: str | None = None, **row: Any) -> list:
        """Start the episode of dataset row ``index``; returns the task's images and question,
        which TRL appends to the row's last (user) message. Clears all state of the last
        rollout. Other columns of the row are ignored."""
        if index is None:
            raise invalid_argument(
                "index",
                None,
                "the task's index in the env's source",
                "Build the dataset with "
                "drawenv.integrations.trl.trl_dataset(), whose rows carry it.",
            )
        self._stepped = []
        start = self._episode.reset(index=int(index))
        if task_id is not None and start.task_id != task_id:
            raise DrawEnvError(
                f"Row {index} is task {task_id!r} but the env's source has {start.task_id!r} "
                "there: build the dataset and the environment_factory with the same task and "
                "difficulty."
            )
        return [*(_image_part(pixels) for pixels in start.images), _text_part(start.text)]

    def draw_boxes(self, index: int, boxes: list[dict]) -> list:
        """Draw labelled boxes on one image; the drawing is shown as a new image.

        Args:
            index: 1-based number of the image to draw on, over every image shown so far.
            boxes: A list of boxes, each an object {"bbox_2d": [x1, y1, x2, y2], "label":
                "name"}: the top-left and bottom-right corners in pixels of the image drawn
                on, and a short label.

        Returns:
            The new image with its number and size, or why nothing was drawn.
        """
        return self._call("draw_boxes", {"index": index, "boxes": boxes})

    def draw_lines(self, index: int, lines: list[dict]) -> list:
        """Draw labelled lines on one image; the drawing is shown as a new image.

        Args:
            index: 1-based number of the image to draw on, over every image shown so far.
            lines: A list of lines, each an object {"start_point_2d": [x, y],
                "end_point_2d": [x, y], "label": "name"}: start and end in pixels of the image
                drawn on, and a short label.

        Returns:
            The new image with its number and size, or why nothing was drawn.
        """
        return self._call("draw_lines", {"index": index, "lines": lines})

    def _call(self, name: str, arguments: dict) -> list:
        before = len(self._episode.calls)
        result = self._episode.call(name, arguments)
        self._stepped.append(len(self._episode.calls) > before)
        return [*(_image_part(pixels) for pixels in result.images), _text_part(result.text)]


@dataclass(frozen=True)
class TRLEnvReward:
    """The env's reward of each rollout, for ``GRPOTrainer(reward_funcs=…)`` with
    :class:`TRLDrawingEnv`.

    It reads TRL's ``environments`` (one per completion) and the completed messages: the last
    assistant message is the final turn; the reasoning of every message (TRL's
    ``reasoning_content``, or ``<think>`` left in the content) goes back to the calls it made, so
    the env judges the format as it judges a ``<think>…</think>`` turn. The training progress
    follows ``trainer_state`` (global_step / max_steps).
    """

    __name__ = "drawenv_reward"

    def __call__(
        self,
        completions: Sequence[Any],
        environments: Sequence[TRLDrawingEnv] | None = None,
        trainer_state: Any = None,
        **kwargs: Any,
    ) -> list[float]:
        """One reward per completion."""
        if environments is None:
            raise invalid_argument(
                "environments",
                None,
                "TRL's environment instances",
                "Pass environment_factory=TRLDrawingEnv (or a partial of it) to GRPOTrainer.",
            )
        progress = progress_from(trainer_state)
        rewards = []
        for messages, env in zip(completions, environments, strict=True):
            if progress is not None:
                env.episode.env.set_training_progress(progress)
            thoughts = _call_thoughts(messages, env._stepped)
            rewards.append(env.episode.finish(final_text(messages), thoughts=thoughts))
        return rewards


def trl_dataset(
    task: Any = "mixed", size: int | None = None, *, first: int = 0, **env_kwargs: Any
) -> Any:
    """A ``datasets.Dataset`` of ``size`` rows (every record of a finite source by default), row
    ``k`` being task ``first + k`` of ``task``'s source.

    Columns: ``prompt`` (the system message with the env's ``tool_call`` instructions, and an
    empty user message that :meth:`TRLDrawingEnv.reset` fills with the images and question),
    ``index`` and ``task_id``. ``env_kwargs`` must match the environment_factory's (``difficulty``
    changes the items; image sizes change the prompt).
    """
    from datasets import Dataset

    episode = ToolEpisode(task=task, **env_kwargs)
    rows = []
    for index in episode.indices(first, size):
        start = episode.reset(index=index)
        system = {"role": "system", "content": [_text_part(start.system_prompt)]}
        rows.append(
            {
                "prompt": [system, {"role": "user", "content": []}],
                "index": index,
                "task_id": start.task_id,
            }
        )
    return Dataset.from_list(rows)


def final_text(messages: Sequence[dict] | str) -> str:
    """The final turn of a completion as env text: the last assistant message without tool
    calls, its reasoning put back as ``<think>…</think>``; ``""`` when the rollout ended on a
    tool call (no answer)."""
    if isinstance(messages, str):
        return messages
    if not messages:
        return ""
    last = messages[-1]
    if last.get("role", "assistant") != "assistant" or last.get("tool_calls"):
        return ""
    return completion_text([last])


def _call_thoughts(messages: Sequence[dict] | str, stepped: Sequence[bool]) -> list | None:
    """The reasoning behind each call that took an env step, from the messages: each tool
    result TRL got from the env follows the assistant message that made its call."""
    if isinstance(messages, str):
        return None
    thoughts, current = [], None
    for message in messages:
        if message.get("role") == "assistant":
            current = _thought(message)
        elif message.get("role") == "tool" and isinstance(message.get("content"), list):
            thoughts.append(current)  # a list: the env's answer (TRL's errors are text)
    # TRL drops the results of a turn that would overflow max_completion_length, though the
    # env ran its calls: those came from the last assistant message.
    thoughts += [current] * (len(stepped) - len(thoughts))
    return [t for t, took_step in zip(thoughts, stepped) if took_step]


def _thought(message: dict) -> str | None:
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning.strip():
        return reasoning.strip()
    content = _content_text(message.get("content"))
    start, end = content.find("<think>"), content.find("</think>")
    if 0 <= start < end:
        return content[start + 7 : end].strip()
    return None


def _content_text(content: Any) -> str:
    return completion_text([{"role": "assistant", "content": content}]) if content else ""


def _image_part(pixels: Any) -> dict:
    return {"type": "image", "image": Image.fromarray(pixels)}


def _text_part(text: str) -> dict:
    return {"type": "text", "text": text}


__all__ = ["TRLDrawingEnv", "TRLEnvReward", "final_text", "trl_dataset"]
