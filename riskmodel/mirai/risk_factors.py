"""Mirai's risk-factor vector built from the canonical cohort columns (:mod:`riskmodel.schema`).

Mirai's view transformer appends a 100-value vector of 34 risk factors (:data:`RISK_FACTOR_KEYS`, the
Tyrer-Cuzick inputs) to the exam representation. Each key is a block (one-hot, or one value for a yes/no
key) encoded as Mirai's ``RiskFactorVectorizer`` (``onconet/utils/risk_factors.py``) encodes it; a block
of zeros means "unknown", and at inference an unknown key takes the probabilities the model's own
risk-factor head predicts from the images (Mirai's "use predicted if unknown" rule,
:class:`riskmodel.mirai.pool.RiskFactorPool`).

What the canonical columns supply (:data:`COLUMN_KEYS`), with Mirai's encodings:

=========================  =================================  ==========================================
column                     Mirai key                          encoding (value ``v``; ``a`` = age, whole years)
=========================  =================================  ==========================================
age                        age                                bins ≤40, ≤50, ≤60, ≤70, ≤80, >80
race (BCRAT code)          race                               Mirai's 13 codes (:data:`RACE_TO_MIRAI`)
age_at_menarche            menarche_age                       ≤10, ≤12, ≤14, ≤16, >16; unknown if ``v > a``
age_at_first_birth         first_pregnancy_age                ≤20, ≤25, ≤30, ≤35, ≤40, >40; unknown if ``v > a``
age_at_first_birth,        parous                             1 if a first birth before ``a`` or
nulliparous                                                   ``nulliparous`` is False
atypical_hyperplasia       binary_biopsy_atypical_hyperplasia 1 if yes
first_degree_relatives     binary_family_history              1 if at least one
density (BI-RADS 1–4)      density                            one-hot a–d
brca                       brca                               negative, BRCA1, BRCA2 (of Mirai's 4 classes)
prior_breast_cancer        prior_hist                         1 if yes
=========================  =================================  ==========================================

Mirai truncates ages to whole years before binning (``int(age)``), and so does this module. A yes/no key
whose answer is "no" is a zero block in Mirai's encoding, i.e. it reads as unknown and the prediction is used:
that is Mirai's rule, kept so that the numbers are Mirai's, and each such row says so. The other 22 keys
(weight, height, menopause, HRT, ovarian cancer, Ashkenazi, each relative's history, benign/LCIS biopsy)
have no canonical column and are always predicted. Canonical columns Mirai has no key for
(:data:`UNUSED_COLUMNS`) are reported on the rows that give them, never dropped silently.

Torch-free: arrays are numpy float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES

__all__ = ["COLUMN_KEYS", "RACE_TO_MIRAI", "RISK_FACTOR_KEYS", "UNUSED_COLUMNS", "MiraiRiskFactors",
           "encode_risk_factors"]

#: Mirai's 34 keys in its released order (the vector's block order).
RISK_FACTOR_KEYS: tuple[str, ...] = tuple(RISK_FACTOR_NUM_CLASSES)

#: Canonical column → the Mirai keys it supplies.
COLUMN_KEYS: dict[str, tuple[str, ...]] = {
    "age": ("age",),
    "race": ("race",),
    "age_at_menarche": ("menarche_age",),
    "age_at_first_birth": ("first_pregnancy_age", "parous"),
    "nulliparous": ("parous",),
    "atypical_hyperplasia": ("binary_biopsy_atypical_hyperplasia",),
    "first_degree_relatives": ("binary_family_history",),
    "density": ("density",),
    "brca": ("brca",),
    "prior_breast_cancer": ("prior_hist",),
}

#: Canonical columns Mirai has no key for, with why (reported on each row that gives a value).
UNUSED_COLUMNS: dict[str, str] = {
    "n_biopsies": "Mirai's biopsy keys are by finding (benign hyperplasia, LCIS, atypia), not a count",
    "prior_dcis_or_lcis": "Mirai has LCIS (as a biopsy finding) but no DCIS key; the column merges them",
    "prs": "Mirai has no polygenic score (use a HybridModel on Mirai for that)",
    "chest_radiation": "Mirai has no chest-radiation key",
}

#: BCRAT race code (:data:`riskmodel.schema.RACE_NAMES`) → Mirai's race code (``RACE_CODE_TO_NAME``, 1–13).
#: BCRAT code 4 merges "other", "Native American" and "unknown", which Mirai tells apart: it is not mapped.
RACE_TO_MIRAI: dict[int, int] = {1: 1, 2: 2, 3: 8, 5: 8, 6: 9, 7: 10, 8: 11, 9: 12, 10: 4, 11: 13}

#: Bin upper bounds (inclusive) of Mirai's one-hot keys.
_CUTOFFS: dict[str, tuple[int, ...]] = {
    "age": (40, 50, 60, 70, 80),
    "menarche_age": (10, 12, 14, 16),
    "first_pregnancy_age": (20, 25, 30, 35, 40),
}
#: Yes/no keys read from a 0/1 column (value > 0 means yes).
_BINARY: dict[str, str] = {
    "binary_biopsy_atypical_hyperplasia": "atypical_hyperplasia",
    "binary_family_history": "first_degree_relatives",
    "prior_hist": "prior_breast_cancer",
}


@dataclass
class MiraiRiskFactors:
    """Mirai's risk-factor vectors for ``n`` rows.

    Attributes:
        vectors: ``(n, 100)`` float32, blocks in :data:`RISK_FACTOR_KEYS` order, zeros where unknown.
        supplied: ``(n, 34)`` bool, True where the key's block is non-zero (the model uses it).
        notes: ``(n,)`` object, what a user should know about the row's factors (``""`` if nothing).
    """

    vectors: np.ndarray
    supplied: np.ndarray
    notes: np.ndarray

    def supplied_names(self, keys: tuple[str, ...] = RISK_FACTOR_KEYS) -> np.ndarray:
        """``(n,)`` object: the supplied keys of each row, comma-separated."""
        return np.array([",".join(k for k, s in zip(keys, row, strict=True) if s) for row in self.supplied],
                        dtype=object)

    def predicted_names(self, keys: tuple[str, ...] = RISK_FACTOR_KEYS) -> np.ndarray:
        """``(n,)`` object: the keys of each row that the model predicts, comma-separated."""
        return np.array([",".join(k for k, s in zip(keys, row, strict=True) if not s) for row in self.supplied],
                        dtype=object)


def _bin(values: np.ndarray, cutoffs: tuple[int, ...]) -> np.ndarray:
    """Bin index per value (``value <= cutoff[i]`` → i, else the last bin); -1 where NaN. Values truncated."""
    out = np.full(values.shape, -1, dtype=np.intp)
    known = np.isfinite(values)
    out[known] = np.searchsorted(np.asarray(cutoffs), np.trunc(values[known]), side="left")
    return out


def _codes(n: int, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per key, the index of the 1 in its block for each row (-1 = unknown, zero block)."""
    col = {c: np.asarray(columns[c], dtype=np.float64) if c in columns else np.full(n, np.nan) for c in COLUMN_KEYS}
    age = np.trunc(col["age"])
    codes = {"age": _bin(col["age"], _CUTOFFS["age"])}
    for key, name in (("menarche_age", "age_at_menarche"), ("first_pregnancy_age", "age_at_first_birth")):
        v = np.where(np.trunc(col[name]) > age, np.nan, col[name])  # after the exam: not happened yet (Mirai)
        codes[key] = _bin(v, _CUTOFFS[key])
    birth = col["age_at_first_birth"]
    parous = np.where(np.isfinite(birth), ~(np.trunc(birth) >= age), col["nulliparous"] == 0)
    codes["parous"] = np.where(parous, 0, -1)
    race = col["race"]
    codes["race"] = np.array([RACE_TO_MIRAI.get(int(r), 0) - 1 if np.isfinite(r) else -1 for r in race],
                             dtype=np.intp)
    density = col["density"]
    codes["density"] = np.where(np.isin(density, (1, 2, 3, 4)), np.nan_to_num(density) - 1, -1).astype(np.intp)
    brca = col["brca"]
    codes["brca"] = np.where(np.isin(brca, (0, 1, 2)), np.nan_to_num(brca) + 1, -1).astype(np.intp)
    for key, name in _BINARY.items():
        codes[key] = np.where(col[name] > 0, 0, -1)
    return codes


