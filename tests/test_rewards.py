"""Unit tests of drawenv.rewards: hand-computed values, one table per function."""

from __future__ import annotations

import math
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import drawenv.rewards
from drawenv.errors import DrawEnvError
from drawenv.rewards import (
    REWARD_PARAMETERS,
    REWARD_PRESETS,
    Episode,
    SharpnessSchedule,
    SNRAPresetReward,
    SRRealReward,
    TRLFormatReward,
    TRLSNRAReward,
    VilasrPaperReward,
    VilasrReward,
    accuracy,
    box_centre,
    detection_score,
    exact_match,
    extract_answer,
    get_reward,
    mra,
    normalize_choice,
    parse_number,
    snra,
    trl_accuracy_reward,
)

E = math.e
# Closed forms of r = 2 / (1 + exp(k e^2)) used below.
R_KE2_1 = 2 / (1 + E)  # k·e² = 1            -> 0.5378828427399902
R_KE2_2_5 = 2 / (1 + math.exp(2.5))  # k·e² = 2.5 -> 0.1517163600424871
R_KE2_0_9 = 2 / (1 + math.exp(0.9))  # k·e² = 0.9 -> 0.5781009947499920
R_KE2_0_01 = 2 / (1 + math.exp(0.01))  # k·e² = 0.01 -> 0.9950000416662501

# ---------------------------------------------------------------------------------------------
# Extraction and normalisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>B</answer>", "B"),
        ("<think>x</think> Action: Answer\n<answer>  3.5 m \n</answer>", "3.5 m"),
        ("<answer>first</answer> then <answer>second</answer>", "first"),
        ("<answer>\nmulti\nline\n</answer>", "multi\nline"),
        ("<answer></answer>", ""),
        ("no tags at all", None),
        ("<answer>unclosed", None),
        ("</answer> <answer>", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


OPTIONS = ("A. chair", "B. sofa", "C. table", "D. bed")


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("B", (), "B"),
        ("(B)", (), "B"),
        ("B.", (), "B"),
        ("B) sofa", (), "B"),
        ("B. sofa", (), "B"),
        ("(B) sofa", (), "B"),
        ("b", (), "B"),
        (" b ", (), "B"),
        ("B:", (), "B"),
        ("sofa", OPTIONS, "B"),  # option text without its prefix
        ("SOFA.", OPTIONS, "B"),  # case and trailing punctuation
        ("b. Sofa", OPTIONS, "B"),
        ("D. bed", OPTIONS, "D"),  # option text with its prefix
        ("a chair", ("a chair", "a sofa"), "A"),  # unprefixed options are lettered in order
        ("a sofa", ("a chair", "a sofa"), "B"),
        # rejected
        ("sofa", (), None),
        ("Bed", (), None),
        ("A chair", (), None),
        ("E", OPTIONS, None),  # not one of the options' letters
        ("lamp", OPTIONS, None),
        ("B or C", (), None),
        ("", OPTIONS, None),
        ("   ", (), None),
    ],
)
def test_normalize_choice(text, options, expected):
    assert normalize_choice(text, options) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3.0),
        ("-3", -3.0),
        ("\u22122.5", -2.5),  # unicode minus
        ("3.25", 3.25),
        (".5", 0.5),
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("3.5m", 3.5),
        ("3.5 meters", 3.5),
        ("3.5 m.", 3.5),
        ("4 chairs", 4.0),
        ("50%", 50.0),
        ("about 4", 4.0),
        ("approximately 2.5 metres", 2.5),
        ("~7", 7.0),
        ("1e3", 1000.0),
        ("zero", 0.0),
        ("three", 3.0),
        ("Twelve", 12.0),
        ("twenty", 20.0),
        ("about three meters", 3.0),
        (" 42 ", 42.0),
        # rejected
        ("", None),
        ("abc", None),
        ("twenty one", None),
        ("twenty-one", None),
        ("3 to 4", None),
        ("3/4", None),
        ("3x4", None),
        ("2 and a half", None),
        ("12,34", None),
        ("1,5", None),
        ("nan", None),
        ("inf", None),
        ("1e400", None),  # overflows to inf
        ("about", None),
        ("B", None),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == expected


# ---------------------------------------------------------------------------------------------
# Exact match, MRA, SNRA
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        ("yes", "yes", 1.0),
        ("Yes.", "yes", 1.0),
        ("  left   of  ", "Left of", 1.0),
        ("red!", "RED", 1.0),
        ("no", "yes", 0.0),
        ("yes sir", "yes", 0.0),
        (None, "yes", 0.0),
    ],
)
def test_exact_match_scalars(pred, truth, expected):
    result = exact_match(pred, truth)
    assert isinstance(result, float)
    assert result == expected


