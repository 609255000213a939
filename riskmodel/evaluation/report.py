"""Write an :class:`~riskmodel.evaluation.evaluate.Evaluation` as ``report.md`` + PNG figures + ``results.json``.

Example:
    >>> import tempfile, numpy as np
    >>> from riskmodel.synthetic import make_cohort
    >>> from riskmodel.evaluation import evaluate_risks
    >>> cohort = make_cohort(3000, seed=2)
    >>> ev = evaluate_risks(cohort, {"truth": cohort["true_risk_5y"].to_numpy()}, n_boot=0)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     paths = write_report(ev, out, title="Example")
    ...     sorted(p.name for p in paths)[:3]
    ['auc.png', 'calibration.png', 'report.md']
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riskmodel.evaluation.evaluate import Evaluation


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "–"
    return f"{value:.{digits}f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))


def _ci(value: Any, ci: Sequence[Any] | None, digits: int = 3) -> str:
    """``value (lower–upper)``; the value alone without a whole interval; ``–`` alone without a value
    (never an interval beside a missing estimate)."""
    if _missing(value) or ci is None or any(_missing(v) for v in ci):
        return _f(value, digits)
    return f"{_f(value, digits)} ({_f(ci[0], digits)}–{_f(ci[1], digits)})"


def _pct(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _observed(row: dict[str, Any]) -> str:
    """A calibration group's observed incidence with its interval, or ``0.0% (no cancers)``."""
    if not row["cancers"] or _missing(row["observed_upper"]):
        return f"{_pct(row['observed'])} (no cancers)" if not row["cancers"] else _pct(row["observed"])
    return f"{_pct(row['observed'])} ({_pct(row['observed_lower'])}–{_pct(row['observed_upper'])})"


