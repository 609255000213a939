"""Relative and absolute risk of the Gail model (BCRA 2.1.2 spec §5–6), vectorised over rows."""

from __future__ import annotations

import numpy as np

from riskmodel.gail.recode import REQ_NONE, Recoded
from riskmodel.gail.tables import FIRST_AGE, N_BANDS, load_tables

#: Rows per block in the absolute-risk loop: bounds peak memory (about 30 float64 arrays per block).
DEFAULT_CHUNK = 262_144


def relative_risk(rec: Recoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative risks for age < 50 and ≥ 50, and BCRA's pattern number.

    Returns:
        ``(rr_star1, rr_star2, pattern_number)``, each float64 of shape ``(n,)``, NaN where
        BCRA gives NA. The pattern number needs only the four categories; the relative
        risks also need a valid race and a known hyperplasia factor.
    """
    nb = np.where(rec.nb_req == REQ_NONE, rec.nb_cat, np.nan)
    am, af, nr = rec.am_cat, rec.af_cat, rec.nr_cat
    pattern = nb * 36 + am * 12 + af * 3 + nr + 1
    beta = load_tables().beta[rec.race_idx]  # row 0 (invalid race) is NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        lp1 = nb * beta[:, 0] + am * beta[:, 1] + af * beta[:, 2] + nr * beta[:, 3] + af * nr * beta[:, 5]
        lp1 = lp1 + np.log(rec.r_hyp)
    lp2 = lp1 + nb * beta[:, 4]
    return np.exp(lp1), np.exp(lp2), pattern


def absolute_risk(
    rec: Recoded,
    rr_star1: np.ndarray,
    rr_star2: np.ndarray,
    avg_white: bool = False,
    chunk_size: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Probability, in percent, of invasive breast cancer between ages T1 and T2.

    Competing mortality is accounted for with piecewise-constant yearly hazards
    (spec §6). Rows with ``rec.error`` get NaN; so do rows with a NaN relative risk when
    ``avg_white`` is False.

    Args:
        rec: recoded inputs from :func:`riskmodel.gail.recode.recode`.
        rr_star1, rr_star2: relative risks for ages < 50 and ≥ 50, shape ``(n,)``.
        avg_white: if True, the "average woman" risk: RR = 1, 1 − AR = 1, and the
            1992-96 white rates for races 1 and 4.
        chunk_size: rows per block, to bound memory on large inputs.

    Returns:
        Float64 array of shape ``(n,)`` with values in [0, 100) or NaN.
    """
    n = rec.t1.shape[0]
    out = np.full(n, np.nan)
    ok = ~rec.error
    if not avg_white:
        ok &= ~np.isnan(rr_star1) & ~np.isnan(rr_star2)
    idx = np.flatnonzero(ok)
    tables = load_tables()
    lam1 = (tables.lambda1_avg if avg_white else tables.lambda1).ravel()
    lam2 = (tables.lambda2_avg if avg_white else tables.lambda2).ravel()
    for start in range(0, idx.size, chunk_size):
        sel = idx[start : start + chunk_size]
        race = rec.race_idx[sel]
        if avg_white:
            m_lo = m_hi = None
        else:
            ar = tables.one_minus_ar[race]
            m_lo, m_hi = ar[:, 0] * rr_star1[sel], ar[:, 1] * rr_star2[sel]
        out[sel] = 100.0 * _integrate(rec.t1[sel], rec.t2[sel], race, m_lo, m_hi, lam1, lam2)
    return out


def _integrate(
    t1: np.ndarray,
    t2: np.ndarray,
    race: np.ndarray,
    m_lo: np.ndarray | None,
    m_hi: np.ndarray | None,
    lam1: np.ndarray,
    lam2: np.ndarray,
) -> np.ndarray:
    """Sum the competing-risk integral over one-year slots for valid rows (20 ≤ T1 < T2 ≤ 90)."""
    a1 = np.floor(t1)
    fl2 = np.floor(t2)
    n_slots = (np.ceil(t2) - a1).astype(np.intp)
    first_len = np.where(n_slots == 1, t2 - t1, 1.0 - (t1 - a1))
    last_len = np.where(t2 != fl2, t2 - fl2, 1.0)
    base = race * N_BANDS
    risk = np.zeros(t1.shape)
    max_slots = int(n_slots.max()) if n_slots.size else 0
    # The rows still projecting, and their inputs and running sums, kept compact: rows whose projection
    # has ended are dropped (their risk stored) only when some end, not gathered again at every slot.
    rows = np.arange(t1.shape[0])
    live = {"a1": a1, "n": n_slots, "last": last_len, "base": base}
    if m_lo is not None:
        live.update(m_lo=m_lo, m_hi=m_hi)
    cum_r = np.zeros(t1.shape)
    risk_r = np.zeros(t1.shape)
    for k in range(max_slots):
        if k > 0:
            keep = live["n"] > k
            if not keep.all():
                risk[rows] = risk_r  # final for the rows that end here
                rows = rows[keep]
                live = {name: v[keep] for name, v in live.items()}
                cum_r, risk_r = cum_r[keep], risk_r[keep]
        age = live["a1"] + k
        band = ((age - FIRST_AGE) // 5).astype(np.intp)
        if k == 0:
            length = first_len
        else:
            length = np.where(live["n"] == k + 1, live["last"], 1.0)
        flat = live["base"] + band
        l1, l2 = lam1[flat], lam2[flat]
        if m_lo is None:
            h1 = l1
        else:
            h1 = np.where(age <= 49, live["m_lo"], live["m_hi"]) * l1
        h = h1 + l2
        c = cum_r
        risk_r = risk_r + (h1 / h) * np.exp(-c) * (1.0 - np.exp(-h * length))
        cum_r = c + h * length
    risk[rows] = risk_r
    return risk