def test_exact_match_arrays():
    result = exact_match(np.array(["Yes", "no ", "maybe"]), np.array(["yes", "No", "no"]))
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(exact_match(["a", "b"], "A"), [1.0, 0.0])


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        # relative error e, and the tolerances 1 - θ ∈ {0.50, 0.45, …, 0.05} that e stays below
        (100.0, 100.0, 1.0),  # e = 0: all 10
        (103.0, 100.0, 1.0),  # e = 0.03: all 10
        (93.0, 100.0, 0.9),  # e = 0.07: all but 0.05 -> 9/10
        (112.0, 100.0, 0.8),  # e = 0.12: 0.50 … 0.15 -> 8/10
        (73.0, 100.0, 0.5),  # e = 0.27: 0.50 … 0.30 -> 5/10
        (149.0, 100.0, 0.1),  # e = 0.49: only 0.50 -> 1/10
        (160.0, 100.0, 0.0),  # e = 0.60: none
        (-100.0, 100.0, 0.0),  # e = 2
        (12.2, 10.0, 0.6),  # e = 0.22: 0.50 … 0.25 -> 6/10
        (10.0, 12.2, 0.7),  # e = 2.2/12.2 = 0.180: 0.50 … 0.20 -> 7/10 (divide by truth)
        (4.0, 3.0, 0.4),  # e = 1/3: 0.50, 0.45, 0.40, 0.35 -> 4/10
    ],
)
def test_mra_values(pred, truth, expected):
    result = mra(pred, truth)
    assert isinstance(result, float)
    assert result == pytest.approx(expected)


def test_mra_arrays_equal_the_scalar_values():
    # e exactly at a tolerance does not pass it (strict <): e = 0.25 passes 0.30 … 0.50 (5/10),
    # e = 0.5 passes none; e = 0.125 passes 0.15 … 0.50 (8/10). All exact in binary.
    preds = np.array([100.0, 93.0, 112.0, 73.0, 149.0, 160.0, 1.25, 1.5, 0.875, math.nan])
    truths = np.array([100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 1.0, 1.0, 1.0, 1.0])
    expected = [1.0, 0.9, 0.8, 0.5, 0.1, 0.0, 0.5, 0.0, 0.8, 0.0]
    result = mra(preds, truths)
    assert result.tolist() == [mra(float(p), float(t)) for p, t in zip(preds, truths)]
    np.testing.assert_allclose(result, expected)


def test_mra_divides_by_truth_not_prediction():
    # Dividing by the prediction would give 2.2/12.2 (0.7) for the first and 0.22 (0.6) for the
    # second; dividing by the truth gives the reverse.
    assert mra(12.2, 10.0) == pytest.approx(0.6)
    assert mra(10.0, 12.2) == pytest.approx(0.7)


def test_mra_vectorised():
    preds = np.array([103.0, 112.0, 73.0, 149.0, 160.0])
    result = mra(preds, 100.0)
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, [1.0, 0.8, 0.5, 0.1, 0.0])
    # broadcasts; against truth 200: e = 97/200 = 0.485 -> 1/10, e = 88/200 = 0.44 -> 2/10
    grid = mra(np.array([[103.0], [112.0]]), np.array([100.0, 200.0]))
    np.testing.assert_allclose(grid, [[1.0, 0.1], [0.8, 0.2]])


@pytest.mark.parametrize("pred", [math.nan, math.inf, -math.inf])
def test_mra_non_finite_prediction_scores_zero(pred):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mra(pred, 1.0) == 0.0
        np.testing.assert_array_equal(mra(np.array([pred, 1.0]), 1.0), [0.0, 1.0])


@pytest.mark.parametrize("truth", [0.0, -1.0, math.nan, math.inf, np.array([1.0, 0.0])])
def test_mra_rejects_non_positive_truth(truth):
    with pytest.raises(DrawEnvError, match="truth"):
        mra(1.0, truth)


@pytest.mark.parametrize(
    ("pred", "truth", "k", "expected"),
    [
        (5.0, 5.0, 1.0, 1.0),  # e = 0
        (5.0, 5.0, 100.0, 1.0),
        (2.0, 1.0, 1.0, R_KE2_1),  # e = 1, k e² = 1
        (0.0, 1.0, 1.0, R_KE2_1),  # e = 1 from below
        (110.0, 100.0, 100.0, R_KE2_1),  # e = 0.1, k e² = 1
        (110.0, 100.0, 1.0, R_KE2_0_01),  # e = 0.1, k e² = 0.01
        (15.0, 10.0, 10.0, R_KE2_2_5),  # e = 0.5, k e² = 2.5
    ],
)
def test_snra_closed_form(pred, truth, k, expected):
    result = snra(pred, truth, k)
    assert isinstance(result, float)
    assert result == pytest.approx(expected, rel=1e-12)


