"""Per-woman reports (HTML, PDF), her 1–5-year curve, and the BCSC v2 average for her age."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel.screening import add_recommendations, average_risk_curve, render_report, risk_curves, write_reports
from riskmodel.screening.average import bcsc_group

EXAMPLE = Path(__file__).parents[1] / "examples" / "example_cohort.csv"

# The BCSC v2 calculator's own average-woman risks (percent), shared/reference/clinical.md §1.4.
BCSC = [
    (1, 35, 0.3148484523, 0.8880099694), (1, 40, 0.5784620466, 1.4568499938), (1, 50, 1.2274288131, 2.7332767490),
    (1, 61, 1.9057446260, 3.8900014216), (1, 70, 2.2310598765, 4.2323950416), (1, 74, 2.2628248957, 4.1232482870),
    (2, 50, 1.1059782307, 2.4060862451), (2, 74, 1.8707835715, 3.3692514552), (6, 35, 0.3339135888, 0.8675621631),
    (6, 50, 0.9253416139, 1.9915408146), (3, 50, 0.8551781507, 1.8931427165), (5, 74, 1.4712393301, 2.7260696348),
]


@pytest.mark.parametrize(("race", "age", "five", "ten"), BCSC)
def test_average_curve_reproduces_the_bcsc_calculator(race, age, five, ten):
    curve = average_risk_curve(age, race, years=10)
    assert curve[4] * 100 == pytest.approx(five, abs=1e-9)
    assert curve[9] * 100 == pytest.approx(ten, abs=1e-9)
    assert np.all(np.diff(curve) > 0)


def test_average_curve_range_and_race_mapping():
    assert average_risk_curve(34.9, 1) is None and average_risk_curve(75, 1) is None
    np.testing.assert_array_equal(average_risk_curve(50.7, 1), average_risk_curve(50, 1))  # whole years
    assert bcsc_group(4) == "white" and bcsc_group(float("nan")) == "white"
    assert bcsc_group(9) == "asian_pacific_islander"
    with pytest.raises(ValueError):
        average_risk_curve(50, 1, years=11)


@pytest.fixture(scope="module")
def example():
    cohort = pd.read_csv(EXAMPLE)
    scored = riskmodel.predict_risk(cohort)
    return cohort, scored, add_recommendations(scored, cohort, "mypebs")


def test_gail_curve_is_the_gail_model_at_one_to_five_years(example):
    cohort, scored, _ = example
    curves = risk_curves(scored, cohort)
    ok = (scored["status"] == "ok").to_numpy()
    for k in range(1, 6):
        want = riskmodel.predict_risk(cohort, horizon=k)["risk"].to_numpy()
        np.testing.assert_allclose(curves[ok, k - 1], want[ok], rtol=1e-12)
    assert np.isnan(curves[~ok]).all()
    np.testing.assert_allclose(curves[ok, 4], scored["risk"].to_numpy()[ok], rtol=1e-12)
    # A cohort that does not reproduce the scored risks gives no recomputed curve, only the scored point.
    wrong = risk_curves(scored, cohort[["age"]].assign(race=cohort["race"]))[0]
    assert np.isnan(wrong[:4]).all() and wrong[4] == scored["risk"].iat[0]


def test_curve_from_risk_columns_and_from_a_single_point():
    hybrid = pd.DataFrame({"risk": [0.02], "status": "ok", "horizon": 5.0, "model": "hybrid",
                           **{f"risk_{k}y": [0.004 * k] for k in range(1, 6)}})
    np.testing.assert_allclose(risk_curves(hybrid)[0], [0.004, 0.008, 0.012, 0.016, 0.02])
    point = pd.DataFrame({"risk": [0.01], "status": "ok", "horizon": 3.0, "model": "external"})
    got = risk_curves(point)[0]
    assert got[2] == 0.01 and np.isnan(np.delete(got, 2)).all()


def test_html_report_is_self_contained_and_says_what_it_is(example, tmp_path):
    cohort, scored, out = example
    table = out.assign(id=cohort["id"], age=cohort["age"], race=cohort["race"])
    i = int(np.flatnonzero(cohort["id"] == "W002")[0])
    page = render_report(table.iloc[i], risk_curves(scored, cohort)[i], date="2026-11-21")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "polyline" in page
    assert not re.search(r"<script|<link|<img|url\(|https?://(?!www\.w3\.org/2000/svg)", page)
    for text in ("W002", "age 47.3", "13.17% over 5 years", "very_high", "every 12 months",
                 "supplemental breast MRI", "MyPeBS trial (NCT03672331)", "average for her age", "her risk",
                 "supports, and does not replace, a clinician's decision", "2026-11-21"):
        assert text in page, text


def test_report_for_a_row_without_a_recommendation(example):
    cohort, _, out = example
    table = out.assign(id=cohort["id"], age=cohort["age"])
    i = int(np.flatnonzero(cohort["id"] == "W014")[0])  # 88: out of the Gail model's range
    page = render_report(table.iloc[i], None, date="2026-11-21")
    assert "not available (out_of_range" in page and "No recommendation (out_of_range)." in page
    assert "The average line needs an age of 35–74" in page and "polyline" not in page


def test_write_reports_html_and_pdf(example, tmp_path):
    cohort, _, out = example
    paths = write_reports(out.iloc[:2], tmp_path / "rep", cohort=cohort.iloc[:2], pdf=True, date="2026-11-21")
    assert [p.name for p in paths] == ["W001.html", "W001.pdf", "W002.html", "W002.pdf"]
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 1
    assert "Breast cancer risk and screening" in paths[0].read_text(encoding="utf-8")


def test_report_file_names_fall_back_when_ids_repeat(example, tmp_path):
    cohort, _, out = example
    dup = cohort.iloc[:2].assign(id=["X", "X"])
    paths = write_reports(out.iloc[:2], tmp_path, cohort=dup, date="2026-11-21")
    assert [p.name for p in paths] == ["row00000.html", "row00001.html"]
