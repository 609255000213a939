"""riskmodel.recommend_screening: one row per input row, carriers, missing risks, measures, percentiles."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel.screening import RECOMMENDATION_COLUMNS, add_recommendations, recommend_screening

EXAMPLE = Path(__file__).parents[1] / "examples" / "example_cohort.csv"


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE)


@pytest.fixture(scope="module")
def scored(cohort) -> pd.DataFrame:
    return riskmodel.predict_risk(cohort)


def test_public_name_and_columns(scored, cohort):
    assert "recommend_screening" in riskmodel.__all__
    out = riskmodel.recommend_screening(scored, "mypebs", cohort=cohort)
    assert tuple(out.columns) == RECOMMENDATION_COLUMNS
    assert out.index.equals(scored.index) and len(out) == len(cohort)
    assert str(out["chemoprevention_discussion"].dtype) == "boolean"


def test_index_and_order_are_kept(scored, cohort):
    order = np.random.default_rng(3).permutation(len(cohort))
    c2, s2 = cohort.iloc[order].copy(), scored.iloc[order].copy()
    c2.index = s2.index = [f"w{i}" for i in order]
    shuffled = recommend_screening(s2, "mypebs", cohort=c2)
    plain = recommend_screening(scored, "mypebs", cohort=cohort)
    assert list(shuffled.index) == [f"w{i}" for i in order]
    pd.testing.assert_frame_equal(shuffled.reset_index(drop=True), plain.iloc[order].reset_index(drop=True))


def test_rows_without_a_valid_risk_get_a_status_and_no_recommendation(scored, cohort):
    out = recommend_screening(scored, "uspstf2024", cohort=cohort).set_index(cohort["id"])
    mypebs = recommend_screening(scored, "mypebs", cohort=cohort).set_index(cohort["id"])
    for wid, why, rec in (("W014", "out_of_range", out), ("W017", "inconsistent", mypebs), ("W019", "missing", out)):
        row = rec.loc[wid]
        assert row["status"] == "no_risk" and row["message"].startswith(f"no valid risk (status {why}")
        assert row["category"] == "" and row["modality"] == "" and row["rationale"] == ""
        assert np.isnan(row["interval_months"]) and pd.isna(row["chemoprevention_discussion"])
    # A policy's own scope says more than "no risk": USPSTF 2024 is not for women with atypical hyperplasia.
    assert out.loc["W017", "status"] == "not_applicable" and "atypical hyperplasia" in out.loc["W017", "message"]
    # Nothing is invented: every "ok" row has a category, a rationale naming the source, and the policy id.
    ok = out[out["status"] == "ok"]
    assert len(ok) > 0 and (ok["category"] != "").all() and ok["rationale"].str.contains("USPSTF 2024").all()


def test_nan_risk_with_ok_status_is_not_recommended():
    data = pd.DataFrame({"age": [50.0, 50.0], "risk": [np.nan, 0.02], "horizon": 5.0, "status": "ok",
                         "model": "external"})
    for policy in ("mypebs", "uspstf2024"):  # even where the policy itself reads age only
        out = recommend_screening(data, policy)
        assert out["status"].tolist() == ["no_risk", "ok"]
        assert out["message"].iat[0] == "no risk value in this row (NaN) although its status is ok"
    # A horizon that is not the policy's measure is not used as if it were.
    other = data.assign(horizon=3.0, risk=[0.01, 0.02])
    out = recommend_screening(other, "mypebs")
    assert (out["status"] == "no_risk").all() and "the policy needs five-year risk" in out["message"].iat[0]


def test_risk_outside_zero_one_is_invalid():
    data = pd.DataFrame({"age": [50.0, 50.0], "risk": [2.5, -0.1], "horizon": 5.0, "status": "ok"})
    out = recommend_screening(data, "mypebs")
    assert out["status"].tolist() == ["invalid", "invalid"]
    assert "risk=2.5: must be a probability in [0, 1] (a percentage? divide by 100)" == out["message"].iat[0]


def test_carriers(scored, cohort):
    w012 = cohort.index[cohort["id"] == "W012"][0]  # BRCA1, not scored by Gail
    wisdom = recommend_screening(scored, "wisdom", cohort=cohort).loc[w012]
    assert (wisdom["status"], wisdom["category"], wisdom["interval_months"]) == ("ok", "highest", 6.0)
    assert "BRCA1 pathogenic variant" in wisdom["rationale"] and "carrier status alone" in wisdom["message"]
    assert bool(wisdom["chemoprevention_discussion"]) is True
    acr = recommend_screening(scored, "acr2023", cohort=cohort).loc[w012]
    assert (acr["status"], acr["category"], acr["supplemental"]) == ("ok", "high", "mri")
    for policy in ("uspstf2024", "mypebs"):
        row = recommend_screening(scored, policy, cohort=cohort).loc[w012]
        assert row["status"] == "not_applicable" and "BRCA1/2 pathogenic variant (brca)" in row["message"]
        assert row["category"] == ""


def test_carrier_with_a_risk_from_another_model_is_raised_not_lowered():
    data = pd.DataFrame({"age": [45.0, 45.0, 45.0], "risk_5y": [0.005, 0.005, 0.005], "status": "ok",
                         "model": "external", "brca": ["BRCA2", "negative", np.nan]})
    ref = pd.DataFrame({"age": np.full(400, 45.0), "risk_5y": 0.5})
    out = recommend_screening(data, "wisdom", reference=ref)
    assert out["category"].tolist() == ["highest", "low", "low"]
    assert "BRCA2 pathogenic variant" in out["rationale"].iat[0] and "by risk alone" in out["rationale"].iat[0]
    assert "brca unknown" in out["message"].iat[2] and "brca unknown" not in out["message"].iat[1]


def test_invalid_brca_is_reported():
    data = pd.DataFrame({"age": [45.0], "risk_5y": [0.02], "status": "ok", "brca": ["maybe"]})
    out = recommend_screening(data, "mypebs")
    assert out["status"].iat[0] == "invalid" and "brca='maybe'" in out["message"].iat[0]


def test_exclusions_other_than_carriers():
    data = pd.DataFrame({"age": [50.0, 50.0], "risk": [0.01, 0.01], "horizon": 5.0, "status": "ok",
                         "chest_radiation": [True, False]})
    out = recommend_screening(data, "uspstf2024")
    assert out["status"].tolist() == ["not_applicable", "ok"]
    assert "chest radiation therapy (chest_radiation)" in out["message"].iat[0]


# ---------------------------------------------------------------------------- measures


def test_lifetime_policy_recomputes_gail_to_age_90(scored, cohort):
    out = recommend_screening(scored, "acr2023", cohort=cohort)
    life = riskmodel.predict_risk(cohort, horizon="lifetime")
    ok = (out["status"] == "ok") & life["risk"].notna()
    assert ok.sum() >= 10
    np.testing.assert_allclose(out.loc[ok, "risk_used"], life.loc[ok, "risk"], rtol=1e-12)
    assert out.loc[ok, "rationale"].str.contains("lifetime risk to age 90, recomputed from the cohort").all()
    # ACR 2023 asks for family-history models, not Gail: every rationale built on Gail's risk says so.
    assert out.loc[ok, "rationale"].str.contains("Caveat: ACR 2023 asks for lifetime risk from a model with detailed "
                                                 "family history").all()
    w012 = out.loc[cohort["id"] == "W012"].iloc[0]  # placed by carrier status: no Gail risk used, no caveat
    assert w012["category"] == "high" and "Caveat" not in w012["rationale"]


def test_lifetime_with_the_wrong_cohort_is_not_guessed(scored, cohort):
    # A cohort with age only: the Gail model rerun at the scored horizon must reproduce the scored risk.
    out = recommend_screening(scored, "acr2023", cohort=cohort[["age"]]).set_index(cohort["id"])
    w001 = out.loc["W001"]  # scored with her risk factors; age alone gives another risk
    assert w001["status"] == "inconsistent" and w001["category"] == ""
    assert "is not what the Gail model gives for this row of the cohort" in w001["message"]
    # Whatever was placed carries her true lifetime risk, never a substitute.
    truth = riskmodel.predict_risk(cohort, horizon="lifetime")["risk"].to_numpy()
    ok = (out["status"] == "ok").to_numpy() & ~np.isnan(out["risk_used"].to_numpy())
    np.testing.assert_allclose(out["risk_used"].to_numpy()[ok], truth[ok], rtol=1e-12)


def test_lifetime_from_a_hybrid_like_table_is_not_extrapolated():
    data = pd.DataFrame({"age": [45.0], "risk": [0.02], "horizon": [5.0], "status": "ok", "model": "hybrid",
                         **{f"risk_{k}y": [0.004 * k] for k in range(1, 6)}})
    out = recommend_screening(data, "acr2023")
    assert out["status"].iat[0] == "no_risk"
    assert "is not extrapolated beyond its horizon; give a risk_lifetime column" in out["message"].iat[0]
    given = recommend_screening(data.assign(risk_lifetime=0.25), "acr2023")
    assert (given["category"].iat[0], given["risk_used"].iat[0]) == ("high", 0.25)
    assert "Caveat" not in given["rationale"].iat[0]  # the caveat is about the Gail model only
    assert "from the given risk_lifetime" in given["rationale"].iat[0]


def test_five_year_from_risk_5y_or_horizon():
    data = pd.DataFrame({"age": [50.0, 50.0, 50.0], "risk": [0.05, 0.02, 0.02], "horizon": [3.0, 5.0, 3.0],
                         "risk_5y": [0.07, np.nan, np.nan], "status": "ok", "model": "hybrid"})
    out = recommend_screening(data, "mypebs")
    assert out["status"].tolist() == ["ok", "ok", "no_risk"]
    assert out["risk_used"].iloc[:2].tolist() == [0.07, 0.02]
    assert "the row has a 3-year risk from model 'hybrid'" in out["message"].iat[2]


def test_gail_rows_at_another_horizon_are_recomputed_with_the_cohort(cohort):
    ten = riskmodel.predict_risk(cohort, horizon=10)
    five = riskmodel.predict_risk(cohort, horizon=5)
    out = recommend_screening(ten, "mypebs", cohort=cohort)
    ok = out["status"] == "ok"
    np.testing.assert_allclose(out.loc[ok, "risk_used"], five.loc[ok, "risk"], rtol=1e-12)
    without = recommend_screening(ten.assign(age=cohort["age"]), "mypebs")
    # data holds age only, so the rerun reproduces the 10-year risk only where the factors were unknown
    # anyway: the others are "inconsistent", and no placed row carries a substitute.
    assert (without["status"] == "inconsistent").sum() >= 8
    placed = (without["status"] == "ok").to_numpy()
    np.testing.assert_allclose(without["risk_used"].to_numpy()[placed], five["risk"].to_numpy()[placed], rtol=1e-12)


# ---------------------------------------------------------------------------- top 2.5% for age


def _band(n: int, age: float = 45.0) -> pd.DataFrame:
    return pd.DataFrame({"age": np.full(n, age), "risk_5y": np.linspace(0.001, 0.05, n)})


def test_top_percentile_for_age_boundary():
    ref = _band(401)
    cut = float(np.quantile(ref["risk_5y"], 0.975))
    data = pd.DataFrame({"age": 46.0, "risk_5y": [np.nextafter(cut, 0), cut, np.nextafter(cut, 1)], "status": "ok"})
    out = recommend_screening(data, "wisdom", reference=ref)
    assert out["category"].tolist() == ["average", "elevated", "elevated"]
    assert out["interval_months"].tolist() == [24.0, 12.0, 12.0]
    assert "97.5th percentile" in out["rationale"].iat[1] and "401 women aged [45, 50)" in out["rationale"].iat[1]


def test_top_percentile_uses_the_scored_cohort_by_default():
    data = _band(300).assign(status="ok")
    out = recommend_screening(data, "wisdom")
    top = out["category"] == "elevated"
    assert 5 <= top.sum() <= 9  # about 2.5% of 300
    assert data.loc[top, "risk_5y"].min() > data.loc[~top, "risk_5y"].max()


def test_too_small_a_reference_gives_no_reference_not_a_default():
    data = pd.DataFrame({"age": [46.0, 46.0, 60.0], "risk_5y": [0.02, 0.07, 0.02], "status": "ok"})
    out = recommend_screening(data, "wisdom")
    # 0.07 is "highest" whatever the percentile; the others could be "elevated" and cannot be placed.
    assert out["status"].tolist() == ["no_reference", "ok", "no_reference"]
    assert out["category"].tolist() == ["", "highest", ""]
    assert "only 2 women aged [45, 50)" in out["message"].iat[0] and "200 needed" in out["message"].iat[0]


# ---------------------------------------------------------------------------- input errors


def test_age_is_required(scored):
    with pytest.raises(riskmodel.SchemaError, match="column 'age': needed to apply a screening policy"):
        recommend_screening(scored, "uspstf2024")


def test_cohort_must_match(scored, cohort):
    with pytest.raises(ValueError, match="cohort: its index differs"):
        recommend_screening(scored, "uspstf2024", cohort=cohort.iloc[:5])


def test_no_risk_column():
    with pytest.raises(riskmodel.SchemaError, match="no risk column"):
        recommend_screening(pd.DataFrame({"age": [50.0]}), "uspstf2024")


def test_add_recommendations_keeps_the_risk_columns(scored, cohort):
    out = add_recommendations(scored, cohort, "uspstf2024")
    assert list(out.columns[:5]) == ["risk", "status", "message", "model", "horizon"]
    assert {"recommendation_status", "recommendation_message", "category"} <= set(out.columns)
    pd.testing.assert_series_equal(out["status"], scored["status"])


@pytest.mark.parametrize(("value", "words"), [(True, "risk=True: a boolean is not a probability in [0, 1]"),
                                              (np.True_, "risk=True: a boolean is not a probability in [0, 1]"),
                                              (0.01 + 1j, "risk=(0.01+1j): a complex number is not a probability"),
                                              (0.02 + 0j, "risk=(0.02+0j): a complex number is not a probability")])
def test_boolean_or_complex_risk_is_invalid_not_a_number(value, words):
    data = pd.DataFrame({"age": [50.0, 50.0], "risk": [value, 0.02], "horizon": 5.0, "status": "ok", "model": "x"})
    out = recommend_screening(data, "mypebs")
    assert out["status"].iat[0] == "invalid" and out["message"].iat[0].startswith(words)
    assert out["category"].iat[0] == "" and np.isnan(out["risk_used"].iat[0])
    assert out["status"].iat[1] == ("invalid" if isinstance(value, complex) else "ok")  # complex column: every row
    # A whole boolean column, and a boolean horizon, are refused the same way.
    flags = recommend_screening(data.assign(risk=[True, False]), "mypebs")
    assert flags["status"].tolist() == ["invalid", "invalid"]
    years = recommend_screening(data.assign(risk=0.02, horizon=[True, 5.0]), "mypebs")
    assert years["status"].tolist() == ["invalid", "ok"]
    assert years["message"].iat[0] == "horizon=True: a boolean is not a number of years"


def test_cohort_columns_spelled_differently_are_read():
    """A cohort with ``Age`` and ``BRCA`` headers: the carrier rule applies as with canonical names."""
    canonical = pd.DataFrame({"age": [45.0, 45.0], "race": [1, 1], "brca": ["brca1", "none"]})
    spelled = canonical.rename(columns={"age": "Age", "race": "Race", "brca": "BRCA"})
    risks = riskmodel.predict_risk(canonical, horizon=5)
    want = riskmodel.recommend_screening(risks, policy="acr2023", cohort=canonical)
    got = riskmodel.recommend_screening(risks, policy="acr2023", cohort=spelled)
    pd.testing.assert_frame_equal(got, want)
    assert "carrier" in " ".join(got["rationale"].astype(str)).lower() or got["category"].iloc[0] != \
        got["category"].iloc[1]
