"""Score one received study with any saved model, and write its row, FHIR resource and SR.

The node calls the public functions a Python user calls: :func:`riskmodel.imaging.scan_dicoms` and
:func:`~riskmodel.imaging.assemble_exams` on the study's folder, :func:`riskmodel.predict_risk` with
the model :func:`riskmodel.models.registry.load_folder` loaded (image-only, hybrid, or any kind
registered there), :func:`riskmodel.screening.add_recommendations` under ``--policy`` and
:func:`riskmodel.screening.risk_assessments` for FHIR.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.imaging import VIEW_ORDER, assemble_exams, scan_dicoms
from riskmodel.jsonstate import MANIFEST, MAX_MANIFEST_BYTES, manifest_digest, read_json_file
from riskmodel.models.base import RiskModel
from riskmodel.models.registry import load_folder
from riskmodel.node.sr import build_sr
from riskmodel.node.store import NodeStore, atomic_write

__all__ = ["StudyScorer", "cohort_row", "header_age", "recommendation_text", "views_used"]

#: Years reported per study (``risk_1y`` … ``risk_5y``).
YEARS = 5


def cohort_row(cohort: pd.DataFrame | None, patient_id: str, accession: str) -> tuple[pd.DataFrame, str]:
    """The cohort row of one study (a one-row frame) and a note when none or several match.

    Matched first by ``exam_id`` = AccessionNumber, then by ``id`` = PatientID; a key matching
    several rows is ambiguous and matches none. Without a match the row is empty (the model then
    says which of its columns are missing).
    """
    if cohort is None:
        return pd.DataFrame(index=[0]), ""
    for column, value, what in (("exam_id", accession, "AccessionNumber"), ("id", patient_id, "PatientID")):
        if column not in cohort.columns or not value:
            continue
        hits = cohort[cohort[column].astype(str).str.strip() == value]
        if len(hits) == 1:
            return hits.reset_index(drop=True), ""
        if len(hits) > 1:
            return pd.DataFrame(index=[0]), f"{len(hits)} rows of --cohort have {column} = {what} {value!r}; none used"
    return pd.DataFrame(index=[0]), (f"no row of --cohort has exam_id = AccessionNumber {accession!r} or id = "
                                     f"PatientID {patient_id!r}")


def views_used(exam: pd.Series, message: str, n_views: int) -> list[str]:
    """Slots of :data:`~riskmodel.imaging.VIEW_ORDER` that were read: a file was chosen for the slot
    and the model's message does not report it unreadable (``"<slot>: <error>"``)."""
    if n_views == 0:
        return []
    return [s for s in VIEW_ORDER if isinstance(exam.get(s), str) and exam.get(s) and f"{s}:" not in message]


