"""Scripted baselines that act through the env's text protocol: random, oracle and answer-only."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from agents.base import Agent
from drawenv.actions import Action, Answer, Box, Draw, Line, Operation
from drawenv.prompts import read_question_prompt
from drawenv.tasks import TaskRecord
from drawenv.tasks.record import LETTERS

# Text-only priors for numeric questions: (pattern in the question, median answer of the built-in
# suites over seed 0, items 0..499). The first matching pattern wins.
TEXT_PRIORS = (
    (re.compile(r"\bturns?\b", re.I), "3"),
    (re.compile(r"\bcamera\b", re.I), "11"),
    (re.compile(r"\bmetres?|meters?\b", re.I), "2.8"),
    (re.compile(r"\b(steps?|cells?|moves?)\b", re.I), "14"),
    (re.compile(r"\bhow many\b", re.I), "4"),
)


def text_only_guess(prompt_text: str) -> str:
    """The best guess from the question text alone: option A, or the median of similar questions."""
    prompt = read_question_prompt(prompt_text)
    if prompt.options:
        return "A"
    if prompt.answer_type == "text":
        return "yes"
    return next((value for pattern, value in TEXT_PRIORS if pattern.search(prompt.question)), "5")


class AnswerOnlyAgent(Agent):
    """Answers at once with :func:`text_only_guess`: the floor any drawing agent must beat."""

    name = "answer_only"

    def begin(self, obs: dict[str, Any], info: dict[str, Any], task: TaskRecord | None) -> None:
        self.guess = text_only_guess(obs["text"])

    def decide(self, obs: dict[str, Any], info: dict[str, Any]) -> Action:
        return Answer(self.guess, thought="Answering from the question alone.")


class RandomAgent(Agent):
    """Draws 0-2 turns of valid random operations on random images, then answers at random."""

    name = "random"

    def begin(self, obs: dict[str, Any], info: dict[str, Any], task: TaskRecord | None) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.prompt = read_question_prompt(obs["text"])
        self.draw_turns = int(self.rng.integers(0, 3))

    def decide(self, obs: dict[str, Any], info: dict[str, Any]) -> Action:
        if self.turn < self.draw_turns:
            ops = [self._operation(obs["images"], n) for n in range(int(self.rng.integers(1, 4)))]
            return Draw(to_env_coords(ops, obs["images"], self.coords), thought="Random marks.")
        if self.prompt.options:
            answer = LETTERS[int(self.rng.integers(len(self.prompt.options)))]
        else:
            answer = str(int(self.rng.integers(0, 21)))
        return Answer(answer, thought="A random guess.")

    def _operation(self, images: tuple[np.ndarray, ...], n: int) -> Operation:
        index = int(self.rng.integers(1, len(images) + 1))
        height, width = images[index - 1].shape[:2]
        # Integer corners with x1 < x2 <= width and y1 < y2 <= height: valid, never clipped.
        x1, x2 = np.sort(self.rng.choice(width + 1, size=2, replace=False)).tolist()
        y1, y2 = np.sort(self.rng.choice(height + 1, size=2, replace=False)).tolist()
        label = f"random {self.turn}-{n}"
        if self.rng.random() < 0.5:
            return Box(index, (x1, y1, x2, y2), label)
        return Line(index, (x1, y1), (x2, y2), label)


class OracleAgent(Agent):
    """Uses the task's ground truth: draws its key drawings, then answers correctly.

    With the key drawings executed and the right answer, it earns the maximum reward of every
    preset; with ``corrections=True`` it first draws each key box shifted off its object, looks,
    and re-draws the same label in the right place (self-correction data for cold-start SFT).
    """

    name = "oracle"
    uses_ground_truth = True

    def __init__(self, corrections: bool = False):
        self.corrections = corrections
        if corrections:
            self.name = "oracle_reflect"

    def begin(self, obs: dict[str, Any], info: dict[str, Any], task: TaskRecord | None) -> None:
        if task is None:
            raise ValueError("OracleAgent needs the task record: play it with agents.evaluate.")
        originals = [image.shape[:2] for image in task.load_images()]
        shown = [image.shape[:2] for image in obs["images"][: len(originals)]]
        ops = [
            _whole(_scale(op, originals[op.index - 1], shown[op.index - 1]), shown[op.index - 1])
            for op in task.key_operations
        ]
        boxes = [op for op in ops if isinstance(op, Box)]
        self.plan: list[Action] = []
        if boxes and self.corrections:
            rng = np.random.default_rng(self.seed)
            wrong = [_misplaced(op, shown[op.index - 1], rng) for op in boxes]
            self.plan.append(Draw(self._env(wrong, obs), thought="Let me mark the objects."))
            # Re-draw each label on the image the wrong box produced, so its layer is replaced.
            targets = list(dict.fromkeys(op.index for op in boxes))
            new_index = {k: len(originals) + 1 + i for i, k in enumerate(targets)}
            fixed = [Box(new_index[op.index], op.bbox, op.label) for op in self._env(boxes, obs)]
            self.plan.append(Draw(fixed, thought="Those boxes missed; let me fix them."))
            ops = [op for op in ops if not isinstance(op, Box)]
        if ops:
            self.plan.append(Draw(self._env(ops, obs), thought="Let me mark what matters."))
        self.plan.append(Answer(str(task.answer), thought="Now I can answer."))

    def _env(self, ops: list[Operation], obs: dict[str, Any]) -> tuple[Operation, ...]:
        return to_env_coords(ops, obs["images"], self.coords)

    def decide(self, obs: dict[str, Any], info: dict[str, Any]) -> Action:
        return self.plan[min(self.turn, len(self.plan) - 1)]


def to_env_coords(
    ops: list[Operation] | tuple[Operation, ...], images: tuple[np.ndarray, ...], coords: str
) -> tuple[Operation, ...]:
    """Operations in shown-image pixels, rewritten in the env's coordinate mode."""
    if coords == "pixel":
        return tuple(ops)
    out = []
    for op in ops:
        height, width = images[op.index - 1].shape[:2]
        out.append(_whole(_scale(op, (height, width), (1000, 1000)), (1000, 1000)))
    return tuple(out)


