"""PNG figures for an :class:`~riskmodel.evaluation.evaluate.Evaluation` (matplotlib, Agg backend).

Each function writes one file and returns its path:

* :func:`plot_calibration` — predicted vs observed risk by decile of predicted risk, per model;
* :func:`plot_auc` — cumulative/dynamic AUC by year with bootstrap intervals, and the ROC
  curve at the horizon (IPCW-weighted: cases by the horizon vs women still free of cancer);
* :func:`plot_risk_distributions` — predicted risk of women with and without a cancer by the horizon;
* :func:`plot_subgroups` — forest plot of C-index with 95% intervals per subgroup and model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from riskmodel.evaluation.evaluate import Evaluation
from riskmodel.survival import censoring_survival


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def has_content(ev: Evaluation, plot: Any) -> bool:
    """Whether ``plot`` (one of this module's functions) would draw anything for ``ev``: a calibration
    group with a cancer, an AUC, a cancer by the horizon, or a subgroup C-index. An empty chart is
    left out of a report rather than drawn."""
    models = ev.models.values()
    if plot is plot_calibration:
        return any(r["observed"] > 0 for m in models for r in m["calibration"])
    if plot is plot_auc:
        return any(v is not None and not np.isnan(v) for m in models for v in m["auc"].values())
    if plot is plot_risk_distributions:
        return bool(((ev.data["event"] == 1) & (ev.data["time"] <= ev.horizon)).any())
    if plot is plot_subgroups:
        return any(s["c_index"] is not None and not np.isnan(s["c_index"]) for m in models for s in m["subgroups"])
    raise ValueError(f"not a plot of riskmodel.evaluation.plots: {plot!r}")


def plot_calibration(ev: Evaluation, path: str | Path) -> Path:
    """Observed vs mean predicted risk per risk decile (log–log axes), one marker series per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo, hi = 1.0, 0.0
    for name, res in ev.models.items():
        rows = [r for r in res["calibration"] if r["observed"] > 0]
        if not rows:
            continue
        pred = np.array([r["predicted"] for r in rows])
        obs = np.array([r["observed"] for r in rows])
        err = np.array([[o - r["observed_lower"], r["observed_upper"] - o] for o, r in zip(obs, rows, strict=True)]).T
        ax.errorbar(pred, obs, yerr=err, marker="o", ms=4, capsize=2, lw=1, label=name)
        lo, hi = min(lo, pred.min(), obs.min()), max(hi, pred.max(), obs.max())
    if hi > 0:
        lo = max(lo * 0.7, 1e-4)
        ax.plot([lo, hi * 1.3], [lo, hi * 1.3], color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"mean predicted {ev.horizon:g}-year risk (decile)")
    ax.set_ylabel(f"observed {ev.horizon:g}-year incidence (Aalen–Johansen)")
    ax.set_title("Calibration by risk decile")
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def _roc_at(risk: np.ndarray, time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """IPCW cumulative/dynamic ROC at ``horizon``: cases weighted 1/G(T−), controls 1/G(horizon)."""
    case = (event == 1) & (time <= horizon)
    control = time > horizon
    g_case = censoring_survival(time, event, time[case], competing=True)
    w_case = 1 / np.maximum(g_case, 1e-6)
    thresholds = np.unique(risk)[::-1]
    if len(thresholds) > 400:
        thresholds = np.quantile(risk, np.linspace(1, 0, 400))
    tpr = np.array([(w_case * (risk[case] >= c)).sum() / w_case.sum() for c in thresholds])
    fpr = np.array([(risk[control] >= c).mean() for c in thresholds])
    return np.concatenate([[0], fpr, [1]]), np.concatenate([[0], tpr, [1]])


def plot_auc(ev: Evaluation, path: str | Path) -> Path:
    """Left: AUC(t) at years 1…horizon with 95% bootstrap intervals. Right: ROC at the horizon."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    t, e = ev.data["time"], ev.data["event"]
    for i, (name, res) in enumerate(ev.models.items()):
        years = np.array([int(y) for y in res["auc"]])
        auc = np.array([np.nan if v is None else v for v in res["auc"].values()], dtype=float)
        offset = (i - len(ev.models) / 2) * 0.04
        if "auc_ci" in res:
            ci = np.array([res["auc_ci"][y] for y in years], dtype=float)
            left.errorbar(years + offset, auc, yerr=[auc - ci[:, 0], ci[:, 1] - auc], marker="o", ms=4, capsize=2,
                          label=name)
        else:
            left.plot(years + offset, auc, marker="o", label=name)
        risk = ev.data["risk"][name]
        rows = ~np.isnan(risk)
        if ((e[rows] == 1) & (t[rows] <= ev.horizon)).any() and (t[rows] > ev.horizon).any():
            fpr, tpr = _roc_at(risk[rows], t[rows], e[rows], ev.horizon)
            right.plot(fpr, tpr, lw=1.2, label=f"{name} (AUC {res['auc'].get(int(ev.horizon), np.nan) or np.nan:.3f})")
    left.axhline(0.5, color="grey", lw=0.8, ls=":")
    left.set_xlabel("years since assessment")
    left.set_ylabel("cumulative/dynamic AUC")
    left.set_title("Time-dependent AUC")
    left.legend(fontsize=8)
    right.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    right.set_xlabel("false-positive fraction")
    right.set_ylabel("true-positive fraction (IPCW)")
    right.set_title(f"ROC at {ev.horizon:g} years")
    right.legend(fontsize=8, loc="lower right")
    return _save(fig, Path(path))


def plot_risk_distributions(ev: Evaluation, path: str | Path) -> Path:
    """Histograms of log10 predicted risk for women with and without a cancer by the horizon, per model."""
    plt = _pyplot()
    names = list(ev.models)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    t, e = ev.data["time"], ev.data["event"]
    case = (e == 1) & (t <= ev.horizon)
    for ax, name in zip(axes[0], names, strict=True):
        risk = ev.data["risk"][name]
        rows = ~np.isnan(risk) & (risk > 0)
        logr = np.log10(risk[rows])
        bins = np.linspace(logr.min(), logr.max(), 30) if len(logr) else 10
        ax.hist(logr[~case[rows]], bins=bins, density=True, alpha=0.55, label="no cancer")
        ax.hist(logr[case[rows]], bins=bins, density=True, alpha=0.55, label="cancer")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"log10 {ev.horizon:g}-year risk")
    axes[0][0].set_ylabel("density")
    axes[0][0].legend(fontsize=8)
    return _save(fig, Path(path))


def plot_subgroups(ev: Evaluation, path: str | Path) -> Path:
    """Forest plot: C-index (95% bootstrap interval) per subgroup, one colour per model."""
    plt = _pyplot()
    labels = []
    for res in ev.models.values():
        for s in res["subgroups"]:
            key = f"{s['variable']}: {s['level']}"
            if key not in labels:
                labels.append(key)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * max(len(labels), 4) + 1.2))
    n_models = len(ev.models)
    for i, (name, res) in enumerate(ev.models.items()):
        by = {f"{s['variable']}: {s['level']}": s for s in res["subgroups"]}
        ys, cs, los, his = [], [], [], []
        for j, key in enumerate(labels):
            s = by.get(key)
            if s is None or s["c_index"] is None or np.isnan(s["c_index"]):
                continue
            ys.append(j + (i - (n_models - 1) / 2) * 0.12)
            cs.append(s["c_index"])
            lo, hi = s["c_index_ci"]
            los.append(s["c_index"] - (lo if lo is not None and not np.isnan(lo) else s["c_index"]))
            his.append((hi if hi is not None and not np.isnan(hi) else s["c_index"]) - s["c_index"])
        ax.errorbar(cs, ys, xerr=[los, his], fmt="o", ms=3, capsize=2, lw=1, label=name)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"Uno's C-index at {ev.horizon:g} years")
    ax.set_title("C-index by subgroup")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, Path(path))
