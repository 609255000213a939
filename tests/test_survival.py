"""riskmodel.survival: the one time/event check, year status, censoring Kaplan–Meier, IPCW, Breslow (by hand)."""

import numpy as np
import pandas as pd
import pytest

from riskmodel.evaluation import harrell_c_index
from riskmodel.evaluation.evaluate import evaluate_risks
from riskmodel.survival import (
    YEARS,
    breslow_baseline,
    censoring_survival,
    check_time_event,
    check_weights,
    ipcw_weights,
    survival_targets,
    year_status,
)

# Times 1..6: cancer at 1, 3, 5; censored at 2 and 6; death from other causes at 4.
TIME = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
EVENT = [1, 0, 1, 2, 1, 0]


def test_years_is_the_one_definition():
    from riskmodel.fusion import hybrid
    from riskmodel.screening import report

    assert YEARS == (1, 2, 3, 4, 5)
    assert hybrid.YEARS is YEARS and report.YEARS is YEARS


# ---------------------------------------------------------------------------- check_time_event


def test_check_time_event_returns_float_time_and_integer_codes():
    t, e = check_time_event(pd.Series([0.5, 2]), np.array([True, False]))
    assert t.dtype == np.float64 and e.dtype == np.int64
    assert t.tolist() == [0.5, 2.0] and e.tolist() == [1, 0]
    t, e = check_time_event(pd.Series([1, None], dtype="Int64").fillna(3), ["1", "2"])  # numeric text is read
    assert t.tolist() == [1.0, 3.0] and e.tolist() == [1, 2]


@pytest.mark.parametrize(("time", "event", "message"), [
    ([1.0, np.nan], [0, 0], r"time: row 1 is nan \(1 row\(s\) NaN, infinite or negative\); time must be finite"),
    ([1.0, np.inf], [0, 0], r"time: row 1 is inf .*time must be finite and >= 0"),
    ([-1.0], [0], r"time: row 0 is -1.0 .*>= 0"),
    (["1", "soon"], [0, 0], r"time: row 1 is 'soon', not a number"),
    ([1.0], [3], r"event: codes \[3\.0\] \(first at row 0\); event must be 0 \(censored\)"),
    ([1.0, 2.0], [0, np.nan], r"event: codes \[nan\] \(first at row 1\)"),
    ([1.0, 2.0], [0, 0.5], r"event: codes \[0\.5\]"),
    ([1.0], [0, 1], r"event: length 2 does not match time \(n = 1\); event must have shape \(1,\)"),
    ([[1.0]], [0], r"time: expected a 1-D array of shape \(n,\), got shape \(1, 1\)"),
])
def test_check_time_event_names_the_field_the_row_and_the_rule(time, event, message):
    with pytest.raises(ValueError, match=message):
        check_time_event(time, event)


def test_check_time_event_length_row_labels_and_cancers():
    with pytest.raises(ValueError, match=r"^outcomes: time: row 'b' is -2.0"):
        check_time_event([1.0, -2.0], [0, 0], name="outcomes", index=pd.Index(["a", "b"]))
    with pytest.raises(ValueError, match=r"time: length 2 does not match risk \(n = 3\); time must have shape \(3,\)"):
        check_time_event([1.0, 2.0], [0, 1], n=3, n_from="risk")
    with pytest.raises(ValueError, match=r"event: length 2 does not match risk \(n = 3\)"):
        check_time_event([1.0, 2.0, 3.0], [0, 1], n=3, n_from="risk")
    with pytest.raises(ValueError, match="no breast-cancer events"):
        check_time_event([1.0, 2.0], [0, 2], require_cancer=True)
    check_time_event([1.0, 2.0], [0, 2])  # allowed unless a fitter needs a cancer


def test_check_weights():
    assert check_weights([0.0, 2.0], 2).tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match="weight: weights must be non-negative"):
        check_weights([1.0, -1.0], 2)
    with pytest.raises(ValueError, match=r"weight: 1 value\(s\) are NaN or infinite"):
        check_weights([1.0, np.nan], 2)
    with pytest.raises(ValueError, match="weight: length 1 does not match the data"):
        check_weights([1.0], 2)


def test_infinite_follow_up_is_refused_by_the_metrics_and_the_training_targets():
    # Before: these checks refused only NaN, so an infinite time was scored as followed forever.
    with pytest.raises(ValueError, match="time: row 1 is inf"):
        harrell_c_index([1.0, np.inf, 2.0], [1, 0, 1], [0.3, 0.1, 0.2])
    with pytest.raises(ValueError, match="time: row 0 is inf"):
        survival_targets(np.array([np.inf]), np.array([0]))


