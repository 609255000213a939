"""Each woman's risk and recommendation as an HL7 FHIR R4 ``RiskAssessment`` resource (plain JSON).

Clinic systems take risk results as FHIR resources. :func:`risk_assessments` builds one
``RiskAssessment`` per row, as a plain ``dict`` (no FHIR library is needed at run time);
:func:`fhir_bundle` wraps them in a ``Bundle`` of type ``collection``; :func:`write_fhir` writes
NDJSON (one resource per line, the FHIR bulk-data format) or a JSON Bundle.

Mapping (R4 ``RiskAssessment``):

* ``status``: ``final`` for a scored row; ``cannot-be-obtained`` is not an R4 code, so a row without
  a risk is ``cancelled`` (ObservationStatus: "the observation is unavailable") with the reason in
  ``note``;
* ``subject``: ``Patient/<id>`` when the row's ``id`` is a valid FHIR id, else a logical reference
  by ``identifier``;
* ``occurrenceDateTime``: when the assessment was made (default: now, UTC);
* ``method``: the model (text); ``code``: text "Breast cancer risk assessment";
* ``prediction[]``: outcome SNOMED CT 254837009 "Malignant neoplasm of breast";
  ``probabilityDecimal`` is the **probability in [0, 1]** (as in the specification's own breast
  cancer example, where 0.0168 % is written 0.000168; R4's invariant ras-2 only bounds it by 100);
  ``whenRange`` is her age range in years (UCUM ``a``): from her age to age + horizon. One
  prediction for the scored horizon, one per ``risk_1y`` … ``risk_5y`` column, and one for the
  policy's measure when it is another horizon (e.g. lifetime);
* ``mitigation``: the chemoprevention discussion, when flagged;
* ``note``: the screening recommendation, its rationale, and the statement that it supports, not
  replaces, a clinician's decision.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from riskmodel.screening.policy import MODALITIES, SUPPLEMENTAL

__all__ = ["BREAST_CANCER", "SUPPORT_NOT_REPLACE", "fhir_bundle", "risk_assessments", "write_fhir"]

#: The outcome predicted: SNOMED CT 254837009 (the code and display used for breast cancer by several
#: published FHIR implementation guides; not checked against a SNOMED CT release here).
BREAST_CANCER = {
    "coding": [{"system": "http://snomed.info/sct", "code": "254837009", "display": "Malignant neoplasm of breast"}],
    "text": "Invasive breast cancer",
}
SUPPORT_NOT_REPLACE = "This output supports, and does not replace, a clinician's decision."
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NAMESPACE = uuid.UUID("6f1c3e52-8f0e-4d8a-9a57-2d3c1b9e7a10")  # fixed: the same row gives the same fullUrl
_UCUM = "http://unitsofmeasure.org"


def _value(row: pd.Series, name: str) -> Any:
    v = row.get(name, None)
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return v


def _years(x: float) -> dict[str, Any]:
    return {"value": round(float(x), 4), "unit": "years", "system": _UCUM, "code": "a"}


def _prediction(risk: float, age: float | None, years: float, what: str) -> dict[str, Any]:
    p: dict[str, Any] = {"outcome": BREAST_CANCER, "probabilityDecimal": round(float(risk), 8)}
    if age is not None:
        p["whenRange"] = {"low": _years(age), "high": _years(age + years)}
    p["rationale"] = what
    return p


def _occurrence(occurrence: str | datetime | None) -> str:
    if occurrence is None:
        return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    if isinstance(occurrence, datetime):
        if occurrence.tzinfo is None:
            raise ValueError("occurrence: give a timezone-aware datetime (FHIR dateTime with a time needs one)")
        return occurrence.isoformat()
    text = str(occurrence)
    if not re.fullmatch(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?", text):
        raise ValueError(f"occurrence={text!r}: a FHIR dateTime (YYYY, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)")
    return text


def risk_assessments(results: pd.DataFrame, *, cohort: pd.DataFrame | None = None,
                     occurrence: str | datetime | None = None) -> list[dict[str, Any]]:
    """One FHIR R4 ``RiskAssessment`` (a JSON-ready ``dict``) per row of ``results``.

    Args:
        results: the output of :func:`riskmodel.predict_risk`, optionally with the recommendation
            columns of :func:`riskmodel.screening.add_recommendations`.
        cohort: the table that was scored (same index), for ``id`` and ``age`` when ``results``
            lacks them.
        occurrence: when the assessment was made: a FHIR dateTime text or an aware datetime;
            default now (UTC).

    Returns:
        A list of dicts, in row order.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"id": ["W1"], "age": [50.0], "risk": [0.02], "status": ["ok"], "message": [""],
    ...                      "model": ["gail"], "horizon": [5.0]})
    >>> ra = risk_assessments(rows, occurrence="2026-01-05")[0]
    >>> ra["subject"], ra["prediction"][0]["probabilityDecimal"], ra["prediction"][0]["whenRange"]["high"]["value"]
    ({'reference': 'Patient/W1'}, 0.02, 55.0)
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    table = results.copy()
    if cohort is not None:
        if not cohort.index.equals(results.index):
            raise ValueError("cohort: its index differs from results'; pass the table that was scored")
        for name in ("id", "age"):
            if name not in table.columns and name in cohort.columns:
                table[name] = cohort[name]
    when = _occurrence(occurrence)
    ids = [f"breast-risk-{v}" if v is not None else "" for v in (_value(r, "id") for _, r in table.iterrows())]
    unique = len(set(ids)) == len(ids)
    out = []
    for position, (_, row) in enumerate(table.iterrows()):
        rid = ids[position] if unique and _FHIR_ID.match(ids[position]) else f"breast-risk-row{position}"
        out.append(_one(row, position, rid, when))
    return out


