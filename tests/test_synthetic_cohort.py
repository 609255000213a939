"""riskmodel.synthetic.make_cohort: schema, determinism, truth vs simulated outcomes, effects, arguments."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel.gail import load_tables
from riskmodel.schema import COLUMNS, validate
from riskmodel.synthetic import make_cohort
from riskmodel.synthetic.cohort import (
    OUTPUT_COLUMNS,
    _density,
    carrier_incidence,
    default_effects,
    density_group,
    density_multipliers,
    load_parameters,
)

N_BIG = 200_000


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    return make_cohort(N_BIG, seed=2024)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return make_cohort(20_000, seed=7)


def aalen_johansen(time: np.ndarray, event: np.ndarray, at: float, cause: int = 1) -> tuple[float, float]:
    """Aalen–Johansen cumulative incidence of ``cause`` at ``at`` years and its standard error.

    Variance: the delta-method (Greenwood-type) formula of Collett, *Modelling Survival Data
    in Medical Research* 3rd ed., p. 411, as lifelines' AalenJohansenFitter computes it.
    Ties are grouped by unique time; all arrays have shape ``(n,)``.
    """
    order = np.argsort(time, kind="stable")
    t, e = time[order], event[order]
    uniq, first = np.unique(t, return_index=True)
    n_at_risk = t.size - first
    d_all = np.add.reduceat((e != 0).astype(float), first)
    d_cause = np.add.reduceat((e == cause).astype(float), first)
    keep = (d_all > 0) & (uniq <= at)
    n_j, d_j, d1_j = n_at_risk[keep].astype(float), d_all[keep], d_cause[keep]
    surv = np.cumprod(1 - d_j / n_j)
    lag = np.concatenate([[1.0], surv[:-1]])
    cif = np.cumsum(lag * d1_j / n_j)
    f_t = cif[-1] if cif.size else 0.0
    diff = f_t - cif
    with np.errstate(divide="ignore", invalid="ignore"):
        first_term = np.where(n_j > d_j, d_j / (n_j * (n_j - d_j)), 0.0)
    var = (np.sum(first_term * diff**2) + np.sum(lag**2 * d1_j * (n_j - d1_j) / n_j**3)
           - 2 * np.sum(diff * lag * d1_j / n_j**2))
    return float(f_t), math.sqrt(max(var, 0.0))


# --------------------------------------------------------------------------- shape and schema


def test_columns_types_and_ids(small):
    df = small
    assert tuple(df.columns) == OUTPUT_COLUMNS
    assert len(df) == 20_000 and df.index.equals(pd.RangeIndex(20_000))
    schema_cols = [c for c in OUTPUT_COLUMNS if c in COLUMNS]
    assert len(schema_cols) == 13  # every column before image_factor is canonical
    assert df["id"].iloc[0] == "SYN0000001" and df["id"].iloc[-1] == "SYN0020000"
    assert df["exam_id"].iloc[0] == "EX0000001" and df["exam_id"].is_unique and df["id"].is_unique
    assert df["age"].between(40, 75).all() and df["age"].min() < 41 and df["age"].max() > 74
    assert set(df["race"]) == set(range(1, 12))
    assert set(df["density"]) == {"a", "b", "c", "d"}
    assert set(df["brca"]) == {"negative", "BRCA1", "BRCA2"}
    assert df["nulliparous"].dtype == bool
    assert (df["age_at_first_birth"].isna() == df["nulliparous"]).all()
    assert (df["atypical_hyperplasia"].isna() == (df["n_biopsies"] == 0)).all()
    assert df["atypical_hyperplasia"].dropna().isin([0, 1]).all()
    assert set(df["event"]) == {0, 1, 2}
    assert (df["time"] > 0).all() and (df["time"] <= 10).all()
    assert (df["time"] <= 90 - df["age"] + 1e-9).all()
    risks = df[[f"true_risk_{k}y" for k in range(1, 6)]].to_numpy()
    assert (risks > 0).all() and (risks < 1).all() and (np.diff(risks, axis=1) > 0).all()


def test_rows_pass_schema_and_gail(small):
    cohort = validate(small)
    assert (cohort.status == "ok").all(), cohort.message[cohort.status != "ok"][:3]
    out = riskmodel.predict_risk(small, model="gail", horizon=5)
    carrier = (small["brca"] != "negative").to_numpy()
    assert carrier.sum() > 50
    assert (out["status"].to_numpy()[~carrier] == "ok").all()
    assert (out["status"].to_numpy()[carrier] == "not_applicable").all()


def test_oracle_equals_gail_without_extra_factors():
    """With density, PRS, image and carriers switched off the oracle *is* the Gail model."""
    df = make_cohort(5_000, seed=11, prs_or_per_sd=1.0, image_hr_per_sd=1.0, density_effect=False,
                     carrier_freq=(0.0, 0.0), age_range=(20.0, 85.0))
    for k in (1, 3, 5):
        gail = riskmodel.predict_risk(df, horizon=k)
        assert (gail["status"] == "ok").all()
        np.testing.assert_allclose(df[f"true_risk_{k}y"], gail["risk"], rtol=1e-11)
    np.testing.assert_allclose(df["true_risk_5y_no_image"], df["true_risk_5y"], rtol=1e-12)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_frame_other_seed_differs():
    a, b = make_cohort(3_000, seed=5), make_cohort(3_000, seed=5)
    pd.testing.assert_frame_equal(a, b)
    c = make_cohort(3_000, seed=6)
    for col in ("age", "race", "prs", "image_factor", "time", "true_risk_5y"):
        assert not np.array_equal(a[col].to_numpy(), c[col].to_numpy()), col


def test_effect_sizes_keep_the_same_women():
    a = make_cohort(3_000, seed=5)
    b = make_cohort(3_000, seed=5, image_hr_per_sd=1.0, prs_or_per_sd=3.0, loss_rate=0.1)
    covariates = list(OUTPUT_COLUMNS[:14])
    pd.testing.assert_frame_equal(a[covariates], b[covariates])
    assert not np.allclose(a["true_risk_5y"], b["true_risk_5y"])


# --------------------------------------------------------------------------- truth vs outcomes


def test_mean_risk_looks_like_a_screening_population(big):
    mean5 = big["true_risk_5y"].mean()
    assert 0.01 < mean5 < 0.02
    assert big["true_risk_1y"].mean() == pytest.approx(mean5 / 5, rel=0.15)
    # Most women are followed at least five years (or have an event first).
    followed = (big["time"] >= 5) | (big["event"] != 0)
    assert followed.mean() > 0.85


@pytest.mark.parametrize("years", [1, 2, 3, 4, 5])
def test_observed_incidence_matches_mean_true_risk(big, years):
    cif, se = aalen_johansen(big["time"].to_numpy(), big["event"].to_numpy(), years)
    expected = big[f"true_risk_{years}y"].mean()
    assert se > 0 and abs(cif - expected) < 4 * se, (cif, expected, se)


def test_observed_incidence_matches_by_risk_quintile(big):
    """Calibration of the outcomes to each woman's own truth, not just on average."""
    quintile = pd.qcut(big["true_risk_5y"], 5, labels=False).to_numpy()
    for q in range(5):
        sub = big[quintile == q]
        cif, se = aalen_johansen(sub["time"].to_numpy(), sub["event"].to_numpy(), 5)
        expected = sub["true_risk_5y"].mean()
        assert abs(cif - expected) < 4 * se, (q, cif, expected, se)