def _scale(op: Operation, source: tuple[int, int], target: tuple[int, int]) -> Operation:
    """``op`` moved from a (height, width) frame to another."""
    sy, sx = target[0] / source[0], target[1] / source[1]
    if isinstance(op, Box):
        x1, y1, x2, y2 = op.bbox
        return Box(op.index, (x1 * sx, y1 * sy, x2 * sx, y2 * sy), op.label)
    return Line(
        op.index, (op.start[0] * sx, op.start[1] * sy), (op.end[0] * sx, op.end[1] * sy), op.label
    )


def _whole(op: Operation, size: tuple[int, int]) -> Operation:
    """``op`` in whole pixels, as a VLM writes coordinates: a box grows outward to the pixel
    grid (it still encloses its object), a line's ends round to the nearest pixel; all within
    the (height, width) image."""
    height, width = size
    if isinstance(op, Box):
        x1, y1, x2, y2 = op.bbox
        bbox = (
            max(0, math.floor(x1)),
            max(0, math.floor(y1)),
            min(width, math.ceil(x2)),
            min(height, math.ceil(y2)),
        )
        return Box(op.index, bbox, op.label)

    def pixel(point: tuple[float, float]) -> tuple[int, int]:
        return min(width, max(0, round(point[0]))), min(height, max(0, round(point[1])))

    return Line(op.index, pixel(op.start), pixel(op.end), op.label)


def _misplaced(op: Box, size: tuple[int, int], rng: np.random.Generator) -> Box:
    """``op`` shifted by about its own size, kept inside the image."""
    height, width = size
    x1, y1, x2, y2 = op.bbox
    w, h = x2 - x1, y2 - y1
    dx = round(float(np.clip(x1 + rng.choice([-1, 1]) * w, 0, width - w)) - x1)
    dy = round(float(np.clip(y1 + rng.choice([-1, 1]) * h, 0, height - h)) - y1)
    if abs(dx) < 1 and abs(dy) < 1:  # a box as large as the image: shrink it instead
        return Box(op.index, (x1, y1, x1 + round(w / 2), y1 + round(h / 2)), op.label)
    return Box(op.index, (x1 + dx, y1 + dy, x2 + dx, y2 + dy), op.label)
