"""Verifiable rewards for DrawSpatial-v0, one module per concern.

- :mod:`drawenv.rewards.answers`: reading the answer (``<answer>`` tag, option letters, numbers).
- :mod:`drawenv.rewards.scores`: exact match, MRA, SNRA and its schedule, accuracy, detection.
- :mod:`drawenv.rewards.presets`: the :class:`Episode` the env scores, the presets and
  :func:`get_reward`.
- :mod:`drawenv.rewards.vilasr`: ViLaSR's released reward rule for rule (``vilasr_exact``).
- :mod:`drawenv.rewards.trl`: wrappers for TRL's ``GRPOTrainer``.

Everything is a pure function of its arguments (or a small picklable class holding a few
settings), usable without the env, and importable from ``drawenv.rewards``. The formulas are
written out in ``docs/rewards.md``.
"""

from __future__ import annotations

from drawenv.rewards.answers import extract_answer, normalize_choice, normalize_text, parse_number
from drawenv.rewards.presets import (
    ANSWER_TYPES,
    REWARD_PARAMETERS,
    REWARD_PRESETS,
    TERMINATIONS,
    Episode,
    RewardFn,
    SNRAPresetReward,
    SRRealReward,
    VilasrExactReward,
    VilasrPaperReward,
    VilasrReward,
    get_reward,
)
from drawenv.rewards.scores import (
    DETECTION_MODES,
    MRA_CONVENTIONS,
    NUMERIC_METRICS,
    SCHEDULE_KINDS,
    SharpnessSchedule,
    accuracy,
    box_centre,
    detection_score,
    exact_match,
    mra,
    snra,
)
from drawenv.rewards.trl import TRLFormatReward, TRLSNRAReward, trl_accuracy_reward
from drawenv.rewards.vilasr import (
    VILASR_QUESTION_TYPES,
    vilasr_accuracy,
    vilasr_answer,
    vilasr_eval_score,
    vilasr_format,
    vilasr_number,
)

__all__ = [
    "ANSWER_TYPES",
    "DETECTION_MODES",
    "MRA_CONVENTIONS",
    "NUMERIC_METRICS",
    "REWARD_PARAMETERS",
    "REWARD_PRESETS",
    "SCHEDULE_KINDS",
    "TERMINATIONS",
    "VILASR_QUESTION_TYPES",
    "Episode",
    "RewardFn",
    "SNRAPresetReward",
    "SRRealReward",
    "SharpnessSchedule",
    "TRLFormatReward",
    "TRLSNRAReward",
    "VilasrExactReward",
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
    "normalize_text",
    "parse_number",
    "snra",
    "trl_accuracy_reward",
    "vilasr_accuracy",
    "vilasr_answer",
    "vilasr_eval_score",
    "vilasr_format",
    "vilasr_number",
]
