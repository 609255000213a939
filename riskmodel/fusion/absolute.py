"""From a head's cause-specific cumulative hazard to absolute risk, and recalibration to a site.

**Absolute risk.** A head gives ``H1(t)``, the cumulative hazard of breast cancer with deaths
from other causes censored. The probability of being *diagnosed* by ``t`` must also account
for dying of something else first. :func:`absolute_risk_from_hazard` takes the breast-cancer hazard as
constant within each slot between consecutive horizons (``h1 = ΔH1 / Δt``; with the default
horizons 1 … Y, within each follow-up year), and the competing (non-breast-cancer) mortality
``λ2`` of the Gail model's race-specific tables (:func:`riskmodel.gail.load_tables`, 5-year
bands of *attained* age). Slots are split where attained age crosses a band edge, so both
hazards are constant on every piece, and

    R(t) = Σ_pieces h1 / (h1 + λ2) · exp(−C) · (1 − exp(−(h1 + λ2) · L))

with ``L`` the piece's length and ``C`` the cumulative all-cause hazard at its start: the same
integral as the Gail model's (:mod:`riskmodel.gail.risk`). ``R(t) ≤ 1 − exp(−H1(t))`` always.

**Recalibration to a site's incidence.** A head trained on one population carries that
population's baseline incidence. :class:`IncidenceRecalibrator` rescales it to a site's own
age-specific incidence (cases per 100,000 woman-years by attained-age band). ``fit`` measures
the model's *implied* incidence per band on a reference cohort of the site (predicted hazard
mass over woman-years spent in the band over the horizon, :func:`implied_incidence`);
``transform`` multiplies each woman's hazard, piece by piece of attained age, by
``site rate / implied rate`` of the band. Assumptions, to be stated when reporting:

* the reference cohort represents the site's screened population (its age and risk-factor mix);
* the site's rates are incidence of the same outcome (invasive breast cancer, first primary)
  per woman-year of women still free of it; the model's hazards are averaged over woman-years
  *as if everybody were followed to the horizon* (no depletion by diagnosis or death, a small
  effect over 5 years at these incidences);
* the correction is a single multiplier per age band: it keeps the model's ranking within a
  band, and assumes the model's relative risks transport to the site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from riskmodel.estimators import estimator_repr
from riskmodel.gail.tables import FIRST_AGE, LAST_AGE, N_BANDS, load_tables
from riskmodel.schema import RACE_NAMES

__all__ = ["IncidenceRecalibrator", "absolute_risk", "absolute_risk_from_hazard", "implied_incidence",
           "observed_incidence"]

#: Gail's race code used where race is unknown (BCRAT's "other or unknown").
UNKNOWN_RACE = 4
MORTALITY = ("gail", "none")


# ---------------------------------------------------------------------------- inputs


def _check_cum_hazard(cum_hazard: Any, name: str = "cum_hazard") -> np.ndarray:
    h = np.asarray(cum_hazard, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] == 0 or h.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (n women, Y horizons), got shape {h.shape}")
    if not np.isfinite(h).all() or (h < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    if (np.diff(h, axis=1) < -1e-12).any():
        raise ValueError(f"{name} must be non-decreasing along the horizons (a cumulative hazard)")
    return h


def _check_horizons(years: Any, n_cols: int) -> np.ndarray:
    if years is None:
        return np.arange(1.0, n_cols + 1.0)
    y = np.atleast_1d(np.asarray(years, dtype=np.float64))
    if y.shape != (n_cols,):
        raise ValueError(f"years must give one horizon per column of the cumulative hazard ({n_cols}), "
                         f"got shape {y.shape}")
    if not np.isfinite(y).all() or y[0] <= 0 or (np.diff(y) <= 0).any():
        raise ValueError(f"years must be positive and strictly increasing, got {y.tolist()}")
    return y


def _check_age(age: Any, n: int) -> np.ndarray:
    a = np.asarray(age, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"age must have shape ({n},) (one age per row), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("age must be known (finite) for every row, in years")
    return a


def _race_codes(race: Any, n: int) -> np.ndarray:
    """BCRAT codes 1–11 as intp ``(n,)``; NaN/None → 4; names as in :data:`riskmodel.schema.RACE_NAMES`."""
    if race is None:
        return np.full(n, UNKNOWN_RACE, dtype=np.intp)
    values = pd.Series(np.asarray(race, dtype=object).ravel() if np.ndim(race) else [race] * n)
    if len(values) != n:
        raise ValueError(f"race must have shape ({n},), got {len(values)} values")
    out = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    names = values.isna().to_numpy() | np.isnan(out)
    text = values[names & values.notna().to_numpy()].astype(str).str.strip().str.lower()
    text = text.str.replace(r"[\s\-]+", "_", regex=True)
    out[text.index.to_numpy()] = text.map(RACE_NAMES).to_numpy(dtype=np.float64, na_value=np.nan)
    bad = values.notna().to_numpy() & ~np.isin(out, np.arange(1, 12))
    if bad.any():
        raise ValueError(f"race: {values[bad].iloc[0]!r} is not a BCRAT code 1–11, a name in "
                         "riskmodel.schema.RACE_NAMES or NaN (unknown → code 4)")
    return np.where(np.isnan(out), UNKNOWN_RACE, out).astype(np.intp)


def _slots(years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (years) of each horizon slot."""
    return np.concatenate([[0.0], years[:-1]]), years


