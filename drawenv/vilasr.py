"""DrawSpatial-ViLaSR-v0: ViLaSR's RL rollout and reward, rule for rule.

:class:`ViLaSREnv` plays an episode the way the RL rollout released with ViLaSR plays one sample:
its call budget, its drawing (on the indexed image itself, boxes before lines, width 4, a palette
by position, labels at ``(x1 + 8, y1 + 6)``), its feedback layout and image cap, and its reward
(the ``vilasr_exact`` preset). Every difference from ``DrawSpatial-v0`` is listed in
``docs/environment.md`` (ViLaSR).

Prompts: with ``vilasr_repo=PATH`` (a local checkout of the ViLaSR repository) the system prompt,
question wrapper, per-type suffixes and feedback texts are read from its source files with
:mod:`ast`, never executed, so they are byte-identical to ViLaSR's; without it the env uses
drawenv's own prompts and says so once.
"""

from __future__ import annotations

import ast
import copy
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageDraw

from drawenv import prompts
from drawenv.actions import Answer, Box, Draw, Line
from drawenv.env import DrawSpatialEnv
from drawenv.errors import DrawEnvError, invalid_argument
from drawenv.rewards import VILASR_QUESTION_TYPES, Episode, extract_answer, vilasr_format

MAX_IMAGES = 42
"""Images an episode may hold and still be generated from (ViLaSR's MAX_IMAGES)."""
CALLS = 10
"""Model calls per episode (ViLaSR's RL script: num_llm_calls_available=10)."""
MAZE_EXTRA_CALLS = 10
"""Extra calls for items with a ``grid_size`` (mazes)."""
RESPONSE_TOKENS = 13312
"""Token budget of the whole response (the RL script's max_response_length)."""
IMAGE_TOKENS = 256
"""Tokens the rollout counts per added image."""
TURN_TOKENS = 1024
"""Tokens one model call may generate (the RL config's single_turn_response_length); a turn that
reaches it was cut off, and ends the episode."""
LINE_WIDTH = 4
POINT_RADIUS = 4
LABEL_OFFSET = (8, 6)
PALETTE = (
    "red", "green", "blue", "yellow", "orange", "pink", "purple", "brown", "gray", "beige",
    "turquoise", "cyan", "magenta", "lime", "navy", "maroon", "teal", "olive", "coral",
    "lavender", "violet", "gold", "silver", *ImageColor.colormap,
)  # fmt: skip
"""Box colours by position in an image's box list: 23 names, then all of PIL's colour names."""

# ViLaSR question type -> the drawenv answer type vilasr_exact scores it as (exact strings only:
# the released reward compares the type verbatim, so any other spelling scores 0, as text).
_SCORED_AS = {"multiple choice": "multiple_choice", "numerical": "numeric", "regression": "numeric"}
_VIDEO_TYPES = ("video", "spatial_r1")
_SINGLE_TYPES = ("maze", "vqa")
_CHAT_TURN = "<|im_end|>\n<|im_start|>user\n{pad}\n{prompt}\n<|im_end|>\n<|im_start|>assistant\n"
_VISION = "<|vision_start|><|image_pad|><|vision_end|>"
_DATASET_FILE = "verl/utils/dataset_multimodal.py"
_ROLLOUT_FILE = "verl/workers/rollout/vllm_rollout/vllm_rollout_spmd_video.py"
_warned_own_prompts = False


@dataclass(frozen=True)
class VilasrPrompts:
    """The texts of a ViLaSR episode, as ``str.format`` templates.

    ``system`` takes ``width`` and ``height``; ``wrapper`` takes ``question``; ``type_suffix``
    maps a ViLaSR question type (lower case) to the text after the question; ``video_intro``
    starts multi-image questions; ``single_image`` follows single-image questions;
    ``image_line`` takes ``index``, ``width``, ``height``; ``intermediate`` and ``final`` take
    ``current_image_idx``, ``width`` and ``height``. ``source`` says where they came from.
    """

    system: str
    wrapper: str
    type_suffix: Mapping[str, str]
    video_intro: str
    single_image: str
    image_line: str
    intermediate: str
    final: str
    source: str


