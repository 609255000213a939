"""Discrimination metrics for breast-cancer risk, wrapping scikit-survival with checked inputs.

Convention: ``risk`` is higher for women more likely to get cancer. ``event`` uses the
cohort coding (1 = invasive breast cancer, 0 = censored, 2 = died of other causes); deaths
from other causes are treated as censored at the time of death.
"""

from __future__ import annotations

import numpy as np


def _check(time, event, risk=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event)
    if time.ndim != 1 or time.shape != event.shape:
        raise ValueError(f"time and event must be 1-D of the same length, got {time.shape} and {event.shape}")
    if np.isnan(time).any() or (time < 0).any():
        raise ValueError("time must be known and non-negative")
    if not np.isin(event, (0, 1, 2)).all():
        raise ValueError("event must be 0, 1 or 2")
    if risk is not None:
        risk = np.asarray(risk, dtype=np.float64)
        if risk.shape != time.shape:
            raise ValueError(f"risk has shape {risk.shape}, expected {time.shape}")
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

    time, cancer, risk = _check(time, event, risk)
    if tau is not None:
        cancer = cancer & (time <= tau)
        time = np.minimum(time, tau)
    if not cancer.any():
        raise ValueError("no breast-cancer events: the C-index is undefined")
    return float(concordance_index_censored(cancer, time, risk)[0])


def uno_c_index(time_train, event_train, time, event, risk, tau: float = 5.0) -> float:
    """Uno's IPCW C-index truncated at ``tau`` years.

    The censoring distribution is estimated by Kaplan–Meier on the training data
    (``time_train``, ``event_train``). Test follow-up beyond the training follow-up is
    truncated so that the weights exist.
    """
    from sksurv.metrics import concordance_index_ipcw
    from sksurv.util import Surv

    t_train, c_train, _ = _check(time_train, event_train)
    t_test, c_test, risk = _check(time, event, risk)
    if not c_test.any():
        raise ValueError("no breast-cancer events in the test data: the C-index is undefined")
    limit = min(tau, float(t_train.max()) - 1e-9)
    beyond = t_test > t_train.max()
    t_test = np.where(beyond, t_train.max() - 1e-9, t_test)
    c_test = c_test & ~beyond
    result = concordance_index_ipcw(Surv.from_arrays(c_train, t_train), Surv.from_arrays(c_test, t_test), risk,
                                    tau=limit)
    return float(result[0])
