"""The survival heads' shared interface and checks (heads on a fused design matrix: exam
embedding columns + risk-factor columns).

Three scikit-learn estimators share one interface:

* ``fit(X, time, event)``: ``X`` float ``(n, p)`` (embedding and factor columns, already built,
  e.g. with :class:`~riskmodel.fusion.FactorEncoder`), ``time`` years from the exam to diagnosis,
  death or censoring ``(n,)``, ``event`` ``(n,)`` coded 0 censored, 1 invasive breast cancer,
  2 death from other causes.
* ``predict_cumulative_hazard(X, years)`` → ``(n, len(years))`` cause-specific cumulative hazard
  of breast cancer ``H1(t)``.
* ``predict_net_risk(X, years)`` (alias ``predict_risk``) → ``(n, len(years))``
  ``1 − exp(−H1(t))``: the *net* probability of breast cancer by each year had nobody died of
  other causes. It is non-decreasing along
  (increasing) ``years`` and lies in [0, 1]. For the absolute risk with competing mortality,
  pass the cumulative hazard to :func:`riskmodel.fusion.absolute_risk`.
* ``decision_function(X)``: the raw score before the link (cumulative logits, Cox linear
  predictor or tree margin; see :meth:`SurvivalHead.decision_function`).

**Death from other causes** (``event == 2``) is treated as censoring at the time of death: every
head models the cause-specific hazard of breast cancer, whose integral gives the net risk. This
assumes that, given ``X``, other deaths carry no information on breast-cancer hazard.

Heads:

* :class:`TorchHazardHead`: an MLP (or a linear map) into Mirai's additive-hazard layer
  (:class:`riskmodel.nn.AdditiveHazardHead`), trained with the censoring-aware masked BCE of
  :mod:`riskmodel.training.losses`, optionally with IPCW weights (default) that remove the
  known-status subset's over-representation of early cancers.
* :class:`CoxHead`: lifelines' penalised Cox model on the factor columns plus a PCA of the
  embedding columns, with the Breslow baseline.
* :class:`XGBoostHead`: xgboost ``survival:cox`` with a Breslow baseline computed here, or
  ``survival:aft`` (normal errors on log time).

Nothing is pickled: each head has ``to_dict()`` / ``from_dict()`` with JSON-safe state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from riskmodel.estimators import estimator_repr

# breslow_baseline: the Breslow estimate is riskmodel.survival's, re-exported here (a public name of the heads).
from riskmodel.survival import YEARS, breslow_baseline
from riskmodel.survival import check_time_event as _check_time_event

__all__ = [
    "DEFAULT_YEARS",
    "FORMAT_PREFIX",
    "FORMAT_VERSION",
    "MAX_COEF",
    "MAX_FEATURES",
    "SurvivalHead",
    "breslow_baseline",
    "check_X",
    "check_positive_float",
    "check_positive_int",
    "check_state",
    "check_time_event",
    "check_years",
    "state_array",
    "state_baseline",
    "state_n_features",
    "step_at",
]


#: ``format`` tag prefix of the heads' ``to_dict()``.
FORMAT_PREFIX = "riskmodel.fusion."
FORMAT_VERSION = 1
#: The heads' default horizons (years): :data:`riskmodel.survival.YEARS`, the same object.
DEFAULT_YEARS = YEARS


# ---------------------------------------------------------------------------- validation


def check_X(X: Any, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """``X`` as a finite float64 array of shape ``(n, p)``."""
    try:
        x = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape (n, p)") from None
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (n, p), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if not np.isfinite(x).all():
        r, c = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name} contains NaN or infinite values (first at row {r}, column {c}); "
                         "impute before the head (e.g. FactorEncoder)")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} has {x.shape[1]} columns, but the head was fitted on {n_features}")
    return x


def check_time_event(time: Any, event: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The heads' fit check: :func:`riskmodel.survival.check_time_event` with ``n`` rows and a cancer required.

    A thin adapter (the rules and messages are :mod:`riskmodel.survival`'s): ``time`` float64 ``(n,)``,
    finite and >= 0, ``event`` int64 ``(n,)`` in {0, 1, 2}, with at least one breast cancer (code 1);
    ``n`` is the number of rows of ``X`` and is named so in a length message.
    """
    return _check_time_event(time, event, n=n, n_from="X's rows", require_cancer=True)