def _band_pieces(age: np.ndarray, start: float, end: float, lo: float, width: float):
    """Yield ``(band, length)`` pieces of [start, end) of follow-up split at band edges of attained age.

    Bands are ``[lo + width·b, lo + width·(b+1))``; ``band`` is an intp array ``(n,)`` (it may
    fall outside the table; callers check coverage) and ``length`` ≥ 0 in years.
    """
    b0 = np.floor((age + start - lo) / width).astype(np.intp)
    n_pieces = int(np.ceil((end - start) / width)) + 1
    for m in range(n_pieces):
        band = b0 + m
        s = np.maximum(start, lo + width * band - age)
        e = np.minimum(end, lo + width * (band + 1) - age)
        yield band, np.maximum(e - s, 0.0)


# ---------------------------------------------------------------------------- absolute risk


def absolute_risk_from_hazard(
    cum_hazard: Any,
    age: Any,
    race: Any = None,
    years: Sequence[float] | None = None,
    mortality: str = "gail",
) -> np.ndarray:
    """Absolute risk of breast cancer by each horizon, with competing mortality.

    Args:
        cum_hazard: ``(n, Y)`` cause-specific cumulative hazard ``H1`` at ``years`` (a head's
            :meth:`predict_cumulative_hazard`), non-decreasing along rows.
        age: ``(n,)`` age in years at the exam (time 0).
        race: ``(n,)`` BCRAT race codes 1–11 or names (:data:`riskmodel.schema.RACE_NAMES`);
            NaN/None = unknown → the code-4 tables. ``None``: all unknown.
        years: the ``Y`` horizons of the columns, strictly increasing, in years; default 1 … Y.
        mortality: ``"gail"`` (Gail's race-specific non-breast-cancer mortality λ2 by attained
            age) or ``"none"`` (no competing mortality: returns ``1 − exp(−H1)``).

    Returns:
        float64 ``(n, Y)`` probabilities in [0, 1], non-decreasing along rows and ≤ the net risk.

    Raises:
        ValueError: bad shapes or values, or (with ``mortality="gail"``) an age outside the tables:
            ``age >= 20`` and ``age + years[-1] <= 90`` are required.
    """
    h = _check_cum_hazard(cum_hazard)
    n, n_years = h.shape
    y = _check_horizons(years, n_years)
    a = _check_age(age, n)
    if mortality not in MORTALITY:
        raise ValueError(f"mortality={mortality!r}: choose one of {MORTALITY}")
    if mortality == "none":
        return -np.expm1(-h)
    if (a < FIRST_AGE).any() or (a + y[-1] > LAST_AGE + 1e-9).any():
        i = int(np.flatnonzero((a < FIRST_AGE) | (a + y[-1] > LAST_AGE + 1e-9))[0])
        raise ValueError(f"age: row {i} has age {a[i]:g}; Gail's mortality tables need age >= {FIRST_AGE} and "
                         f"age + {y[-1]:g} years <= {LAST_AGE}")
    lam2 = load_tables().lambda2
    r = _race_codes(race, n)
    risk = np.zeros((n, n_years))
    acc = np.zeros(n)
    cum = np.zeros(n)  # all-cause cumulative hazard so far
    h_prev = np.zeros(n)
    for j, (s, e) in enumerate(zip(*_slots(y), strict=True)):
        h1 = (h[:, j] - h_prev) / (e - s)
        h_prev = h[:, j]
        for band, length in _band_pieces(a, s, e, FIRST_AGE, 5.0):
            h2 = lam2[r, np.clip(band, 0, N_BANDS - 1)]
            tot = h1 + h2
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(tot > 0, h1 / tot, 0.0)
            acc += share * np.exp(-cum) * -np.expm1(-tot * length)
            cum += tot * length
        risk[:, j] = acc
    return np.clip(risk, 0.0, 1.0)


