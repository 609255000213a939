"""Per-year calibration of predicted cumulative risks, stored as plain JSON.

A risk model that outputs a cumulative risk for each of years 1…Y (as Mirai does for
Y = 5) ranks women well but need not be calibrated: its "10 %" need not mean that 10 % of
such women are diagnosed. :class:`YearlyCalibrator` fits one monotone map per year on a
held-out set of women with known outcomes and applies it to new predictions.

Two maps are available, both fitted with numpy alone and stored as a handful of numbers:

* :class:`IsotonicCalibrator`: weighted isotonic regression (pool-adjacent-violators). It
  is stored as breakpoints ``(x_, y_)`` and predicts by linear interpolation between them,
  flat beyond the first and last breakpoint. Non-parametric; needs many events.
* :class:`PlattCalibrator`: logistic regression on the logit of the prediction,
  ``p_cal = sigmoid(a_ · logit(p) + b_)``, fitted by Newton's method. Two numbers per year;
  ``a_ = 1, b_ = 0`` is the identity map.

Nothing here is pickled and no scikit-learn object is stored: :meth:`YearlyCalibrator.to_dict`
gives a JSON-safe dict, :meth:`YearlyCalibrator.save` a JSON file. (Mirai's and Sybil's
calibrators are pickles that stop loading when scikit-learn renames an attribute.)

**Censoring rule.** For year ``k`` a woman's outcome is known, and she is used, only if

* she was diagnosed by year ``k``: ``event == 1`` and ``time <= k`` → positive; or
* she was followed for at least ``k`` years without a diagnosis by then: ``time >= k`` and
  not positive → negative (this includes ``event == 1`` after ``k`` and ``event == 2``,
  death from other causes, after ``k``).

Women censored (``event == 0``) or dead of other causes (``event == 2``) before year ``k``
are left out of year ``k``: whether they would have been diagnosed by ``k`` is unknown.
:func:`year_status` applies the rule.

Two consequences to know about:

* The known-status subset over-represents early diagnoses when many women are censored
  before ``k`` (a diagnosis counts however short the follow-up; a negative needs ``k`` full
  years), so the calibrated risks come out too high. ``fit(..., ipcw=True)`` weights each
  known-status woman by the inverse probability of having stayed uncensored that long
  (:func:`ipcw_weights`), which removes this bias.
* Death from other causes is treated like censoring, so the target is the risk of diagnosis
  by ``k`` had nobody died of other causes (the "net" risk). That is higher than the absolute
  risk with competing mortality (the cumulative incidence that the Gail model reports), by
  roughly the share of women who die of other causes before ``k``.

>>> import numpy as np
>>> from riskmodel.calibration import IsotonicCalibrator
>>> cal = IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
>>> cal.x_.tolist(), cal.y_.tolist()
([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 1.0])
>>> cal.predict(np.array([0.0, 0.15, 0.35, 0.9])).round(6).tolist()
[0.0, 0.25, 0.75, 1.0]
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IsotonicCalibrator",
    "NotFittedError",
    "PlattCalibrator",
    "YearlyCalibrator",
    "ipcw_weights",
    "isotonic_regression",
    "year_status",
]

#: The ``format`` tag and version written by :meth:`YearlyCalibrator.to_dict`.
FORMAT = "riskmodel.calibration"
FORMAT_VERSION = 1

#: Calibration methods by name.
METHODS = ("isotonic", "platt")

#: ``event`` codes: 0 censored, 1 breast cancer, 2 death from other causes.
EVENT_CODES = (0, 1, 2)


class NotFittedError(ValueError, AttributeError):
    """``predict`` or ``to_dict`` was called before ``fit`` (as scikit-learn's, a ValueError)."""


# ---------------------------------------------------------------------------------------
# Input checks


def _as_1d_float(a: Any, name: str) -> np.ndarray:
    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not numeric ({e})") from None
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of shape (n,), got shape {x.shape}")
    return x


def _check_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise ValueError(f"{name}: {int(bad.sum())} value(s) are NaN or infinite (first at flat index {i}); "
                         "calibration needs a known value for every woman")


def _check_prob(p: Any, name: str = "p") -> np.ndarray:
    """``p`` as float64 of shape ``(n,)``, finite and in [0, 1]."""
    x = _as_1d_float(p, name)
    _check_finite(x, name)
    _check_unit_interval(x, name)
    return x


def _check_unit_interval(x: np.ndarray, name: str) -> None:
    bad = (x < 0) | (x > 1)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise ValueError(f"{name}: {int(bad.sum())} value(s) outside [0, 1] (first at flat index {i}: "
                         f"{x.ravel()[i]!r}); expected probabilities")


def _check_binary(y: Any, n: int, name: str = "y") -> np.ndarray:
    x = _as_1d_float(y, name)
    if len(x) != n:
        raise ValueError(f"{name}: length {len(x)} does not match p (length {n})")
    _check_finite(x, name)
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"{name}: outcomes must be binary (0/1 or False/True), got {np.unique(x)[:5].tolist()}")
    return x


