"""Mirai's per-year calibrators as JSON parameters, applied exactly as Mirai applies them.

Mirai (fork ``reginabarzilaygroup/Mirai`` ≥ v0.8.0, ``onconet/models/calibrator.py``) stores one calibrator per
year in a pickled dict ``{year index 0..4: MiraiCalibrator}``. Each holds four numbers taken from scikit-learn's
``CalibratedClassifierCV(method="sigmoid")`` around a ``LogisticRegression`` on the raw probability:

    z = calibrator_slope · (base_estimator_slope · p + base_estimator_offset) + calibrator_offset
    p_cal = 1 / (1 + exp(z))

Mirai applies year ``k``'s calibrator to the raw year-``k`` probability only; nothing makes the calibrated values
rise with the year (that is left to the caller). This module keeps the four numbers per year and computes the same
expression in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FORMAT", "MiraiCalibration", "YearParameters"]

#: ``format`` tag of :meth:`MiraiCalibration.to_dict`.
FORMAT = "riskmodel.mirai-calibration"
FORMAT_VERSION = 1
#: The names Mirai's calibrator objects give the four numbers, in the order of the formula.
PARAMETERS = ("base_estimator_slope", "base_estimator_offset", "calibrator_slope", "calibrator_offset")


@dataclass(frozen=True)
class YearParameters:
    """The four numbers of one year's calibrator (see the module docstring for the formula)."""

    base_estimator_slope: float
    base_estimator_offset: float
    calibrator_slope: float
    calibrator_offset: float

    def predict(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw probabilities ``p`` (any shape, float64), as Mirai computes them."""
        z = self.base_estimator_slope * np.asarray(p, dtype=np.float64) + self.base_estimator_offset
        z = self.calibrator_slope * z + self.calibrator_offset
        return 1.0 / (1.0 + np.exp(z))


@dataclass(frozen=True)
class MiraiCalibration:
    """Mirai's calibrators, year 1 first (``years[k]`` maps the raw year-``k + 1`` probability)."""

    years: tuple[YearParameters, ...]

    def predict(self, raw: Any) -> np.ndarray:
        """Calibrated risks of shape ``(n, Y)`` for raw risks of shape ``(n, Y)``; each year on its own (no
        monotone adjustment, as Mirai)."""
        r = np.asarray(raw, dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != len(self.years):
            raise ValueError(f"raw: expected shape (n, {len(self.years)}), got {r.shape}")
        return np.stack([cal.predict(r[:, k]) for k, cal in enumerate(self.years)], axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: format tag, the formula, and the four numbers per year."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "formula": "p_cal = 1 / (1 + exp(calibrator_slope * (base_estimator_slope * p + base_estimator_offset) "
                       "+ calibrator_offset)), each year on its own",
            "years": [{"year": k + 1, **{name: getattr(y, name) for name in PARAMETERS}}
                      for k, y in enumerate(self.years)],
        }

    @classmethod
    def from_dict(cls, d: Any) -> MiraiCalibration:
        """Rebuild from :meth:`to_dict`; ``ValueError`` naming the entry otherwise."""
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"Mirai calibration: expected a dict with format {FORMAT!r} version {FORMAT_VERSION}")
        years = d.get("years")
        if not isinstance(years, list) or not years:
            raise ValueError("Mirai calibration: 'years' must be a non-empty list")
        out = []
        for k, entry in enumerate(years, start=1):
            if not isinstance(entry, dict) or entry.get("year") != k:
                raise ValueError(f"Mirai calibration: entry {k - 1} must be a dict with 'year': {k}")
            out.append(YearParameters(*(_finite(entry.get(name), f"year {k}: {name}") for name in PARAMETERS)))
        return cls(tuple(out))

    @classmethod
    def from_pickled(cls, obj: Any, where: str) -> MiraiCalibration:
        """From Mirai's unpickled calibrator dict ``{0: record, …, 4: record}`` whose records carry the four
        attributes (as :func:`riskmodel.mirai.unpickle.read_pickle` returns it). ``ValueError`` naming what is
        missing otherwise (e.g. the pre-v0.8.0 scikit-learn pickles, which are refused earlier by the unpickler)."""
        if not isinstance(obj, dict) or not obj:
            raise ValueError(f"{where}: expected a dict of per-year calibrators, got {type(obj).__name__}")
        keys = sorted(obj, key=lambda k: (not isinstance(k, int), k))
        if keys != list(range(len(obj))):
            raise ValueError(f"{where}: expected year keys 0..{len(obj) - 1}, got {sorted(map(repr, obj))}")
        years = []
        for k in keys:
            attrs = getattr(obj[k], "attrs", None)
            if getattr(obj[k], "fullname", "") != "onconet.models.calibrator.MiraiCalibrator" or attrs is None:
                raise ValueError(f"{where}: year key {k}: expected an onconet MiraiCalibrator, "
                                 f"got {getattr(obj[k], 'fullname', type(obj[k]).__name__)}")
            years.append(YearParameters(*(_finite(_scalar(attrs.get(name), f"{where}: key {k}: {name}"),
                                                  f"{where}: key {k}: {name}") for name in PARAMETERS)))
        return cls(tuple(years))


def _scalar(v: Any, where: str) -> float:
    """A Python float from a number, a numpy scalar or a one-element array (``coef_[0]`` is shape ``(1,)``)."""
    a = np.asarray(v) if v is not None else None
    if a is None or a.size != 1 or a.dtype.kind not in "fiu":
        raise ValueError(f"{where}: expected one number, got {v!r}")
    return float(a.reshape(()))


def _finite(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"Mirai calibration: {where}: expected a finite number, got {v!r}")
    return float(v)
