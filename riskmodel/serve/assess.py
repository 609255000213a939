"""What the clinic server computes, without any web framework: one woman or a list → risks,
recommendations, the averages beside them, and the files to download.

Everything goes through the public functions a Python user calls (:func:`riskmodel.predict_risk`,
:func:`riskmodel.screening.add_recommendations`, :func:`~riskmodel.screening.render_report`,
:func:`~riskmodel.screening.write_reports`, :func:`~riskmodel.screening.risk_assessments`), so the
pages and files say what the library says. Nothing here writes outside a temporary folder that is
removed before the function returns.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.api import predict_risk
from riskmodel.models.core import OUTPUT_COLUMNS
from riskmodel.schema import COLUMNS, SchemaError, validate
from riskmodel.screening import add_recommendations, average_risk_curve, risk_assessments, write_reports
from riskmodel.screening.fhir import fhir_text
from riskmodel.screening.policy import MODALITIES, SUPPLEMENTAL, Policy
from riskmodel.screening.recommend import RECOMMENDATION_COLUMNS, clinic_table
from riskmodel.screening.report import render_report, risk_curves
from riskmodel.screening.wording import plain_caveat, plain_rationale

__all__ = ["DOWNLOADS", "FIELD_LABELS", "FORM_FIELDS", "Assessment", "assess_list", "assess_woman", "field_errors",
           "files_for", "json_cell", "summary"]

#: The form's fields: the canonical schema columns a clinic enters for one woman, in form order.
FORM_FIELDS: tuple[str, ...] = ("id", "age", "race", "age_at_menarche", "age_at_first_birth", "nulliparous",
                                "first_degree_relatives", "n_biopsies", "atypical_hyperplasia", "density", "brca",
                                "prs", "prior_breast_cancer", "prior_dcis_or_lcis", "chest_radiation")
#: Plain-language label of each field (the form's and the echo of her answers).
FIELD_LABELS = {"id": "Identifier", "age": "Age (years)", "race": "Race / ethnicity",
                "age_at_menarche": "Age at first menstrual period (years)",
                "age_at_first_birth": "Age at first live birth (years)", "nulliparous": "No live birth (nulliparous)",
                "first_degree_relatives": "First-degree relatives with breast cancer", "n_biopsies": "Breast biopsies",
                "atypical_hyperplasia": "Atypical hyperplasia on a biopsy (0 no, 1 yes)",
                "density": "BI-RADS breast density", "brca": "BRCA status", "prs": "Polygenic risk score (SD)",
                "prior_breast_cancer": "Personal history of breast cancer",
                "prior_dcis_or_lcis": "History of DCIS or LCIS", "chest_radiation": "Chest radiation"}
#: Statuses that mean a value was typed wrong: the form is shown again with the error beside the field.
FORM_ERRORS = ("invalid", "inconsistent")
#: recommend_screening's status/message as add_recommendations names them.
_RENAMED = {"status": "recommendation_status", "message": "recommendation_message"}
_NAMED = re.compile(r"^\s*([a-z_]+)=")


def json_cell(v: Any) -> Any:
    """A table cell as JSON holds it: NaN/NA → ``None``, numpy scalars → Python numbers."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return json_cell(v.item())
    return v


def form_frame(values: dict[str, str]) -> pd.DataFrame:
    """One row of text in the canonical columns (an empty field is unknown, as in a CSV cell)."""
    return pd.DataFrame({name: [str(values.get(name, "")).strip()] for name in FORM_FIELDS}, dtype=object)


def field_errors(frame: pd.DataFrame) -> dict[str, str]:
    """``{column: message}`` for the first row's typing errors (statuses :data:`FORM_ERRORS`), by the schema's
    own rules; a message naming two columns (``age_at_first_birth=20 is after age=12``) goes to the first.
    A value the schema rejects for the whole column (``age='abc'``: no number in the column) is that field's
    error; the field is then read as unknown to find the errors in the other fields."""
    out: dict[str, str] = {}
    frame = frame.copy()
    for _ in range(len(frame.columns) + 1):
        try:
            checked = validate(frame)
            break
        except SchemaError as exc:
            out[exc.column] = f"{exc.column}={frame[exc.column].iat[0]!r}: not a number"
            frame[exc.column] = ""
    typed_wrong = checked.status[0] in FORM_ERRORS
    if not typed_wrong and not out:
        return out
    for part in str(checked.message[0]).split("; "):
        m = _NAMED.match(part)
        if not (m and m.group(1) in COLUMNS) and not typed_wrong:
            continue  # e.g. "age unknown" after a rejected age: that field already has its error
        name = m.group(1) if m and m.group(1) in COLUMNS else "id"
        out[name] = f"{out[name]}; {part}" if name in out else part
    return out


