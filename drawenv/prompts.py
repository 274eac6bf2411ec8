"""The env's messages to the model: the question prompt and the per-step feedback."""

from __future__ import annotations

from collections.abc import Sequence

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
