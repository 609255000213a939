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

import html
import math
import os
import re
from datetime import date as _date
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.schema import validate
from riskmodel.screening.average import BCSC_AGES, average_risk_curve
from riskmodel.screening.fhir import SUPPORT_NOT_REPLACE, fhir_datetime, refusals
from riskmodel.screening.files import staged_into
from riskmodel.screening.measures import gail_curve, real_numbers
from riskmodel.screening.policy import MODALITIES, SUPPLEMENTAL, Policy
from riskmodel.screening.recommend import POLICY_ATTR, applied_policy, clinic_table
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
    w, h, left, right, top, bottom = 520, 260, 56, 150, 14, 40
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


def _recommendation_text(row: pd.Series) -> tuple[str, str, str, str]:
    """(category, recommendation, chemoprevention, rationale) as plain text."""
    status = _get(row, "recommendation_status")
    if _get(row, "policy") is None:
        return "not assessed", "no policy applied", "not assessed", "No screening policy was applied."
    if status != "ok" or not _get(row, "category"):
        why = _get(row, "recommendation_message") or _get(row, "message") or ""
        return ("none", f"No recommendation ({status}).", "not assessed", why)
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
    return str(_get(row, "category")), rec + ".", chemo, str(_get(row, "rationale") or "")


def _risk_text(row: pd.Series) -> str:
    """Her risk in words, or why it is not shown (the values FHIR would not export as final are not shown)."""
    risk, horizon, status = _get(row, "risk"), _get(row, "horizon"), _get(row, "status")
    if risk is None or status not in (None, "ok"):
        return f"not available ({status or 'no risk'}: {_get(row, 'message') or ''})"
    refused = refusals(row, _get(row, "age"))
    if refused:
        return f"not available ({refused[0].removeprefix('Not exported as a risk: ')})"
    age = _get(row, "age")
    lifetime = age is not None and abs(float(horizon) - (90 - float(age))) < 1e-6
    return f"{float(risk) * 100:.2f}% " + ("to age 90" if lifetime else f"over {float(horizon):g} years")


def _row_policy(row: pd.Series, policy: str | os.PathLike[str] | Policy | None) -> dict[str, str] | None:
    """The policy the row's recommendation came from (see :func:`riskmodel.screening.clinic_table`)."""
    if _get(row, "policy") is not None and _get(row, "recommendation_status") is None:
        raise ValueError("row is a row of recommend_screening's output, which holds no risk: pass a row of "
                         "add_recommendations(risks, cohort, policy), or use write_reports(recs, DIR, risks=risks)")
    return applied_policy(row, row.attrs.get(POLICY_ATTR), policy)


def render_report(row: pd.Series, curve: np.ndarray | None = None, *, date: str | None = None,
                  policy: str | os.PathLike[str] | Policy | None = None) -> str:
    """A self-contained HTML page for one woman.

    Args:
        row: one row of :func:`riskmodel.screening.add_recommendations`' output (plus ``id``,
            ``age`` and optionally ``race``); a plain ``predict_risk`` row works too.
        curve: her risk at 1 … 5 years, shape ``(5,)`` (from :func:`risk_curves`); ``None``: no line.
        date: the assessment date shown (default today); a FHIR date (``YYYY-MM-DD``), checked.
        policy: the policy that was applied (its title and source are cited); default: the one
            carried by the row's table (``attrs``). Never re-loaded by the id in the row.
    """
    from riskmodel.version import __version__

    pol = _row_policy(row, policy)
    date = fhir_datetime(date) if date is not None else _date.today().isoformat()

    age = _get(row, "age")
    age_f = float(age) if age is not None else math.nan
    average = average_risk_curve(age_f, _race_code(row)) if age is not None else None
    risk_text = _risk_text(row)
    category, rec, chemo, rationale = _recommendation_text(row)
    policy_text, source = "none", "none"
    if pol is not None:
        policy_text = f"{pol['title']}, version {pol['version']}"
        source = pol["citation"]
    has_curve = curve is not None and np.isfinite(curve).any()
    notes = []
    if not has_curve:
        notes.append("Her own 1–5-year curve is not available (the model's risks at 1–5 years were not given and "
                     "could not be recomputed).")
    if average is None:
        notes.append(f"The average line needs an age of {BCSC_AGES[0]}–{BCSC_AGES[1]} (the BCSC calculator's range).")
    else:
        notes.append("Average: the BCSC v2 risk calculator's average woman of her age and race (Tice et al., J Clin "
                     "Oncol 2015; SEER 2000–2010), invasive breast cancer.")
    values = {
        "woman": html.escape(str(_get(row, "id") if _get(row, "id") is not None else row.name)),
        "age": html.escape(f"{age_f:g}" if age is not None else "unknown"),
        "date": html.escape(date),
        "version": html.escape(__version__),
        "risk_text": html.escape(risk_text),
        "model": html.escape(str(_get(row, "model") or "unknown")),
        "policy_text": html.escape(policy_text),
        "category": html.escape(category),
        "recommendation": html.escape(rec),
        "chemoprevention": html.escape(chemo),
        "rationale": html.escape(rationale),
        "curve": _svg(curve if has_curve else None, average),
        "curve_note": html.escape(" ".join(notes)),
        "source": html.escape(source),
    }
    template = resources.files("riskmodel.screening").joinpath("templates").joinpath("report.html").read_text(
        encoding="utf-8")
    return Template(template).substitute(values)


def _file_names(table: pd.DataFrame) -> list[str]:
    ids = [str(v) for v in table["id"]] if "id" in table.columns else []
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", v).strip("._") for v in ids]
    if ids and all(safe) and len(set(safe)) == len(safe):
        return safe
    return [f"row{i:05d}" for i in range(len(table))]


