"""HTTP-level tests of ``riskmodel serve`` (riskmodel.serve) with FastAPI's test client: every route, the
JSON contract against predict_risk, field errors, escaping, the token rule, the size limit, the headers."""

from __future__ import annotations

import io
import json
import re
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

import riskmodel
from riskmodel.serve import check_binding, create_app
from riskmodel.serve.assess import FORM_FIELDS

WOMAN = {"id": "A1", "age": "52", "race": "white", "age_at_menarche": "12", "age_at_first_birth": "28",
         "nulliparous": "false", "first_degree_relatives": "1", "n_biopsies": "1", "atypical_hyperplasia": "0"}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app())


def expected(values: dict[str, str], **kw) -> pd.DataFrame:
    """predict_risk for the same inputs, given as the same text cells."""
    frame = pd.DataFrame({k: [values.get(k, "")] for k in FORM_FIELDS}, dtype=object)
    return riskmodel.predict_risk(frame, **kw)


def test_form_lists_every_canonical_field_and_health(client):
    r = client.get("/")
    assert r.status_code == 200
    for name in FORM_FIELDS:
        assert f'name="{name}"' in r.text
    assert client.get("/health").status_code == 200
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/clinic").status_code == 200


def test_result_page_shows_five_year_risk_with_two_decimals(client):
    r = client.post("/assess", data=WOMAN)
    assert r.status_code == 200
    risk = float(expected(WOMAN)["risk"].iat[0])
    assert re.search(r'id="risk5">([^<]*)<', r.text).group(1) == f"{risk * 100:.2f}%"
    lifetime = float(expected(WOMAN, horizon="lifetime")["risk"].iat[0])
    assert f"{lifetime * 100:.2f}%" in r.text
    assert "BCSC v2" in r.text and "USPSTF 2024 breast cancer screening" in r.text  # policy label, not id
    assert 'id="answers"' in r.text and "Age at first live birth (years)" in r.text


def test_json_contract_equals_predict_risk_and_recommend_screening(client):
    r = client.post("/assess", data=WOMAN | {"policy": "mypebs"}, headers={"accept": "application/json"})
    assert r.status_code == 200
    body = r.json()
    risks = expected(WOMAN)
    assert body["risk"] == {c: (risks[c].iat[0] if c != "horizon" else float(risks[c].iat[0]))
                            for c in ("risk", "status", "message", "model", "horizon")}
    cohort = pd.DataFrame({k: [WOMAN.get(k, "")] for k in FORM_FIELDS}, dtype=object)
    rec = riskmodel.recommend_screening(risks, "mypebs", cohort=cohort).iloc[0]
    assert body["recommendation"]["category"] == rec["category"]
    assert body["recommendation"]["interval_months"] == rec["interval_months"]
    assert body["recommendation"]["rationale"] == rec["rationale"]
    assert body["recommendation"]["policy"] == "mypebs"


def test_field_errors_are_shown_beside_the_field(client):
    r = client.post("/assess", data=WOMAN | {"age": "abc", "race": "martian"})
    assert r.status_code == 422
    assert re.search(r'id="age-error">age=&#39;abc&#39;: not a number<', r.text)
    assert 'id="race-error">race=&#39;martian&#39;' in r.text
    j = client.post("/assess", data=WOMAN | {"age_at_first_birth": "9"}, headers={"accept": "application/json"})
    assert j.status_code == 422 and "age_at_first_birth" in j.json()["errors"]


def test_every_value_is_escaped(client):
    r = client.post("/assess", data=WOMAN | {"id": "<script>alert(1)</script>"})
    assert r.status_code == 200
    assert "<script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text


def test_gail_lifetime_under_acr_is_flagged_at_the_top(client):
    r = client.post("/assess", data=WOMAN | {"policy": "acr2023"})
    flag = r.text.find('id="not-accepted"')
    assert 0 < flag < r.text.find("<h1>") and "not the Gail model" in r.text
    assert 'id="not-accepted"' not in client.post("/assess", data=WOMAN).text


def test_security_headers_on_every_response(client):
    for r in (client.get("/"), client.post("/assess", data=WOMAN), client.get("/health")):
        assert r.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"


def test_downloads_report_pdf_and_fhir(client):
    page = client.post("/assess", data=WOMAN).text
    base = re.search(r'href="(/download/[^/"]+/)report.html"', page).group(1)
    html = client.get(base + "report.html")
    assert html.status_code == 200 and "attachment" in html.headers["content-disposition"]
    assert client.get(base + "report.pdf").content.startswith(b"%PDF")
    bundle = client.get(base + "fhir.json").json()
    assert bundle["entry"][0]["resource"]["resourceType"] == "RiskAssessment"
    assert client.get(base + "nothing.txt").status_code == 404
    assert client.get("/download/guess/report.html").status_code == 404


