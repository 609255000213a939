"""The average woman's risk for her age and race: the BCSC v2 calculator with all hazard ratios 1.

Used by the per-woman report as the reference line ("average for her age"). The coefficients are
in ``data/bcsc_v2_baseline.csv``; their source, the recursion and its limits are in
``data/SOURCES.md``.

>>> round(float(average_risk_curve(50, 1, years=5)[-1]) * 100, 10)  # white, age 50: BCSC's 1.2274288131 %
1.2274288131
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["BCSC_AGES", "BCSC_GROUP", "average_risk_curve", "bcsc_group"]

#: Ages (whole years) the BCSC v2 calculator accepts.
BCSC_AGES = (35, 74)
#: BCRAT race code (riskmodel.schema) → BCSC group; code 4 ("other", "native American" or "unknown")
#: and unknown race use "white", the calculator's rule for other/unknown.
BCSC_GROUP = {1: "white", 2: "black", 3: "hispanic", 4: "white", 5: "hispanic", 6: "asian_pacific_islander",
              7: "asian_pacific_islander", 8: "asian_pacific_islander", 9: "asian_pacific_islander",
              10: "asian_pacific_islander", 11: "asian_pacific_islander"}


@cache
def _table() -> pd.DataFrame:
    path = resources.files("riskmodel.screening").joinpath("data").joinpath("bcsc_v2_baseline.csv")
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh).set_index(["race_group", "quantity"])


def bcsc_group(race: float | int | None) -> str:
    """The BCSC group for a BCRAT race code (NaN/None → ``"white"``)."""
    if race is None or (isinstance(race, float) and math.isnan(race)):
        return "white"
    return BCSC_GROUP[int(race)]


def average_risk_curve(age: float, race: float | int | None = None, years: int = 5) -> np.ndarray | None:
    """Cumulative risk (probability) of invasive breast cancer at 1 … ``years`` years for an average woman.

    Args:
        age: her age in years (whole years are used: the age at her last birthday).
        race: BCRAT race code 1–11 (:data:`riskmodel.schema.RACE_NAMES`); NaN/None = unknown.
        years: last horizon, 1–10.

    Returns:
        float64 array of shape ``(years,)``, or ``None`` outside the calculator's ages 35–74.
    """
    if not 1 <= years <= 10:
        raise ValueError(f"years={years}: the BCSC recursion here covers 1 to 10 years")
    if age is None or not np.isfinite(age):
        return None
    a = math.floor(age)
    if not BCSC_AGES[0] <= a <= BCSC_AGES[1]:
        return None
    t = _table()
    group = bcsc_group(race)

    def cubic(q: str, x: float) -> float:
        c = t.loc[(group, q)]
        return ((c["a3"] * x + c["a2"]) * x + c["a1"]) * x + c["a0"]

    def mortality(x: float) -> float:
        c = t.loc[(group, "mortality")]
        return c["eta"] * math.exp(c["theta"] * x)

    p, total, out = 1.0, 0.0, []
    acc = 0.0
    for j in range(1, years + 1):
        x = a + j - 1
        incidence = cubic("incidence", x)
        acc += incidence * p
        out.append(acc / 100.0)
        total += p * (mortality(x) + cubic("dcis", x) + incidence) / 100.0
        p = 1.0 - total
    return np.asarray(out)
