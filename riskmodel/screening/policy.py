"""Screening policies as data: load a versioned TOML file and check it against the policy schema.

A policy file says which risk measure it uses, how (age, risk) maps to a **category**, what each
category means at each age (a **schedule**: modality, interval, supplemental imaging), which
conditions raise a woman's category (a pathogenic variant; being in the top percentile of risk
for her age) or put her outside the policy, and where every number comes from. The format is
described in ``docs/screening.md``; the shipped files are in ``riskmodel/screening/policies/``.

Intervals are written as text, with brackets saying whether each bound is included:
``"[1.3%, 6%)"`` is 1.3 % ≤ risk < 6 %, ``"[40, 75)"`` is 40 ≤ age < 75 (years), ``inf`` is
allowed as an upper bound. Risks may be given in percent (``1.66%``) or as probabilities
(``0.0166``); both become the same float.

>>> policy = load_policy("wisdom")
>>> policy.measure, str(policy.ages), [c.id for c in policy.categories]
('five_year', '[40, 75)', ['low', 'average', 'elevated', 'highest'])
"""

from __future__ import annotations

import itertools
import math
import os
import re
import sys
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "CONDITIONS",
    "MEASURES",
    "MODALITIES",
    "SUPPLEMENTAL",
    "Category",
    "Interval",
    "Policy",
    "PolicyError",
    "Schedule",
    "Source",
    "Threshold",
    "Upgrade",
    "Verification",
    "list_policies",
    "load_policy",
]

#: The file format version this module reads (``schema = 1`` in a policy file).
SCHEMA_VERSION = 1

#: Risk measures a policy can use, with the horizon in years (``None``: the policy uses age only).
MEASURES: dict[str, float | str | None] = {
    "five_year": 5.0,
    "ten_year": 10.0,
    "lifetime": "lifetime",
    "none": None,
}

#: Screening modalities a schedule may name, with the words used in rationales and reports.
MODALITIES = {
    "mammography": "mammography (digital mammography or tomosynthesis)",
    "mri": "breast MRI",
    "mammography_and_mri": "mammography and breast MRI",
    "mammography_mri_alternating": "mammography and breast MRI, alternating",
    "none": "no routine screening for now",
    "individual_decision": "an individual decision with her clinician",
    "not_addressed": "screening is not addressed by this policy",
}
#: Modalities that carry no interval (``interval_months`` is NaN for them).
NO_INTERVAL = ("none", "individual_decision", "not_addressed")

#: Supplemental imaging a schedule may add ("" = none).
SUPPLEMENTAL = {"": "none", "mri": "breast MRI", "ultrasound": "breast ultrasound"}

#: Conditions a policy may test, with the canonical column and the words used in messages.
CONDITIONS = {
    "carrier": ("brca", "a BRCA1/2 pathogenic variant"),
    "chest_radiation": ("chest_radiation", "chest radiation therapy"),
    "prior_breast_cancer": ("prior_breast_cancer", "a personal history of breast cancer"),
    "prior_dcis_or_lcis": ("prior_dcis_or_lcis", "a history of DCIS or LCIS"),
    "atypical_hyperplasia": ("atypical_hyperplasia", "atypical hyperplasia on a biopsy"),
}
#: Upgrade rules (``[[upgrade]] when = ...``): a condition above, or the age-specific percentile.
UPGRADES = (*CONDITIONS, "top_percentile_for_age")


class PolicyError(ValueError):
    """A policy file that cannot be used: ``path`` names the file, ``rule`` says what is wrong."""

    def __init__(self, path: str, rule: str):
        self.path = path
        self.rule = rule
        super().__init__(f"policy {path}: {rule}")


# ---------------------------------------------------------------------------- intervals

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])\s*$")