# ---------------------------------------------------------------------------- recalibration


def _check_site(site_incidence: Any, need_rate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, rate per woman-year)`` of contiguous attained-age bands, sorted by age.

    With ``need_rate=False`` only the bands are needed (rates, if absent, are returned as 1e-5).
    """
    if isinstance(site_incidence, pd.DataFrame):
        wanted = ("age_lo", "age_hi", "rate_per_100k") if need_rate else ("age_lo", "age_hi")
        missing = [c for c in wanted if c not in site_incidence.columns]
        if missing:
            raise ValueError(f"site_incidence: missing column(s) {missing}; expected {', '.join(wanted)}")
        lo = site_incidence["age_lo"].to_numpy(dtype=np.float64)
        hi = site_incidence["age_hi"].to_numpy(dtype=np.float64)
        if "rate_per_100k" in site_incidence.columns:
            rate = site_incidence["rate_per_100k"].to_numpy(dtype=np.float64)
        else:
            rate = np.ones(lo.size)
    elif isinstance(site_incidence, Mapping):
        try:
            keys = [(float(k[0]), float(k[1])) for k in site_incidence]
        except (TypeError, ValueError, IndexError):
            raise ValueError("site_incidence: a mapping must have (age_lo, age_hi) keys") from None
        lo, hi = (np.array(v) for v in zip(*keys, strict=True)) if keys else (np.zeros(0), np.zeros(0))
        rate = np.array([float(v) for v in site_incidence.values()])
    else:
        raise ValueError("site_incidence must be a DataFrame (age_lo, age_hi, rate_per_100k) or a mapping "
                         "{(age_lo, age_hi): rate_per_100k}")
    if lo.size == 0:
        raise ValueError("site_incidence has no age bands")
    order = np.argsort(lo)
    lo, hi, rate = lo[order], hi[order], rate[order]
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()):
        raise ValueError("site_incidence: each band needs finite age_lo < age_hi (years)")
    if not np.allclose(hi[:-1], lo[1:]):
        raise ValueError("site_incidence: age bands must be contiguous (each age_hi is the next age_lo)")
    if not np.isfinite(rate).all() or (rate <= 0).any():
        raise ValueError("site_incidence: rate_per_100k must be finite and > 0")
    return lo, hi, rate / 1e5


def _band_overlaps(age: np.ndarray, years: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Yield ``(j, m, overlap)``: years of slot j spent in site band m, shape ``(n,)``."""
    for j, (s, e) in enumerate(zip(*_slots(years), strict=True)):
        for m in range(lo.size):
            ov = np.minimum(age + e, hi[m]) - np.maximum(age + s, lo[m])
            yield j, m, np.maximum(ov, 0.0)


