"""Each woman's risk and recommendation as an HL7 FHIR R4 ``RiskAssessment`` resource (plain JSON).

Clinic systems take risk results as FHIR resources. :func:`risk_assessments` builds one
``RiskAssessment`` per row, as a plain ``dict`` (no FHIR library is needed at run time);
:func:`fhir_bundle` wraps them in a ``Bundle`` of type ``collection``; :func:`write_fhir` writes
NDJSON (one resource per line, the FHIR bulk-data format) or a JSON Bundle.

Mapping (R4 ``RiskAssessment``):

* ``status``: ``final`` for a row whose risk the library accepts (risk status ``ok``; every
  probability written is a finite number in [0, 1]; a horizon in years > 0; a finite age; a
  recommendation, if any, not ``invalid`` or ``inconsistent``). ``cannot-be-obtained`` is not an R4
  code, so any other row is ``cancelled`` (ObservationStatus: "the observation is unavailable"),
  has no ``prediction`` and says why in ``note``: one resource per row, in row order, always;
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
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.screening.files import write_atomically
from riskmodel.screening.policy import MODALITIES, SUPPLEMENTAL
from riskmodel.screening.recommend import clinic_table

__all__ = ["BREAST_CANCER", "SUPPORT_NOT_REPLACE", "fhir_bundle", "fhir_datetime", "refusals", "risk_assessments",
           "write_fhir"]

#: The outcome predicted: SNOMED CT 254837009 (the code and display used for breast cancer by several
#: published FHIR implementation guides; not checked against a SNOMED CT release here).
BREAST_CANCER = {
    "coding": [{"system": "http://snomed.info/sct", "code": "254837009", "display": "Malignant neoplasm of breast"}],
    "text": "Invasive breast cancer",
}
SUPPORT_NOT_REPLACE = "This output supports, and does not replace, a clinician's decision."
_FHIR_ID = re.compile(r"\A[A-Za-z0-9\-.]{1,64}\Z")  # \Z: a trailing newline is not part of an id
#: FHIR dateTime: YYYY, YYYY-MM, YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss[.fff] with a zone (R4 requires one with a time).
_DATETIME = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})"
                       r"(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2}))?)?)?")
_NAMESPACE = uuid.UUID("6f1c3e52-8f0e-4d8a-9a57-2d3c1b9e7a10")  # fixed: the same row gives the same fullUrl
_UCUM = "http://unitsofmeasure.org"


def _value(row: pd.Series, name: str) -> Any:
    v = row.get(name, None)
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str) and not v.strip():
        return None
    return v


def _number(v: Any) -> float | None:
    """``v`` as a float, or ``None`` unless it is a finite real number or the text of one (a column read
    as text); booleans and complex numbers are not numbers."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    return float(v) if math.isfinite(v) else None


def _years(x: float) -> dict[str, Any]:
    return {"value": round(float(x), 4), "unit": "years", "system": _UCUM, "code": "a"}


def _prediction(risk: float, age: float | None, years: float, what: str) -> dict[str, Any]:
    p: dict[str, Any] = {"outcome": BREAST_CANCER, "probabilityDecimal": round(float(risk), 8)}
    if age is not None:
        p["whenRange"] = {"low": _years(age), "high": _years(age + years)}
    p["rationale"] = what
    return p


