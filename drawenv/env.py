"""DrawSpatial-v0: reason about images by drawing on them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from drawenv import prompts
from drawenv.actions import Answer, Draw, Operation
from drawenv.errors import DrawEnvError, check_choice, check_number, invalid_argument
from drawenv.geometry import resize_image
from drawenv.protocol import COORD_MODES, PROTOCOLS, get_protocol
from drawenv.rewards import Episode, get_reward
from drawenv.spaces import ModelText, observation_space
from drawenv.state import ImageState
from drawenv.tasks import TaskRecord, make_source
from drawenv.tasks.record import MAX_IMAGE_PIXELS

REPEAT_POLICIES = ("terminate", "feedback", "off")
INVALID_POLICIES = ("feedback", "terminate")


class DrawSpatialEnv(gym.Env[dict[str, Any], str]):
    """A VLM answers a spatial question about images, drawing boxes and lines to help itself.

    ## Description
    Each episode holds one task: one or more images and a question. In every turn the model writes
    text in the env's protocol (``vilasr`` or ``tool_call``): reasoning, then either drawing
    operations (labelled boxes and auxiliary lines on any earlier image, by 1-based index) or an
    answer. Each image a step draws on yields one new image, rendered from the root original plus
    its label layers (re-drawing a label replaces it), and shown in the next observation.

    ## Action Space
    ``ModelText``: the model's raw output text for this turn (any ``str``). Typed actions
    (:class:`~drawenv.actions.Draw`, :class:`~drawenv.actions.Answer`) are accepted too and take
    the same path (formatted with the protocol, then parsed).

    ## Observation Space
    ``Dict(images=Sequence(ImageSpace), text=UnicodeText)``: every image so far (originals first,
    ``HxWx3`` uint8, sizes may differ) and the env's latest message (the question prompt, the
    feedback for new images, or why the last turn was rejected). The image arrays are read-only.

    ## Rewards
    Paid once, at the end of the episode, by the ``reward`` preset (default ``"vilasr"``:
    ``0.5·accuracy + 0.5·format`` when the answer scores, else 0), built with ``reward_kwargs``.
    Failure endings pay 0 under the built-in presets. ``info["reward_terms"]`` names every term.
    See ``docs/rewards.md``.

    ## Starting State
    ``reset`` samples a task from ``task`` with the env's seeded ``np_random`` (or takes
    ``options={"index": i}``), smart-resizes its originals like Qwen2.5-VL's processor, and shows
    the question prompt. ``options={"progress": t}`` sets the training progress every reward sees
    as ``Episode.progress`` (the ``snra`` preset's schedule reads it).

    ## Episode End
    Terminated on an answer (``answer``), a turn with neither drawing nor answer (``no_action``),
    an invalid drawing when ``invalid_policy="terminate"`` (``invalid_action``), a repeated
    operation when ``repeat_policy="terminate"`` (``repeated_action``), or a step that would exceed
    ``max_images`` (``max_images``); truncated after ``max_turns`` turns (``max_turns``).
    ``info["termination"]`` names the reason.

    ## Arguments
    ``task`` ("mixed"), ``protocol`` ("vilasr"), ``coords`` ("pixel"), ``max_pixels``
    (256·28·28), ``min_pixels`` (4·28·28), ``patch_factor`` (28), ``max_images`` (42),
    ``max_turns`` (None: the task's ``metadata["max_turns"]``, else 10), ``repeat_policy``
    ("terminate"), ``repeat_tolerance`` (0.02),
    ``invalid_policy`` ("feedback"), ``reward`` ("vilasr"), ``reward_kwargs`` (None: the
    preset's defaults; e.g. ``{"k_max": 50}`` for ``"snra"``), ``difficulty`` (1),
    ``render_mode`` (None or "rgb_array"), ``copy_images`` (True), ``max_image_pixels``
    (64,000,000: larger originals raise, read from the file header before decoding). See
    ``docs/environment.md``.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 1}  # noqa: RUF012 (Gymnasium API)

    def __init__(
        self,
        task: Any = "mixed",
        protocol: str = "vilasr",
        coords: str = "pixel",
        max_pixels: int = 256 * 28 * 28,
        min_pixels: int = 4 * 28 * 28,
        patch_factor: int = 28,
        max_images: int = 42,
        max_turns: int | None = None,
        repeat_policy: str = "terminate",
        repeat_tolerance: float = 0.02,
        invalid_policy: str = "feedback",
        reward: Any = "vilasr",
        reward_kwargs: Mapping[str, Any] | None = None,
        difficulty: int = 1,
        render_mode: str | None = None,
        copy_images: bool = True,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
    ):
        self.protocol = get_protocol(check_choice("protocol", protocol, PROTOCOLS))
        self.coords = check_choice("coords", coords, COORD_MODES)
        self.patch_factor = check_number("patch_factor", patch_factor, low=1, integer=True)
        self.min_pixels = check_number("min_pixels", min_pixels, low=1, integer=True)
        self.max_pixels = check_number("max_pixels", max_pixels, low=min_pixels, integer=True)
        self.max_images = check_number("max_images", max_images, low=1, integer=True)
        if max_turns is not None:
            check_number("max_turns", max_turns, low=1, integer=True)
        self.max_turns = max_turns
        self.repeat_policy = check_choice("repeat_policy", repeat_policy, REPEAT_POLICIES)
        self.repeat_tolerance = check_number("repeat_tolerance", repeat_tolerance, low=0, high=1)
        self.invalid_policy = check_choice("invalid_policy", invalid_policy, INVALID_POLICIES)
        if reward_kwargs is not None and not (
            isinstance(reward_kwargs, Mapping) and all(isinstance(k, str) for k in reward_kwargs)
        ):
            raise invalid_argument(
                "reward_kwargs",
                reward_kwargs,
                "None or a mapping of keyword names (str) to values",
                'For example reward="snra", reward_kwargs={"k_max": 50}.',
            )
        self.reward_fn = get_reward(reward, **(reward_kwargs or {}))
        difficulty = check_number("difficulty", difficulty, low=1, high=3, integer=True)
        self.source = make_source(task, difficulty=difficulty)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise invalid_argument("render_mode", render_mode, "None or 'rgb_array'")
        self.render_mode = render_mode
        if not isinstance(copy_images, bool):
            raise invalid_argument("copy_images", copy_images, "True or False")
        self.copy_images = copy_images
        self.max_image_pixels = check_number(
            "max_image_pixels", max_image_pixels, low=1, integer=True
        )
        self.observation_space = observation_space()
        self.action_space = ModelText(protocol, coords)
        self.progress = 0.0
        self._system_prompts: dict[tuple[int, int], str] = {}
        self._task: TaskRecord | None = None
        self._state: ImageState | None = None
        self._done = True

    # -- public helpers ----------------------------------------------------------------------

    def set_training_progress(self, progress: float) -> None:
        """Set training progress t in [0, 1], which every reward sees as ``Episode.progress``
        (the ``snra`` preset's sharpness schedule reads it)."""
        self.progress = float(check_number("progress", progress, low=0, high=1))

    @property
    def task(self) -> TaskRecord | None:
        """The current episode's task record."""
        return self._task

    # -- Gymnasium API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        if "progress" in options:
            self.set_training_progress(options.pop("progress"))
        index = options.pop("index", None)
        if options:
            raise invalid_argument(
                "options", sorted(options), "only the keys 'index' and 'progress'"
            )
        if index is None:
            index = self.source.sample_index(self.np_random)
        task = self.source[int(index)]
        if not isinstance(task, TaskRecord):
            raise DrawEnvError(
                f"Invalid item {int(index)} of the task source {self.source!r}: expected a "
                f"TaskRecord, got {type(task).__name__}. `__getitem__` must return a TaskRecord."
            )
        self._task = task
        loaded = task.load_images(max_image_pixels=self.max_image_pixels)
        originals = []
        for k, image in enumerate(loaded, 1):
            try:
                resized = resize_image(
                    image,
                    factor=self.patch_factor,
                    min_pixels=self.min_pixels,
                    max_pixels=self.max_pixels,
                )
            except DrawEnvError as error:  # a bad array: name the record it came from
                raise DrawEnvError(f"Image {k} of task {task.id!r}: {error}") from None
            originals.append(resized)
        # Factors from shown pixels back to image 1's original pixels (detection ground truth).
        self._scale = (
            loaded[0].shape[1] / originals[0].shape[1],
            loaded[0].shape[0] / originals[0].shape[0],
        )
        self._state = ImageState(originals)
        self._shown = 0  # images already returned in an earlier observation
        self._turn = 0
        # A suite may set its own default (the maze suite's is 20); the argument overrides it.
        self._max_turns = self.max_turns or int(self._task.metadata.get("max_turns", 10))
        self._outputs: list[str] = []
        self._format_ok = True
        self._answer: str | None = None
        self._done = False
        self._text = prompts.question_prompt(self._task, self._state.sizes)
        width, height = self._state.sizes[0]
        self._system_prompt = self._system_prompts.get((width, height))
        if self._system_prompt is None:  # one per image size: a GRPO group resets on one item
            self._system_prompt = self.protocol.system_prompt(
                width=width, height=height, coords=self.coords
            )
            if len(self._system_prompts) < 64:
                self._system_prompts[width, height] = self._system_prompt
        self._sync_action_space()
        return self._observation(), self._info({}, [], [])

    def step(
        self, action: str | Draw | Answer
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._done or self._state is None:
            raise DrawEnvError("The episode has ended: call `env.reset()` before `env.step()`.")
        text = self._action_text(action)
        parsed = self.protocol.parse(text)
        self._turn += 1
        self._outputs.append(text)
        self._format_ok &= parsed.format_ok
        errors = list(parsed.errors)
        new_indices: list[int] = []
        termination = None

        if parsed.answer is not None:
            self._answer = parsed.answer
            termination = "answer"
        elif not parsed.drawing_attempted:
            errors.append("the turn has neither a drawing operation nor an answer")
            termination = "no_action"
        else:
            termination, new_indices = self._draw(parsed.operations, parsed.drawing_ok, errors)

        truncated = termination is None and self._turn >= self._max_turns
        if truncated:
            termination = "max_turns"
        self._done = termination is not None
        reward, terms = self._reward(termination) if self._done else (0.0, {})
        self._sync_action_space()
        info = self._info(terms, parsed.operations, new_indices, errors, termination)
        return self._observation(), reward, self._done and not truncated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._state is None:
            return None
        return self._state.images[-1].pixels.copy()

    # -- internals ---------------------------------------------------------------------------

    def _draw(
        self, operations: tuple[Operation, ...], drawing_ok: bool, errors: list[str]
    ) -> tuple[str | None, list[int]]:
        """Check and execute a drawing turn; returns (termination or None, new image indices)."""
        assert self._state is not None
        plan = self._state.plan(operations, coords=self.coords, tolerance=self.repeat_tolerance)
        errors += plan.errors
        errors += [f"warning: {w}" for w in plan.warnings]
        answer_now = self._turn >= self._max_turns - 1
        if plan.errors or not drawing_ok or not operations:
            self._format_ok = False
            if drawing_ok and not plan.errors:
                errors.append("the drawing turn holds no operation")
            if self.invalid_policy == "terminate":
                return "invalid_action", []
            self._text = prompts.rejected(
                [e for e in errors if not e.startswith("warning")], answer_now=answer_now
            )
            return None, []
        if plan.repeats and self.repeat_policy != "off":
            errors += plan.repeats
            self._format_ok = False
            if self.repeat_policy == "terminate":
                return "repeated_action", []
            self._text = prompts.rejected(plan.repeats, answer_now=answer_now)
            return None, []
        if len(self._state.images) + len(plan.groups) > self.max_images:
            errors.append(
                f"the step would create {len(plan.groups)} image(s) beyond the budget of "
                f"{self.max_images} images"
            )
            self._format_ok = False
            return "max_images", []
        new_indices = self._state.apply(plan)
        answer_now = answer_now or len(self._state.images) >= self.max_images
        sizes = self._state.sizes
        self._text = prompts.feedback(
            [(k, *sizes[k - 1]) for k in new_indices],
            answer_now=answer_now,
            warnings=plan.warnings,
        )
        return None, new_indices

    def _reward(self, termination: str) -> tuple[float, dict[str, float]]:
        assert self._task is not None and self._state is not None
        episode = Episode(
            answer=self._answer,
            truth=self._task.answer,
            answer_type=self._task.answer_type,
            options=self._task.options,
            termination=termination,
            format_ok=self._format_ok,
            boxes=self._drawn_boxes(),
            objects=self._task.objects,
            image_size=self._original_size,
            progress=self.progress,
            outputs=tuple(self._outputs),
            task_id=self._task.id,
        )
        reward, terms = self.reward_fn(episode)
        return float(reward), {name: float(value) for name, value in terms.items()}

    def _drawn_boxes(self) -> tuple[tuple[str, tuple[float, float, float, float]], ...]:
        """Boxes drawn on image 1 or its descendants, in image 1's original pixel coordinates."""
        assert self._state is not None
        sx, sy = self._scale
        return tuple(
            (op.label, (op.bbox[0] * sx, op.bbox[1] * sy, op.bbox[2] * sx, op.bbox[3] * sy))
            for target, ops in self._state.applied.items()
            if self._state.images[target].root == 0
            for op in ops
            if op.kind == "box"
        )

    def _action_text(self, action: Any) -> str:
        if isinstance(action, str):
            return action
        if isinstance(action, (Draw, Answer)):
            return self.protocol.format(action)
        raise invalid_argument(
            "action", type(action).__name__, "the model's output text (str), Draw or Answer"
        )

    def _observation(self) -> dict[str, Any]:
        assert self._state is not None
        images = [image.pixels for image in self._state.images]
        if self.copy_images:
            # Gymnasium's rule (check_env's `check_returned_data_not_reused`) is that no two
            # observations share memory, read-only or not; so an image shown before is copied,
            # and only images new to this observation are handed out without a copy.
            images[: self._shown] = [_read_only(pixels.copy()) for pixels in images[: self._shown]]
        self._shown = len(images)
        # Views of the stored read-only arrays cannot be made writeable by the caller.
        return {"images": tuple(pixels.view() for pixels in images), "text": self._text}

    def _info(
        self,
        terms: dict[str, float],
        operations: tuple[Operation, ...] | list[Operation],
        new_indices: list[int],
        errors: list[str] | None = None,
        termination: str | None = None,
    ) -> dict[str, Any]:
        assert self._task is not None and self._state is not None
        info: dict[str, Any] = {
            "reward_terms": dict(terms),
            "operations": list(operations),
            "new_image_indices": list(new_indices),
            "errors": list(errors or []),
            "turn": self._turn,
            "task_id": self._task.id,
            "system_prompt": self._system_prompt,
        }
        if termination is not None:
            # One type per key whatever the task, so that vector envs batch infos losslessly:
            # the truth as text (a letter, a number or free text) and as a float (NaN unless
            # the answer is a number).
            answer = self._task.answer
            info["termination"] = termination
            info["answer"] = str(answer)
            info["answer_number"] = (
                float(answer) if self._task.answer_type in ("numeric", "count") else math.nan
            )
            info["answer_type"] = self._task.answer_type
            info["prediction"] = self._answer
        return info

    def _sync_action_space(self) -> None:
        assert self._state is not None
        self.action_space.image_sizes = self._state.sizes

    @property
    def _original_size(self) -> tuple[int, int]:
        assert self._state is not None
        width, height = self._state.sizes[0]
        return round(width * self._scale[0]), round(height * self._scale[1])


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


__all__ = ["DrawSpatialEnv"]