def test_snra_arrays_equal_the_scalar_values():
    preds = np.array([5.0, 2.0, 0.0, 110.0, 15.0, math.inf])
    truths = np.array([5.0, 1.0, 1.0, 100.0, 10.0, 1.0])
    ks = [1.0, 1.0, 1.0, 100.0, 10.0, 1.0]
    expected = [1.0, R_KE2_1, R_KE2_1, R_KE2_1, R_KE2_2_5, 0.0]
    for k in set(ks):
        result = snra(preds, truths, k)
        assert result.tolist() == [snra(float(p), float(t), k) for p, t in zip(preds, truths)]
    rows = [snra(preds[i : i + 1], truths[i : i + 1], ks[i])[0] for i in range(len(ks))]
    np.testing.assert_allclose(rows, expected, rtol=1e-12)


def test_snra_absolute_mode():
    # e = |0.3 - 0| = 0.3, k e² = 10 · 0.09 = 0.9
    assert snra(0.3, 0.0, 10.0, relative=False) == pytest.approx(R_KE2_0_9)
    assert snra(-0.3, 0.0, 10.0, relative=False) == pytest.approx(R_KE2_0_9)
    # relative would divide by 0: it raises instead
    with pytest.raises(DrawEnvError, match="truth"):
        snra(0.3, 0.0, 10.0)


@pytest.mark.parametrize("k", [0.5, 1.0, 10.0, 100.0])
def test_snra_decreasing_and_in_unit_interval(k):
    errors = np.linspace(0.0, 2.0, 101)
    rewards = snra(1.0 + errors, 1.0, k)
    assert rewards[0] == 1.0
    assert np.all(np.diff(rewards) < 0)
    assert np.all((rewards > 0) & (rewards <= 1))


def test_snra_huge_errors_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = snra(1e300, 1.0, 1.0)
        assert 0.0 < r < 1e-300
        assert 0.0 < snra(-1e308, 1e-300, 1e10) < 1e-300
        assert 0.0 < snra(1e300, 0.0, 100.0, relative=False) < 1e-300
        np.testing.assert_array_equal(snra(np.array([math.nan, math.inf]), 1.0), [0.0, 0.0])


@pytest.mark.parametrize("k", [0.0, -1.0, math.nan, math.inf])
def test_snra_rejects_bad_sharpness(k):
    with pytest.raises(DrawEnvError, match="`k`"):
        snra(1.0, 1.0, k)


# ---------------------------------------------------------------------------------------------
# Sharpness schedules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "t", "expected"),
    [
        ("linear", 0.0, 1.0),
        ("linear", 0.5, 50.5),  # 1 + 99 · 0.5
        ("linear", 1.0, 100.0),
        ("linear", 0.25, 25.75),  # 1 + 99 · 0.25
        ("cosine", 0.0, 1.0),
        ("cosine", 0.5, 50.5),  # (1 - cos(π/2)) / 2 = 0.5
        ("cosine", 1.0, 100.0),
        ("cosine", 0.25, 15.498214331265896),  # (1 - cos(π/4)) / 2 = 0.14645
        ("sigmoid", 0.0, 1.0),
        ("sigmoid", 0.5, 50.5),  # symmetric about t = 0.5
        ("sigmoid", 1.0, 100.0),
        # σ(10(t - 0.5)) rescaled: (σ(-2.5) - σ(-5)) / (σ(5) - σ(-5)) = 0.0701037
        ("sigmoid", 0.25, 7.9402679379657055),
        ("linear", -1.0, 1.0),  # t is clipped
        ("sigmoid", 2.0, 100.0),
    ],
)
def test_schedule_values(kind, t, expected):
    assert SharpnessSchedule(kind=kind)(t) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine", "sigmoid"])
def test_schedule_endpoints_exact(kind):
    schedule = SharpnessSchedule(k_min=0.3, k_max=7.1, kind=kind)
    assert schedule(0.0) == 0.3
    assert schedule(1.0) == 7.1
    ks = [schedule(t) for t in np.linspace(0, 1, 21)]
    assert np.all(np.diff(ks) >= 0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "exponential"}, "kind"),
        ({"kind": "Linear"}, "kind"),
        ({"k_min": 0.0}, "k_min"),
        ({"k_min": -1.0}, "k_min"),
        ({"k_max": math.inf}, "k_max"),
        ({"k_min": 10.0, "k_max": 5.0}, "k_max"),
        ({"k_min": "1"}, "k_min"),
        ({"steepness": 0.0}, "steepness"),
    ],
)
def test_schedule_rejects_bad_settings(kwargs, name):
    with pytest.raises(DrawEnvError, match=f"`{name}`"):
        SharpnessSchedule(**kwargs)


def test_schedule_rejects_nan_progress():
    with pytest.raises(DrawEnvError, match="`t`"):
        SharpnessSchedule()(math.nan)