def test_clinic_list_table_and_downloads(client, example_cohort_path):
    data = example_cohort_path.read_bytes()
    n = len(pd.read_csv(example_cohort_path))
    r = client.post("/clinic", files={"list": ("day.csv", data, "text/csv")}, data={"policy": "uspstf2024"})
    assert r.status_code == 200
    assert r.text.count("<tr") - 1 == n  # header row + one per woman
    base = re.search(r'href="(/download/[^/"]+/)recommendations.csv"', r.text).group(1)
    table = pd.read_csv(io.BytesIO(client.get(base + "recommendations.csv").content))
    assert len(table) == n
    z = zipfile.ZipFile(io.BytesIO(client.get(base + "reports.zip").content))
    assert "index.html" in z.namelist() and len([m for m in z.namelist() if m.endswith(".html")]) == n + 1
    lines = client.get(base + "fhir.ndjson").text.splitlines()
    assert len(lines) == n and all(json.loads(x)["resourceType"] == "RiskAssessment" for x in lines)
    bad = client.post("/clinic", files={"list": ("day.xlsx", b"x", "application/octet-stream")})
    assert bad.status_code == 422 and "use a .csv" in bad.text


def test_token_is_required_on_every_request():
    c = TestClient(create_app(token="s3cret"))
    for path in ("/", "/health", "/static/style.css", "/clinic"):
        assert c.get(path).status_code == 401
    assert c.post("/assess", data=WOMAN).status_code == 401
    assert c.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
    r = c.get("/?token=s3cret", follow_redirects=False)  # a browser: the cookie is set, the token leaves the URL
    assert r.status_code == 303 and r.headers["location"] == "/" and "httponly" in r.headers["set-cookie"].lower()
    assert c.get("/health").status_code == 200  # the cookie now travels


def test_non_loopback_address_needs_a_token(monkeypatch):
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    with pytest.raises(ValueError, match="needs an access token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "t")
    from riskmodel.cli import main

    monkeypatch.delenv("RISKMODEL_SERVE_TOKEN", raising=False)
    assert main(["serve", "--host", "192.168.1.5"]) == 2


def test_request_size_limit():
    c = TestClient(create_app(max_body_bytes=1000))
    r = c.post("/clinic", files={"list": ("day.csv", b"age\n" + b"50\n" * 1000, "text/csv")})
    assert r.status_code == 413 and r.headers["cache-control"] == "no-store"
    assert c.post("/assess", data=WOMAN).status_code == 200


def test_cli_start_imports_neither_fastapi_nor_torch():
    import subprocess

    code = "import sys, riskmodel.cli; print(sorted(m for m in ('fastapi', 'torch', 'uvicorn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_with_an_image_bundle_her_four_views_give_that_models_risks(tmp_path):
    """``--bundle``: the four uploaded views are scored by the server's image model, as predict_risk scores them."""
    import torch
    from imaging_fixtures import write_exam

    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.inference import save_image_model
    from riskmodel.nn import ImageRiskModel, tiny_config

    views = ["L-CC", "L-MLO", "R-CC", "R-MLO"]
    torch.manual_seed(0)
    bundle = save_image_model(tmp_path / "bundle", ImageRiskModel(tiny_config(image_size=(64, 52))),
                              preprocessing={"image_size": [64, 52], "view_order": views})
    files = write_exam(tmp_path / "exam", patient_id="P1", study_uid="1.2.826.0.1.3680043.10.9.1", views=views,
                       accession="A001")
    c = TestClient(create_app(bundle=str(bundle)))
    uploads = [("views", (Path(p).name, Path(p).read_bytes(), "application/dicom")) for p in files.values()]
    r = c.post("/assess", data=WOMAN, files=uploads, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    shown = r.json()["image_model"]
    exams = assemble_exams(scan_dicoms(str(tmp_path / "exam")))
    cohort = pd.DataFrame({k: [WOMAN.get(k, "")] for k in FORM_FIELDS}, dtype=object).assign(
        exam_id=[str(exams["exam_id"].iat[0])])
    direct = riskmodel.predict_risk(cohort, str(bundle), exams=exams).iloc[0]
    assert shown["status"] == "ok" and shown["risks"] == pytest.approx([direct[f"risk_{y}y"] for y in range(1, 6)])
    page = c.post("/assess", data=WOMAN, files=uploads).text
    assert f"{direct['risk_5y'] * 100:.2f}%" in page


def test_why_is_in_plain_language_not_interval_notation(client):
    page = client.post("/assess", data=WOMAN | {"age": "47", "n_biopsies": "2", "first_degree_relatives": "1"}).text
    why = re.search(r'<dd id="rationale">(.*?)</dd>', page, re.S).group(1)
    assert "is in [" not in page and "from 40 to under 75" in why
