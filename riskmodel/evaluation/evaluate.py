"""Evaluate one or more risk models on a cohort with follow-up: every metric, with intervals and subgroups.

This is the engine of ``riskmodel evaluate`` and of the benchmark suite. Inputs are plain
tables, so any model's risks (ours, BCRAT's, a vendor's) can be validated on a site's data.

Example:
    >>> import numpy as np, pandas as pd
    >>> from riskmodel.synthetic import make_cohort
    >>> cohort = make_cohort(4000, seed=1)
    >>> truth = cohort[[f"true_risk_{k}y" for k in range(1, 6)]].to_numpy()
    >>> noise = np.random.default_rng(0).uniform(0.0, 0.05, len(cohort))
    >>> result = evaluate_risks(cohort, {"truth": truth, "noise": noise}, n_boot=20, reference="noise")
    >>> result.models["truth"]["c_index"] > result.models["noise"]["c_index"]
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.evaluation.calibration_metrics import calibration_slope, calibration_table, expected_observed
from riskmodel.evaluation.metrics import integrated_brier_score, time_dependent_auc, uno_c_index
from riskmodel.evaluation.reclassification import net_reclassification, share_of_cancers_in_top
from riskmodel.survival import check_time_event

#: Five-year risk thresholds for the reclassification table: 1.67% (NSABP P-1 eligibility, the
#: chemoprevention threshold) and 3% (USPSTF's greater-net-benefit level); see docs/evaluation.md.
NRI_THRESHOLDS = (0.0167, 0.03)
AGE_BANDS = ((40, 50, "40-49"), (50, 60, "50-59"), (60, 75, "60-74"))
RACE_GROUPS = {1: "White", 2: "Black", 3: "Hispanic", 5: "Hispanic", 4: "Other/unknown",
               **{k: "Asian/Pacific Islander" for k in range(6, 12)}}
DEFAULT_SUBGROUPS = ("race", "density", "age", "brca")


@dataclass
class Evaluation:
    """The result of :func:`evaluate_risks`.

    Attributes:
        horizon: years.
        models: one dict per model with ``n``, ``cancers``, ``c_index``, ``c_index_ci``, ``auc``
            (year → AUC), ``auc_ci``, ``ibs``, ``eo``, ``eo_ci``, ``calibration_slope``,
            ``calibration`` (risk-decile table as records), ``top10_share``, ``top20_share``,
            ``vs_reference`` (paired differences and NRI), ``subgroups`` (list of dicts).
        reference: the model compared against (or None).
        settings: the evaluation settings (bootstrap replicates, seed, subgroup columns).
        data: the per-model risk at the horizon and per-year matrices (for plots), and outcomes.
    """

    horizon: float
    models: dict[str, dict[str, Any]]
    reference: str | None
    settings: dict[str, Any]
    data: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready results (no per-woman data)."""
        return {"horizon": self.horizon, "reference": self.reference, "settings": self.settings,
                "models": _clean(self.models)}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if math.isnan(v) or math.isinf(v) else round(v, 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _years(horizon: float) -> np.ndarray:
    return np.arange(1, math.floor(horizon) + 1, dtype=np.float64)


def _risk_inputs(name: str, value: Any, n: int, horizon: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(risk at the horizon (n,), per-year risks (n, Y) or None) from an array or a predict_risk-style frame."""
    years = _years(horizon)
    yearly = None
    if isinstance(value, pd.DataFrame):
        cols = [f"risk_{int(y)}y" for y in years]
        if all(c in value.columns for c in cols):
            yearly = value[cols].to_numpy(dtype=np.float64)
        if "risk" in value.columns:
            at = value["risk"].to_numpy(dtype=np.float64)
        elif yearly is not None and float(horizon).is_integer():
            at = yearly[:, -1]
        else:
            raise ValueError(f"risks for {name!r}: need a 'risk' column (risk by {horizon:g} years) or "
                             f"{', '.join(cols)}")
        if "status" in value.columns:
            bad = value["status"].astype(str).to_numpy() != "ok"
            at = np.where(bad, np.nan, at)
    else:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 2:
            if arr.shape[1] < len(years) or not float(horizon).is_integer():
                raise ValueError(f"risks for {name!r}: a matrix needs one column per year 1…{int(horizon)}")
            yearly = arr[:, : len(years)]
            at = yearly[:, -1]
        else:
            at = arr
    if len(at) != n:
        raise ValueError(f"risks for {name!r}: {len(at)} rows, but the outcomes have {n}")
    if ((at < 0) | (at > 1)).any():
        raise ValueError(f"risks for {name!r}: absolute risks must be probabilities in [0, 1]")
    if yearly is not None and np.isnan(yearly[~np.isnan(at)]).any():
        yearly = None  # incomplete curves: no integrated Brier score
    return at, yearly


def subgroup_labels(outcomes: pd.DataFrame, column: str) -> pd.Series:
    """Subgroup label per woman for a cohort column (NaN where she belongs to no group).

    ``race`` is grouped into White, Black, Hispanic, Asian/Pacific Islander and Other/unknown
    (BCRAT codes or names); ``age`` into 40–49, 50–59, 60–74; ``brca`` into carrier /
    non-carrier; ``density`` into BI-RADS a–d; any other column is used as it is.
    """
    if column not in outcomes.columns:
        raise ValueError(f"subgroup column {column!r} is not in the outcomes table")
    s = outcomes[column]
    if column == "race":
        from riskmodel.schema import RACE_NAMES

        coded = s.map(lambda v: RACE_NAMES.get(str(v).strip().lower(), v) if isinstance(v, str) else v)
        return pd.to_numeric(coded, errors="coerce").map(RACE_GROUPS)
    if column == "age":
        age = pd.to_numeric(s, errors="coerce")
        out = pd.Series(np.nan, index=s.index, dtype=object)
        for lo, hi, label in AGE_BANDS:
            out[(age >= lo) & (age < hi)] = label
        return out
    if column == "brca":
        text = s.astype(str).str.strip().str.lower()
        out = pd.Series(np.nan, index=s.index, dtype=object)
        out[text.isin(["negative", "0", "0.0"])] = "non-carrier"
        out[text.isin(["brca1", "brca2", "1", "2", "1.0", "2.0"])] = "carrier"
        return out
    if column == "density":
        text = s.astype(str).str.strip().str.lower().replace({"1": "a", "2": "b", "3": "c", "4": "d",
                                                              "1.0": "a", "2.0": "b", "3.0": "c", "4.0": "d"})
        return text.where(text.isin(list("abcd")))
    return s.where(s.notna()).astype(object)


def _safe(fn, *args, **kwargs) -> float:
    try:
        return float(fn(*args, **kwargs))
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return float("nan")


def _percentile_ci(values: np.ndarray) -> list[float]:
    values = values[~np.isnan(values)]
    if len(values) < 10:
        return [float("nan"), float("nan")]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def _c(time, event, risk, horizon) -> float:
    return _safe(uno_c_index, time, event, time, event, risk, tau=horizon)


def evaluate_risks(outcomes: pd.DataFrame, risks: Mapping[str, Any], horizon: float = 5.0, *,
                   reference: str | None = "gail", subgroups: Sequence[str] | None = None, n_boot: int = 200,
                   seed: int = 0, min_cancers: int = 5, progress: bool = False) -> Evaluation:
    """Evaluate each model's risks against observed outcomes.

    Args:
        outcomes: one row per woman with ``time`` (years of follow-up from the risk assessment)
            and ``event`` (0 censored, 1 invasive breast cancer, 2 died of other causes), plus any
            subgroup columns.
        risks: model name → risks aligned with ``outcomes`` (same length and order): an array
            ``(n,)`` of absolute risk by ``horizon``, an array ``(n, Y)`` of cumulative risks at
            years 1…Y (Y ≥ horizon), or a DataFrame like :func:`riskmodel.predict_risk`'s output
            (``risk`` and/or ``risk_1y``…, rows with ``status`` other than ``"ok"`` left out).
            NaN marks a woman the model did not score; each model is evaluated on the women it
            scored, and paired comparisons on the women both scored.
        horizon: years (the C-index truncation, the E/O and calibration horizon).
        reference: the model for paired comparisons and reclassification (None: none); ignored
            if not among ``risks``.
        subgroups: cohort columns to report by (default: those of race, density, age, brca present).
        n_boot: bootstrap replicates for the intervals of C-index and AUC and the paired tests
            (0: no intervals).
        seed: seed of the bootstrap.
        min_cancers: a model, subgroup or time point with fewer observed cancers by the horizon gets no
            C-index or AUC (NaN, and no interval): with a handful of cancers they are noise.

        progress: show a progress bar (tqdm, on stderr) over each model's bootstrap replicates.

    Returns:
        An :class:`Evaluation`.

    Raises:
        ValueError: a missing ``time``/``event`` column, bad codes, misaligned or out-of-range risks.
    """
    for col in ("time", "event"):
        if col not in outcomes.columns:
            raise ValueError(f"outcomes lack the column {col!r} (years of follow-up / 0,1,2 event code)")
    time_, event = check_time_event(outcomes["time"], outcomes["event"], name="outcomes", index=outcomes.index)
    n = len(outcomes)
    if not risks:
        raise ValueError("no risks to evaluate")
    parsed = {name: _risk_inputs(name, value, n, horizon) for name, value in risks.items()}
    if reference not in parsed:
        reference = None
    if subgroups is None:
        subgroups = [c for c in DEFAULT_SUBGROUPS if c in outcomes.columns]
    labels = {col: subgroup_labels(outcomes, col).to_numpy() for col in subgroups}
    years = _years(horizon)
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, n, n) for _ in range(n_boot)]

    models: dict[str, dict[str, Any]] = {}
    for name, (at, yearly) in parsed.items():
        rows = ~np.isnan(at)
        t, e, r = time_[rows], event[rows], at[rows]
        cancers = int(((e == 1) & (t <= horizon)).sum())
        res: dict[str, Any] = {"n": int(rows.sum()), "n_not_scored": int((~rows).sum()), "cancers": cancers}
        per_year = yearly[rows] if yearly is not None else None
        # Too few cancers: no C-index (nor an interval around it), as for subgroups and AUC time points.
        enough = cancers >= min_cancers
        res["c_index"] = _c(t, e, r, horizon) if enough else float("nan")
        res["auc"] = dict(zip([int(y) for y in years], _auc(t, e, r, per_year, years, min_cancers), strict=True))
        res["ibs"] = (_safe(integrated_brier_score, t, e, t, e, per_year, years)
                      if per_year is not None and len(years) >= 2 else float("nan"))
        eo = expected_observed(r, t, e, horizon) if cancers else {"eo": np.nan, "lower": np.nan, "upper": np.nan,
                                                                     "expected": float(r.mean()), "observed": 0.0}
        res.update(eo=eo["eo"], eo_ci=[eo["lower"], eo["upper"]], expected=eo["expected"], observed=eo["observed"])
        try:
            slope = calibration_slope(r, t, e, horizon)
            res.update(calibration_slope=slope["slope"], calibration_intercept=slope["intercept"],
                       calibration_slope_se=slope["slope_se"])
        except (ValueError, np.linalg.LinAlgError):
            res.update(calibration_slope=np.nan, calibration_intercept=np.nan, calibration_slope_se=np.nan)
        res["calibration"] = (calibration_table(r, t, e, horizon).to_dict("records")
                              if len(r) >= 10 and cancers else [])
        res["top10_share"] = share_of_cancers_in_top(r, t, e, 0.1, horizon)
        res["top20_share"] = share_of_cancers_in_top(r, t, e, 0.2, horizon)
        if boots:
            c_b, auc_b = [], []
            for idx in _maybe_progress(boots, progress, f"bootstrap ({name})"):
                idx = idx[rows[idx]]
                tb, eb, rb = time_[idx], event[idx], at[idx]
                c_b.append(_c(tb, eb, rb, horizon) if enough else float("nan"))
                auc_b.append(_auc(tb, eb, rb, yearly[idx] if yearly is not None else None, years, min_cancers))
            res["c_index_ci"] = _percentile_ci(np.array(c_b))
            auc_b = np.array(auc_b)
            res["auc_ci"] = {int(y): _percentile_ci(auc_b[:, i]) for i, y in enumerate(years)}
        res["subgroups"] = _subgroups(labels, rows, time_, event, at, horizon, boots, min_cancers)
        models[name] = res
    if reference is not None:
        for name in models:
            if name != reference:
                models[name]["vs_reference"] = _paired(parsed[name][0], parsed[reference][0], time_, event, horizon,
                                                      boots, reference)
    settings = {"n_boot": n_boot, "seed": seed, "subgroups": list(subgroups), "min_cancers": min_cancers,
                "nri_thresholds": list(NRI_THRESHOLDS), "n": n}
    data = {"time": time_, "event": event, "risk": {k: v[0] for k, v in parsed.items()},
            "yearly": {k: v[1] for k, v in parsed.items()}, "labels": labels}
    return Evaluation(horizon=float(horizon), models=models, reference=reference, settings=settings, data=data)


def _maybe_progress(items: list, progress: bool, desc: str):
    """``items``, behind a tqdm bar on stderr when ``progress``."""
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="replicate", leave=False)


def _auc(t, e, r, per_year, years, min_cancers) -> list[float]:
    out = []
    for i, y in enumerate(years):
        if ((e == 1) & (t <= y)).sum() < min_cancers:
            out.append(float("nan"))
            continue
        est = per_year[:, i] if per_year is not None else r
        out.append(_safe(lambda est=est, y=y: time_dependent_auc(t, e, t, e, est, [y])[0]))
    return out


def _subgroups(labels, rows, time_, event, at, horizon, boots, min_cancers) -> list[dict[str, Any]]:
    out = []
    for col, lab in labels.items():
        levels = sorted({v for v in lab[rows] if isinstance(v, str) or not pd.isna(v)}, key=str)
        for level in levels:
            m = rows & (lab == level)
            t, e, r = time_[m], event[m], at[m]
            cancers = int(((e == 1) & (t <= horizon)).sum())
            entry: dict[str, Any] = {"variable": col, "level": str(level), "n": int(m.sum()), "cancers": cancers,
                                     "c_index": np.nan, "c_index_ci": [np.nan, np.nan], "eo": np.nan,
                                     "eo_ci": [np.nan, np.nan]}
            if cancers >= min_cancers:
                entry["c_index"] = _c(t, e, r, horizon)
                if boots:
                    vals = []
                    for idx in boots:
                        idx = idx[m[idx]]
                        vals.append(_c(time_[idx], event[idx], at[idx], horizon))
                    entry["c_index_ci"] = _percentile_ci(np.array(vals))
            if cancers:
                eo = expected_observed(r, t, e, horizon)
                entry["eo"], entry["eo_ci"] = eo["eo"], [eo["lower"], eo["upper"]]
            out.append(entry)
    return out


def _paired(new, ref, time_, event, horizon, boots, reference) -> dict[str, Any]:
    both = ~np.isnan(new) & ~np.isnan(ref)
    t, e = time_[both], event[both]
    out: dict[str, Any] = {"reference": reference, "n": int(both.sum())}
    c_new, c_ref = _c(t, e, new[both], horizon), _c(t, e, ref[both], horizon)
    out["c_index"], out["c_index_reference"], out["c_index_diff"] = c_new, c_ref, c_new - c_ref
    if boots:
        diffs = []
        for idx in boots:
            idx = idx[both[idx]]
            diffs.append(_c(time_[idx], event[idx], new[idx], horizon) - _c(time_[idx], event[idx], ref[idx], horizon))
        diffs = np.array(diffs)
        diffs = diffs[~np.isnan(diffs)]
        out["c_index_diff_ci"] = _percentile_ci(diffs)
        out["c_index_diff_p"] = (float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
                                 if len(diffs) >= 10 else np.nan)
    if float(horizon) == 5.0:
        try:
            out["nri"] = net_reclassification(new[both], ref[both], t, e, NRI_THRESHOLDS, horizon)
        except ValueError:
            out["nri"] = None
    return out