def test_competing_deaths_match_gail_mortality(big):
    """Other-cause deaths follow Gail's λ2: compare with the expected five-year probability."""
    cif2, se = aalen_johansen(big["time"].to_numpy(), big["event"].to_numpy(), 5, cause=2)
    age = big["age"].to_numpy()
    lam2 = load_tables().lambda2[big["race"].to_numpy()]
    # Cumulative λ2 over five years, by whole years (a close approximation; breast cancer is rare).
    cum = sum(lam2[np.arange(age.size), ((np.floor(age) + k - 20) // 5).astype(int)] * 1.0 for k in range(5))
    assert abs(cif2 - np.mean(1 - np.exp(-cum))) < 0.05 * cif2 + 4 * se


def test_aalen_johansen_helper_agrees_with_lifelines():
    lifelines = pytest.importorskip("lifelines")
    df = make_cohort(2_000, seed=3, image_hr_per_sd=4.0)
    fitter = lifelines.AalenJohansenFitter(calculate_variance=True)
    fitter.fit(df["time"], df["event"], event_of_interest=1)
    ours, se = aalen_johansen(df["time"].to_numpy(), df["event"].to_numpy(), 5.0)
    theirs = float(fitter.cumulative_density_.loc[:5.0].iloc[-1, 0])
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert se**2 == pytest.approx(float(fitter.variance_.loc[:5.0].iloc[-1]), rel=1e-6)


# --------------------------------------------------------------------------- effects


def test_density_raises_risk(big):
    band = big[big["age"].between(50, 60) & (big["brca"] == "negative")]
    by_density = band.groupby("density")["true_risk_5y"].mean()
    assert by_density["a"] < by_density["b"] < by_density["c"] < by_density["d"]
    assert by_density["d"] / by_density["a"] > 3
    flat = make_cohort(50_000, seed=2024, density_effect=False)
    flat_band = flat[flat["age"].between(50, 60) & (flat["brca"] == "negative")]
    ratio = flat_band.groupby("density")["true_risk_5y"].mean()
    assert ratio["d"] / ratio["a"] < 1.2


def test_density_younger_women_denser(big):
    dense = big["density"].isin(["c", "d"])
    assert dense[big["age"] < 45].mean() > 0.5 > 0.3 > dense[big["age"] >= 70].mean()


def test_density_multipliers_average_one():
    probs = _density().probs
    for scale in (0.0, 0.5, 1.0, 2.0):
        m = density_multipliers(scale)
        np.testing.assert_allclose(np.einsum("gk,gbk->gb", probs, m), 1.0, rtol=1e-12)
    hr = density_multipliers(1.0)[0, 0]
    assert hr[3] / hr[1] == pytest.approx(2.0119) and hr[0] / hr[1] == pytest.approx(0.48107)
    assert density_group(np.array([30.0, 40.0, 44.9, 45.0, 74.9, 90.0])).tolist() == [0, 0, 0, 1, 6, 8]


def test_prs_and_image_raise_risk(big):
    nc = big[big["brca"] == "negative"]
    ratio = nc["true_risk_5y"] / nc["true_risk_5y_no_image"]
    assert np.corrcoef(nc["prs"], np.log(nc["true_risk_5y"]))[0, 1] > 0.2
    assert np.corrcoef(nc["image_factor"], np.log(ratio))[0, 1] > 0.99
    # Without the pixels the best model loses the image spread, but keeps the mean.
    assert nc["true_risk_5y_no_image"].mean() == pytest.approx(nc["true_risk_5y"].mean(), rel=0.01)
    top, bottom = nc["prs"] > 1, nc["prs"] < -1
    assert nc.loc[top, "true_risk_5y"].mean() > 2 * nc.loc[bottom, "true_risk_5y"].mean()


def test_carriers_much_higher_risk(big):
    mean = big.groupby("brca")["true_risk_5y"].mean()
    assert mean["BRCA1"] > 5 * mean["negative"] and mean["BRCA2"] > 5 * mean["negative"]
    freq = big["brca"].value_counts(normalize=True)
    assert freq["BRCA1"] == pytest.approx(0.0024, rel=0.25) and freq["BRCA2"] == pytest.approx(0.003, rel=0.25)


def test_carrier_incidence_meets_published_penetrance():
    params = load_parameters()
    low, high = params["carrier_plateau_range"]["value"]
    for gene, target in params["carrier_penetrance_by_80"]["value"].items():
        rates = carrier_incidence()[gene]
        assert rates.shape == (14,)
        assert 1 - math.exp(-5 * rates[:12].sum()) == pytest.approx(target, abs=1e-12)  # ages 20–80
        assert low / 1000 <= rates[-1] <= high / 1000
        assert (np.diff(rates) >= 0).all()


@pytest.mark.parametrize("effect", [{"prs_or_per_sd": 1.0}, {"image_hr_per_sd": 1.0}, {"density_effect": False}])
def test_multipliers_are_normalised(big, effect):
    """Each factor has population mean 1, so switching it off keeps the mean risk (same women)."""
    on = big[big["brca"] == "negative"]
    off = make_cohort(N_BIG, seed=2024, **effect)
    off = off[off["brca"] == "negative"]
    assert off["true_risk_5y"].mean() == pytest.approx(on["true_risk_5y"].mean(), rel=0.02)


def test_no_image_effect_when_hr_is_one():
    df = make_cohort(2_000, seed=1, image_hr_per_sd=1.0)
    np.testing.assert_allclose(df["true_risk_5y_no_image"], df["true_risk_5y"], rtol=1e-12)


def test_race_mix_and_age_range_options():
    df = make_cohort(2_000, seed=1, race_mix={2: 1.0}, age_range=(60, 61), follow_up=(1, 1), loss_rate=0)
    assert (df["race"] == 2).all() and df["age"].between(60, 61).all()
    assert (df["time"] <= 1).all() and ((df["time"] == 1) | (df["event"] != 0)).all()


# --------------------------------------------------------------------------- arguments and parameters


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n=0"),
        ({"n": 2.5}, "n=2.5"),
        ({"n": True}, "n=True"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"age_range": (50, 40)}, "age_range"),
        ({"age_range": (10, 40)}, "age_range"),
        ({"age_range": (40, 90)}, "age_range"),
        ({"age_range": "40-74"}, "age_range"),
        ({"race_mix": {12: 1.0}}, "race_mix"),
        ({"race_mix": {1: -1.0}}, "race_mix"),
        ({"race_mix": {1: 0.0}}, "race_mix"),
        ({"race_mix": [1, 2]}, "race_mix"),
        ({"prs_or_per_sd": 0}, "prs_or_per_sd"),
        ({"prs_or_per_sd": float("nan")}, "prs_or_per_sd"),
        ({"image_hr_per_sd": -2.0}, "image_hr_per_sd"),
        ({"image_hr_per_sd": "big"}, "image_hr_per_sd"),
        ({"density_effect": -1}, "density_effect"),
        ({"carrier_freq": (0.6, 0.6)}, "carrier_freq"),
        ({"carrier_freq": 0.01}, "carrier_freq"),
        ({"follow_up": (6, 5)}, "follow_up"),
        ({"follow_up": (0, 0)}, "follow_up"),
        ({"loss_rate": -0.1}, "loss_rate"),
        ({"loss_rate": float("inf")}, "loss_rate"),
    ],
)
def test_argument_validation(kwargs, match):
    args = {"n": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_cohort(**args)


def test_unknown_effect_is_a_type_error():
    with pytest.raises(TypeError):
        make_cohort(10, image_hr=2.0)  # type: ignore[call-arg]


def test_parameter_file_has_value_source_year():
    text = resources.files("riskmodel.synthetic").joinpath("data", "cohort_parameters.json").read_text("utf-8")
    params = json.loads(text)
    entries = {k: v for k, v in params.items() if k != "description"}
    assert len(entries) >= 20
    for name, entry in entries.items():
        assert {"value", "source", "year", "status"} <= set(entry), name
        assert entry["source"].strip() and isinstance(entry["year"], int), name
        assert entry["status"] in {"verified", "transcribed", "approximate", "design"}, name
    assert sum(params["race_mix"]["value"].values()) == pytest.approx(1.0)
    defaults = default_effects()
    assert defaults["prs_or_per_sd"] == 1.61 and defaults["carrier_freq"] == (0.0024, 0.003)
    load_parameters()["race_mix"]["value"]["1"] = 0.0  # a copy: the simulator is unaffected
    assert load_parameters()["race_mix"]["value"]["1"] == 0.578
