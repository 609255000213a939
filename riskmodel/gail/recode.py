"""Validation and categorisation of Gail inputs, as BCRA 2.1.2's ``recode.check`` does it.

Inputs are BCRA's raw codes (``N_Biop`` 99 = unknown, ``Age1st`` 98 = nulliparous, …).
Everything is vectorised over rows with NumPy. R's rule that a comparison with ``NA`` does
not select a row maps onto NaN comparisons being False; the few places where R's ``!=``
would give NA are written out explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskmodel.gail.tables import FIRST_AGE, LAST_AGE, load_tables

#: Markers for the two biopsy/hyperplasia consistency rules broken (BCRA's "A" and "B").
REQ_NONE, REQ_A, REQ_B = 0, 1, 2


@dataclass
class Recoded:
    """Categories and flags for ``n`` rows (all arrays have shape ``(n,)``).

    Categories are float arrays with NaN where BCRA has ``NA``. ``nb_req`` marks rows whose
    biopsy category is BCRA's "A" (requirement A broken) or "B" (requirement B broken);
    their ``nb_cat`` is NaN unless a Hispanic regrouping overwrote it with 0.
    """

    t1: np.ndarray
    t2: np.ndarray
    race: np.ndarray  # float codes as given
    hyp_plas: np.ndarray
    t1_flag: np.ndarray
    t2_flag: np.ndarray
    nb_cat: np.ndarray
    nb_req: np.ndarray
    am_cat: np.ndarray
    af_cat: np.ndarray
    nr_cat: np.ndarray
    r_hyp: np.ndarray
    race_valid: np.ndarray
    race_idx: np.ndarray  # int index 1..11, 0 for an invalid race
    error: np.ndarray  # bool


def _f(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _ne(x: np.ndarray, value: float) -> np.ndarray:
    """R's ``x != value`` used as a selector: NA is not selected."""
    return ~np.isnan(x) & (x != value)


