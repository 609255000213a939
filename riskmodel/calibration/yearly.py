"""Per-year calibration of cumulative risks (:class:`YearlyCalibrator`), stored as plain JSON."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from riskmodel.calibration.checks import check_finite, check_unit_interval, check_weight
from riskmodel.calibration.isotonic import IsotonicCalibrator
from riskmodel.calibration.platt import PlattCalibrator
from riskmodel.estimators import estimator_repr
from riskmodel.jsonstate import loads_strict
from riskmodel.survival import check_time_event, ipcw_weights, year_status

__all__ = ["FORMAT", "FORMAT_VERSION", "METHODS", "YearlyCalibrator"]

#: The ``format`` tag and version written by :meth:`YearlyCalibrator.to_dict`.
FORMAT = "riskmodel.calibration"
FORMAT_VERSION = 1

#: Calibration methods by name.
METHODS = ("isotonic", "platt")

_CLASSES: dict[str, type[IsotonicCalibrator] | type[PlattCalibrator]] = {
    "isotonic": IsotonicCalibrator,
    "platt": PlattCalibrator,
}


class YearlyCalibrator(BaseEstimator):
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
        _check_params(method, n_years)  # early, as before; checked again in fit (set_params skips __init__)
        self.method = method
        self.n_years = n_years
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
        check_finite(r, "risk")
        check_unit_interval(r, "risk")
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
        _check_params(self.method, self.n_years)
        r = self._check_risk(risk)
        n = r.shape[0]
        t, e = check_time_event(time, event, n=n, n_from="risk")
        w = check_weight(weight, n)
        calibrators, n_pos, n_neg, n_exc = [], [], [], []
        for k in range(1, self.n_years + 1):
            known, positive = year_status(t, e, k)
            wk = w * ipcw_weights(t, e, k, w) if ipcw else w
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
        check_is_fitted(self, "calibrators_",
                        msg="YearlyCalibrator is not fitted; call fit() or from_dict()/load() first")

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
            "n_years": int(self.n_years),
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
            d = loads_strict(text)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: not valid JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None

    def __repr__(self) -> str:
        """``<YearlyCalibrator(method='platt'): fitted on 5 years, year 5: 120 positive, 4,500 negative,
        380 excluded, weighting ipcw>``."""
        if not hasattr(self, "calibrators_"):
            return estimator_repr(self, None)
        return estimator_repr(self, f"fitted on {len(self.calibrators_)} years, year {len(self.calibrators_)}: "
                              f"{self.n_positive_[-1]:,} positive, {self.n_negative_[-1]:,} negative, "
                              f"{self.n_excluded_[-1]:,} excluded, weighting {self.weighting_}")


def _check_params(method: Any, n_years: Any) -> None:
    """ValueError unless ``method`` is one of :data:`METHODS` and ``n_years`` an integer >= 1."""
    if method not in _CLASSES:
        raise ValueError(f"method must be one of {list(_CLASSES)}, got {method!r}")
    if isinstance(n_years, bool) or not isinstance(n_years, (int, np.integer)) or n_years < 1:
        raise ValueError(f"n_years must be a positive integer, got {n_years!r}")