@dataclass(frozen=True)
class Interval:
    """An interval of numbers with inclusive or exclusive bounds.

    >>> r = Interval.parse("[1.3%, 6%)", percent=True)
    >>> r.lo, r.hi, r.contains(0.013), r.contains(0.06)
    (0.013, 0.06, True, False)
    """

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool
    text: str = ""

    @classmethod
    def parse(cls, text: object, *, percent: bool = False) -> Interval:
        """Read ``"[a, b)"``-style text; ``percent``: the values are risks (``%`` or a probability)."""
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not an interval like \"[40, 75)\"")
        m = _INTERVAL.match(text)
        if m is None:
            raise ValueError(f"{text!r} is not an interval like \"[40, 75)\" (brackets: [ ] include, ( ) exclude)")
        lo, hi = (_number(v, percent=percent) for v in (m.group(2), m.group(3)))
        if not lo <= hi:
            raise ValueError(f"{text!r}: the lower bound is above the upper bound")
        closed = (m.group(1) == "[", m.group(4) == "]")
        if math.isinf(lo) or (math.isinf(hi) and closed[1]):
            raise ValueError(f"{text!r}: only an open upper bound may be infinite")
        if lo == hi and not all(closed):
            raise ValueError(f"{text!r}: empty interval")
        return cls(lo, hi, closed[0], closed[1], text.strip())

    def contains(self, x: Any) -> Any:
        """Elementwise membership of ``x`` (a float or an array; NaN is never inside)."""
        x = np.asarray(x, dtype=np.float64)
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        out = above & below
        return bool(out) if out.ndim == 0 else out

    def __str__(self) -> str:
        return self.text or f"{'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_closed else ')'}"


