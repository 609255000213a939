"""Input checks shared by the calibrators: probabilities, binary outcomes, weights, saved numbers.

Each raises ValueError naming the argument (or the saved key) and the rule broken.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "as_1d_float",
    "check_binary",
    "check_both_classes",
    "check_finite",
    "check_prob",
    "check_unit_interval",
    "check_weight",
    "finite_number",
    "float_list",
]


def as_1d_float(a: Any, name: str) -> np.ndarray:
    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not numeric ({e})") from None
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of shape (n,), got shape {x.shape}")
    return x


def check_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise ValueError(f"{name}: {int(bad.sum())} value(s) are NaN or infinite (first at flat index {i}); "
                         "calibration needs a known value for every woman")


def check_prob(p: Any, name: str = "p") -> np.ndarray:
    """``p`` as float64 of shape ``(n,)``, finite and in [0, 1]."""
    x = as_1d_float(p, name)
    check_finite(x, name)
    check_unit_interval(x, name)
    return x


def check_unit_interval(x: np.ndarray, name: str) -> None:
    bad = (x < 0) | (x > 1)
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise ValueError(f"{name}: {int(bad.sum())} value(s) outside [0, 1] (first at flat index {i}: "
                         f"{x.ravel()[i]!r}); expected probabilities")


def check_binary(y: Any, n: int, name: str = "y") -> np.ndarray:
    x = as_1d_float(y, name)
    if len(x) != n:
        raise ValueError(f"{name}: length {len(x)} does not match p (length {n})")
    check_finite(x, name)
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"{name}: outcomes must be binary (0/1 or False/True), got {np.unique(x)[:5].tolist()}")
    return x


def check_weight(weight: Any, n: int) -> np.ndarray:
    if weight is None:
        return np.ones(n)
    w = as_1d_float(weight, "weight")
    if len(w) != n:
        raise ValueError(f"weight: length {len(w)} does not match the data (length {n})")
    check_finite(w, "weight")
    if (w < 0).any():
        raise ValueError("weight: weights must be non-negative")
    return w


def check_both_classes(y: np.ndarray, w: np.ndarray, where: str) -> None:
    for label, name in ((1.0, "positive (y == 1)"), (0.0, "negative (y == 0)")):
        if not (w[y == label] > 0).any():
            raise ValueError(f"{where}: no {name} outcomes with positive weight; a calibrator needs both")


def float_list(x: Any, key: str, where: str) -> np.ndarray:
    if not isinstance(x, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x):
        raise ValueError(f"{where}: {key!r} must be a list of numbers")
    a = np.asarray(x, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {key!r} holds NaN or infinite values")
    return a


def finite_number(d: dict, key: str, where: str) -> float:
    v = d.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise ValueError(f"{where}: {key!r} must be a finite number, got {v!r}")
    return float(v)
