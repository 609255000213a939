"""(b) :class:`CoxHead`: lifelines' penalised Cox model on the factors plus a PCA of the embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from riskmodel.fusion.heads.base import (
    MAX_COEF,
    SurvivalHead,
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

__all__ = ["CoxHead"]

def _resolve_columns(spec: Any, p: int) -> np.ndarray:
    """Embedding column indices from a slice, a sequence of ints or None."""
    if spec is None:
        return np.zeros(0, dtype=np.intp)
    if isinstance(spec, slice):
        return np.arange(p)[spec]
    try:
        idx = np.asarray(list(spec))
    except TypeError:
        raise ValueError(f"embedding_columns must be None, a slice or a list of column indices, got {spec!r}") from None
    if idx.size and (idx.dtype.kind not in "iu" or idx.ndim != 1):
        raise ValueError(f"embedding_columns must hold integer column indices, got {spec!r}")
    idx = idx.astype(np.intp)
    if ((idx < -p) | (idx >= p)).any():
        raise ValueError(f"embedding_columns {spec!r} are out of range for X with {p} columns")
    idx = np.where(idx < 0, idx + p, idx)
    if np.unique(idx).size != idx.size:
        raise ValueError(f"embedding_columns has repeated indices: {spec!r}")
    return idx


def _columns_to_json(spec: Any) -> Any:
    if isinstance(spec, slice):
        return {"slice": [spec.start, spec.stop, spec.step]}
    return None if spec is None else [int(i) for i in spec]


def _columns_from_json(spec: Any) -> Any:
    if isinstance(spec, dict):
        return slice(*spec["slice"])
    return spec


def _fit_cox(df: Any, penalizer: float, l1_ratio: float) -> Any:
    """lifelines' Cox fit on ``df`` (columns ``_time``, ``_event`` and the covariates).

    lifelines' Newton–Raphson with its default step (0.95) can overshoot and stop at a point
    far from the optimum with only a ConvergenceWarning (seen with rare binary covariates such as
    carrier indicators: coefficients of −60 and a log-likelihood of −2,094 where the optimum is
    −1,147). Then the fit is repeated with smaller steps (0.5, 0.25), which reach the same optimum
    when the first fit was fine; if none converges, ValueError.
    """
    import warnings

    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceWarning

    for step in (None, 0.5, 0.25):
        cph = CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            cph.fit(df, duration_col="_time", event_col="_event",
                    fit_options=None if step is None else {"step_size": step})
        if not any(issubclass(w.category, ConvergenceWarning) for w in caught):
            for w in caught:  # pass on anything else lifelines had to say
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            return cph
    raise ValueError("the Cox model did not converge even with small Newton steps; raise the penalizer "
                     "(CoxHead(penalizer=...)) or drop near-constant columns")


class CoxHead(SurvivalHead):
    """Penalised Cox model (lifelines) on the factor columns plus a PCA of the embedding.

    ``H1(t | x) = H0(t) · exp((z − z̄) · β)`` with ``z = [factor columns, PCA scores of the
    embedding columns]``, ``H0`` lifelines' Breslow baseline at the training mean ``z̄`` (a step
    function, flat after the last training event time). Columns that are constant in the
    training data are dropped (coefficient 0). Horizons beyond the longest training follow-up
    are refused.

    Parameters:
        penalizer: strength of the L2 penalty (elastic net if ``l1_ratio > 0``) on the
            standardized coefficients, **per event**: lifelines' ``CoxPHFitter`` receives
            ``penalizer × events / n``. lifelines scales its penalty by the number of rows ``n``,
            while the information about a coefficient grows with the number of events; with a
            rare outcome (about 1–2% of women diagnosed) its own scaling shrinks every
            coefficient heavily (with it, ``benchmarks/hybrid_vs_truth.py`` measured a hybrid
            calibration slope of 1.90; ``docs/fusion.md``). Per event, 0.01 shrinks by about 1%.
        n_components: PCA components kept from the embedding columns (capped by their number;
            0 leaves the embedding out).
        embedding_columns: which columns of ``X`` are the exam embedding: a slice or a list of
            indices; ``None`` = no embedding (all columns are factors).
        l1_ratio: lifelines' elastic-net mix.

    Attributes:
        pca_mean_ ``(d,)``, pca_components_ ``(k, d)``: the embedding's PCA.
        feature_names_: names of the Cox covariates (``x<j>`` factor columns, ``pc<k>``).
        kept_: boolean mask over ``feature_names_`` of non-constant covariates.
        coef_ ``(m,)``, z_mean_ ``(m,)``: coefficients and training means of the kept covariates.
        baseline_times_, baseline_cumhaz_: Breslow ``H0`` at the distinct training durations.
        max_time_: longest training follow-up, years.
        lifelines_penalizer_: the penalizer passed to lifelines (``penalizer × events / n``).
        lifelines_model_: the fitted ``CoxPHFitter`` (None after :meth:`from_dict`).
    """

    def __init__(self, penalizer: float = 0.01, n_components: int = 8, embedding_columns: Any = None,
                 l1_ratio: float = 0.0):
        self.penalizer = penalizer
        self.n_components = n_components
        self.embedding_columns = embedding_columns
        self.l1_ratio = l1_ratio

    def _design(self, x: np.ndarray) -> np.ndarray:
        emb = self.embedding_idx_
        factors = np.delete(x, emb, axis=1)
        if self.pca_components_.shape[0] == 0:
            return factors
        scores = (x[:, emb] - self.pca_mean_) @ self.pca_components_.T
        return np.hstack([factors, scores])

    def fit(self, X: Any, time: Any, event: Any) -> CoxHead:
        """Fit on ``X`` ``(n, p)``, ``time`` ``(n,)`` years, ``event`` ``(n,)`` 0/1/2. Returns self."""
        import pandas as pd

        check_positive_float("penalizer", self.penalizer, allow_zero=True)
        check_positive_int("n_components", self.n_components, allow_zero=True)
        if check_positive_float("l1_ratio", self.l1_ratio, allow_zero=True) > 1:
            raise ValueError(f"l1_ratio={self.l1_ratio!r}: must be in [0, 1] (lifelines' elastic-net mix)")
        x = check_X(X)
        t, e = check_time_event(time, event, x.shape[0])
        n, p = x.shape
        emb = _resolve_columns(self.embedding_columns, p)
        self.embedding_idx_ = emb
        k = min(self.n_components, emb.size, n - 1)
        if emb.size and k > 0:
            e_mat = x[:, emb]
            self.pca_mean_ = e_mat.mean(axis=0)
            _, _, vt = np.linalg.svd(e_mat - self.pca_mean_, full_matrices=False)
            comps = vt[:k]
            signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])  # deterministic signs
            self.pca_components_ = comps * signs[:, None]
        else:
            self.pca_mean_ = np.zeros(emb.size)
            self.pca_components_ = np.zeros((0, emb.size))
        factor_idx = np.delete(np.arange(p), emb)
        self.feature_names_ = [f"x{j}" for j in factor_idx] + [f"pc{i}" for i in range(self.pca_components_.shape[0])]
        z = self._design(x)
        self.kept_ = z.std(axis=0) > 1e-12
        if not self.kept_.any():
            raise ValueError("X: every column is constant; there is nothing to fit a Cox model on")
        zk = z[:, self.kept_]
        names = [f for f, keep in zip(self.feature_names_, self.kept_, strict=True) if keep]
        df = pd.DataFrame(zk, columns=names)
        df["_time"] = t
        df["_event"] = (e == 1).astype(np.int64)
        events = int(df["_event"].sum())
        if events == 0:
            raise ValueError("event: no breast-cancer event (code 1) in the training data; a Cox model needs some")
        self.lifelines_penalizer_ = self.penalizer * events / n
        cph = _fit_cox(df, self.lifelines_penalizer_, self.l1_ratio)
        self.lifelines_model_ = cph
        self.coef_ = cph.params_[names].to_numpy(dtype=np.float64)
        self.z_mean_ = zk.mean(axis=0)
        base = cph.baseline_cumulative_hazard_
        self.baseline_times_ = base.index.to_numpy(dtype=np.float64)
        self.baseline_cumhaz_ = base.iloc[:, 0].to_numpy(dtype=np.float64)
        self.max_time_ = float(t.max())
        self.n_features_in_ = p
        self._set_training_counts(e)
        return self

    def _size(self) -> str:
        return f"{int(self.kept_.sum()):,} covariates"

    def _max_year(self) -> tuple[float, str]:
        return self.max_time_, "the longest training follow-up"

    def predict_log_partial_hazard(self, X: Any) -> np.ndarray:
        """Alias of :meth:`decision_function` (lifelines' name): linear predictor ``(z − z̄) · β``, shape ``(n,)``."""
        return self.decision_function(X)

    def _raw_score(self, x: np.ndarray) -> np.ndarray:
        """Linear predictor ``(z − z̄) · β`` ``(n,)`` of checked inputs ``x``."""
        return (self._design(x)[:, self.kept_] - self.z_mean_) @ self.coef_

    def _cumulative_hazard(self, x: np.ndarray, years: np.ndarray) -> np.ndarray:
        h0 = step_at(self.baseline_times_, self.baseline_cumhaz_, years)
        return np.exp(self._raw_score(x))[:, None] * h0[None, :]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: parameters, PCA, coefficients and the Breslow baseline."""
        d = self._state_header()
        params = self.get_params()
        params["embedding_columns"] = _columns_to_json(self.embedding_columns)
        d["params"] = params
        d.update(
            embedding_idx=self.embedding_idx_.tolist(), pca_mean=self.pca_mean_.tolist(),
            pca_components=self.pca_components_.tolist(), feature_names=list(self.feature_names_),
            kept=self.kept_.tolist(), coef=self.coef_.tolist(), z_mean=self.z_mean_.tolist(),
            baseline_times=self.baseline_times_.tolist(), baseline_cumhaz=self.baseline_cumhaz_.tolist(),
            max_time=self.max_time_, lifelines_penalizer=self.lifelines_penalizer_,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CoxHead:
        """Rebuild a fitted head from :meth:`to_dict`'s output (without the lifelines object)."""
        d = check_state(d, cls)
        where = cls.__name__
        params = dict(d["params"])
        params["embedding_columns"] = _columns_from_json(params["embedding_columns"])
        head = cls(**params)
        p = state_n_features(d, where)
        head.embedding_idx_ = _resolve_columns(d["embedding_idx"], p)
        head.pca_mean_ = state_array(d, "pca_mean", where, shape=(head.embedding_idx_.size,))
        comps = state_array(d, "pca_components", where)
        if comps.size == 0:
            comps = comps.reshape(0, head.pca_mean_.size)  # (0, 0) when there is no embedding
        if comps.ndim != 2 or comps.shape[1] != head.pca_mean_.size or comps.shape[0] > head.pca_mean_.size:
            raise ValueError(f"{where}: 'pca_components' has shape {list(comps.shape)}, expected (k, "
                             f"{head.pca_mean_.size}) with k <= {head.pca_mean_.size}")
        head.pca_components_ = comps
        head.feature_names_ = list(d["feature_names"])
        width = p - head.embedding_idx_.size + comps.shape[0]
        kept = d["kept"]
        if (len(head.feature_names_) != width or not isinstance(kept, list) or len(kept) != width
                or not all(isinstance(k, bool) for k in kept)):
            raise ValueError(f"{where}: 'feature_names' and 'kept' must have one entry (kept: a bool) per design "
                             f"column ({width})")
        head.kept_ = np.asarray(kept, dtype=bool)
        m = int(head.kept_.sum())
        head.coef_ = state_array(d, "coef", where, shape=(m,), bound=MAX_COEF)
        head.z_mean_ = state_array(d, "z_mean", where, shape=(m,))
        head.baseline_times_, head.baseline_cumhaz_ = state_baseline(d, where)
        head.max_time_ = check_positive_float(f"{where}: max_time", d["max_time"])
        # States written before the penalty was scaled per event lack it (their lifelines penalizer was ``penalizer``).
        head.lifelines_penalizer_ = float(d.get("lifelines_penalizer", head.penalizer))
        head.lifelines_model_ = None
        head.n_features_in_ = p
        return head
