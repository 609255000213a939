"""One page per woman: her risk curve over 1–5 years against the average for her age, her category,
and the recommendation with its rationale.

:func:`render_report` returns a self-contained HTML page (inline CSS and an inline SVG chart: no
network access, no external files); :func:`write_reports` writes one page per row, and optionally
a one-page PDF drawn with matplotlib (already a dependency; no other PDF library is needed).

The curve is the woman's own 1–5-year risk: the hybrid model's ``risk_1y`` … ``risk_5y``, or the
Gail model rerun on the cohort at 1 … 5 years; with neither, only the scored point is drawn (if its
horizon is at most 5 years). The average is the BCSC v2 average woman of her age and race
(:func:`riskmodel.screening.average_risk_curve`, ages 35–74).
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import date as _date
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.schema import COLUMNS, ColumnWarning, match_columns, validate
from riskmodel.screening.answers import carrier_gene, describe_answers
from riskmodel.screening.average import BCSC_AGES, average_risk_curve
from riskmodel.screening.fhir import SUPPORT_NOT_REPLACE, fhir_datetime, refusals
from riskmodel.screening.files import staged_into
from riskmodel.screening.measures import LIFETIME_AGE, gail_curve, real_numbers, resolve_measure
from riskmodel.screening.policy import MODALITIES, SUPPLEMENTAL, Policy
from riskmodel.screening.recommend import POLICY_ATTR, applied_policy, clinic_table
from riskmodel.screening.wording import STATUS_WORDS, Rationale, plain_caveat, plain_rationale
from riskmodel.survival import YEARS

__all__ = ["render_report", "risk_curves", "write_reports"]

_BLUE, _GREY = "#1f5fa8", "#777777"


def _get(row: pd.Series, name: str) -> Any:
    v = row.get(name, None)
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v


def risk_curves(results: pd.DataFrame, cohort: pd.DataFrame | None = None) -> np.ndarray:
    """Each woman's cumulative risk at 1 … 5 years, shape ``(n, 5)`` (NaN where unknown).

    From ``risk_1y`` … ``risk_5y`` when present; else, for rows scored by the Gail model, the
    Gail model rerun on ``cohort`` (or on ``results`` if it holds the cohort's columns), after
    checking that it reproduces the scored risk; else the scored risk at its horizon if that is
    1–5 whole years.
    """
    n = len(results)
    out = np.full((n, len(YEARS)), np.nan)
    ok = (results["status"].astype(str).to_numpy() == "ok") if "status" in results.columns else np.ones(n, bool)
    for j, k in enumerate(YEARS):
        if f"risk_{k}y" in results.columns:
            out[:, j] = real_numbers(results[f"risk_{k}y"])
    out[~ok] = np.nan
    todo = ok & np.isnan(out).all(axis=1)
    source = cohort if cohort is not None else (results if "age" in results.columns else None)
    if todo.any():
        curve, _ = gail_curve(results, todo, source)
        have = ~np.isnan(curve).all(axis=1)
        out[have] = curve[have]
        todo &= ~have
    if todo.any() and {"risk", "horizon"} <= set(results.columns):
        risk, horizon = real_numbers(results["risk"]), real_numbers(results["horizon"])
        for j, k in enumerate(YEARS):
            at = todo & (horizon == k)
            out[at, j] = risk[at]
    return out


def _nice_max(v: float) -> float:
    for step in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0):
        if v <= step:
            return step
    return 1.0


def _svg(curve: np.ndarray | None, average: np.ndarray | None) -> str:
    """An inline SVG line chart of cumulative risk (%) against years 0–5."""
    w, h, left, right, top, bottom = 560, 260, 56, 190, 14, 40
    pw, ph = w - left - right, h - top - bottom
    values = [v for arr in (curve, average) if arr is not None for v in arr if np.isfinite(v)]
    ymax = _nice_max(max(values) * 1.1 if values else 0.01)

    def xy(year: float, p: float) -> tuple[float, float]:
        return left + pw * year / 5.0, top + ph * (1 - p / ymax)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
             'aria-label="Cumulative risk of breast cancer over 5 years">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for i in range(5):
        p = ymax * i / 4
        _, y = xy(0, p)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{p * 100:.4g}%</text>')
    for year in range(6):
        x, _ = xy(year, 0)
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{year}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{h - 6}" font-size="11" text-anchor="middle">years from today'
                 "</text>")

    def line(arr: np.ndarray, color: str, dash: str, label: str, ly: float) -> None:
        pts = [(0.0, 0.0)] + [(float(k), float(v)) for k, v in zip(YEARS, arr, strict=True) if np.isfinite(v)]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(a, b) for a, b in pts))
        if len(pts) > 1:
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2" '
                         f'stroke-dasharray="{dash}"/>')
        for a, b in pts[1:]:
            x, y = xy(a, b)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{a:g} y: {b * 100:.2f}%'
                         "</title></circle>")
        lx = left + pw + 12
        parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{color}" stroke-width="2" '
                     f'stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{lx + 30}" y="{ly + 4}" font-size="11">{html.escape(label)}</text>')

    if average is not None:
        line(average, _GREY, "5,4", "average for her age", top + 36)
    if curve is not None and np.isfinite(curve).any():
        line(curve, _BLUE, "", "her risk", top + 14)
    parts.append("</svg>")
    return "\n".join(parts)


def _race_code(row: pd.Series) -> float | None:
    race = _get(row, "race")
    if race is None:
        return None
    checked = validate(pd.DataFrame({"age": [50.0], "race": [race]}))
    code = checked.column("race")[0]
    return None if math.isnan(code) else code


def _category_label(row: pd.Series, pol: dict[str, Any] | None) -> str:
    """The policy's label for her category (its id only when the policy carries no labels)."""
    cat = str(_get(row, "category"))
    labels = (pol or {}).get("categories") or {}
    return str(labels.get(cat, cat))


def _recommendation_text(row: pd.Series, pol: dict[str, Any] | None = None) -> tuple[str, str, str, Rationale]:
    """(category label, recommendation, chemoprevention, rationale in words)."""
    status = _get(row, "recommendation_status")
    if _get(row, "policy") is None:
        return ("not assessed", "no policy applied", "not assessed",
                Rationale("No screening policy was applied.", "", ""))
    if status != "ok" or not _get(row, "category"):
        why = _get(row, "recommendation_message") or _get(row, "message") or ""
        words = STATUS_WORDS.get(str(status), str(status))
        return (f"No category: {words}", f"No recommendation from this policy ({words}).", "not assessed",
                Rationale(plain_caveat(why) if why else "", "", ""))
    modality = MODALITIES.get(str(_get(row, "modality")), str(_get(row, "modality")))
    interval = _get(row, "interval_months")
    rec = modality[:1].upper() + modality[1:]
    if interval is not None:
        rec += f", every {float(interval):g} months"
    if _get(row, "supplemental"):
        rec += f", with supplemental {SUPPLEMENTAL.get(str(_get(row, 'supplemental')), _get(row, 'supplemental'))}"
    flag = str(_get(row, "chemoprevention_discussion")).lower()
    chemo = {"true": "discuss with her clinician", "false": "not indicated by the policy's threshold"}.get(
        flag, "not evaluated")
    return _category_label(row, pol), rec + ".", chemo, plain_rationale(str(_get(row, "rationale") or ""))


def _risk_text(row: pd.Series) -> str:
    """Her risk in words, or why it is not shown (the values FHIR would not export as final are not shown)."""
    risk, horizon, status = _get(row, "risk"), _get(row, "horizon"), _get(row, "status")
    if risk is None or status not in (None, "ok"):
        return f"not available ({status or 'no risk'}: {_get(row, 'message') or ''})"
    refused = refusals(row, _get(row, "age"))
    if refused:
        return f"not available ({refused[0].removeprefix('Not exported as a risk: ')})"
    return f"{float(risk) * 100:.2f}% " + ("to age 90" if _is_lifetime(row) else f"over {float(horizon):g} years")


def _is_lifetime(row: pd.Series) -> bool:
    age, horizon = _get(row, "age"), _get(row, "horizon")
    return age is not None and horizon is not None and abs(float(horizon) - (LIFETIME_AGE - float(age))) < 1e-6


def _row_policy(row: pd.Series, policy: str | os.PathLike[str] | Policy | None) -> dict[str, Any] | None:
    """The policy the row's recommendation came from (see :func:`riskmodel.screening.clinic_table`)."""
    if _get(row, "policy") is not None and _get(row, "recommendation_status") is None:
        raise ValueError("row is a row of recommend_screening's output, which holds no risk: pass a row of "
                         "add_recommendations(risks, cohort, policy), or use write_reports(recs, DIR, risks=risks)")
    return applied_policy(row, row.attrs.get(POLICY_ATTR), policy)


def _measure_lines(table: pd.DataFrame, gail_input: pd.DataFrame | None) -> list[dict[str, tuple[float, str]]]:
    """Per row, her five-year and lifetime risk: ``{"five_year": (p, where it came from, or why not), ...}``.

    The policy's own ``risk_used`` is taken where the policy used that measure; otherwise
    :func:`riskmodel.screening.measures.resolve_measure` finds it (a given column, the scored risk,
    or the Gail model rerun on ``gail_input`` after the consistency check); NaN where it cannot.
    """
    n = len(table)
    age = real_numbers(table["age"]) if "age" in table.columns else np.full(n, np.nan)
    usable = (table["status"].astype(str).to_numpy() == "ok") if "status" in table.columns else np.ones(n, bool)
    usable &= np.array([not refusals(r, _get(r, "age")) for _, r in table.iterrows()], dtype=bool)
    used = real_numbers(table["risk_used"]) if "risk_used" in table.columns else np.full(n, np.nan)
    measure = table["risk_measure"].astype(str).to_numpy() if "risk_measure" in table.columns else np.full(n, "")
    out: list[dict[str, tuple[float, str]]] = [{} for _ in range(n)]
    for name in ("five_year", "lifetime"):
        got = resolve_measure(table, name, age, usable & ~np.isnan(age), gail_input)
        for i in range(n):
            if measure[i] == name and np.isfinite(used[i]):
                out[i][name] = (float(used[i]), "the risk the policy compared with its thresholds")
            elif np.isfinite(got.value[i]):
                out[i][name] = (float(got.value[i]), str(got.source[i]))
            else:
                why = str(got.problem[i]) or "no valid risk for this row"
                out[i][name] = (math.nan, why)
    return out


def _cohort_rows(table: pd.DataFrame, cohort: pd.DataFrame | None) -> pd.DataFrame | None:
    """The cohort with canonical column names (what ``predict_risk`` read), or ``table`` when it holds the inputs."""
    if cohort is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ColumnWarning)  # the user was warned when the cohort was scored
            return match_columns(cohort).apply(cohort)
    return table if "age" in table.columns else None