@dataclass
class Assessment:
    """The result for one table: ``table`` is :func:`~riskmodel.screening.clinic_table`'s (risks,
    recommendations, ``id``/``age``/``race``), ``policy`` the applied policy's citation."""

    table: pd.DataFrame
    policy: dict[str, str]
    cohort: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)

    def risk_row(self, i: int = 0) -> dict[str, Any]:
        """Row ``i`` of ``predict_risk``'s output (``risk``, ``status``, ``message``, ``model``, ``horizon``)."""
        row = self.table.iloc[i]
        return {c: json_cell(row[c]) for c in ("risk", "status", "message", "model", "horizon")}

    def recommendation_row(self, i: int = 0) -> dict[str, Any]:
        """Row ``i`` of ``recommend_screening``'s output (its columns :data:`RECOMMENDATION_COLUMNS`)."""
        row = self.table.iloc[i]
        return {c: json_cell(row[_RENAMED.get(c, c)]) for c in RECOMMENDATION_COLUMNS}


def _score(cohort: pd.DataFrame, policy: Policy) -> Assessment:
    """Gail risks (5 years and lifetime) and the policy's recommendations for every row of ``cohort``."""
    n = len(cohort)
    # Five-year and lifetime risk in one call: every woman twice, with a horizon per row.
    both = predict_risk(pd.concat([cohort, cohort], ignore_index=True), horizon=[5.0] * n + ["lifetime"] * n,
                        details=True)
    risks = both.iloc[:n][list(OUTPUT_COLUMNS)].set_axis(cohort.index).astype({"horizon": np.float64})
    lifetime = both.iloc[n:].set_axis(cohort.index)
    typed = validate(cohort).frame  # numbers and codes, as the report and FHIR read them (same index and rows)
    recs = add_recommendations(risks, typed, policy)
    table, pol = clinic_table(recs, cohort=typed)
    table["risk_lifetime"] = lifetime["risk"].where(lifetime["status"] == "ok")
    table["average_lifetime"] = lifetime["average_risk"].where(lifetime["status"] == "ok")
    return Assessment(table, pol, typed)


def assess_woman(values: dict[str, str], policy: Policy) -> tuple[Assessment | None, dict[str, str]]:
    """One woman from the form: ``(assessment, {})``, or ``(None, errors by field)`` when a value is mistyped."""
    frame = form_frame(values)
    errors = field_errors(frame)
    if errors:
        return None, errors
    return _score(frame, policy), {}


def assess_list(data: pd.DataFrame, policy: Policy) -> Assessment:
    """A day's list (canonical columns; rows kept in order, each with its own status)."""
    return _score(data, policy)


