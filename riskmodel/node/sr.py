"""A study's result as a DICOM Comprehensive SR (highdicom): risks with units, model, views, recommendation.

The content tree (root container "Breast cancer risk assessment", codes of the local scheme
:data:`SCHEME` where no standard code fits):

* ``Algorithm Name`` (DCM 111001): the model's name; ``Algorithm Version`` (DCM 111003): the bundle
  digest (SHA-256 of the saved model's manifest);
* one NUM item per year ``k`` = 1 … 5, "Risk of breast cancer within k years", the probability in
  [0, 1] with the UCUM unit ``1`` ("no units"; 0.012 means 1.2 %), written as a Decimal String
  (16 characters at most, so about 12 significant digits); absent where not scored;
* TEXT items: views used (``L-CC;L-MLO;R-CC;R-MLO``), status, message, and, under a screening
  policy, the recommendation and its rationale.

The SR joins the study of the images (patient, study and accession inherited from the evidence,
which lists the images read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MEASUREMENT_CODES", "SCHEME", "build_sr", "read_sr"]

#: The coding scheme designator of the node's own concepts.
SCHEME = "99RISKMODEL"
#: Code value of "Risk of breast cancer within k years" for k = 1 … 5.
MEASUREMENT_CODES = {k: f"RISK{k}Y" for k in range(1, 6)}
_TEXT_CODES = {"views_used": ("VIEWS", "Views used"), "status": ("STATUS", "Result status"),
               "message": ("MESSAGE", "Result message"), "recommendation": ("RECOMMEND", "Screening recommendation"),
               "rationale": ("RATIONALE", "Recommendation rationale")}


#: Patient and study attributes the SR inherits from its images (Type 2: present, possibly empty).
TYPE2_INHERITED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _code(value: str, meaning: str, scheme: str = SCHEME) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _content(result: Mapping[str, Any], recommendation: Mapping[str, str] | None) -> Any:
    from highdicom.sr import ContainerContentItem, NumContentItem, RelationshipTypeValues, TextContentItem

    contains = RelationshipTypeValues.CONTAINS
    items: list[Any] = [
        TextContentItem(_code("111001", "Algorithm Name", "DCM"), str(result["model"])[:1024], contains),
        TextContentItem(_code("111003", "Algorithm Version", "DCM"), str(result["bundle_digest"]), contains),
    ]
    for k, code in MEASUREMENT_CODES.items():
        value = result.get(f"risk_{k}y")
        if value is None or not math.isfinite(float(value)):
            continue
        items.append(NumContentItem(_code(code, f"Risk of breast cancer within {k} year{'s' * (k > 1)}"),
                                    float(value), _code("1", "no units", "UCUM"), relationship_type=contains))
    texts = {"views_used": ";".join(result.get("views_used") or ()) or "none", "status": result.get("status"),
             "message": result.get("message"), **(recommendation or {})}
    for key, (value, meaning) in _TEXT_CODES.items():
        text = str(texts.get(key) or "").strip()
        if text:
            items.append(TextContentItem(_code(value, meaning), text[:1024], contains))  # UT; kept short
    root = ContainerContentItem(_code("RISKREPORT", "Breast cancer risk assessment"))
    root.ContentSequence = items
    return root


def build_sr(result: Mapping[str, Any], evidence: Sequence[Any], *, recommendation: Mapping[str, str] | None = None,
             manufacturer: str = "riskmodel") -> Any:
    """The Comprehensive SR of one study's result.

    Args:
        result: the study's ``results.csv`` row as a mapping (``risk_1y`` … ``risk_5y`` floats or
            None, ``views_used`` a sequence of slot names, ``status``, ``message``, ``model``,
            ``bundle_digest``).
        evidence: pydicom datasets (headers suffice) of the study's images; at least one: the SR
            inherits their patient and study (a missing :data:`TYPE2_INHERITED` attribute is added, empty).
        recommendation: ``{"recommendation": ..., "rationale": ...}`` under a screening policy.

    Returns:
        a :class:`highdicom.sr.ComprehensiveSR` (a pydicom Dataset; ``save_as`` writes it).
    """
    from highdicom.sr import ComprehensiveSR
    from pydicom.uid import generate_uid

    if not evidence:
        raise ValueError("build_sr: no image of the study to take the patient and study from")
    for ds in evidence:  # Type 2 attributes a sender may leave out: present, empty
        for keyword in TYPE2_INHERITED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    return ComprehensiveSR(evidence=list(evidence), content=_content(result, recommendation),
                           series_instance_uid=generate_uid(), series_number=990, sop_instance_uid=generate_uid(),
                           instance_number=1, manufacturer=manufacturer, is_complete=True, is_final=False,
                           is_verified=False)


def read_sr(ds: Any) -> dict[str, Any]:
    """The values of an SR built by :func:`build_sr` (read back with pydicom): ``risk_1y`` … floats
    (absent years left out), ``model``, ``bundle_digest`` and the text items by their keys."""
    out: dict[str, Any] = {}
    names = {("DCM", "111001"): "model", ("DCM", "111003"): "bundle_digest"}
    names.update({(SCHEME, code): f"risk_{k}y" for k, code in MEASUREMENT_CODES.items()})
    names.update({(SCHEME, code): key for key, (code, _) in _TEXT_CODES.items()})
    for item in ds.ContentSequence:
        concept = item.ConceptNameCodeSequence[0]
        key = names.get((concept.CodingSchemeDesignator, concept.CodeValue))
        if key is None:
            continue
        if item.ValueType == "NUM":
            out[key] = float(item.MeasuredValueSequence[0].NumericValue)
        else:
            out[key] = str(item.TextValue)
    return out
