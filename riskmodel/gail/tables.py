"""The Gail model's numeric tables, loaded from the data files beside this module.

Every number lives in ``data/gail_constants.csv`` (provenance in ``data/SOURCES.md``);
``data/gail_races.csv`` says which tables each BCRAT race code uses. Nothing here is a
literal coefficient: this module only reshapes the files into arrays indexed by race code.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

#: Age bands of the rate tables: [20,25), [25,30), …, [85,90).
N_BANDS = 14
FIRST_AGE = 20
LAST_AGE = 90
#: Valid BCRAT race codes.
RACE_CODES = tuple(range(1, 12))
BETA_TERMS = ("N_Biop", "AgeMen", "AgeFst", "N_Rels", "A50*NB", "AF*NR")


@dataclass(frozen=True)
class GailTables:
    """Arrays indexed by race code (row 0 is unused and NaN).

    Attributes:
        char_race: ``(12,)`` BCRA's two-letter race label per code (index 0: ``"??"``).
        population: ``(12,)`` long population names.
        beta: ``(12, 6)`` log relative risks in the order of :data:`BETA_TERMS`.
        one_minus_ar: ``(12, 2)`` 1 − attributable risk for age < 50 and age ≥ 50.
        lambda1: ``(12, 14)`` composite breast-cancer incidence per woman-year, by age band.
        lambda2: ``(12, 14)`` competing (non-breast-cancer) mortality per woman-year.
        lambda1_avg, lambda2_avg: ``(12, 14)`` rates for the "average woman" risk (Avg_White=1).
        hyperplasia_rr: factors for no biopsy/unknown, biopsy without and with atypical hyperplasia.
    """

    char_race: np.ndarray
    population: np.ndarray
    beta: np.ndarray
    one_minus_ar: np.ndarray
    lambda1: np.ndarray
    lambda2: np.ndarray
    lambda1_avg: np.ndarray
    lambda2_avg: np.ndarray
    hyperplasia_rr: dict[str, float]


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("riskmodel.gail").joinpath("data", name).read_text(encoding="utf-8")
    # keep_default_na is a pandas notion; the csv module keeps "NA" (race 4's label) as text.
    return list(csv.DictReader(text.splitlines()))


@lru_cache(maxsize=1)
def load_tables() -> GailTables:
    """Load and cache the Gail tables. Values are parsed with Python's exact ``float``."""
    constants: dict[tuple[str, str, str], float] = {}
    for rec in _read_csv("gail_constants.csv"):
        constants[(rec["table"], rec["column"], rec["row"])] = float(rec["value"])
    bands = [f"[{a},{a + 5})" for a in range(FIRST_AGE, LAST_AGE, 5)]

    def rates(table: str, column: str) -> list[float]:
        return [constants[(table, column, b)] for b in bands]

    n = len(RACE_CODES) + 1
    char_race = np.array(["??"] * n, dtype=object)
    population = np.array(["invalid"] * n, dtype=object)
    beta = np.full((n, len(BETA_TERMS)), np.nan)
    one_minus_ar = np.full((n, 2), np.nan)
    lam = {k: np.full((n, N_BANDS), np.nan) for k in ("l1", "l2", "l1a", "l2a")}
    for rec in _read_csv("gail_races.csv"):
        code = int(rec["code"])
        char_race[code] = rec["char_race"]
        population[code] = rec["population"]
        beta[code] = [constants[("beta_log_rr", rec["beta_set"], t)] for t in BETA_TERMS]
        one_minus_ar[code] = [
            constants[("one_minus_AR", rec["one_minus_ar_set"], "Age<50")],
            constants[("one_minus_AR", rec["one_minus_ar_set"], "Age>=50")],
        ]
        lam["l1"][code] = rates("lambda1_incidence", rec["lambda1"])
        lam["l2"][code] = rates("lambda2_competing_mortality", rec["lambda2"])
        lam["l1a"][code] = rates("lambda1_incidence", rec["lambda_avg"])
        lam["l2a"][code] = rates("lambda2_competing_mortality", rec["lambda_avg"])
    hyp = {row: v for (table, _, row), v in constants.items() if table == "hyperplasia_rr"}
    for arr in (beta, one_minus_ar, *lam.values()):
        arr.setflags(write=False)
    return GailTables(
        char_race=char_race,
        population=population,
        beta=beta,
        one_minus_ar=one_minus_ar,
        lambda1=lam["l1"],
        lambda2=lam["l2"],
        lambda1_avg=lam["l1a"],
        lambda2_avg=lam["l2a"],
        hyperplasia_rr=hyp,
    )
