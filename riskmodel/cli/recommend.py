"""``riskmodel recommend``: screening recommendations from a table of risks (riskmodel.recommend_screening)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel.cli.options import UsageError, add_columns, add_output, add_quiet, match, output_format
from riskmodel.tables import check_unique_columns, read_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "recommend",
        help="screening recommendations from a table of risks (riskmodel.recommend_screening)",
        description=(
            "Apply a screening policy to RISKS (the output of 'riskmodel predict', CSV/TSV/Parquet) and write one "
            "row per input row: the input columns, then category, interval_months, modality, supplemental, "
            "chemoprevention_discussion, rationale, policy, policy_version, recommendation_status, "
            "recommendation_message, risk_measure, risk_used. Rows without a valid risk get a status and no "
            "recommendation. The output supports, and does not replace, a clinician's decision (docs/screening.md)."
        ),
    )
    p.add_argument("risks", help="risks table from 'riskmodel predict' (with --keep-input, or give --cohort)")
    add_output(p, "output file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--policy", default="uspstf2024",
                   help="shipped policy (uspstf2024, wisdom, mypebs, acr2023, chemoprevention) or the path of a "
                        "policy file (default: uspstf2024)")
    p.add_argument("--cohort", help="the cohort that was scored, same rows in the same order (for age, brca and "
                                    "to recompute Gail risk at another horizon, e.g. lifetime)")
    add_columns(p, "--cohort's columns to read as canonical ones, e.g. Alter=age (names differing from canonical "
                   "ones only in case or separators are matched without it)")
    p.add_argument("--reference", help="for 'top percentile for age' rules: a table of age and risk scored by the "
                                       "same model (default: the women in RISKS)")
    p.add_argument("--fhir", metavar="FILE", help="also write FHIR R4 RiskAssessment resources: .ndjson (one per "
                                                  "line) or .json (a Bundle)")
    p.add_argument("--report", metavar="DIR", help="also write one HTML page per woman into DIR, and DIR/index.html "
                                                   "(the list of women, with links)")
    p.add_argument("--pdf", action="store_true", help="with --report: also a PDF per woman and DIR/reports.pdf (the "
                                                      "index, then every woman's pages)")
    p.add_argument("--explanations", metavar="DIR", help="with --report: the folder 'riskmodel explain --out' wrote; "
                                                         "pages of women whose exam_id was explained show its "
                                                         "saliency overlays")
    p.add_argument("--date", help="assessment date for FHIR and reports (YYYY-MM-DD; default today)")
    add_quiet(p, "no summary line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``riskmodel recommend``: apply a screening policy to a table of risks (riskmodel.screening).

    Everything is checked and computed before anything is written; then the report pages, the
    FHIR file and ``-o`` are each written under a temporary name and renamed into place, so a
    failure leaves no partial file, empty folder or truncated PDF behind.
    """
    from riskmodel.distributed.streaming import AtomicWriter, interrupt_on_sigterm
    from riskmodel.screening import add_recommendations, load_policy, risk_assessments, write_reports
    from riskmodel.screening.fhir import fhir_datetime, fhir_text
    from riskmodel.screening.files import write_atomically

    policy = load_policy(args.policy)  # a PolicyError (ValueError) becomes the one-line error of main()
    if args.pdf and args.report is None:
        raise UsageError("--pdf needs --report DIR")
    if args.explanations is not None and args.report is None:
        raise UsageError("--explanations needs --report DIR")
    if args.explanations is not None and not (Path(args.explanations) / "summary.json").is_file():
        raise UsageError(f"--explanations {args.explanations}: no summary.json (write it with 'riskmodel explain "
                         "--out DIR')")
    if args.fhir is not None and Path(args.fhir).suffix.lower() not in (".ndjson", ".json"):
        raise UsageError(f"--fhir {args.fhir}: use .ndjson (one resource per line) or .json (a Bundle)")
    if args.date is not None:
        try:
            fhir_datetime(args.date)
        except ValueError as exc:
            raise UsageError(f"--date: {exc}") from None
    check_paths(args)
    out_fmt = output_format(args.output)
    data = read_table(args.risks)
    check_unique_columns(data, args.risks, ("risk", "status", "age", "id"))
    cohort = None if args.cohort is None else read_cohort(args, data)
    if "age" not in data.columns and (cohort is None or "age" not in cohort.columns):
        raise UsageError(f"{args.risks}: no age column; pass --cohort COHORT (the table that was scored) or "
                         "score with 'riskmodel predict --keep-input'")
    reference = read_table(args.reference) if args.reference is not None else None
    out = add_recommendations(data, cohort, policy, reference=reference)
    fhir = (fhir_text(risk_assessments(out, cohort=cohort, occurrence=args.date), args.fhir)
            if args.fhir is not None else None)
    extra = []
    with interrupt_on_sigterm(), AtomicWriter(args.output, out_fmt) as writer:
        if args.report is not None:  # rendered into a temporary folder, moved in only when complete
            pages = write_reports(out, args.report, cohort=cohort, pdf=args.pdf, date=args.date, policy=policy,
                                  index=True, explanations=args.explanations)
            shared = [p.name for p in pages if p.name in ("index.html", "reports.pdf")]
            extra.append(f"{len(pages) - len(shared)} report files + {' + '.join(shared)} -> {args.report}")
        if fhir is not None:
            extra.insert(0, f"FHIR -> {write_atomically(Path(args.fhir), fhir)}")
        writer.write(out)  # -o: renamed into place as the block ends; stdout: written last
    if not args.quiet:
        counts = out["recommendation_status"].value_counts()
        summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no rows"
        where = args.output if args.output not in (None, "-") else "stdout"
        print(f"riskmodel: applied {policy.id} {policy.version} to {len(out)} rows ({summary}) -> {where}"
              + "".join(f"; {e}" for e in extra), file=sys.stderr)
    return 0


