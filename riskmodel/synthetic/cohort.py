"""Synthetic screening cohorts whose true risk of invasive breast cancer is known.

:func:`make_cohort` draws women in the canonical schema (:mod:`riskmodel.schema`), gives
each a hazard of invasive breast cancer built from published figures, and simulates what a
screening cohort would record: time to diagnosis, death from other causes or censoring.
Because the hazard is known, every row also carries the oracle's absolute risk
(``true_risk_1y`` … ``true_risk_5y``), which any model can be compared against.

The generative model (all figures in ``data/cohort_parameters.json``, documented in
``docs/synthetic-cohort.md``): for a non-carrier of race *r* at attained age *t*, with
hazards constant within Gail's 5-year bands of attained age (so the same as Gail's
piecewise-constant yearly hazards in :mod:`riskmodel.gail.risk`),

    h1(t) = λ1_r(t) · (1 − AR_r(t)) · RR_Gail(t) · D(density, t) · exp(β z − β²/2) · exp(γ u − γ²/2)

where λ1, 1 − AR and RR_Gail (``RR_Star1`` below 50, ``RR_Star2`` from 50) are the Gail
model's own (:func:`riskmodel.gail.load_tables`), D is the BCSC v1 density relative hazard
renormalised to mean 1 in each baseline age group, z the standardized polygenic score and u
the latent image factor. BRCA1/2 carriers have a carrier-specific incidence instead.
Competing mortality is Gail's race-specific λ2. This is a test bed, not real data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from riskmodel.gail.recode import recode
from riskmodel.gail.risk import relative_risk
from riskmodel.gail.tables import FIRST_AGE, LAST_AGE, N_BANDS, RACE_CODES, load_tables
from riskmodel.survival import CANCER, OTHER_DEATH, YEARS
from riskmodel.survival import CENSORED as CENSORED

__all__ = [
    "OUTPUT_COLUMNS",
    "carrier_incidence",
    "default_effects",
    "density_multipliers",
    "load_parameters",
    "make_cohort",
]

#: Columns of :func:`make_cohort`'s result, in order: 13 canonical schema columns, the latent
#: ``image_factor``, then outcomes and truth.
OUTPUT_COLUMNS = (
    "id", "exam_id", "age", "race", "age_at_menarche", "age_at_first_birth", "nulliparous", "n_biopsies",
    "atypical_hyperplasia", "first_degree_relatives", "density", "brca", "prs", "image_factor",
    "time", "event",
    "true_risk_1y", "true_risk_2y", "true_risk_3y", "true_risk_4y", "true_risk_5y", "true_risk_5y_no_image",
)
#: Event codes of the ``event`` column: :data:`riskmodel.survival.EVENT_CODES` (0 censored, 1 breast cancer,
#: 2 death from other causes).
BREAST_CANCER = CANCER
#: Truth horizons in years: :data:`riskmodel.survival.YEARS`, the same object.
HORIZONS = YEARS
#: The oracle's five-year risk must be defined (age + 5 ≤ 90) and Gail must score it.
MAX_START_AGE = LAST_AGE - max(HORIZONS)
DENSITY_LETTERS = ("a", "b", "c", "d")
BRCA_LABELS = ("negative", "BRCA1", "BRCA2")
#: Largest cohort (ids must fit one 32-bit-offset string buffer; memory would run out first).
MAX_ROWS = 100_000_000
#: Gauss–Hermite nodes for averaging the five-year risk over the image factor.
_GH_NODES = 12
#: Independent random streams, one per component, spawned from the seed in this order.
#: Because each component has its own stream, changing an effect size leaves the women's
#: covariates (and the uniform/exponential draws behind their outcomes) unchanged.
_STREAMS = ("age", "race", "menarche", "parity", "first_birth", "biopsy", "hyperplasia", "relatives",
            "density", "brca", "prs", "image", "event", "cause", "admin", "loss")


# --------------------------------------------------------------------------- parameters


def load_parameters() -> dict[str, Any]:
    """The figures in ``data/cohort_parameters.json``: per entry its value, source, year and
    status. Returns a fresh copy each call, so callers may modify it."""
    return json.loads(_parameters_text())


@lru_cache(maxsize=1)
def _parameters_text() -> str:
    return resources.files("riskmodel.synthetic").joinpath("data", "cohort_parameters.json").read_text("utf-8")


@lru_cache(maxsize=1)
def _parameters() -> dict[str, Any]:
    return json.loads(_parameters_text())


def _value(name: str) -> Any:
    """The ``value`` of one entry of the parameter file (shared; do not modify)."""
    return _parameters()[name]["value"]


def default_effects() -> dict[str, Any]:
    """Default keyword arguments of :func:`make_cohort`, as read from the parameter file.

    >>> d = default_effects()
    >>> d["prs_or_per_sd"], d["image_hr_per_sd"], d["follow_up"], d["loss_rate"]
    (1.61, 2.0, (5.0, 10.0), 0.02)
    """
    return {
        "age_range": tuple(float(a) for a in _value("age_range")),
        "race_mix": {int(k): float(v) for k, v in _value("race_mix").items()},
        "prs_or_per_sd": float(_value("prs_or_per_sd")),
        "image_hr_per_sd": float(_value("image_hr_per_sd")),
        "density_effect": 1.0,
        "carrier_freq": (float(_value("brca1_carrier_frequency")), float(_value("brca2_carrier_frequency"))),
        "follow_up": tuple(float(a) for a in _value("follow_up")),
        "loss_rate": float(_value("loss_rate")),
    }


def carrier_incidence() -> dict[str, np.ndarray]:
    """Breast-cancer incidence of BRCA1 and BRCA2 carriers by Gail age band.

    The rise over the first bands is ``carrier_incidence_rise``; the constant level after it
    (the plateau) is solved so that ``1 − exp(−∫₂₀⁸⁰ h)`` equals ``carrier_penetrance_by_80``
    (Kuchenbaecker et al., JAMA 2017), and is kept to age 90.

    Returns:
        ``{"BRCA1": array, "BRCA2": array}``, each of shape ``(14,)``: incidence per
        woman-year for the bands [20,25), …, [85,90). Read-only.
    """
    return dict(_carrier_incidence())


@lru_cache(maxsize=1)
def _carrier_incidence() -> dict[str, np.ndarray]:
    rise = _value("carrier_incidence_rise")
    penetrance = _value("carrier_penetrance_by_80")
    out = {}
    bands_to_80 = (80 - FIRST_AGE) // 5
    for gene in ("BRCA1", "BRCA2"):
        early = np.array([rise[gene][str(FIRST_AGE + 5 * i)] for i in range(len(rise[gene]))], float) / 1000
        target = -math.log(1.0 - float(penetrance[gene]))  # cumulative hazard from 20 to 80
        plateau = (target - 5.0 * early.sum()) / (5.0 * (bands_to_80 - early.size))
        if not plateau > 0:
            raise ValueError(f"carrier_incidence_rise for {gene} already exceeds the penetrance by 80")
        rates = np.concatenate([early, np.full(N_BANDS - early.size, plateau)])
        rates.setflags(write=False)
        out[gene] = rates
    return out


@dataclass(frozen=True)
class _Density:
    """Density distribution by baseline age group and relative hazards by attained age."""

    group_starts: np.ndarray  # (g,) first age of each 5-year baseline group
    probs: np.ndarray  # (g, 4) P(a), P(b), P(c), P(d) per group
    hr: np.ndarray  # (2, 4) relative hazard vs b: attained age < 65, ≥ 65


@lru_cache(maxsize=1)
def _density() -> _Density:
    dense = _value("dense_fraction_by_age")
    split = _value("density_split")
    starts = np.array(sorted(int(k) for k in dense), dtype=np.int64)
    f = np.array([dense[str(s)] for s in starts], dtype=float)
    a_share, d_share = float(split["a_share_of_non_dense"]), float(split["d_share_of_dense"])
    probs = np.column_stack([(1 - f) * a_share, (1 - f) * (1 - a_share), f * (1 - d_share), f * d_share])
    hr_table = _value("density_relative_hazard")
    hr = np.array([[hr_table[band][k] for k in DENSITY_LETTERS] for band in ("under_65", "65_and_over")])
    return _Density(group_starts=starts, probs=probs, hr=hr)


def density_group(age: np.ndarray) -> np.ndarray:
    """Index of the baseline density age group for each age, shape ``(n,)``; ages outside
    the table use the nearest group."""
    starts = _density().group_starts
    return np.clip(np.searchsorted(starts, age, side="right") - 1, 0, starts.size - 1)


def density_multipliers(scale: float = 1.0) -> np.ndarray:
    """Density hazard multipliers, renormalised to mean 1 in each baseline age group.

    ``m[g, b, k] = HR[b, k]**scale / Σ_j P_g(j) HR[b, j]**scale`` for baseline age group g
    (5-year groups starting at ``dense_fraction_by_age``'s keys), attained-age band b
    (0: < 65, 1: ≥ 65) and density k (a, b, c, d), so that the mean over the density
    distribution of women of that baseline age is exactly 1 at every attained age.

    Args:
        scale: power on the BCSC relative hazards (1: as published, 0: no density effect).

    Returns:
        Array of shape ``(groups, 2, 4)``.
    """
    dens = _density()
    hr = dens.hr**scale  # (2, 4)
    norm = dens.probs @ hr.T  # (g, 2)
    return hr[None, :, :] / norm[:, :, None]


# --------------------------------------------------------------------------- arguments


def _check_pair(name: str, value: Any, low: float, high: float, strict: bool) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: give two numbers (low, high)") from None
    ok = math.isfinite(a) and math.isfinite(b) and low <= a and b <= high and (a < b if strict else a <= b)
    if not ok:
        rel = "<" if strict else "≤"
        raise ValueError(f"{name}={value!r}: need {low:g} ≤ low {rel} high ≤ {high:g}")
    return a, b


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: not a number") from None
    if isinstance(value, bool) or not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r}: must be a finite number {'≥' if allow_zero else '>'} 0")
    return x


def _check_race_mix(value: Mapping[Any, float]) -> np.ndarray:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"race_mix={value!r}: give a mapping of BCRAT race code (1–11) to weight")
    weights = np.zeros(len(RACE_CODES) + 1)
    for code, w in value.items():
        try:
            c = int(code)
        except (TypeError, ValueError):
            c = -1
        if c not in RACE_CODES or str(code).strip() != str(c):
            raise ValueError(f"race_mix: {code!r} is not a BCRAT race code 1–11")
        weights[c] += _check_positive(f"race_mix[{code!r}]", w, allow_zero=True)
    if weights.sum() <= 0:
        raise ValueError("race_mix: the weights sum to 0")
    return weights[1:] / weights.sum()


def _check_density_effect(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        return 1.0 if value else 0.0
    return _check_positive("density_effect", value, allow_zero=True)


def _check_carrier_freq(value: Any) -> tuple[float, float]:
    try:
        p1, p2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"carrier_freq={value!r}: give two fractions (BRCA1, BRCA2)") from None
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1 and p1 + p2 < 1):
        raise ValueError(f"carrier_freq={value!r}: need fractions ≥ 0 with BRCA1 + BRCA2 < 1")
    return p1, p2


# --------------------------------------------------------------------------- hazards


@dataclass
class _Hazards:
    """Per-woman pieces of the hazards; all arrays have shape ``(n,)``.

    Every factor of the hazard changes only at attained ages that are multiples of 5 (the
    Gail age bands; the Gail RR switch at 50 and the density switch at 65 fall on band
    edges), so each woman's hazard is constant on "pieces": from her baseline age to the
    end of her current band, then whole bands. Summing Gail's one-year slots over a piece
    gives the same integral (the sum telescopes), with far fewer array operations.
    """

    age: np.ndarray  # baseline age, years
    race: np.ndarray  # BCRAT code (intp)
    gene: np.ndarray  # 0 non-carrier, 1 BRCA1, 2 BRCA2 (intp)
    m_lo: np.ndarray  # (1 − AR) · RR_Star1 · PRS multiplier, attained age < 50
    m_hi: np.ndarray  # (1 − AR) · RR_Star2 · PRS multiplier, attained age ≥ 50
    dens_young: np.ndarray  # density multiplier at attained age < 65
    dens_old: np.ndarray  # density multiplier at attained age ≥ 65
    image: np.ndarray  # image multiplier exp(γu − γ²/2)

    def __post_init__(self) -> None:
        band0 = ((np.floor(self.age) - FIRST_AGE) // 5).astype(np.intp)
        self.band0 = band0  # Gail age band of the baseline age (0: [20,25), …)
        self.flat0 = self.race * N_BANDS + band0  # index into the raveled (race, band) tables
        self.lower0 = FIRST_AGE + 5.0 * band0  # attained age at the start of her current band
        self.carriers = np.flatnonzero(self.gene > 0)
        inc = carrier_incidence()
        self.carrier_table = np.stack([np.zeros(N_BANDS), inc["BRCA1"], inc["BRCA2"]]).ravel()

    def piece(self, p: int, rows: np.ndarray | None = None, with_image: bool = True
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Hazards on the p-th constant piece (p = 0: baseline age to the end of her band).

        Args:
            p: piece number, ≥ 0.
            rows: index array of the women wanted, shape ``(m,)``; None for all.
            with_image: if False, leave the image multiplier out (non-carriers' h1 is then
                the hazard at image multiplier 1).

        Returns:
            ``(h1, h2, start, end)``: breast-cancer and competing hazards per woman-year, and
            the piece's start and end in years from baseline, each of shape ``(m,)``.
        """

        def take(values: np.ndarray) -> np.ndarray:
            return values if rows is None else values[rows]

        tables = load_tables()
        age = take(self.age)
        lower = take(self.lower0) + 5.0 * p
        flat = take(self.flat0) + p
        h2 = np.take(tables.lambda2.ravel(), flat)
        h1 = np.where(lower < 50, take(self.m_lo), take(self.m_hi))
        h1 *= np.where(lower < 65, take(self.dens_young), take(self.dens_old))
        if with_image:
            h1 *= take(self.image)
        h1 *= np.take(tables.lambda1.ravel(), flat)
        if self.carriers.size:
            where = self.carriers if rows is None else np.flatnonzero(self.gene[rows] > 0)
            if where.size:
                chosen = where if rows is None else rows[where]
                band = self.band0[chosen] + p
                h1[where] = self.carrier_table[self.gene[chosen] * N_BANDS + band]
        start = lower - age
        np.maximum(start, 0.0, out=start)
        end = lower + 5.0 - age
        return h1, h2, start, end


def _pieces_for(years: float) -> int:
    """Pieces needed to cover ``years`` of follow-up from any baseline age."""
    return math.ceil(years / 5.0) + 1


def _true_risks(hz: _Hazards, horizons: Sequence[int]) -> np.ndarray:
    """Absolute risk of invasive breast cancer within each horizon, with competing mortality.

    The integral of :func:`riskmodel.gail.risk.absolute_risk`,
    ``Σ h1/h · exp(−C) · (1 − exp(−h·L))`` over the parts L of each constant piece before
    the horizon, C the cumulative all-cause hazard at the piece's start.

    Returns:
        Array of shape ``(len(horizons), n)`` of probabilities.
    """
    n = hz.age.size
    risk = np.zeros((len(horizons), n))
    cum = np.zeros(n)
    for p in range(_pieces_for(max(horizons))):
        h1, h2, start, end = hz.piece(p)
        h = h1 + h2
        weight = h1 / h
        weight *= np.exp(-cum)
        for j, horizon in enumerate(horizons):
            x = np.minimum(end, float(horizon))
            x -= start
            np.maximum(x, 0.0, out=x)  # years of this piece before the horizon
            x *= -h
            np.expm1(x, out=x)
            x *= weight
            risk[j] -= x
        end -= start
        end *= h
        cum += end
    return risk


def _risk_without_image(hz: _Hazards, horizon: int, gamma: float) -> np.ndarray:
    """Risk within ``horizon`` years averaged over the image factor u ~ N(0, 1).

    Gauss–Hermite quadrature with 12 nodes (relative error below 1e-7 at the default
    hazard ratio 2 per SD, about 2e-4 at 4). This is the best risk a model that sees
    everything except the pixels could give.

    Returns:
        Array of shape ``(n,)``; only non-carriers are filled (carriers' hazard ignores u).
    """
    n = hz.age.size
    out = np.zeros(n)
    rows = np.flatnonzero(hz.gene == 0)
    if gamma == 0 or rows.size == 0:
        return out
    nodes, weights = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    weights = weights / weights.sum()
    mults = np.exp(gamma * nodes - gamma**2 / 2)
    cum = np.zeros((_GH_NODES, rows.size))
    acc = np.zeros(rows.size)
    for p in range(_pieces_for(horizon)):
        h1_unit, h2, start, end = hz.piece(p, rows, with_image=False)
        neg_length = np.minimum(end, float(horizon))
        neg_length -= start
        np.maximum(neg_length, 0.0, out=neg_length)
        neg_length *= -1.0
        full = end - start
        for q in range(_GH_NODES):
            h1 = h1_unit * mults[q]
            h = h1 + h2
            h1 /= h
            x = np.negative(cum[q])
            np.exp(x, out=x)
            h1 *= x
            np.multiply(h, neg_length, out=x)
            np.expm1(x, out=x)
            h1 *= x
            h1 *= weights[q]
            acc -= h1
            h *= full
            cum[q] += h
    out[rows] = acc
    return out


def _simulate(hz: _Hazards, follow: np.ndarray, target: np.ndarray, cause_u: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Draw each woman's first event by inverting her cumulative all-cause hazard.

    Args:
        hz: hazards.
        follow: end of observation in years from baseline (administrative end, loss to
            follow-up or age 90, whichever is first), shape ``(n,)``.
        target: standard exponential draws, shape ``(n,)``: the first event happens when the
            cumulative all-cause hazard reaches it.
        cause_u: uniform draws, shape ``(n,)``: that event is breast cancer when
            ``cause_u < h1 / (h1 + h2)`` on the piece where it happens, else another death.

    Returns:
        ``(time, event)``: years from baseline (float64) and codes 0 censored,
        1 invasive breast cancer, 2 death from other causes (int64), each of shape ``(n,)``.
    """
    n = hz.age.size
    time = follow.copy()
    event = np.zeros(n, dtype=np.int64)
    cum = np.zeros(n)
    rows = np.arange(n)
    p = 0
    while rows.size:  # rows: still event-free and under observation at the piece's start
        h1, h2, start, end = hz.piece(p, rows)
        h = h1 + h2
        c0 = cum[rows]
        c1 = c0 + h * (end - start)
        hit = c1 >= target[rows]
        t_hit = start + (target[rows] - c0) / h
        happened = hit & (t_hit < follow[rows])
        idx = rows[happened]
        time[idx] = t_hit[happened]
        event[idx] = np.where(cause_u[idx] < (h1 / h)[happened], BREAST_CANCER, OTHER_DEATH)
        cum[rows] = c1
        rows = rows[~hit & (end < follow[rows])]
        p += 1
    return time, event


# --------------------------------------------------------------------------- ids


def _ids(prefix: str, n: int) -> pd.api.extensions.ExtensionArray:
    """``prefix`` + 1-based row number zero-padded to 7 digits (more if n needs them).

    Built digit by digit into one byte buffer that becomes a pandas ``string`` array
    (pyarrow-backed) without a per-row Python step. Returns an array of length ``n``.
    """
    width = max(7, len(str(n)))
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    size = head.size + width
    chars = np.empty((n, size), dtype=np.uint8)
    chars[:, : head.size] = head
    number = np.arange(1, n + 1, dtype=np.int64)
    for col in range(size - 1, head.size - 1, -1):
        chars[:, col] = number % 10 + 48
        number //= 10
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.ravel()))
    return pd.array(strings, dtype=pd.StringDtype("pyarrow"))


# --------------------------------------------------------------------------- main


def _categorical(rng: np.random.Generator, values: np.ndarray, probs: np.ndarray, n: int) -> np.ndarray:
    probs = np.asarray(probs, dtype=float)
    return values[rng.choice(values.size, size=n, p=probs / probs.sum())]


def _int_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    table = _value(name)
    keys = np.array([int(k) for k in table], dtype=np.int64)
    return keys, np.array([float(v) for v in table.values()])


def make_cohort(
    n: int,
    seed: int = 0,
    *,
    age_range: tuple[float, float] | None = None,
    race_mix: Mapping[int, float] | None = None,
    prs_or_per_sd: float | None = None,
    image_hr_per_sd: float | None = None,
    density_effect: bool | float | None = None,
    carrier_freq: tuple[float, float] | None = None,
    follow_up: tuple[float, float] | None = None,
    loss_rate: float | None = None,
) -> pd.DataFrame:
    """Simulate a screening cohort of ``n`` women whose true breast-cancer risk is known.

    Every keyword left at ``None`` takes its default from ``data/cohort_parameters.json``
    (see :func:`default_effects`); the defaults are given below.

    Args:
        n: number of women (rows), ≥ 1.
        seed: non-negative integer. The same seed and arguments give an identical DataFrame.
            Each component (ages, race, …, outcome draws) has its own random stream, so
            changing an effect size keeps the same women and the same underlying draws.
        age_range: ``(low, high)`` in years; baseline ages are uniform on [low, high).
            Default (40, 75), i.e. completed ages 40–74; needs 20 ≤ low < high ≤ 85.
        race_mix: BCRAT race code (1–11) → weight (normalised). Default: the 2020 US Census
            mix in the parameter file (White 57.8 %, Black 12.1 %, Hispanic 18.7 %, …).
        prs_or_per_sd: hazard ratio per SD of the polygenic score, > 0. Default 1.61
            (PRS313, Mavaddat 2019); 1 removes the PRS effect.
        image_hr_per_sd: hazard ratio per SD of the latent image factor, > 0. Default 2.0
            (a design choice); 1 removes it.
        density_effect: power on the BCSC density relative hazards: ``True``/1 as published
            (default), ``False``/0 none, e.g. 2 doubles the log hazard ratios.
        carrier_freq: ``(BRCA1, BRCA2)`` carrier fractions. Default (0.0024, 0.003).
        follow_up: ``(min, max)`` years; the administrative end of follow-up is uniform
            between them. Default (5, 10). Follow-up also ends at age 90.
        loss_rate: yearly rate of (exponential) loss to follow-up, ≥ 0. Default 0.02.

    Returns:
        A DataFrame with ``n`` rows and the columns :data:`OUTPUT_COLUMNS`:

        * canonical schema columns: ``id`` (``"SYN0000001"`` …), ``exam_id`` (``"EX0000001"``
          …), ``age`` (years), ``race`` (BCRAT code), ``age_at_menarche``,
          ``age_at_first_birth`` (NaN if nulliparous), ``nulliparous`` (bool),
          ``n_biopsies``, ``atypical_hyperplasia`` (NaN without a biopsy, else 0/1),
          ``first_degree_relatives``, ``density`` ('a'–'d'), ``brca`` ('negative', 'BRCA1',
          'BRCA2'), ``prs`` (SD units);
        * ``image_factor``: the latent image-only factor u ~ N(0, 1) (only pixels would show it);
        * ``time`` (years from baseline) and ``event`` (0 censored, 1 invasive breast
          cancer, 2 death from other causes);
        * ``true_risk_1y`` … ``true_risk_5y``: the oracle's probability of invasive breast
          cancer within k years, with competing mortality, without censoring;
        * ``true_risk_5y_no_image``: the five-year risk averaged over the image factor, the
          best a model without the pixels could do (equal to ``true_risk_5y`` for carriers).

    Raises:
        ValueError: an argument is out of its domain (the message names it).
        TypeError: an unknown keyword argument.

    Examples:
        >>> from riskmodel.synthetic import make_cohort
        >>> df = make_cohort(1000, seed=1)
        >>> df.shape, df["id"].iloc[0], df["exam_id"].iloc[-1]
        ((1000, 22), 'SYN0000001', 'EX0001000')
        >>> bool((df["true_risk_1y"] <= df["true_risk_5y"]).all())
        True
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_ROWS:
        raise ValueError(f"n={n!r}: must be an integer from 1 to {MAX_ROWS:,}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: must be a non-negative integer")
    n = int(n)
    d = default_effects()
    lo, hi = _check_pair("age_range", d["age_range"] if age_range is None else age_range,
                         FIRST_AGE, MAX_START_AGE, strict=True)
    mix = _check_race_mix(d["race_mix"] if race_mix is None else race_mix)
    beta = math.log(_check_positive("prs_or_per_sd", d["prs_or_per_sd"] if prs_or_per_sd is None else prs_or_per_sd))
    gamma = math.log(_check_positive("image_hr_per_sd",
                                     d["image_hr_per_sd"] if image_hr_per_sd is None else image_hr_per_sd))
    scale = _check_density_effect(d["density_effect"] if density_effect is None else density_effect)
    p1, p2 = _check_carrier_freq(d["carrier_freq"] if carrier_freq is None else carrier_freq)
    fu_min, fu_max = _check_pair("follow_up", d["follow_up"] if follow_up is None else follow_up,
                                 0.0, 100.0, strict=False)
    if fu_max <= 0:
        raise ValueError(f"follow_up={follow_up!r}: the maximum must be > 0 years")
    loss = _check_positive("loss_rate", d["loss_rate"] if loss_rate is None else loss_rate, allow_zero=True)

    streams = dict(zip(_STREAMS, np.random.SeedSequence(int(seed)).spawn(len(_STREAMS)), strict=True))
    rng = {name: np.random.Generator(np.random.PCG64(s)) for name, s in streams.items()}

    # Covariates.
    age = rng["age"].uniform(lo, hi, n)
    race = _categorical(rng["race"], np.asarray(RACE_CODES, dtype=np.int64), mix, n)
    men_vals, men_p = _int_table("menarche_age_distribution")
    menarche = _categorical(rng["menarche"], men_vals, men_p, n).astype(np.float64)
    nulliparous = rng["parity"].random(n) < float(_value("nulliparous_fraction"))
    groups = _value("first_birth_age_distribution")
    bounds = np.array([[int(x) for x in key.split("-")] for key in groups], dtype=np.int64)
    g = _categorical(rng["first_birth"], np.arange(len(groups)), np.array(list(groups.values()), float), n)
    span = bounds[g, 1] - bounds[g, 0] + 1
    afb = bounds[g, 0] + np.floor(rng["first_birth"].random(n) * span)
    afb = np.maximum(afb, menarche + 1)
    nulliparous |= afb > age  # no first birth yet at her current age
    afb = np.where(nulliparous, np.nan, afb)
    counts, count_p = _int_table("biopsy_count_given_any")
    any_biopsy = float(_value("prior_biopsy_fraction"))
    n_biopsies = _categorical(rng["biopsy"], np.concatenate([[0], counts]),
                              np.concatenate([[1 - any_biopsy], any_biopsy * count_p / count_p.sum()]), n)
    hyper = (rng["hyperplasia"].random(n) < float(_value("atypical_hyperplasia_given_biopsy"))).astype(np.float64)
    hyper = np.where(n_biopsies == 0, np.nan, hyper)
    rel_vals, rel_p = _int_table("first_degree_relatives_distribution")
    relatives = _categorical(rng["relatives"], rel_vals, rel_p, n)
    group = density_group(age)
    cdf = np.cumsum(_density().probs, axis=1)[group]
    cdf[:, -1] = 1.0
    density = (rng["density"].random(n)[:, None] >= cdf).sum(axis=1)  # 0..3 = a..d
    u_brca = rng["brca"].random(n)
    gene = np.where(u_brca < p1, 1, np.where(u_brca < p1 + p2, 2, 0)).astype(np.intp)
    prs = rng["prs"].standard_normal(n)
    image_factor = rng["image"].standard_normal(n)

    # Hazard pieces: Gail's relative risk on BCRA codes, density, PRS and image multipliers.
    rec = recode(age, age + max(HORIZONS), n_biopsies.astype(np.float64), np.where(n_biopsies == 0, 99.0, hyper),
                 menarche, np.where(nulliparous, 98.0, afb), relatives.astype(np.float64), race.astype(np.float64))
    rr1, rr2, _ = relative_risk(rec)
    if rec.error.any() or np.isnan(rr1).any() or np.isnan(rr2).any():  # pragma: no cover - a bug, not user error
        raise RuntimeError("internal error: a simulated woman is invalid for the Gail model")
    ar = load_tables().one_minus_ar[race]
    prs_mult = np.exp(beta * prs - beta**2 / 2)
    mult = density_multipliers(scale)[group, :, density]  # (n, 2)
    hz = _Hazards(
        age=age, race=race.astype(np.intp), gene=gene,
        m_lo=ar[:, 0] * rr1 * prs_mult, m_hi=ar[:, 1] * rr2 * prs_mult,
        dens_young=mult[:, 0], dens_old=mult[:, 1],
        image=np.exp(gamma * image_factor - gamma**2 / 2),
    )

    truth = _true_risks(hz, HORIZONS)
    no_image = _risk_without_image(hz, max(HORIZONS), gamma)
    no_image = np.where((gene > 0) | (gamma == 0), truth[-1], no_image)

    # Outcomes: first of breast cancer, other death, administrative end, loss, age 90.
    admin = rng["admin"].uniform(fu_min, fu_max, n)
    lost = rng["loss"].exponential(1.0 / loss, n) if loss > 0 else np.full(n, np.inf)
    follow = np.minimum(np.minimum(admin, lost), LAST_AGE - age)
    time, event = _simulate(hz, follow, rng["event"].standard_exponential(n), rng["cause"].random(n))

    columns: dict[str, np.ndarray] = {
        "id": _ids("SYN", n),
        "exam_id": _ids("EX", n),
        "age": age,
        "race": race,
        "age_at_menarche": menarche,
        "age_at_first_birth": afb,
        "nulliparous": nulliparous,
        "n_biopsies": n_biopsies,
        "atypical_hyperplasia": hyper,
        "first_degree_relatives": relatives,
        "density": np.asarray(DENSITY_LETTERS, dtype=object)[density],
        "brca": np.asarray(BRCA_LABELS, dtype=object)[gene],
        "prs": prs,
        "image_factor": image_factor,
        "time": time,
        "event": event,
    }
    for j, horizon in enumerate(HORIZONS):
        columns[f"true_risk_{horizon}y"] = truth[j]
    columns["true_risk_5y_no_image"] = no_image
    return pd.DataFrame(columns, copy=False)  # no copy into consolidated blocks: 1M rows stay fast