def write_reports(results: pd.DataFrame, out_dir: str | os.PathLike[str], *, cohort: pd.DataFrame | None = None,
                  pdf: bool = False, date: str | None = None, risks: pd.DataFrame | None = None,
                  policy: str | os.PathLike[str] | Policy | None = None) -> list[Path]:
    """Write ``OUT_DIR/<id>.html`` (and ``<id>.pdf`` with ``pdf=True``) for every row.

    Args:
        results: the output of :func:`riskmodel.screening.add_recommendations`; or of
            :func:`riskmodel.recommend_screening` together with ``risks=``; or of
            ``predict_risk`` alone. ``id``, ``age`` and ``race`` are read from it or from
            ``cohort``. Anything else raises ``ValueError`` saying what to pass.
        out_dir: folder (created); files are named by ``id`` (or ``row00000`` … when ids are
            missing, unsafe or repeated). The pages are written into a temporary folder next to
            it and moved in only when all are written: a failure leaves nothing behind.
        cohort: the table that was scored (same index).
        pdf: also write a one-page PDF per woman (matplotlib).
        date: the assessment date shown (default today); a FHIR date (``YYYY-MM-DD``), checked.
        risks: the table of risks, when ``results`` is the output of ``recommend_screening``.
        policy: the policy that was applied; default: the one carried by ``results`` (set by
            ``recommend_screening``). Needed for a table read back from a file.

    Returns:
        The paths written, in row order (HTML, then PDF, per woman).

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
    folder = Path(out_dir)
    names = _file_names(table)
    with staged_into(folder) as tmp:
        for i, (name, (_, row)) in enumerate(zip(names, table.iterrows(), strict=True)):
            (tmp / f"{name}.html").write_text(render_report(row, curves[i], date=date, policy=pol), encoding="utf-8")
            if pdf:
                _write_pdf(row, curves[i], tmp / f"{name}.pdf", date=date, policy=pol)
    return [folder / f"{name}{suffix}" for name in names for suffix in ((".html", ".pdf") if pdf else (".html",))]


def _write_pdf(row: pd.Series, curve: np.ndarray, path: Path, *, date: str | None,
               policy: dict[str, str] | None = None) -> Path:
    """The same content as the HTML page on one A4 page, drawn with matplotlib's PDF backend.

    Text from the data (ids, messages, a policy's words) is drawn as it is: matplotlib's math
    parser and TeX are off, so ``$...$`` in an id is neither typeset nor an error.
    """
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        fig = _pdf_figure(row, curve, date=date, policy=policy)
        fig.savefig(path, format=path.suffix.lstrip(".") or "pdf")
    return path


def _pdf_figure(row: pd.Series, curve: np.ndarray, *, date: str | None, policy: dict[str, str] | None):
    """The PDF page as a matplotlib ``Figure`` (A4, 8.27 × 11.69 in); call inside ``_write_pdf``'s rc_context."""
    import textwrap

    from matplotlib.backends.backend_pdf import FigureCanvasPdf
    from matplotlib.figure import Figure

    age = _get(row, "age")
    age_f = float(age) if age is not None else math.nan
    average = average_risk_curve(age_f, _race_code(row)) if age is not None else None
    category, rec, chemo, rationale = _recommendation_text(row)
    fig = Figure(figsize=(8.27, 11.69))
    FigureCanvasPdf(fig)
    woman = _get(row, "id") if _get(row, "id") is not None else row.name
    fig.text(0.08, 0.95, "Breast cancer risk and screening", fontsize=16, weight="bold")
    fig.text(0.08, 0.925, f"{woman} · age {age_f:g} · assessed {date or _date.today().isoformat()}", fontsize=10)
    lines = [
        ("Risk", _risk_text(row)),
        ("Model", str(_get(row, "model") or "unknown")),
        ("Policy", f"{policy['title']}, version {policy['version']}" if policy is not None else "none"),
        ("Category", category),
        ("Recommendation", rec),
        ("Risk-reducing medication", chemo),
    ]
    y = 0.89
    for label, text in lines:
        fig.text(0.08, y, label, fontsize=10, weight="bold")
        wrapped = textwrap.wrap(text, 64) or [""]
        for k, part in enumerate(wrapped):
            fig.text(0.36, y - 0.016 * k, part, fontsize=10)
        y -= 0.022 + 0.016 * (len(wrapped) - 1)
    fig.text(0.08, y - 0.01, "Why:", fontsize=10, weight="bold")
    for k, part in enumerate(textwrap.wrap(rationale, 95)[:14]):
        fig.text(0.08, y - 0.03 - 0.015 * k, part, fontsize=8.5)
    ax = fig.add_axes((0.12, 0.12, 0.76, 0.27))
    if average is not None:
        ax.plot([0, *YEARS], [0, *(average * 100)], "--", color=_GREY, label="average for her age (BCSC v2)")
    if curve is not None and np.isfinite(curve).any():
        k = [0] + [y for y, v in zip(YEARS, curve, strict=True) if np.isfinite(v)]
        v = [0] + [p * 100 for p in curve if np.isfinite(p)]
        ax.plot(k, v, "-o", color=_BLUE, label="her risk")
    ax.set_title("Her risk over the next 5 years, against the average for her age", fontsize=10)
    ax.set_xlabel("years from today")
    ax.set_ylabel("cumulative risk (%)")
    ax.set_xlim(0, 5)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=9)
    fig.text(0.08, 0.05, SUPPORT_NOT_REPLACE, fontsize=10, weight="bold")
    return fig
