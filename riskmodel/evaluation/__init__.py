"""Evaluation metrics for risk models (one sign convention: higher score = higher risk)."""

from riskmodel.evaluation.metrics import harrell_c_index, uno_c_index

__all__ = ["harrell_c_index", "uno_c_index"]
