"""Heuristic solvers: each reads the pixels and the question text of one kind of question.

A solver module has ``matches(prompt)`` (whether it answers this kind of question) and
``solve(images, prompt)`` (a :class:`~agents.scripted.vision.Solution`, never raising), the latter
built by :func:`guarded_solve` from the module's parse, solve and guess steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agents.scripted.vision import Solution
from drawenv.prompts import QuestionPrompt


def guarded_solve(
    parse: Callable[[QuestionPrompt], tuple[Any, ...] | None],
    solve: Callable[..., Solution],
    guess: Callable[[QuestionPrompt], Solution],
) -> Callable[[Sequence[np.ndarray], QuestionPrompt], Solution]:
    """A solver's ``solve(images, prompt)``: ``solve(images, prompt, *parse(prompt))``, or
    ``guess(prompt)`` (the answer without pixels) when the question does not parse, there is no
    image, or the pixels defeat the solver. Model-drawn or broken images must never end an
    episode, so nothing raised inside ``solve`` escapes."""

    def guarded(images: Sequence[np.ndarray], prompt: QuestionPrompt) -> Solution:
        parsed = parse(prompt)
        if parsed is None or not images:
            return guess(prompt)
        try:
            return solve(images, prompt, *parsed)
        except Exception:  # a broken image answers the prior guess
            return guess(prompt)

    guarded.__doc__ = solve.__doc__
    return guarded


__all__ = ["guarded_solve"]
