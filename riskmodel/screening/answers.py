"""Her answers (the canonical inputs) echoed in plain language, for the per-woman report.

:func:`describe_answers` reads one woman's inputs (a row of the cohort, in any spelling
:func:`riskmodel.schema.match_columns` accepts), codes them with the same schema rules as
``predict_risk`` (:func:`riskmodel.schema.validate`) and returns ``(question, answer)`` pairs in
words. A value given but not usable is echoed as given, with the schema's message.

>>> rows = describe_answers({"age": 52, "race": "white", "nulliparous": True, "density": "c", "brca": "brca1"})
>>> dict(rows)["First live birth"], dict(rows)["Breast density (BI-RADS)"], dict(rows)["BRCA1/2 test"]
('none (no live birth)', 'c: heterogeneously dense', 'BRCA1 pathogenic variant')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from riskmodel.schema import COLUMNS, SchemaError, match_columns, validate

__all__ = ["ANSWER_FIELDS", "carrier_gene", "describe_answers"]

_RACE_WORDS = {1: "White", 2: "African American / Black", 3: "Hispanic, born in the US", 4: "Other or unknown",
               5: "Hispanic, born outside the US", 6: "Chinese", 7: "Japanese", 8: "Filipino",
               9: "Native Hawaiian", 10: "Other Pacific Islander", 11: "Other Asian"}
_DENSITY_WORDS = {1: "a: almost entirely fatty", 2: "b: scattered fibroglandular density",
                  3: "c: heterogeneously dense", 4: "d: extremely dense"}
_BRCA_WORDS = {0: "negative (no pathogenic variant found)", 1: "BRCA1 pathogenic variant",
               2: "BRCA2 pathogenic variant"}
_UNKNOWN = "not given"


def _years(v: float) -> str:
    return f"{v:g} years"


def _count(v: float) -> str:
    return f"{v:g}"


def _yes_no(v: float) -> str:
    return "yes" if v == 1 else "no"


def _prs(v: float) -> str:
    return f"{v:+.2f} SD from the population mean"


#: The canonical columns echoed, in order, with the question asked and how a coded value is said.
ANSWER_FIELDS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("age", "Age", _years),
    ("race", "Race/ethnicity", lambda v: _RACE_WORDS.get(int(v), f"code {v:g}")),
    ("age_at_menarche", "Age at first menstrual period", _years),
    ("age_at_first_birth", "First live birth", lambda v: f"at age {v:g}"),
    ("first_degree_relatives", "Mother, sisters or daughters with breast cancer", _count),
    ("n_biopsies", "Breast biopsies", _count),
    ("atypical_hyperplasia", "Atypical hyperplasia on a biopsy", _yes_no),
    ("density", "Breast density (BI-RADS)", lambda v: _DENSITY_WORDS.get(int(v), f"code {v:g}")),
    ("brca", "BRCA1/2 test", lambda v: _BRCA_WORDS.get(int(v), f"code {v:g}")),
    ("prs", "Polygenic risk score", _prs),
    ("prior_breast_cancer", "Earlier invasive breast cancer", _yes_no),
    ("prior_dcis_or_lcis", "Earlier DCIS or LCIS", _yes_no),
    ("chest_radiation", "Chest radiation therapy (e.g. for Hodgkin lymphoma)", _yes_no),
)


def _one_row(answers: pd.Series | Mapping[str, Any]) -> pd.DataFrame:
    """Her answers as a one-row frame with canonical column names (only the canonical columns kept)."""
    values = dict(answers.items()) if isinstance(answers, pd.Series) else dict(answers)
    frame = pd.DataFrame({str(k): [v] for k, v in values.items()})
    frame = match_columns(frame).apply(frame)
    return frame[[c for c in frame.columns if c in COLUMNS and c != "exam_id"]]


def _blank(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not
                                                                                  v.strip())


def describe_answers(answers: pd.Series | Mapping[str, Any]) -> list[tuple[str, str]]:
    """Her inputs as ``(question, answer)`` pairs in plain language, in :data:`ANSWER_FIELDS` order.

    Args:
        answers: one woman's inputs (a cohort row or a dict); other keys are ignored. A column
            she was not asked about (absent) is left out; one left empty says "not given".

    Returns:
        A list of pairs; empty when none of the canonical inputs is present.
    """
    frame = _one_row(answers)
    present = set(frame.columns) | ({"age_at_first_birth"} if "nulliparous" in frame.columns else set())
    if "age" not in frame.columns:
        frame = frame.assign(age=[math.nan])  # validate() needs the column; it is not echoed
    checked, unusable = _validated(frame)
    problems = str(checked.message[0]).split("; ") if not checked.ok[0] else []
    out: list[tuple[str, str]] = []
    for name, question, words in ANSWER_FIELDS:
        if name not in present:
            continue
        raw = frame[name].iat[0] if name in frame.columns else None
        if name in unusable:
            out.append((question, f"{raw!s} (not usable: {unusable[name]})"))
            continue
        code = checked.column(name)[0]
        rule = "; ".join(p for p in problems if p.startswith((f"{name}=", f"{name}:", f"{name} ")))
        if rule:
            answer = f"{raw!s} (not usable: {rule})"
        elif name == "age_at_first_birth" and checked.column("nulliparous")[0] == 1:
            answer = "none (no live birth)"
        elif not math.isnan(code):
            answer = words(float(code))
        elif _blank(raw):
            answer = _UNKNOWN
        else:
            answer = f"{raw!s} (not usable)"
        out.append((question, answer))
    return out


def _validated(frame: pd.DataFrame):
    """``validate(frame)``; a column the schema rejects as a whole (e.g. text where a number is needed) is
    set unknown and its rule returned in ``{column: message}``, so that the other answers are still coded."""
    unusable: dict[str, str] = {}
    for _ in range(len(frame.columns) + 1):
        try:
            return validate(frame), unusable
        except SchemaError as exc:
            if exc.column not in frame.columns or exc.column in unusable:
                raise
            unusable[exc.column] = exc.rule
            frame = frame.assign(**{exc.column: [math.nan]})
    raise RuntimeError("unreachable: every column was set unknown")


def carrier_gene(answers: pd.Series | Mapping[str, Any] | None) -> int | None:
    """1 (BRCA1) or 2 (BRCA2) when her answers say she carries a pathogenic variant, else ``None``."""
    if answers is None:
        return None
    frame = _one_row(answers)
    if "brca" not in frame.columns:
        return None
    code = _validated(frame.assign(age=[50.0]))[0].column("brca")[0]
    return int(code) if code in (1.0, 2.0) else None
