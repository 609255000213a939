"""Plain-language wording for the per-woman report: the "Why" text, the caveats, the flags shown at the
top of the page, and a short version for the woman herself.

A recommendation's ``rationale`` (:func:`riskmodel.recommend_screening`) is exact but written in
interval notation (``five-year risk 2.10% is in [1.67%, 6%)``); :func:`plain_rationale` says the
same in words (``her five-year risk, 2.10%, is at or above 1.67% and below 6%``) and separates the
model caveat and the risk-reducing-medication sentence it carries.

>>> plain_rationale("MyPeBS: five-year risk 2.10% is in [1.67%, 6%) (from the scored risk, model gail), "
...                 "so 'High risk'. Screening mammography every year. Source: MyPeBS trial.").why
"MyPeBS: her five-year risk, 2.10%, is at or above 1.67% and below 6% (from the scored risk, Gail model), so she \
is in the category 'High risk'. Screening mammography every year. Source: MyPeBS trial."
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CAVEAT_MARK", "MEDICATION_MARK", "STATUS_WORDS", "Rationale", "plain_caveat", "plain_rationale"]

#: What a recommendation's ``status`` means, said to a clinician (the heading of a row without one).
STATUS_WORDS = {
    "out_of_range": "outside the ages this guideline covers",
    "not_applicable": "outside this guideline's scope",
    "no_risk": "no usable risk estimate",
    "invalid": "a value could not be used",
    "inconsistent": "the cohort given does not reproduce the scored risk",
    "no_reference": "too few women of her age to compare her with",
}
#: Where a rationale's model caveat and its risk-reducing-medication sentence begin.
CAVEAT_MARK, MEDICATION_MARK = " Caveat: ", " Risk-reducing medication: "

_NUMBER = r"(-?\d+(?:\.\d+)?|inf)"
_INTERVAL = rf"([\[(])\s*{_NUMBER}(%?)\s*,\s*{_NUMBER}(%?)\s*([\])])"
_RISK_IN = re.compile(rf"(five-year|ten-year|lifetime) risk (\d+(?:\.\d+)?%) is in {_INTERVAL}")
_AGE_IN = re.compile(rf"\bage (\d+(?:\.\d+)?) is in {_INTERVAL}")
_AT_AGES = re.compile(rf" at ages {_INTERVAL}")
_AGED = re.compile(rf"\baged {_INTERVAL}")
_FROM_MODEL = re.compile(r"\(from ([^()]*?), model ([A-Za-z0-9_.-]+)\)")
_SO_CATEGORY = re.compile(r", so '(.+?)'\.(?= |$)")


@dataclass(frozen=True)
class Rationale:
    """A rationale split into the reason (``why``), the model caveat and the medication sentence ("" if none)."""

    why: str
    caveat: str
    medication: str


def _risk_words(lo_br: str, lo: str, lo_pct: str, hi: str, hi_pct: str, hi_br: str) -> str:
    lo_t, hi_t = f"{lo}{lo_pct}", f"{hi}{hi_pct}"
    if float(lo) == 0 and lo_br == "[":
        return ("below the " if hi_br == ")" else "at or below the ") + f"{hi_t} threshold"
    if float(hi) >= (100 if hi_pct else 1):
        return ("at or above the " if lo_br == "[" else "above the ") + f"{lo_t} threshold"
    above = ("at or above " if lo_br == "[" else "above ") + lo_t
    return f"{above} and " + ("below " if hi_br == ")" else "at or below ") + hi_t


def _age_words(lo_br: str, lo: str, lo_pct: str, hi: str, hi_pct: str, hi_br: str) -> str:
    start = ("from " if lo_br == "[" else "over ") + lo
    if hi == "inf":
        return f"{lo} or older" if lo_br == "[" else f"over {lo}"
    return f"{start} to {'under ' if hi_br == ')' else ''}{hi}"


def plain_rationale(text: str) -> Rationale:
    """``text`` (a ``rationale``) in words, with its caveat and medication sentence split off.

    The policy's thresholds and ages are said as words ("at or above 1.67% and below 6%",
    "from 40 to under 75"); the numbers are not changed. Text in another form is kept as it is.
    """
    medication = caveat = ""
    if MEDICATION_MARK in text:
        text, medication = text.split(MEDICATION_MARK, 1)
    if CAVEAT_MARK in text:
        text, caveat = text.split(CAVEAT_MARK, 1)
    return Rationale(_words(text), caveat.strip(), _words(medication))


def _words(text: str) -> str:
    text = _RISK_IN.sub(lambda m: f"her {m[1]} risk, {m[2]}, is {_risk_words(*m.groups()[2:])}", text)
    text = _AGE_IN.sub(lambda m: f"her age, {m[1]}, is {_age_words(*m.groups()[1:])}", text)
    text = _AT_AGES.sub(lambda m: f" for ages {_age_words(*m.groups())}", text)
    text = _AGED.sub(lambda m: f"aged {_age_words(*m.groups())}", text)
    text = _FROM_MODEL.sub(lambda m: f"(from {m[1]}, {m[2].capitalize() if m[2] == 'gail' else m[2]} model)", text)
    return _SO_CATEGORY.sub(lambda m: f", so she is in the category '{m[1]}'.", text).strip()


def plain_caveat(text: str) -> str:
    """One caveat of a recommendation's ``message`` in words, starting with a capital letter."""
    text = text.strip()
    if text.startswith("brca unknown"):
        return ("BRCA unknown: carrier rule not applied (she was treated as not a known carrier of a BRCA1/2 "
                "pathogenic variant).")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
