"""The censoring rule for year ``k`` and inverse-probability-of-censoring weights.

:func:`year_status` (who has a known outcome at year ``k``, and which), :func:`ipcw_weights`
(weights that let the known-status women stand for everyone), and the censoring Kaplan–Meier
curve :func:`censoring_survival` behind them. The public functions check their inputs; the
``*_at_year`` helpers and :func:`censoring_survival` trust arrays already checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskmodel.calibration.checks import as_1d_float, check_finite, check_weight

__all__ = [
    "EVENT_CODES",
    "censoring_survival",
    "check_time_event",
    "ipcw_at_year",
    "ipcw_weights",
    "status_at_year",
    "year_status",
]

#: ``event`` codes: 0 censored, 1 breast cancer, 2 death from other causes.
EVENT_CODES = (0, 1, 2)


def check_time_event(time: Any, event: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = as_1d_float(time, "time")
    if len(t) != n:
        raise ValueError(f"time: length {len(t)} does not match risk (n = {n})")
    check_finite(t, "time")
    if (t < 0).any():
        raise ValueError("time: follow-up times (years) must be >= 0")
    e = as_1d_float(event, "event")
    if len(e) != n:
        raise ValueError(f"event: length {len(e)} does not match risk (n = {n})")
    check_finite(e, "event")
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
    t = as_1d_float(time, "time")
    t, e = check_time_event(t, event, len(t))
    return status_at_year(t, e, year)


def status_at_year(t: np.ndarray, e: np.ndarray, year: float) -> tuple[np.ndarray, np.ndarray]:
    positive = (e == 1) & (t <= year)
    known = positive | (t >= year)
    return known, positive


def censoring_survival(t: np.ndarray, e: np.ndarray, w: np.ndarray, at: np.ndarray,
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


def ipcw_at_year(t: np.ndarray, e: np.ndarray, w: np.ndarray, year: float) -> np.ndarray:
    known, positive = status_at_year(t, e, year)
    g = censoring_survival(t, e, w, np.where(positive, t, float(year)))
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
    t = as_1d_float(time, "time")
    t, e = check_time_event(t, event, len(t))
    return ipcw_at_year(t, e, check_weight(weight, len(t)), year)
