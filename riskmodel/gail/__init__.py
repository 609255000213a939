"""The Gail model (NCI Breast Cancer Risk Assessment Tool), as R's BCRA 2.1.2 computes it.

Two faces:

* a drop-in for R users, on BCRA's own columns and codes:
  :func:`bcra_absolute_risk`, :func:`bcra_relative_risk`, :func:`bcra_recode_check`;
* :class:`GailModel` on the canonical schema, which :func:`riskmodel.predict_risk` uses.

Converters :func:`canonical_to_bcra` and :func:`bcra_to_canonical` move data between the two.
The tables are data files (``data/gail_constants.csv``, sources in ``data/SOURCES.md``).
"""

from riskmodel.gail.bcra import (
    BCRA_COLUMNS,
    bcra_absolute_risk,
    bcra_explain,
    bcra_recode_check,
    bcra_relative_risk,
    bcra_to_canonical,
    canonical_to_bcra,
)
from riskmodel.gail.model import GailModel, GailResult
from riskmodel.gail.tables import GailTables, load_tables

__all__ = [
    "BCRA_COLUMNS",
    "GailModel",
    "GailResult",
    "GailTables",
    "bcra_absolute_risk",
    "bcra_explain",
    "bcra_recode_check",
    "bcra_relative_risk",
    "bcra_to_canonical",
    "canonical_to_bcra",
    "load_tables",
]