def fhir_datetime(value: str | datetime | None) -> str:
    """``value`` as a FHIR dateTime text, checked against the calendar; ``None`` gives now (UTC).

    Accepts ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDThh:mm:ss[.fff]`` with ``Z`` or
    ``±hh:mm``, or a timezone-aware ``datetime``.

    Raises:
        ValueError: not of that form, or not a real date or time (``2026-13-45``, ``2026-02-30``).

    >>> fhir_datetime("2026-11-21"), fhir_datetime("2026-11-21T09:30:00+01:00")
    ('2026-11-21', '2026-11-21T09:30:00+01:00')
    """
    if value is None:
        return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("occurrence: give a timezone-aware datetime (FHIR dateTime with a time needs one)")
        return value.isoformat()
    text = str(value)
    m = _DATETIME.fullmatch(text)
    problem = "not of the form YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+hh:mm"
    if m:
        year, month, day, hour, minute, second, zone = m.groups()
        try:
            if int(year) < 1:
                raise ValueError("year 0000 is not a year")
            date(int(year), int(month or 1), int(day or 1))  # a real month and day of that month
            if hour is not None:
                datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
                if zone != "Z" and not ((int(zone[1:3]) < 14 and int(zone[4:]) < 60) or zone[1:] == "14:00"):
                    raise ValueError(f"time zone {zone} is not between -14:00 and +14:00")
            problem = ""
        except ValueError as exc:
            problem = str(exc)
    if problem:
        raise ValueError(f"date {text!r}: {problem} (a FHIR dateTime: YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss+hh:mm)")
    return text