def check_paths(args: argparse.Namespace) -> None:
    """No output (-o, --fhir, --report) that is a folder where a file is meant, or another path of the command."""
    written = {flag: Path(v) for flag, v in (("-o", args.output), ("--fhir", args.fhir), ("--report", args.report))
               if v not in (None, "-")}
    read = [Path(v) for v in (args.risks, args.cohort, args.reference) if v not in (None, "-")]
    for flag, path in written.items():
        if flag != "--report" and path.is_dir():
            raise UsageError(f"{flag} {path}: is a folder; give a file name")
        if flag == "--report" and path.exists() and not path.is_dir():
            raise UsageError(f"--report {path}: exists and is not a folder")
        same = [q for q in [*read, *(w for f, w in written.items() if f != flag)]
                if q.resolve() == path.resolve() or (q.exists() and path.exists() and path.samefile(q))]
        if same:
            raise UsageError(f"{flag} {path}: is also {same[0]} on this command line; it would be overwritten")


def read_cohort(args: argparse.Namespace, data: pd.DataFrame) -> pd.DataFrame:
    """``--cohort``, its columns matched, checked to be the rows of ``data`` in the same order."""
    cohort = read_table(args.cohort)
    cohort = match(cohort, args.columns).apply(cohort)
    if len(cohort) != len(data):
        raise UsageError(f"--cohort {args.cohort}: {len(cohort)} rows, but {args.risks} has {len(data)}; give "
                         "the table that was scored, in the same order")
    cohort.index = data.index
    if "id" in data.columns and "id" in cohort.columns:
        differ = np.flatnonzero(data["id"].astype(str).to_numpy() != cohort["id"].astype(str).to_numpy())
        if differ.size:
            i = int(differ[0])
            raise UsageError(f"--cohort {args.cohort}: row {i + 1} has id {cohort['id'].iat[i]!r} but "
                             f"{args.risks} has {data['id'].iat[i]!r}; the rows must be the same women in the "
                             "same order")
    return cohort
