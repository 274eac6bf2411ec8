"""Verifiable rewards for DrawSpatial-v0: answer parsing, accuracy metrics, presets, TRL wrappers.

Everything here is a pure function of its arguments (or a small picklable class holding a few
settings), usable without the env. Metrics take the prediction first and the truth second, as
VSI-Bench does, and accept scalars or numpy arrays. The formulas are written out in
``docs/rewards.md``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drawenv.errors import check_choice, invalid_argument
from drawenv.tasks.record import ANSWER_TYPES
from drawenv.termination import TERMINATIONS

SCHEDULE_KINDS = ("linear", "cosine", "sigmoid")
NUMERIC_METRICS = ("mra", "snra")
DETECTION_MODES = ("2d", "3d")

# ---------------------------------------------------------------------------------------------
# Answer extraction and normalisation
# ---------------------------------------------------------------------------------------------

_OPEN_ANSWER, _CLOSE_ANSWER = "<answer>", "</answer>"
_BARE_LETTER_RE = re.compile(r"\(?([A-Za-z])\)?[.:]?")
_LETTER_THEN_TEXT_RE = re.compile(r"\(?([A-Za-z])[.):]\s")
_OPTION_PREFIX_RE = re.compile(r"\s*\(?([A-Za-z])[.):]\s*")
_TRAILING_PUNCT = ".!?,;:"

_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen"  # noqa: SIM905
        " fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_HEDGE_RE = re.compile(
    r"(?:(?:about|approximately|approx\.?|around|roughly|nearly|almost)\s+|[~≈]\s*)"
)
_NUMERAL_RE = re.compile(
    r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?"
    r"|(?P<word>[^\W\d_]+)"
)
# After the number only unit words may follow ("3.5 m", "4 chairs", "50%"). Words that would change
# the value or make it a range ("twenty one", "3 to 4", "2 and a half") reject the answer instead.
_UNIT_RE = re.compile(r"°?([^\W\d_]*)\.?|%")
_SCALE_WORDS = {"hundred", "thousand", "million", "billion", "half", "quarter", "point"}
_NOT_UNITS = frozenset(_NUMBER_WORDS) | _SCALE_WORDS | {"to", "or", "and"}


def extract_answer(text: str) -> str | None:
    """The stripped content of the first ``<answer>…</answer>`` in ``text``; ``None`` if none."""
    # str.find keeps this linear on megabytes of unclosed tags, where a lazy regex is quadratic.
    start = text.find(_OPEN_ANSWER)
    if start < 0:
        return None
    end = text.find(_CLOSE_ANSWER, start + len(_OPEN_ANSWER))
    return None if end < 0 else text[start + len(_OPEN_ANSWER) : end].strip()


def _normalise_text(value: Any) -> str:
    """Case-folded, whitespace-collapsed, without trailing punctuation."""
    return " ".join(str(value).split()).casefold().rstrip(_TRAILING_PUNCT).strip()


def _option_letters(options: Sequence[str]) -> list[tuple[str, str]]:
    """(letter, text without its prefix) per option; unprefixed options are lettered A, B, …"""
    lettered = []
    for i, option in enumerate(options):
        prefix = _OPTION_PREFIX_RE.match(option)
        if prefix:
            lettered.append((prefix.group(1).upper(), option[prefix.end() :]))
        else:
            lettered.append((chr(ord("A") + i), option))
    return lettered


def normalize_choice(text: str, options: Sequence[str] = ()) -> str | None:
    """The option letter a multiple-choice answer names, upper case, or ``None``.

    Accepts ``B``, ``(B)``, ``B.``, ``B) sofa``, ``b`` (surrounding spaces ignored) and, when
    ``options`` are given, an option's exact text (case-insensitive, with or without its ``A.``
    prefix). With ``options``, a letter that is not one of theirs gives ``None``.
    """
    stripped = text.strip()
    lettered = _option_letters(options)
    match = _BARE_LETTER_RE.fullmatch(stripped) or _LETTER_THEN_TEXT_RE.match(stripped)
    if match:
        letter = match.group(1).upper()
        if not lettered or letter in {option_letter for option_letter, _ in lettered}:
            return letter
        return None
    wanted = _normalise_text(stripped)
    if not wanted:
        return None
    for (letter, body), option in zip(lettered, options, strict=True):
        if wanted in (_normalise_text(body), _normalise_text(option)):
            return letter
    return None


def parse_number(text: str) -> float | None:
    """The number an answer states, or ``None``.

    Accepts ints, floats, negatives, thousands separators (``1,234``), a trailing unit word
    (``3.5m``, ``3.5 meters``; units are not converted), a leading hedge (``about 4``) and the
    English words zero to twenty. Anything else, or a non-finite value, gives ``None``.
    """
    cleaned = text.strip().replace("\u2212", "-").rstrip(_TRAILING_PUNCT).strip()
    hedge = _HEDGE_RE.match(cleaned)
    if hedge:
        cleaned = cleaned[hedge.end() :]
    match = _NUMERAL_RE.match(cleaned)
    if not match:
        return None
    for token in cleaned[match.end() :].split():
        unit = _UNIT_RE.fullmatch(token)
        if not unit or (unit.group(1) or "").casefold() in _NOT_UNITS:
            return None
    word = match.group("word")
    if word is not None:
        value = _NUMBER_WORDS.get(word.casefold())
        return None if value is None else float(value)
    value = float(match.group(0).replace(",", ""))
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

# 1 - theta for theta in {0.95, 0.90, ..., 0.50}, written out so no float arithmetic shifts a bound;
# ascending, so one binary search counts the thresholds an error passes.
_MRA_TOLERANCES = np.array([0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50])


def _as_output(values: np.ndarray, *inputs: Any) -> float | np.ndarray:
    """A float when every input was a scalar, else the array."""
    if all(np.ndim(x) == 0 for x in inputs):
        return float(values)
    return values


def exact_match(pred: Any, truth: Any) -> float | np.ndarray:
    """1.0 where the normalised prediction equals the normalised truth, else 0.0.

    Normalisation: case, surrounding and repeated whitespace, trailing punctuation. ``None``
    never matches. Scalars give a float, arrays an array (broadcast).
    """

    def one(p: Any, t: Any) -> float:
        return float(p is not None and _normalise_text(p) == _normalise_text(t))

    if np.ndim(pred) == 0 and np.ndim(truth) == 0:
        return one(pred, truth)
    matched = np.frompyfunc(one, 2, 1)(np.asarray(pred, dtype=object), np.asarray(truth, object))
    return np.asarray(matched, dtype=float)


def _checked_truth(truth: Any, *, positive: bool) -> np.ndarray:
    y = np.asarray(truth, dtype=float)
    bad = ~np.isfinite(y) | (y <= 0) if positive else ~np.isfinite(y)
    if np.any(bad):
        if positive:
            hint = (
                "Relative errors divide by the truth; check the dataset's numeric answers, or use"
                " snra(..., relative=False) for quantities that can be 0."
            )
            raise invalid_argument("truth", truth, "finite numbers > 0", hint)
        raise invalid_argument("truth", truth, "finite numbers")
    return y


def mra(pred: Any, truth: Any) -> float | np.ndarray:
    """VSI-Bench mean relative accuracy: the share of thresholds θ ∈ {0.50, …, 0.95} with
    ``|pred − truth| / truth < 1 − θ``.

    Divides by the truth, never the prediction. Non-finite predictions score 0. Raises
    :class:`DrawEnvError` when a truth is not a finite number > 0 (a data error).
    """
    y = _checked_truth(truth, positive=True)
    p = np.asarray(pred, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.abs(p - y) / y
    # Thresholds with error < tolerance: those after the last tolerance <= error (NaN: none).
    passed = len(_MRA_TOLERANCES) - np.searchsorted(_MRA_TOLERANCES, error, side="right")
    hits = passed / len(_MRA_TOLERANCES)
    return _as_output(np.where(np.isfinite(p), hits, 0.0), pred, truth)


def snra(pred: Any, truth: Any, k: float = 1.0, *, relative: bool = True) -> float | np.ndarray:
    """Smooth numeric reward ``2 / (1 + exp(k · e²))``, in (0, 1], equal to 1 at e = 0.

    ``e = |pred − truth| / truth`` when ``relative`` (truth must be > 0), else ``|pred − truth|``.
    ``k`` > 0 is the sharpness. Non-finite predictions score 0. Huge errors give a tiny positive
    reward without overflow warnings.
    """
    k = float(k)
    if not (math.isfinite(k) and k > 0):
        raise invalid_argument("k", k, "a finite number > 0", "k is the SNRA sharpness.")
    y = _checked_truth(truth, positive=relative)
    p = np.asarray(pred, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.abs(p - y) / y if relative else np.abs(p - y)
        # exp(700) is still finite, so the reward stays > 0 and nothing overflows.
        exponent = np.minimum(k * error * error, 700.0)
        reward = 2.0 / (1.0 + np.exp(exponent))
    return _as_output(np.where(np.isfinite(p), reward, 0.0), pred, truth)


@dataclass(frozen=True)
class SharpnessSchedule:
    """SNRA sharpness k as a function of training progress t ∈ [0, 1].

    ``k(0) = k_min`` and ``k(1) = k_max`` for every kind; ``t`` is clipped to [0, 1].
    """

    k_min: float = 1.0  # sharpness at the start of training (soft reward)
    k_max: float = 100.0  # sharpness at the end of training (strict reward)
    kind: str = "linear"  # "linear", "cosine" or "sigmoid" ramp from k_min to k_max
    steepness: float = 10.0  # slope of the "sigmoid" ramp at t = 0.5; other kinds ignore it

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, SCHEDULE_KINDS)
        for name in ("k_min", "k_max", "steepness"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise invalid_argument(name, value, "a finite number > 0")
        if self.k_max < self.k_min:
            raise invalid_argument(
                "k_max", self.k_max, f"a number >= k_min ({self.k_min})", "Sharpness only grows."
            )

    def __call__(self, t: float) -> float:
        """The sharpness at progress ``t``."""
        t = float(t)
        if math.isnan(t):
            raise invalid_argument("t", t, "a training progress in [0, 1]")
        t = min(max(t, 0.0), 1.0)
        if self.kind == "linear":
            frac = t
        elif self.kind == "cosine":
            frac = (1.0 - math.cos(math.pi * t)) / 2.0
        else:  # sigmoid, rescaled so that the endpoints are exactly k_min and k_max
            # the logistic written with tanh, which cannot overflow for any steepness
            s0, s1, st = (0.5 + 0.5 * math.tanh(self.steepness * (x - 0.5) / 2) for x in (0, 1, t))
            frac = (st - s0) / (s1 - s0)
        # Interpolating this way makes frac = 0 and frac = 1 land exactly on the endpoints.
        return self.k_min * (1.0 - frac) + self.k_max * frac


def _numeric_truth(truth: Any) -> float:
    value = parse_number(truth) if isinstance(truth, str) else float(truth)
    if value is None or not math.isfinite(value):
        raise invalid_argument("truth", truth, "a finite number for a numeric or count task")
    return value


def accuracy(
    answer: str | None,
    truth: Any,
    answer_type: str,
    *,
    options: Sequence[str] = (),
    numeric: str = "mra",
    k: float = 1.0,
) -> float:
    """Accuracy of one extracted answer, in [0, 1]; ``None`` or unparseable answers score 0.

    ``multiple_choice``: the normalised letter equals the truth's. ``text``: :func:`exact_match`.
    ``numeric`` / ``count``: :func:`mra` (``numeric="mra"``; truth 0 needs an exact 0) or
    :func:`snra` with sharpness ``k`` (``numeric="snra"``; absolute error when truth is 0).
    """
    check_choice("answer_type", answer_type, ANSWER_TYPES)
    check_choice("numeric", numeric, NUMERIC_METRICS)
    if answer is None:
        return 0.0
    if answer_type == "multiple_choice":
        letter = normalize_choice(answer, options)
        return float(letter is not None and letter == normalize_choice(str(truth), options))
    if answer_type == "text":
        return float(exact_match(answer, truth))
    y = _numeric_truth(truth)
    p = parse_number(answer)
    if p is None:
        return 0.0
    if numeric == "snra":
        return float(snra(p, y, k, relative=y != 0))
    return float(p == 0.0) if y == 0 else float(mra(p, y))


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------

# (upper bound on the distance, score); 3D distances in metres, 2D ones as 10 * d / diagonal.
_DETECTION_BANDS = ((0.1, 1.0), (0.2, 0.8), (0.3, 0.6), (0.4, 0.4), (0.6, 0.2), (1.0, 0.1))


def _band_score(distance: float) -> float:
    for bound, score in _DETECTION_BANDS:
        if distance < bound:
            return score
    return 0.0


def box_centre(xyxy: Sequence[float]) -> tuple[float, float]:
    """The centre ``(x, y)`` of a box ``(x1, y1, x2, y2)``."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)


