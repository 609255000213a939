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
    for text in ("W002", "age 47.3", "13.17% over 5 years", "Very high risk (five-year &gt;= 6%)", "every 12 months",
                 "supplemental breast MRI", "MyPeBS trial (NCT03672331)", "average for her age", "her risk",
                 "supports, and does not replace, a clinician's decision", "2026-11-21"):
        assert text in page, text


def test_report_for_a_row_without_a_recommendation(example):
    cohort, _, out = example
    table = out.assign(id=cohort["id"], age=cohort["age"])
    i = int(np.flatnonzero(cohort["id"] == "W014")[0])  # 88: out of the Gail model's range
    page = render_report(table.iloc[i], None, date="2026-11-21")
    assert "not available (out_of_range" in page
    assert "No recommendation from this policy (outside the ages this guideline covers)." in page  # was: raw status
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


def _facts(page: str) -> dict[str, str]:
    return dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", page))


def test_readme_sequence_risks_recommendations_reports_and_fhir(tmp_path):
    """README: ``out = predict_risk(cohort, ...)``, ``recs = recommend_screening(out, policy=..., cohort=cohort)``,
    then pages and FHIR from ``recs`` with the risks it came from."""
    from riskmodel.screening import risk_assessments

    cohort = pd.read_csv(EXAMPLE)
    out = riskmodel.predict_risk(cohort, model="gail", horizon=5.0)
    recs = riskmodel.recommend_screening(out, policy="mypebs", cohort=cohort)
    pages = write_reports(recs, tmp_path / "pages", risks=out, cohort=cohort, date="2026-11-21")
    resources = risk_assessments(recs, risks=out, cohort=cohort, occurrence="2026-11-21")
    i = int(np.flatnonzero(cohort["id"] == "W002")[0])
    facts = _facts(pages[i].read_text(encoding="utf-8"))
    assert facts["Risk"] == f"{out['risk'].iat[i] * 100:.2f}% over 5 years" and facts["Model"] == "gail"
    assert facts["Category"] == "Very high risk (five-year &gt;= 6%)" and facts["Policy"].startswith("MyPeBS")
    ra = resources[i]
    assert ra["status"] == "final" and ra["method"] == {"text": "riskmodel: gail model"}
    assert ra["prediction"][0]["probabilityDecimal"] == pytest.approx(out["risk"].iat[i], abs=1e-8)
    assert sum(r["status"] == "final" for r in resources) == int((out["status"] == "ok").sum())


def test_recommendations_without_their_risks_are_refused_with_what_to_pass(tmp_path):
    from riskmodel.screening import risk_assessments

    cohort = pd.read_csv(EXAMPLE)
    out = riskmodel.predict_risk(cohort)
    recs = riskmodel.recommend_screening(out, policy="mypebs", cohort=cohort)
    with pytest.raises(ValueError, match=r"output of recommend_screening.*risks=risks"):
        write_reports(recs, tmp_path / "pages", cohort=cohort)
    with pytest.raises(ValueError, match=r"output of recommend_screening.*risks=risks"):
        risk_assessments(recs, cohort=cohort)
    with pytest.raises(ValueError, match="no risk column"):
        risk_assessments(cohort[["id", "age"]])
    with pytest.raises(ValueError, match="index differs"):
        write_reports(recs, tmp_path / "pages", risks=out.iloc[::-1])
    assert not (tmp_path / "pages").exists()




