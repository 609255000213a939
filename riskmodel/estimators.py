"""The estimator convention shared by everything that has ``fit`` (foundation layer, torch-free).

Every fitted object in riskmodel (calibrators, fusion heads, the factor encoder, the incidence
recalibrator) is a scikit-learn ``BaseEstimator``: parameters stored unchanged by ``__init__`` and
checked in ``fit``; fitted state in attributes with a trailing underscore; use before ``fit`` raises
scikit-learn's :class:`~sklearn.exceptions.NotFittedError` (through
:func:`sklearn.utils.validation.check_is_fitted`); and a ``repr`` that says what was fitted, in
lifelines' style:

>>> from sklearn.base import BaseEstimator
>>> class Mean(BaseEstimator):
...     def __init__(self, shrink=0.0):
...         self.shrink = shrink
...     def __repr__(self):
...         return estimator_repr(self, f"fitted on {self.n_:,} values" if hasattr(self, "n_") else None)
>>> Mean()
<Mean: not fitted>
>>> m = Mean(shrink=0.5)
>>> m.n_ = 9939
>>> m
<Mean(shrink=0.5): fitted on 9,939 values>
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

__all__ = ["NotFittedError", "estimator_repr"]


def estimator_repr(estimator: BaseEstimator, fitted: str | None) -> str:
    """``<Name(changed parameters): fitted>``, on one line.

    Args:
        estimator: a scikit-learn estimator; its parameters that differ from the defaults are
            shown as scikit-learn shows them (``Name()`` when none differ, then shortened to ``Name``).
        fitted: what was fitted (e.g. ``"fitted on 9,939 women, 121 events"``); None: not fitted.

    Returns:
        e.g. ``<CoxHead(penalizer=0.1): fitted on 9,939 women, 121 events, 14 covariates>`` or
        ``<CoxHead: not fitted>``.
    """
    params = " ".join(BaseEstimator.__repr__(estimator).split())
    if params.endswith("()"):
        params = params[:-2]
    return f"<{params}: {'not fitted' if fitted is None else fitted}>"
