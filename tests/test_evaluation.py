"""Evaluation metrics and the report: known values, orderings, calibration, subgroups, robustness."""

import json

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter

from riskmodel.evaluation import (
    calibration_slope,
    calibration_table,
    cumulative_incidence,
    evaluate_risks,
    expected_observed,
    harrell_c_index,
    integrated_brier_score,
    net_reclassification,
    share_of_cancers_in_top,
    subgroup_labels,
    time_dependent_auc,
    uno_c_index,
    write_report,
)
from riskmodel.synthetic import make_cohort

YEARS = [f"true_risk_{k}y" for k in range(1, 6)]


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(12_000, seed=11)


def _calibrated(n=40_000, seed=0):
    """Outcomes drawn from known 5-year risks; everyone followed to 6 years unless a cancer comes first."""
    rng = np.random.default_rng(seed)
    risk = rng.uniform(0.01, 0.3, n)
    cancer = rng.uniform(size=n) < risk
    time = np.where(cancer, rng.uniform(0.1, 5.0, n), 6.0)
    return risk, time, cancer.astype(int)


# ------------------------------------------------------------------ discrimination


def test_perfect_ranking_gives_c_of_one():
    time = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 6.0, 6.0])
    event = np.array([1, 1, 1, 1, 0, 0, 0])
    risk = np.array([7.0, 6.0, 5.0, 4.0, 1.0, 2.0, 3.0])
    assert uno_c_index(time, event, time, event, risk, tau=5.0) == pytest.approx(1.0)
    assert harrell_c_index(time, event, risk) == pytest.approx(1.0)
    assert uno_c_index(time, event, time, event, -risk, tau=5.0) == pytest.approx(0.0)


def test_oracle_beats_noise(cohort):
    t, e = cohort["time"], cohort["event"]
    noise = np.random.default_rng(1).uniform(size=len(cohort))
    c_truth = uno_c_index(t, e, t, e, cohort["true_risk_5y"])
    c_noise = uno_c_index(t, e, t, e, noise)
    assert c_truth > 0.72 and abs(c_noise - 0.5) < 0.06
    auc = time_dependent_auc(t, e, t, e, cohort[YEARS].to_numpy())
    assert auc.shape == (5,) and (auc > 0.7).all()
    assert (np.abs(time_dependent_auc(t, e, t, e, noise) - 0.5) < 0.1).all()


def test_integrated_brier_score_orders_models(cohort):
    t, e = cohort["time"], cohort["event"]
    truth = cohort[YEARS].to_numpy()
    flat = np.tile(truth.mean(axis=0), (len(cohort), 1))
    too_high = np.clip(truth * 5, 0, 1)
    ibs = [integrated_brier_score(t, e, t, e, r) for r in (truth, flat, too_high)]
    assert ibs[0] < ibs[1] < ibs[2]
    with pytest.raises(ValueError, match="shape"):
        integrated_brier_score(t, e, t, e, truth[:, :3])


def test_metric_input_errors():
    with pytest.raises(ValueError, match="NaN"):
        uno_c_index([1.0, 2.0], [1, 0], [1.0, 2.0], [1, 0], [np.nan, 0.1])
    with pytest.raises(ValueError, match="event must be"):
        harrell_c_index([1.0, 2.0], [1, 3], [0.2, 0.1])
    with pytest.raises(ValueError, match="no breast-cancer events"):
        uno_c_index([1.0, 2.0], [0, 0], [1.0, 2.0], [0, 0], [0.2, 0.1])


# ------------------------------------------------------------------ calibration


def test_cumulative_incidence_matches_lifelines(cohort):
    for rows in (slice(None), slice(0, 700)):
        t, e = cohort["time"].to_numpy()[rows], cohort["event"].to_numpy()[rows]
        value, se = cumulative_incidence(t, e, 5.0)
        ajf = AalenJohansenFitter(calculate_variance=True).fit(t, e, event_of_interest=1)
        cif = ajf.cumulative_density_.iloc[:, 0]
        keep = cif.index <= 5.0
        assert value == pytest.approx(float(cif[keep].iloc[-1]), rel=1e-10)
        assert se == pytest.approx(float(np.sqrt(np.asarray(ajf.variance_)[keep][-1])), rel=1e-8)


def test_eo_of_calibrated_set_is_near_one_and_interval_covers():
    risk, time, event = _calibrated()
    eo = expected_observed(risk, time, event, 5.0)
    assert 0.97 < eo["eo"] < 1.03 and eo["lower"] < 1.0 < eo["upper"]
    high = expected_observed(risk * 1.5, time, event, 5.0)
    assert high["eo"] == pytest.approx(1.5 * eo["eo"]) and high["lower"] > 1.0


