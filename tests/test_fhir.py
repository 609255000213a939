"""FHIR R4 RiskAssessment export, validated with fhir.resources (R4B models, the R4-compatible release)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel.screening import add_recommendations, fhir_bundle, risk_assessments, write_fhir

R4B = pytest.importorskip("fhir.resources.R4B.riskassessment", reason="fhir.resources is in the test extra")
from fhir.resources.R4B.bundle import Bundle  # noqa: E402

RiskAssessment = R4B.RiskAssessment
EXAMPLE = Path(__file__).parents[1] / "examples" / "example_cohort.csv"


@pytest.fixture(scope="module")
def results() -> tuple[pd.DataFrame, pd.DataFrame]:
    cohort = pd.read_csv(EXAMPLE)
    out = add_recommendations(riskmodel.predict_risk(cohort), cohort, "mypebs")
    return out, cohort


@pytest.fixture(scope="module")
def resources(results):
    out, cohort = results
    return risk_assessments(out, cohort=cohort, occurrence="2026-11-21")


def test_every_resource_is_a_valid_r4_risk_assessment(resources, results):
    out, _ = results
    assert len(resources) == len(out)
    for res in resources:
        RiskAssessment.model_validate(res)  # raises on a structural error
        json.dumps(res)  # plain JSON, no library objects
    assert len({r["id"] for r in resources}) == len(resources)
    assert resources[0]["id"] == "breast-risk-W001" and resources[0]["subject"] == {"reference": "Patient/W001"}


def test_scored_row_content(resources, results):
    out, cohort = results
    i = int(np.flatnonzero(cohort["id"] == "W002")[0])
    ra = resources[i]
    assert ra["status"] == "final" and ra["occurrenceDateTime"] == "2026-11-21"
    pred = ra["prediction"][0]
    assert pred["outcome"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "254837009",
                                            "display": "Malignant neoplasm of breast"}
    assert pred["probabilityDecimal"] == pytest.approx(out["risk"].iat[i], abs=1e-8)
    assert 0 <= pred["probabilityDecimal"] <= 1
    assert pred["whenRange"]["low"]["value"] == 47.3 and pred["whenRange"]["high"]["value"] == pytest.approx(52.3)
    assert pred["whenRange"]["low"]["code"] == "a" and pred["whenRange"]["low"]["system"] == "http://unitsofmeasure.org"
    notes = " ".join(n["text"] for n in ra["note"])
    assert "Screening recommendation (policy mypebs 2019.1): category very_high" in notes
    assert "supports, and does not replace, a clinician's decision" in notes
    assert "risk-reducing medication" in ra["mitigation"]


def test_rows_without_a_risk_are_cancelled_with_the_reason(resources, results):
    _, cohort = results
    i = int(np.flatnonzero(cohort["id"] == "W019")[0])  # age missing
    ra = resources[i]
    RiskAssessment.model_validate(ra)
    assert ra["status"] == "cancelled" and "prediction" not in ra
    assert "No risk could be computed (missing): age: missing" in ra["note"][0]["text"]
    assert "No screening recommendation (policy mypebs 2019.1, status no_risk)" in ra["note"][1]["text"]


def test_bundle_and_files(resources, tmp_path):
    bundle = fhir_bundle(resources)
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection" and len(parsed.entry) == len(resources)
    assert bundle == fhir_bundle(resources)  # deterministic fullUrls
    nd = write_fhir(resources, tmp_path / "ra.ndjson")
    lines = nd.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(resources) and json.loads(lines[1]) == resources[1]
    js = write_fhir(resources, tmp_path / "ra.json")
    Bundle.model_validate(json.loads(js.read_text(encoding="utf-8")))
    with pytest.raises(ValueError, match=r"use \.ndjson"):
        write_fhir(resources, tmp_path / "ra.xml")


def test_the_validator_rejects_a_broken_resource(resources):
    broken = dict(resources[0])
    del broken["status"]  # required in R4
    with pytest.raises(ValueError):
        RiskAssessment.model_validate(broken)
    wrong = json.loads(json.dumps(resources[0]))
    wrong["prediction"][0]["probabilityDecimal"] = "high"
    with pytest.raises(ValueError):
        RiskAssessment.model_validate(wrong)


def test_hybrid_style_rows_export_each_year_and_odd_ids():
    rows = pd.DataFrame({"id": ["a b/1"], "age": [50.0], "risk": [0.02], "status": ["ok"], "message": [""],
                         "model": ["hybrid"], "horizon": [5.0], **{f"risk_{k}y": [0.004 * k] for k in range(1, 6)}})
    ra = risk_assessments(rows, occurrence="2026-11-21T10:00:00Z")[0]
    RiskAssessment.model_validate(ra)
    assert [p["whenRange"]["high"]["value"] for p in ra["prediction"]] == [55.0, 51.0, 52.0, 53.0, 54.0]
    assert ra["subject"] == {"identifier": {"value": "a b/1"}, "display": "a b/1"}  # not a valid FHIR id
    assert ra["id"] == "breast-risk-row0"


def test_occurrence_must_be_a_fhir_datetime():
    rows = pd.DataFrame({"age": [50.0], "risk": [0.02], "status": ["ok"], "horizon": [5.0]})
    with pytest.raises(ValueError, match="FHIR dateTime"):
        risk_assessments(rows, occurrence="21/11/2026")


def test_lifetime_risk_used_by_the_policy_is_exported():
    cohort = pd.read_csv(EXAMPLE).iloc[:2]
    out = add_recommendations(riskmodel.predict_risk(cohort), cohort, "acr2023")
    ra = risk_assessments(out, cohort=cohort, occurrence="2026-11-21")[1]
    RiskAssessment.model_validate(ra)
    life = ra["prediction"][-1]
    assert life["rationale"] == "Lifetime risk (to age 90) used by the screening policy."
    assert life["whenRange"]["high"]["value"] == 90.0
    assert life["probabilityDecimal"] == pytest.approx(out["risk_used"].iat[1], abs=1e-8)
    assert "Caveat: ACR 2023 asks for lifetime risk" in ra["note"][0]["text"]


def _validate_all(resources: list[dict]) -> None:
    """Every resource, the NDJSON lines and the Bundle are valid R4(B) and plain JSON (no NaN/Infinity)."""
    for res in resources:
        RiskAssessment.model_validate(json.loads(json.dumps(res, allow_nan=False)))
    Bundle.model_validate(json.loads(json.dumps(fhir_bundle(resources), allow_nan=False)))


def test_id_with_a_trailing_newline_is_not_a_fhir_id():
    rows = pd.DataFrame({"id": ["W1\n", "W2"], "age": [50.0, 50.0], "risk": [0.02, 0.02], "status": "ok",
                         "model": "gail", "horizon": 5.0})
    ra = risk_assessments(rows, occurrence="2026-11-21")
    _validate_all(ra)
    assert ra[0]["subject"] == {"identifier": {"value": "W1\n"}, "display": "W1\n"}
    assert [r["id"] for r in ra] == ["breast-risk-row0", "breast-risk-W2"]


@pytest.mark.parametrize("bad", ["2026-13-45", "2026-02-30", "2026-11-21\n", "2026-11-21T25:00:00Z",
                                 "2026-11-21T10:00:00+15:00", "0000-01-01", "2026-11-21T10:00Z", "٢٠٢٦-11-21"])
def test_occurrence_is_a_real_date(bad):
    rows = pd.DataFrame({"age": [50.0], "risk": [0.02], "status": ["ok"], "horizon": [5.0]})
    with pytest.raises(ValueError, match="date"):
        risk_assessments(rows, occurrence=bad)
    for good in ("2026", "2026-02", "2024-02-29", "2026-11-21T10:00:00.5+14:00"):
        RiskAssessment.model_validate(risk_assessments(rows, occurrence=good)[0])


def test_values_the_library_does_not_accept_are_never_final(tmp_path):
    rows = pd.DataFrame({"id": list("abcdefgh"), "age": [50.0, 50.0, 50.0, 50.0, 50.0, 50.0, np.inf, 50.0],
                         "risk": [1.5, -0.2, np.inf, np.nan, 0.02, 0.02, 0.02, 0.02], "status": "ok",
                         "model": "gail", "horizon": [5.0, 5.0, 5.0, 5.0, np.inf, 5.0, 5.0, 5.0],
                         "risk_3y": [0.01, 0.01, 0.01, 0.01, 0.01, 1.2, 0.01, 0.01]})
    ra = risk_assessments(rows, occurrence="2026-11-21")
    _validate_all(ra)
    assert [r["status"] for r in ra] == ["cancelled"] * 7 + ["final"]
    assert all("prediction" not in r for r in ra[:7])
    assert "risk=1.5: not a probability in [0, 1]" in ra[0]["note"][0]["text"]
    assert "risk_3y=1.2: not a probability" in ra[5]["note"][0]["text"]
    text = write_fhir(ra, tmp_path / "ra.ndjson").read_text(encoding="utf-8")
    assert "Infinity" not in text and "NaN" not in text
    # Rows the policy flagged invalid are not final either, whatever the scored status said.
    recs = add_recommendations(rows.iloc[:2].drop(columns="risk_3y"), None, "mypebs")
    assert [r["status"] for r in risk_assessments(recs, occurrence="2026-11-21")] == ["cancelled", "cancelled"]


def test_write_fhir_refuses_nan_and_infinity_and_leaves_no_file(resources, tmp_path):
    broken = json.loads(json.dumps(resources[1]))
    broken["prediction"][0]["probabilityDecimal"] = float("inf")
    for name in ("ra.ndjson", "ra.json"):
        with pytest.raises(ValueError, match="JSON cannot represent"):
            write_fhir([resources[0], broken], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_every_resource_from_a_varied_cohort_validates():
    """Odd ids, every status, several policies and horizons, a hybrid-like table, out-of-range values."""
    cohort = pd.read_csv(EXAMPLE)
    cohort["id"] = cohort["id"].astype(object)
    cohort.loc[:5, "id"] = ["W 1", "W2\n", "ünï", "", None, "x" * 80]
    out = []
    for policy, horizon in (("mypebs", 5.0), ("acr2023", "lifetime"), ("uspstf2024", 10.0), ("wisdom", 5.0)):
        scored = riskmodel.predict_risk(cohort, horizon=horizon)
        out += risk_assessments(add_recommendations(scored, cohort, policy), cohort=cohort, occurrence="2026-11-21")
        out += risk_assessments(scored, cohort=cohort)
    hybrid = pd.DataFrame({"risk": [0.02, 3.0, np.nan, 0.5], "status": ["ok", "ok", "missing", "ok"],
                           "message": ["", "", "age: missing", ""], "model": "hybrid", "horizon": 5.0,
                           "age": [45.0, 60.0, np.nan, -1.0], "id": ["h1", "h2", "h3", "h4"],
                           **{f"risk_{k}y": [0.004 * k, 0.1, np.nan, 0.1] for k in range(1, 6)}})
    out += risk_assessments(add_recommendations(hybrid, None, "mypebs"), occurrence="2026-11-21T08:00:00-05:00")
    _validate_all(out)
    statuses = {r["status"] for r in out}
    assert statuses == {"final", "cancelled"}