def _check_weight(weight: Any, n: int) -> np.ndarray:
    if weight is None:
        return np.ones(n)
    w = _as_1d_float(weight, "weight")
    if len(w) != n:
        raise ValueError(f"weight: length {len(w)} does not match the data (length {n})")
    _check_finite(w, "weight")
    if (w < 0).any():
        raise ValueError("weight: weights must be non-negative")
    return w


def _check_both_classes(y: np.ndarray, w: np.ndarray, where: str) -> None:
    for label, name in ((1.0, "positive (y == 1)"), (0.0, "negative (y == 0)")):
        if not (w[y == label] > 0).any():
            raise ValueError(f"{where}: no {name} outcomes with positive weight; a calibrator needs both")


def _float_list(x: Any, key: str, where: str) -> np.ndarray:
    if not isinstance(x, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x):
        raise ValueError(f"{where}: {key!r} must be a list of numbers")
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {key!r} holds NaN or infinite values")
    return a


def _number(d: dict, key: str, where: str) -> float:
    v = d.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f"{where}: {key!r} must be a finite number, got {v!r}")
    return float(v)


# ---------------------------------------------------------------------------------------
# Isotonic regression


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
    y = _as_1d_float(y, "y")
    _check_finite(y, "y")
    w = _check_weight(weight, len(y))
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


class IsotonicCalibrator:
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
        p = _check_prob(p)
        y = _check_binary(y, len(p))
        w = _check_weight(weight, len(p))
        _check_both_classes(y, w, "IsotonicCalibrator.fit")
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
        if not hasattr(self, "x_"):
            raise NotFittedError("IsotonicCalibrator is not fitted; call fit() first")

    def predict(self, p: Any) -> np.ndarray:
        """Calibrated probabilities of shape ``(n,)`` for predictions ``p`` of shape ``(n,)``."""
        self._check_fitted()
        p = _check_prob(p)
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
        x = _float_list(d.get("x"), "x", where)
        y = _float_list(d.get("y"), "y", where)
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
        state = f"{len(self.x_)} breakpoints" if hasattr(self, "x_") else "not fitted"
        return f"IsotonicCalibrator({state})"


# ---------------------------------------------------------------------------------------
# Platt scaling


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


class PlattCalibrator:
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
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge!r}")
        self.eps = float(eps)
        self.ridge = float(ridge)
        self.max_iter = int(max_iter)
        self.a_: float
        self.b_: float
        self.n_iter_: int
        self.n_samples_: int

    def _logit(self, p: np.ndarray) -> np.ndarray:
        q = np.clip(p, self.eps, 1.0 - self.eps)
        return np.log(q) - np.log1p(-q)

    def fit(self, p: Any, y: Any, weight: Any = None) -> PlattCalibrator:
        """Fit on predictions ``p`` (shape ``(n,)``, in [0, 1]) and binary outcomes ``y`` (shape ``(n,)``)."""
        p = _check_prob(p)
        y = _check_binary(y, len(p))
        w = _check_weight(weight, len(p))
        _check_both_classes(y, w, "PlattCalibrator.fit")
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
        if not hasattr(self, "a_"):
            raise NotFittedError("PlattCalibrator is not fitted; call fit() first")

    def predict(self, p: Any) -> np.ndarray:
        """Calibrated probabilities of shape ``(n,)`` for predictions ``p`` of shape ``(n,)``."""
        self._check_fitted()
        p = _check_prob(p)
        return _sigmoid(self.a_ * self._logit(p) + self.b_)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``{"method": "platt", "a": a, "b": b, "eps": eps, "n_samples": n}``."""
        self._check_fitted()
        return {"method": self.method, "a": self.a_, "b": self.b_, "eps": self.eps, "n_samples": self.n_samples_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattCalibrator:
        """Rebuild from :meth:`to_dict`'s output."""
        where = "platt calibrator"
        if not isinstance(d, dict) or d.get("method") != cls.method:
            raise ValueError(f"{where}: expected a dict with method 'platt'")
        self = cls(eps=_number(d, "eps", where))
        self.a_, self.b_ = _number(d, "a", where), _number(d, "b", where)
        self.n_iter_ = 0
        n = d.get("n_samples", 0)
        self.n_samples_ = int(n) if isinstance(n, int) and not isinstance(n, bool) else 0
        return self

    def __repr__(self) -> str:
        state = f"a={self.a_:.4g}, b={self.b_:.4g}" if hasattr(self, "a_") else "not fitted"
        return f"PlattCalibrator({state})"