def _number(text: str, *, percent: bool) -> float:
    t = text.strip().lower()
    if t in ("inf", "+inf", "infinity"):
        return math.inf
    is_pct = t.endswith("%")
    if is_pct and not percent:
        raise ValueError(f"{text!r}: a percentage is only allowed for risks")
    try:
        value = Decimal(t.rstrip("%").strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if is_pct:
        value = value / 100
    out = float(value)
    if percent and not 0.0 <= out <= 1.0:
        raise ValueError(f"{text!r}: a risk must be in [0%, 100%] (a probability in [0, 1])")
    if not percent and out < 0:
        raise ValueError(f"{text!r}: an age must be >= 0 years")
    return out


FULL_RISK = Interval(0.0, 1.0, True, True, "[0%, 100%]")


# ---------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Source:
    """Where a policy's numbers come from."""

    citation: str
    short: str
    year: int
    url: str = ""


@dataclass(frozen=True)
class Verification:
    """One claim of the policy file and whether it was checked against its primary source."""

    claim: str
    verified: bool
    checked_against: str = ""
    note: str = ""


@dataclass(frozen=True)
class Category:
    """A risk category; ``rank`` orders them from least to most intensive (file order)."""

    id: str
    label: str
    rank: int
    chemoprevention: bool = False


@dataclass(frozen=True)
class Threshold:
    """Women of ``ages`` whose risk is in ``risk`` belong to ``category``."""

    category: str
    ages: Interval
    risk: Interval
    index: int


@dataclass(frozen=True)
class Schedule:
    """What ``category`` means for women of ``ages``."""

    category: str
    ages: Interval
    modality: str
    interval_months: float  # NaN for the modalities in NO_INTERVAL
    supplemental: str
    advice: str


@dataclass(frozen=True)
class Upgrade:
    """A rule that raises a woman's category to ``category`` (never lowers it)."""

    when: str
    category: str
    percentile: float = math.nan  # top_percentile_for_age only: e.g. 97.5
    age_band_years: float = 5.0
    min_reference: int = 200


@dataclass(frozen=True)
class Policy:
    """A validated screening policy (see :func:`load_policy`)."""

    id: str
    title: str
    version: str
    measure: str
    ages: Interval
    source: Source
    categories: tuple[Category, ...]
    thresholds: tuple[Threshold, ...]
    schedules: tuple[Schedule, ...]
    upgrades: tuple[Upgrade, ...] = ()
    not_for: tuple[str, ...] = ()
    verification: tuple[Verification, ...] = ()
    chemoprevention: Policy | None = None
    notes: str = ""
    model_caveats: tuple[tuple[str, str], ...] = ()  # (model name, sentence added to rationales of its risks)
    path: str = ""
    _by_id: dict[str, Category] = field(default_factory=dict, repr=False, compare=False)

    @property
    def verified(self) -> bool:
        """True when every claim listed in the file was checked against its primary source."""
        return bool(self.verification) and all(v.verified for v in self.verification)

    def category(self, category_id: str) -> Category:
        """The category with this id."""
        return self._by_id[category_id]

    @property
    def needs_reference(self) -> bool:
        """True if a rule compares a woman with the others of her age (a "top percentile for age" rule):
        apply such a policy to the whole cohort at once, or pass a reference population."""
        return any(u.when == "top_percentile_for_age" for u in self.upgrades)

    def uses(self, condition: str) -> bool:
        """Whether any rule of the policy looks at ``condition`` (e.g. ``"carrier"``)."""
        return condition in self.not_for or any(u.when == condition for u in self.upgrades)


# ---------------------------------------------------------------------------- loading


def _policies_dir():
    return resources.files("riskmodel.screening").joinpath("policies")


def list_policies() -> dict[str, str]:
    """Shipped policies: ``{name: title}``, the names :func:`load_policy` accepts.

    >>> sorted(list_policies())
    ['acr2023', 'chemoprevention', 'mypebs', 'uspstf2024', 'wisdom']
    """
    out = {}
    for entry in sorted(_policies_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = str(tomllib.loads(entry.read_text(encoding="utf-8")).get("title", ""))
    return out


def load_policy(policy: str | os.PathLike[str] | Policy) -> Policy:
    """A shipped policy by name, or a custom policy file, checked against the policy schema.

    Args:
        policy: a name from :func:`list_policies` (``"uspstf2024"``, ``"wisdom"``, …), the path of
            a TOML policy file, or a :class:`Policy` (returned as is).

    Raises:
        PolicyError: unknown name, unreadable file, or a file that breaks a rule of the schema
            (the message names the file, the entry and the rule: overlapping or gapped thresholds,
            an unknown modality, a missing source, …).
    """
    if isinstance(policy, Policy):
        return policy
    return _load(os.fspath(policy), used_by=None)


def _load(name: str, used_by: str | None) -> Policy:
    """Load a shipped name or a file; ``used_by``: the file naming it as its chemoprevention policy."""
    shipped = _policies_dir().joinpath(f"{name}.toml")
    if re.fullmatch(r"[a-z0-9_]+", name) and shipped.is_file():
        text, where, base = shipped.read_text(encoding="utf-8"), f"{name} (shipped)", None
    else:
        path = Path(name)
        if not path.is_file():
            raise PolicyError(name, "no shipped policy of that name and no such file; shipped: "
                              + ", ".join(list_policies()))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(name, f"cannot read: {exc}") from None
        where, base = name, path.parent
    try:
        return _parse(text, where, base, used_by)
    except RecursionError:  # TOML nested thousands deep
        raise PolicyError(where, "nested too deeply to read (arrays or tables inside one another thousands of "
                                 "levels deep); a policy file is a few flat tables") from None


_TOP_KEYS = {"schema", "id", "title", "version", "measure", "ages", "chemoprevention", "not_for", "notes",
             "model_caveats", "source", "verification", "category", "threshold", "schedule", "upgrade"}
_KEYS = {
    "source": ({"citation", "short", "year"}, {"url"}),
    "verification": ({"claim", "verified"}, {"checked_against", "note"}),
    "category": ({"id", "label"}, {"chemoprevention"}),
    "threshold": ({"category", "ages"}, {"risk"}),
    "schedule": ({"category", "ages", "modality", "advice"}, {"interval_months", "supplemental"}),
    "upgrade": ({"when", "category"}, {"percentile", "age_band_years", "min_reference"}),
}


def _parse(text: str, where: str, base: Path | None, used_by: str | None = None) -> Policy:
    def fail(rule: str) -> PolicyError:
        return PolicyError(where, rule)

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    if doc.get("schema") != SCHEMA_VERSION:
        raise fail(f"schema = {doc.get('schema')!r}: this riskmodel reads policy files with schema = {SCHEMA_VERSION}")
    for key in ("id", "title", "version"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise fail(f"'{key}' is missing or empty (a non-empty string is required)")
    measure = doc.get("measure")
    if measure not in MEASURES:
        raise fail(f"measure = {measure!r}: use one of {', '.join(MEASURES)}")
    ages = _interval(doc.get("ages"), "ages", fail)

    if "source" not in doc:
        raise fail("missing [source]: every policy must cite its source (citation, short, year)")
    src = _table(doc["source"], "source", "[source]", fail)
    if not isinstance(src["year"], int) or not 1900 <= src["year"] <= 2100:
        raise fail(f"[source] year = {src['year']!r}: a year such as 2024 is required")
    for key in ("citation", "short"):
        if not isinstance(src[key], str) or not src[key].strip():
            raise fail(f"[source] {key} is empty: name the guideline or trial and its publication")
    source = Source(src["citation"].strip(), src["short"].strip(), src["year"], str(src.get("url", "")))

    verification = tuple(
        Verification(str(v["claim"]), _bool(v["verified"], f"[[verification]] #{i + 1} verified", fail),
                     str(v.get("checked_against", "")), str(v.get("note", "")))
        for i, v in enumerate(_tables(doc, "verification", fail))
    )

    categories: list[Category] = []
    for i, c in enumerate(_tables(doc, "category", fail)):
        if not isinstance(c["id"], str) or not re.fullmatch(r"[a-z0-9_]+", c["id"]):
            raise fail(f"[[category]] #{i + 1}: id = {c['id']!r} must be lowercase letters, digits and _")
        if any(c["id"] == k.id for k in categories):
            raise fail(f"[[category]] #{i + 1}: id {c['id']!r} appears twice")
        categories.append(Category(c["id"], str(c["label"]), i,
                                   _bool(c.get("chemoprevention", False), f"category {c['id']!r} chemoprevention",
                                         fail)))
    if not categories:
        raise fail("no [[category]]: a policy needs at least one category")
    by_id = {c.id: c for c in categories}

    def category_of(entry: dict[str, Any], what: str) -> str:
        if entry["category"] not in by_id:
            raise fail(f"{what}: category {entry['category']!r} is not a [[category]] id ({', '.join(by_id)})")
        return entry["category"]

    thresholds = []
    for i, t in enumerate(_tables(doc, "threshold", fail)):
        what = f"[[threshold]] #{i + 1}"
        cat = category_of(t, what)
        t_ages = _interval(t["ages"], f"{what} ages", fail)
        if "risk" in t:
            if measure == "none":
                raise fail(f"{what}: risk is given but measure = 'none' (an age-only policy)")
            risk = _interval(t["risk"], f"{what} risk", fail, percent=True)
        elif measure != "none":
            raise fail(f"{what}: risk is missing (measure = {measure!r} needs a risk interval)")
        else:
            risk = FULL_RISK
        thresholds.append(Threshold(cat, t_ages, risk, i))
    if not thresholds:
        raise fail("no [[threshold]]: say which category each age and risk falls in")

    schedules = []
    for i, s in enumerate(_tables(doc, "schedule", fail)):
        what = f"[[schedule]] #{i + 1} (category {s.get('category')!r})"
        cat = category_of(s, what)
        if s["modality"] not in MODALITIES:
            raise fail(f"{what}: unknown modality {s['modality']!r}; use one of {', '.join(MODALITIES)}")
        supplemental = s.get("supplemental", "")
        if supplemental not in SUPPLEMENTAL:
            raise fail(f"{what}: unknown supplemental {supplemental!r}; use one of "
                       + ", ".join(repr(k) for k in SUPPLEMENTAL))
        if s["modality"] in NO_INTERVAL:
            if "interval_months" in s:
                raise fail(f"{what}: modality {s['modality']!r} has no interval; remove interval_months")
            interval = math.nan
        else:
            interval = s.get("interval_months")
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval <= 120:
                raise fail(f"{what}: interval_months = {interval!r}: modality {s['modality']!r} needs a number of "
                           "months in (0, 120]")
            interval = float(interval)
        if not isinstance(s["advice"], str) or not s["advice"].strip():
            raise fail(f"{what}: advice is empty (one sentence a woman can read)")
        schedules.append(Schedule(cat, _interval(s["ages"], f"{what} ages", fail), s["modality"], interval,
                                  supplemental, s["advice"].strip()))

    upgrades = []
    for i, u in enumerate(_tables(doc, "upgrade", fail)):
        what = f"[[upgrade]] #{i + 1}"
        if u["when"] not in UPGRADES:
            raise fail(f"{what}: when = {u['when']!r}; use one of {', '.join(UPGRADES)}")
        cat = category_of(u, what)
        if u["when"] == "top_percentile_for_age":
            if measure == "none":
                raise fail(f"{what}: a percentile of risk needs a risk measure (measure = 'none')")
            pct = u.get("percentile")
            if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 50 <= pct < 100:
                raise fail(f"{what}: percentile = {pct!r} must be a number in [50, 100)")
            band = u.get("age_band_years", 5)
            if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 < band <= 20:
                raise fail(f"{what}: age_band_years = {band!r} must be in (0, 20]")
            minimum = u.get("min_reference", 200)
            if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
                raise fail(f"{what}: min_reference = {minimum!r} must be a whole number >= 1")
            upgrades.append(Upgrade(u["when"], cat, float(pct), float(band), minimum))
        else:
            extra = sorted(set(u) & {"percentile", "age_band_years", "min_reference"})
            if extra:
                raise fail(f"{what}: {extra} only apply to when = 'top_percentile_for_age'")
            upgrades.append(Upgrade(u["when"], cat))

    not_for = doc.get("not_for", [])
    if not isinstance(not_for, list) or any(c not in CONDITIONS for c in not_for):
        raise fail(f"not_for = {not_for!r}: a list of conditions from {', '.join(CONDITIONS)}")

    caveats = doc.get("model_caveats", {})
    if not isinstance(caveats, dict) or not all(isinstance(v, str) and v.strip() for v in caveats.values()):
        raise fail("[model_caveats] must map model names to a sentence, e.g. gail = \"...\"")

    chemo = None
    if "chemoprevention" in doc:
        ref = doc["chemoprevention"]
        if not isinstance(ref, str) or not ref:
            raise fail("chemoprevention must name a policy (shipped name or a path relative to this file)")
        if used_by is not None:  # checked before loading it: a file naming itself would never end
            raise fail(f"chemoprevention = {ref!r}: this file is the chemoprevention policy of {used_by}, and such a "
                       "policy names a chemoprevention policy itself; use one without")
        target = ref if base is None or not ref.endswith(".toml") else str(base / ref)
        chemo = _load(target, used_by=where)

    policy = Policy(doc["id"].strip(), doc["title"].strip(), doc["version"].strip(), measure, ages, source,
                    tuple(categories), tuple(thresholds), tuple(schedules), tuple(upgrades), tuple(not_for),
                    verification, chemo, str(doc.get("notes", "")).strip(),
                    tuple((k, v.strip()) for k, v in caveats.items()), where, by_id)
    _check_thresholds(policy, fail)
    _check_schedules(policy, fail)
    return policy


def _table(value: Any, kind: str, what: str, fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{what} must be a table")
    required, optional = _KEYS[kind]
    missing = sorted(required - set(value))
    if missing:
        raise fail(f"{what}: missing {', '.join(missing)}")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise fail(f"{what}: unknown key(s) {unknown}; allowed: {sorted(required | optional)}")
    return value


def _tables(doc: dict[str, Any], kind: str, fail) -> list[dict[str, Any]]:
    entries = doc.get(kind, [])
    if not isinstance(entries, list):
        raise fail(f"{kind} must be an array of tables ([[{kind}]])")
    return [_table(e, kind, f"[[{kind}]] #{i + 1}", fail) for i, e in enumerate(entries)]


def _interval(value: Any, what: str, fail, *, percent: bool = False) -> Interval:
    try:
        return Interval.parse(value, percent=percent)
    except ValueError as exc:
        raise fail(f"{what}: {exc}") from None


def _bool(value: Any, what: str, fail) -> bool:
    if not isinstance(value, bool):
        raise fail(f"{what} = {value!r}: must be true or false")
    return value


# ---------------------------------------------------------------------------- coverage checks


def _probe_ages(scope: Interval, windows: list[Interval]) -> list[tuple[float, float, float, bool]]:
    """One age per piece of ``scope`` cut at every window bound: each bound itself (a point) and a
    point inside each open piece between bounds, as ``(age, piece_lo, piece_hi, is_point)``."""
    cuts = sorted({scope.lo, scope.hi, *(b for w in windows for b in (w.lo, w.hi))} - {math.inf})
    cuts = [c for c in cuts if scope.lo <= c <= scope.hi]
    probes: list[tuple[float, float, float, bool]] = []
    for i, c in enumerate(cuts):
        probes.append((c, c, c, True))
        nxt = cuts[i + 1] if i + 1 < len(cuts) else (scope.hi if math.isinf(scope.hi) else None)
        if nxt is not None and nxt > c:
            probes.append((c + 1.0 if math.isinf(nxt) else (c + nxt) / 2, c, nxt, False))
    return [p for p in probes if scope.contains(p[0])]


def _first_problem(probes: list[tuple[float, float, float, bool]], check) -> tuple[str, str] | None:
    """The first problem ``check(age)`` reports, with the run of ages it holds for, in words."""
    for i, probe in enumerate(probes):
        problem = check(probe[0])
        if problem is None:
            continue
        j = i
        while j + 1 < len(probes) and check(probes[j + 1][0]) == problem:
            j += 1
        first, last = probe, probes[j]
        if i == j and first[3]:
            return problem, f"at age {first[0]:g}"
        lo = f"{'[' if first[3] else '('}{first[1]:g}"
        hi = f"{last[2]:g}{']' if last[3] else ')'}"
        return problem, f"at ages {lo}, {hi}"
    return None


def _check_thresholds(policy: Policy, fail) -> None:
    for t in policy.thresholds:
        if not any(t.ages.contains(p[0]) for p in _probe_ages(policy.ages, [t.ages])):
            raise fail(f"[[threshold]] #{t.index + 1}: ages {t.ages} lie outside the policy's ages {policy.ages}")

    def check(age: float) -> str | None:
        rules = sorted((t for t in policy.thresholds if t.ages.contains(age)),
                       key=lambda t: (t.risk.lo, not t.risk.lo_closed))
        if not rules:
            return "thresholds leave a gap {where}: no [[threshold]] covers these ages"
        first, last = rules[0], rules[-1]
        if first.risk.lo > 0 or not first.risk.lo_closed:
            return (f"thresholds leave a gap {{where}}: risk from 0% up to {_pct(first.risk.lo)} "
                    f"({'excluded' if first.risk.lo_closed else 'included'}) is in no category")
        for a, b in itertools.pairwise(rules):
            touch = b.risk.lo == a.risk.hi
            if b.risk.lo < a.risk.hi or (touch and a.risk.hi_closed and b.risk.lo_closed):
                return (f"thresholds overlap {{where}}: {a.category!r} {a.risk} and {b.category!r} {b.risk} "
                        f"both contain {_pct(b.risk.lo)}")
            if b.risk.lo > a.risk.hi or (touch and not a.risk.hi_closed and not b.risk.lo_closed):
                return (f"thresholds leave a gap {{where}}: risk between {a.category!r} {a.risk} and "
                        f"{b.category!r} {b.risk} is in no category")
        if last.risk.hi < 1:
            return (f"thresholds leave a gap {{where}}: risk from {_pct(last.risk.hi)} up to 100% is in no "
                    "category (end the last interval with 100%])")
        if not last.risk.hi_closed:
            return "thresholds leave a gap {where}: a risk of 100% is in no category (end the last interval with 100%])"
        return None

    found = _first_problem(_probe_ages(policy.ages, [t.ages for t in policy.thresholds]), check)
    if found is not None:
        raise fail(found[0].format(where=found[1]))


def _check_schedules(policy: Policy, fail) -> None:
    for cat in policy.categories:
        own = [s for s in policy.schedules if s.category == cat.id]
        reachable = any(t.category == cat.id for t in policy.thresholds) or any(
            u.category == cat.id for u in policy.upgrades)
        if not reachable:
            raise fail(f"category {cat.id!r} is never reached: no [[threshold]] or [[upgrade]] leads to it")

        def check(age: float, own=own, cat=cat) -> str | None:
            hits = [s for s in own if s.ages.contains(age)]
            if not hits:
                return f"category {cat.id!r} has no [[schedule]] {{where}}"
            if len(hits) > 1:
                return f"category {cat.id!r} has overlapping [[schedule]]s {{where}}: " + " and ".join(
                    str(s.ages) for s in hits)
            return None

        found = _first_problem(_probe_ages(policy.ages, [s.ages for s in own]), check)
        if found is not None:
            raise fail(found[0].format(where=found[1]))


def _pct(p: float) -> str:
    """A probability as a short percentage (``0.0166`` → ``'1.66%'``)."""
    return f"{p * 100:.10g}%"