def detection_score(
    pred: Sequence[tuple[str, Sequence[float]]],
    objects: Sequence[tuple[str, Sequence[float]]],
    *,
    mode: str = "2d",
    diagonal: float | None = None,
) -> float:
    """SR-REAL style centre-distance detection score in [0, 1].

    Each ground-truth ``(name, centre)`` is matched to the first predicted ``(label, centre)``
    whose label contains the name (case-insensitive) and scored by distance bands (see
    ``docs/rewards.md``). The sum is divided by the number of predicted boxes, so extra boxes
    lower the score; no predictions score 0. ``mode="2d"`` needs the image ``diagonal`` > 0.
    """
    check_choice("mode", mode, DETECTION_MODES)
    if mode == "2d" and not (
        isinstance(diagonal, numbers.Real) and math.isfinite(diagonal) and diagonal > 0
    ):
        raise invalid_argument(
            "diagonal", diagonal, "a number > 0 in 2d mode", "Pass the image diagonal in pixels."
        )
    if not pred:
        return 0.0
    total = 0.0
    for name, centre in objects:
        wanted = name.casefold()
        match = next((c for label, c in pred if wanted in label.casefold()), None)
        if match is None:
            continue
        distance = math.dist(map(float, match), map(float, centre))
        total += _band_score(10.0 * distance / diagonal if mode == "2d" else distance)
    return min(max(total / len(pred), 0.0), 1.0)


