"""The hybrid model: an exam embedding plus risk factors → a survival head → absolute risk by year.

The data flow::

    canonical cohort ─► FactorEncoder (explicit, reported imputation) ─┐
    exam embedding (riskmodel.nn.ImageRiskModel.embed) ────────────────┴► X = [embedding, factors]
    X, time, event ─► TorchHazardHead | CoxHead | XGBoostHead (one interface)
                   ─► predict_cumulative_hazard(X, years)   cause-specific H1(t)
                   ─► absolute_risk_from_hazard(H1, age, race)          with competing mortality (Gail λ2)
                   ─► IncidenceRecalibrator                 optional: the site's own incidence

Modules: ``factors.py`` (:class:`FactorEncoder`), ``heads/`` (the three heads, Breslow), ``absolute.py``
(:func:`absolute_risk_from_hazard`, :class:`IncidenceRecalibrator`, :func:`observed_incidence`), ``hybrid.py``
(:class:`HybridModel`: all of it behind a trained image model, end to end from DICOMs;
:func:`load_hybrid`), ``persist.py`` (the saved hybrid model's folder format and its checks).
Heads store their state as JSON-safe dicts (``to_dict`` / ``from_dict``), never as pickles.
"""

from riskmodel.fusion.absolute import (
    IncidenceRecalibrator,
    absolute_risk,
    absolute_risk_from_hazard,
    implied_incidence,
    observed_incidence,
)
from riskmodel.fusion.factors import FACTOR_GROUPS, IMPUTED_COLUMNS, FactorEncoder
from riskmodel.fusion.heads import CoxHead, TorchHazardHead, XGBoostHead, breslow_baseline, head_from_dict
from riskmodel.fusion.hybrid import HybridModel, load_hybrid, read_exams

__all__ = [
    "FACTOR_GROUPS",
    "IMPUTED_COLUMNS",
    "CoxHead",
    "FactorEncoder",
    "HybridModel",
    "IncidenceRecalibrator",
    "TorchHazardHead",
    "XGBoostHead",
    "absolute_risk",
    "absolute_risk_from_hazard",
    "breslow_baseline",
    "head_from_dict",
    "implied_incidence",
    "load_hybrid",
    "observed_incidence",
    "read_exams",
]
