"""Platt scaling: logistic recalibration on the logit scale (:class:`PlattCalibrator`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from riskmodel.calibration.checks import check_binary, check_both_classes, check_prob, check_weight, finite_number
from riskmodel.estimators import estimator_repr

__all__ = ["PlattCalibrator"]


def _check_params(eps: Any, ridge: Any, max_iter: Any) -> None:
    """ValueError unless ``0 < eps < 0.5``, ``ridge >= 0`` and ``max_iter`` is an integer >= 1."""
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


class PlattCalibrator(BaseEstimator):
    """Logistic recalibration on the logit scale: ``p_cal = sigmoid(a_ · logit(p) + b_)``.

    ``p`` is clipped to ``[eps, 1 - eps]`` before the logit so that 0 and 1 are allowed.
    ``a_`` and ``b_`` minimise the weighted mean log-loss plus ``ridge / 2 · (a² + b²)``; the
    tiny ridge keeps them finite when the outcomes are perfectly separated. Fitted by Newton's
    method with step halving, from the identity map ``a = 1, b = 0``.

    Args:
        eps: clipping of ``p`` before the logit.
        ridge: L2 penalty on ``(a, b)``, relative to the mean log-loss.
        max_iter: Newton iterations at most (a ``RuntimeWarning`` if not converged).

    Attributes (after ``fit``):
        a_, b_: slope and intercept (floats).
        n_iter_: Newton iterations used.
        n_samples_: number of points with positive weight.
    """

    method = "platt"

    def __init__(self, eps: float = 1e-7, ridge: float = 1e-8, max_iter: int = 100) -> None:
        _check_params(eps, ridge, max_iter)  # early, as before; checked again in fit (set_params skips __init__)
        self.eps = eps
        self.ridge = ridge
        self.max_iter = max_iter
        self.a_: float
        self.b_: float
        self.n_iter_: int
        self.n_samples_: int

    def _logit(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(p, self.eps, 1.0 - self.eps)
        return np.log(q) - np.log1p(-q)

    def fit(self, p: Any, y: Any, weight: Any = None) -> PlattCalibrator:
        """Fit on predictions ``p`` (shape ``(n,)``, in [0, 1]) and binary outcomes ``y`` (shape ``(n,)``)."""
        _check_params(self.eps, self.ridge, self.max_iter)
        p = check_prob(p)
        y = check_binary(y, len(p))
        w = check_weight(weight, len(p))
        check_both_classes(y, w, "PlattCalibrator.fit")
        keep = w > 0
        s, y, w = self._logit(p[keep]), y[keep], w[keep] / w[keep].sum()
        lam = self.ridge

        def loss(a: float, b: float) -> float:
            z = a * s + b
            # -[y log σ(z) + (1-y) log(1-σ(z))] = log(1+e^z) - y z
            return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * lam * (a * a + b * b))

        a, b = 1.0, 0.0
        f = loss(a, b)
        converged = False
        it = 0
        while it < self.max_iter:
            it += 1
            mu = _sigmoid(a * s + b)
            r = w * (mu - y)
            g = np.array([np.dot(r, s) + lam * a, r.sum() + lam * b])
            v = w * mu * (1.0 - mu)
            h = np.array([[np.dot(v, s * s) + lam, np.dot(v, s)], [np.dot(v, s), v.sum() + lam]])
            try:
                step = np.linalg.solve(h, g)
            except np.linalg.LinAlgError:
                step = g  # singular Hessian (only with ridge = 0): fall back to gradient descent
            t = 1.0
            while True:
                a_new, b_new = a - t * step[0], b - t * step[1]
                f_new = loss(a_new, b_new)
                if f_new <= f + 1e-4 * t * float(np.dot(g, -step)) or t < 1e-10:
                    break
                t *= 0.5
            a, b, f = a_new, b_new, f_new
            if np.max(np.abs(t * step)) < 1e-10 * (1.0 + max(abs(a), abs(b))) or np.max(np.abs(g)) < 1e-12:
                converged = True
                break
        if not converged:
            warnings.warn(f"PlattCalibrator: Newton's method did not converge in {self.max_iter} iterations "
                          f"(a={a:.6g}, b={b:.6g})", RuntimeWarning, stacklevel=2)
        self.a_, self.b_ = float(a), float(b)
        self.n_iter_ = it
        self.n_samples_ = int(keep.sum())
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "a_", msg="PlattCalibrator is not fitted; call fit() first")

    def predict(self, p: Any) -> np.ndarray:
        """Calibrated probabilities of shape ``(n,)`` for predictions ``p`` of shape ``(n,)``."""
        self._check_fitted()
        p = check_prob(p)
        return _sigmoid(self.a_ * self._logit(p) + self.b_)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"method": "platt", "a": a, "b": b, "eps": eps, "n_samples": n}``."""
        self._check_fitted()
        return {"method": self.method, "a": self.a_, "b": self.b_, "eps": float(self.eps), "n_samples": self.n_samples_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattCalibrator:
        """Rebuild from :meth:`to_dict`'s output."""
        where = "platt calibrator"
        if not isinstance(d, dict) or d.get("method") != cls.method:
            raise ValueError(f"{where}: expected a dict with method 'platt'")
        self = cls(eps=finite_number(d, "eps", where))
        self.a_, self.b_ = finite_number(d, "a", where), finite_number(d, "b", where)
        self.n_iter_ = 0
        n = d.get("n_samples", 0)
        self.n_samples_ = int(n) if isinstance(n, int) and not isinstance(n, bool) else 0
        return self

    def __repr__(self) -> str:
        """``<PlattCalibrator: fitted on 300 points, a=1.02, b=-0.1>``."""
        if not hasattr(self, "a_"):
            return estimator_repr(self, None)
        return estimator_repr(self, f"fitted on {self.n_samples_:,} points, a={self.a_:.4g}, b={self.b_:.4g}")