# ---------------------------------------------------------------------------------------------
# Episode rewards and presets
# ---------------------------------------------------------------------------------------------


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


def _episode_accuracy(episode: Episode, numeric: str = "mra", k: float = 1.0) -> float:
    if not episode.answered:
        return 0.0
    return accuracy(
        episode.answer,
        episode.truth,
        episode.answer_type,
        options=episode.options,
        numeric=numeric,
        k=k,
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

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        acc = _episode_accuracy(episode)
        fmt = float(episode.format_ok)
        gate = float(acc > 0)
        reward = gate * (0.5 * acc + 0.5 * fmt)
        return _finish(episode, reward, {"accuracy": acc, "format": fmt, "gate": gate})


@dataclass(frozen=True)
class VilasrPaperReward:
    """``vilasr_paper``: ``1[acc > beta] · (acc + format)``, range [0, 2] (the paper's form)."""

    beta: float = 0.0  # accuracy must exceed this for any reward

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        acc = _episode_accuracy(episode)
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

    def __call__(self, episode: Episode) -> tuple[float, dict[str, float]]:
        """Reward and named terms of one finished episode."""
        acc = _episode_accuracy(episode)
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
}


def get_reward(reward: str | RewardFn) -> RewardFn:
    """A preset instance by name, or the callable ``(episode) -> (reward, terms)`` as given."""
    if isinstance(reward, str):
        return REWARD_PRESETS[check_choice("reward", reward, REWARD_PRESETS)]()
    expected = f"a preset name ({', '.join(REWARD_PRESETS)}) or a callable (episode) -> (r, terms)"
    if isinstance(reward, type):
        raise invalid_argument("reward", reward, expected, "Pass an instance, not the class.")
    if callable(reward):
        return reward
    raise invalid_argument("reward", reward, expected)