def _custom_policy(tmp_path, policy_id: str) -> Path:
    """The shipped MyPeBS file under another id and source (what a clinic would write)."""
    from importlib import resources

    text = resources.files("riskmodel.screening").joinpath("policies/mypebs.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^id = ".*"$', f'id = "{policy_id}"', text, count=1)
    text = re.sub(r'(?m)^citation = ".*"$', 'citation = "Our clinic\'s own protocol, 2026."', text, count=1)
    path = tmp_path / f"{policy_id}_file.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("policy_id", ["mine", "wisdom"])
def test_reports_cite_the_policy_that_was_applied_not_one_loaded_by_its_id(tmp_path, policy_id):
    cohort = pd.read_csv(EXAMPLE).iloc[:3]
    risks = riskmodel.predict_risk(cohort)
    path = _custom_policy(tmp_path, policy_id)
    recs = riskmodel.recommend_screening(risks, str(path), cohort=cohort)
    for table, kw in ((recs, {"risks": risks}), (add_recommendations(risks, cohort, str(path)), {})):
        pages = write_reports(table, tmp_path / f"p{len(kw)}", cohort=cohort, date="2026-11-21", **kw)
        page = pages[0].read_text(encoding="utf-8")
        assert "Our clinic&#x27;s own protocol, 2026." in page
        assert "Esserman" not in page and "WISDOM" not in page  # the shipped wisdom file's source


def test_a_table_read_back_from_a_file_needs_the_policy(example, tmp_path):
    cohort, _, out = example
    out.to_csv(tmp_path / "plan.csv", index=False)
    back = pd.read_csv(tmp_path / "plan.csv", dtype={"policy_version": str})
    with pytest.raises(ValueError, match="pass policy="):
        write_reports(back, tmp_path / "pages", cohort=cohort)
    with pytest.raises(ValueError, match="is not the policy in results"):
        write_reports(back, tmp_path / "pages", cohort=cohort, policy="wisdom")
    pages = write_reports(back, tmp_path / "pages", cohort=cohort, policy="mypebs", date="2026-11-21")
    assert "MyPeBS trial (NCT03672331)" in pages[0].read_text(encoding="utf-8")


@pytest.mark.parametrize("bad", ["2026-13-45", "2026-02-30", "21/11/2026", "2026-11-21\n"])
def test_report_date_must_be_a_real_date(example, tmp_path, bad):
    cohort, _, out = example
    with pytest.raises(ValueError, match="date"):
        write_reports(out.iloc[:1], tmp_path / "pages", cohort=cohort.iloc[:1], date=bad)
    assert not (tmp_path / "pages").exists()


@pytest.mark.parametrize("woman", [r"$\nosuchcmd{$", r"$\frac{1}{0}$"])
def test_ids_with_dollar_signs_are_printed_not_typeset_in_the_pdf(tmp_path, woman):
    """An id ``$\\nosuchcmd{$`` once aborted the PDF (matplotlib's math parser); ``$\\frac{1}{0}$`` was typeset."""
    cohort = pd.read_csv(EXAMPLE).iloc[:1].assign(id=[woman])
    scored = riskmodel.predict_risk(cohort)
    paths = write_reports(add_recommendations(scored, cohort, "mypebs"), tmp_path, cohort=cohort, pdf=True,
                          date="2026-11-21")
    assert [p.suffix for p in paths] == [".html", ".pdf"]
    pdf = paths[1].read_bytes()  # drawn as text: its $, \ and { are glyphs of the page's font, not math
    assert all(glyph in pdf for glyph in (b"/dollar", b"/backslash", b"/braceleft"))
    assert woman in paths[0].read_text(encoding="utf-8")


def test_a_failing_page_leaves_no_folder_or_partial_file(example, tmp_path, monkeypatch):
    from riskmodel.screening import report

    cohort, _, out = example
    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(*args, **kwargs)

    original = report._write_pdf
    monkeypatch.setattr(report, "_write_pdf", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        write_reports(out.iloc[:3], tmp_path / "pages", cohort=cohort.iloc[:3], pdf=True, date="2026-11-21")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- issue 20: the report a clinician reads


def _page_for(policy: str, woman: str, **cohort_changes) -> str:
    cohort = pd.read_csv(EXAMPLE).assign(**cohort_changes)
    scored = riskmodel.predict_risk(cohort)
    out = add_recommendations(scored, cohort, policy)
    i = int(np.flatnonzero(cohort["id"] == woman)[0])
    return render_report(out.iloc[i], risk_curves(scored, cohort)[i], date="2026-11-21", answers=cohort.iloc[i])


def _flags(page: str) -> list[str]:
    return re.findall(r'<li class="flag">([^<]*)</li>', page)


def test_her_answers_are_echoed_in_plain_language():
    page = _page_for("mypebs", "W002")
    answers = re.search(r'<table class="facts answers">(.*?)</table>', page, re.S)[1]
    got = _facts(answers)
    assert got["Age"] == "47.3 years" and got["Race/ethnicity"] == "White"
    assert got["First live birth"] == "none (no live birth)" and got["Atypical hyperplasia on a biopsy"] == "yes"
    assert got["Breast density (BI-RADS)"] == "c: heterogeneously dense" and got["BRCA1/2 test"] == "not given"
    assert got["Mother, sisters or daughters with breast cancer"] == "2" and got["Breast biopsies"] == "2"


def test_five_year_and_lifetime_lines_and_which_decided():
    cohort = pd.read_csv(EXAMPLE)
    i = int(np.flatnonzero(cohort["id"] == "W002")[0])
    lifetime = riskmodel.predict_risk(cohort, horizon="lifetime")["risk"].iat[i]
    acr = _facts(_page_for("acr2023", "W002"))
    assert acr["Lifetime risk (to age 90)"] == f"{lifetime * 100:.2f}% (this decided the recommendation)"
    assert acr["Risk"] == "13.17% over 5 years"
    mypebs = _facts(_page_for("mypebs", "W002"))
    assert mypebs["Lifetime risk (to age 90)"] == f"{lifetime * 100:.2f}%"  # shown even when it did not decide


def test_category_and_policy_are_labels_and_why_is_plain_language():
    page = _page_for("mypebs", "W020")
    facts = _facts(page)
    assert facts["Category"] == "High risk (five-year 1.67% to &lt; 6%)"
    assert facts["Policy"] == "MyPeBS risk-stratified screening, version 2019.1"
    why = re.search(r"<strong>Why:</strong>(.*?)</div>", page, re.S)[1]
    assert "her five-year risk, 2.03%, is at or above 1.67% and below 6%" in why
    assert "Source: MyPeBS trial (NCT03672331)" in why
    assert not re.search(r"is in [\[(]", page) and "[1.67%, 6%)" not in page


def test_every_caveat_is_on_the_page():
    page = _page_for("mypebs", "W020")
    caveats = re.findall(r'<li class="caveat">([^<]*)</li>', page)
    assert any(c.startswith("BRCA unknown: carrier rule not applied") for c in caveats)
    assert any(c.startswith("Not verified against the primary source") for c in caveats)


def test_a_brca1_carrier_outside_the_policy_is_flagged_at_the_top_without_a_reassuring_chart():
    page = _page_for("mypebs", "W012")
    flags = _flags(page)
    assert flags and "Outside this guideline&#x27;s scope" in flags[0] and "BRCA1" in flags[0]
    assert "Refer her for high-risk assessment" in flags[0]
    assert page.index('class="flag"') < page.index('<table class="facts">')
    assert "<svg" not in page and "Category</th><td>none" not in page


def test_acr_with_a_gail_lifetime_risk_is_flagged_at_the_top():
    page = _page_for("acr2023", "W002")
    flags = _flags(page)
    assert len(flags) == 1 and flags[0].startswith("Not accepted by this guideline: ACR 2023 asks for lifetime risk")
    assert page.index('class="flag"') < page.index("<th>Recommendation</th>")
    assert "Caveat:" not in re.search(r"<strong>Why:</strong>(.*?)</div>", page, re.S)[1]


def test_a_short_version_for_her():
    page = _page_for("mypebs", "W020")
    forher = re.search(r'<div class="forher">(.*?)</div>', page, re.S)[1]
    assert "Your estimated chance of being diagnosed with breast cancer in the next 5 years is 2.0%" in forher
    assert "every 12 months" in forher and "not a diagnosis" in forher


def test_everything_rendered_is_escaped():
    page = _page_for("mypebs", "<b>x1</b>", id=[f"<b>x{i}</b>" for i in range(20)],
                     race=["white", "<i>white</i>"] + ["white"] * 18)
    assert "<b>" not in page and "<i>" not in page and "&lt;i&gt;white&lt;/i&gt;" in page


def test_a_days_list_gets_an_index_and_one_combined_pdf(example, tmp_path):
    cohort, _, out = example
    paths = write_reports(out.iloc[:3], tmp_path / "day", cohort=cohort.iloc[:3], pdf=True, date="2026-11-21",
                          index=True)
    assert [p.name for p in paths[-2:]] == ["index.html", "reports.pdf"]
    index = paths[-2].read_text(encoding="utf-8")
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', index)
    assert links == [("W001.html", "W001"), ("W002.html", "W002"), ("W003.html", "W003")]
    pdf = paths[-1].read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 7
    # an id that would overwrite the index falls back to row numbers
    named = write_reports(out.iloc[:2], tmp_path / "x", cohort=cohort.iloc[:2].assign(id=["index", "W2"]),
                          index=True, date="2026-11-21")
    assert [p.name for p in named] == ["row00000.html", "row00001.html", "index.html"]


def _explanations_folder(tmp_path, exam_id: str):
    """A folder laid out as ``riskmodel explain --out`` writes it, for one exam with two overlays."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = tmp_path / "explain"
    (out / "E1").mkdir(parents=True)
    for slot in ("L_CC", "R_CC"):
        plt.imsave(out / "E1" / f"{slot}_gradcam.png", np.random.default_rng(0).random((8, 6)))
    summary = {"exams": [{"exam_id": exam_id, "status": "ok", "folder": "E1", "views": ["L_CC", "R_CC"],
                          "files": ["E1/L_CC_gradcam.png", "E1/R_CC_gradcam.png"]}]}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def test_a_page_shows_the_saliency_overlays_of_her_explained_exam(tmp_path):
    import riskmodel

    cohort = pd.DataFrame({"id": ["A1", "B2"], "age": [52.0, 60.0], "race": ["white", "white"],
                           "exam_id": ["0007", "0008"]})
    risks = riskmodel.predict_risk(cohort)
    recs = riskmodel.recommend_screening(risks, "uspstf2024", cohort=cohort)
    folder = _explanations_folder(tmp_path, "0007")
    written = write_reports(recs, tmp_path / "pages", risks=risks, cohort=cohort, explanations=folder)
    first, second = (p.read_text() for p in written)
    assert first.count('src="data:image/png;base64,') == 2 and "Where the image model looked" in first
    assert "data:image/png" not in second  # exam 0008 was not explained
    plain = write_reports(recs, tmp_path / "plain", risks=risks, cohort=cohort)
    assert "data:image/png" not in plain[0].read_text()


def test_recommend_explanations_needs_a_folder_explain_wrote(tmp_path):
    from riskmodel.cli import main

    pd.DataFrame({"id": ["A1"], "age": [52.0], "risk": [0.02]}).to_csv(tmp_path / "r.csv", index=False)
    code = main(["recommend", str(tmp_path / "r.csv"), "--report", str(tmp_path / "rep"), "--explanations",
                 str(tmp_path)])
    assert code == 2 and not (tmp_path / "rep").exists()


def test_a_placed_brca1_carrier_gets_no_average_only_chart_and_no_false_decided_line(example_cohort_path):
    import riskmodel

    cohort = pd.read_csv(example_cohort_path, dtype={"id": str})
    carrier = cohort[cohort["brca"].astype(str).str.upper() == "BRCA1"].head(1)
    risks = riskmodel.predict_risk(carrier)
    recs = add_recommendations(risks, carrier, "acr2023")
    page = render_report(recs.iloc[0], answers=carrier.iloc[0])
    assert recs["recommendation_status"].iat[0] == "ok"  # ACR places carriers whatever their risk
    assert "<svg" not in page and "No chart" in page
    assert "not available (no valid risk for this row) (this decided" not in page
