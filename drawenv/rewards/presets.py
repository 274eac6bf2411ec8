"""Episode rewards: what the env hands a reward function, the built-in presets, and
:func:`get_reward`, the one door through which a name (with its settings) or a callable becomes
the env's reward.

Presets are small frozen dataclasses, so vector envs can pickle them. Their formulas are in
``docs/rewards.md`` (Presets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drawenv.errors import check_choice, check_keys, check_number, invalid_argument
from drawenv.rewards.scores import (
    MRA_CONVENTIONS,
    SCHEDULE_KINDS,
    SharpnessSchedule,
    accuracy,
    box_centre,
    detection_score,
)
from drawenv.rewards.vilasr import VilasrExactReward
from drawenv.tasks.record import ANSWER_TYPES
from drawenv.termination import TERMINATIONS


@dataclass(frozen=True)
class Episode:
    """What the env hands a reward function when an episode ends.

    Attributes:
        answer: the extracted answer of the final turn, ``None`` if the episode did not answer.
        truth: a letter (multiple choice), a number (numeric, count) or a string (text).
        answer_type: one of :data:`ANSWER_TYPES`.
        options: the multiple-choice options as shown to the model.
        termination: why the episode ended, one of :data:`TERMINATIONS`.
        format_ok: every turn was format-ok and every operation executed.
        boxes: ``(label, xyxy)`` of every box drawn on image 1 or its descendants, in image 1's
            original pixel coordinates.
        objects: ground-truth ``(name, xyxy)`` on image 1 in original pixel coordinates.
        image_size: ``(width, height)`` of original image 1.
        progress: training progress t in [0, 1] (drives the SNRA schedule).
        outputs: the model's raw turns.
        task_id: the task record's id.
    """

    answer: str | None
    truth: str | float | int
    answer_type: str
    options: tuple[str, ...] = ()
    termination: str = "answer"
    format_ok: bool = True
    boxes: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()
    objects: tuple[tuple[str, tuple[float, float, float, float]], ...] = ()
    image_size: tuple[int, int] = (0, 0)
    progress: float = 0.0
    outputs: tuple[str, ...] = ()
    task_id: str = ""

    def __post_init__(self) -> None:
        check_choice("answer_type", self.answer_type, ANSWER_TYPES)
        check_choice("termination", self.termination, TERMINATIONS)

    @property
    def answered(self) -> bool:
        """The episode ended with an answer (the only termination that can earn reward)."""
        return self.termination == "answer"


RewardFn = Callable[[Episode], tuple[float, dict[str, float]]]


def _episode_accuracy(
    episode: Episode, numeric: str = "mra", k: float = 1.0, mra: str = "drawenv"
) -> float:
    if not episode.answered:
        return 0.0
    return accuracy(
        episode.answer,
        episode.truth,
        episode.answer_type,
        options=episode.options,
        numeric=numeric,
        k=k,
        mra_convention=mra,
    )


def _finish(
    episode: Episode, reward: float, terms: dict[str, float]
) -> tuple[float, dict[str, float]]:
    """Zero the reward of failed episodes and add the ``answered`` term."""
    terms["answered"] = float(episode.answered)
    return (float(reward) if episode.answered else 0.0), terms


@dataclass(frozen=True)
class VilasrReward:
    """``vilasr``: ``0.5·acc + 0.5·format`` if acc > 0 else 0 (ViLaSR's released reward)."""

    mra: str = "drawenv"  # MRA convention of numeric and count accuracy (MRA_CONVENTIONS)

    def __post_init__(self) -> None:
        check_choice("mra", self.mra, MRA_CONVENTIONS)

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        acc = _episode_accuracy(episode, mra=self.mra)
        fmt = float(episode.format_ok)
        gate = float(acc > 0)
        reward = gate * (0.5 * acc + 0.5 * fmt)
        return _finish(episode, reward, {"accuracy": acc, "format": fmt, "gate": gate})


@dataclass(frozen=True)
class VilasrPaperReward:
    """``vilasr_paper``: ``1[acc > beta] · (acc + format)``, range [0, 2] (the paper's form)."""

    beta: float = 0.0  # accuracy must exceed this for any reward
    mra: str = "drawenv"  # MRA convention of numeric and count accuracy (MRA_CONVENTIONS)

    def __post_init__(self) -> None:
        check_choice("mra", self.mra, MRA_CONVENTIONS)

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        acc = _episode_accuracy(episode, mra=self.mra)
        fmt = float(episode.format_ok)
        gate = float(acc > self.beta)
        return _finish(episode, gate * (acc + fmt), {"accuracy": acc, "format": fmt, "gate": gate})


@dataclass(frozen=True)
class SNRAPresetReward:
    """``snra``: as ``vilasr`` but numeric and count accuracy is SNRA with
    ``k = schedule(episode.progress)``."""

    schedule: SharpnessSchedule = field(default_factory=SharpnessSchedule)

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        k = self.schedule(episode.progress)
        acc = _episode_accuracy(episode, numeric="snra", k=k)
        fmt = float(episode.format_ok)
        gate = float(acc > 0)
        reward = gate * (0.5 * acc + 0.5 * fmt)
        return _finish(episode, reward, {"accuracy": acc, "format": fmt, "gate": gate, "k": k})


@dataclass(frozen=True)
class SRRealReward:
    """``sr_real``: ``0.8·acc + 0.2·format``, or ``0.8·acc + 0.1·format + 0.1·detection`` when
    the episode has ground-truth objects (2D detection on image 1)."""

    mra: str = "drawenv"  # MRA convention of numeric and count accuracy (MRA_CONVENTIONS)

    def __post_init__(self) -> None:
        check_choice("mra", self.mra, MRA_CONVENTIONS)

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        acc = _episode_accuracy(episode, mra=self.mra)
        fmt = float(episode.format_ok)
        if not episode.objects:
            return _finish(
                episode, 0.8 * acc + 0.2 * fmt, {"accuracy": acc, "format": fmt, "detection": 0.0}
            )
        width, height = episode.image_size
        if not (width > 0 and height > 0):
            raise invalid_argument(
                "image_size", episode.image_size, "(width, height) > 0 when objects are given"
            )
        det = detection_score(
            [(label, box_centre(xyxy)) for label, xyxy in episode.boxes],
            [(name, box_centre(xyxy)) for name, xyxy in episode.objects],
            mode="2d",
            diagonal=math.hypot(width, height),
        )
        reward = 0.8 * acc + 0.1 * fmt + 0.1 * det
        return _finish(episode, reward, {"accuracy": acc, "format": fmt, "detection": det})


REWARD_PRESETS: dict[str, type] = {
    "vilasr": VilasrReward,
    "vilasr_paper": VilasrPaperReward,
    "snra": SNRAPresetReward,
    "sr_real": SRRealReward,
    "vilasr_exact": VilasrExactReward,
}
"""Preset name -> class."""

REWARD_PARAMETERS: dict[str, tuple[str, ...]] = {
    "vilasr": ("mra",),
    "vilasr_paper": ("beta", "mra"),
    "snra": ("k_min", "k_max", "schedule", "steepness"),
    "sr_real": ("mra",),
    "vilasr_exact": (),
}
"""Preset name -> the keywords :func:`get_reward` accepts for it."""


def get_reward(reward: str | RewardFn, **kwargs: Any) -> RewardFn:
    """The reward function for the env's ``reward`` and ``reward_kwargs`` arguments.

    A preset name gives a fresh preset built with ``kwargs`` (:data:`REWARD_PARAMETERS` lists the
    keywords of each): ``get_reward("vilasr_paper", beta=0.3)``, or
    ``get_reward("snra", k_min=1.0, k_max=100.0, schedule="linear", steepness=10.0)``, whose
    ``schedule`` may also be a :class:`SharpnessSchedule`. A callable
    ``(episode) -> (reward, terms)`` is returned as given, and then takes no keywords.
    """
    if isinstance(reward, str):
        name = check_choice("reward", reward, REWARD_PRESETS)
        check_keys(kwargs, REWARD_PARAMETERS[name], f"reward preset {name!r}")
        if name == "snra":
            return SNRAPresetReward(_sharpness_schedule(**kwargs))
        if "beta" in kwargs:
            check_number("beta", kwargs["beta"])
        return REWARD_PRESETS[name](**kwargs)
    expected = f"a preset name ({', '.join(REWARD_PRESETS)}) or a callable (episode) -> (r, terms)"
    if isinstance(reward, type):
        raise invalid_argument("reward", reward, expected, "Pass an instance, not the class.")
    if not callable(reward):
        raise invalid_argument("reward", reward, expected)
    if kwargs:
        raise invalid_argument(
            "reward_kwargs",
            kwargs,
            "no keywords when `reward` is a callable",
            "Keywords configure the built-in presets; give your callable its settings itself "
            "(as fields of a small class, like the presets).",
        )
    return reward


def _sharpness_schedule(
    schedule: str | SharpnessSchedule = "linear", **settings: Any
) -> SharpnessSchedule:
    """The SNRA preset's schedule from a kind name and the schedule's settings, or as given."""
    if isinstance(schedule, SharpnessSchedule):
        if settings:
            raise invalid_argument(
                "schedule",
                schedule,
                f"a schedule kind ({', '.join(SCHEDULE_KINDS)}) when {', '.join(settings)} is set",
                "Set them on the SharpnessSchedule itself, or pass schedule as a kind name.",
            )
        return schedule
    return SharpnessSchedule(kind=check_choice("schedule", schedule, SCHEDULE_KINDS), **settings)


__all__ = [
    "ANSWER_TYPES",
    "REWARD_PARAMETERS",
    "REWARD_PRESETS",
    "TERMINATIONS",
    "Episode",
    "RewardFn",
    "SNRAPresetReward",
    "SRRealReward",
    "VilasrExactReward",
    "VilasrPaperReward",
    "VilasrReward",
    "get_reward",
]