@dataclass
class StudyScorer:
    """A loaded model and what a node writes with each of its results.

    Attributes:
        bundle: the saved model's folder (any kind :func:`~riskmodel.models.registry.load_folder` loads).
        cohort: the ``--cohort`` table (``id`` and/or ``exam_id`` to match, and the model's factors).
        policy: a screening policy name or file for the recommendation, or None.
        device: where the model runs.
    """

    bundle: Path
    cohort: pd.DataFrame | None = None
    policy: str | None = None
    device: str = "auto"
    model: RiskModel = field(init=False)
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        self.bundle = Path(self.bundle)
        self.model = load_folder(self.bundle, device=self.device)
        self.digest = manifest_digest(read_json_file(self.bundle / MANIFEST, MAX_MANIFEST_BYTES, "saved model"))
        missing = [c for c in self.model.required_columns if self.cohort is None or c not in self.cohort.columns]
        if missing:
            raise ValueError(f"--bundle {self.bundle}: this {self.model.name} model needs the column(s) {missing} "
                             f"for each woman; give them in a --cohort table (matched by id = PatientID or exam_id "
                             f"= AccessionNumber)")
        if self.policy is not None:
            from riskmodel.screening import load_policy

            load_policy(self.policy)  # an unknown policy is an error at start, not per study

    def keys(self) -> tuple[str, str]:
        """The model's cohort key column and exams key column (``exam_id`` / ``accession_number`` by default)."""
        key = getattr(self.model, "key", None) or getattr(self.model, "key_", None) or "exam_id"
        exam_key = getattr(self.model, "exam_key", None) or getattr(self.model, "exam_key_", None)
        return str(key), str(exam_key or "accession_number")

    def score(self, store: NodeStore, study_uid: str) -> dict[str, Any]:
        """Score the study ``study_uid`` of ``store``; write its SR, FHIR resource and ``results.csv`` row.

        Returns the row (:data:`~riskmodel.node.store.RESULT_COLUMNS`) plus ``sr_path``. Any error
        while scoring becomes this study's ``status="error"`` with the message; other studies are
        not affected.
        """
        folder = store.study_dir(study_uid)
        manifest = scan_dicoms(folder)
        exams = assemble_exams(manifest)
        exams = exams[exams["study_uid"] == study_uid]
        row: dict[str, Any] = {"study_uid": study_uid, "model": self.model.name, "bundle_digest": self.digest,
                               "views_used": [], **{f"risk_{k}y": None for k in range(1, YEARS + 1)}}
        if exams.empty:
            files = zip(manifest["path"], manifest["status"], strict=True)
            bad = "; ".join(f"{Path(p).name}: {s}" for p, s in files if s != "ok")
            row.update(status="no_views", message=f"no readable mammogram in the study ({bad or 'no file'})",
                       accession_number="", patient_id="")
            return self._finish(store, row, None, [], pd.DataFrame(index=[0]))
        exam = exams.iloc[0]
        row.update(accession_number=str(exam["accession_number"]), patient_id=str(exam["patient_id"]))
        data, note = cohort_row(self.cohort, row["patient_id"], row["accession_number"])
        key, exam_key = self.keys()
        data[key] = study_uid
        one = exams.iloc[[0]].copy()
        one[exam_key] = study_uid
        try:
            out = self._predict(data, one)
        except Exception as exc:  # this study only: the node keeps serving
            row.update(status="error", message=f"{type(exc).__name__}: {exc}")
            return self._finish(store, row, None, [], data)
        first = out.iloc[0]
        message = str(first.get("message") or "")
        n_views = int(first.get("n_views", 0) or 0)
        used = views_used(exam, message, n_views)
        missing = [s for s in VIEW_ORDER if s not in used]
        notes = [message] if message else []
        if missing and used:
            notes.append(f"scored on {len(used)} of 4 views; missing views masked: {', '.join(missing)}")
        if exam.get("flags"):
            notes.append(f"flags: {exam['flags']}")
        if note:
            notes.append(note)
        row.update({f"risk_{k}y": _finite(first.get(f"risk_{k}y")) for k in range(1, YEARS + 1)})
        row.update(views_used=used, status=str(first["status"]), message="; ".join(notes))
        return self._finish(store, row, out, [exam[s] for s in used], data)

    def _predict(self, data: pd.DataFrame, exams: pd.DataFrame) -> pd.DataFrame:
        from riskmodel.api import predict_risk

        return predict_risk(data, model=self.model, horizon=min(YEARS, self.model.max_horizon or YEARS),
                            exams=exams, details=True)

    def _finish(self, store: NodeStore, row: dict[str, Any], out: pd.DataFrame | None, paths: list[str],
                data: pd.DataFrame) -> dict[str, Any]:
        row["scored_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        evidence = _headers(paths or sorted(str(p) for p in store.study_dir(row["study_uid"]).glob("*.dcm")))
        if evidence and ("age" not in data.columns or pd.isna(data["age"].iloc[0])):
            data = data.assign(age=header_age(evidence[0]))
        table = out
        if self.policy is not None and out is not None:
            from riskmodel.screening import add_recommendations

            try:
                table = add_recommendations(out, data, self.policy)
            except ValueError as exc:  # e.g. no age in the cohort or the header: said in the SR, no FHIR advice
                row["message"] = "; ".join(m for m in (row["message"], f"no recommendation: {exc}") if m)
        sr_path = self._write_sr(store, row, evidence, recommendation_text(table))
        self._write_fhir(store, row, table, data)
        store.append_result(row)
        return {**row, "sr_path": sr_path}

    def _write_sr(self, store: NodeStore, row: dict[str, Any], evidence: list[Any],
                  recommendation: dict[str, str] | None) -> Path | None:
        if not evidence:
            return None
        try:
            sr = build_sr(row, evidence[:4], recommendation=recommendation)
            buf = io.BytesIO()
            sr.save_as(buf, enforce_file_format=True)
        except (ValueError, TypeError, AttributeError) as exc:  # highdicom refused the images' header values
            row["message"] = "; ".join(m for m in (row["message"], f"no SR: {type(exc).__name__}: {exc}") if m)
            return None
        path = store.sr_dir / f"{Path(store.study_dir(row['study_uid'])).name}.dcm"
        atomic_write(path, buf.getvalue())
        return path

    def _write_fhir(self, store: NodeStore, row: dict[str, Any], out: pd.DataFrame | None,
                    data: pd.DataFrame) -> None:
        from riskmodel.screening import risk_assessments

        if out is None:
            out = pd.DataFrame({"risk": [np.nan], "status": [row["status"]], "message": [row["message"]],
                                "model": [row["model"]], "horizon": [float(YEARS)]})
        cohort = data.assign(id=data["id"] if "id" in data else row["patient_id"] or row["study_uid"])
        resource = risk_assessments(out, cohort=cohort.reset_index(drop=True).set_axis(out.index))[0]
        path = store.fhir_dir / f"{Path(store.study_dir(row['study_uid'])).name}.json"
        atomic_write(path, (json.dumps(resource, indent=1) + "\n").encode("utf-8"))


def recommendation_text(table: pd.DataFrame | None) -> dict[str, str] | None:
    """The recommendation of a one-row :func:`~riskmodel.screening.add_recommendations` table as SR text
    (``recommendation`` and ``rationale``), or None without a policy."""
    if table is None or "recommendation_status" not in table.columns:
        return None
    rec = table.iloc[0]
    if rec["recommendation_status"] != "ok":
        return {"recommendation": f"none ({rec['recommendation_status']}: {rec['recommendation_message']})"}
    interval = rec["interval_months"]
    every = f"every {interval:g} months" if isinstance(interval, float) and math.isfinite(interval) else ""
    extra = f" + {rec['supplemental']}" if rec["supplemental"] else ""
    text = f"{rec['policy']} {rec['policy_version']}: {rec['category']}, {rec['modality']}{extra} {every}"
    return {"recommendation": " ".join(text.split()), "rationale": str(rec["rationale"])}


def _headers(paths: list[str]) -> list[Any]:
    """The headers (no pixels) of the files the reader accepted; a file pydicom cannot parse is left out."""
    import pydicom

    out = []
    for p in paths:
        try:
            out.append(pydicom.dcmread(p, stop_before_pixels=True))
        except Exception:  # not evidence; its study's message already says why
            continue
    return out


def header_age(ds: Any) -> float:
    """The woman's age in years at the study from a DICOM header: PatientAge (``052Y``, ``600M``) or
    PatientBirthDate and StudyDate; NaN when neither is usable."""
    text = str(getattr(ds, "PatientAge", "") or "").strip().upper()
    per_year = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}
    if len(text) == 4 and text[:3].isdigit() and text[3] in per_year:
        return int(text[:3]) / per_year[text[3]]
    born, seen = (str(getattr(ds, k, "") or "") for k in ("PatientBirthDate", "StudyDate"))
    try:
        days = (pd.Timestamp(seen[:8]) - pd.Timestamp(born[:8])).days
    except (ValueError, TypeError):
        return float("nan")
    return days / 365.25 if len(born) >= 8 and len(seen) >= 8 and days > 0 else float("nan")


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
