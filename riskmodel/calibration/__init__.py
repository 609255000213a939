"""Per-year calibration of predicted cumulative risks, stored as plain JSON.

A risk model that outputs a cumulative risk for each of years 1…Y (as Mirai does for
Y = 5) ranks women well but need not be calibrated: its "10 %" need not mean that 10 % of
such women are diagnosed. :class:`YearlyCalibrator` fits one monotone map per year on a
held-out set of women with known outcomes and applies it to new predictions.

Two maps are available, both fitted with numpy alone and stored as a handful of numbers:

* :class:`IsotonicCalibrator`: weighted isotonic regression (pool-adjacent-violators). It
  is stored as breakpoints ``(x_, y_)`` and predicts by linear interpolation between them,
  flat beyond the first and last breakpoint. Non-parametric; needs many events.
* :class:`PlattCalibrator`: logistic regression on the logit of the prediction,
  ``p_cal = sigmoid(a_ · logit(p) + b_)``, fitted by Newton's method. Two numbers per year;
  ``a_ = 1, b_ = 0`` is the identity map.

Nothing here is pickled and no scikit-learn object is stored: :meth:`YearlyCalibrator.to_dict`
gives a JSON-safe dict, :meth:`YearlyCalibrator.save` a JSON file. (Mirai's and Sybil's
calibrators are pickles that stop loading when scikit-learn renames an attribute.)

**Censoring rule.** For year ``k`` a woman's outcome is known, and she is used, only if

* she was diagnosed by year ``k``: ``event == 1`` and ``time <= k`` → positive; or
* she was followed for at least ``k`` years without a diagnosis by then: ``time >= k`` and
  not positive → negative (this includes ``event == 1`` after ``k`` and ``event == 2``,
  death from other causes, after ``k``).

Women censored (``event == 0``) or dead of other causes (``event == 2``) before year ``k``
are left out of year ``k``: whether they would have been diagnosed by ``k`` is unknown.
:func:`year_status` applies the rule.

Two consequences to know about:

* The known-status subset over-represents early diagnoses when many women are censored
  before ``k`` (a diagnosis counts however short the follow-up; a negative needs ``k`` full
  years), so the calibrated risks come out too high. ``fit(..., ipcw=True)`` weights each
  known-status woman by the inverse probability of having stayed uncensored that long
  (:func:`ipcw_weights`), which removes this bias.
* Death from other causes is treated like censoring, so the target is the risk of diagnosis
  by ``k`` had nobody died of other causes (the "net" risk). That is higher than the absolute
  risk with competing mortality (the cumulative incidence that the Gail model reports), by
  roughly the share of women who die of other causes before ``k``.

>>> import numpy as np
>>> from riskmodel.calibration import IsotonicCalibrator
>>> cal = IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
>>> cal.x_.tolist(), cal.y_.tolist()
([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 1.0])
>>> cal.predict(np.array([0.0, 0.15, 0.35, 0.9])).round(6).tolist()
[0.0, 0.25, 0.75, 1.0]
"""

from riskmodel.calibration.isotonic import IsotonicCalibrator, isotonic_regression
from riskmodel.calibration.platt import PlattCalibrator
from riskmodel.calibration.yearly import FORMAT, FORMAT_VERSION, METHODS, YearlyCalibrator
from riskmodel.estimators import NotFittedError

# The censoring rule, the censoring Kaplan–Meier curve and the IPCW weights live in the torch-free
# foundation; re-exported here (with their default ``competing=False``: the net risk calibrated here).
from riskmodel.survival import EVENT_CODES, censoring_survival, ipcw_weights, year_status

__all__ = [
    "EVENT_CODES",
    "FORMAT",
    "FORMAT_VERSION",
    "METHODS",
    "IsotonicCalibrator",
    "NotFittedError",
    "PlattCalibrator",
    "YearlyCalibrator",
    "censoring_survival",
    "ipcw_weights",
    "isotonic_regression",
    "year_status",
]