def _few_cancers(ev: Evaluation) -> list[str]:
    """A warning line for each model with fewer cancers than a C-index or AUC needs."""
    need = ev.settings["min_cancers"]
    few = [f"{name} ({m['cancers']})" for name, m in ev.models.items() if m["cancers"] < need]
    if not few:
        return []
    return [f"**Too few cancers to measure discrimination:** C-index and AUC need at least {need} cancers by "
            f"{ev.horizon:g} years; " + ", ".join(few) + " — shown as –. E/O and calibration are shown where there "
            "is any cancer, with wide intervals.", ""]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_markdown(ev: Evaluation, *, title: str = "Risk model evaluation", preamble: Sequence[str] = (),
                    figures: dict[str, str] | None = None, speed: Sequence[str] = ()) -> str:
    """The report as Markdown text (tables; ``figures`` maps a caption to an image file name)."""
    h = ev.horizon
    models = ev.models
    ref = ev.reference
    lines = [f"# {title}", "", *preamble, ""]
    lines += [f"## Summary at {h:g} years", "",
              "C-index and AUC with 95% bootstrap intervals "
              f"({ev.settings['n_boot']} replicates); E/O with a 95% interval; see docs/evaluation.md "
              "for how each number is computed and how to read it.", "", *_few_cancers(ev)]
    rows = []
    for name, m in models.items():
        rows.append([name, m["n"], m["cancers"], _ci(m["c_index"], m.get("c_index_ci")),
                     _ci(m["auc"].get(int(h)), (m.get("auc_ci") or {}).get(int(h))),
                     _ci(m["eo"], m["eo_ci"], 2), _f(m["calibration_slope"], 2), _f(m["ibs"], 4),
                     _pct(m["top10_share"]), _pct(m["top20_share"])])
    lines += _table(["model", "women", "cancers", "Uno C", f"AUC({h:g}y)", "E/O", "slope", "IBS",
                     "cancers in top 10%", "top 20%"], rows)
    years = sorted({int(y) for m in models.values() for y in m["auc"]})
    lines += ["## Time-dependent AUC", ""]
    lines += _table(["model", *[f"{y} y" for y in years]],
                    [[name, *[_ci(m["auc"].get(y), (m.get("auc_ci") or {}).get(y)) for y in years]]
                     for name, m in models.items()])
    if ref is not None:
        lines += [f"## Compared with {ref} (paired, same women)", ""]
        rows = []
        for name, m in models.items():
            v = m.get("vs_reference")
            if not v:
                continue
            nri = v.get("nri") or {}
            ci = v.get("c_index_diff_ci") or [None, None]
            rows.append([name, v["n"], _f(v["c_index_diff"]), f"{_f(ci[0])} to {_f(ci[1])}",
                         _f(v.get("c_index_diff_p"), 3),
                         _f(nri.get("nri_events")), _f(nri.get("nri_nonevents")), _f(nri.get("nri"))])
        lines += _table(["model", "women", "ΔC", "95% CI", "p (bootstrap)", "NRI events", "NRI non-events", "NRI"],
                        rows)
        if h == 5:
            lines += ["NRI: categorical, five-year risk cut at " + " and ".join(
                f"{100 * t:.2f}%" for t in ev.settings["nri_thresholds"]) + " (censoring-adjusted, Pencina 2011).",
                      ""]
    lines += ["## Calibration by decile of predicted risk", ""]
    if not any(m["calibration"] for m in models.values()):
        lines += [f"No table: no model has a cancer by {h:g} years among the women it scored.", ""]
    for name, m in models.items():
        if not m["calibration"]:
            continue
        lines += [f"**{name}**", ""]
        lines += _table(["decile", "women", "cancers", "predicted", "observed (95% CI)", "E/O"],
                        [[r["group"], r["n"], r["cancers"], _pct(r["predicted"]),
                          _observed(r),
                          _f(r["eo"], 2)] for r in m["calibration"]])
    lines += ["## Subgroups", "",
              f"C-index where a subgroup has at least {ev.settings['min_cancers']} cancers; E/O where it has any.", ""]
    rows = []
    for name, m in models.items():
        for s in m["subgroups"]:
            rows.append([f"{s['variable']}: {s['level']}", name, s["n"], s["cancers"], _ci(s["c_index"],
                         s["c_index_ci"]), _ci(s["eo"], s["eo_ci"], 2)])
    rows.sort(key=lambda r: (r[0], list(models).index(r[1])))
    lines += _table(["subgroup", "model", "women", "cancers", "Uno C", "E/O"], rows)
    if speed:
        lines += ["## Speed", "", *speed, ""]
    if figures:
        lines += ["## Figures", ""]
        for caption, file in figures.items():
            lines += [f"### {caption}", "", f"![{caption}]({file})", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(ev: Evaluation, out_dir: str | Path, *, title: str = "Risk model evaluation",
                 preamble: Sequence[str] = (), extra: dict[str, Any] | None = None, speed: Sequence[str] = (),
                 plots: bool = True) -> list[Path]:
    """Write ``report.md``, ``results.json`` and the figures into ``out_dir`` (created if needed).

    Args:
        ev: the evaluation.
        title, preamble: report heading and introductory lines (provenance, data description).
        extra: more JSON entries for ``results.json`` (e.g. ``{"provenance": ..., "speed": ...}``).
        speed: Markdown lines for the report's speed section.
        plots: draw the PNG figures.

    Returns:
        The paths written.
    """
    from riskmodel.evaluation import plots as figs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures: dict[str, str] = {}
    if plots:
        for caption, fn, file in (("Calibration", figs.plot_calibration, "calibration.png"),
                                  ("Time-dependent AUC and ROC", figs.plot_auc, "auc.png"),
                                  ("Risk distributions by outcome", figs.plot_risk_distributions,
                                   "risk_distributions.png"),
                                  ("C-index by subgroup", figs.plot_subgroups, "subgroups.png")):
            if not figs.has_content(ev, fn):  # an empty chart says nothing: the tables say why it is missing
                continue
            written.append(fn(ev, out / file))
            figures[caption] = file
    md = out / "report.md"
    md.write_text(render_markdown(ev, title=title, preamble=preamble, figures=figures, speed=speed))
    written.append(md)
    results = out / "results.json"
    results.write_text(json.dumps({**(extra or {}), **ev.to_dict()}, indent=2, allow_nan=False) + "\n")
    written.append(results)
    return written