def _own_answers(row: pd.Series) -> dict[str, Any]:
    """The canonical inputs a row of results carries itself (``predict --keep-input``)."""
    return {k: row[k] for k in COLUMNS if k in row.index and k != "exam_id"}


def _pct_or(value: float, why: str) -> str:
    return f"{value * 100:.2f}%" if np.isfinite(value) else f"not available ({why})"


@dataclass
class _Page:
    """Everything one woman's page says, as plain text (escaped when rendered)."""

    woman: str
    age: str
    date: str
    flags: list[str]
    facts: list[tuple[str, str]]
    why: str
    medication: str
    source: str
    caveats: list[str]
    answers: list[tuple[str, str]]
    curve: np.ndarray | None
    average: np.ndarray | None
    chart_note: str
    for_her: list[str]
    summary: dict[str, str] = field(default_factory=dict)  # the index page's columns
    overlays: dict[str, bytes] = field(default_factory=dict)  # view slot -> PNG of a saliency overlay


def _page(row: pd.Series, curve: np.ndarray | None, *, date: str | None, pol: dict[str, Any] | None,
          answers: pd.Series | dict[str, Any] | None, lines: dict[str, tuple[float, str]]) -> _Page:
    """Build one woman's page from her row, her 1–5-year curve, her answers and her risk lines."""
    answers = _own_answers(row) if answers is None else answers
    age = _get(row, "age")
    age_f = float(age) if age is not None else math.nan
    average = average_risk_curve(age_f, _race_code(row)) if age is not None else None
    category, rec, chemo, rationale = _recommendation_text(row, pol)
    rec_status = _get(row, "recommendation_status")
    placed = rec_status == "ok"
    title = pol["title"] if pol is not None else "no policy"
    measure = str(_get(row, "risk_measure") or "")
    gene = carrier_gene(answers)
    rec_message = str(_get(row, "recommendation_message") or "")
    carrier = gene is not None or "pathogenic variant (brca)" in rec_message
    variant = f"BRCA{gene}" if gene is not None else "BRCA1/2"

    flags = _flags(row, title, placed, carrier, variant, rationale, rec_status, rec_message)
    five, life = lines.get("five_year", (math.nan, "")), lines.get("lifetime", (math.nan, ""))
    facts = [("Risk", _risk_text(row))]
    if not (_get(row, "horizon") is not None and float(_get(row, "horizon")) == 5.0):
        facts.append(("Five-year risk", _pct_or(*five) + (" (this decided the recommendation)"
                                                             if placed and measure == "five_year"
                                                             and np.isfinite(five[0]) else "")))
    facts.append(("Lifetime risk (to age 90)", _pct_or(*life) + (" (this decided the recommendation)"
                                                                  if placed and measure == "lifetime"
                                                                  and np.isfinite(life[0]) else "")))
    facts.append(("Average woman of her age", f"{average[4] * 100:.2f}% over 5 years (BCSC v2 model, her age and race)"
                  if average is not None else f"not available (the BCSC v2 average covers ages {BCSC_AGES[0]}–"
                  f"{BCSC_AGES[1]})"))
    facts += [("Model", str(_get(row, "model") or "unknown")),
              ("Policy", f"{pol['title']}, version {pol['version']}" if pol is not None else "none"),
              ("Category", category), ("Recommendation", rec), ("Risk-reducing medication", chemo)]

    caveats = [plain_caveat(c) for c in rec_message.split("; ") if c.strip()] if placed else []
    if _get(row, "status") == "ok" and _get(row, "message"):
        caveats.append(plain_caveat(f"risk model: {_get(row, 'message')}"))

    has_curve = curve is not None and np.isfinite(curve).any()
    show_chart = not carrier  # no curve here accounts for a variant: the average line alone would reassure
    notes = []
    if not show_chart:
        notes.append(f"No chart: no risk estimate here accounts for her {variant} variant, and the average woman's "
                     "curve alone would look reassuring.")
    elif not has_curve:
        notes.append("Her own 1–5-year curve is not available (the model's risks at 1–5 years were not given and "
                     "could not be recomputed).")
    if show_chart and average is None:
        notes.append(f"The average line needs an age of {BCSC_AGES[0]}–{BCSC_AGES[1]} (the BCSC calculator's range).")
    elif show_chart:
        notes.append("Average: the BCSC v2 risk calculator's average woman of her age and race (Tice et al., J Clin "
                     "Oncol 2015; SEER 2000–2010), invasive breast cancer.")
    woman = str(_get(row, "id") if _get(row, "id") is not None else row.name)
    page = _Page(
        woman=woman, age=f"{age_f:g}" if age is not None else "unknown",
        date=date or _date.today().isoformat(), flags=flags, facts=facts, why=rationale.why,
        medication=rationale.medication, source=pol["citation"] if pol is not None else "none",
        caveats=caveats, answers=describe_answers(answers),
        curve=curve if (has_curve and show_chart) else None, average=average if show_chart else None,
        chart_note=" ".join(notes), for_her=_for_her(five[0], life[0], average, placed, rec, carrier, flags, title),
    )
    page.summary = {"five": f"{five[0] * 100:.2f}%" if np.isfinite(five[0]) else "—",
                    "lifetime": f"{life[0] * 100:.2f}%" if np.isfinite(life[0]) else "—",
                    "category": category, "recommendation": rec,
                    "flags": " ".join(f.split(":")[0] + "." for f in flags)}
    return page


