"""The Gail model on the canonical schema: what :func:`riskmodel.predict_risk` calls for ``model="gail"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.gail.bcra import bcra_codes
from riskmodel.gail.recode import REQ_NONE, recode
from riskmodel.gail.risk import DEFAULT_CHUNK, absolute_risk, relative_risk
from riskmodel.gail.tables import FIRST_AGE, LAST_AGE
from riskmodel.models.base import LazyColumns
from riskmodel.schema import ValidatedCohort

#: Conditions the Gail model was not developed for (NCI BCRAT's exclusion questions).
_EXCLUSIONS = (
    ("prior_breast_cancer", "a personal history of breast cancer"),
    ("prior_dcis_or_lcis", "a history of DCIS or LCIS"),
    ("chest_radiation", "chest radiation therapy"),
)

# Which canonical column a BCRA category error points to.
_CATEGORY_COLUMNS = (
    ("am_cat", "age_at_menarche"),
    ("af_cat", "age_at_first_birth"),
    ("nr_cat", "first_degree_relatives"),
)


@dataclass
class GailResult:
    """Per-row outputs of :meth:`GailModel.score` (:meth:`GailModel.assess` gives them as a dict); shape ``(n,)``."""

    risk: np.ndarray  # probability in [0, 1], NaN where not scored
    average_risk: np.ndarray  # same projection for the "average woman" of her age and race
    rr_under50: np.ndarray
    rr_over50: np.ndarray


class GailModel:
    """The Gail model (NCI BCRAT, as R's BCRA 2.1.2 computes it) on canonical columns.

    The model needs ``age``; ``race`` (NaN = unknown, scored as BCRAT's code 4) and the
    risk factors are optional (NaN = unknown, scored as BCRA's code 99). It does not
    score women it was not built for: BRCA1/2 carriers, a personal history of breast
    cancer, DCIS or LCIS, or chest radiation (status ``not_applicable``), nor projections
    outside ages 20–90 (status ``out_of_range``).

    Parameters:
        chunk_size: rows per block in the risk integral (memory bound only).
    """

    #: :class:`~riskmodel.models.base.RiskModel` protocol: the cohort table alone, any horizon up to age 90
    #: (checked per row by :meth:`assess`), details ``average_risk``, ``rr_under50``, ``rr_over50``.
    name = "gail"
    required_columns = ("age",)
    output_columns: tuple[str, ...] = ()
    max_horizon = None
    inputs: tuple[str, ...] = ()
    #: Canonical columns the model does not read whose bad values are reported in the row's message
    #: without costing the row its risk. (``prs`` is not read either, but keeps its strict checks:
    #: a whole column of text is an error of the table, and the streaming/Dask paths rely on that.)
    notes_only_columns = ("density",)

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        self.chunk_size = chunk_size

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """Parameters, as scikit-learn's estimators report them."""
        return {"chunk_size": self.chunk_size}

    def __repr__(self) -> str:
        return f"GailModel(chunk_size={self.chunk_size})"

    def prepare(self, data: pd.DataFrame, **inputs: Any) -> dict[str, Any]:
        """Nothing to prepare: the Gail model reads only the validated cohort (``{}``).

        Raises:
            ValueError: an extra input is given (the Gail model reads none).
        """
        if inputs:
            raise ValueError(f"the Gail model reads only the cohort table, not {', '.join(sorted(inputs))}")
        return {}

    def score(self, cohort: ValidatedCohort, horizon: np.ndarray) -> GailResult:
        """:meth:`assess` as a :class:`GailResult` (the name before the RiskModel protocol; kept for callers)."""
        return GailResult(**self.assess(cohort, horizon))

    def assess(self, cohort: ValidatedCohort, horizon: np.ndarray) -> LazyColumns:
        """Absolute risk for each row over ``horizon`` years, flagging rows it cannot score.

        Args:
            cohort: a validated canonical cohort; rows that are not ``"ok"`` are skipped,
                and rows this model rejects are flagged on it.
            horizon: projection length in years per row, shape ``(n,)``.
        """
        age = cohort.column("age")
        t2 = age + horizon
        brca = cohort.column("brca")
        cohort.flag((brca == 1) | (brca == 2), "not_applicable",
                    "brca={b}: the Gail model is not for BRCA1/2 carriers", b=np.where(brca == 1, "BRCA1", "BRCA2"))
        for column, what in _EXCLUSIONS:
            cohort.flag(cohort.column(column) == 1, "not_applicable",
                        f"{column}=True: the Gail model is not for women with {what}")
        cohort.flag((age < FIRST_AGE) | (age >= LAST_AGE), "out_of_range",
                    f"age={{a}}: the Gail model covers ages {FIRST_AGE} to {LAST_AGE}", a=age)
        cohort.flag((age >= FIRST_AGE) & (t2 > LAST_AGE), "out_of_range",
                    f"age + horizon = {{t}}: projections must end by age {LAST_AGE}", t=t2)

        codes = bcra_codes(cohort, t2)
        rec = recode(**_rename(codes))
        rr1, rr2, _ = relative_risk(rec)
        # Anything BCRA's own rules still reject is reported against the column it came from.
        ok = cohort.ok
        cohort.flag(ok & ((rec.nb_req != REQ_NONE) | np.isnan(rec.nb_cat) | np.isnan(rec.r_hyp)), "invalid",
                    "n_biopsies={n}, atypical_hyperplasia={h}: rejected by the Gail model's biopsy rules",
                    n=cohort.column("n_biopsies"), h=cohort.column("atypical_hyperplasia"))
        for attr, column in _CATEGORY_COLUMNS:
            cohort.flag(ok & np.isnan(getattr(rec, attr)), "invalid",
                        f"{column}={{v}}: outside the Gail model's categories", v=cohort.column(column))
        ok = cohort.ok
        rejected = ok & (rec.error | np.isnan(rr1))
        cohort.flag(rejected, "invalid", "rejected by the Gail model's rules")
        scored = ok & ~rejected  # cohort.ok now: a flag takes every flagged row out of "ok"
        rec.error = rec.error | ~scored
        risk = absolute_risk(rec, rr1, rr2, chunk_size=self.chunk_size) / 100.0
        nan = np.nan

        def average_risk() -> np.ndarray:  # a second integral: only computed when a caller reads it
            avg = absolute_risk(rec, rr1, rr2, avg_white=True, chunk_size=self.chunk_size) / 100.0
            return np.where(scored, avg, nan)

        return LazyColumns({"risk": np.where(scored, risk, nan),
                            "rr_under50": np.where(scored, rr1, nan),
                            "rr_over50": np.where(scored, rr2, nan)}, average_risk=average_risk)


def _rename(codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = {"T1": "t1", "T2": "t2", "N_Biop": "n_biop", "HypPlas": "hyp_plas", "AgeMen": "age_men",
             "Age1st": "age_1st", "N_Rels": "n_rels", "Race": "race"}
    return {names[k]: v for k, v in codes.items()}
