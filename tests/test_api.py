"""riskmodel.predict_risk: one output row per input row, statuses, horizons, BCRA parity."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel.gail import bcra_absolute_risk, bcra_to_canonical, canonical_to_bcra

EXAMPLE = Path(__file__).parents[1] / "examples" / "example_cohort.csv"
REF = Path(__file__).parent / "data" / "bcra_example.csv"


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return pd.read_csv(EXAMPLE)


def test_output_shape_index_and_columns(cohort):
    shuffled = cohort.sample(frac=1.0, random_state=1)
    shuffled.index = [f"r{i}" for i in range(len(shuffled))][::-1]
    out = riskmodel.predict_risk(shuffled)
    assert out.index.equals(shuffled.index)
    assert list(out.columns) == ["risk", "status", "message", "model", "horizon"]
    assert (out["model"] == "gail").all() and (out["horizon"] == 5.0).all()
    ok = out["status"] == "ok"
    assert ok.sum() >= 10
    assert out.loc[ok, "risk"].between(0, 1).all() and (out.loc[ok, "message"] == "").all()
    assert out.loc[~ok, "risk"].isna().all() and (out.loc[~ok, "message"] != "").all()


def test_example_cohort_statuses(cohort):
    out = riskmodel.predict_risk(cohort).set_index(cohort["id"])
    assert out.loc["W012", "status"] == "not_applicable"  # BRCA1 carrier
    assert out.loc["W014", "status"] == "out_of_range"  # 88 + 5 > 90
    assert out.loc["W017", "status"] == "inconsistent"
    assert out.loc["W019", "status"] == "missing"
    # The spec's worked examples, through the canonical schema.
    assert out.loc["W001", "risk"] == pytest.approx(0.01098937, abs=5e-9)
    assert out.loc["W002", "risk"] == pytest.approx(0.13165545, abs=5e-9)
    assert out.loc["W003", "risk"] == pytest.approx(0.01384293, abs=5e-9)


def test_matches_bcra_through_the_converter(cohort):
    for horizon in (5.0, 10.0, "lifetime"):
        out = riskmodel.predict_risk(cohort, horizon=horizon)
        bcra = bcra_absolute_risk(canonical_to_bcra(cohort, horizon=horizon)) / 100
        ok = out["status"] == "ok"
        np.testing.assert_allclose(out.loc[ok, "risk"], bcra[ok], rtol=1e-15)


def test_bcra_reference_through_canonical_schema():
    ref = pd.read_csv(REF, float_precision="round_trip", keep_default_na=False, na_values=[])
    frame = ref[["ID", "T1", "T2", "N_Biop", "HypPlas", "AgeMen", "Age1st", "N_Rels", "Race"]].astype(float)
    canon = bcra_to_canonical(frame)
    out = riskmodel.predict_risk(canon, horizon="horizon")
    assert len(out) == len(frame)
    expected = pd.to_numeric(ref["abs_risk"].replace("NA", np.nan)) / 100
    # Deliberate difference: BCRA rejects "no biopsy (or unknown), HypPlas = 0" (its Requirement A);
    # the canonical schema reads it as consistent and scores it with HypPlas = 99.
    req_a_zero = frame["N_Biop"].isin([0, 99]) & (frame["HypPlas"] == 0)
    assert req_a_zero.sum() == 4
    fixed = bcra_absolute_risk(frame.assign(HypPlas=frame["HypPlas"].where(~req_a_zero, 99))) / 100
    scored = out["status"] == "ok"
    np.testing.assert_array_equal(scored.to_numpy(), fixed.notna().to_numpy())
    np.testing.assert_allclose(out.loc[scored, "risk"], fixed[scored], rtol=1e-15)
    # Every other row: scored exactly where BCRA scores it, with BCRA's value.
    same = ~req_a_zero
    np.testing.assert_array_equal(scored[same].to_numpy(), expected[same].notna().to_numpy())
    np.testing.assert_allclose(out.loc[scored & same, "risk"], expected[scored & same], rtol=1e-12)


def test_per_row_horizon_column_and_lifetime():
    df = pd.DataFrame({"age": [40.0, 50.0, 60.0, 45.0], "race": 1, "h": [5, "lifetime", 10, np.nan]})
    out = riskmodel.predict_risk(df, horizon="h")
    assert out["horizon"].tolist()[:3] == [5.0, 40.0, 10.0]
    assert out["status"].tolist() == ["ok", "ok", "ok", "missing"]
    life = riskmodel.predict_risk(df.iloc[[1]], horizon="lifetime")
    assert life["risk"].iloc[0] == out["risk"].iloc[1]
    arr = riskmodel.predict_risk(df, horizon=np.array([5, 40, 10, 5]))
    np.testing.assert_array_equal(arr["risk"].to_numpy()[:3], out["risk"].to_numpy()[:3])


def test_lifetime_at_90_reports_age():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [92.0]}), horizon="lifetime")
    assert out["status"].iloc[0] == "out_of_range" and "age=92" in out["message"].iloc[0]
    assert np.isnan(out["horizon"].iloc[0])


def test_per_row_lifetime_in_a_list():
    df = pd.DataFrame({"age": [40.0, 50.0]})
    out = riskmodel.predict_risk(df, horizon=[5, "lifetime"])
    assert out["horizon"].tolist() == [5.0, 40.0] and (out["status"] == "ok").all()


def test_chunking_and_progress_do_not_change_results(cohort, capsys):
    whole = riskmodel.predict_risk(cohort, details=True)
    parts = riskmodel.predict_risk(cohort, details=True, chunk_size=3, progress=True)
    pd.testing.assert_frame_equal(whole, parts)
    assert "scoring" in capsys.readouterr().err


def test_column_errors_do_not_depend_on_chunks():
    df = pd.DataFrame({"age": [50.0, 60.0, 70.0], "n_biopsies": ["x", "y", 1]})
    out = riskmodel.predict_risk(df, chunk_size=2)
    assert out["status"].tolist() == ["invalid", "invalid", "ok"]


@pytest.mark.parametrize("horizon", [0, -1, "ten", np.nan, [5, 5, 5]])
def test_bad_horizon_raises(horizon):
    with pytest.raises(ValueError, match="horizon"):
        riskmodel.predict_risk(pd.DataFrame({"age": [50.0, 60.0]}), horizon=horizon)


def test_negative_per_row_horizon_flags_row():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0, 60.0]}), horizon=[5, -2])
    assert out["status"].tolist() == ["ok", "invalid"]


def test_exclusions_are_not_applicable():
    df = pd.DataFrame({"age": [50.0] * 4, "prior_breast_cancer": [True, False, False, False],
                       "prior_dcis_or_lcis": [0, 1, 0, 0], "chest_radiation": ["no", "no", "yes", "no"],
                       "brca": [np.nan, np.nan, np.nan, "brca2"]})
    out = riskmodel.predict_risk(df)
    assert out["status"].tolist() == ["not_applicable"] * 4


def test_unknown_race_is_scored_as_other():
    df = pd.DataFrame({"age": [50.0, 50.0], "race": [np.nan, 4]})
    out = riskmodel.predict_risk(df)
    assert out["risk"].iloc[0] == out["risk"].iloc[1]


def test_details_columns(cohort):
    out = riskmodel.predict_risk(cohort, details=True)
    assert {"average_risk", "rr_under50", "rr_over50"} <= set(out.columns)
    ok = out["status"] == "ok"
    assert out.loc[ok, "average_risk"].between(0, 1).all()


def test_missing_column_and_unknown_model():
    with pytest.raises(riskmodel.SchemaError, match="'age'"):
        riskmodel.predict_risk(pd.DataFrame({"race": [1]}))
    with pytest.raises(ValueError, match="unknown model"):
        riskmodel.predict_risk(pd.DataFrame({"age": [50.0]}), model="tyrer-cuzick")


def test_converters_round_trip(cohort):
    bcra = canonical_to_bcra(cohort, horizon=5)
    back = bcra_to_canonical(bcra)
    again = canonical_to_bcra(back, horizon=5)
    pd.testing.assert_frame_equal(bcra.drop(columns="ID"), again.drop(columns="ID"))


def test_large_batch_keeps_every_row():
    rng = np.random.default_rng(3)
    n = 5000
    df = pd.DataFrame({"age": rng.uniform(10, 100, n), "race": rng.integers(0, 13, n),
                       "n_biopsies": rng.choice([0, 1, 2, np.nan, -1], n),
                       "first_degree_relatives": rng.choice([0, 1, 2, np.nan], n)})
    out = riskmodel.predict_risk(df)
    assert len(out) == n and out.index.equals(df.index)
    assert set(out["status"]) <= set(riskmodel.schema.STATUS_CODES)
    assert out["risk"].notna().sum() == (out["status"] == "ok").sum() > 0


def test_text_horizon_is_invalid_blank_is_missing():
    out = riskmodel.predict_risk(pd.DataFrame({"age": [50.0] * 4}), horizon=[5, "x", None, -1])
    assert out["status"].tolist() == ["ok", "invalid", "missing", "invalid"]
    assert "horizon='x'" in out["message"].iloc[1]