def recode(
    t1: np.ndarray,
    t2: np.ndarray,
    n_biop: np.ndarray,
    hyp_plas: np.ndarray,
    age_men: np.ndarray,
    age_1st: np.ndarray,
    n_rels: np.ndarray,
    race: np.ndarray,
    raw_ind: int = 1,
) -> Recoded:
    """Categorise raw Gail inputs and flag invalid rows (BCRA spec §4).

    Args:
        t1, t2: projection start and end ages in years, shape ``(n,)``.
        n_biop, hyp_plas, age_men, age_1st, n_rels: BCRA-coded inputs, shape ``(n,)``
            (or categories when ``raw_ind=0``).
        race: BCRAT race code 1–11, shape ``(n,)``.
        raw_ind: 1 for raw inputs, 0 when the four covariates are already categories.

    Returns:
        A :class:`Recoded` with categories after the race-specific regrouping.
    """
    if raw_ind not in (0, 1):
        raise ValueError(f"raw_ind must be 0 or 1, got {raw_ind!r}")
    t1, t2, n_biop, hyp_plas = _f(t1), _f(t2), _f(n_biop), _f(hyp_plas)
    age_men, age_1st, n_rels, race = _f(age_men), _f(age_1st), _f(n_rels), _f(race)
    n = t1.shape[0]
    nan = np.full(n, np.nan)

    # 1. ages
    t1_flag = (t1 < FIRST_AGE) | (t1 >= LAST_AGE) | (t1 >= t2)
    t2_flag = (t2 > LAST_AGE) | (t1 >= t2)
    age_error = t1_flag | t2_flag | np.isnan(t1) | np.isnan(t2)

    is_aa = race == 2
    nb_req = np.zeros(n, dtype=np.int8)
    nb_none_or_unknown = (n_biop == 0) | (n_biop == 99)
    if raw_ind == 1:
        # 2. biopsies / hyperplasia
        req_a = nb_none_or_unknown & _ne(hyp_plas, 99)
        req_b = (n_biop > 0) & (n_biop < 99) & _ne(hyp_plas, 0) & _ne(hyp_plas, 1) & _ne(hyp_plas, 99)
        nb_req[req_a] = REQ_A
        nb_req[req_b] = REQ_B
        nb_cat = np.where(nb_none_or_unknown, 0.0, np.where(n_biop == 1, 1.0, 2.0))
        nb_cat[np.isnan(n_biop) | req_a | req_b] = np.nan

        # 3. age at menarche
        am_cat = nan.copy()
        am_cat[((age_men >= 14) & (age_men <= t1)) | (age_men == 99)] = 0.0
        am_cat[(age_men >= 12) & (age_men < 14)] = 1.0
        am_cat[(age_men > 0) & (age_men < 12)] = 2.0
        am_cat[(age_men > t1) & (age_men != 99)] = np.nan

        # 4. age at first live birth
        af_cat = nan.copy()
        af_cat[(age_1st < 20) | (age_1st == 99)] = 0.0
        af_cat[(age_1st >= 20) & (age_1st < 25)] = 1.0
        af_cat[((age_1st >= 25) & (age_1st < 30)) | (age_1st == 98)] = 2.0
        af_cat[(age_1st >= 30) & (age_1st < 98)] = 3.0
        af_cat[(age_1st < age_men) & (age_men != 99)] = np.nan
        af_cat[(age_1st > t1) & (age_1st < 98)] = np.nan
        af_cat[is_aa] = 0.0  # race 2: set before the error test, so Age1st is never checked

        # 5. first-degree relatives
        nr_cat = nan.copy()
        nr_cat[(n_rels == 0) | (n_rels == 99)] = 0.0
        nr_cat[n_rels == 1] = 1.0
        nr_cat[(n_rels >= 2) & (n_rels < 99)] = 2.0
    else:
        nb_cat, am_cat, af_cat, nr_cat = n_biop.copy(), age_men.copy(), age_1st.copy(), n_rels.copy()

    # 6. hyperplasia factor, from the biopsy category before the Hispanic regrouping
    hyp = load_tables().hyperplasia_rr
    r_hyp = nan.copy()
    r_hyp[nb_cat == 0] = hyp["no_biopsy_or_unknown"]
    biopsied = (nb_cat == 1) | (nb_cat == 2)
    r_hyp[biopsied & (hyp_plas == 0)] = hyp["no_atypical_hyperplasia"]
    r_hyp[biopsied & (hyp_plas == 1)] = hyp["atypical_hyperplasia"]
    r_hyp[biopsied & (hyp_plas == 99)] = hyp["no_biopsy_or_unknown"]

    # 7. race
    race_valid = np.isin(race, np.arange(1, 12, dtype=np.float64))
    race_idx = np.where(race_valid, np.nan_to_num(race), 0).astype(np.intp)

    # 8. error indicator, fixed before any regrouping
    error = (
        age_error
        | (nb_req != REQ_NONE)
        | np.isnan(nb_cat)
        | np.isnan(am_cat)
        | np.isnan(af_cat)
        | np.isnan(nr_cat)
        | ~race_valid
    )

    # 9. race-specific regrouping
    am_cat[is_aa & (am_cat == 2)] = 1.0
    af_cat[is_aa] = 0.0
    hispanic = (race == 3) | (race == 5)
    if hispanic.any():
        nb_cat[hispanic & nb_none_or_unknown] = 0.0
        nb_cat[hispanic & (nb_cat == 2)] = 1.0
        af_cat[hispanic & (af_cat == 2) & (age_1st != 98)] = 1.0
        af_cat[hispanic & (af_cat == 3)] = 2.0
        nr_cat[hispanic & (nr_cat == 2)] = 1.0
        am_cat[race == 3] = 0.0
    nr_cat[(race >= 6) & (race <= 11) & (nr_cat == 2)] = 1.0

    return Recoded(
        t1=t1,
        t2=t2,
        race=race,
        hyp_plas=hyp_plas,
        t1_flag=t1_flag,
        t2_flag=t2_flag,
        nb_cat=nb_cat,
        nb_req=nb_req,
        am_cat=am_cat,
        af_cat=af_cat,
        nr_cat=nr_cat,
        r_hyp=r_hyp,
        race_valid=race_valid,
        race_idx=race_idx,
        error=error,
    )
