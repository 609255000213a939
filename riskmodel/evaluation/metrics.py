"""Discrimination and accuracy metrics for breast-cancer risk, wrapping scikit-survival with checked inputs.

Convention: ``risk`` is higher for women more likely to get cancer. ``event`` uses the
cohort coding (1 = invasive breast cancer, 0 = censored, 2 = died of other causes); in the
scikit-survival metrics here deaths from other causes are treated as censored at the time of
death (the calibration metrics in :mod:`riskmodel.evaluation.calibration_metrics` treat them
as a competing event instead).

Example:
    >>> import numpy as np
    >>> time = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    >>> event = np.array([1, 1, 0, 1, 0, 0])
    >>> harrell_c_index(time, event, risk=-time)  # earlier cancers ranked higher: perfect
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from riskmodel.survival import YEARS, check_time_event


def check_survival_inputs(time, event, risk=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(time, event == 1, risk)`` after :func:`riskmodel.survival.check_time_event` and the risk's shape check."""
    time, event = check_time_event(time, event)
    if risk is not None:
        risk = np.asarray(risk, dtype=np.float64)
        if risk.shape[:1] != time.shape or risk.ndim not in (1, 2):
            raise ValueError(f"risk has shape {risk.shape}, expected ({len(time)},) or ({len(time)}, k)")
        if np.isnan(risk).any():
            raise ValueError("risk contains NaN; score only the rows a model scored")
    return time, event == 1, risk


def harrell_c_index(time, event, risk, tau: float | None = None) -> float:
    """Harrell's C: the share of comparable pairs the risk orders correctly (ties count ½).

    Args:
        time: follow-up in years, shape ``(n,)``; event: 0/1/2, shape ``(n,)``; risk: ``(n,)``.
        tau: if given, follow-up is truncated at ``tau`` years (events after it are censored).
    """
    from sksurv.metrics import concordance_index_censored

    time, cancer, risk = check_survival_inputs(time, event, risk)
    if tau is not None:
        cancer = cancer & (time <= tau)
        time = np.minimum(time, tau)
    if not cancer.any():
        raise ValueError("no breast-cancer events: the C-index is undefined")
    return float(concordance_index_censored(cancer, time, risk)[0])


def _train_test(time_train, event_train, time, event) -> tuple:
    """Survival arrays for scikit-survival's IPCW metrics; test follow-up beyond training is truncated."""
    from sksurv.util import Surv

    t_train, c_train, _ = check_survival_inputs(time_train, event_train)
    t_test, c_test, _ = check_survival_inputs(time, event)
    beyond = t_test > t_train.max()
    t_test = np.where(beyond, t_train.max() - 1e-9, t_test)
    c_test = c_test & ~beyond
    return Surv.from_arrays(c_train, t_train), Surv.from_arrays(c_test, t_test), float(t_train.max())


def uno_c_index(time_train, event_train, time, event, risk, tau: float = 5.0) -> float:
    """Uno's IPCW C-index truncated at ``tau`` years.

    The censoring distribution is estimated by Kaplan–Meier on the training data
    (``time_train``, ``event_train``; pass the test data again to use its own follow-up). Test
    follow-up beyond the training follow-up is truncated so that the weights exist.
    """
    from sksurv.metrics import concordance_index_ipcw

    _, _, risk = check_survival_inputs(time, event, risk)
    if not (np.asarray(event) == 1).any():
        raise ValueError("no breast-cancer events in the test data: the C-index is undefined")
    train, test, t_max = _train_test(time_train, event_train, time, event)
    result = concordance_index_ipcw(train, test, risk, tau=min(tau, t_max - 1e-9))
    return float(result[0])


def time_dependent_auc(time_train, event_train, time, event, risk, times: Sequence[float] = YEARS
                       ) -> np.ndarray:
    """Cumulative/dynamic AUC at each of ``times`` (years), by scikit-survival's IPCW estimator.

    At time ``t`` the cases are women with a breast cancer by ``t`` and the controls women still
    free of it after ``t`` (Uno et al. 2007; Hung & Chiang 2010).

    Args:
        time_train, event_train: data for the Kaplan–Meier censoring weights.
        time, event: test follow-up (years) and events, shape ``(n,)``.
        risk: ``(n,)`` one score for every time, or ``(n, len(times))`` a score per time (e.g.
            the cumulative risk at years 1…5).
        times: evaluation times in years, increasing, inside the test follow-up.

    Returns:
        AUC per time, shape ``(len(times),)``; NaN at a time with no case yet.
    """
    from sksurv.metrics import cumulative_dynamic_auc

    _, _, risk = check_survival_inputs(time, event, risk)
    times = np.asarray(times, dtype=np.float64)
    if risk.ndim == 2 and risk.shape[1] != len(times):
        raise ValueError(f"risk has {risk.shape[1]} columns for {len(times)} times")
    train, test, _ = _train_test(time_train, event_train, time, event)
    out = np.full(len(times), np.nan)
    case_time = test["time"][test["event"]]
    for i, t in enumerate(times):
        if not (case_time <= t).any() or not (test["time"] > t).any():
            continue
        est = risk if risk.ndim == 1 else risk[:, i]
        out[i] = float(cumulative_dynamic_auc(train, test, est, [t])[0][0])
    return out


def integrated_brier_score(time_train, event_train, time, event, risk_by_time, times: Sequence[float] = YEARS
                           ) -> float:
    """Integrated Brier score of predicted cumulative risks over ``times`` (IPCW, scikit-survival).

    Args:
        risk_by_time: predicted probability of breast cancer by each of ``times``, shape
            ``(n, len(times))``; the survival probability used is ``1 − risk``.
        times: years, increasing; the score integrates over ``[times[0], times[-1]]``.

    Returns:
        The integrated Brier score (0 is perfect; lower is better).
    """
    from sksurv.metrics import integrated_brier_score as ibs

    _, _, risk = check_survival_inputs(time, event, risk_by_time)
    times = np.asarray(times, dtype=np.float64)
    if risk.ndim != 2 or risk.shape[1] != len(times):
        raise ValueError(f"risk_by_time must have shape (n, {len(times)})")
    if len(times) < 2:
        raise ValueError("the integrated Brier score needs at least two times")
    train, test, _ = _train_test(time_train, event_train, time, event)
    if times[-1] >= test["time"].max():
        raise ValueError(f"times must lie inside the test follow-up (last time {times[-1]}, follow-up "
                         f"{test['time'].max():.2f} years)")
    return float(ibs(train, test, 1.0 - risk, times))