def test_eo_of_the_generators_truth(cohort):
    eo = expected_observed(cohort["true_risk_5y"], cohort["time"], cohort["event"], 5.0)
    assert eo["lower"] < 1.0 < eo["upper"], eo


def test_calibration_slope_known_values():
    risk, time, event = _calibrated(seed=3)
    assert calibration_slope(risk, time, event)["slope"] == pytest.approx(1.0, abs=0.1)
    logit = np.log(risk / (1 - risk))
    extreme = 1 / (1 + np.exp(-2 * (logit - logit.mean()) - logit.mean()))
    assert calibration_slope(extreme, time, event)["slope"] == pytest.approx(0.5, abs=0.07)


def test_calibration_slope_uses_ipcw_not_complete_cases():
    # Censoring that depends on risk: half the low-risk women leave early. Complete-case analysis
    # would still be unbiased here only by luck; the IPCW slope must stay near 1.
    risk, time, event = _calibrated(seed=4)
    rng = np.random.default_rng(5)
    leave = (event == 0) & (rng.uniform(size=len(risk)) < 0.5)
    time = np.where(leave, rng.uniform(0.5, 5.0, len(risk)), time)
    assert calibration_slope(risk, time, event)["slope"] == pytest.approx(1.0, abs=0.12)


def test_calibration_table_deciles():
    risk, time, event = _calibrated(n=20_000, seed=6)
    table = calibration_table(risk, time, event, groups=10)
    assert list(table["group"]) == list(range(1, 11)) and table["n"].sum() == 20_000
    assert table["predicted"].is_monotonic_increasing
    assert np.all(np.abs(table["eo"] - 1) < 0.2)


# ------------------------------------------------------------------ stratification


def test_share_of_cancers_in_top():
    risk, time, event = _calibrated(seed=7)
    share = share_of_cancers_in_top(risk, time, event, 0.1)
    noise = share_of_cancers_in_top(np.random.default_rng(0).uniform(size=len(risk)), time, event, 0.1)
    assert share > 0.15 and abs(noise - 0.1) < 0.02


def test_nri_known_reclassification():
    # Reference puts everyone below 1.67%; the new model moves exactly the future cases up.
    n = 2000
    time = np.full(n, 6.0)
    event = np.zeros(n, dtype=int)
    event[:100], time[:100] = 1, 2.0
    ref = np.full(n, 0.01)
    new = ref.copy()
    new[:100] = 0.05
    nri = net_reclassification(new, ref, time, event, (0.0167, 0.03))
    assert nri["nri_events"] == pytest.approx(1.0)
    assert nri["nri_nonevents"] == pytest.approx(0.0)
    assert nri["up"] == pytest.approx(0.05)
    same = net_reclassification(ref, ref, time, event)
    assert same["nri"] == 0.0


# ------------------------------------------------------------------ evaluate_risks and the report


def test_evaluate_risks_structure_and_orderings(cohort):
    gail_like = pd.DataFrame({"risk": cohort["true_risk_5y_no_image"], "status": "ok"})
    gail_like.loc[cohort.index[:50], "status"] = "invalid"
    noise = np.random.default_rng(2).uniform(0.0, 0.04, len(cohort))
    ev = evaluate_risks(cohort, {"ref": gail_like, "truth": cohort[YEARS].to_numpy(), "noise": noise},
                        reference="ref", n_boot=10, seed=1)
    m = ev.models
    assert m["ref"]["n"] == len(cohort) - 50 and m["ref"]["n_not_scored"] == 50
    assert m["truth"]["c_index"] > m["ref"]["c_index"] > m["noise"]["c_index"]
    lo, hi = m["truth"]["c_index_ci"]
    assert lo < m["truth"]["c_index"] < hi
    assert m["truth"]["vs_reference"]["c_index_diff"] > 0 and m["noise"]["vs_reference"]["c_index_diff"] < 0
    assert m["truth"]["ibs"] > 0 and np.isnan(m["noise"]["ibs"])
    assert set(m["truth"]["auc"]) == {1, 2, 3, 4, 5}
    variables = {s["variable"] for s in m["truth"]["subgroups"]}
    assert variables == {"race", "density", "age", "brca"}
    d = json.loads(json.dumps(ev.to_dict()))
    assert {"c_index", "auc", "eo", "eo_ci", "calibration_slope", "ibs", "subgroups"} <= set(d["models"]["truth"])