def _flags(row: pd.Series, title: str, placed: bool, carrier: bool, variant: str, rationale: Rationale,
           rec_status: str | None, rec_message: str) -> list[str]:
    """What must be seen first: she is outside the guideline, or the guideline does not accept this model's risk."""
    flags = []
    if carrier and not placed:
        flags.append(f"Outside this guideline's scope: she carries a {variant} pathogenic variant, and {title} "
                     "gives no recommendation for carriers (or no model risk here covers one). Refer her for "
                     "high-risk assessment (genetics / high-risk breast clinic).")
    elif rec_status == "not_applicable":
        flags.append(f"Outside this guideline's scope: {plain_caveat(rec_message)} No recommendation from this "
                     "policy; follow the pathway for her condition.")
    elif rec_status == "out_of_range":
        flags.append(f"Outside this guideline's ages: {plain_caveat(rec_message)} No recommendation from this policy.")
    elif rec_status not in (None, "ok"):
        flags.append(f"No recommendation ({STATUS_WORDS.get(rec_status, rec_status)}): {plain_caveat(rec_message)}")
    if placed and rationale.caveat:
        flags.append(f"Not accepted by this guideline: {rationale.caveat} The recommendation below rests on that "
                     "risk; reassess her risk with a model the guideline accepts before acting on it.")
    return flags