# ---------------------------------------------------------------------------------------------
# Accuracy by answer type
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "truth", "answer_type", "options", "expected"),
    [
        ("B", "B", "multiple_choice", (), 1.0),
        ("(b)", "B", "multiple_choice", (), 1.0),
        ("sofa", "B", "multiple_choice", OPTIONS, 1.0),
        ("C", "B", "multiple_choice", OPTIONS, 0.0),
        ("I think B", "B", "multiple_choice", OPTIONS, 0.0),
        ("Yes.", "yes", "text", (), 1.0),
        ("no", "yes", "text", (), 0.0),
        ("112", 100, "numeric", (), 0.8),  # e = 0.12
        ("about 112 m", 100, "numeric", (), 0.8),
        ("112", "100", "numeric", (), 0.8),  # truth given as text
        ("cat", 100, "numeric", (), 0.0),
        ("3", 3, "count", (), 1.0),
        ("three", 3, "count", (), 1.0),
        ("4", 3, "count", (), 0.4),  # e = 1/3
        ("0", 0, "numeric", (), 1.0),  # truth 0 under MRA: exact equality
        ("0.1", 0, "numeric", (), 0.0),
        (None, "B", "multiple_choice", (), 0.0),
        (None, 3, "count", (), 0.0),
    ],
)
def test_accuracy(answer, truth, answer_type, options, expected):
    assert accuracy(answer, truth, answer_type, options=options) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("answer", "truth", "k", "expected"),
    [
        ("110", 100, 100.0, R_KE2_1),  # relative e = 0.1
        ("110", 100, 1.0, R_KE2_0_01),
        ("0.3", 0, 10.0, R_KE2_0_9),  # truth 0: absolute e = 0.3
        ("nope", 100, 1.0, 0.0),
    ],
)
def test_accuracy_snra(answer, truth, k, expected):
    result = accuracy(answer, truth, "numeric", numeric="snra", k=k)
    assert result == pytest.approx(expected)


def test_accuracy_snra_does_not_touch_choices():
    assert accuracy("B", "B", "multiple_choice", numeric="snra", k=100.0) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"answer_type": "boolean"}, "answer_type"),
        ({"answer_type": "numeric", "numeric": "mse"}, "numeric"),
        ({"answer_type": "numeric", "truth": -2.0}, "truth"),
        ({"answer_type": "numeric", "truth": "lots"}, "truth"),
    ],
)
def test_accuracy_rejects_bad_arguments(kwargs, name):
    arguments = {"answer": "1", "truth": 1.0, **kwargs}
    with pytest.raises(DrawEnvError, match=f"`{name}`"):
        accuracy(**arguments)


# ---------------------------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        # diagonal 1000 px: 10 · d / 1000 = d / 100
        (5.0, 1.0),  # 0.05 < 0.1
        (15.0, 0.8),  # 0.15
        (25.0, 0.6),
        (35.0, 0.4),
        (50.0, 0.2),  # 0.5 < 0.6
        (80.0, 0.1),  # 0.8 < 1.0
        (150.0, 0.0),  # 1.5
    ],
)
def test_detection_bands_2d(offset, expected):
    pred = [("the sofa", (100.0 + offset, 100.0))]
    score = detection_score(pred, [("sofa", (100.0, 100.0))], mode="2d", diagonal=1000.0)
    assert score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("distance", "expected"),
    [(0.05, 1.0), (0.15, 0.8), (0.25, 0.6), (0.35, 0.4), (0.5, 0.2), (0.8, 0.1), (1.5, 0.0)],
)
def test_detection_bands_3d(distance, expected):
    # the offset is split over y and z: d = sqrt(0.6² + 0.8²) · distance = distance
    pred = [("Chair", (1.0, 2.0 + 0.6 * distance, 3.0 + 0.8 * distance))]
    score = detection_score(pred, [("chair", (1.0, 2.0, 3.0))], mode="3d")
    assert score == pytest.approx(expected)


def test_detection_first_match_and_spam_division():
    objects = [("chair", (0.0, 0.0))]
    near, far = (0.05, 0.0), (0.8, 0.0)  # 3D: 1.0 and 0.1
    # The first box whose label contains "chair" is "red chair" (far), not the closer "chair".
    assert detection_score([("red chair", far), ("chair", near)], objects, mode="3d") == (
        pytest.approx(0.1 / 2)
    )
    # One perfect box plus three unrelated boxes: 1.0 / 4.
    spam = [("chair", near), ("lamp", near), ("lamp 2", near), ("rug", near)]
    assert detection_score(spam, objects, mode="3d") == pytest.approx(0.25)
    # Unmatched objects add nothing; the score is clipped to 1 when one box serves two objects.
    two = [("chair", (0.0, 0.0)), ("hair", (0.0, 0.0))]
    assert detection_score([("chair", (0.0, 0.0))], two, mode="3d") == 1.0
    assert detection_score([("table", near)], objects, mode="3d") == 0.0


def test_detection_without_predictions_is_zero():
    assert detection_score([], [("chair", (0.0, 0.0))], mode="2d", diagonal=10.0) == 0.0
    assert detection_score([("chair", (0.0, 0.0))], [], mode="3d") == 0.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mode": "2d"}, "diagonal"),
        ({"mode": "2d", "diagonal": 0.0}, "diagonal"),
        ({"mode": "2d", "diagonal": -5.0}, "diagonal"),
        ({"mode": "4d"}, "mode"),
    ],
)
def test_detection_rejects_bad_arguments(kwargs, name):
    with pytest.raises(DrawEnvError, match=f"`{name}`"):
        detection_score([("a", (0.0, 0.0))], [("a", (0.0, 0.0))], **kwargs)