def summary(a: Assessment, policy: Policy, i: int = 0) -> dict[str, Any]:
    """What the result page shows for row ``i``, as plain values (the template escapes them)."""
    row = a.table.iloc[i]
    age = json_cell(row.get("age"))
    age_f = float(age) if age is not None and _is_number(age) else math.nan
    race = float(a.cohort["race"].iat[i]) if "race" in a.cohort else math.nan
    avg = average_risk_curve(age_f, None if math.isnan(race) else race) if not math.isnan(age_f) else None
    cat_id = json_cell(row.get("category")) or ""
    category = policy.category(cat_id).label if cat_id else ""
    model = json_cell(row.get("model")) or ""
    caveat = dict(policy.model_caveats).get(model) if row.get("recommendation_status") == "ok" else None
    interval = json_cell(row.get("interval_months"))
    why = plain_rationale(str(json_cell(row.get("rationale")) or ""))
    return {
        "risk5": _pct(row.get("risk")) if row.get("status") == "ok" else None,
        "risk_lifetime": _pct(row.get("risk_lifetime")),
        "average5": _pct(avg[-1]) if avg is not None else None,
        "average_lifetime": _pct(row.get("average_lifetime")),
        "status": row.get("status"), "message": json_cell(row.get("message")) or "",
        "model": model,
        "category": category,
        "modality": MODALITIES.get(str(row.get("modality") or ""), ""),
        "supplemental": SUPPLEMENTAL.get(str(row.get("supplemental") or ""), "") if row.get("supplemental") else "",
        "interval": f"every {interval:g} months" if interval is not None else "",
        "rationale": why.why,
        "medication": why.medication,
        "recommendation_status": row.get("recommendation_status"),
        "caveats": [plain_caveat(c) for c in str(json_cell(row.get("recommendation_message")) or "").split("; ")
                    if c.strip()],
        "not_accepted": caveat,
    }


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _pct(p: Any) -> str | None:
    """A probability as a percentage with two decimals (``0.0286`` → ``"2.86%"``); ``None`` if unknown."""
    v = json_cell(p)
    return None if v is None or not _is_number(v) or math.isnan(float(v)) else f"{float(v) * 100:.2f}%"


def files_for(a: Assessment, kind: str, *, date: str | None = None) -> tuple[bytes, str, str]:
    """One download: ``(content, media type, file name)`` for ``kind`` in :data:`DOWNLOADS`."""
    if kind == "report.html":
        row = a.table.iloc[0]
        curve = risk_curves(a.table.iloc[[0]], a.cohort.iloc[[0]])[0]
        return render_report(row, curve, date=date, policy=a.policy).encode(), "text/html", "report.html"
    if kind in ("fhir.json", "fhir.ndjson"):
        resources = risk_assessments(a.table, occurrence=date)
        media = "application/fhir+json" if kind == "fhir.json" else "application/fhir+ndjson"
        return fhir_text(resources, kind).encode(), media, kind
    if kind == "recommendations.csv":
        return a.table.to_csv(index=False).encode(), "text/csv", kind
    if kind in ("report.pdf", "reports.zip"):
        with tempfile.TemporaryDirectory(prefix="riskmodel-serve-") as tmp:  # removed on leaving the block
            folder = Path(tmp) / "reports"
            paths = write_reports(a.table, folder, pdf=kind == "report.pdf", date=date, policy=a.policy)
            if kind == "report.pdf":
                return next(p for p in paths if p.suffix == ".pdf").read_bytes(), "application/pdf", kind
            return _zip([p for p in paths if p.suffix == ".html"], a), "application/zip", kind
    raise KeyError(kind)


#: The downloads offered: name → what it is.
DOWNLOADS = {"report.html": "printable report (HTML)", "report.pdf": "printable report (PDF)",
             "fhir.json": "FHIR RiskAssessment (JSON Bundle)", "recommendations.csv": "recommendations table (CSV)",
             "reports.zip": "one report per woman with an index page (ZIP)",
             "fhir.ndjson": "FHIR RiskAssessment, one per line (NDJSON)"}


def _zip(pages: list[Path], a: Assessment) -> bytes:
    """Every file of the reports folder in a ZIP held in memory, with ``index.html`` (one link per woman, in
    list order) unless the folder already has one. ``pages``: the HTML reports in row order."""
    buf = io.BytesIO()
    folder = pages[0].parent if pages else None
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder is not None else []
        for name in names:
            z.write(folder / name, name)
        if "index.html" not in names:
            z.writestr("index.html", _index(a, [p.name for p in pages]))
    return buf.getvalue()


def _index(a: Assessment, pages: list[str]) -> str:
    """A plain index page: one line per woman in list order, linking her report."""
    import html

    lines = []
    for (_, row), page in zip(a.table.iterrows(), pages, strict=True):
        who = html.escape(str(json_cell(row.get("id")) or page))
        risk = _pct(row.get("risk")) if row.get("status") == "ok" else f"not scored ({row.get('status')})"
        lines.append(f'<li><a href="{html.escape(page)}">{who}</a>: five-year risk {html.escape(str(risk))}</li>')
    return ("<!doctype html><meta charset='utf-8'><title>Reports</title><h1>Reports</h1><ol>"
            + "".join(lines) + "</ol>\n")