def _for_her(five: float, life: float, average: np.ndarray | None, placed: bool, rec: str, carrier: bool,
             flags: list[str], title: str) -> list[str]:
    """A few sentences for the woman herself, in everyday words."""
    out = []
    if np.isfinite(five):
        text = (f"Your estimated chance of being diagnosed with breast cancer in the next 5 years is {five * 100:.1f}%"
                f" (about {max(round(five * 1000), 1 if five > 0 else 0)} in 1,000 women like you).")
        if average is not None:
            text += f" For an average woman of your age it is {average[4] * 100:.1f}%."
        out.append(text)
    if np.isfinite(life):
        out.append(f"Your estimated chance by age 90 is {life * 100:.1f}%.")
    if not out:
        out.append("We could not estimate your risk from the answers we have.")
    if carrier and not placed:
        out.append("Because you carry a change in a BRCA gene, this screening plan is not the right one for you: "
                   "your clinician will refer you to a specialist team for high-risk care.")
    elif placed:
        out.append(f"What we suggest, following {title}: {rec[:1].lower() + rec[1:]}")
        if any(f.startswith("Not accepted") for f in flags):
            out.append("Your clinician will check this with another way of estimating risk before arranging it.")
    else:
        out.append("This screening guideline does not give a plan for you; your clinician will discuss what is "
                   "right for you.")
    out.append("This is an estimate for women like you, not a diagnosis. Please talk it over with your clinician.")
    return out


