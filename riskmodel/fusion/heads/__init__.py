"""Survival heads on a fused design matrix (exam embedding + risk factors), one module per head.

Modules: ``base`` (the shared interface :class:`~riskmodel.fusion.heads.base.SurvivalHead`, input
and saved-state checks, :func:`breslow_baseline`), ``torch_hazard`` (:class:`TorchHazardHead`),
``cox`` (:class:`CoxHead`), ``boosting`` (:class:`XGBoostHead`), ``load`` (:func:`head_from_dict`).
"""

from riskmodel.fusion.heads.base import (
    DEFAULT_YEARS,
    FORMAT_PREFIX,
    FORMAT_VERSION,
    MAX_COEF,
    MAX_FEATURES,
    SurvivalHead,
    breslow_baseline,
)
from riskmodel.fusion.heads.boosting import XGBoostHead
from riskmodel.fusion.heads.cox import CoxHead
from riskmodel.fusion.heads.load import head_from_dict
from riskmodel.fusion.heads.torch_hazard import TorchHazardHead

__all__ = [
    "DEFAULT_YEARS",
    "FORMAT_PREFIX",
    "FORMAT_VERSION",
    "MAX_COEF",
    "MAX_FEATURES",
    "CoxHead",
    "SurvivalHead",
    "TorchHazardHead",
    "XGBoostHead",
    "breslow_baseline",
    "head_from_dict",
]