def implied_incidence(cum_hazard: Any, age: Any, site_incidence: Any, years: Sequence[float] | None = None
                      ) -> pd.DataFrame:
    """The model's mean breast-cancer incidence by attained-age band over the horizon.

    Each woman contributes, for every slot between horizons, her slot hazard ``ΔH1 / Δt`` times
    the years of the slot she spends in the band, and those years as woman-years.

    Args:
        cum_hazard: ``(n, Y)`` cumulative hazards at ``years``; age: ``(n,)`` years at time 0.
        site_incidence: the bands, as for :class:`IncidenceRecalibrator`; only ``age_lo`` and
            ``age_hi`` are used (a DataFrame may omit ``rate_per_100k``).

    Returns:
        DataFrame with one row per band: ``age_lo``, ``age_hi``, ``woman_years``, ``cases``
        (expected), ``rate_per_100k`` (NaN where no woman-years).
    """
    h = _check_cum_hazard(cum_hazard)
    y = _check_horizons(years, h.shape[1])
    a = _check_age(age, h.shape[0])
    lo, hi, _ = _check_site(site_incidence, need_rate=False)
    rates = np.diff(np.column_stack([np.zeros(h.shape[0]), h]), axis=1) / np.diff(np.concatenate([[0.0], y]))
    mass = np.zeros(lo.size)
    years_in = np.zeros(lo.size)
    for j, m, ov in _band_overlaps(a, y, lo, hi):
        mass[m] += float(rates[:, j] @ ov)
        years_in[m] += float(ov.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(years_in > 0, mass / years_in, np.nan) * 1e5
    return pd.DataFrame({"age_lo": lo, "age_hi": hi, "woman_years": years_in, "cases": mass, "rate_per_100k": rate})


def observed_incidence(age: Any, time: Any, event: Any, edges: Sequence[float] = tuple(range(40, 95, 5)), *,
                       event_code: int = 1) -> pd.DataFrame:
    """A cohort's (or registry's) observed incidence by attained-age band: what a site brings to
    :class:`IncidenceRecalibrator`.

    Each woman spends the years from ``age`` to ``age + time`` at risk; they are split across
    the bands she passes through (woman-years), and her event, if it is ``event_code``, is
    counted in the band of ``age + time``. Deaths from other causes and censoring end her time
    at risk without a case, so the rates are the cause-specific incidence among women alive and
    free of the disease, the quantity a cancer registry publishes and the heads' ``H1`` models.
    Time outside the bands is ignored.

    Args:
        age: ``(n,)`` age at entry, years.
        time: ``(n,)`` years of follow-up from entry (>= 0).
        event: ``(n,)`` integer codes at the end of follow-up (``event_code`` = breast cancer;
            anything else = no case, e.g. 0 censored, 2 other death as in
            :mod:`riskmodel.synthetic`).
        edges: increasing band edges in years of attained age (default 40, 45, … 90).
        event_code: the code that counts as a case.

    Returns:
        DataFrame with one row per band: ``age_lo``, ``age_hi``, ``woman_years``, ``cases`` and
        ``rate_per_100k`` (cases per 100,000 woman-years; NaN where no woman-years). Bands with
        no case give a rate of 0, which :class:`IncidenceRecalibrator` refuses: merge them first.

    Raises:
        ValueError: arrays of different lengths, non-finite or negative values, or edges that
            do not increase.

    >>> observed_incidence([40.0, 42.0], [4.0, 5.0], [0, 1], edges=(40, 45, 50))
       age_lo  age_hi  woman_years  cases  rate_per_100k
    0    40.0    45.0          7.0      0            0.0
    1    45.0    50.0          2.0      1        50000.0
    """
    a = np.asarray(age, dtype=np.float64).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    ev = np.asarray(event).ravel()
    if not (a.shape == t.shape == ev.shape):
        raise ValueError(f"age, time and event must have the same length, got {a.size}, {t.size}, {ev.size}")
    for name, v in (("age", a), ("time", t)):
        if not np.isfinite(v).all() or (v < 0).any():
            i = int(np.flatnonzero(~np.isfinite(v) | (v < 0))[0])
            raise ValueError(f"{name}: row {i} is {v[i]!r}; it must be finite and >= 0 (years)")
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
        raise ValueError(f"edges must be at least two finite, strictly increasing ages, got {list(edges)}")
    lo, hi = e[:-1], e[1:]
    end = a + t
    bands = list(zip(lo, hi, strict=True))
    years = np.array([np.maximum(np.minimum(end, h) - np.maximum(a, b), 0.0).sum() for b, h in bands])
    case = ev == event_code
    cases = np.array([int((case & (end >= b) & (end < h)).sum()) for b, h in bands])
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(years > 0, cases / years, np.nan) * 1e5
    return pd.DataFrame({"age_lo": lo, "age_hi": hi, "woman_years": years, "cases": cases, "rate_per_100k": rate})


class IncidenceRecalibrator(BaseEstimator):
    """Rescale a head's breast-cancer hazards to a site's age-specific incidence.

    Parameters:
        site_incidence: the site's incidence of invasive breast cancer by attained-age band:
            a DataFrame with columns ``age_lo``, ``age_hi`` (years, contiguous bands) and
            ``rate_per_100k`` (cases per 100,000 woman-years), or a mapping
            ``{(age_lo, age_hi): rate_per_100k}``.
        years: horizons of the cumulative-hazard columns; default 1 … Y.
        extrapolate: at ``transform``, attained ages below the first band or above the last use
            that band's ratio; if False (default) they raise ValueError.

    Attributes (after :meth:`fit`):
        implied_: :func:`implied_incidence` on the reference cohort.
        ratio_: ``(bands,)`` site rate / implied rate (NaN for a band with no reference woman-years).

    See the module docstring for the assumptions.
    """

    def __init__(self, site_incidence: Any, years: Sequence[float] | None = None, extrapolate: bool = False):
        self.site_incidence = site_incidence
        self.years = years
        self.extrapolate = extrapolate

    def __repr__(self) -> str:
        """``<IncidenceRecalibrator: fitted on 10 age bands, ratio 0.81–1.2>`` (site rate / implied rate)."""
        if not hasattr(self, "ratio_"):
            return estimator_repr(self, None)
        known = self.ratio_[~np.isnan(self.ratio_)]
        span = f", ratio {known.min():.3g}–{known.max():.3g}" if known.size else ""
        return estimator_repr(self, f"fitted on {self.ratio_.size} age bands{span}")

    def fit(self, cum_hazard: Any, age: Any) -> IncidenceRecalibrator:
        """Measure the model's implied incidence per band on a reference cohort of the site.

        Args:
            cum_hazard: ``(n, Y)`` head predictions for the reference cohort; age: ``(n,)`` years.
        """
        lo, hi, rate = _check_site(self.site_incidence)
        implied = implied_incidence(cum_hazard, age, self.site_incidence, self.years)
        model_rate = implied["rate_per_100k"].to_numpy() / 1e5
        if (model_rate == 0).any():
            raise ValueError("cum_hazard: the model predicts zero incidence in an age band; cannot rescale it")
        self.implied_ = implied
        self.site_rate_per_100k_ = rate * 1e5
        self.band_lo_, self.band_hi_ = lo, hi
        self.ratio_ = rate / model_rate
        return self

    def transform(self, cum_hazard: Any, age: Any) -> np.ndarray:
        """Recalibrated cumulative hazards ``(n, Y)``: each piece of hazard scaled by its band's ratio.

        The hazard mass of a slot (between two horizons) that straddles two bands is scaled piece
        by piece, but only the slot's total can be stored in the cumulative hazards, so hazards
        stay constant within a slot. Hence re-measuring :func:`implied_incidence` on the output
        gives the site's rates exactly in total (expected cases) and per band up to that
        smoothing (a few percent at the outermost bands).

        Raises:
            ValueError: an attained age falls outside the bands (unless ``extrapolate``), or in a
                band that had no woman-years in the reference cohort.
        """
        check_is_fitted(self, "ratio_")
        h = _check_cum_hazard(cum_hazard)
        y = _check_horizons(self.years, h.shape[1])
        a = _check_age(age, h.shape[0])
        lo, hi, ratio = self.band_lo_, self.band_hi_, self.ratio_
        if (a + y[-1] > hi[-1] + 1e-9).any() or (a < lo[0] - 1e-9).any():
            if not self.extrapolate:
                i = int(np.flatnonzero((a + y[-1] > hi[-1] + 1e-9) | (a < lo[0] - 1e-9))[0])
                raise ValueError(f"age: row {i} (age {a[i]:g}, horizon {y[-1]:g} y) leaves the site's bands "
                                 f"[{lo[0]:g}, {hi[-1]:g}); set extrapolate=True to use the nearest band")
        rates = np.diff(np.column_stack([np.zeros(h.shape[0]), h]), axis=1) / np.diff(np.concatenate([[0.0], y]))
        new_mass = np.zeros_like(h)
        for j, m, ov in _band_overlaps(a, y, lo, hi):
            used = ov > 0
            if used.any() and np.isnan(ratio[m]):
                raise ValueError(f"band [{lo[m]:g}, {hi[m]:g}): no woman-years in the reference cohort, so no "
                                 "ratio; refit with a reference cohort covering it")
            if used.any():
                new_mass[:, j] += rates[:, j] * ratio[m] * ov
        if self.extrapolate:
            if np.isnan(ratio[[0, -1]]).any():
                raise ValueError("extrapolate: the first or last band had no woman-years in the reference cohort")
            for j, (s, e) in enumerate(zip(*_slots(y), strict=True)):
                below = np.maximum(np.minimum(a + e, lo[0]) - (a + s), 0.0)
                above = np.maximum((a + e) - np.maximum(a + s, hi[-1]), 0.0)
                new_mass[:, j] += rates[:, j] * (ratio[0] * below + ratio[-1] * above)
        return np.cumsum(new_mass, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: the site's bands and rates, the horizons, and the fitted ratios
        (``None`` for a band without reference woman-years)."""
        check_is_fitted(self, "ratio_")

        def clean(v: np.ndarray) -> list[float | None]:
            return [None if np.isnan(x) else float(x) for x in v]

        return {
            "format": "riskmodel.fusion.IncidenceRecalibrator", "format_version": 1,
            "site_incidence": {"age_lo": self.band_lo_.tolist(), "age_hi": self.band_hi_.tolist(),
                               "rate_per_100k": self.site_rate_per_100k_.tolist()},
            "years": None if self.years is None else [float(y) for y in self.years],
            "extrapolate": bool(self.extrapolate),
            "ratio": clean(self.ratio_),
            "implied": {"woman_years": self.implied_["woman_years"].tolist(), "cases": self.implied_["cases"].tolist(),
                        "rate_per_100k": clean(self.implied_["rate_per_100k"].to_numpy())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IncidenceRecalibrator:
        """Rebuild a fitted recalibrator from :meth:`to_dict`'s output."""
        if not isinstance(d, dict) or d.get("format") != "riskmodel.fusion.IncidenceRecalibrator":
            raise ValueError("not an IncidenceRecalibrator state (format tag missing or different)")
        if d.get("format_version") != 1:
            raise ValueError(f"IncidenceRecalibrator state has format_version {d.get('format_version')!r}; "
                             "this riskmodel reads 1")
        site = pd.DataFrame(d["site_incidence"])
        out = cls(site, years=d["years"], extrapolate=d["extrapolate"])
        out.band_lo_, out.band_hi_, rate = _check_site(site)
        out.site_rate_per_100k_ = rate * 1e5
        out.ratio_ = np.array([np.nan if r is None else r for r in d["ratio"]], dtype=np.float64)
        implied = {k: np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
                   for k, vals in d["implied"].items()}
        out.implied_ = pd.DataFrame({"age_lo": out.band_lo_, "age_hi": out.band_hi_, **implied})
        return out


#: The name this function had before 0.2: kept so existing code runs. It collided with the Gail model's
#: :func:`riskmodel.gail.risk.absolute_risk` (BCRAT's projection from relative risks); new code uses
#: :func:`absolute_risk_from_hazard`.
absolute_risk = absolute_risk_from_hazard
