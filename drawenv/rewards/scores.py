"""Scores of one answer against the truth: exact match, MRA, SNRA and its sharpness schedule,
accuracy by answer type, and the SR-REAL detection score.

Metrics take the prediction first and the truth second, as VSI-Bench does, and accept scalars or
numpy arrays. The formulas are written out in ``docs/rewards.md``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drawenv.errors import check_choice, invalid_argument
from drawenv.rewards.answers import normalize_choice, normalize_text, parse_number
from drawenv.tasks.record import ANSWER_TYPES

SCHEDULE_KINDS = ("linear", "cosine", "sigmoid")
NUMERIC_METRICS = ("mra", "snra")
DETECTION_MODES = ("2d", "3d")

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
        return float(p is not None and normalize_text(p) == normalize_text(t))

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


MRA_CONVENTIONS = ("drawenv", "vilasr", "vsi", "vilasr_eval")

# ViLaSR's thresholds as its code builds them (float32 0.50, 0.55, …, 0.95), and VSI-Bench's
# (float64, np.linspace); each convention compares against 1 - theta in its own precision.
_VILASR_TOLERANCES = np.float32(1) - np.array(
    [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95], dtype=np.float32
)
_VSI_TOLERANCES = 1.0 - np.linspace(0.5, 0.95, 10)


def mra(pred: Any, truth: Any, convention: str = "drawenv") -> float | np.ndarray:
    """VSI-Bench mean relative accuracy: the share of thresholds θ ∈ {0.50, …, 0.95} with
    ``|pred − truth| / truth < 1 − θ``.

    Divides by the truth, never the prediction. Non-finite predictions score 0. ``convention``
    picks how the boundaries fall (``docs/rewards.md``, MRA conventions):

    - ``"drawenv"``: float64, strict ``<`` against tolerances written out exactly; the truth must
      be a finite number > 0 (else :class:`DrawEnvError`, a data error).
    - ``"vilasr"``: ViLaSR's training reward: float32, ``|ŷ − y| / (|y| + 1e-8)``, strict ``<``;
      any finite truth, 0 and negatives included. The result is the float32 mean.
    - ``"vsi"``: VSI-Bench's official scorer: float64, ``<=`` against ``1 - linspace(.5, .95,
      10)``; the truth must be > 0.
    - ``"vilasr_eval"``: ViLaSR's evaluation script: as ``"vilasr"`` but with ``<=``.
    """
    convention = check_choice("convention", convention, MRA_CONVENTIONS)
    if convention in ("vilasr", "vilasr_eval"):
        y = _checked_truth(truth, positive=False)
        with np.errstate(over="ignore", invalid="ignore"):
            y32 = y.astype(np.float32)  # beyond float32 a truth is inf, and nothing passes
            p32 = np.asarray(pred, dtype=np.float64).astype(np.float32)
            error = np.abs(p32 - y32) / (np.abs(y32) + np.float32(1e-8))
            inside = (
                error[..., None] < _VILASR_TOLERANCES
                if convention == "vilasr"
                else error[..., None] <= _VILASR_TOLERANCES
            )
            passed = inside.sum(axis=-1, dtype=np.float32)
        hits = passed / np.float32(len(_VILASR_TOLERANCES))
        return _as_output(hits.astype(np.float64), pred, truth)
    y = _checked_truth(truth, positive=True)
    p = np.asarray(pred, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        error = np.abs(p - y) / y
    if convention == "vsi":
        hits = (error[..., None] <= _VSI_TOLERANCES).mean(axis=-1)
    else:
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
    mra_convention: str = "drawenv",
) -> float:
    """Accuracy of one extracted answer, in [0, 1]; ``None`` or unparseable answers score 0.

    ``multiple_choice``: the normalised letter equals the truth's. ``text``: :func:`exact_match`.
    ``numeric`` / ``count``: :func:`mra` under ``mra_convention`` (``numeric="mra"``; truth 0
    needs an exact 0, except under ``"vilasr"``, which divides by ``|y| + 1e-8``) or :func:`snra`
    with sharpness ``k`` (``numeric="snra"``; absolute error when truth is 0).
    """
    check_choice("answer_type", answer_type, ANSWER_TYPES)
    check_choice("numeric", numeric, NUMERIC_METRICS)
    check_choice("mra_convention", mra_convention, MRA_CONVENTIONS)
    if answer is None:
        return 0.0
    if not isinstance(answer, str):
        raise invalid_argument(
            "answer",
            answer,
            "the extracted answer text (a str) or None",
            f"Pass it as text, e.g. accuracy({str(answer)!r}, ...).",
        )
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
    if y == 0 and mra_convention not in ("vilasr", "vilasr_eval"):
        return float(p == 0.0)
    return float(mra(p, y, mra_convention))


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


__all__ = [
    "DETECTION_MODES",
    "MRA_CONVENTIONS",
    "NUMERIC_METRICS",
    "SCHEDULE_KINDS",
    "SharpnessSchedule",
    "accuracy",
    "box_centre",
    "detection_score",
    "exact_match",
    "mra",
    "snra",
]
