"""Risk factors as a numeric design matrix for the fusion heads, with explicit imputation.

:class:`FactorEncoder` turns canonical cohort columns (:mod:`riskmodel.schema`) into a float32
matrix. Columns, in this order (a group appears only if it was fitted, see ``factors``):

* ``age_z`` = ``(age − 60) / 10``. Age is required and never imputed.
* ``density_a``, ``density_c``, ``density_d``: BI-RADS density dummies against b (scattered).
  An unknown density is replaced by its *expected* dummies: under the image model's density
  probabilities (``density_proba``) when given for that row, else under the training cohort's
  density frequencies.
* ``fdr_1``, ``fdr_2plus``: one, and two or more, affected first-degree relatives (reference 0).
  Unknown → the expected indicators under the training frequencies.
* ``brca1``, ``brca2``, ``brca_missing``: carrier indicators. Unknown → the training carrier
  frequencies (among women tested) and ``brca_missing = 1``.
* ``prs``, ``prs_missing``: the canonical PRS is already standardized (mean 0, SD 1 in the
  population) and is used as is. Unknown → 0, its population mean, i.e. marginalising a linear
  term (E[z] = 0; exact for the linear predictor, not for exp(βz)), and ``prs_missing = 1``.
* ``gail_log_rr``: log of the Gail model's relative risk (BCRA 2.1.2) from biopsies, atypical
  hyperplasia, age at menarche and age at first birth for her race (RR_Star1 below age 50,
  RR_Star2 from 50). Family history is left out of it (it has its own columns), so Gail's
  AgeFst × N_Rels interaction is dropped. Unknown inputs get BCRA's unknown codes, which Gail
  scores as the reference category; rows that BCRA's own rules reject (e.g. atypical hyperplasia
  with an unknown number of biopsies) raise ValueError.
* ``literature_log_rr`` (group ``"literature"``, only when asked for): one column adding up
  published log relative risks, as iCARE combines literature figures (Pal Choudhury et al. 2020):
  Gail's full log relative risk *with* family history (BCRA 2.1.2, including its
  AgeFst × N_Rels interaction), the BCSC v1 density relative hazard versus BI-RADS b (by age
  < 65 / ≥ 65), and the PRS term ``β z − β²/2`` with β = ln 1.61 per SD (PRS313). Figures and
  sources: ``riskmodel/fusion/data/literature_rr.json``. Unknowns: Gail's unknown codes as
  above; an unknown density contributes the log of its *expected* relative hazard (under
  ``density_proba`` when given, else the training frequencies); an unknown PRS contributes 0,
  which marginalises the PRS exactly (E[exp(βz − β²/2)] = 1). A head then fits one coefficient
  for the whole score instead of one per factor: steadier with a few dozen cancers, overtaken by
  the separate columns with around a hundred (``benchmarks/literature_factors.py``,
  ``docs/fusion.md``). BRCA carriers are not in it (use the ``"brca"`` group next to it).

Nothing is ever silently set to zero: every replaced value is recorded per row in the mask
that :meth:`FactorEncoder.transform` returns with ``return_imputed=True`` (also kept as
``imputed_``), so callers can report which predictions rest on imputed inputs.

>>> import pandas as pd
>>> train = pd.DataFrame({"age": [45.0, 55.0, 65.0, 70.0], "density": ["a", "b", "c", "d"],
...                       "first_degree_relatives": [0, 1, 0, 2], "prs": [0.5, -1.0, 0.0, 1.2]})
>>> enc = FactorEncoder().fit(train)
>>> enc.feature_names_
['age_z', 'density_a', 'density_c', 'density_d', 'fdr_1', 'fdr_2plus', 'prs', 'prs_missing']
>>> new = pd.DataFrame({"age": [50.0], "density": [None], "first_degree_relatives": [1], "prs": [None]})
>>> x, imputed = enc.transform(new, return_imputed=True)
>>> x.round(3).tolist()
[[-1.0, 0.25, 0.25, 0.25, 1.0, 0.0, 0.0, 1.0]]
>>> imputed.loc[0, ["density_marginal", "prs"]].tolist()
[True, True]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from riskmodel.estimators import estimator_repr
from riskmodel.gail.bcra import bcra_codes
from riskmodel.gail.recode import REQ_NONE, recode
from riskmodel.gail.risk import relative_risk
from riskmodel.schema import ValidatedCohort, validate

__all__ = ["DEFAULT_GROUPS", "FACTOR_GROUPS", "GAIL_COLUMNS", "IMPUTED_COLUMNS", "FactorEncoder", "literature_figures"]

#: Factor groups in output order, with the canonical columns each reads and the features it writes.
FACTOR_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "age": (("age",), ("age_z",)),
    "density": (("density",), ("density_a", "density_c", "density_d")),
    "family_history": (("first_degree_relatives",), ("fdr_1", "fdr_2plus")),
    "brca": (("brca",), ("brca1", "brca2", "brca_missing")),
    "prs": (("prs",), ("prs",  "prs_missing")),
    "gail": (("n_biopsies", "atypical_hyperplasia", "age_at_menarche", "age_at_first_birth", "nulliparous"),
             ("gail_log_rr",)),
    "literature": (("n_biopsies", "atypical_hyperplasia", "age_at_menarche", "age_at_first_birth", "nulliparous",
                    "first_degree_relatives", "density", "prs"), ("literature_log_rr",)),
}
#: Groups used when ``factors=None``: every one whose columns are present (``"literature"`` is
#: only used when asked for, since it repeats the information of the others).
DEFAULT_GROUPS = ("age", "density", "family_history", "brca", "prs", "gail")
#: Canonical columns behind ``gail_log_rr``.
GAIL_COLUMNS = FACTOR_GROUPS["gail"][0]
#: Columns of the imputation mask (one boolean per row and kind of imputation).
IMPUTED_COLUMNS = ("density_from_image", "density_marginal", "family_history", "brca", "prs", "gail")
#: The published figures behind ``literature_log_rr`` (loaded once).
_LITERATURE_FILE = "literature_rr.json"
#: Groups that need training-set frequencies for their unknowns.
_NEEDS_FREQUENCIES = ("density", "family_history", "brca")
#: Tolerance on the row sums of ``density_proba``.
_PROBA_TOL = 1e-3
#: Fitted frequency attributes, one per group of ``_NEEDS_FREQUENCIES``.
_FREQUENCIES = ("density_freq_", "fdr_freq_", "brca_freq_")
#: ``format`` tag and version of :meth:`FactorEncoder.to_dict`.
_FORMAT = "riskmodel.fusion.FactorEncoder"
_FORMAT_VERSION = 1


class FactorEncoder(TransformerMixin, BaseEstimator):
    """Encode canonical risk-factor columns as a float32 matrix, imputing unknowns explicitly.

    Parameters:
        factors: groups to encode, a subset of :data:`FACTOR_GROUPS` (``"age"`` is always
            included). ``None`` (default): every group whose columns are present in the
            training cohort with at least one known value. A requested density, family-history
            or BRCA group needs known values at fit time (its unknowns are imputed from them).

    Attributes:
        factors_: the groups encoded, in output order.
        feature_names_: output column names, list of length ``n_features_out_``.
        density_freq_: ``(4,)`` training frequencies of density a–d (if density is encoded).
        fdr_freq_: ``(2,)`` training frequencies of 1 and ≥2 affected relatives.
        brca_freq_: ``(2,)`` training BRCA1 and BRCA2 carrier frequencies among women tested.
        imputed_: boolean DataFrame (n, :data:`IMPUTED_COLUMNS`) from the latest ``transform``.
    """

    def __init__(self, factors: Sequence[str] | None = None):
        self.factors = factors

    def __repr__(self) -> str:
        """``<FactorEncoder: fitted, 9 columns from age, density, family_history>``."""
        if not hasattr(self, "feature_names_"):
            return estimator_repr(self, None)
        return estimator_repr(self, f"fitted, {self.n_features_out_} columns from {', '.join(self.factors_)}")

    # ------------------------------------------------------------------ fit

    def fit(self, cohort: pd.DataFrame, y: object = None) -> FactorEncoder:
        """Learn which groups to encode and the training frequencies used for unknowns.

        Args:
            cohort: canonical columns (see :mod:`riskmodel.schema`); one row per woman.
            y: ignored (scikit-learn signature).

        Raises:
            ValueError: a row fails the schema's rules (message names the column), an unknown
                group is requested, or a requested group has no known value to learn from.
        """
        frame = _validated(cohort, "cohort")
        if self.factors is None:
            groups = [g for g in DEFAULT_GROUPS
                      if g == "age" or any(c in frame and frame[c].notna().any() for c in FACTOR_GROUPS[g][0])]
        else:
            if isinstance(self.factors, str):
                raise ValueError(f"factors must be a sequence of group names, got the string {self.factors!r}")
            unknown = sorted(set(self.factors) - set(FACTOR_GROUPS))
            if unknown:
                raise ValueError(f"factors: unknown group(s) {unknown}; choose from {list(FACTOR_GROUPS)}")
            groups = [g for g in FACTOR_GROUPS if g == "age" or g in self.factors]
        for g in _NEEDS_FREQUENCIES:
            col = FACTOR_GROUPS[g][0][0]
            if g in groups and (col not in frame or frame[col].isna().all()):
                raise ValueError(f"factors: group {g!r} needs known values of column {col!r} in the training "
                                 "cohort (its unknowns are imputed from their frequencies)")
        if "literature" in groups and ("density" not in frame or frame["density"].isna().all()):
            raise ValueError("factors: group 'literature' needs known values of column 'density' in the training "
                             "cohort (an unknown density is replaced by its expected relative hazard)")
        self.factors_ = groups
        if "density" in groups or "literature" in groups:
            d = frame["density"].dropna().to_numpy()
            self.density_freq_ = np.array([(d == k).mean() for k in (1, 2, 3, 4)])
        if "family_history" in groups:
            r = frame["first_degree_relatives"].dropna().to_numpy()
            self.fdr_freq_ = np.array([(r == 1).mean(), (r >= 2).mean()])
        if "brca" in groups:
            b = frame["brca"].dropna().to_numpy()
            self.brca_freq_ = np.array([(b == 1).mean(), (b == 2).mean()])
        self.feature_names_ = [f for g in groups for f in FACTOR_GROUPS[g][1]]
        self.n_features_out_ = len(self.feature_names_)
        return self

    # ------------------------------------------------------------------ transform

    def transform(
        self,
        cohort: pd.DataFrame,
        density_proba: np.ndarray | None = None,
        return_imputed: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, pd.DataFrame]:
        """Encode a cohort.

        Args:
            cohort: canonical columns, ``n`` rows. A fitted group whose columns are absent is
                treated as unknown for every row (and imputed, and reported).
            density_proba: optional ``(n, 4)`` probabilities of density a–d per row from the
                image model's auxiliary density head. Used only where the BI-RADS density is
                unknown; a row of NaN means "not available" for that row. Rows used must be
                non-negative and sum to 1.
            return_imputed: also return the imputation mask.

        Returns:
            ``X`` float32 of shape ``(n, n_features_out_)``; with ``return_imputed`` also a
            boolean DataFrame with the cohort's index and columns :data:`IMPUTED_COLUMNS`.
        """
        check_is_fitted(self, "feature_names_")
        frame = _validated(cohort, "cohort")
        n = len(frame)
        proba = _check_proba(density_proba, n)
        imputed = pd.DataFrame(False, index=frame.index, columns=list(IMPUTED_COLUMNS))
        blocks: list[np.ndarray] = []

        def col(name: str) -> np.ndarray:
            if name in frame:
                return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            return np.full(n, np.nan)

        age = col("age")
        blocks.append(((age - 60.0) / 10.0)[:, None])
        if "density" in self.factors_:
            d = col("density")
            dummies = np.column_stack([d == 1, d == 3, d == 4]).astype(np.float64)
            unknown = np.isnan(d)
            from_image = unknown & ~np.isnan(proba).any(axis=1)
            marginal = unknown & ~from_image
            dummies[from_image] = proba[from_image][:, [0, 2, 3]]
            dummies[marginal] = self.density_freq_[[0, 2, 3]]
            imputed["density_from_image"] = from_image
            imputed["density_marginal"] = marginal
            blocks.append(dummies)
        if "family_history" in self.factors_:
            r = col("first_degree_relatives")
            ind = np.column_stack([r == 1, r >= 2]).astype(np.float64)
            unknown = np.isnan(r)
            ind[unknown] = self.fdr_freq_
            imputed["family_history"] = unknown
            blocks.append(ind)
        if "brca" in self.factors_:
            b = col("brca")
            unknown = np.isnan(b)
            ind = np.column_stack([b == 1, b == 2, unknown]).astype(np.float64)
            ind[unknown, :2] = self.brca_freq_
            imputed["brca"] = unknown
            blocks.append(ind)
        if "prs" in self.factors_:
            z = col("prs")
            unknown = np.isnan(z)
            blocks.append(np.column_stack([np.where(unknown, 0.0, z), unknown.astype(np.float64)]))
            imputed["prs"] = unknown
        if "gail" in self.factors_:
            log_rr, unknown = _gail_log_rr(frame)
            blocks.append(log_rr[:, None])
            imputed["gail"] = unknown
        if "literature" in self.factors_:
            log_rr, unknown = _literature_log_rr(frame, proba, self.density_freq_)
            blocks.append(log_rr[:, None])
            for name, mask in unknown.items():
                imputed[name] |= mask
        x = np.hstack(blocks).astype(np.float32)
        self.imputed_ = imputed
        return (x, imputed) if return_imputed else x

    def fit_transform(self, cohort: pd.DataFrame, y: object = None, density_proba: np.ndarray | None = None,
                      return_imputed: bool = False) -> np.ndarray | tuple[np.ndarray, pd.DataFrame]:
        """``fit(cohort).transform(cohort, density_proba, return_imputed)``."""
        return self.fit(cohort).transform(cohort, density_proba=density_proba, return_imputed=return_imputed)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Output column names (scikit-learn API)."""
        check_is_fitted(self, "feature_names_")
        return np.asarray(self.feature_names_, dtype=object)

    def rejected_rows(self, cohort: pd.DataFrame) -> np.ndarray:
        """Rows that :meth:`transform` would refuse because the Gail model's own rules reject them.

        Only the ``"gail"`` group can reject a row that passes the canonical schema (e.g. atypical
        hyperplasia with an unknown number of biopsies); callers that score many women use this
        mask to report those rows instead of failing the whole batch.

        Args:
            cohort: canonical columns; every row must pass the schema (as for :meth:`transform`).

        Returns:
            Boolean array of shape ``(n,)`` (all False when the Gail group is not encoded).
        """
        check_is_fitted(self, "feature_names_")
        frame = _validated(cohort, "cohort")
        if not {"gail", "literature"} & set(self.factors_) or len(frame) == 0:
            return np.zeros(len(frame), dtype=bool)
        return _gail_rr(frame)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state of a fitted encoder: the groups, feature names and training frequencies.

        >>> enc = FactorEncoder().fit(pd.DataFrame({"age": [50.0, 60.0], "density": ["b", "c"]}))
        >>> FactorEncoder.from_dict(enc.to_dict()).feature_names_ == enc.feature_names_
        True
        """
        check_is_fitted(self, "feature_names_")
        d: dict[str, Any] = {"format": _FORMAT, "format_version": _FORMAT_VERSION,
                             "params": {"factors": None if self.factors is None else list(self.factors)},
                             "factors": list(self.factors_), "feature_names": list(self.feature_names_)}
        for name in _FREQUENCIES:
            if hasattr(self, name):
                d[name.rstrip("_")] = [float(v) for v in getattr(self, name)]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FactorEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict`'s output.

        Raises:
            ValueError: not an encoder state, another format version, or inconsistent contents.
        """
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"not a FactorEncoder state: format is {got!r}, expected {_FORMAT!r}")
        if d.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"FactorEncoder state has format_version {d.get('format_version')!r}; "
                             f"this riskmodel reads {_FORMAT_VERSION}")
        params = d.get("params") or {}
        enc = cls(factors=params.get("factors"))
        groups = list(d.get("factors") or [])
        if not groups or groups[0] != "age" or set(groups) - set(FACTOR_GROUPS):
            raise ValueError(f"FactorEncoder state: factors {groups!r} must start with 'age' and be groups of "
                             f"{list(FACTOR_GROUPS)}")
        names = [f for g in FACTOR_GROUPS if g in groups for f in FACTOR_GROUPS[g][1]]
        if list(d.get("feature_names") or []) != names:
            raise ValueError(f"FactorEncoder state: feature_names {d.get('feature_names')!r} do not match the "
                             f"groups {groups!r}")
        enc.factors_ = [g for g in FACTOR_GROUPS if g in groups]
        for group, name in zip(_NEEDS_FREQUENCIES, _FREQUENCIES, strict=True):
            if group in groups or (group == "density" and "literature" in groups):
                values = np.asarray(d.get(name.rstrip("_"), []), dtype=np.float64)
                size = 4 if group == "density" else 2
                if values.shape != (size,) or not np.isfinite(values).all() or (values < 0).any():
                    raise ValueError(f"FactorEncoder state: {name.rstrip('_')} must be {size} frequencies")
                setattr(enc, name, values)
        enc.feature_names_ = names
        enc.n_features_out_ = len(names)
        return enc