def test_box_centre():
    assert box_centre((10, 20, 30, 60)) == (20.0, 40.0)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------


def episode(answer, truth, answer_type="multiple_choice", **kwargs) -> Episode:
    return Episode(answer=answer, truth=truth, answer_type=answer_type, **kwargs)


MC_RIGHT = episode("B", "B")
MC_WRONG = episode("C", "B")
MC_RIGHT_BAD_FORMAT = episode("B", "B", format_ok=False)
NUM_PARTIAL = episode("112", 100.0, "numeric")  # MRA 0.8
NUM_PARTIAL_BAD_FORMAT = episode("112", 100.0, "numeric", format_ok=False)
NUM_FAR = episode("160", 100.0, "numeric")  # MRA 0
NOT_ANSWERED = episode(None, "B", termination="no_action")
TRUNCATED_RIGHT = episode("B", "B", termination="max_turns")  # an answer text does not count


@pytest.mark.parametrize(
    ("reward_fn", "ep", "expected"),
    [
        (VilasrReward(), MC_RIGHT, 1.0),  # 0.5 · 1 + 0.5 · 1
        (VilasrReward(), MC_RIGHT_BAD_FORMAT, 0.5),  # 0.5 · 1 + 0.5 · 0
        (VilasrReward(), MC_WRONG, 0.0),  # gated
        (VilasrReward(), NUM_PARTIAL, 0.9),  # 0.5 · 0.8 + 0.5
        (VilasrReward(), NUM_PARTIAL_BAD_FORMAT, 0.4),  # 0.5 · 0.8
        (VilasrReward(), NUM_FAR, 0.0),  # gated although the format is fine
        (VilasrReward(), NOT_ANSWERED, 0.0),
        (VilasrReward(), TRUNCATED_RIGHT, 0.0),
        (VilasrPaperReward(), MC_RIGHT, 2.0),  # 1 + 1
        (VilasrPaperReward(), MC_RIGHT_BAD_FORMAT, 1.0),
        (VilasrPaperReward(), MC_WRONG, 0.0),
        (VilasrPaperReward(), NUM_PARTIAL, 1.8),  # 0.8 + 1
        (VilasrPaperReward(), NUM_FAR, 0.0),
        (VilasrPaperReward(beta=0.85), NUM_PARTIAL, 0.0),  # 0.8 is not > 0.85
        (VilasrPaperReward(beta=0.85), MC_RIGHT, 2.0),
        (VilasrPaperReward(beta=0.75), NUM_PARTIAL, 1.8),
        (VilasrPaperReward(), TRUNCATED_RIGHT, 0.0),
        (SRRealReward(), MC_RIGHT, 1.0),  # 0.8 + 0.2
        (SRRealReward(), MC_WRONG, 0.2),  # no gate: format still pays
        (SRRealReward(), MC_RIGHT_BAD_FORMAT, 0.8),
        (SRRealReward(), NUM_PARTIAL_BAD_FORMAT, 0.64),  # 0.8 · 0.8
        (SRRealReward(), NOT_ANSWERED, 0.0),
        (SNRAPresetReward(), MC_RIGHT, 1.0),
        (SNRAPresetReward(), MC_WRONG, 0.0),
        (SNRAPresetReward(), NOT_ANSWERED, 0.0),
    ],
)
def test_preset_rewards(reward_fn, ep, expected):
    reward, terms = reward_fn(ep)
    assert reward == pytest.approx(expected)
    assert {"accuracy", "format", "answered"} <= set(terms)
    assert all(isinstance(v, float) for v in terms.values())
    assert terms["answered"] == float(ep.termination == "answer")


# vilasr_exact pays whatever the ending, as ViLaSR does (tests/test_vilasr_reward.py).
@pytest.mark.parametrize(
    "reward_fn", [cls() for name, cls in REWARD_PRESETS.items() if name != "vilasr_exact"]
)
@pytest.mark.parametrize("termination", ["no_action", "max_images", "max_turns", "max_tokens"])
def test_presets_zero_on_failure_termination(reward_fn, termination):
    ep = episode("B", "B", termination=termination)
    reward, terms = reward_fn(ep)
    assert reward == 0.0
    assert terms["accuracy"] == 0.0
    assert terms["answered"] == 0.0
    assert terms["format"] == 1.0


@pytest.mark.parametrize(
    ("progress", "k", "acc"),
    [
        (0.0, 1.0, R_KE2_0_01),  # e = 0.1, k e² = 0.01
        (1.0, 100.0, R_KE2_1),  # k e² = 1
        (0.5, 50.5, 2 / (1 + math.exp(0.505))),
    ],
)
def test_snra_preset_follows_progress(progress, k, acc):
    ep = episode("110", 100.0, "numeric", progress=progress)
    reward, terms = SNRAPresetReward()(ep)
    assert terms["k"] == pytest.approx(k)
    assert terms["accuracy"] == pytest.approx(acc)
    assert reward == pytest.approx(0.5 * acc + 0.5)