_CLASSES: dict[str, type[IsotonicCalibrator] | type[PlattCalibrator]] = {
    "isotonic": IsotonicCalibrator,
    "platt": PlattCalibrator,
}


# ---------------------------------------------------------------------------------------
# Per-year calibration


def _check_time_event(time: Any, event: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = _as_1d_float(time, "time")
    if len(t) != n:
        raise ValueError(f"time: length {len(t)} does not match risk (n = {n})")
    _check_finite(t, "time")
    if (t < 0).any():
        raise ValueError("time: follow-up times (years) must be >= 0")
    e = _as_1d_float(event, "event")
    if len(e) != n:
        raise ValueError(f"event: length {len(e)} does not match risk (n = {n})")
    _check_finite(e, "event")
    if not np.isin(e, EVENT_CODES).all():
        bad = np.unique(e[~np.isin(e, EVENT_CODES)])[:5].tolist()
        raise ValueError(f"event: codes must be 0 (censored), 1 (breast cancer) or 2 (death from other causes), "
                         f"got {bad}")
    return t, e.astype(np.int64)


def year_status(time: Any, event: Any, year: float) -> tuple[np.ndarray, np.ndarray]:
    """Which women have a known outcome at ``year``, and what it is (the censoring rule).

    Args:
        time: years from the prediction to diagnosis, other death or censoring, shape ``(n,)``.
        event: 0 censored, 1 breast cancer, 2 death from other causes, shape ``(n,)``.
        year: the horizon ``k`` in years.

    Returns:
        ``(known, positive)``, boolean arrays of shape ``(n,)``. ``positive`` is
        ``event == 1 and time <= k``; ``known`` is ``positive or time >= k``. Women censored
        or dead of other causes before ``k`` are not known (and not positive).

    >>> known, pos = year_status([0.5, 0.5, 0.5, 2.0, 3.0], [1, 0, 2, 1, 0], 1)
    >>> known.tolist(), pos.tolist()
    ([True, False, False, True, True], [True, False, False, False, False])
    """
    t = _as_1d_float(time, "time")
    t, e = _check_time_event(t, event, len(t))
    return _status(t, e, year)


def _status(t: np.ndarray, e: np.ndarray, year: float) -> tuple[np.ndarray, np.ndarray]:
    positive = (e == 1) & (t <= year)
    known = positive | (t >= year)
    return known, positive


def _censoring_survival(t: np.ndarray, e: np.ndarray, w: np.ndarray, at: np.ndarray,
                        censored: np.ndarray | None = None) -> np.ndarray:
    """Kaplan–Meier ``G(at−)`` = P(not censored before ``at``); censoring = event 0 or 2 by default.

    At a tie a diagnosis comes before a censoring, and a censoring at time ``s`` leaves the
    woman at risk at ``s`` itself, so ``G(s−)`` excludes it. ``censored`` (bool, shape ``(n,)``)
    redefines censoring, e.g. ``event == 0`` when deaths from other causes compete instead.
    """
    order = np.argsort(t, kind="stable")
    cens = (e != 1) if censored is None else np.asarray(censored, dtype=bool)
    ts, cs, ws = t[order], cens[order], w[order]
    u, start = np.unique(ts, return_index=True)
    censored = np.add.reduceat(ws * cs, start)
    at_risk = np.cumsum(np.add.reduceat(ws, start)[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - censored / at_risk, 1.0)
    g_after = np.cumprod(factor)  # G just after each distinct time
    i = np.searchsorted(u, at, side="left") - 1  # last distinct time strictly before `at`
    return np.where(i >= 0, g_after[np.maximum(i, 0)], 1.0)


def _ipcw(t: np.ndarray, e: np.ndarray, w: np.ndarray, year: float) -> np.ndarray:
    known, positive = _status(t, e, year)
    g = _censoring_survival(t, e, w, np.where(positive, t, float(year)))
    out = np.zeros_like(t)
    ok = known & (g > 0)
    out[ok] = 1.0 / g[ok]
    return out


def ipcw_weights(time: Any, event: Any, year: float, weight: Any = None) -> np.ndarray:
    """Inverse-probability-of-censoring weights for the known-status women at ``year``.

    Censoring here means leaving follow-up for any reason other than breast cancer (event 0
    or 2), as in the censoring rule. ``G`` is its Kaplan–Meier survival curve (weighted by
    ``weight``). A woman diagnosed at ``t <= year`` gets ``1 / G(t−)``, a woman followed to
    ``year`` gets ``1 / G(year−)``, everyone else 0. With these weights the known-status
    subset stands for the whole cohort, so the calibrated risk estimates the risk of
    diagnosis by ``year`` had nobody been censored or died of other causes (the "net" risk).

    Args:
        time, event, weight: as for :meth:`YearlyCalibrator.fit`, shape ``(n,)``.
        year: the horizon in years.

    Returns:
        weights of shape ``(n,)``, 0 for women whose status at ``year`` is unknown.
    """
    t = _as_1d_float(time, "time")
    t, e = _check_time_event(t, event, len(t))
    return _ipcw(t, e, _check_weight(weight, len(t)), year)


class YearlyCalibrator:
    """One calibrator per year for cumulative risks at years 1…``n_years``.

    Args:
        method: ``"isotonic"`` (:class:`IsotonicCalibrator`) or ``"platt"`` (:class:`PlattCalibrator`).
        n_years: number of yearly horizons ``Y``; column ``k - 1`` of ``risk`` is the
            cumulative risk by year ``k``.

    Attributes (after ``fit``):
        calibrators_: list of ``Y`` fitted calibrators, year 1 first.
        n_positive_, n_negative_, n_excluded_: per-year counts of women, lists of length ``Y``
            (excluded = status unknown at that year under the censoring rule).
        weighting_: ``"ipcw"`` if fitted with ``ipcw=True``, else ``"none"``.
    """

    def __init__(self, method: str = "isotonic", n_years: int = 5) -> None:
        if method not in _CLASSES:
            raise ValueError(f"method must be one of {list(_CLASSES)}, got {method!r}")
        if isinstance(n_years, bool) or not isinstance(n_years, (int, np.integer)) or n_years < 1:
            raise ValueError(f"n_years must be a positive integer, got {n_years!r}")
        self.method = method
        self.n_years = int(n_years)
        self.calibrators_: list[IsotonicCalibrator | PlattCalibrator]
        self.n_positive_: list[int]
        self.n_negative_: list[int]
        self.n_excluded_: list[int]

    def _check_risk(self, risk: Any) -> np.ndarray:
        try:
            r = np.asarray(risk, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"risk: not numeric ({e})") from None
        if r.ndim != 2 or r.shape[1] != self.n_years:
            hint = " (for one woman use risk.reshape(1, -1))" if r.ndim == 1 else ""
            raise ValueError(f"risk: expected shape (n, {self.n_years}) (one column per year), "
                             f"got shape {r.shape}{hint}")
        _check_finite(r, "risk")
        _check_unit_interval(r, "risk")
        return r

    def fit(self, risk: Any, time: Any, event: Any, weight: Any = None, *, ipcw: bool = False) -> YearlyCalibrator:
        """Fit one calibrator per year.

        Args:
            risk: predicted cumulative risks, shape ``(n, Y)``, probabilities in [0, 1].
            time: follow-up in years, shape ``(n,)``, >= 0.
            event: 0 censored, 1 breast cancer, 2 death from other causes, shape ``(n,)``.
            weight: optional non-negative weight per woman, shape ``(n,)``.
            ipcw: also weight each known-status woman by the inverse probability of having
                stayed uncensored that long (see :func:`ipcw_weights`). Off by default.

        For year ``k`` only women whose status is known are used (see :func:`year_status`).
        Without ``ipcw`` that subset over-represents early diagnoses when many women are
        censored before ``k`` (a diagnosis is seen however short the follow-up, a negative only
        after ``k`` full years), and the calibrated risks come out too high.

        Raises:
            ValueError: wrong shapes, NaN, values outside their domain, or a year without a
                positive or without a negative woman (the message names the year).
        """
        r = self._check_risk(risk)
        n = r.shape[0]
        t, e = _check_time_event(time, event, n)
        w = _check_weight(weight, n)
        calibrators, n_pos, n_neg, n_exc = [], [], [], []
        for k in range(1, self.n_years + 1):
            known, positive = _status(t, e, k)
            wk = w * _ipcw(t, e, w, k) if ipcw else w
            use = known & (wk > 0)
            npos, nneg = int((use & positive).sum()), int((use & ~positive).sum())
            if npos == 0:
                raise ValueError(f"year {k}: no positive woman (event == 1 with time <= {k}) among the "
                                 f"{int(use.sum())} with known status; cannot calibrate year {k}")
            if nneg == 0:
                raise ValueError(f"year {k}: no negative woman (followed >= {k} years without a diagnosis "
                                 f"by then) among the {int(use.sum())} with known status; "
                                 f"cannot calibrate year {k}")
            cal = _CLASSES[self.method]()
            cal.fit(r[use, k - 1], positive[use].astype(np.float64), wk[use])
            calibrators.append(cal)
            n_pos.append(npos)
            n_neg.append(nneg)
            n_exc.append(int(n - known.sum()))
        self.calibrators_ = calibrators
        self.n_positive_, self.n_negative_, self.n_excluded_ = n_pos, n_neg, n_exc
        self.weighting_ = "ipcw" if ipcw else "none"
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "calibrators_"):
            raise NotFittedError("YearlyCalibrator is not fitted; call fit() or from_dict()/load() first")

    def predict(self, risk: Any) -> np.ndarray:
        """Calibrated cumulative risks, shape ``(n, Y)``, for raw risks ``risk`` of shape ``(n, Y)``.

        Each year is mapped by its own calibrator; then each row is made non-decreasing over
        the years (running maximum; a cumulative risk cannot fall) and clipped to [0, 1].
        """
        self._check_fitted()
        r = self._check_risk(risk)
        out = np.empty_like(r)
        for k, cal in enumerate(self.calibrators_):
            out[:, k] = cal.predict(r[:, k])
        out = np.maximum.accumulate(out, axis=1)
        return np.clip(out, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the format tag and version, the method and one entry per year."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "n_years": self.n_years,
            "weighting": self.weighting_,
            "censoring_rule": ("year k: positive if event == 1 and time <= k; negative if time >= k and not "
                               "positive; otherwise (censored or other death before k) excluded"),
            "years": [
                {"year": k + 1, "n_positive": self.n_positive_[k], "n_negative": self.n_negative_[k],
                 "n_excluded": self.n_excluded_[k], "calibrator": cal.to_dict()}
                for k, cal in enumerate(self.calibrators_)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> YearlyCalibrator:
        """Rebuild from :meth:`to_dict`'s output; ``ValueError`` if it is not one."""
        where = "calibration"
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a dict (JSON object), got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise ValueError(f"{where}: 'format' must be {FORMAT!r}, got {d.get('format')!r}")
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: format_version {d.get('format_version')!r} is not supported; "
                             f"this riskmodel reads version {FORMAT_VERSION}")
        method, n_years, years = d.get("method"), d.get("n_years"), d.get("years")
        try:
            self = cls(method=method, n_years=n_years)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if not isinstance(years, list) or len(years) != self.n_years:
            raise ValueError(f"{where}: 'years' must be a list of {self.n_years} entries")
        calibrators, n_pos, n_neg, n_exc = [], [], [], []
        for k, entry in enumerate(years, start=1):
            if not isinstance(entry, dict) or entry.get("year") != k:
                raise ValueError(f"{where}: entry {k - 1} of 'years' must be a dict with 'year': {k}")
            sub = entry.get("calibrator")
            if not isinstance(sub, dict) or sub.get("method") != self.method:
                raise ValueError(f"{where}: year {k}: calibrator method must be {self.method!r}")
            try:
                calibrators.append(_CLASSES[self.method].from_dict(sub))
            except ValueError as e:
                raise ValueError(f"{where}: year {k}: {e}") from None
            counts = [entry.get(c, 0) for c in ("n_positive", "n_negative", "n_excluded")]
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise ValueError(f"{where}: year {k}: counts must be non-negative integers")
            n_pos.append(counts[0])
            n_neg.append(counts[1])
            n_exc.append(counts[2])
        weighting = d.get("weighting", "none")
        if weighting not in ("none", "ipcw"):
            raise ValueError(f"{where}: 'weighting' must be 'none' or 'ipcw', got {weighting!r}")
        self.calibrators_ = calibrators
        self.n_positive_, self.n_negative_, self.n_excluded_ = n_pos, n_neg, n_exc
        self.weighting_ = weighting
        return self

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as a UTF-8 JSON file."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> YearlyCalibrator:
        """Read a file written by :meth:`save`. ``ValueError`` naming the file if it is not valid."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            d = json.loads(text, parse_constant=_reject_constant)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: not valid JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None

    def __repr__(self) -> str:
        state = "" if hasattr(self, "calibrators_") else ", not fitted"
        return f"YearlyCalibrator(method={self.method!r}, n_years={self.n_years}{state})"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")
