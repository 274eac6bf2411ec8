"""Rewards for TRL's ``GRPOTrainer``, single-turn and without the env.

Each follows TRL's reward-function signature ``f(completions, **dataset_columns) ->
list[float | None]``, where ``None`` means "does not apply to this item". The parametrised ones
are small picklable classes with a ``__name__`` for TRL's logs. See ``docs/rewards.md`` (Use
from TRL's GRPOTrainer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from drawenv.rewards.answers import extract_answer
from drawenv.rewards.scores import SharpnessSchedule, accuracy


def completion_text(completion: Any) -> str:
    """The final turn's text of a plain or conversational (list of messages) completion. TRL
    parses ``<think>…</think>`` out of the content into ``reasoning_content``; it is put back, so
    the protocol's format check sees the turn the model wrote."""
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if m.get("role", "assistant") == "assistant"]
    if not messages:
        return ""
    content = messages[-1].get("content") or ""
    if not isinstance(content, str):
        content = "".join(part.get("text", "") for part in content if part.get("type") == "text")
    reasoning = messages[-1].get("reasoning_content")
    if isinstance(reasoning, str) and reasoning.strip() and "<think>" not in content:
        return f"<think> {reasoning.strip()} </think>\n{content.lstrip()}"
    return content


def _column(values: Sequence[Any] | None, n: int) -> list[Any]:
    return [None] * n if values is None else list(values)


def trl_accuracy_reward(
    completions: Sequence[Any],
    answer: Sequence[Any],
    answer_type: Sequence[str],
    options: Sequence[Sequence[str] | None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """Accuracy of each completion's ``<answer>`` (exact match or MRA by answer type).

    Items whose truth is missing (``None``) get ``None``.
    """
    rows = zip(completions, answer, answer_type, _column(options, len(completions)), strict=True)
    return [
        None
        if truth is None
        else accuracy(extract_answer(completion_text(c)), truth, kind, options=tuple(opts or ()))
        for c, truth, kind, opts in rows
    ]


def progress_from(trainer_state: Any) -> float | None:
    """global_step / max_steps of a transformers ``TrainerState``, when it knows both."""
    step = getattr(trainer_state, "global_step", None)
    max_steps = getattr(trainer_state, "max_steps", None)
    if step is None or not max_steps or max_steps <= 0:
        return None
    return min(max(step / max_steps, 0.0), 1.0)


@dataclass
class TRLSNRAReward:
    """SNRA accuracy of each numeric or count completion; ``None`` for other answer types.

    Sharpness: a fixed ``k`` when set, else ``schedule(progress)``. Set ``progress`` yourself, or
    let it follow TRL's ``trainer_state`` (global_step / max_steps) when the trainer passes one.
    """

    k: float | None = None  # fixed sharpness; None follows the schedule
    schedule: SharpnessSchedule = field(default_factory=SharpnessSchedule)
    progress: float = 0.0  # training progress t in [0, 1]
    __name__ = "snra_reward"

    @property
    def current_k(self) -> float:
        """The sharpness the next call will use."""
        return float(self.k) if self.k is not None else self.schedule(self.progress)

    def __call__(
        self,
        completions: Sequence[Any],
        answer: Sequence[Any],
        answer_type: Sequence[str],
        **kwargs: Any,
    ) -> list[float | None]:
        """One reward per completion."""
        progress = progress_from(kwargs.get("trainer_state"))
        if progress is not None:
            self.progress = progress
        k = self.current_k
        return [
            accuracy(extract_answer(completion_text(c)), truth, kind, numeric="snra", k=k)
            if kind in ("numeric", "count") and truth is not None
            else None
            for c, truth, kind in zip(completions, answer, answer_type, strict=True)
        ]


def _parser(protocol: str) -> Any:
    # Imported on use: this is the only place rewards need the protocol module.
    from drawenv.protocol import get_protocol

    return get_protocol(protocol)


@dataclass(frozen=True)
class TRLFormatReward:
    """1.0 for each completion whose turn is format-ok under ``protocol``, else 0.0."""

    protocol: str = "vilasr"  # the text protocol the completions follow
    __name__ = "format_reward"

    def __post_init__(self) -> None:
        _parser(self.protocol)  # an unknown protocol fails here, not mid-training

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        """One reward per completion."""
        parser = _parser(self.protocol)
        return [float(parser.parse(completion_text(c)).format_ok) for c in completions]


__all__ = ["TRLFormatReward", "TRLSNRAReward", "trl_accuracy_reward"]