def test_snra_preset_gate_only_stops_unparseable_answers():
    # SNRA is > 0 for every finite answer, so even a wild guess passes the gate.
    reward, terms = SNRAPresetReward()(episode("1000000", 100.0, "numeric"))
    assert terms["gate"] == 1.0
    assert reward == pytest.approx(0.5)
    assert SNRAPresetReward()(episode("lots", 100.0, "numeric"))[0] == 0.0


def test_snra_preset_custom_schedule():
    schedule = SharpnessSchedule(k_min=2.0, k_max=4.0, kind="cosine")
    _, terms = SNRAPresetReward(schedule)(episode("B", "B", progress=0.5))
    assert terms["k"] == pytest.approx(3.0)


SOFA = ("sofa", (100.0, 100.0, 200.0, 200.0))  # centre (150, 150)
SOFA_DRAWN = ("big sofa", (105.0, 100.0, 205.0, 200.0))  # centre (155, 150): d = 5
LAMP_DRAWN = ("lamp", (0.0, 0.0, 10.0, 10.0))


@pytest.mark.parametrize(
    ("answer", "boxes", "detection", "expected"),
    [
        # image 600 x 800: diagonal 1000, 10 · 5 / 1000 = 0.05 -> band 1.0
        ("B", (SOFA_DRAWN,), 1.0, 1.0),  # 0.8 + 0.1 + 0.1
        ("B", (SOFA_DRAWN, LAMP_DRAWN), 0.5, 0.95),  # 0.8 + 0.1 + 0.1 · 0.5
        ("C", (SOFA_DRAWN,), 1.0, 0.2),  # 0.1 + 0.1
        ("B", (), 0.0, 0.9),  # 0.8 + 0.1
    ],
)
def test_sr_real_with_objects(answer, boxes, detection, expected):
    ep = episode(answer, "B", boxes=boxes, objects=(SOFA,), image_size=(600, 800))
    reward, terms = SRRealReward()(ep)
    assert terms["detection"] == pytest.approx(detection)
    assert reward == pytest.approx(expected)


def test_sr_real_objects_need_image_size():
    ep = episode("B", "B", boxes=(SOFA_DRAWN,), objects=(SOFA,))
    with pytest.raises(DrawEnvError, match="image_size"):
        SRRealReward()(ep)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"answer_type": "essay"}, "answer_type"), ({"termination": "timeout"}, "termination")],
)
def test_episode_validates(kwargs, name):
    with pytest.raises(DrawEnvError, match=f"`{name}`"):
        Episode(**{"answer": "B", "truth": "B", "answer_type": "multiple_choice", **kwargs})


@pytest.mark.parametrize("name", list(REWARD_PRESETS))
def test_get_reward_by_name(name):
    reward_fn = get_reward(name)
    assert isinstance(reward_fn, REWARD_PRESETS[name])
    reward, _ = reward_fn(MC_RIGHT)
    assert reward > 0


def test_get_reward_passes_callables_through():
    def custom(ep):
        return 0.25, {"custom": 0.25}

    assert get_reward(custom) is custom
    preset = VilasrPaperReward(beta=0.5)
    assert get_reward(preset) is preset


@pytest.mark.parametrize("bad", ["vilsar", "VILASR", ""])
def test_get_reward_unknown_name(bad):
    with pytest.raises(DrawEnvError) as info:
        get_reward(bad)
    message = str(info.value)
    assert "`reward`" in message
    assert repr(bad) in message
    assert all(name in message for name in REWARD_PRESETS)


@pytest.mark.parametrize("bad", [3, None, VilasrReward])
def test_get_reward_rejects_non_callables_and_classes(bad):
    with pytest.raises(DrawEnvError, match="`reward`"):
        get_reward(bad)


@pytest.mark.parametrize(
    "reward_fn",
    [
        VilasrReward(),
        VilasrPaperReward(beta=0.3),
        SNRAPresetReward(SharpnessSchedule(k_min=2.0, k_max=8.0, kind="sigmoid")),
        SRRealReward(),
        get_reward("snra", k_min=2.0, k_max=8.0, schedule="cosine"),
    ],
)
def test_presets_pickle_round_trip(reward_fn):
    copy = pickle.loads(pickle.dumps(reward_fn))
    assert copy == reward_fn
    ep = episode("112", 100.0, "numeric", progress=0.3)
    assert copy(ep) == reward_fn(ep)


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("vilasr", {}, VilasrReward()),
        ("sr_real", {}, SRRealReward()),
        ("vilasr_paper", {"beta": 0.3}, VilasrPaperReward(beta=0.3)),
        ("snra", {}, SNRAPresetReward(SharpnessSchedule())),
        (
            "snra",
            {"k_min": 1.0, "k_max": 100.0, "schedule": "linear"},
            SNRAPresetReward(SharpnessSchedule(k_min=1.0, k_max=100.0, kind="linear")),
        ),
        ("snra", {"k_max": 50}, SNRAPresetReward(SharpnessSchedule(k_max=50))),
        (
            "snra",
            {"schedule": "sigmoid", "steepness": 4.0},
            SNRAPresetReward(SharpnessSchedule(kind="sigmoid", steepness=4.0)),
        ),
        (
            "snra",
            {"schedule": SharpnessSchedule(k_min=2, k_max=8, kind="cosine")},
            SNRAPresetReward(SharpnessSchedule(k_min=2, k_max=8, kind="cosine")),
        ),
    ],
)
def test_get_reward_builds_presets_with_their_keywords(name, kwargs, expected):
    assert get_reward(name, **kwargs) == expected