def read_vilasr_prompts(repo: str | Path) -> VilasrPrompts:
    """The prompt templates of a local ViLaSR checkout, read from its source with :mod:`ast`
    (the files are parsed, never executed)."""
    root = Path(repo).expanduser()
    dataset, rollout = root / _DATASET_FILE, root / _ROLLOUT_FILE
    for path in (dataset, rollout):
        if not path.is_file():
            raise invalid_argument(
                "vilasr_repo",
                str(repo),
                f"a checkout of the ViLaSR repository holding {path.relative_to(root)}",
                "Clone it and pass its folder.",
            )
    tree = ast.parse(dataset.read_text(encoding="utf-8"))
    names = _module_constants(tree)
    video = _function(tree, "construct_video_prompt")
    single = _function(tree, "construct_maze_vqa_prompt")
    rollout_tree = ast.parse(rollout.read_text(encoding="utf-8"))
    generate = _function(rollout_tree, "_multi_turn_generate")
    local = {
        node.targets[0].id: node.value.value
        for node in ast.walk(generate)
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    try:
        return VilasrPrompts(
            system=names["SYSTEM_PROMPT"],
            wrapper=names["PROMPT_TEMPLATE"],
            type_suffix=names["TYPE_TEMPLATE"],
            video_intro=_leading_constant(video, "prompt"),
            single_image=next(
                text for text in _constants(single) if "index of the given image" in text
            ),
            image_line=_template(next(iter(_fstrings(video))), ("index", "width", "height")),
            intermediate=local["intermediate_prompt"],
            final=local["final_prompt"],
            source=str(root),
        )
    except (KeyError, StopIteration, ValueError) as error:
        raise DrawEnvError(
            f"Invalid `vilasr_repo`: {str(repo)!r} does not hold ViLaSR's prompt templates where "
            f"commit 61669c0 has them ({error!r}). Check out that commit."
        ) from None


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def _function(tree: ast.AST, name: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise DrawEnvError(f"Invalid `vilasr_repo`: no function {name!r} in ViLaSR's files.")


def _constants(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _fstrings(node: ast.AST) -> list[ast.JoinedStr]:
    return [n for n in ast.walk(node) if isinstance(n, ast.JoinedStr)]


def _leading_constant(function: ast.FunctionDef, target: str) -> str:
    """The string a ``target = "…" + …`` assignment starts with."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == target:
            value = node.value
            while isinstance(value, ast.BinOp):
                value = value.left
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
    raise ValueError(f"no string assignment to {target!r}")


def _template(fstring: ast.JoinedStr, fields: tuple[str, ...]) -> str:
    """An f-string as a ``str.format`` template, its replacement fields named in order."""
    parts, names = [], iter(fields)
    for value in fstring.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value).replace("{", "{{").replace("}", "}}"))
        else:
            parts.append("{" + next(names) + "}")
    return "".join(parts)


def _own_prompts() -> None:
    global _warned_own_prompts
    if not _warned_own_prompts:
        _warned_own_prompts = True
        warnings.warn(
            "DrawSpatial-ViLaSR-v0 without `vilasr_repo`: drawenv's own prompts are used, not "
            "ViLaSR's. Pass vilasr_repo=PATH (a local checkout of the ViLaSR repository) for "
            "byte-identical prompts.",
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------------
# Drawing items, read and merged as the rollout does
# ---------------------------------------------------------------------------------------------


class _Dropped(Exception):
    """The rollout's processing of the turn raised: the turn is discarded, the call spent."""


def drawing_items(text: str) -> tuple[list[Any], list[Any]]:
    """The box and line items of a drawing turn as the rollout reads them: every ```` ```json ````
    line opens a block up to the next ```` ``` ```` (or, unclosed, up to ``</think>``); blocks
    that are not Python literals are skipped, and so are items of neither kind. Raises
    :class:`_Dropped` where the rollout's reading raises."""
    lines = text.splitlines()
    boxes: list[Any] = []
    paths: list[Any] = []
    for i, line in enumerate(lines):
        if line.strip() != "```json":
            continue
        tail = "\n".join(lines[i + 1 :])
        block = tail.split("```")[0] if "```" in tail else tail.split("</think>")[0].strip()
        try:
            items = ast.literal_eval(block)
        except (ValueError, SyntaxError):
            continue
        except Exception:
            raise _Dropped from None
        try:
            for item in items:
                if "bbox_2d" in item and "label" in item:
                    boxes.append(item)
                elif "start_point_2d" in item and "end_point_2d" in item and "label" in item:
                    paths.append(item)
        except Exception:
            raise _Dropped from None
    return boxes, paths


def _merge(lists: dict[Any, list], new: list[Any], target: int) -> Any:
    """Replace same-label items of the source image's list, append the rest, store the result
    under ``target``; returns the source index (0-based) or -1 when ``new`` is empty."""
    if not new:
        return -1
    by_label = {item["label"]: item for item in new}
    source = [item["index"] - 1 for item in new][0]  # noqa: RUF015 (each index is evaluated)
    if source not in lists:
        lists[source] = []
    merged = [by_label.pop(item["label"]) if item["label"] in by_label else item
              for item in lists[source]]  # fmt: skip
    merged.extend(by_label.values())
    lists[target] = copy.deepcopy(merged)
    return source


def _draw_boxes(image: Image.Image, boxes: list[Any]) -> None:
    width, height = image.size
    draw = ImageDraw.Draw(image)
    for position, box in enumerate(boxes):
        bbox = box["bbox_2d"]
        if len(bbox) != 4:
            continue
        color = PALETTE[position % len(PALETTE)]
        # Scaled from the image's own size to itself, as the rollout does (so 10 may become 9).
        x1, y1 = int(bbox[0] / width * width), int(bbox[1] / height * height)
        x2, y2 = int(bbox[2] / width * width), int(bbox[3] / height * height)
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
        draw.rectangle(((x1, y1), (x2, y2)), outline=color, width=LINE_WIDTH)
        if "label" in box:
            draw.text((x1 + LABEL_OFFSET[0], y1 + LABEL_OFFSET[1]), box["label"], fill=color)


def _draw_paths(image: Image.Image, paths: list[Any]) -> None:
    width, height = image.size
    draw = ImageDraw.Draw(image)
    for path in paths:
        start, end = path.get("start_point_2d", None), path.get("end_point_2d", None)
        if start is None or end is None:
            return  # the rollout stops drawing this image's lines at the first incomplete one
        points = [(int(p[0]) / width * width, int(p[1]) / height * height) for p in (start, end)]
        draw.line((*points[0], *points[1]), fill="black", width=LINE_WIDTH)
        for (x, y), color in zip(points, ("red", "blue"), strict=True):
            r = POINT_RADIUS
            draw.ellipse([(x - r, y - r), (x + r, y + r)], fill=color)


# ---------------------------------------------------------------------------------------------
# The env
# ---------------------------------------------------------------------------------------------


class ViLaSREnv(DrawSpatialEnv):
    """``DrawSpatial-ViLaSR-v0``: ViLaSR's RL rollout and reward (module docstring).

    Args beyond ``DrawSpatialEnv``'s (``task``, ``max_pixels``, ``min_pixels``,
    ``patch_factor``, ``difficulty``, ``render_mode``, ``max_image_pixels`` keep their meaning):

    - ``vilasr_repo``: a local ViLaSR checkout whose prompt templates are read (see module).
    - ``max_turns``: model calls per episode; default ``None``: 10, and 20 for items with a
      ``grid_size`` (mazes).
    - ``count_tokens``: ``text -> int`` (e.g. a tokenizer's ``len(encode(text))``) turns on
      the rollout's token limits: 1,024 per model call (a turn that reaches it was cut off and
      ends the episode) and 13,312 for the response, with 256 per added image; ``None`` (the
      default) has no token limits.
    - ``reward``: default ``"vilasr_exact"``.

    The protocol is ``vilasr`` and coordinates are pixels; ``repeat_policy`` and
    ``invalid_policy`` do not apply (the rollout has no repeat check, and an invalid drawing
    ends the episode, which is still paid).
    """

    def __init__(
        self,
        task: Any = "mixed",
        *,
        vilasr_repo: str | Path | None = None,
        max_turns: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
        reward: Any = "vilasr_exact",
        reward_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        for name in ("protocol", "coords", "repeat_policy", "invalid_policy", "max_images"):
            if name in kwargs:
                raise invalid_argument(
                    name,
                    kwargs[name],
                    "not given: DrawSpatial-ViLaSR-v0 fixes it as ViLaSR's rollout does",
                    "Use DrawSpatial-v0 to choose it.",
                )
        super().__init__(
            task,
            protocol="vilasr",
            coords="pixel",
            max_images=MAX_IMAGES + 1,
            max_turns=max_turns,
            reward=reward,
            reward_kwargs=reward_kwargs,
            **kwargs,
        )
        if count_tokens is not None and not callable(count_tokens):
            raise invalid_argument("count_tokens", count_tokens, "None or a callable text -> int")
        self.count_tokens = count_tokens
        self.vilasr_repo = vilasr_repo
        self.prompts = read_vilasr_prompts(vilasr_repo) if vilasr_repo is not None else None
        if self.prompts is None:
            _own_prompts()

    # -- Gymnasium API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        task = self.task
        assert task is not None
        given = task.metadata.get("vilasr") or {}
        self._given = given
        self._question_type = given.get("question_type") or VILASR_QUESTION_TYPES[task.answer_type]
        self._truth = given["answer"] if given.get("answer") is not None else task.answer
        self._pil = [Image.fromarray(np.asarray(image)).convert("RGB") for image in obs["images"]]
        self._boxes: dict[Any, list] = {k: [] for k in range(len(self._pil))}
        self._paths: dict[Any, list] = {k: [] for k in range(len(self._pil))}
        grid = given.get("grid_size")
        budget = self.max_turns or (CALLS + MAZE_EXTRA_CALLS if grid is not None else CALLS)
        self._calls_left = budget - 1  # as the rollout counts: the call after 0 is the last
        self._budget = budget
        self._tokens = 0
        self._turns: list[str] = []
        self._vilasr_turn = 0
        width, height = self._pil[0].size
        if self.prompts is None:
            system, parts = info["system_prompt"], [{"type": "text", "text": obs["text"]}]
        else:
            system = self.prompts.system.format(width=width, height=height)
            parts = self._question_parts(width, height)
        self._system = system
        self._parts = parts
        self._text = "".join(p["text"] for p in parts if p["type"] == "text")
        self._ended = False
        return self._obs(), self._vilasr_info({}, [], [])

    def step(
        self, action: str | Draw | Answer
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._ended:
            raise DrawEnvError("The episode has ended: call `env.reset()` before `env.step()`.")
        if isinstance(action, (Draw, Answer)):
            action = self.protocol.format(action)
        if not isinstance(action, str):
            raise invalid_argument(
                "action", type(action).__name__, "the model's output text (str), Draw or Answer"
            )
        text = action
        self._vilasr_turn += 1
        self._calls_left -= 1
        errors: list[str] = []
        new: list[int] = []
        finished = None
        tokens = self.count_tokens(text) if self.count_tokens else 0
        if self.count_tokens and (
            tokens >= TURN_TOKENS or self._tokens + tokens >= RESPONSE_TOKENS
        ):
            finished = "max_tokens"  # cut off at the call's limit, or the response's
        if self._calls_left < 0:
            finished = finished or ("answer" if _answers(text) else "max_turns")
        elif finished is None and _answers(text):
            finished = "answer"
        if finished is not None:
            self._turns.append(text)
        else:
            try:
                finished, new = self._draw(text, tokens, errors)
                self._turns.append(text)
            except _Dropped:
                errors.append(
                    "the rollout's processing of this turn raised: the turn is discarded and "
                    "the call spent (as ViLaSR's rollout does)"
                )
                if self._calls_left < 0:
                    finished = "max_turns"
        if finished is None and len(self._pil) > MAX_IMAGES:
            # No further call: ViLaSR's sequence then ends with the feedback and an empty
            # assistant turn, which its reward reads as the last turn.
            finished = "max_images"
            self._turns.append("")
        if finished is None and self._calls_left < 0:
            finished = "max_turns"
        self._ended = finished is not None
        reward, terms = self._score(finished) if self._ended else (0.0, {})
        truncated = finished in ("max_turns", "max_tokens")
        info = self._vilasr_info(terms, new, errors, finished)
        return self._obs(), reward, self._ended and not truncated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or not getattr(self, "_pil", None):
            return None
        return np.asarray(self._pil[-1]).copy()

    # -- internals ---------------------------------------------------------------------------

    def _question_parts(self, width: int, height: int) -> list[dict[str, Any]]:
        """The first user message as ViLaSR's dataset builds it: images and texts in order."""
        assert self.prompts is not None and self.task is not None
        task, given, p = self.task, self._given, self.prompts
        question = given.get("question") or task.question
        kind = self._question_type
        options = given.get("options")
        if options is None and task.options:
            options = [f"{chr(ord('A') + k)}. {o}" for k, o in enumerate(task.options)]
        data_type = given.get("data_type") or ("video" if len(self._pil) > 1 else "vqa")
        suffix = p.type_suffix.get(str(kind).lower(), "")
        options_text = ""
        if kind == "multiple choice" and options is not None:
            options_text = "\n" + "\n".join(str(o).strip() for o in options)
        if data_type in _VIDEO_TYPES:
            prompt = p.video_intro + question + options_text + suffix
            parts: list[dict[str, Any]] = []
            for k in range(len(self._pil)):
                line = p.image_line.format(index=k + 1, width=width, height=height)
                parts += [{"type": "image", "index": k + 1}, {"type": "text", "text": line}]
            return [*parts, {"type": "text", "text": p.wrapper.format(question=prompt)}]
        prompt = question + options_text + p.single_image + suffix
        return [
            {"type": "image", "index": 1},
            {"type": "text", "text": p.wrapper.format(question=prompt)},
        ]

    def _draw(self, text: str, tokens: int, errors: list[str]) -> tuple[str | None, list[int]]:
        """One drawing turn as the rollout processes it; returns (ending or None, new images)."""
        boxes, paths = drawing_items(text)
        groups: dict[Any, dict[str, list]] = {}
        failed = False
        try:
            for item in boxes:
                groups.setdefault(item["index"], {"boxes": [], "paths": []})["boxes"].append(item)
            for item in paths:
                groups.setdefault(item["index"], {"boxes": [], "paths": []})["paths"].append(item)
        except Exception:
            failed = True
        if not groups or failed:
            errors.append("no drawable item (each needs an index, and a label with bbox_2d or "
                          "start_point_2d and end_point_2d): the episode ends")  # fmt: skip
            return "invalid_action", []
        current = len(self._pil)
        drawn: list[Image.Image] = []
        try:
            for offset, group in enumerate(groups.values()):
                target = current + offset
                source_boxes = _merge(self._boxes, group["boxes"], target)
                source_paths = _merge(self._paths, group["paths"], target)
                if source_boxes >= 0 and source_paths == -1:
                    kept = self._paths.get(source_boxes)
                    self._paths[target] = copy.deepcopy(kept) if kept is not None else []
                if source_paths >= 0 and source_boxes == -1:
                    kept = self._boxes.get(source_paths)
                    self._boxes[target] = copy.deepcopy(kept) if kept is not None else []
                self._boxes.setdefault(target, [])
                self._paths.setdefault(target, [])
                source = max(source_boxes, source_paths)
                if source == -1:
                    errors.append("a drawing on image index 0 or below: the episode ends")
                    return "invalid_action", []
                try:
                    image = self._pil[source].copy()
                    _draw_boxes(image, self._boxes[target])
                    _draw_paths(image, self._paths[target])
                except IndexError:
                    errors.append(f"image {source + 1} does not exist: the episode ends")
                    return "invalid_action", []
                drawn.append(image)
        except Exception:
            raise _Dropped from None
        return self._add_images(drawn, tokens)

    def _add_images(self, drawn: list[Image.Image], tokens: int) -> tuple[str | None, list[int]]:
        """Append the drawn images with the feedback message, within the image cap and budget."""
        current = len(self._pil)
        parts: list[dict[str, Any]] = []
        added: list[Image.Image] = []
        if len(drawn) == 1:
            width, height = drawn[0].size
            # The one-image path looks at the episode's initial call count, never at the calls
            # left, so its final prompt only comes with the image cap.
            final = current + 1 >= MAX_IMAGES or (self.max_turns or CALLS) - 1 <= 0
            prompt = self._feedback(current + 1, width, height, final=final)
            parts = [{"type": "image", "index": current + 1},
                     {"type": "text", "text": "\n" + prompt + "\n"}]  # fmt: skip
            chat = _CHAT_TURN.format(pad=_VISION, prompt=prompt)
            added = drawn
        else:
            for k, image in enumerate(drawn):
                width, height = image.size
                index = current + 1 + k
                parts.append({"type": "image", "index": index})
                added.append(image)
                if current + k + 1 >= MAX_IMAGES:
                    parts.append(
                        {"type": "text", "text": self._feedback(index, width, height, True)}
                    )
                    break
                if k <= len(drawn) - 2:
                    line = self._image_line(index, width, height)
                else:
                    line = self._feedback(index, width, height, final=self._calls_left <= 0)
                parts.append({"type": "text", "text": line})
            pad = "".join(_VISION + p["text"] for p in parts if p["type"] == "text")
            chat = _CHAT_TURN.format(pad=pad, prompt="")
            parts.append({"type": "text", "text": "\n\n"})
        if self.count_tokens:
            needed = tokens + self.count_tokens(chat) + IMAGE_TOKENS * len(added)
            if self._tokens + needed >= RESPONSE_TOKENS:
                self._tokens += tokens
                return "max_tokens", []
            self._tokens += needed
        self._pil.extend(added)
        self._parts = parts
        self._text = "".join(p["text"] for p in parts if p["type"] == "text")
        return None, list(range(current + 1, current + 1 + len(added)))

    def _image_line(self, index: int, width: int, height: int) -> str:
        if self.prompts is None:
            return prompts.image_line(index, width, height) + "\n"
        return self.prompts.image_line.format(index=index, width=width, height=height)

    def _feedback(self, index: int, width: int, height: int, final: bool) -> str:
        if self.prompts is None:
            return prompts.feedback([(index, width, height)], answer_now=final)
        template = self.prompts.final if final else self.prompts.intermediate
        return template.format(current_image_idx=index, width=width, height=height)

    def _score(self, termination: str) -> tuple[float, dict[str, float]]:
        task = self.task
        assert task is not None
        fmt, _ = vilasr_format(self._turns)
        last = self._turns[-1] if self._turns else ""
        episode = Episode(
            answer=extract_answer(last),
            truth=self._truth,
            answer_type=_SCORED_AS.get(self._question_type, "text"),
            options=task.options,
            termination=termination,
            format_ok=bool(fmt),
            image_size=self._pil[0].size,
            progress=self.progress,
            outputs=tuple(self._turns),
            task_id=task.id,
        )
        reward, terms = self.reward_fn(episode)
        return float(reward), {name: float(value) for name, value in terms.items()}

    def _obs(self) -> dict[str, Any]:
        images = []
        for image in self._pil:
            pixels = np.array(image)
            pixels.flags.writeable = False
            images.append(pixels)
        return {"images": tuple(images), "text": self._text}

    def _vilasr_info(
        self,
        terms: dict[str, float],
        new: list[int],
        errors: list[str],
        termination: str | None = None,
    ) -> dict[str, Any]:
        task = self.task
        assert task is not None
        info: dict[str, Any] = {
            "reward_terms": dict(terms),
            "operations": _operations(self._turns[-1]) if new and self._turns else [],
            "new_image_indices": list(new),
            "errors": list(errors),
            "turn": self._vilasr_turn,
            "task_id": task.id,
            "system_prompt": self._system,
            "vilasr_content": [dict(p) for p in self._parts],
            "prompt_source": self.prompts.source if self.prompts else "drawenv",
        }
        if termination is not None:
            info["termination"] = termination
            info["answer"] = str(task.answer)
            info["answer_number"] = (
                float(task.answer) if task.answer_type in ("numeric", "count") else math.nan
            )
            info["answer_type"] = task.answer_type
            info["vilasr_question_type"] = str(self._question_type)
            info["prediction"] = extract_answer(self._turns[-1]) if self._turns else None
        return info


VSIBENCH_TYPES = (
    "object_rel_distance",
    "object_rel_direction",
    "route_planning",
    "obj_appearance_order",
    "object_counting",
    "object_abs_distance",
    "object_size_estimation",
    "room_size_estimation",
)
"""VSI-Bench's question types in the order ViLaSR's summary lists them."""


def type_averages(
    scored: Iterable[tuple[str, float]],
) -> tuple[dict[str, tuple[float, int]], float]:
    """Per-type ``(mean score, count)`` and the overall score, as ViLaSR's evaluation summarises
    VSI-Bench: ``_easy`` / ``_medium`` / ``_hard`` types merge into their base type, and the
    overall score is the mean of the type means (over VSI-Bench's eight types when any is
    present, else over every type). VSI-Bench's types come first, in its order."""
    groups: dict[str, list[float]] = {}
    for kind, score in scored:
        kind = str(kind)
        if any(level in kind for level in ("_easy", "_medium", "_hard")):
            kind = kind.split("_easy")[0].split("_medium")[0].split("_hard")[0]
        groups.setdefault(kind, []).append(float(score))
    order = [k for k in VSIBENCH_TYPES if k in groups] + sorted(set(groups) - set(VSIBENCH_TYPES))
    table = {k: (sum(groups[k]) / len(groups[k]), len(groups[k])) for k in order}
    counted = [k for k in order if k in VSIBENCH_TYPES] or order
    overall = sum(table[k][0] for k in counted) / len(counted) if counted else 0.0
    return table, overall


def format_type_table(scored: Iterable[tuple[str, float]]) -> str:
    """:func:`type_averages` as a text table."""
    scored = list(scored)
    table, overall = type_averages(scored)
    width = max([len(k) for k in table] + [26])
    lines = ["ViLaSR evaluation score by question type (eval/evaluate.py rules)",
             f"{'type':<{width}} {'score':>7} {'n':>5}"]  # fmt: skip
    lines.append("-" * len(lines[1]))
    lines += [f"{k:<{width}} {mean:>7.3f} {n:>5}" for k, (mean, n) in table.items()]
    mean_all = sum(s for _, s in scored) / len(scored) if scored else 0.0
    lines.append(f"{'overall (mean of types)':<{width}} {overall:>7.3f} {len(scored):>5}")
    lines.append(f"{'mean of all answers':<{width}} {mean_all:>7.3f} {len(scored):>5}")
    return "\n".join(lines)


def _answers(text: str) -> bool:
    return "<answer>" in text and "</answer>" in text


def _operations(text: str) -> list[Box | Line]:
    """The turn's items that are well-formed drawenv operations (for records and viewers)."""
    try:
        boxes, paths = drawing_items(text)
    except _Dropped:
        return []
    found: list[Box | Line] = []
    for item in boxes + paths:
        try:
            if "bbox_2d" in item:
                bbox = tuple(float(v) for v in item["bbox_2d"])
                if len(bbox) == 4:
                    found.append(Box(int(item["index"]), bbox, str(item["label"])))
            else:
                start = tuple(float(v) for v in item["start_point_2d"])
                end = tuple(float(v) for v in item["end_point_2d"])
                found.append(Line(int(item["index"]), start, end, str(item["label"])))
        except (TypeError, ValueError, KeyError, OverflowError):
            continue
    return found


__all__ = [
    "CALLS",
    "IMAGE_TOKENS",
    "MAX_IMAGES",
    "PALETTE",
    "RESPONSE_TOKENS",
    "VSIBENCH_TYPES",
    "ViLaSREnv",
    "VilasrPrompts",
    "drawing_items",
    "format_type_table",
    "read_vilasr_prompts",
    "type_averages",
]