def test_evaluate_names_the_outcome_row_by_its_label():
    outcomes = pd.DataFrame({"time": [1.0, 2.0, "x"], "event": [1, 0, 0]}, index=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"outcomes: time: row 'c' is 'x', not a number"):
        evaluate_risks(outcomes, {"m": np.array([0.1, 0.2, 0.3])}, horizon=1)


# ---------------------------------------------------------------------------- year status


def test_year_status_with_and_without_competing_deaths():
    # At year 5: the other-cause death at 4 is unknown as net risk, a known "no cancer" as absolute risk.
    known, positive = year_status(TIME, EVENT, 5)
    assert known.tolist() == [True, False, True, False, True, True]
    assert positive.tolist() == [True, False, True, False, True, False]
    known_c, positive_c = year_status(TIME, EVENT, 5, competing=True)
    assert known_c.tolist() == [True, False, True, True, True, True]
    assert positive_c.tolist() == positive.tolist()
    # Censored exactly at k is known (followed k years); censored before k is unknown either way.
    assert year_status([2.0, 1.9], [0, 0], 2, competing=True)[0].tolist() == [True, False]


def test_year_status_for_several_years_matches_one_year_at_a_time():
    rng = np.random.default_rng(0)
    time, event = rng.uniform(0, 7, 200).round(1), rng.choice([0, 1, 2], 200)
    for competing in (False, True):
        known, positive = year_status(time, event, YEARS, competing=competing)
        assert known.shape == (200, 5)
        for j, k in enumerate(YEARS):
            one = year_status(time, event, k, competing=competing)
            assert np.array_equal(known[:, j], one[0]) and np.array_equal(positive[:, j], one[1])
    labels, weights = survival_targets(time, event, 5)
    known, positive = year_status(time, event, YEARS)
    assert labels.dtype == np.float32 and np.array_equal(labels, positive) and np.array_equal(weights, known)
    with pytest.raises(ValueError, match="year"):
        year_status(time, event, np.nan)


# ---------------------------------------------------------------------------- censoring KM and IPCW


def test_censoring_kaplan_meier_by_hand():
    at = [1.0, 2.0, 2.5, 4.0, 4.5, 6.0, 7.0]
    # Censorings (0 or 2) at 2 (5 at risk), 4 (3 at risk), 6 (1 at risk); G(at−) excludes a censoring at `at`.
    g = censoring_survival(TIME, EVENT, at)
    np.testing.assert_allclose(g, [1, 1, 4 / 5, 4 / 5, 4 / 5 * 2 / 3, 4 / 5 * 2 / 3, 0])
    # Competing deaths are outcomes: only the censorings at 2 and 6 count.
    g = censoring_survival(TIME, EVENT, at, competing=True)
    np.testing.assert_allclose(g, [1, 1, 4 / 5, 4 / 5, 4 / 5, 4 / 5, 0])
    # Weights: the censored woman at 2 weighs 3, total weight at risk at 2 is 3 + 4 = 7.
    g = censoring_survival(TIME, EVENT, [2.5], weight=[1, 3, 1, 1, 1, 1], competing=True)
    np.testing.assert_allclose(g, [1 - 3 / 7])


def test_ipcw_weights_by_hand_with_the_competing_switch():
    g2, g4 = 4 / 5, 4 / 5 * 2 / 3
    # Net (competing=False): the death at 4 is unknown; the cancer at 5 and the woman followed to 6 get 1/G(5−).
    np.testing.assert_allclose(ipcw_weights(TIME, EVENT, 5), [1, 0, 1 / g2, 0, 1 / g4, 1 / g4])
    # Absolute (competing=True): the death at 4 is known, weighted 1/G(4−); G only drops at the censoring at 2.
    np.testing.assert_allclose(ipcw_weights(TIME, EVENT, 5, competing=True), [1, 0, 1 / g2, 1 / g2, 1 / g2, 1 / g2])
    # Where G is 0 (everyone still at risk censored) the weight is 0, not infinite.
    assert ipcw_weights([1.0, 2.0], [0, 0], 3).tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------- Breslow


def test_breslow_baseline_by_hand():
    # Cancers at 1 and twice at 3; censored at 2, other death at 3 (in the risk set at 3), censored at 4.
    time = [1.0, 2.0, 3.0, 3.0, 3.0, 4.0]
    event = [1, 0, 1, 1, 2, 0]
    risk = [1.0, 2.0, 0.5, 1.5, 1.0, 2.0]
    times, h0 = breslow_baseline(time, event, risk)
    np.testing.assert_allclose(times, [1.0, 3.0])
    np.testing.assert_allclose(h0, [1 / 8, 1 / 8 + 2 / 5])
    with pytest.raises(ValueError, match="risk: expected finite relative hazards > 0"):
        breslow_baseline(time, event, [1.0, 2.0, 0.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"risk: .*shape \(6,\), got shape \(2,\)"):
        breslow_baseline(time, event, [1.0, 2.0])

