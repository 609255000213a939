"""A drop-in for R's BCRA 2.1.2: the same column names, codes, outputs and NA rules.

>>> import pandas as pd
>>> from riskmodel.gail import bcra_absolute_risk
>>> df = pd.DataFrame({"ID": [1], "T1": [40.0], "T2": [45.0], "N_Biop": [99], "HypPlas": [99],
...                    "AgeMen": [12], "Age1st": [25], "N_Rels": [1], "Race": [1]})
>>> round(float(bcra_absolute_risk(df).iloc[0]), 6)   # percent, as BCRA gives it
1.098937

Also: converters between BCRA's layout and the canonical schema of :mod:`riskmodel.schema`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskmodel.gail.recode import REQ_A, REQ_B, Recoded, recode
from riskmodel.gail.risk import DEFAULT_CHUNK, absolute_risk, relative_risk
from riskmodel.gail.tables import LAST_AGE, load_tables
from riskmodel.schema import SchemaError, ValidatedCohort, is_blank

#: BCRA's input columns, in BCRA's order.
BCRA_COLUMNS = ("ID", "T1", "T2", "N_Biop", "HypPlas", "AgeMen", "Age1st", "N_Rels", "Race")
_NUMERIC = BCRA_COLUMNS[1:]


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame with BCRA's columns, got {type(frame).__name__}")
    out = {}
    for name in _NUMERIC:
        if name not in frame.columns:
            raise SchemaError(name, "is required by BCRA but missing from the input")
        s = frame[name]
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            out[name] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            continue
        coerced = pd.to_numeric(s, errors="coerce")
        bad = coerced.isna() & ~is_blank(s)
        if bad.any():
            row = s.index[bad.to_numpy()][0]
            raise SchemaError(name, f"must be numeric; row {row} has {s[row]!r}")
        out[name] = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _recode_frame(frame: pd.DataFrame, raw_ind: int) -> tuple[Recoded, dict[str, np.ndarray]]:
    c = _columns(frame)
    rec = recode(c["T1"], c["T2"], c["N_Biop"], c["HypPlas"], c["AgeMen"], c["Age1st"], c["N_Rels"],
                 c["Race"], raw_ind=raw_ind)
    return rec, c


def bcra_recode_check(frame: pd.DataFrame, raw_ind: int = 1) -> pd.DataFrame:
    """BCRA's ``recode.check``: error flag and recoded categories, one row per input row.

    Args:
        frame: BCRA layout (``T1, T2, N_Biop, HypPlas, AgeMen, Age1st, N_Rels, Race``).
        raw_ind: 1 for raw inputs, 0 when the four covariates are already categories.

    Returns:
        A DataFrame with the input's index and BCRA's columns ``Error_Ind`` (0/1),
        ``set_T1_missing``, ``set_T2_missing``, ``NB_Cat``, ``AM_Cat``, ``AF_Cat``,
        ``NR_Cat``, ``R_Hyp``, ``set_HyperP_missing``, ``set_R_Hyp_missing``,
        ``set_Race_missing``, ``CharRace``. Numbers are floats (NaN where BCRA has NA);
        ``NB_Cat`` and the ``set_*`` columns hold BCRA's letter codes ("A", "B", "U")
        where BCRA does, so their dtype is object.
    """
    rec, c = _recode_frame(frame, raw_ind)
    req = rec.nb_req
    letters = np.where(req == REQ_A, "A", np.where(req == REQ_B, "B", ""))
    has_letter = letters != ""
    nb_cat = rec.nb_cat.astype(object)
    # Hispanic regrouping overwrites "A" with 0 (spec §4.9); elsewhere the letter shows.
    show_letter = has_letter & np.isnan(rec.nb_cat)
    nb_cat[show_letter] = letters[show_letter]
    hyper = c["HypPlas"].astype(object)
    hyper[has_letter] = letters[has_letter]
    r_hyp_set = rec.r_hyp.astype(object)
    r_hyp_set[has_letter] = letters[has_letter]
    race_set = rec.race.astype(object)
    race_set[~rec.race_valid] = "U"
    return pd.DataFrame(
        {
            "Error_Ind": rec.error.astype(np.int64),
            "set_T1_missing": np.where(rec.t1_flag, np.nan, rec.t1),
            "set_T2_missing": np.where(rec.t2_flag, np.nan, rec.t2),
            "NB_Cat": nb_cat,
            "AM_Cat": rec.am_cat,
            "AF_Cat": rec.af_cat,
            "NR_Cat": rec.nr_cat,
            "R_Hyp": rec.r_hyp,
            "set_HyperP_missing": hyper,
            "set_R_Hyp_missing": r_hyp_set,
            "set_Race_missing": race_set,
            "CharRace": load_tables().char_race[rec.race_idx],
        },
        index=frame.index,
    )


def bcra_relative_risk(frame: pd.DataFrame, raw_ind: int = 1) -> pd.DataFrame:
    """BCRA's ``relative.risk``: RR for ages < 50 and ≥ 50 and the covariate pattern number.

    Returns:
        A DataFrame with the input's index and columns ``RR_Star1``, ``RR_Star2``
        (float, NaN where BCRA has NA) and ``PatternNumber`` (1–108 as float, NaN where NA).
    """
    rec, _ = _recode_frame(frame, raw_ind)
    rr1, rr2, pattern = relative_risk(rec)
    return pd.DataFrame({"RR_Star1": rr1, "RR_Star2": rr2, "PatternNumber": pattern}, index=frame.index)


def bcra_absolute_risk(
    frame: pd.DataFrame, raw_ind: int = 1, avg_white: int = 0, chunk_size: int = DEFAULT_CHUNK
) -> pd.Series:
    """BCRA's ``absolute.risk``: risk of invasive breast cancer from age T1 to T2, in percent.

    Args:
        frame: BCRA layout, one row per woman.
        raw_ind: 1 for raw inputs, 0 when the four covariates are already categories.
        avg_white: 1 for the "average woman" risk of the same age and race (BCRA's
            ``Avg_White``), 0 for her own risk.
        chunk_size: rows processed at a time (memory bound; results do not depend on it).

    Returns:
        A float Series in percent, one value per input row with the input's index, NaN
        exactly where BCRA returns NA.
    """
    if avg_white not in (0, 1, False, True):
        raise ValueError(f"avg_white must be 0 or 1, got {avg_white!r}")
    rec, _ = _recode_frame(frame, raw_ind)
    rr1, rr2, _ = relative_risk(rec)
    risk = absolute_risk(rec, rr1, rr2, avg_white=bool(avg_white), chunk_size=chunk_size)
    return pd.Series(risk, index=frame.index, name="AbsRisk_Avg" if avg_white else "AbsRisk")


def bcra_explain(frame: pd.DataFrame, raw_ind: int = 1, avg_white: int = 0) -> pd.DataFrame:
    """BCRA's absolute risk with a status and a message saying why a row got NA.

    Returns:
        A DataFrame with the input's index: ``AbsRisk`` (percent, exactly
        :func:`bcra_absolute_risk`), ``status`` (``"ok"`` or ``"invalid"``) and ``message``
        naming BCRA's rule: age limits, Requirement A/B, a category that could not be formed,
        an invalid race, or an unknown hyperplasia factor.
    """
    rec, _ = _recode_frame(frame, raw_ind)
    rr1, rr2, _ = relative_risk(rec)
    risk = absolute_risk(rec, rr1, rr2, avg_white=bool(avg_white))
    reasons = [
        (rec.t1_flag | np.isnan(rec.t1), "T1 must satisfy 20 <= T1 < 90 and T1 < T2"),
        (rec.t2_flag | np.isnan(rec.t2), "T2 must satisfy T1 < T2 <= 90"),
        (rec.nb_req == REQ_A, "Requirement A: HypPlas must be 99 when N_Biop is 0 or 99"),
        (rec.nb_req == REQ_B, "Requirement B: HypPlas must be 0, 1 or 99 when 0 < N_Biop < 99"),
        ((rec.nb_req == 0) & np.isnan(rec.nb_cat), "N_Biop is missing"),
        (np.isnan(rec.am_cat), "AgeMen must be in (0, T1] or 99"),
        (np.isnan(rec.af_cat), "Age1st must be in [AgeMen, T1], 98 or 99"),
        (np.isnan(rec.nr_cat), "N_Rels must be 0, 1, 2..98 or 99"),
        (~rec.race_valid, "Race must be a code 1-11"),
        (~rec.error & np.isnan(rec.r_hyp) & (avg_white == 0), "HypPlas gives no hyperplasia factor (R_Hyp is NA)"),
    ]
    message = np.full(len(risk), "", dtype=object)
    for mask, text in reasons:
        mask = mask & np.isnan(risk)
        message[mask] = np.where(message[mask] == "", text, message[mask] + "; " + text)
    status = np.where(np.isnan(risk), "invalid", "ok")
    return pd.DataFrame({"AbsRisk": risk, "status": status, "message": message}, index=frame.index)


def canonical_to_bcra(data: pd.DataFrame, horizon: float | str = 5.0) -> pd.DataFrame:
    """Convert a canonical cohort to BCRA's layout.

    Unknowns become BCRA's codes (99; 98 for nulliparous); a missing ``race`` becomes 4
    (BCRAT's "other or unknown race"); ``atypical_hyperplasia`` 0 or NaN becomes 99 where
    the woman had no biopsy or their number is unknown, as BCRA requires. Values that are
    invalid in the canonical schema are passed through unchanged, so BCRA's own rules flag them.

    Args:
        data: canonical columns (see :mod:`riskmodel.schema`).
        horizon: years from ``age`` to T2, or ``"lifetime"`` for T2 = 90.

    Returns:
        A DataFrame with BCRA's columns and the same index.
    """
    from riskmodel.schema import validate

    cohort = validate(data, required=("age",))
    age = cohort.column("age")
    if isinstance(horizon, str):
        if horizon != "lifetime":
            raise ValueError(f"horizon must be a number of years or 'lifetime', got {horizon!r}")
        t2 = np.full(len(age), float(LAST_AGE))
    else:
        t2 = age + float(horizon)
    ids = data["id"].to_numpy() if "id" in data.columns else np.arange(1, len(data) + 1)
    out = pd.DataFrame({"ID": ids}, index=data.index)
    for name, values in bcra_codes(cohort, t2).items():
        out[name] = values
    return out


def bcra_codes(cohort: ValidatedCohort, t2: np.ndarray) -> dict[str, np.ndarray]:
    """BCRA-coded input arrays (``T1`` … ``Race``) from a validated canonical cohort.

    Args:
        cohort: output of :func:`riskmodel.schema.validate`.
        t2: projection end age per row, shape ``(n,)``.
    """
    nb = cohort.column("n_biopsies")
    ah = cohort.column("atypical_hyperplasia")
    afb = cohort.column("age_at_first_birth")
    men = cohort.column("age_at_menarche")
    rels = cohort.column("first_degree_relatives")
    race = cohort.column("race")
    no_biopsy = np.isnan(nb) | (nb == 0)
    return {
        "T1": cohort.column("age"),
        "T2": np.asarray(t2, dtype=np.float64),
        "N_Biop": np.where(np.isnan(nb), 99.0, nb),
        "HypPlas": np.where(np.isnan(ah) | (no_biopsy & (ah == 0)), 99.0, ah),
        "AgeMen": np.where(np.isnan(men), 99.0, men),
        "Age1st": np.where(cohort.column("nulliparous") == 1, 98.0, np.where(np.isnan(afb), 99.0, afb)),
        "N_Rels": np.where(np.isnan(rels), 99.0, rels),
        "Race": np.where(np.isnan(race), 4.0, race),
    }


def bcra_to_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert BCRA's layout to the canonical schema (``T2 − T1`` goes to a ``horizon`` column).

    BCRA's unknown codes become NaN (99 for counts and ages, 98 for ``Age1st`` sets
    ``nulliparous``); ``HypPlas`` 99 becomes NaN. The result can be passed to
    :func:`riskmodel.predict_risk` with ``horizon="horizon"``.
    """
    c = _columns(frame)

    def unknown(x: np.ndarray, code: float = 99.0) -> np.ndarray:
        return np.where(x == code, np.nan, x)

    age1st = c["Age1st"]
    out = pd.DataFrame(
        {
            "id": frame["ID"].to_numpy() if "ID" in frame.columns else np.arange(1, len(frame) + 1),
            "age": c["T1"],
            "race": c["Race"],
            "age_at_menarche": unknown(c["AgeMen"]),
            "age_at_first_birth": np.where((age1st == 98) | (age1st == 99), np.nan, age1st),
            "nulliparous": np.where(age1st == 98, 1.0, np.where(age1st == 99, np.nan, 0.0)),
            "n_biopsies": unknown(c["N_Biop"]),
            "atypical_hyperplasia": unknown(c["HypPlas"]),
            "first_degree_relatives": unknown(c["N_Rels"]),
            "horizon": c["T2"] - c["T1"],
        },
        index=frame.index,
    )
    out["nulliparous"] = out["nulliparous"].astype("boolean")
    return out
