"""Load a policy: a shipped name or a TOML file, read strictly (unknown keys, types, ranges) into a :class:`Policy`."""

from __future__ import annotations

import math
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from riskmodel.screening.policy.coverage import check_schedules, check_thresholds
from riskmodel.screening.policy.definition import (
    CONDITIONS,
    MEASURES,
    MODALITIES,
    NO_INTERVAL,
    SCHEMA_VERSION,
    SUPPLEMENTAL,
    UPGRADES,
    Category,
    Policy,
    PolicyError,
    Schedule,
    Source,
    Threshold,
    Upgrade,
    Verification,
)
from riskmodel.screening.policy.interval import FULL_RISK, Interval

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["list_policies", "load_policy"]

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
    check_thresholds(policy, fail)
    check_schedules(policy, fail)
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