# ---------------------------------------------------------------------- helpers


def _validated(cohort: pd.DataFrame, name: str) -> pd.DataFrame:
    """The canonical float frame of ``cohort``; raise if any row breaks a schema rule."""
    if not isinstance(cohort, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame with canonical columns, got {type(cohort).__name__}")
    v = validate(cohort, required=("age",))
    bad = ~v.ok
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = "; ".join(f"row {cohort.index[i]!r}: {v.message[i]}" for i in rows[:3])
        more = f" (and {rows.size - 3} more)" if rows.size > 3 else ""
        raise ValueError(f"{name}: {rows.size} row(s) fail the canonical schema: {shown}{more}")
    return v.frame


def _check_proba(density_proba: np.ndarray | None, n: int) -> np.ndarray:
    """``density_proba`` as float64 ``(n, 4)``; all-NaN when not given."""
    if density_proba is None:
        return np.full((n, 4), np.nan)
    p = np.asarray(density_proba, dtype=np.float64)
    if p.shape != (n, 4):
        raise ValueError(f"density_proba must have shape ({n}, 4) (density a–d per row), got {p.shape}")
    given = ~np.isnan(p).any(axis=1)
    partial = np.isnan(p).any(axis=1) & ~np.isnan(p).all(axis=1)
    if partial.any():
        raise ValueError(f"density_proba: row {int(np.flatnonzero(partial)[0])} is partly NaN; give 4 "
                         "probabilities or 4 NaN (not available)")
    q = p[given]
    if (~np.isfinite(q)).any() or (q < 0).any() or (np.abs(q.sum(axis=1) - 1.0) > _PROBA_TOL).any():
        raise ValueError("density_proba: each row must be 4 non-negative probabilities summing to 1")
    return p


def _gail_rr(frame: pd.DataFrame, family_history: bool = False
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], ValidatedCohort]:
    """Gail relative risk per row (without family history unless ``family_history``), the rows
    Gail's rules reject, and the BCRA codes."""
    n = len(frame)
    cohort = ValidatedCohort(frame=frame, status=np.full(n, "ok", dtype=object), message=np.full(n, "", dtype=object))
    age = cohort.column("age")
    codes = bcra_codes(cohort, age + 5.0)
    if not family_history:
        codes["N_Rels"] = np.full(n, 99.0)  # family history has its own columns
    rec = recode(codes["T1"], codes["T2"], codes["N_Biop"], codes["HypPlas"], codes["AgeMen"], codes["Age1st"],
                 codes["N_Rels"], codes["Race"])
    rr1, rr2, _ = relative_risk(rec)
    rr = np.where(age < 50, rr1, rr2)
    bad = np.isnan(rr) | (rec.nb_req != REQ_NONE)
    return rr, bad, codes, cohort