def _html_rows(pairs: list[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)


def _html_list(items: list[str], cls: str) -> str:
    return "".join(f'<li class="{cls}">{html.escape(t)}</li>' for t in items)


def _html(page: _Page) -> str:
    """The page as self-contained HTML (every value escaped)."""
    from riskmodel.version import __version__

    flags = (f'<ul class="flags">{_html_list(page.flags, "flag")}</ul>' if page.flags else "")
    caveats = (f'<div class="box caveats"><strong>Caveats</strong><ul>{_html_list(page.caveats, "caveat")}</ul>'
               "</div>" if page.caveats else "")
    medication = (f"<p><strong>Risk-reducing medication:</strong> {html.escape(page.medication)}</p>"
                  if page.medication else "")
    values = {
        "woman": html.escape(page.woman), "age": html.escape(page.age), "date": html.escape(page.date),
        "version": html.escape(__version__), "flags": flags, "facts": _html_rows(page.facts),
        "why": html.escape(page.why), "medication": medication, "caveats": caveats,
        "answers": _html_rows(page.answers) if page.answers else "<tr><td>Her answers were not given with the "
                                                                   "results.</td></tr>",
        "curve": _svg(page.curve, page.average) if page.average is not None or page.curve is not None else "",
        "curve_note": html.escape(page.chart_note), "for_her": "".join(f"<p>{html.escape(t)}</p>"
                                                                        for t in page.for_her),
        "source": html.escape(page.source), "overlays": _overlays_html(page.overlays),
    }
    template = resources.files("riskmodel.screening").joinpath("templates").joinpath("report.html").read_text(
        encoding="utf-8")
    return Template(template).substitute(values)


def _overlays_html(overlays: dict[str, bytes]) -> str:
    """The saliency overlays of her exam, embedded as PNG data (the page stays one file), with what they mean."""
    if not overlays:
        return ""
    figures = "".join(
        f'<figure class="overlay"><img alt="saliency overlay, {html.escape(slot)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{html.escape(slot)}</figcaption></figure>'
        for slot, png in overlays.items())
    return ("<h2>Where the image model looked</h2>"
            f'<div class="overlays">{figures}</div>'
            '<p class="small">Grad-CAM maps of the image model that gave her risk: brighter areas changed its '
            "five-year risk most. They show what the model used, not where a cancer is; on the synthetic test bed "
            "they follow dense tissue more than masses (docs/explainability.md).</p>")


def exam_overlays(explanations: str | os.PathLike[str], exam_id: Any) -> dict[str, bytes]:
    """The PNG overlays ``riskmodel explain --out EXPLANATIONS`` wrote for exam ``exam_id`` (slot -> bytes).

    Empty when that exam was not explained or had no readable view.
    """
    from riskmodel.explain.output import overlays_for_report

    if exam_id is None or (isinstance(exam_id, float) and math.isnan(exam_id)):
        return {}
    return {slot: Path(path).read_bytes() for slot, path in overlays_for_report(explanations, str(exam_id)).items()}


def render_report(row: pd.Series, curve: np.ndarray | None = None, *, date: str | None = None,
                  policy: str | os.PathLike[str] | Policy | None = None,
                  answers: pd.Series | dict[str, Any] | None = None) -> str:
    """A self-contained HTML page for one woman.

    Args:
        row: one row of :func:`riskmodel.screening.add_recommendations`' output (plus ``id``,
            ``age`` and optionally ``race``); a plain ``predict_risk`` row works too.
        curve: her risk at 1 … 5 years, shape ``(5,)`` (from :func:`risk_curves`); ``None``: no line.
        date: the assessment date shown (default today); a FHIR date (``YYYY-MM-DD``), checked.
        policy: the policy that was applied (its title and source are cited); default: the one
            carried by the row's table (``attrs``). Never re-loaded by the id in the row.
        answers: her inputs (the cohort row that was scored, or a dict of canonical columns),
            echoed in words and used to recompute a Gail lifetime risk; default: the canonical
            columns the row itself holds.
    """
    pol = _row_policy(row, policy)
    date = fhir_datetime(date) if date is not None else None
    given = _own_answers(row) if answers is None else answers
    missing = {k: v for k, v in given.items() if k in ("id", "age", "race") and k not in row.index}
    row = pd.concat([row, pd.Series(missing, dtype=object)]) if missing else row  # as clinic_table does for a table
    one = row.to_frame().T.infer_objects()
    given_frame = pd.DataFrame([dict(given.items())], index=one.index)
    gail_input = _cohort_rows(one, given_frame) if len(given_frame.columns) else None
    lines = _measure_lines(one, gail_input)[0]
    return _html(_page(row, curve, date=date, pol=pol, answers=given, lines=lines))


def write_reports(results: pd.DataFrame, out_dir: str | os.PathLike[str], *, cohort: pd.DataFrame | None = None,
                  pdf: bool = False, date: str | None = None, risks: pd.DataFrame | None = None,
                  policy: str | os.PathLike[str] | Policy | None = None, index: bool = False,
                  explanations: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``OUT_DIR/<id>.html`` (and ``<id>.pdf`` with ``pdf=True``) for every row.

    Args:
        results: the output of :func:`riskmodel.screening.add_recommendations`; or of
            :func:`riskmodel.recommend_screening` together with ``risks=``; or of
            ``predict_risk`` alone. ``id``, ``age`` and ``race`` are read from it or from
            ``cohort``. Anything else raises ``ValueError`` saying what to pass.
        out_dir: folder (created); files are named by ``id`` (or ``row00000`` … when ids are
            missing, unsafe, repeated, or ``index``/``reports``). The pages are written into a
            temporary folder next to it and moved in only when all are written: a failure leaves
            nothing behind.
        cohort: the table that was scored (same index): her answers are echoed from it, and a
            Gail lifetime risk recomputed from it.
        pdf: also write a PDF per woman (matplotlib): the clinician's page, then a page for her.
        date: the assessment date shown (default today); a FHIR date (``YYYY-MM-DD``), checked.
        risks: the table of risks, when ``results`` is the output of ``recommend_screening``.
        policy: the policy that was applied; default: the one carried by ``results`` (set by
            ``recommend_screening``). Needed for a table read back from a file.
        index: also write ``index.html`` (a table of the women with links to their pages) and,
            with ``pdf=True``, ``reports.pdf`` (the index, then every woman's pages, in row order).
        explanations: the folder ``riskmodel explain --out`` wrote for these women's exams: each
            page whose row (or cohort row) has an ``exam_id`` that was explained shows its Grad-CAM
            overlays (HTML pages only).

    Returns:
        The paths written, in row order (HTML, then PDF, per woman), then ``index.html`` and
        ``reports.pdf`` when written.

    Example (the documented path: risks, then recommendations, then pages):

    >>> import pandas as pd, riskmodel, tempfile
    >>> cohort = pd.DataFrame({"id": ["A1"], "age": [52.0], "race": ["white"]})
    >>> risks = riskmodel.predict_risk(cohort)
    >>> recs = riskmodel.recommend_screening(risks, "uspstf2024", cohort=cohort)
    >>> [p.name for p in write_reports(recs, tempfile.mkdtemp(), risks=risks, cohort=cohort, date="2026-11-21")]
    ['A1.html']
    """
    table, pol = clinic_table(results, risks=risks, cohort=cohort, policy=policy)
    date = fhir_datetime(date) if date is not None else None
    curves = risk_curves(table, cohort)
    gail_input = _cohort_rows(table, cohort)
    lines = _measure_lines(table, gail_input)
    folder = Path(out_dir)
    names = _file_names(table)
    pages = []
    for i, (_, row) in enumerate(table.iterrows()):
        answers = cohort.iloc[i] if cohort is not None else None
        pages.append(_page(row, curves[i], date=date, pol=pol, answers=answers, lines=lines[i]))
        if explanations is not None:
            exam = _get(row, "exam_id")
            if exam is None and answers is not None:
                exam = _get(answers, "exam_id")
            pages[-1].overlays = exam_overlays(explanations, exam)
    written = [folder / f"{name}{suffix}" for name in names for suffix in ((".html", ".pdf") if pdf else (".html",))]
    with staged_into(folder) as tmp:
        for i, (name, (_, row)) in enumerate(zip(names, table.iterrows(), strict=True)):
            (tmp / f"{name}.html").write_text(_html(pages[i]), encoding="utf-8")
            if pdf:
                _write_pdf(row, curves[i], tmp / f"{name}.pdf", date=date, policy=pol, page=pages[i])
        if index:
            (tmp / "index.html").write_text(_index_html(pages, names, pol, date), encoding="utf-8")
            written.append(folder / "index.html")
            if pdf:
                _write_combined_pdf(pages, tmp / "reports.pdf", pol)
                written.append(folder / "reports.pdf")
    return written


_RESERVED = ("index", "reports")  # the index page and the combined PDF


def _index_html(pages: list[_Page], names: list[str], pol: dict[str, Any] | None, date: str | None) -> str:
    """The day's list: one row per woman, in row order, linking to her page."""
    from riskmodel.version import __version__

    head = ("#", "Woman", "Age", "Five-year risk", "Lifetime risk", "Category", "Recommendation", "Flags")
    rows = []
    for k, (page, name) in enumerate(zip(pages, names, strict=True), start=1):
        cells = [str(k), f'<a href="{html.escape(name)}.html">{html.escape(page.woman)}</a>', html.escape(page.age),
                 *(html.escape(page.summary[c]) for c in ("five", "lifetime", "category", "recommendation")),
                 f'<span class="flag">{html.escape(page.summary["flags"])}</span>']
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    policy = f"{pol['title']}, version {pol['version']}" if pol is not None else "no policy"
    return _INDEX.substitute(
        date=html.escape(date or _date.today().isoformat()), policy=html.escape(policy), n=len(pages),
        version=html.escape(__version__), head="".join(f"<th>{html.escape(h)}</th>" for h in head),
        rows="\n".join(rows), flagged=sum(bool(p.flags) for p in pages), note=html.escape(SUPPORT_NOT_REPLACE))


_INDEX = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Breast cancer risk and screening: list of $n women</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; color: #1b1b1b; margin: 2em; }
  table { border-collapse: collapse; font-size: 0.92em; }
  th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
  th { background: #f1f3f6; }
  .flag { color: #8a1c1c; font-weight: 600; }
  .meta { color: #555; }
</style>
</head>
<body>
<h1>Breast cancer risk and screening</h1>
<p class="meta">$n women &middot; policy: $policy &middot; assessed $date &middot; riskmodel $version &middot;
$flagged flagged (see the Flags column)</p>
<table>
<tr>$head</tr>
$rows
</table>
<p><strong>$note</strong></p>
</body>
</html>
""")


def _file_names(table: pd.DataFrame) -> list[str]:
    ids = [str(v) for v in table["id"]] if "id" in table.columns else []
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", v).strip("._") for v in ids]
    if ids and all(safe) and len(set(safe)) == len(safe) and not {v.lower() for v in safe} & set(_RESERVED):
        return safe
    return [f"row{i:05d}" for i in range(len(table))]


def _write_pdf(row: pd.Series, curve: np.ndarray, path: Path, *, date: str | None,
               policy: dict[str, Any] | None = None, page: _Page | None = None) -> Path:
    """The same content as the HTML page on A4 pages (the clinician's, then hers), drawn with matplotlib.

    Text from the data (ids, messages, a policy's words) is drawn as it is: matplotlib's math
    parser and TeX are off, so ``$...$`` in an id is neither typeset nor an error.
    """
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    if page is None:
        page = _page(row, curve, date=date, pol=policy, answers=None, lines={})
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        with PdfPages(path) as out:
            for fig in _pdf_figures(page):
                out.savefig(fig)
    return path


def _write_combined_pdf(pages: list[_Page], path: Path, pol: dict[str, Any] | None) -> Path:
    """One PDF for the day's list: the index, then every woman's pages, in row order."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        with PdfPages(path) as out:
            for fig in _pdf_index(pages, pol):
                out.savefig(fig)
            for page in pages:
                for fig in _pdf_figures(page):
                    out.savefig(fig)
    return path


class _Flow:
    """Text laid out down A4 pages (8.27 × 11.69 in), a new page when one is full."""

    def __init__(self) -> None:
        self.figures: list = []
        self.y = 0.0
        self.new_page()

    def new_page(self) -> None:
        from matplotlib.backends.backend_pdf import FigureCanvasPdf
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8.27, 11.69))
        FigureCanvasPdf(fig)
        self.figures.append(fig)
        self.y = 0.95

    def text(self, text: str, *, size: float = 9.5, x: float = 0.08, width: int = 100, color: str = "#1b1b1b",
             weight: str = "normal", gap: float = 0.004) -> None:
        import textwrap

        step = size / 11.69 / 72 * 1.35
        for part in textwrap.wrap(text, width) or [""]:
            if self.y < 0.06:
                self.new_page()
            self.figures[-1].text(x, self.y, part, fontsize=size, color=color, weight=weight, va="top")
            self.y -= step
        self.y -= gap

    def pairs(self, pairs: list[tuple[str, str]], size: float = 9.0) -> None:
        for label, value in pairs:
            y = self.y
            self.text(label, size=size, weight="bold", width=34, gap=0)
            after, self.y = self.y, y
            self.text(value, size=size, x=0.42, width=60, gap=0)
            self.y = min(self.y, after) - 0.002


def _pdf_figures(page: _Page) -> list:
    """The PDF pages of one woman: her clinician's page (with the chart), then a page for her."""
    flow = _Flow()
    flow.text("Breast cancer risk and screening", size=16, weight="bold")
    flow.text(f"{page.woman} · age {page.age} · assessed {page.date}", size=10, gap=0.01)
    for flag in page.flags:
        flow.text("⚠ " + flag, size=10, color="#8a1c1c", weight="bold", width=90, gap=0.006)
    flow.pairs(page.facts)
    flow.y -= 0.008
    flow.text("Why: " + page.why, size=8.8, width=110)
    if page.medication:
        flow.text("Risk-reducing medication: " + page.medication, size=8.8, width=110)
    for caveat in page.caveats:
        flow.text("Caveat: " + caveat, size=8.8, width=110, color="#6b4a00")
    if page.curve is not None or page.average is not None:
        if flow.y < 0.40:
            flow.new_page()
        _pdf_chart(flow.figures[-1], page, top=flow.y)
        flow.y -= 0.34
    flow.text(page.chart_note, size=7.5, width=130, color="#444444")
    flow.text(f"Policy source: {page.source}", size=7.5, width=130, color="#444444")
    flow.text(SUPPORT_NOT_REPLACE, size=9.5, weight="bold")
    flow.new_page()
    flow.text(f"For {page.woman}: your result in plain words", size=14, weight="bold", gap=0.01)
    for sentence in page.for_her:
        flow.text(sentence, size=11, width=80, gap=0.008)
    flow.y -= 0.01
    flow.text("Your answers", size=12, weight="bold")
    flow.pairs(page.answers or [("Answers", "not given with the results")])
    return flow.figures


def _pdf_chart(fig, page: _Page, top: float) -> None:
    ax = fig.add_axes((0.12, top - 0.27, 0.76, 0.23))
    if page.average is not None:
        ax.plot([0, *YEARS], [0, *(page.average * 100)], "--", color=_GREY, label="average for her age (BCSC v2)")
    if page.curve is not None:
        k = [0] + [y for y, v in zip(YEARS, page.curve, strict=True) if np.isfinite(v)]
        v = [0] + [p * 100 for p in page.curve if np.isfinite(p)]
        ax.plot(k, v, "-o", color=_BLUE, label="her risk")
    ax.set_title("Her risk over the next 5 years, against the average for her age", fontsize=9.5)
    ax.set_xlabel("years from today", fontsize=8)
    ax.set_ylabel("cumulative risk (%)", fontsize=8)
    ax.set_xlim(0, 5)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)


def _pdf_index(pages: list[_Page], pol: dict[str, Any] | None) -> list:
    flow = _Flow()
    policy = f"{pol['title']}, version {pol['version']}" if pol is not None else "no policy"
    flow.text("Breast cancer risk and screening: the day's list", size=14, weight="bold")
    flow.text(f"{len(pages)} women · policy: {policy}", size=9.5, gap=0.01)
    for k, page in enumerate(pages, start=1):
        s = page.summary
        flow.text(f"{k}. {page.woman} (age {page.age}): five-year {s['five']}, lifetime {s['lifetime']}; "
                  f"{s['category']}; {s['recommendation']}" + (f" FLAG: {s['flags']}" if s["flags"] else ""),
                  size=8.5, width=125, color="#8a1c1c" if s["flags"] else "#1b1b1b", gap=0.002)
    return flow.figures
