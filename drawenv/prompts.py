"""The env's messages to the model: the question prompt and the per-step feedback."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from drawenv.tasks.record import LETTERS, TaskRecord

ANSWER_INSTRUCTIONS = {
    "multiple_choice": "Answer with the letter of the correct option, e.g. <answer> B </answer>.",
    "numeric": "Answer with a single number, e.g. <answer> 3.5 </answer>.",
    "count": "Answer with a whole number, e.g. <answer> 4 </answer>.",
    "text": "Answer with a short word or phrase, e.g. <answer> yes </answer>.",
}


def image_line(index: int, width: int, height: int) -> str:
    """The line that introduces image ``index`` (1-based) and its size."""
    return f"The index of the given image is {index} (width: {width}, height: {height})."


def question_prompt(task: TaskRecord, sizes: Sequence[tuple[int, int]]) -> str:
    """The first message: image lines, the question, the options and the answer instruction."""
    lines = [image_line(k, w, h) for k, (w, h) in enumerate(sizes, start=1)]
    lines.append(task.question)
    if task.options:
        lines.append("Options:")
        lines += [f"{letter}. {text}" for letter, text in zip(LETTERS, task.options)]
    lines.append(ANSWER_INSTRUCTIONS[task.answer_type])
    return "\n".join(lines)


def feedback(
    new: Sequence[tuple[int, int, int]], *, answer_now: bool, warnings: Sequence[str] = ()
) -> str:
    """The message after a drawing step: one line per new image ``(index, width, height)``."""
    lines = [image_line(k, w, h) for k, w, h in new]
    lines += [f"Note: {w}" for w in warnings]
    if answer_now:
        lines.append("You cannot draw any more. Give your final answer now in <answer> </answer>.")
    else:
        lines.append(
            "Continue reasoning: draw again if it helps, or give the final answer in "
            "<answer> </answer>."
        )
    return "\n".join(lines)


def rejected(errors: Sequence[str], *, answer_now: bool) -> str:
    """The message after a step that was rejected (nothing was drawn)."""
    lines = ["Your last turn was rejected and nothing was drawn:"]
    lines += [f"- {e}" for e in errors]
    if answer_now:
        lines.append("This is your last turn. Give your final answer now in <answer> </answer>.")
    else:
        lines.append("Fix the problem and try again, or give the final answer.")
    return "\n".join(lines)


@dataclass(frozen=True)
class QuestionPrompt:
    """What :func:`read_question_prompt` recovers from a question prompt."""

    question: str
    options: tuple[str, ...]
    answer_type: str | None
    image_sizes: tuple[tuple[int, int], ...]


_IMAGE_LINE = re.compile(r"The index of the given image is (\d+) \(width: (\d+), height: (\d+)\)\.")
_OPTION_LINE = re.compile(r"([A-Z])\. (.*)")


def read_question_prompt(text: str) -> QuestionPrompt:
    """The inverse of :func:`question_prompt`, for agents that read only what a model reads."""
    sizes, question, options, answer_type = [], [], [], None
    in_options = False
    for line in text.splitlines():
        image = _IMAGE_LINE.fullmatch(line)
        option = _OPTION_LINE.fullmatch(line)
        kind = next((k for k, v in ANSWER_INSTRUCTIONS.items() if v == line), None)
        if image:
            sizes.append((int(image[2]), int(image[3])))
        elif kind:
            answer_type = kind
        elif line == "Options:":
            in_options = True
        elif in_options and option:
            options.append(option[2])
        else:
            question.append(line)
    return QuestionPrompt("\n".join(question), tuple(options), answer_type, tuple(sizes))
