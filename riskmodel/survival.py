"""Survival basics shared by training, calibration, fusion and evaluation (torch-free, numpy only).

Conventions used everywhere in riskmodel:

* ``time``: years from the prediction (the exam or the assessment) to the first of breast-cancer
  diagnosis, death from other causes or the end of follow-up, float, ``>= 0``, finite;
* ``event``: what ended follow-up: ``0`` censored, ``1`` invasive breast cancer, ``2`` death from
  other causes (:data:`EVENT_CODES`);
* yearly horizons ``k`` in :data:`YEARS` (1 … 5 years), the horizons the image and hybrid models
  report.

What is here:

* :func:`check_time_event`: the one check of ``(time, event)``;
* :func:`year_status`: whose outcome is known by year ``k`` and whether it is a cancer, with an
  explicit switch for deaths from other causes (``competing``);
* :func:`survival_targets`: the per-year labels and weights of the image model's training loss;
* :func:`censoring_survival` and :func:`ipcw_weights`: the Kaplan–Meier curve of censoring and
  the inverse-probability-of-censoring weights built on it;
* :func:`breslow_baseline`: the Breslow baseline cumulative hazard of a proportional-hazards model.

>>> known, positive = year_status([0.5, 0.5, 3.0], [1, 2, 0], 1)
>>> known.tolist(), positive.tolist()
([True, False, True], [True, False, False])
>>> year_status([0.5, 0.5, 3.0], [1, 2, 0], 1, competing=True)[0].tolist()
[True, True, True]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CANCER", "CENSORED", "EVENT_CODES", "OTHER_DEATH", "YEARS", "breslow_baseline", "censoring_survival",
           "check_time_event", "check_weights", "ipcw_weights", "survival_targets", "year_status"]

#: The yearly horizons (years) the image and hybrid models report: ``risk_1y`` … ``risk_5y``.
YEARS: tuple[int, ...] = (1, 2, 3, 4, 5)

#: ``event`` codes.
CENSORED, CANCER, OTHER_DEATH = 0, 1, 2
EVENT_CODES: tuple[int, ...] = (CENSORED, CANCER, OTHER_DEATH)

_EVENT_RULE = "event must be 0 (censored), 1 (breast cancer) or 2 (death from other causes)"
_TIME_RULE = "time must be finite and >= 0 (years of follow-up)"


# ---------------------------------------------------------------------------- checks


def _row(index: Sequence[Any] | None, i: int) -> str:
    """How an error names row ``i``: its label in ``index`` if given, else its position."""
    return repr(index[i]) if index is not None else str(i)


def _as_float(values: Any, field: str, prefix: str, index: Sequence[Any] | None) -> np.ndarray:
    """``values`` as float64; a value that is not a number is named with its row."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        flat = np.asarray(values, dtype=object).ravel()
        for i, v in enumerate(flat):
            try:
                float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{prefix}{field}: row {_row(index, i)} is {v!r}, not a number; "
                                 f"{_TIME_RULE if field == 'time' else _EVENT_RULE}") from None
        raise  # pragma: no cover - numpy refused an array whose every element converts


def _check_length(x: np.ndarray, field: str, prefix: str, n: int | None, n_from: str) -> None:
    if x.ndim != 1:
        raise ValueError(f"{prefix}{field}: expected a 1-D array of shape (n,), got shape {x.shape}")
    if n is not None and len(x) != n:
        raise ValueError(f"{prefix}{field}: length {len(x)} does not match {n_from} (n = {n}); "
                         f"{field} must have shape ({n},)")


