"""``riskmodel evaluate``: metrics of one or more models' risks against observed outcomes (riskmodel.evaluation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from riskmodel.cli.options import UsageError, add_quiet, add_seed
from riskmodel.tables import read_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "evaluate",
        help="evaluate risks against observed outcomes in your own cohort",
        description=(
            "Compute the benchmark metrics (Uno's C-index, time-dependent AUC, integrated Brier score, E/O with a "
            "95% interval, calibration slope and deciles, cancers in the top 10%/20%, NRI against a reference, "
            "bootstrap intervals, subgroups) for one or more models' risks on a cohort with follow-up, and write "
            "report.md, PNG figures and results.json. COHORT needs time (years from the assessment) and event "
            "(0 censored, 1 invasive breast cancer, 2 died of other causes); subgroup columns are optional."
        ),
    )
    p.add_argument("--cohort", required=True, help="outcomes table (CSV/TSV/Parquet) with time and event")
    p.add_argument("--risks", action="append", metavar="[NAME=]PATH",
                   help="a model's risks: 'risk' (absolute risk by the horizon) and/or risk_1y … risk_5y, optional "
                        "status (rows not 'ok' are left out), e.g. the output of 'riskmodel predict'; repeat for "
                        "several models")
    p.add_argument("--horizon", type=float, default=5.0, help="years (default 5)")
    p.add_argument("--id", help="column present in the cohort and every risks file to match rows (default: row "
                                "order, and the lengths must agree)")
    p.add_argument("--reference", default="gail", help="model for paired comparisons and NRI (default gail)")
    p.add_argument("--subgroups", help="comma-separated cohort columns (default: race, density, age, brca where "
                                       "present)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200; 0 = none)")
    add_seed(p)
    p.add_argument("--out", default="evaluation-report", help="report folder (default ./evaluation-report)")
    p.add_argument("--title", default="Risk model evaluation")
    p.add_argument("--no-plots", action="store_true")
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def risk_table(spec: str, n: int, cohort: pd.DataFrame, id_column: str | None) -> tuple[str, pd.DataFrame]:
    """``--risks [NAME=]PATH``: the model's name and its risks, one row per cohort row (by ``--id`` or by order)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    if not name:
        raise UsageError(f"--risks {spec}: give NAME=PATH or PATH")
    frame = read_table(path, text=() if id_column is None else (id_column,))
    if id_column is not None:
        for label, f in (("--cohort", cohort), (path, frame)):
            if id_column not in f.columns:
                raise UsageError(f"{label}: no column {id_column!r} (--id)")
        if frame[id_column].duplicated().any():
            dup = frame.loc[frame[id_column].duplicated(), id_column].iloc[0]
            raise UsageError(f"{path}: id {dup!r} appears more than once")
        frame = frame.set_index(frame[id_column].astype(str)).reindex(cohort[id_column].astype(str).to_numpy())
    elif len(frame) != n:
        raise UsageError(f"{path}: {len(frame)} rows but the cohort has {n}; give --id COLUMN to match rows by id")
    if "risk" not in frame.columns and not any(c.startswith("risk_") for c in frame.columns):
        raise UsageError(f"{path}: no 'risk' column (absolute risk by the horizon) and no risk_1y … columns")
    return name, frame.reset_index(drop=True)


def _number(value: float, digits: int) -> str:
    """``value`` rounded, or ``–`` where it could not be estimated (too few cancers)."""
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report, print one line per model."""
    from riskmodel.evaluation import evaluate_risks, write_report

    cohort = read_table(args.cohort, text=() if args.id is None else (args.id,))
    if not args.risks:
        raise UsageError("give at least one --risks [NAME=]PATH")
    risks = dict(risk_table(spec, len(cohort), cohort, args.id) for spec in args.risks)
    subgroups = None if args.subgroups is None else [c for c in args.subgroups.split(",") if c]
    for c in subgroups or []:
        if c not in cohort.columns:
            raise UsageError(f"--subgroups: the cohort has no column {c!r}")
    ev = evaluate_risks(cohort.reset_index(drop=True), risks, horizon=args.horizon, reference=args.reference,
                        subgroups=subgroups, n_boot=args.bootstrap, seed=args.seed,
                        progress=not args.quiet and sys.stderr.isatty())
    preamble = [f"- Cohort: `{args.cohort}` ({len(cohort):,} women); risks: "
                + ", ".join(f"`{s}`" for s in args.risks) + ".",
                f"- Command: `riskmodel evaluate {' '.join(sys.argv[2:])}`."]
    write_report(ev, args.out, title=args.title, preamble=preamble, plots=not args.no_plots)
    if not args.quiet:
        for name, m in ev.models.items():
            print(f"{name}: n={m['n']} cancers={m['cancers']} C={_number(m['c_index'], 3)} E/O={_number(m['eo'], 2)}",
                  file=sys.stderr)
        print(f"report written to {args.out}/report.md", file=sys.stderr)
    return 0