@pytest.mark.parametrize(
    ("name", "kwargs", "ep", "expected"),
    [
        # e = 0.12, k = 2 at any progress: 0.5 · 2 / (1 + exp(2 · 0.0144)) + 0.5 · 1
        (
            "snra",
            {"k_min": 2, "k_max": 2},
            episode("112", 100.0, "numeric", progress=0.7),
            0.5 * 2 / (1 + math.exp(0.0288)) + 0.5,
        ),
        # linear from 1 to 9 at t = 0.5: k = 5; e = 0.1, k · e² = 0.05
        (
            "snra",
            {"k_min": 1, "k_max": 9, "schedule": "linear"},
            episode("110", 100.0, "numeric", progress=0.5),
            0.5 * 2 / (1 + math.exp(0.05)) + 0.5,
        ),
        ("vilasr_paper", {"beta": 0.7}, NUM_PARTIAL, 1.8),  # MRA 0.8 > 0.7: 0.8 + 1
        ("vilasr_paper", {"beta": 0.8}, NUM_PARTIAL, 0.0),  # MRA 0.8 is not > 0.8
    ],
)
def test_get_reward_keywords_change_the_reward(name, kwargs, ep, expected):
    reward, _ = get_reward(name, **kwargs)(ep)
    assert reward == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("name", "kwargs", "words"),
    [
        (
            "snra",
            {"k_mx": 5},
            ["'k_mx'", "'snra'", "'k_min'", "'schedule'", "'steepness'", "Did you mean 'k_max'?"],
        ),
        ("vilasr_paper", {"betta": 0.5}, ["'betta'", "'vilasr_paper'", "Did you mean 'beta'?"]),
        ("vilasr", {"beta": 0.5}, ["'beta'", "'vilasr'", "'mra'"]),
        ("sr_real", {"k": 1.0}, ["'k'", "'sr_real'", "'mra'"]),
        ("vilasr", {"mra": "VSI"}, ["`mra`", "'VSI'", "'vsi'"]),
        ("snra", {"schedule": "cosin"}, ["`schedule`", "'cosin'", "Did you mean 'cosine'?"]),
        ("snra", {"k_min": 5, "k_max": 2}, ["`k_max`", "k_min"]),
        ("snra", {"steepness": 0}, ["`steepness`"]),
        ("snra", {"schedule": SharpnessSchedule(), "k_max": 5}, ["`schedule`", "k_max"]),
        ("vilasr_paper", {"beta": "high"}, ["`beta`", "'high'"]),
    ],
)
def test_get_reward_rejects_bad_keywords(name, kwargs, words):
    with pytest.raises(DrawEnvError) as info:
        get_reward(name, **kwargs)
    assert all(word in str(info.value) for word in words), str(info.value)


def _constant_reward(ep):
    return 0.25, {}


@pytest.mark.parametrize("reward_fn", [_constant_reward, VilasrPaperReward(beta=0.5)])
def test_get_reward_callable_takes_no_keywords(reward_fn):
    with pytest.raises(DrawEnvError, match=r"`reward_kwargs`.*callable"):
        get_reward(reward_fn, beta=0.3)


def test_every_preset_lists_its_keywords():
    assert list(REWARD_PARAMETERS) == list(REWARD_PRESETS)


@pytest.mark.parametrize(
    "module",
    [
        drawenv.rewards.answers,
        drawenv.rewards.scores,
        drawenv.rewards.presets,
        drawenv.rewards.trl,
    ],
)
def test_the_package_re_exports_every_public_name(module):
    assert set(module.__all__) <= set(drawenv.rewards.__all__)
    for name in module.__all__:
        assert getattr(drawenv.rewards, name) is getattr(module, name)


# ---------------------------------------------------------------------------------------------
# TRL wrappers
# ---------------------------------------------------------------------------------------------