def risk_assessments(results: pd.DataFrame, *, cohort: pd.DataFrame | None = None,
                     occurrence: str | datetime | None = None,
                     risks: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """One FHIR R4 ``RiskAssessment`` (a JSON-ready ``dict``) per row of ``results``.

    Args:
        results: the output of :func:`riskmodel.screening.add_recommendations`; or of
            :func:`riskmodel.recommend_screening` together with ``risks=``; or of
            :func:`riskmodel.predict_risk` alone (no recommendation). Anything else raises
            ``ValueError`` saying what to pass (:func:`riskmodel.screening.clinic_table`).
        cohort: the table that was scored (same index), for ``id`` and ``age`` when ``results``
            lacks them.
        occurrence: when the assessment was made: a FHIR dateTime text or an aware datetime;
            default now (UTC). Checked against the calendar (:func:`fhir_datetime`).
        risks: the table of risks ``results`` was made from, when ``results`` is the output of
            :func:`riskmodel.recommend_screening` (which holds no risk, model or horizon).

    Returns:
        A list of dicts, in row order.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"id": ["W1"], "age": [50.0], "risk": [0.02], "status": ["ok"], "message": [""],
    ...                      "model": ["gail"], "horizon": [5.0]})
    >>> ra = risk_assessments(rows, occurrence="2026-01-05")[0]
    >>> ra["subject"], ra["prediction"][0]["probabilityDecimal"], ra["prediction"][0]["whenRange"]["high"]["value"]
    ({'reference': 'Patient/W1'}, 0.02, 55.0)
    """
    table, _ = clinic_table(results, risks=risks, cohort=cohort, need_policy=False)
    when = fhir_datetime(occurrence)
    ids = [f"breast-risk-{v}" if v is not None else "" for v in (_value(r, "id") for _, r in table.iterrows())]
    unique = len(set(ids)) == len(ids)
    out = []
    for position, (_, row) in enumerate(table.iterrows()):
        rid = ids[position] if unique and _FHIR_ID.match(ids[position]) else f"breast-risk-row{position}"
        out.append(_one(row, position, rid, when))
    return out


def refusals(row: pd.Series, age: Any) -> list[str]:
    """Why this row's risk cannot be exported as ``final`` (empty: it can)."""
    status, risk = _value(row, "status"), _value(row, "risk")
    if status not in (None, "ok") or risk is None:
        return [f"No risk could be computed ({status or 'no risk'}): {_value(row, 'message') or ''}".rstrip(": ")]
    out = []
    for name in ("risk", *(f"risk_{k}y" for k in range(1, 6)), "risk_used"):
        v = _value(row, name)
        p = _number(v)
        if v is not None and (p is None or not 0.0 <= p <= 1.0):
            out.append(f"{name}={v}: not a probability in [0, 1]")
    horizon = _number(_value(row, "horizon"))
    if horizon is None or horizon <= 0:
        out.append(f"horizon={_value(row, 'horizon')}: not a number of years > 0")
    if age is not None and (_number(age) is None or not 0 <= float(age) <= 130):
        out.append(f"age={age}: not an age in years")
    rec = _value(row, "recommendation_status")
    if rec in ("invalid", "inconsistent"):
        out.append(f"the screening policy flagged this row ({rec}): {_value(row, 'recommendation_message') or ''}")
    if out:
        out = ["Not exported as a risk: " + "; ".join(out)]
    return out


def _one(row: pd.Series, position: int, rid: str, when: str) -> dict[str, Any]:
    wid = _value(row, "id")
    key = str(wid) if wid is not None else f"row{position}"
    subject: dict[str, Any] = ({"reference": f"Patient/{key}"} if wid is not None and _FHIR_ID.match(key)
                               else {"identifier": {"value": key}, "display": key})
    refused = refusals(row, _value(row, "age"))
    scored = not refused
    age = float(_value(row, "age")) if scored and _value(row, "age") is not None else None
    model = _value(row, "model")
    ra: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": rid,
        "status": "final" if scored else "cancelled",
        "code": {"text": "Breast cancer risk assessment"},
        "subject": subject,
        "occurrenceDateTime": when,
        "method": {"text": f"riskmodel: {model} model" if model is not None else "riskmodel (model not stated)"},
    }
    model = model if model is not None else "unstated"
    predictions = []
    if scored:
        risk, horizon = float(_value(row, "risk")), float(_value(row, "horizon"))
        lifetime = age is not None and abs(horizon - (90.0 - age)) < 1e-6
        span = "to age 90" if lifetime else f"over {horizon:g} years"
        predictions.append(_prediction(risk, age, horizon,
                                       f"Absolute risk of invasive breast cancer {span} ({model} model)."))
        for k in range(1, 6):
            v = _value(row, f"risk_{k}y")
            if v is not None and horizon != k:
                predictions.append(_prediction(float(v), age, float(k), f"Absolute risk of invasive breast cancer "
                                               f"over {k} years ({model} model)."))
        used, measure = _value(row, "risk_used"), _value(row, "risk_measure")
        if used is not None and measure == "lifetime" and not lifetime:
            predictions.append(_prediction(float(used), age, 90.0 - age if age is not None else math.nan,
                                           "Lifetime risk (to age 90) used by the screening policy."))
    if predictions:
        ra["prediction"] = predictions
    notes = refused + _notes(row)
    if notes:
        ra["note"] = [{"text": t} for t in notes]
    if scored and str(_value(row, "chemoprevention_discussion")).lower() == "true":
        ra["mitigation"] = ("Discuss risk-reducing medication (tamoxifen, raloxifene or an aromatase inhibitor) "
                            "and its harms.")
    return ra


def _notes(row: pd.Series) -> list[str]:
    notes: list[str] = []
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


def fhir_text(resources: list[dict[str, Any]], path: str | os.PathLike[str]) -> str:
    """What :func:`write_fhir` writes to ``path``: NDJSON (``.ndjson``) or a JSON Bundle (``.json``).

    Raises:
        ValueError: another suffix, or a value JSON cannot hold (NaN, infinity).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".ndjson", ".json"):
        raise ValueError(f"{path}: use .ndjson (one resource per line) or .json (a Bundle)")
    try:
        if suffix == ".ndjson":
            return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in resources)
        return json.dumps(fhir_bundle(resources), ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    except ValueError as exc:  # NaN or infinity: not JSON
        raise ValueError(f"{path}: a resource holds a value JSON cannot represent ({exc})") from None


def write_fhir(resources: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write ``resources`` as NDJSON (``.ndjson``: one resource per line) or as a JSON Bundle (``.json``).

    The text is built first (:func:`fhir_text`), then written to a temporary file in the same
    folder and renamed into place: a failure leaves no partial file.
    """
    return write_atomically(Path(path), fhir_text(resources, path))