def test_evaluate_risks_errors(cohort):
    with pytest.raises(ValueError, match="'time'"):
        evaluate_risks(cohort.drop(columns="time"), {"a": cohort["true_risk_5y"]})
    with pytest.raises(ValueError, match="rows"):
        evaluate_risks(cohort, {"a": cohort["true_risk_5y"].to_numpy()[:10]})
    with pytest.raises(ValueError, match="probabilities"):
        evaluate_risks(cohort, {"a": cohort["true_risk_5y"].to_numpy() * 100})
    bad = cohort.copy()
    bad.loc[bad.index[3], "event"] = 7
    with pytest.raises(ValueError, match="row 3"):
        evaluate_risks(bad, {"a": cohort["true_risk_5y"]})


def test_subgroup_labels():
    frame = pd.DataFrame({"race": [1, "Black", 6, 3, 4], "age": [45, 55, 65, 80, 39],
                          "brca": ["negative", "BRCA1", "brca2", None, "negative"],
                          "density": ["a", "d", 2, None, "c"]})
    assert subgroup_labels(frame, "race").tolist() == ["White", "Black", "Asian/Pacific Islander", "Hispanic",
                                                        "Other/unknown"]
    assert subgroup_labels(frame, "age").tolist()[:3] == ["40-49", "50-59", "60-74"]
    assert pd.isna(subgroup_labels(frame, "age")[3])
    assert subgroup_labels(frame, "brca").tolist()[:3] == ["non-carrier", "carrier", "carrier"]
    assert subgroup_labels(frame, "density").tolist()[:3] == ["a", "d", "b"]
    with pytest.raises(ValueError, match="subgroup column"):
        subgroup_labels(frame, "nope")


def test_write_report(tmp_path, cohort):
    ev = evaluate_risks(cohort, {"truth": cohort[YEARS].to_numpy(), "flat": np.full(len(cohort), 0.015)},
                        reference="flat", n_boot=10)
    paths = write_report(ev, tmp_path / "rep", title="T", preamble=["hello"])
    names = {p.name for p in paths}
    assert {"report.md", "results.json", "calibration.png", "auc.png", "risk_distributions.png",
            "subgroups.png"} <= names
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "# T" in text and "hello" in text and "Compared with flat" in text and "![Calibration]" in text
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert results["models"]["truth"]["c_index"] == pytest.approx(ev.models["truth"]["c_index"], abs=1e-6)
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:4] == b"\x89PNG"


def test_share_of_cancers_in_top_handles_ties():
    risk, time, event = _calibrated(n=5000, seed=8)
    assert share_of_cancers_in_top(np.full(len(risk), 0.02), time, event, 0.2) == pytest.approx(0.2)
    # Two risk levels: the top 20% lies inside the upper level (30% of women), so each of its
    # cancers counts 2/3.
    level = np.where(np.arange(len(risk)) < 1500, 0.05, 0.01)
    event = np.zeros(len(risk), dtype=int)
    event[:300] = 1
    time = np.where(event == 1, 2.0, 6.0)
    assert share_of_cancers_in_top(level, time, event, 0.2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("kept", [0, 2])
def test_report_with_few_cancers_shows_no_estimate_or_empty_chart(tmp_path, kept):
    """0 or 1 cancers by five years: no C-index with an interval, no '0.0%––', no empty chart."""
    from riskmodel.evaluation import evaluate_risks, write_report
    from riskmodel.synthetic import make_cohort

    cohort = make_cohort(400, seed=3)
    events = np.flatnonzero(cohort["event"].to_numpy() == 1)
    cohort.loc[cohort.index[events[kept:]], "event"] = 0
    ev = evaluate_risks(cohort, {"truth": cohort["true_risk_5y"].to_numpy()}, n_boot=20)
    m = ev.models["truth"]
    assert m["cancers"] < 5 and np.isnan(m["c_index"]) and all(np.isnan(m["c_index_ci"]))
    paths = write_report(ev, tmp_path, plots=True)
    text = (tmp_path / "report.md").read_text()
    assert "––" not in text and "– (" not in text
    assert "Too few cancers to measure discrimination" in text
    assert not (tmp_path / "subgroups.png").exists()  # no subgroup has a C-index: no empty forest plot
    assert (tmp_path / "auc.png") not in paths
    if m["cancers"] == 0:
        assert "No table: no model has a cancer" in text and not (tmp_path / "calibration.png").exists()
    else:
        assert "0.0% (no cancers)" in text
