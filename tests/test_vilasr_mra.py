"""MRA under its three conventions, at the 5 % steps where they part ways.

Hand-computed: the tolerances are 1 - θ for θ = 0.50, …, 0.95. drawenv compares the relative
error with them exactly and strictly (<); VSI-Bench compares in float64 with <= against
1 - linspace(.5, .95, 10), whose steps land a hair above or below the decimal value; ViLaSR
compares in float32 with <, dividing by |y| + 1e-8, and returns the float32 mean.
"""

from __future__ import annotations

import numpy as np
import pytest

from drawenv.errors import DrawEnvError
from drawenv.rewards import accuracy, mra

F32 = {k: float(np.float32(k / 10)) for k in range(11)}  # ViLaSR's float32 means


@pytest.mark.parametrize(
    ("pred", "truth", "drawenv", "vilasr", "vsi"),
    [
        # error 0.25 = 1 - 0.75 exactly in every precision: only <= passes it.
        (5, 4, 0.5, F32[5], 0.6),
        (3, 4, 0.5, F32[5], 0.6),
        # error 0.05: VSI's 1 - 0.95 is 0.050000000000000044, ViLaSR's float32 one 0.0500000119.
        (21, 20, 0.9, F32[10], 1.0),
        (19, 20, 0.9, F32[10], 1.0),
        # error 0.1: VSI's 1 - 0.8999999999999999 and float32 1 - 0.9 both lie above 0.1.
        (11, 10, 0.8, F32[9], 0.9),
        # error 0.2: 1 - 0.8 is 0.19999999999999996 (float64) and 0.19999999 (float32): below.
        (12, 10, 0.6, F32[6], 0.6),
        (6, 5, 0.6, F32[6], 0.6),
        # error 0.3: float64 1 - 0.7 = 0.30000000000000004 passes with <=; in float32 the
        # tolerance equals the error, and < fails it.
        (13, 10, 0.4, F32[4], 0.5),
        # error 0.4 = float64 1 - 0.6 exactly: <= passes; float32 equal again, < fails.
        (14, 10, 0.2, F32[2], 0.3),
        # error 0.5 = 1 - 0.5: only <= passes.
        (15, 10, 0.0, F32[0], 0.1),
        # off the boundaries the three agree
        (10, 10, 1.0, F32[10], 1.0),
        (112, 100, 0.8, F32[8], 0.8),
        (30, 10, 0.0, F32[0], 0.0),
    ],
)
def test_conventions_at_the_boundaries(pred, truth, drawenv, vilasr, vsi):
    assert mra(pred, truth) == drawenv  # the default
    assert mra(pred, truth, convention="drawenv") == drawenv
    assert mra(pred, truth, convention="vilasr") == vilasr
    assert mra(pred, truth, convention="vsi") == vsi


def test_vilasr_returns_the_float32_mean():
    assert mra(11, 10, "vilasr") == 0.8999999761581421
    assert mra(8, 10, "vilasr") == 0.6000000238418579


def test_vilasr_accepts_negative_and_zero_truths():
    # |ŷ - y| / (|y| + 1e-8): -3 vs -3.5 is an error of 1/7 ≈ 0.143, which passes 8 tolerances.
    assert mra(-3, -3.5, "vilasr") == F32[8]
    assert mra(3.5, -3.5, "vilasr") == 0.0  # error 2
    assert mra(0, 0, "vilasr") == 1.0  # 0 / 1e-8
    assert mra(0.001, 0, "vilasr") == 0.0  # 1e5
    for convention in ("drawenv", "vsi"):
        with pytest.raises(DrawEnvError, match="truth"):
            mra(1, 0, convention)
        with pytest.raises(DrawEnvError, match="truth"):
            mra(1, -2, convention)


def test_non_finite_predictions_score_zero_in_every_convention():
    for convention in ("drawenv", "vilasr", "vsi"):
        assert mra(float("nan"), 4, convention) == 0.0
        assert mra(float("inf"), 4, convention) == 0.0
    assert mra(1e39, 4, "vilasr") == 0.0  # beyond float32: inf


def test_arrays_broadcast_in_every_convention():
    preds, truths = np.array([5, 21, 13]), np.array([4, 20, 10])
    np.testing.assert_array_equal(mra(preds, truths), [0.5, 0.9, 0.4])
    np.testing.assert_array_equal(mra(preds, truths, "vsi"), [0.6, 1.0, 0.5])
    np.testing.assert_array_equal(mra(preds, truths, "vilasr"), [F32[5], F32[10], F32[4]])
    np.testing.assert_array_equal(mra(np.array([5, 6]), 4, "vsi"), [0.6, 0.1])


def test_fifteen_percent_off_counts_differ_where_expected():
    # Integer counts with truths 1..10 and predictions 0..20: VSI credits one more threshold
    # exactly where the relative error is one of the 5 % steps 0.25, 0.3, 0.4 or 0.5, and is
    # never below drawenv.
    differ = []
    for truth in range(1, 11):
        for pred in range(21):
            a, b = mra(pred, truth), mra(pred, truth, "vsi")
            assert b >= a
            if a != b:
                differ.append((pred, truth))
                assert round(abs(pred - truth) / truth, 9) in {0.05, 0.1, 0.25, 0.3, 0.4, 0.5}
    assert (5, 4) in differ and (15, 10) in differ and (12, 10) not in differ


def test_bad_convention_names_the_argument():
    with pytest.raises(DrawEnvError, match="convention"):
        mra(1, 1, "VSI")


def test_accuracy_takes_the_convention():
    assert accuracy("5", 4, "count") == 0.5
    assert accuracy("5", 4, "count", mra_convention="vsi") == 0.6
    assert accuracy("5", 4, "count", mra_convention="vilasr") == 0.5
    assert accuracy("0", 0, "count", mra_convention="vsi") == 1.0  # exact 0 still needed
    assert accuracy("1", 0, "count", mra_convention="vsi") == 0.0
    with pytest.raises(DrawEnvError, match="mra_convention"):
        accuracy("5", 4, "count", mra_convention="paper")


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        (5, 4, F32[6]),  # float32 error 0.25 equals the tolerance: <= passes it
        (21, 20, F32[10]),
        (13, 10, F32[5]),  # the float32 tolerance equals the error: <= passes
        (14, 10, F32[2]),  # float32 1 - 0.6 = 0.39999998 lies below the error 0.4
        (15, 10, F32[1]),
        (-3, -3.5, F32[8]),
    ],
)
def test_vilasr_eval_is_vilasr_with_less_or_equal(pred, truth, expected):
    assert mra(pred, truth, "vilasr_eval") == expected
