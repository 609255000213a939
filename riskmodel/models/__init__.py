"""Models behind one protocol: :class:`RiskModel` (what a model declares and does), the shared scoring
core :func:`score_cohort`, and the registry (:func:`resolve`, :func:`register`, :data:`MODELS`).

Only the torch-free protocol is imported here; ``riskmodel.models.core`` and
``riskmodel.models.registry`` are imported by name (they sit higher in the layers: the registry
knows every model). See ``docs/models.md``.
"""

from riskmodel.models.base import RiskModel, check_risk_model

__all__ = ["RiskModel", "check_risk_model"]
