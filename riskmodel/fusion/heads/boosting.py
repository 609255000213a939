"""(c) :class:`XGBoostHead`: xgboost ``survival:cox`` with a Breslow baseline, or ``survival:aft``."""

from __future__ import annotations

from typing import Any

import numpy as np

from riskmodel.fusion.heads.base import (
    SurvivalHead,
    breslow_baseline,
    check_positive_float,
    check_positive_int,
    check_state,
    check_time_event,
    check_X,
    state_array,
    state_baseline,
    state_n_features,
    step_at,
)

__all__ = ["XGBoostHead"]

_OBJECTIVES = ("survival:cox", "survival:aft")
#: Smallest time given to xgboost (years): AFT needs log(time), Cox's sign marks censoring.
_MIN_TIME = 1e-6


class XGBoostHead(SurvivalHead):
    """Gradient-boosted trees (xgboost) for the breast-cancer hazard.

    * ``objective="survival:cox"``: label = time, negated for censored rows (censored and
      other deaths; zero times are moved to 1e-6 years so the sign is kept). The cumulative
      hazard is ``H1(t | x) = H0(t) · exp(m(x) − m̄)`` with the tree margin ``m`` and the Breslow
      baseline ``H0`` (:func:`breslow_baseline`) computed on the training data from the fitted
      margins (a step function, flat after the last training event).
    * ``objective="survival:aft"``: accelerated failure time with normal errors,
      ``log T = m(x) + aft_scale · ε``; censored rows are intervals ``[time, ∞)``. Then
      ``H1(t | x) = −log Φ̄((log t − m(x)) / aft_scale)``. xgboost does not estimate the scale,
      so the absolute level depends on ``aft_scale``: it ranks as well as the Cox objective on
      the synthetic cohorts but its mean 5-year risk was ~28 % too low at ``aft_scale=1``.
      Prefer ``survival:cox`` (or recalibrate) when absolute risks matter.

    Horizons beyond the longest training follow-up are refused.

    Parameters:
        n_estimators: boosting rounds.
        max_depth: tree depth.
        learning_rate: shrinkage (xgboost ``eta``).
        objective: ``"survival:cox"`` or ``"survival:aft"``.
        seed: xgboost's random seed.
        aft_scale: σ of the AFT normal errors (``aft_loss_distribution_scale``).
        n_jobs: threads (None: xgboost's default, all cores).

    Attributes:
        booster_: the fitted ``xgboost.Booster``.
        margin_offset_: mean training margin m̄ (Cox).
        baseline_times_, baseline_cumhaz_: Breslow ``H0`` at the distinct training event times (Cox).
        max_time_: longest training follow-up, years.
    """

    def __init__(self, n_estimators: int = 200, max_depth: int = 3, learning_rate: float = 0.05,
                 objective: str = "survival:cox", seed: int = 0, aft_scale: float = 1.0, n_jobs: int | None = None):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.objective = objective
        self.seed = seed
        self.aft_scale = aft_scale
        self.n_jobs = n_jobs

    def _xgb_params(self) -> dict[str, Any]:
        if self.objective not in _OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}: choose 'survival:cox' or 'survival:aft'")
        check_positive_int("n_estimators", self.n_estimators)
        check_positive_int("max_depth", self.max_depth)
        check_positive_int("seed", self.seed, allow_zero=True)
        check_positive_float("learning_rate", self.learning_rate)
        params: dict[str, Any] = {"objective": self.objective, "max_depth": self.max_depth,
                                  "eta": self.learning_rate, "seed": self.seed, "tree_method": "hist",
                                  "verbosity": 0}
        if self.n_jobs is not None:
            params["nthread"] = check_positive_int("n_jobs", self.n_jobs)
        if self.objective == "survival:aft":
            params.update(eval_metric="aft-nloglik", aft_loss_distribution="normal",
                          aft_loss_distribution_scale=check_positive_float("aft_scale", self.aft_scale))
        else:
            params["eval_metric"] = "cox-nloglik"
        return params

    def fit(self, X: Any, time: Any, event: Any) -> XGBoostHead:
        """Fit on ``X`` ``(n, p)``, ``time`` ``(n,)`` years, ``event`` ``(n,)`` 0/1/2. Returns self."""
        import xgboost as xgb

        params = self._xgb_params()
        x = check_X(X)
        t, e = check_time_event(time, event, x.shape[0])
        tt = np.maximum(t, _MIN_TIME)
        cancer = e == 1
        if self.objective == "survival:cox":
            dtrain = xgb.DMatrix(x, label=np.where(cancer, tt, -tt))
        else:
            dtrain = xgb.DMatrix(x)
            dtrain.set_float_info("label_lower_bound", tt)
            dtrain.set_float_info("label_upper_bound", np.where(cancer, tt, np.inf))
        booster = xgb.train(params, dtrain, num_boost_round=self.n_estimators)
        self.booster_ = booster
        self.n_features_in_ = x.shape[1]
        self.max_time_ = float(t.max())
        self._set_training_counts(e)
        if self.objective == "survival:cox":
            margin = self._raw_score(x)
            self.margin_offset_ = float(margin.mean())
            self.baseline_times_, self.baseline_cumhaz_ = breslow_baseline(t, e, np.exp(margin - self.margin_offset_))
        return self

    def _raw_score(self, x: np.ndarray) -> np.ndarray:
        """Tree margin ``(n,)`` of checked inputs ``x``."""
        import xgboost as xgb

        return self.booster_.predict(xgb.DMatrix(x), output_margin=True).astype(np.float64)

    def _max_year(self) -> tuple[float, str]:
        return self.max_time_, "the longest training follow-up"

    def _cumulative_hazard(self, x: np.ndarray, years: np.ndarray) -> np.ndarray:
        m = self._raw_score(x)
        if self.objective == "survival:cox":
            h0 = step_at(self.baseline_times_, self.baseline_cumhaz_, years)
            return np.exp(m - self.margin_offset_)[:, None] * h0[None, :]
        from scipy.special import log_ndtr

        with np.errstate(divide="ignore"):
            z = (np.log(years)[None, :] - m[:, None]) / self.aft_scale
        return np.maximum(-log_ndtr(-z), 0.0)  # −log P(T > t); 0 at t = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: parameters, the booster as xgboost JSON text, the Breslow baseline."""
        d = self._state_header()
        d["params"] = self.get_params()
        d["booster_json"] = bytes(self.booster_.save_raw("json")).decode("utf-8")
        d["max_time"] = self.max_time_
        if self.objective == "survival:cox":
            d.update(margin_offset=self.margin_offset_, baseline_times=self.baseline_times_.tolist(),
                     baseline_cumhaz=self.baseline_cumhaz_.tolist())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XGBoostHead:
        """Rebuild a fitted head from :meth:`to_dict`'s output."""
        import xgboost as xgb

        d = check_state(d, cls)
        head = cls(**d["params"])
        head._xgb_params()
        booster = xgb.Booster()
        booster.load_model(bytearray(d["booster_json"].encode("utf-8")))
        head.booster_ = booster
        where = cls.__name__
        head.n_features_in_ = state_n_features(d, where)
        head.max_time_ = check_positive_float(f"{where}: max_time", d["max_time"])
        if head.objective == "survival:cox":
            head.margin_offset_ = float(state_array(d, "margin_offset", where, shape=()))
            head.baseline_times_, head.baseline_cumhaz_ = state_baseline(d, where)
        return head