PLAIN = [
    "<think>count</think> Action: Answer\n<answer>B</answer>",
    "<answer>112</answer>",
    "no answer here",
    "<answer>B</answer>",
    "<answer>B</answer>",
]
CONVERSATIONAL = [
    [{"role": "assistant", "content": "<answer>B</answer>"}],
    [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "<answer>"},
                {"type": "image"},
                {"type": "text", "text": "112</answer>"},
            ],
        }
    ],
    [{"role": "assistant", "content": ""}],
    [{"role": "assistant", "content": "<answer>B</answer>"}],
    [
        {"role": "assistant", "content": "<answer>A</answer>"},
        {"role": "user", "content": "look again"},
        {"role": "assistant", "content": "<answer>B</answer>"},  # the final turn counts
    ],
]
TRUTHS = ["B", 100, "B", None, "B"]
TYPES = ["multiple_choice", "numeric", "multiple_choice", "multiple_choice", "multiple_choice"]
OPTION_COLUMN = [list(OPTIONS), None, list(OPTIONS), None, None]


@pytest.mark.parametrize("completions", [PLAIN, CONVERSATIONAL], ids=["plain", "conversational"])
def test_trl_accuracy_reward(completions):
    rewards = trl_accuracy_reward(
        completions, answer=TRUTHS, answer_type=TYPES, options=OPTION_COLUMN, prompts=["p"] * 5
    )
    # correct choice, MRA of e = 0.12, no answer, no truth (not applicable), final turn right
    assert rewards == [1.0, pytest.approx(0.8), 0.0, None, 1.0]
    assert trl_accuracy_reward(completions[:1], answer=["B"], answer_type=TYPES[:1]) == [1.0]


@pytest.mark.parametrize("completions", [PLAIN, CONVERSATIONAL], ids=["plain", "conversational"])
def test_trl_snra_reward(completions):
    reward_fn = TRLSNRAReward(k=1.0)
    # e = 0.12, k e² = 0.0144; the choice items are not numeric: None
    expected = 2 / (1 + math.exp(0.0144))
    rewards = reward_fn(completions, answer=TRUTHS, answer_type=TYPES)
    assert rewards == [None, pytest.approx(expected), None, None, None]


def test_trl_snra_reward_follows_progress():
    completions = ["<answer>110</answer>", "<answer>B</answer>", "<answer>?</answer>"]
    kwargs = {"answer": [100, "B", 5], "answer_type": ["numeric", "multiple_choice", "count"]}
    reward_fn = TRLSNRAReward()
    assert reward_fn.__name__ == "snra_reward"
    assert reward_fn(completions, **kwargs) == [pytest.approx(R_KE2_0_01), None, 0.0]  # k = 1
    reward_fn.progress = 1.0
    assert reward_fn.current_k == 100.0
    assert reward_fn(completions, **kwargs)[0] == pytest.approx(R_KE2_1)
    # TRL passes its TrainerState: progress = global_step / max_steps = 0.5 -> k = 50.5
    state = SimpleNamespace(global_step=50, max_steps=100)
    rewards = reward_fn(completions, trainer_state=state, **kwargs)
    assert reward_fn.progress == 0.5
    assert rewards[0] == pytest.approx(2 / (1 + math.exp(0.505)))
    copy = pickle.loads(pickle.dumps(reward_fn))
    assert copy.progress == 0.5
    assert copy.__name__ == "snra_reward"


def test_trl_format_reward_with_the_real_protocols():
    good = "<think> the sofa is left </think> Action: Answer\n<answer> B </answer>"
    assert TRLFormatReward()([good, "just text"]) == [1.0, 0.0]
    assert TRLFormatReward()([[{"role": "assistant", "content": good}]]) == [1.0]
    parts = [{"type": "text", "text": good}]
    assert TRLFormatReward()([[{"role": "assistant", "content": parts}]]) == [1.0]
    tool_good = "<think> the sofa is left </think>\n<answer> B </answer>"
    reward_fn = TRLFormatReward(protocol="tool_call")
    assert reward_fn.__name__ == "format_reward"
    assert reward_fn([tool_good, good]) == [1.0, 0.0]  # vilasr's Action line is not tool_call
    assert pickle.loads(pickle.dumps(reward_fn)) == reward_fn
    with pytest.raises(DrawEnvError, match="`protocol`"):
        TRLFormatReward(protocol="vilsar")


# ---------------------------------------------------------------------------------------------
# Robustness: model output never makes a reward raise
# ---------------------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.text(max_size=200))
def test_parsers_never_raise(text):
    extract_answer(text)
    normalize_choice(text, OPTIONS)
    value = parse_number(text)
    assert value is None or math.isfinite(value)
    for answer_type, truth in [("multiple_choice", "B"), ("numeric", 2.5), ("text", "yes")]:
        assert 0.0 <= accuracy(text, truth, answer_type, options=OPTIONS) <= 1.0


@settings(deadline=None)
@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e-6, max_value=1e6),
    st.floats(min_value=1e-3, max_value=1e3),
)
def test_metrics_stay_in_range(pred, truth, k):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0.0 <= mra(pred, truth) <= 1.0
        r = snra(pred, truth, k)
        assert (0.0 < r <= 1.0) if math.isfinite(pred) else r == 0.0
