"""Evaluating risk models: discrimination, calibration, reclassification, subgroups and reports.

One sign convention: higher ``risk`` = higher risk. Event coding: 1 = invasive breast cancer,
0 = censored, 2 = died of other causes. Metrics are plain functions; :func:`evaluate_risks`
computes all of them for several models at once and :func:`write_report` writes the report.
"""

from riskmodel.evaluation.calibration_metrics import (
    calibration_slope,
    calibration_table,
    cumulative_incidence,
    expected_observed,
)
from riskmodel.evaluation.evaluate import Evaluation, evaluate_risks, subgroup_labels
from riskmodel.evaluation.metrics import harrell_c_index, integrated_brier_score, time_dependent_auc, uno_c_index
from riskmodel.evaluation.reclassification import net_reclassification, share_of_cancers_in_top
from riskmodel.evaluation.report import render_markdown, write_report

__all__ = [
    "Evaluation",
    "calibration_slope",
    "calibration_table",
    "cumulative_incidence",
    "evaluate_risks",
    "expected_observed",
    "harrell_c_index",
    "integrated_brier_score",
    "net_reclassification",
    "render_markdown",
    "share_of_cancers_in_top",
    "subgroup_labels",
    "time_dependent_auc",
    "uno_c_index",
    "write_report",
]
