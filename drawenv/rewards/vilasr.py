"""ViLaSR's released training reward, reproduced rule for rule: the ``vilasr_exact`` preset.

Where the ``vilasr`` preset scores with drawenv's own reading of answers and formats, this module
follows the rules of the reward code released with ViLaSR, so that the same model outputs earn
the same numbers (a recorded reference of that code's values is part of the tests). The rules are
listed in ``docs/rewards.md`` (vilasr_exact); in short:

- the answer is the stripped text of the first ``<answer>…</answer>`` of the **last turn**, or the
  whole stripped last turn when it has none, whatever ended the episode;
- multiple choice is exact string equality with the truth (also read from ``<answer>`` tags);
- a number is the first ``[-+]?\\d*\\.?\\d+`` anywhere in the text; numeric and count answers are
  scored by :func:`~drawenv.rewards.scores.mra` with ``convention="vilasr"``; text answers score 0;
- the format holds when every turn starts with ``<think>``, has a ``</think>`` followed by
  ``Action:``, only the last turn holds ``<answer>`` and ``</answer>``, and every ```` ```json ````
  block of the turns (joined without a separator) is a Python literal whose items all name
  ``bbox_2d`` and ``label``, or ``start_point_2d``, ``end_point_2d`` and ``label``;
- reward = ``0.5·acc + 0.5·format`` when acc > 0, else acc (never zeroed by how the episode
  ended); ``reflection`` is 1 when a label got two different boxes (format permitting).

Every function here is pure and never raises on model output. Where the released code itself
raises (a block that is a bare number, an item that is a number, a coordinate too large for a
float), the format scores 0.
"""

from __future__ import annotations

import ast
import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drawenv.rewards.scores import mra

if TYPE_CHECKING:
    from drawenv.rewards.presets import Episode

VILASR_QUESTION_TYPES = {
    "multiple_choice": "multiple choice",
    "numeric": "regression",
    "count": "numerical",
    "text": "free-form",
}
"""drawenv answer type -> the ViLaSR question type it is scored as."""

MAX_LITERAL_CHARS = 1_000_000
"""Characters of ```` ```json ```` blocks read per episode; blocks past it count as unparseable."""

_THINK_THEN_ACTION = re.compile(r"</think>\s*Action:")
_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
_NUMBER = re.compile(r"[-+]?\d*\.?\d+")
_FENCE = "```"
_JSON_FENCE = "```json"


class _Unscorable(Exception):
    """A drawing block the released code rejects or raises on: the format fails."""


def vilasr_answer(text: Any) -> str:
    """The stripped content of the first ``<answer>…</answer>``, else the whole text stripped."""
    text = str(text)
    match = _ANSWER.search(text)
    return (match.group(1) if match else text).strip()


def vilasr_number(text: str) -> float | None:
    """The first ``[-+]?\\d*\\.?\\d+`` in ``text`` as a float (``"3 to 4"`` is 3), or ``None``."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match.group())
    except ValueError:  # digits float() does not read
        return None


def vilasr_accuracy(last_turn: str, truth: Any, answer_type: str) -> float:
    """Accuracy of the last turn against the truth, as ViLaSR's training reward scores it."""
    answer, expected = vilasr_answer(last_turn), vilasr_answer(truth)
    if answer_type == "multiple_choice":
        return float(answer == expected)
    if answer_type in ("numeric", "count"):
        pred, value = vilasr_number(answer), vilasr_number(expected)
        if pred is None or value is None or not math.isfinite(value):
            return 0.0  # an infinite truth: the released code's error is NaN, which never passes
        return float(mra(pred, value, convention="vilasr"))
    return 0.0


def vilasr_format(turns: Sequence[str]) -> tuple[float, float]:
    """``(format, reflection)`` of an episode's turns under ViLaSR's format rule."""
    last = len(turns) - 1
    for k, turn in enumerate(turns):
        if not _turn_shape_ok(turn):
            return 0.0, 0.0
        if k == last and not ("<answer>" in turn and "</answer>" in turn):
            return 0.0, 0.0
        if k != last and ("<answer>" in turn or "</answer>" in turn):
            return 0.0, 0.0
    try:
        boxes = _box_items("".join(turns))
        moved = _relabelled(boxes)
    except _Unscorable:
        return 0.0, 0.0
    return 1.0, float(moved)


def _turn_shape_ok(turn: str) -> bool:
    """``<think>`` at the very start, and some later ``</think>`` followed by ``Action:``."""
    opened = turn.startswith("<think>")
    return opened and _THINK_THEN_ACTION.search(turn, len("<think>")) is not None