def _row_notes(n: int, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per row: canonical columns given but not used, yes/no answers "no" read as unknown, race code 4."""
    notes = np.full(n, "", dtype=object)
    parts: list[list[str]] = [[] for _ in range(n)]
    unused = {c: np.isfinite(np.asarray(columns[c], dtype=np.float64)) for c in UNUSED_COLUMNS if c in columns}
    for r in range(n):
        given = [c for c, mask in unused.items() if mask[r]]
        if given:
            parts[r].append(f"not used by Mirai (no such risk factor): {', '.join(given)}")
    no = {c: np.asarray(columns[c], dtype=np.float64) == 0 for c in (*_BINARY.values(), "nulliparous")
          if c in columns}
    if "nulliparous" in no:  # nulliparous=True is Mirai's parous "no"
        no["nulliparous"] = np.asarray(columns["nulliparous"], dtype=np.float64) == 1
    for r in range(n):
        said_no = [c for c, mask in no.items() if mask[r]]
        if said_no:
            parts[r].append(f"Mirai encodes a 'no' like an unknown, so its prediction is used for: "
                            f"{', '.join(said_no)}")
    if "race" in columns:
        for r in np.flatnonzero(np.asarray(columns["race"], dtype=np.float64) == 4):
            parts[r].append("race=4 (other, Native American or unknown) has no single Mirai code: predicted")
    for r, p in enumerate(parts):
        notes[r] = "; ".join(p)
    return notes


def encode_risk_factors(columns: Mapping[str, np.ndarray], n: int,
                        keys: tuple[str, ...] = RISK_FACTOR_KEYS) -> MiraiRiskFactors:
    """Mirai's risk-factor vectors for ``n`` rows from canonical columns.

    Args:
        columns: canonical column name → ``(n,)`` float values as :class:`riskmodel.schema.ValidatedCohort`
            holds them (NaN = unknown; codes for race, density, brca; 0/1 for yes/no). Absent columns are unknown.
        n: number of rows.
        keys: the model's ``risk_factor_keys`` (Mirai's released 34 by default; a subset keeps their order).

    Returns:
        :class:`MiraiRiskFactors` with ``vectors`` of shape ``(n, sum of the keys' widths)``.

    Raises:
        ValueError: a key Mirai does not have, or a column of the wrong length.
    """
    unknown = [k for k in keys if k not in RISK_FACTOR_NUM_CLASSES]
    if unknown:
        raise ValueError(f"risk-factor keys {unknown} are not Mirai's (known: {', '.join(RISK_FACTOR_KEYS)})")
    wrong = [c for c, v in columns.items() if np.shape(v) != (n,)]
    if wrong:
        raise ValueError(f"risk-factor columns {wrong} do not have {n} rows")
    codes = _codes(n, columns)
    widths = [RISK_FACTOR_NUM_CLASSES[k] for k in keys]
    vectors = np.zeros((n, sum(widths)), dtype=np.float32)
    supplied = np.zeros((n, len(keys)), dtype=bool)
    start = 0
    for j, (key, width) in enumerate(zip(keys, widths, strict=True)):
        code = codes.get(key, np.full(n, -1, dtype=np.intp))
        rows = np.flatnonzero(code >= 0)
        vectors[rows, start + code[rows]] = 1.0
        supplied[rows, j] = True
        start += width
    return MiraiRiskFactors(vectors, supplied, _row_notes(n, columns))