def _one(row: pd.Series, position: int, rid: str, when: str) -> dict[str, Any]:
    wid = _value(row, "id")
    key = str(wid) if wid is not None else f"row{position}"
    subject: dict[str, Any] = ({"reference": f"Patient/{key}"} if wid is not None and _FHIR_ID.match(key)
                               else {"identifier": {"value": key}, "display": key})
    age = _value(row, "age")
    age = float(age) if age is not None else None
    model = _value(row, "model") or "unknown model"
    risk = _value(row, "risk")
    horizon = _value(row, "horizon")
    scored = _value(row, "status") in (None, "ok") and risk is not None
    ra: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": rid,
        "status": "final" if scored else "cancelled",
        "code": {"text": "Breast cancer risk assessment"},
        "subject": subject,
        "occurrenceDateTime": when,
        "method": {"text": f"riskmodel: {model} model"},
    }
    predictions = []
    if scored and horizon is not None:
        lifetime = age is not None and abs(float(horizon) - (90.0 - age)) < 1e-6
        span = "to age 90" if lifetime else f"over {float(horizon):g} years"
        predictions.append(_prediction(float(risk), age, float(horizon),
                                       f"Absolute risk of invasive breast cancer {span} ({model} model)."))
    for k in range(1, 6):
        v = _value(row, f"risk_{k}y")
        if scored and v is not None and not (horizon is not None and float(horizon) == k):
            predictions.append(_prediction(float(v), age, float(k),
                                           f"Absolute risk of invasive breast cancer over {k} years ({model} model)."))
    used, measure = _value(row, "risk_used"), _value(row, "risk_measure")
    if used is not None and measure == "lifetime" and not any(
            p["rationale"].endswith(f"to age 90 ({model} model).") for p in predictions):
        predictions.append(_prediction(float(used), age, 90.0 - age if age is not None else math.nan,
                                       "Lifetime risk (to age 90) used by the screening policy."))
    if predictions:
        ra["prediction"] = predictions
    notes = _notes(row, scored)
    if notes:
        ra["note"] = [{"text": t} for t in notes]
    if str(_value(row, "chemoprevention_discussion")).lower() == "true":
        ra["mitigation"] = ("Discuss risk-reducing medication (tamoxifen, raloxifene or an aromatase inhibitor) "
                            "and its harms.")
    return ra


def _notes(row: pd.Series, scored: bool) -> list[str]:
    notes = []
    if not scored:
        status, message = _value(row, "status") or "no risk", _value(row, "message") or ""
        notes.append(f"No risk could be computed ({status}): {message}".rstrip(": "))
    rec_status = _value(row, "recommendation_status")
    if rec_status is None:
        return notes
    policy = f"{_value(row, 'policy')} {_value(row, 'policy_version')}"
    if rec_status == "ok":
        interval = _value(row, "interval_months")
        modality = MODALITIES.get(str(_value(row, "modality")), str(_value(row, "modality")))
        every = f" every {float(interval):g} months" if interval is not None else ""
        extra = SUPPLEMENTAL.get(str(_value(row, "supplemental") or ""), "")
        plus = f", with supplemental {extra}" if _value(row, "supplemental") else ""
        notes.append(f"Screening recommendation (policy {policy}): category {_value(row, 'category')}; "
                     f"{modality}{every}{plus}. {_value(row, 'rationale')}")
    else:
        notes.append(f"No screening recommendation (policy {policy}, status {rec_status}): "
                     f"{_value(row, 'recommendation_message') or ''}")
    notes.append(SUPPORT_NOT_REPLACE)
    return notes


def fhir_bundle(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A FHIR ``Bundle`` of type ``collection`` holding ``resources``; each entry's ``fullUrl`` is a
    ``urn:uuid`` derived from the resource id and date (the same input gives the same bundle)."""
    entries = []
    for r in resources:
        name = f"{r.get('resourceType')}/{r.get('id')}/{r.get('occurrenceDateTime', '')}"
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}", "resource": r})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write_fhir(resources: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write ``resources`` as NDJSON (``.ndjson``: one resource per line) or as a JSON Bundle (``.json``)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".ndjson", ".json"):
        raise ValueError(f"{p}: use .ndjson (one resource per line) or .json (a Bundle)")
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".ndjson":
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in resources), encoding="utf-8")
    else:
        p.write_text(json.dumps(fhir_bundle(resources), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return p