def _gail_log_rr(frame: pd.DataFrame, family_history: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Gail log relative risk (without the family-history terms unless ``family_history``), and
    which rows had unknown Gail inputs (family history not counted).

    Returns:
        ``(log_rr, unknown)``, shape ``(n,)`` each.
    """
    rr, bad, codes, cohort = _gail_rr(frame, family_history)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"cohort: {int(bad.sum())} row(s) are rejected by the Gail model's rules (first: row "
                         f"{frame.index[i]!r}: n_biopsies={codes['N_Biop'][i]:g}, atypical_hyperplasia="
                         f"{codes['HypPlas'][i]:g}, age_at_menarche={codes['AgeMen'][i]:g}, "
                         f"age_at_first_birth={codes['Age1st'][i]:g} in BCRA codes); fix or blank them")
    nb = cohort.column("n_biopsies")
    unknown = (
        np.isnan(nb)
        | ((nb > 0) & np.isnan(cohort.column("atypical_hyperplasia")))
        | np.isnan(cohort.column("age_at_menarche"))
        | (np.isnan(cohort.column("age_at_first_birth")) & (cohort.column("nulliparous") != 1))
    )
    return np.log(rr), unknown


@lru_cache(maxsize=1)
def literature_figures() -> dict[str, Any]:
    """The published figures behind ``literature_log_rr`` (``riskmodel/fusion/data/literature_rr.json``):
    ``density_rh`` (2, 4) array (rows: age < 65, ≥ 65; columns: density a–d vs b) and ``prs_beta``."""
    d = json.loads(resources.files("riskmodel.fusion").joinpath("data", _LITERATURE_FILE).read_text())
    rh = d["density_relative_hazard"]["value"]
    return {"density_rh": np.array([rh["below_65"], rh["from_65"]], dtype=np.float64),
            "prs_beta": float(d["prs_log_rr_per_sd"]["value"])}


def _literature_log_rr(frame: pd.DataFrame, proba: np.ndarray, density_freq: np.ndarray
                       ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sum of published log relative risks per row (see the module docstring) and its imputations.

    Returns:
        ``(log_rr, imputed)``: ``(n,)`` floats, and boolean masks keyed by :data:`IMPUTED_COLUMNS` names.
    """
    figures = literature_figures()
    n = len(frame)

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64, na_value=np.nan) if name in frame else np.full(n, np.nan)

    gail, gail_unknown = _gail_log_rr(frame, family_history=True)
    age = col("age")
    rh = figures["density_rh"][(age >= 65).astype(int)]  # (n, 4): her age group's a–d relative hazards
    d = col("density")
    unknown_d = np.isnan(d)
    from_image = unknown_d & ~np.isnan(proba).any(axis=1)
    weights = np.where(from_image[:, None], np.nan_to_num(proba), density_freq[None, :])
    expected = (weights * rh).sum(axis=1)
    known = rh[np.arange(n), np.nan_to_num(d, nan=2.0).astype(int) - 1]  # unknown: b, replaced below
    log_density = np.log(np.where(unknown_d, expected, known))
    z = col("prs")
    beta = figures["prs_beta"]
    prs_term = np.where(np.isnan(z), 0.0, beta * np.nan_to_num(z) - beta**2 / 2)
    imputed = {"gail": gail_unknown, "family_history": np.isnan(col("first_degree_relatives")),
               "density_from_image": from_image, "density_marginal": unknown_d & ~from_image,
               "prs": np.isnan(z)}
    return gail + log_density + prs_term, imputed
