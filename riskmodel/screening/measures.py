"""The risk a policy needs (five-year, ten-year or lifetime), found in the scored table or recomputed.

A policy compares one *risk measure* with its thresholds. :func:`resolve_measure` finds it for
each row, in this order, and says where each value came from:

1. an explicit column: ``risk_5y`` (five-year), ``risk_10y`` (ten-year) or ``risk_lifetime``
   (lifetime) — e.g. the hybrid model's ``risk_5y``, or a lifetime risk from another tool;
2. ``risk`` itself, where that row's ``horizon`` is the one needed (5 or 10 years; for lifetime,
   ``horizon == 90 − age``, which is what ``predict_risk(horizon="lifetime")`` writes);
3. for rows scored by the Gail model (``model == "gail"``), the Gail model run again on the
   cohort at the horizon needed (lifetime: to age 90). Before a recomputed value is used, the
   Gail model is also run at the row's own horizon and must reproduce the given ``risk``
   (relative difference ≤ 1e-9); otherwise the cohort is not the table that was scored and the
   row gets status ``inconsistent``.

Anything else is *not* substituted: the row gets NaN and a message saying what is missing. In
particular a model that projects at most five years (the hybrid model) is never extrapolated to a
lifetime risk; pass a ``risk_lifetime`` column from a lifetime model instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskmodel.schema import not_real_cells
from riskmodel.screening.policy import MEASURES

__all__ = ["LIFETIME_AGE", "MEASURE_COLUMNS", "MEASURE_WORDS", "Measured", "gail_curve", "not_real", "real_numbers",
           "resolve_measure"]

#: Where Gail's "lifetime" ends (years of age), as in :func:`riskmodel.predict_risk`.
LIFETIME_AGE = 90.0
#: Explicit columns that hold each measure.
MEASURE_COLUMNS = {"five_year": "risk_5y", "ten_year": "risk_10y", "lifetime": "risk_lifetime"}
#: How each measure is named in rationales.
MEASURE_WORDS = {"five_year": "five-year", "ten_year": "ten-year", "lifetime": "lifetime", "none": ""}
_RTOL = 1e-9


@dataclass
class Measured:
    """The measure for each row: ``value`` (probability, NaN where unavailable), ``source``
    (words for the rationale), ``problem`` (why it is NaN; "" where known) and ``status``
    (``"ok"``, ``"no_risk"``, ``"inconsistent"`` or ``"invalid"``); arrays of shape ``(n,)``."""

    value: np.ndarray
    source: np.ndarray
    problem: np.ndarray
    status: np.ndarray


def not_real(column: pd.Series) -> np.ndarray:
    """Where ``column`` holds a boolean or a complex number (neither is a probability or a number of years):
    the schema's rule (:func:`riskmodel.schema.not_real_cells`), except that a missing cell of a complex
    column counts as missing here, not as a complex number."""
    odd = not_real_cells(column)
    if pd.api.types.is_complex_dtype(column.dtype):
        odd &= column.notna().to_numpy(dtype=bool)
    return odd


def real_numbers(column: pd.Series) -> np.ndarray:
    """``column`` as float64; NaN for text, booleans and complex numbers (flagged by :func:`not_real`)."""
    odd = not_real(column)
    if odd.any():
        column = column.astype(object).where(~odd, np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    return real_numbers(frame[name])


def resolve_measure(data: pd.DataFrame, measure: str, age: np.ndarray, usable: np.ndarray,
                    gail_input: pd.DataFrame | None) -> Measured:
    """Find ``measure`` for the rows in ``usable`` (see the module docstring for the order).

    Args:
        data: the scored table (``risk``, ``horizon``, ``model``, optional ``risk_5y`` …).
        measure: a key of :data:`riskmodel.screening.policy.MEASURES` other than ``"none"``.
        age: ``(n,)`` age in years.
        usable: ``(n,)`` rows whose scored risk is valid (status ok); the others are left NaN.
        gail_input: the cohort in the canonical schema, used to rerun the Gail model; ``None``:
            no recomputation.
    """
    n = len(data)
    value = np.full(n, np.nan)
    source = np.full(n, "", dtype=object)
    problem = np.full(n, "", dtype=object)
    status = np.full(n, "ok", dtype=object)
    words = MEASURE_WORDS[measure]
    column = MEASURE_COLUMNS[measure]
    todo = usable.copy()

    if column in data.columns:
        v = _numeric(data, column)
        have = todo & ~np.isnan(v)
        value[have], source[have] = v[have], f"the given {column}"
        todo &= ~have

    risk = _numeric(data, "risk") if "risk" in data.columns else np.full(n, np.nan)
    horizon = _numeric(data, "horizon") if "horizon" in data.columns else np.full(n, np.nan)
    target = LIFETIME_AGE - age if measure == "lifetime" else np.full(n, float(MEASURES[measure]))  # type: ignore[arg-type]
    match = todo & ~np.isnan(risk) & np.isclose(horizon, target, rtol=0.0, atol=1e-6)
    value[match] = risk[match]
    source[match] = "the scored risk" + (" (to age 90)" if measure == "lifetime" else "")
    todo &= ~match

    model = data["model"].astype(str).to_numpy() if "model" in data.columns else np.full(n, "", dtype=object)
    gail = todo & (model == "gail") & ~np.isnan(horizon) & ~np.isnan(risk)
    if gail.any() and gail_input is not None:
        rows = np.flatnonzero(gail)
        recomputed, again = _gail(gail_input, rows, measure, horizon[rows])
        same = np.isclose(again, risk[rows], rtol=_RTOL, atol=1e-15)
        good, bad = rows[same & ~np.isnan(recomputed)], rows[~same]
        value[good] = recomputed[same & ~np.isnan(recomputed)]
        source[good] = ("the Gail model's lifetime risk to age 90, recomputed from the cohort" if measure == "lifetime"
                        else f"the Gail model's {words} risk, recomputed from the cohort")
        for i, r in enumerate(rows):
            if not same[i]:
                problem[r] = (f"risk={risk[r]:.6g} at horizon {horizon[r]:g} y is not what the Gail model gives for "
                              f"this row of the cohort ({again[i]:.6g}): the cohort is not the table that was scored")
                status[r] = "inconsistent"
            elif np.isnan(recomputed[i]):
                problem[r] = f"the Gail model cannot project a {words} risk for this woman (e.g. beyond age 90)"
                status[r] = "no_risk"
        todo[good] = False
        todo[bad] = False
        todo[rows[np.isnan(recomputed) & same]] = False
    for r in np.flatnonzero(todo):
        status[r] = "no_risk"
        has = f"a {horizon[r]:g}-year risk" if not np.isnan(horizon[r]) else "a risk of unknown horizon"
        who = f"model {model[r]!r}" if model[r] else "an unnamed model"
        if model[r] == "gail":
            how = "pass the cohort that was scored (cohort=, or --cohort) to recompute it with the Gail model"
        elif measure == "lifetime":
            how = (f"{who} is not extrapolated beyond its horizon; give a {column} column from a lifetime model "
                   "(e.g. Tyrer-Cuzick) or use a five-year policy")
        else:
            how = f"give a {column} column, or score with horizon={MEASURES[measure]:g}"
        problem[r] = f"the policy needs {words} risk; the row has {has} from {who}: {how}"
    return Measured(value, source, problem, status)


def _gail(cohort: pd.DataFrame, rows: np.ndarray, measure: str, given_horizon: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """Gail risk at the measure's horizon, and at the row's own horizon (the consistency check)."""
    from riskmodel.api import predict_risk

    part = cohort.iloc[rows]
    horizon = "lifetime" if measure == "lifetime" else float(MEASURES[measure])  # type: ignore[arg-type]
    wanted = predict_risk(part, model="gail", horizon=horizon)["risk"].to_numpy(dtype=np.float64, na_value=np.nan)
    again = predict_risk(part, model="gail", horizon=given_horizon)["risk"].to_numpy(dtype=np.float64,
                                                                                     na_value=np.nan)
    return wanted, again


def gail_curve(data: pd.DataFrame, usable: np.ndarray, gail_input: pd.DataFrame | None,
               years: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)) -> tuple[np.ndarray, np.ndarray]:
    """The Gail model's risk at each of ``years`` for the rows in ``usable`` scored by it.

    The same consistency check as :func:`resolve_measure`: the cohort must reproduce the scored
    ``risk`` at the row's ``horizon``. Returns the ``(n, len(years))`` risks (NaN elsewhere) and a
    ``(n,)`` object array of problems ("" where the curve was computed or not attempted).
    """
    n = len(data)
    out = np.full((n, len(years)), np.nan)
    problem = np.full(n, "", dtype=object)
    if gail_input is None or not {"risk", "horizon", "model"} <= set(data.columns):
        return out, problem
    risk = _numeric(data, "risk")
    horizon = _numeric(data, "horizon")
    rows = np.flatnonzero(usable & (data["model"].astype(str).to_numpy() == "gail") & ~np.isnan(risk)
                          & ~np.isnan(horizon))
    if rows.size == 0:
        return out, problem
    from riskmodel.api import predict_risk

    part = gail_input.iloc[rows]
    again = predict_risk(part, model="gail", horizon=horizon[rows])["risk"].to_numpy(dtype=np.float64,
                                                                                      na_value=np.nan)
    same = np.isclose(again, risk[rows], rtol=_RTOL, atol=1e-15)
    for j, y in enumerate(years):
        out[rows[same], j] = predict_risk(part[same], model="gail", horizon=y)["risk"].to_numpy(
            dtype=np.float64, na_value=np.nan)
    problem[rows[~same]] = "the cohort does not reproduce the scored risk, so no curve is drawn"
    return out, problem
