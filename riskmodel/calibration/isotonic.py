"""Isotonic calibration: weighted pool-adjacent-violators (:func:`isotonic_regression`,
:class:`IsotonicCalibrator`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from riskmodel.calibration.checks import (
    as_1d_float,
    check_binary,
    check_both_classes,
    check_finite,
    check_prob,
    check_weight,
    float_list,
)
from riskmodel.estimators import estimator_repr

__all__ = ["IsotonicCalibrator", "isotonic_regression"]


def isotonic_regression(y: Any, weight: Any = None) -> np.ndarray:
    """Weighted least-squares non-decreasing fit to a sequence, by pool-adjacent-violators.

    Args:
        y: values of shape ``(n,)``, already in the order of the predictor.
        weight: positive weights of shape ``(n,)``; default all 1.

    Returns:
        ``f`` of shape ``(n,)``, non-decreasing, minimising ``sum(weight * (y - f)**2)``.
        Each run of pooled values is their weighted mean.

    >>> isotonic_regression([1, 3, 2, 4, 3, 5]).tolist()
    [1.0, 2.5, 2.5, 3.5, 3.5, 5.0]
    """
    y = as_1d_float(y, "y")
    check_finite(y, "y")
    w = check_weight(weight, len(y))
    if (w <= 0).any():
        raise ValueError("weight: isotonic_regression needs positive weights (drop zero-weight points first)")
    n = len(y)
    # Blocks on a stack: weighted mean, total weight, number of points.
    means = np.empty(n)
    weights = np.empty(n)
    counts = np.empty(n, dtype=np.int64)
    top = -1
    for i in range(n):
        top += 1
        means[top], weights[top], counts[top] = y[i], w[i], 1
        # Pool while the new block does not exceed the one before it (ties are pooled too;
        # that changes no fitted value and gives fewer blocks).
        while top > 0 and means[top - 1] >= means[top]:
            wt = weights[top - 1] + weights[top]
            means[top - 1] = (weights[top - 1] * means[top - 1] + weights[top] * means[top]) / wt
            weights[top - 1] = wt
            counts[top - 1] += counts[top]
            top -= 1
    return np.repeat(means[: top + 1], counts[: top + 1])


class IsotonicCalibrator(BaseEstimator):
    """Monotone (non-decreasing) map from predicted to observed probability.

    Fitted by weighted pool-adjacent-violators on the predictions sorted in increasing order
    (predictions that are equal are pooled first). Stored as breakpoints: ``x_`` (increasing
    predicted probabilities) and ``y_`` (non-decreasing calibrated probabilities), both of
    shape ``(m,)``. Each pooled block contributes its smallest and largest prediction, so the
    map is flat within a block and linear between blocks; :meth:`predict` interpolates
    linearly and is flat outside ``[x_[0], x_[-1]]``.

    Attributes (after ``fit``):
        x_, y_: breakpoints, float64 arrays of shape ``(m,)``.
        n_samples_: number of points with positive weight used in the fit.
    """

    method = "isotonic"

    def __init__(self) -> None:
        self.x_: np.ndarray
        self.y_: np.ndarray
        self.n_samples_: int

    def fit(self, p: Any, y: Any, weight: Any = None) -> IsotonicCalibrator:
        """Fit on predictions ``p`` (shape ``(n,)``, in [0, 1]) and binary outcomes ``y`` (shape ``(n,)``).

        Points with zero ``weight`` are ignored. Both outcomes must occur with positive weight.
        """
        p = check_prob(p)
        y = check_binary(y, len(p))
        w = check_weight(weight, len(p))
        check_both_classes(y, w, "IsotonicCalibrator.fit")
        keep = w > 0
        p, y, w = p[keep], y[keep], w[keep]
        order = np.argsort(p, kind="stable")
        p, y, w = p[order], y[order], w[order]
        # Pool equal predictions: one point per distinct p, at the weighted mean outcome.
        xs, start = np.unique(p, return_index=True)
        wsum = np.add.reduceat(w, start)
        ymean = np.add.reduceat(w * y, start) / wsum
        fitted = isotonic_regression(ymean, wsum)
        # Breakpoints: the first and last x of every run of equal fitted values.
        new_run = np.r_[True, fitted[1:] != fitted[:-1]]
        end_run = np.r_[fitted[1:] != fitted[:-1], True]
        keep_pt = new_run | end_run
        self.x_ = xs[keep_pt]
        self.y_ = np.clip(fitted[keep_pt], 0.0, 1.0)
        self.n_samples_ = len(p)
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "x_", msg="IsotonicCalibrator is not fitted; call fit() first")

    def predict(self, p: Any) -> np.ndarray:
        """Calibrated probabilities of shape ``(n,)`` for predictions ``p`` of shape ``(n,)``."""
        self._check_fitted()
        p = check_prob(p)
        return np.interp(p, self.x_, self.y_)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"method": "isotonic", "x": [...], "y": [...], "n_samples": n}``."""
        self._check_fitted()
        return {"method": self.method, "x": self.x_.tolist(), "y": self.y_.tolist(), "n_samples": self.n_samples_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IsotonicCalibrator:
        """Rebuild from :meth:`to_dict`'s output, checking the breakpoints."""
        where = "isotonic calibrator"
        if not isinstance(d, dict) or d.get("method") != cls.method:
            raise ValueError(f"{where}: expected a dict with method 'isotonic'")
        x = float_list(d.get("x"), "x", where)
        y = float_list(d.get("y"), "y", where)
        if len(x) == 0 or len(x) != len(y):
            raise ValueError(f"{where}: 'x' and 'y' must be non-empty and of equal length ({len(x)} vs {len(y)})")
        if (np.diff(x) <= 0).any():
            raise ValueError(f"{where}: 'x' must be strictly increasing")
        if (np.diff(y) < 0).any():
            raise ValueError(f"{where}: 'y' must be non-decreasing")
        if (x < 0).any() or (x > 1).any() or (y < 0).any() or (y > 1).any():
            raise ValueError(f"{where}: 'x' and 'y' must lie in [0, 1]")
        self = cls()
        self.x_, self.y_ = x, y
        n = d.get("n_samples", 0)
        self.n_samples_ = int(n) if isinstance(n, int) and not isinstance(n, bool) else 0
        return self

    def __repr__(self) -> str:
        """``<IsotonicCalibrator: fitted on 300 points, 12 breakpoints>`` (0 points: loaded without the count)."""
        fitted = f"fitted on {self.n_samples_:,} points, {len(self.x_)} breakpoints" if hasattr(self, "x_") else None
        return estimator_repr(self, fitted)