# ---------------------------------------------------------------------------------------------
# TRL GRPOTrainer wrappers: f(completions, **dataset_columns) -> list[float | None]
# ---------------------------------------------------------------------------------------------


def _completion_text(completion: Any) -> str:
    """The final turn's text of a plain or conversational (list of messages) completion."""
    if isinstance(completion, str):
        return completion
    messages = [m for m in completion if m.get("role", "assistant") == "assistant"]
    if not messages:
        return ""
    content = messages[-1].get("content", "")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


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
        else accuracy(extract_answer(_completion_text(c)), truth, kind, options=tuple(opts or ()))
        for c, truth, kind, opts in rows
    ]


def _progress_from(trainer_state: Any) -> float | None:
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
        progress = _progress_from(kwargs.get("trainer_state"))
        if progress is not None:
            self.progress = progress
        k = self.current_k
        return [
            accuracy(extract_answer(_completion_text(c)), truth, kind, numeric="snra", k=k)
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
        return [float(parser.parse(_completion_text(c)).format_ok) for c in completions]


__all__ = [
    "ANSWER_TYPES",
    "REWARD_PRESETS",
    "TERMINATIONS",
    "Episode",
    "RewardFn",
    "SNRAPresetReward",
    "SRRealReward",
    "SharpnessSchedule",
    "TRLFormatReward",
    "TRLSNRAReward",
    "VilasrPaperReward",
    "VilasrReward",
    "accuracy",
    "box_centre",
    "detection_score",
    "exact_match",
    "extract_answer",
    "get_reward",
    "mra",
    "normalize_choice",
    "parse_number",
    "snra",
    "trl_accuracy_reward",
]
