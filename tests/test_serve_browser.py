"""``riskmodel serve`` driven in Debian's Chromium through Playwright, as a clinic would use it.

The server runs on a free loopback port in a thread. Screenshots of the form, a result and a list go
to ``$RISKMODEL_SCREENSHOTS`` (default: a pytest temporary folder), kept out of git.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("playwright")
pytest.importorskip("uvicorn")

from conftest import require_executable

import riskmodel
from riskmodel.serve import create_app
from riskmodel.serve.assess import FORM_FIELDS

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, access_log=False,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    chromium = require_executable("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
        yield context.new_page()
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("RISKMODEL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


ANSWERS = {"id": "W-17", "age": "47", "age_at_menarche": "11", "age_at_first_birth": "31",
           "first_degree_relatives": "1", "n_biopsies": "2"}
CHOICES = {"race": "white", "nulliparous": "false", "atypical_hyperplasia": "0", "brca": "negative"}


def test_one_woman_result_and_downloads(server, page, shots, tmp_path):
    page.goto(server + "/")
    for name, value in ANSWERS.items():
        page.fill(f"#{name}", value)
    for name, value in CHOICES.items():
        page.select_option(f"#{name}", value)
    page.screenshot(path=str(shots / "form.png"), full_page=True)
    page.click("button[type=submit]")
    shown = page.inner_text("#risk5")
    frame = pd.DataFrame({k: [(ANSWERS | CHOICES).get(k, "")] for k in FORM_FIELDS}, dtype=object)
    assert shown == f"{float(riskmodel.predict_risk(frame)['risk'].iat[0]) * 100:.2f}%"
    page.screenshot(path=str(shots / "result.png"), full_page=True)

    with page.expect_download() as d:
        page.click("text=printable report (HTML)")
    report = tmp_path / "report.html"
    d.value.save_as(report)
    assert "W-17" in report.read_text()
    with page.expect_download() as d:
        page.click("text=FHIR RiskAssessment (JSON Bundle)")
    fhir = tmp_path / "fhir.json"
    d.value.save_as(fhir)
    from fhir.resources.bundle import Bundle

    bundle = Bundle.model_validate(json.loads(fhir.read_text()))
    assessment = bundle.entry[0].resource
    assert assessment.get_resource_type() == "RiskAssessment"


def test_validation_error_beside_the_field(server, page, shots):
    page.goto(server + "/")
    page.fill("#age", "forty")
    page.select_option("#race", "white")
    page.click("button[type=submit]")
    error = page.locator(".field.bad #age ~ .error")
    assert "not a number" in error.inner_text()
    page.screenshot(path=str(shots / "form_error.png"), full_page=True)


def test_clinic_list_row_count(server, page, shots, example_cohort_path):
    page.goto(server + "/clinic")
    page.set_input_files("#list", str(example_cohort_path))
    page.click("button[type=submit]")
    n = len(pd.read_csv(example_cohort_path))
    assert page.locator("#list-table tbody tr").count() == n
    assert re.search(rf"^{n} women", page.inner_text("h2"))
    page.screenshot(path=str(shots / "clinic.png"), full_page=True)