def _blocks(text: str) -> list[str]:
    """Each ```` ```json ```` line's block: the lines after it up to the next ```` ``` ````."""
    lines = text.splitlines()
    joined = "\n".join(lines)
    starts, position = [], 0
    for line in lines:
        starts.append(position)
        position += len(line) + 1
    fences, found = [], joined.find(_FENCE)
    while found >= 0:  # every occurrence, overlapping ones too
        fences.append(found)
        found = joined.find(_FENCE, found + 1)
    blocks, budget = [], MAX_LITERAL_CHARS
    for i, line in enumerate(lines):
        if line.strip() != _JSON_FENCE:
            continue
        start = starts[i + 1] if i + 1 < len(lines) else len(joined)
        k = bisect.bisect_left(fences, start)
        end = fences[k] if k < len(fences) else len(joined)
        budget -= end - start
        if budget < 0:
            raise _Unscorable
        blocks.append(joined[start:end])
    return blocks


def _box_items(text: str) -> list[Any]:
    """The box items of every block; raises :class:`_Unscorable` for any other item."""
    boxes = []
    for block in _blocks(text):
        try:
            items = ast.literal_eval(block)
        except Exception:  # a syntax or value error fails the format; so does what raises
            raise _Unscorable from None
        try:
            for item in items:
                if "bbox_2d" in item and "label" in item:
                    boxes.append(item)
                elif not ("start_point_2d" in item and "end_point_2d" in item and "label" in item):
                    raise _Unscorable
        except TypeError:  # not iterable, or an item `in` cannot look into
            raise _Unscorable from None
    return boxes


def _relabelled(boxes: list[Any]) -> bool:
    """Some label was given two different boxes; items that do not read as boxes are skipped."""
    seen: dict[Any, set[tuple[float, ...]]] = {}
    moved = False
    for item in boxes:
        try:
            box = tuple(map(float, item["bbox_2d"]))
            label = item["label"]
            if label not in seen:
                seen[label] = {box}
            elif box not in seen[label]:
                moved = True
                seen[label].add(box)
        except (TypeError, ValueError):
            continue
        except OverflowError:  # a coordinate too large for a float
            raise _Unscorable from None
    return moved


def vilasr_eval_score(output: str, truth: Any, problem_type: str) -> float:
    """One answer scored as ViLaSR's evaluation script scores it (``eval/evaluate.py``).

    The answer is the first ``<answer>…</answer>`` of ``output`` (the last turn), else the whole
    text. ``multiple choice``: the first characters of answer and truth, case-folded, are equal.
    ``numerical``: 1 when both or neither contain ``.`` or ``,`` and, with commas removed, both
    read as floats equal to 2 decimals. ``regression``: MRA, convention ``"vilasr_eval"`` (float32,
    ``<=``), of the whole answer read as a float (commas removed). Other types score 0, and so
    does an empty multiple-choice answer, where the script itself fails.
    """
    answer, expected = _eval_answer(str(output)), _eval_answer(str(truth))
    if problem_type == "multiple choice":
        answer, expected = answer.strip(), expected.strip()
        return float(bool(answer and expected) and answer[0].lower() == expected[0].lower())
    if problem_type == "numerical":
        if ("." in expected or "," in expected) != ("." in answer or "," in answer):
            return 0.0
        pred, value = _eval_float(answer), _eval_float(expected)
        if pred is None or value is None:
            return 0.0
        return float(round(value, 2) == round(pred, 2))
    if problem_type == "regression":
        pred, value = _eval_float(answer), _eval_float(expected)
        if pred is None or value is None or not math.isfinite(value):
            return 0.0
        return float(mra(pred, value, convention="vilasr_eval"))
    return 0.0


def _eval_answer(text: str) -> str:
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else text


def _eval_float(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class VilasrExactReward:
    """``vilasr_exact``: ViLaSR's released reward, rule for rule (module docstring).

    Terms: ``accuracy``, ``format``, ``reflection`` and ``answered``. The reward is paid however
    the episode ended; ``episode.truth`` may be any text ViLaSR's data holds (a negative number,
    an option's text). An episode without ``outputs`` (one built by hand) is scored as one turn
    holding its ``answer``.
    """

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        turns = episode.outputs
        if not turns and episode.answer is not None:
            turns = (episode.answer,)
        fmt, reflection = vilasr_format(turns)
        acc = vilasr_accuracy(turns[-1] if turns else "", episode.truth, episode.answer_type)
        reward = 0.5 * acc + 0.5 * fmt if acc > 0 else acc
        terms = {
            "accuracy": acc,
            "format": fmt,
            "reflection": reflection,
            "answered": float(episode.answered),
        }
        return reward, terms


__all__ = [
    "MAX_LITERAL_CHARS",
    "VILASR_QUESTION_TYPES",
    "VilasrExactReward",
    "vilasr_accuracy",
    "vilasr_answer",
    "vilasr_eval_score",
    "vilasr_format",
    "vilasr_number",
]