def check_years(years: Any, max_year: float | None = None, what: str = "") -> np.ndarray:
    """``years`` as a strictly increasing float64 ``(m,)`` array in [0, max_year]."""
    y = np.atleast_1d(np.asarray(years, dtype=np.float64))
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"years must be a non-empty 1-D sequence of horizons in years, got shape {y.shape}")
    if not np.isfinite(y).all() or (y < 0).any():
        raise ValueError(f"years must be finite and >= 0, got {y.tolist()}")
    if (np.diff(y) <= 0).any():
        raise ValueError(f"years must be strictly increasing, got {y.tolist()}")
    if max_year is not None and y[-1] > max_year + 1e-12:
        raise ValueError(f"years: {y[-1]:g} is beyond {what} ({max_year:g} years); the head cannot extrapolate")
    return y


def check_positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    """``value`` as an int ≥ 1 (≥ 0 with ``allow_zero``); ValueError naming ``name`` otherwise (bools refused)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value >= 1)
    if not ok:
        raise ValueError(f"{name}={value!r}: must be an integer {'>= 0' if allow_zero else '>= 1'}")
    return int(value)


def check_positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (≥ 0 with ``allow_zero``); ValueError naming ``name`` otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: must be a number") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r}: must be a finite number {'>=' if allow_zero else '>'} 0")
    return v


#: Largest |coefficient| a loaded Cox head may hold: ``exp(709.78…)`` is the largest float64, so any
#: larger coefficient overflows the hazard ratio of a covariate one unit from its training mean.
MAX_COEF = math.log(np.finfo(np.float64).max)
#: Most input columns a loaded head may take (embedding plus factors; a Mirai embedding has 512).
MAX_FEATURES = 100_000


def state_array(d: dict[str, Any], key: str, where: str, shape: tuple[int, ...] | None = None,
                 bound: float | None = None) -> np.ndarray:
    """``d[key]`` of a saved head as a finite float64 array (of ``shape``, within ``±bound``).

    Raises:
        ValueError: naming ``where`` and ``key``.
    """
    try:
        a = np.asarray(d[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: '{key}' must be a (nested) list of numbers") from None
    if shape is not None and a.shape != shape:
        raise ValueError(f"{where}: '{key}' has shape {list(a.shape)}, expected {list(shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: '{key}' holds NaN or infinite values")
    if bound is not None and a.size and np.abs(a).max() > bound:
        raise ValueError(f"{where}: '{key}' holds {a.flat[np.abs(a).argmax()]:g}, beyond ±{bound:.6g}")
    return a


def state_baseline(d: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """The Breslow baseline of a saved head: times ≥ 0 strictly increasing, and a cumulative
    hazard of the same length, ≥ 0 and non-decreasing."""
    times = state_array(d, "baseline_times", where)
    if times.ndim != 1 or times.size == 0 or (times < 0).any() or (np.diff(times) <= 0).any():
        raise ValueError(f"{where}: 'baseline_times' must be a non-empty list of times >= 0, strictly increasing")
    cum = state_array(d, "baseline_cumhaz", where, shape=times.shape)
    if (cum < 0).any() or (np.diff(cum) < 0).any():
        raise ValueError(f"{where}: 'baseline_cumhaz' must be >= 0 and non-decreasing (a cumulative hazard)")
    return times, cum


def state_n_features(d: dict[str, Any], where: str) -> int:
    """``d["n_features_in"]`` of a saved head: an int in [1, :data:`MAX_FEATURES`]."""
    p = check_positive_int(f"{where}: n_features_in", d["n_features_in"])
    if p > MAX_FEATURES:
        raise ValueError(f"{where}: n_features_in={p} exceeds {MAX_FEATURES}")
    return p


def check_state(d: Any, cls: type) -> dict[str, Any]:
    """``d`` if it is a saved state of head class ``cls`` in this :data:`FORMAT_VERSION`; ValueError otherwise."""
    if not isinstance(d, dict) or d.get("format") != FORMAT_PREFIX + cls.__name__:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"not a {cls.__name__} state: format is {got!r}, expected {FORMAT_PREFIX + cls.__name__!r}")
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{cls.__name__} state has format_version {d.get('format_version')!r}; "
                         f"this riskmodel reads {FORMAT_VERSION}")
    return d


# ---------------------------------------------------------------------------- shared parts


class SurvivalHead(BaseEstimator):
    """Shared prediction interface; subclasses implement ``fit``, ``_raw_score`` and ``_cumulative_hazard``.

    Fitted heads set ``n_features_in_``, and after ``fit`` (not after ``from_dict``: the saved
    state does not hold them) ``n_samples_`` and ``n_events_`` (breast-cancer events), which
    the ``repr`` reports.
    """

    def decision_function(self, X: Any) -> np.ndarray:
        """The head's raw score before its link to a hazard (one name for all heads).

        :class:`~riskmodel.fusion.heads.TorchHazardHead`: cumulative logits ``(n, n_years)`` at
        years 1 … ``n_years``; :class:`~riskmodel.fusion.heads.CoxHead`: the linear predictor
        ``(z − z̄) · β`` ``(n,)`` (log hazard ratio against the training mean);
        :class:`~riskmodel.fusion.heads.XGBoostHead`: the tree margin ``(n,)`` (log relative
        hazard for ``survival:cox``, mean log time for ``survival:aft``).

        Args:
            X: ``(n, p)`` float array with the columns used at fit.
        """
        check_is_fitted(self, "n_features_in_")
        return self._raw_score(check_X(X, n_features=self.n_features_in_))

    def predict_cumulative_hazard(self, X: Any, years: Sequence[float] = DEFAULT_YEARS) -> np.ndarray:
        """Cause-specific cumulative hazard of breast cancer ``H1(t)`` at each of ``years``.

        Args:
            X: ``(n, p)`` float array with the columns used at fit.
            years: strictly increasing horizons in years (within the head's range).

        Returns:
            float64 array ``(n, len(years))``, ≥ 0 and non-decreasing along each row.
        """
        check_is_fitted(self, "n_features_in_")
        x = check_X(X, n_features=self.n_features_in_)
        y = check_years(years, *self._max_year())
        return self._cumulative_hazard(x, y)

    def predict_net_risk(self, X: Any, years: Sequence[float] = DEFAULT_YEARS) -> np.ndarray:
        """Net probability of breast cancer by each of ``years``: ``1 − exp(−H1(t))``.

        This is the cause-specific ("net") risk before competing mortality; use
        :func:`riskmodel.fusion.absolute_risk` on :meth:`predict_cumulative_hazard` for the
        absolute risk.

        Returns:
            float64 array ``(n, len(years))`` in [0, 1], non-decreasing along each row.
        """
        h = self.predict_cumulative_hazard(X, years)
        return np.clip(-np.expm1(-h), 0.0, 1.0)

    def predict_risk(self, X: Any, years: Sequence[float] = DEFAULT_YEARS) -> np.ndarray:
        """Alias of :meth:`predict_net_risk` (the net risk, not :func:`riskmodel.predict_risk`'s absolute risk)."""
        return self.predict_net_risk(X, years)

    def __repr__(self) -> str:
        """``<CoxHead: fitted on 9,939 women, 121 events, 14 covariates>`` (parameters that differ from the
        defaults in brackets; ``loaded`` instead of the counts for a head rebuilt by ``from_dict``)."""
        if not hasattr(self, "n_features_in_"):
            return estimator_repr(self, None)
        if hasattr(self, "n_samples_"):
            fitted = f"fitted on {self.n_samples_:,} women, {self.n_events_:,} events, {self._size()}"
        else:
            fitted = f"loaded, {self._size()}"
        return estimator_repr(self, fitted)

    def _size(self) -> str:
        """What the fitted model's size is, for the ``repr`` (``"14 inputs"``)."""
        return f"{self.n_features_in_:,} inputs"

    def _set_training_counts(self, event: np.ndarray) -> None:
        """Record ``n_samples_`` and ``n_events_`` (event code 1) of the training data."""
        self.n_samples_ = int(event.size)
        self.n_events_ = int((event == 1).sum())

    def _max_year(self) -> tuple[float, str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _cumulative_hazard(self, x: np.ndarray, years: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _raw_score(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _state_header(self) -> dict[str, Any]:
        check_is_fitted(self, "n_features_in_")
        return {"format": FORMAT_PREFIX + type(self).__name__, "format_version": FORMAT_VERSION,
                "n_features_in": int(self.n_features_in_)}


def step_at(times: np.ndarray, cumhaz: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Right-continuous step function: ``cumhaz`` at the last ``times`` ≤ ``at`` (0 before)."""
    i = np.searchsorted(times, at, side="right") - 1
    return np.where(i >= 0, cumhaz[np.maximum(i, 0)], 0.0)
