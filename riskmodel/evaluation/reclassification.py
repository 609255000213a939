"""Risk stratification: where the cancers fall, and reclassification against a reference model.

Event coding: 1 = invasive breast cancer, 0 = censored, 2 = died of other causes.

Example:
    >>> import numpy as np
    >>> time = np.full(10, 5.5); event = np.zeros(10, dtype=int)
    >>> event[[8, 9]] = 1; time[[8, 9]] = 3.0
    >>> share_of_cancers_in_top(np.arange(10) / 10, time, event, fraction=0.2)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from riskmodel.evaluation.calibration_metrics import cumulative_incidence
from riskmodel.evaluation.metrics import check_survival_inputs


def share_of_cancers_in_top(risk, time, event, fraction: float = 0.1, horizon: float = 5.0) -> float:
    """Share of the cancers diagnosed by ``horizon`` that fall in the top ``fraction`` of predicted risk.

    The top group is the ``fraction · n`` women with the highest risk. Women tied at the cut
    (common with step-function calibrators) count in proportion to the places left for them, which
    is the expected share under random tie-breaking: a constant risk gives exactly ``fraction``.
    Counts observed cancers (no censoring adjustment). A model with no information puts
    ``fraction`` of the cancers there.

    Returns:
        The share in [0, 1]; NaN when no cancer occurs by ``horizon``.
    """
    time_, cancer, risk = check_survival_inputs(time, event, risk)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction}: must be in (0, 1)")
    case = cancer & (time_ <= horizon)
    if not case.any():
        return float("nan")
    places = fraction * len(risk)
    cut = np.sort(risk)[::-1][max(int(np.ceil(places)) - 1, 0)]
    above = risk > cut
    tied = risk == cut
    weight = np.where(above, 1.0, 0.0)
    weight[tied] = max(places - above.sum(), 0.0) / tied.sum()
    return float(weight[case].sum() / case.sum())


def _categories(risk: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(thresholds, dtype=np.float64), risk, side="right")


def net_reclassification(risk_new, risk_ref, time, event, thresholds: Sequence[float] = (0.0167, 0.03),
                         horizon: float = 5.0) -> dict[str, float]:
    """Categorical net reclassification improvement of ``risk_new`` over ``risk_ref`` (survival NRI).

    Categories are cut at ``thresholds`` (a risk equal to a threshold falls in the higher
    category, as in "five-year risk ≥ 1.67%"). Following Pencina, Steyerberg & D'Agostino
    (Stat Med 2011), the proportions moving up and down among women who get cancer by the
    horizon, and among those who do not, are estimated with the cumulative incidence in each
    movement group, so that censoring is handled:
    ``P(up | case) = CI_up · P(up) / CI``, ``P(up | non-case) = (1 − CI_up) · P(up) / (1 − CI)``.

    Returns:
        ``{"nri", "nri_events", "nri_nonevents", "up", "down"}``: the two components, their sum,
        and the shares of all women moved up/down.
    """
    time_, _, new = check_survival_inputs(time, event, risk_new)
    _, _, ref = check_survival_inputs(time, event, risk_ref)
    event = np.asarray(event)
    move = np.sign(_categories(new, thresholds) - _categories(ref, thresholds))
    total, _ = cumulative_incidence(time_, event, horizon)
    if total <= 0 or total >= 1:
        raise ValueError("the NRI needs cancers and non-cancers by the horizon")
    parts = {}
    for name, m in (("up", move > 0), ("down", move < 0)):
        share = float(m.mean())
        inc = cumulative_incidence(time_[m], event[m], horizon)[0] if m.any() else 0.0
        parts[name] = (share, share * inc / total, share * (1 - inc) / (1 - total))
    events = parts["up"][1] - parts["down"][1]
    nonevents = parts["down"][2] - parts["up"][2]
    return {"nri": events + nonevents, "nri_events": events, "nri_nonevents": nonevents,
            "up": parts["up"][0], "down": parts["down"][0]}