def check_time_event(time: Any, event: Any, *, name: str = "", n: int | None = None, n_from: str = "the other inputs",
                     index: Sequence[Any] | None = None, require_cancer: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Check follow-up times and event codes; the one rule set used by every fitter and metric.

    The rules (the strictest of the six checks this replaces; a rule that any of them enforced is kept):

    * both 1-D, of the same length (and of length ``n`` when given);
    * ``time`` numeric (anything numpy converts to float64: numbers, booleans, numeric text),
      finite (no NaN, no infinity) and ``>= 0`` years;
    * ``event`` numeric with every value exactly 0, 1 or 2 (``True``/``False`` read as 1/0);
    * with ``require_cancer``, at least one breast-cancer event (code 1).

    Args:
        time: years of follow-up, shape ``(n,)`` (array-like or pandas Series).
        event: event codes, shape ``(n,)``.
        name: what the arrays are (e.g. ``"outcomes"``), put before each message.
        n: the expected length, e.g. the rows of ``X`` or ``risk`` (named by ``n_from``).
        n_from: what ``n`` counts, for the message.
        index: row labels (e.g. a DataFrame's index) used to name the offending row; default:
            its position.
        require_cancer: refuse data with no breast-cancer event (nothing to fit).

    Returns:
        ``(time, event)``: float64 and int64 arrays of shape ``(n,)`` (new arrays).

    Raises:
        ValueError: naming ``time`` or ``event``, the first offending row and its value, and the rule.

    >>> t, e = check_time_event([0.5, 2.0], [1, 0])
    >>> t.dtype.name, e.dtype.name
    ('float64', 'int64')
    >>> check_time_event([0.5, -2.0], [1, 0], name="outcomes", index=["a", "b"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: outcomes: time: row 'b' is -2.0 (1 row(s) NaN, infinite or negative); time must be finite and >= 0 ...
    >>> check_time_event([0.5, 2.0], [1, 3])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: event: codes [3.0] (first at row 1); event must be 0 (censored), 1 (breast cancer) or 2 ...
    """
    prefix = f"{name}: " if name else ""
    t = _as_float(time, "time", prefix, index)
    _check_length(t, "time", prefix, n, n_from)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{prefix}time: row {_row(index, i)} is {float(t[i])!r} ({int(bad.sum())} row(s) NaN, "
                         f"infinite or negative); {_TIME_RULE}")
    e = _as_float(event, "event", prefix, index)
    _check_length(e, "event", prefix, len(t) if n is None else n, "time" if n is None else n_from)
    bad = ~np.isin(e, EVENT_CODES)
    if bad.any():
        codes = np.unique(e[bad])[:5].tolist()
        raise ValueError(f"{prefix}event: codes {codes} (first at row {_row(index, int(np.flatnonzero(bad)[0]))}); "
                         f"{_EVENT_RULE}")
    e = e.astype(np.int64)
    if require_cancer and not (e == CANCER).any():
        raise ValueError(f"{prefix}event has no breast-cancer events (code 1): nothing to fit")
    return t, e


def check_weights(weight: Any, n: int) -> np.ndarray:
    """Case weights as float64 ``(n,)``, finite and ``>= 0``; ``None`` gives ones.

    >>> check_weights(None, 2).tolist()
    [1.0, 1.0]
    """
    if weight is None:
        return np.ones(n)
    w = _as_float(weight, "weight", "", None)
    _check_length(w, "weight", "", n, "the data")
    if not np.isfinite(w).all():
        raise ValueError(f"weight: {int((~np.isfinite(w)).sum())} value(s) are NaN or infinite")
    if (w < 0).any():
        raise ValueError("weight: weights must be non-negative")
    return w


# ---------------------------------------------------------------------------- status by year


def year_status(time: Any, event: Any, year: float | Sequence[float], *, competing: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Which women have a known outcome by ``year``, and whether it is a breast cancer.

    ``positive`` is ``event == 1 and time <= k``. ``known`` is ``positive or time >= k``, plus,
    with ``competing=True``, every death from other causes (``event == 2``) before ``k``:

    * ``competing=False`` (the image model's training targets and the yearly calibrators, which
      estimate the *net* risk): a death from other causes before ``k`` hides whether she would have
      had a cancer by ``k``, so her status is unknown, as for a censored woman;
    * ``competing=True`` (the calibration metrics of *absolute* risk, where death competes): a
      death from other causes before ``k`` is a known outcome, "no cancer by ``k``".

    Censored women (``event == 0``) before ``k`` are unknown either way.

    Args:
        time, event: as for :func:`check_time_event`, shape ``(n,)``.
        year: the horizon ``k`` in years, or several horizons, shape ``(m,)``.
        competing: whether a death from other causes is a known, negative outcome.

    Returns:
        ``(known, positive)``, boolean arrays of shape ``(n,)`` (or ``(n, m)`` for several years).

    >>> known, pos = year_status([0.5, 0.5, 0.5, 2.0, 3.0], [1, 0, 2, 1, 0], 1)
    >>> known.tolist(), pos.tolist()
    ([True, False, False, True, True], [True, False, False, False, False])
    >>> year_status([0.5, 0.5, 0.5, 2.0, 3.0], [1, 0, 2, 1, 0], 1, competing=True)[0].tolist()
    [True, False, True, True, True]
    """
    t, e = check_time_event(time, event)
    k = np.asarray(year, dtype=np.float64)
    if k.ndim > 1 or not np.isfinite(k).all() or (k < 0).any():
        raise ValueError(f"year: {year!r}; expected a horizon (or 1-D horizons) in years, finite and >= 0")
    if k.ndim == 1:
        t, e, k = t[:, None], e[:, None], k[None, :]
    positive = (e == CANCER) & (t <= k)
    known = positive | (t >= k)
    if competing:
        known = known | (e == OTHER_DEATH)
    return known, positive


def survival_targets(time: np.ndarray, event: np.ndarray, n_years: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per-year labels and weights for cumulative risk (Mirai's rule, made explicit).

    Year ``k`` (1..``n_years``) asks "invasive cancer by ``k`` years?". It counts for a woman
    only if her answer is known: she had the cancer by ``k`` (``event == 1`` and
    ``time <= k``: label 1), or she was followed at least ``k`` years without it
    (``time >= k``: label 0). Censoring (``event == 0``) and death from other causes
    (``event == 2``) before ``k`` leave year ``k`` unknown (weight 0): :func:`year_status`
    with ``competing=False``.

    Args:
        time: follow-up in years, shape ``(n,)``.
        event: 1 = invasive breast cancer, 0 = censored, 2 = died of other causes; shape ``(n,)``.
        n_years: number of yearly horizons.

    Returns:
        ``(labels, weights)``, float32 arrays of shape ``(n, n_years)``.

    >>> labels, weights = survival_targets([0.5, 1.5], [1, 0], 2)
    >>> labels.tolist(), weights.tolist()
    ([[1.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])
    """
    known, positive = year_status(time, event, np.arange(1, n_years + 1, dtype=np.float64))
    return positive.astype(np.float32), known.astype(np.float32)


# ---------------------------------------------------------------------------- censoring


def censoring_survival(time: Any, event: Any, at: Any, *, weight: Any = None, competing: bool = False) -> np.ndarray:
    """Kaplan–Meier ``G(at−)``: the probability of not being censored before ``at``.

    Censoring is leaving follow-up without a breast cancer: ``event`` 0 or 2 with
    ``competing=False`` (death from other causes hides the outcome), ``event == 0`` only with
    ``competing=True`` (death from other causes is an outcome, not a censoring). At a tie a
    diagnosis comes before a censoring, and a censoring at time ``s`` leaves the woman at risk at
    ``s`` itself, so ``G(s−)`` excludes it.

    Args:
        time, event: as for :func:`check_time_event`, shape ``(n,)``.
        at: times in years at which ``G(at−)`` is wanted, any shape.
        weight: case weights, shape ``(n,)`` (default 1 each).
        competing: as in :func:`year_status`.

    Returns:
        ``G(at−)``, float64 of the shape of ``at``.

    >>> censoring_survival([1, 2, 3, 4], [0, 1, 2, 0], [1, 2, 4, 5]).tolist()  # censored at 1 (of 4), 3 (of 2)
    [1.0, 0.75, 0.375, 0.0]
    >>> censoring_survival([1, 2, 3, 4], [0, 1, 2, 0], [4, 5], competing=True).tolist()
    [0.75, 0.0]
    """
    t, e = check_time_event(time, event)
    w = check_weights(weight, len(t))
    order = np.argsort(t, kind="stable")
    cens = (e == CENSORED) if competing else (e != CANCER)
    ts, cs, ws = t[order], cens[order], w[order]
    u, start = np.unique(ts, return_index=True)
    censored = np.add.reduceat(ws * cs, start)
    at_risk = np.cumsum(np.add.reduceat(ws, start)[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - censored / at_risk, 1.0)
    g_after = np.cumprod(factor)  # G just after each distinct time
    i = np.searchsorted(u, at, side="left") - 1  # last distinct time strictly before `at`
    return np.where(i >= 0, g_after[np.maximum(i, 0)], 1.0)


def ipcw_weights(time: Any, event: Any, year: float, weight: Any = None, *, competing: bool = False) -> np.ndarray:
    """Inverse-probability-of-censoring weights for the women whose status by ``year`` is known.

    ``G`` is the (``weight``-weighted) Kaplan–Meier curve of censoring (:func:`censoring_survival`).
    A known woman (:func:`year_status`) whose follow-up ended at ``t <= year`` (a diagnosis, or
    with ``competing=True`` a death from other causes) gets ``1 / G(t−)``, a woman followed to
    ``year`` gets ``1 / G(year−)``, everyone else 0 (also where ``G`` is 0). With these weights
    the known-status subset stands for the whole cohort: with ``competing=False`` the weighted
    share of cancers estimates the net risk (had nobody been censored or died of other causes),
    with ``competing=True`` the absolute risk.

    Args:
        time, event, weight: shape ``(n,)``; ``weight`` is multiplied into ``G``'s estimate only.
        year: the horizon in years.
        competing: as in :func:`year_status`.

    Returns:
        weights of shape ``(n,)``, 0 for women whose status at ``year`` is unknown.

    >>> ipcw_weights([1, 2, 3], [0, 1, 0], 2).round(12).tolist()  # G(2−) = 2/3 after the censoring at 1
    [0.0, 1.5, 1.5]
    """
    t, e = check_time_event(time, event)
    known, _ = year_status(t, e, year, competing=competing)
    # A known woman's follow-up ended at min(t, year): a diagnosis (or other death) by then, or still followed.
    g = censoring_survival(t, e, np.minimum(t, float(year)), weight=weight, competing=competing)
    out = np.zeros_like(t)
    ok = known & (g > 0)
    out[ok] = 1.0 / g[ok]
    return out


# ---------------------------------------------------------------------------- proportional hazards


def breslow_baseline(time: Any, event: Any, risk: Any) -> tuple[np.ndarray, np.ndarray]:
    """Breslow estimate of the baseline cumulative hazard of breast cancer.

    ``H0(t) = Σ_{event times s ≤ t} d(s) / Σ_{i: time_i ≥ s} risk_i``, ties handled the Breslow
    way (all tied events share one risk set); censored and other-death rows count in the risk
    sets until their time.

    Args:
        time: years, shape ``(n,)``; event: codes 0/1/2, shape ``(n,)`` (only 1 is an event);
        risk: relative hazards ``exp(margin)``, shape ``(n,)``, > 0.

    Returns:
        ``(times, cumhaz)``: the distinct event times (increasing) and ``H0`` just after each,
        float64 arrays of the same length.

    >>> times, h0 = breslow_baseline([1.0, 2.0, 2.0, 3.0], [1, 1, 1, 0], [1.0, 2.0, 3.0, 4.0])
    >>> times.tolist(), h0.round(6).tolist()  # 1/(1+2+3+4), then + 2/(2+3+4)
    ([1.0, 2.0], [0.1, 0.322222])
    """
    t, e = check_time_event(time, event)
    r = np.asarray(risk, dtype=np.float64)
    if r.shape != t.shape or not np.isfinite(r).all() or (r <= 0).any():
        raise ValueError(f"risk: expected finite relative hazards > 0 of shape {t.shape}, got shape {r.shape}"
                         + ("" if r.shape != t.shape else " with values that are not finite or not > 0"))
    is_event = e == CANCER
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]
    at_risk_from = np.cumsum(r[order][::-1])[::-1]  # Σ risk over rows i ≥ position (sorted)
    times, deaths = np.unique(t[is_event], return_counts=True)
    at_risk = at_risk_from[np.searchsorted(t_sorted, times, side="left")]
    return times, np.cumsum(deaths / at_risk)
