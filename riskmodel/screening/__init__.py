"""Screening: from each woman's risk to a recommendation, a FHIR resource and a one-page report.

The last stage of the data flow (cohort → schema → models → risks → **screening**):

* :mod:`~riskmodel.screening.policy` — policies as versioned TOML data files, checked against a
  schema (:func:`load_policy`, :func:`list_policies`);
* :mod:`~riskmodel.screening.recommend` — :func:`recommend_screening` (also
  ``riskmodel.recommend_screening``) and :func:`add_recommendations`;
* :mod:`~riskmodel.screening.fhir` — HL7 FHIR R4 ``RiskAssessment`` resources as plain JSON;
* :mod:`~riskmodel.screening.report` — one HTML (or PDF) page per woman;
* :mod:`~riskmodel.screening.average` — the average woman's risk for her age (BCSC v2).

Nothing here is imported by the models or the schema. The output supports, and does not replace,
a clinician's decision.
"""

from riskmodel.screening.average import average_risk_curve
from riskmodel.screening.fhir import fhir_bundle, risk_assessments, write_fhir
from riskmodel.screening.policy import MODALITIES, Policy, PolicyError, list_policies, load_policy
from riskmodel.screening.recommend import (
    RECOMMENDATION_COLUMNS,
    RECOMMENDATION_STATUS,
    add_recommendations,
    recommend_screening,
)
from riskmodel.screening.report import render_report, risk_curves, write_reports

__all__ = [
    "MODALITIES",
    "RECOMMENDATION_COLUMNS",
    "RECOMMENDATION_STATUS",
    "Policy",
    "PolicyError",
    "add_recommendations",
    "average_risk_curve",
    "fhir_bundle",
    "list_policies",
    "load_policy",
    "recommend_screening",
    "render_report",
    "risk_assessments",
    "risk_curves",
    "write_fhir",
    "write_reports",
]
