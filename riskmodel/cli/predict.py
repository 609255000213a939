"""``riskmodel predict``: score a cohort table file into a risks table (:func:`riskmodel.distributed.predict_file`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from riskmodel.api import HYBRID_NEEDS_BUNDLE, MODELS
from riskmodel.cli.options import (
    UsageError,
    add_cache_dir,
    add_columns,
    add_device,
    add_output,
    add_quiet,
    column_warnings_on_stderr,
    columns_option,
    output_format,
)
from riskmodel.distributed.files import (
    CHUNK_ROWS,
    MAX_THREADS,
    PROGRESS_MIN_ROWS,
    DaskColumnTypeError,
    parse_horizon,
    predict_file,
)
from riskmodel.schema import ColumnMatch
from riskmodel.tables import check_output

#: How many of the most frequent messages of rows not ``ok`` the closing line quotes.
TOP_REASONS = 3


def add_parser(sub: argparse._SubParsersAction, chunk_rows: int = CHUNK_ROWS,
               progress_min_rows: int = PROGRESS_MIN_ROWS) -> argparse.ArgumentParser:
    """Add ``predict`` to the subparsers ``sub``: ``--chunk-rows`` defaults to ``chunk_rows`` (also the rows
    scored at a time), and inputs of ``progress_min_rows`` rows or more get a progress bar."""
    p = sub.add_parser(
        "predict",
        help="absolute risk for every row of a cohort table",
        description=(
            "Score every row of INPUT (CSV, TSV or Parquet; '-' for CSV on stdin) and write one output row per "
            "input row, in order: risk (probability), status, message, model, horizon. Rows that break a rule get "
            "a status and a message and NaN risk; the others are scored. Exit code 0 when the file could be read, "
            "2 (with a one-line message) when it could not be used at all."
        ),
    )
    p.add_argument(
        "input", help="cohort table in the canonical schema (docs/schema.md), or BCRA layout with --layout bcra"
    )
    add_output(p, "output file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--model", default=None, choices=sorted(MODELS),
                   help="risk model (default: gail; hybrid needs --bundle and --exams)")
    p.add_argument("--horizon", default=None,
                   help="years from current age, 'lifetime' (to age 90), or a column name (default: 5; the hybrid "
                        "model projects at most 5 years)")
    p.add_argument("--layout", default="canonical", choices=("canonical", "bcra"),
                   help="input columns: the canonical schema, or R BCRA's (ID, T1, T2, N_Biop, HypPlas, AgeMen, "
                        "Age1st, N_Rels, Race), scored exactly as BCRA's absolute.risk from T1 to T2")
    p.add_argument("--bundle", metavar="MODEL_DIR",
                   help="a saved model folder: a hybrid model (riskmodel fit-hybrid), an image bundle, or an imported "
                        "Mirai model (riskmodel import-mirai); needs --exams")
    p.add_argument("--exams", metavar="EXAMS_TABLE_OR_DICOM_DIR",
                   help="hybrid model: the exams (table from 'riskmodel scan --exams', or a folder of DICOM files)")
    p.add_argument("--fallback", choices=("none", "factors"), default=None,
                   help="hybrid model: a woman without a usable exam gets status no_exam (none, default) or the "
                        "factors-only model's risk (factors)")
    p.add_argument("--batch-size", type=int, default=4, help="hybrid model: exams per forward pass (default 4)")
    add_cache_dir(p, "hybrid model: cache of preprocessed views")
    add_device(p, "hybrid model: auto, cpu, cuda, cuda:1 … (default auto)")
    p.add_argument("--workers", type=int, default=0,
                   help="hybrid model: DICOM-reading worker processes (default 0); --engine dask without "
                        "--scheduler: worker processes of the local Dask cluster (default 0 = one per core)")
    p.add_argument("--details", action="store_true",
                   help="add model-specific columns (Gail: average_risk, rr_*; hybrid: exam_used, n_views, "
                        "imputed, fallback)")
    p.add_argument("--keep-input", action="store_true", help="copy all input columns into the output")
    add_columns(p, "input columns to read as canonical ones, e.g. Alter=age,Biopsien=n_biopsies (names differing "
                   "from canonical ones only in case or separators, e.g. Race, N_Biopsies, are matched without it); "
                   "the closing line lists the columns used and ignored")
    p.add_argument("--recommend", metavar="POLICY",
                   help="also apply a screening policy (uspstf2024, wisdom, mypebs, acr2023, chemoprevention or a "
                        "policy file): adds the columns of 'riskmodel recommend' (docs/screening.md)")
    p.add_argument("--chunk-rows", type=int, default=chunk_rows, metavar="N",
                   help=f"read, score and write N rows at a time, so memory stays bounded whatever the file size "
                        f"(default {chunk_rows:,}; results do not depend on it). The output is written under a "
                        "temporary name and renamed when complete. With --engine dask: rows per partition")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="chunks scored at once in threads of this process (default 0: up to 2 for the Gail "
                        f"model, 1 for other models; at most {MAX_THREADS}; results do not depend on it)")
    p.add_argument("--engine", choices=("pandas", "dask"), default="pandas",
                   help="pandas (default): this process, chunk by chunk; dask: partitions scored in parallel on a "
                        "Dask cluster (Gail model, canonical layout), written here in order")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="--engine dask: an existing cluster's scheduler, e.g. tcp://10.0.0.5:8786 (its workers "
                        "must be able to read INPUT); default: a local cluster on this machine")
    add_quiet(p, "no progress bar and no summary line")
    p.set_defaults(func=run, score_chunk_rows=chunk_rows, progress_min_rows=progress_min_rows)
    return p


def hybrid_folder(args: argparse.Namespace) -> str | None:
    """The saved hybrid model's folder when --model hybrid / --bundle is used, else None (Gail)."""
    if args.bundle is None and args.model != "hybrid":
        for flag, value in (("--exams", args.exams), ("--fallback", args.fallback)):
            if value is not None:
                raise UsageError(f"{flag} is only used with a hybrid model (--bundle HYBRID_DIR)")
        return None
    if args.bundle is None:
        raise UsageError("--model hybrid needs --bundle HYBRID_DIR: " + HYBRID_NEEDS_BUNDLE.split(": ", 1)[1])
    if args.model not in (None, "hybrid"):
        raise UsageError(f"--bundle is a hybrid model; it cannot be used with --model {args.model}")
    if args.layout == "bcra":
        raise UsageError("--layout bcra is for the Gail model; a hybrid model reads the canonical schema")
    if not Path(args.bundle).is_dir():
        raise UsageError(f"--bundle {args.bundle}: no such folder")
    if args.exams is None:
        raise UsageError("a hybrid model reads mammograms: give --exams EXAMS_TABLE_OR_DICOM_DIR")
    return args.bundle


def summary(counts: dict[str, int], n: int, model: str, output: str | None, how: str = "",
            reasons: dict[str, int] | None = None) -> str:
    """The closing line: rows scored, per status, where to, and the most frequent reasons."""
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    statuses = ", ".join(f"{k} {v}" for k, v in ordered) or "no rows"
    where = output if output not in (None, "-") else "stdout"
    rows = "row" if n == 1 else "rows"
    return f"riskmodel: scored {n} {rows} with {model}{how} ({statuses}) -> {where}{top_reasons(reasons or {})}"


def top_reasons(reasons: dict[str, int]) -> str:
    """'; top reasons: MESSAGE (N rows), …' for the :data:`TOP_REASONS` most frequent messages, or ''."""
    if not reasons:
        return ""
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    shown = ", ".join(f"{m[:100] + '…' if len(m) > 100 else m} ({c} row{'s' if c > 1 else ''})" for m, c in top)
    more = f" and {len(reasons) - len(top)} other message(s)" if len(reasons) > len(top) else ""
    return f"; top reasons: {shown}{more}"


def columns_clause(match: ColumnMatch) -> str:
    """The closing line's part that says which input columns were read (``Race->race``) and which were not."""
    used = ", ".join(str(k) if k == v else f"{k}->{v}" for k, v in match.used.items()) or "none"
    ignored = ", ".join(map(str, match.ignored)) or "none"
    return f"; columns used: {used}; ignored: {ignored}"


def run(args: argparse.Namespace) -> int:
    """``riskmodel predict``: option checks, then :func:`riskmodel.distributed.predict_file`, then the closing line."""
    check_output(args.output, args.input, args.exams)
    bundle = hybrid_folder(args)
    output_format(args.output)  # an unknown extension is reported before any work
    if args.chunk_rows < 1:
        raise UsageError(f"--chunk-rows {args.chunk_rows}: must be at least 1")
    if not 0 <= args.threads <= MAX_THREADS:
        raise UsageError(f"--threads {args.threads}: must be at least 0 (0: automatic) and at most {MAX_THREADS} "
                         "(each thread holds a chunk in memory)")
    if args.layout == "bcra" and args.horizon is not None:
        raise UsageError("--horizon does not apply with --layout bcra: each row projects from T1 to T2")
    if args.scheduler is not None and args.engine != "dask":
        raise UsageError("--scheduler is for --engine dask")
    policy = None
    if args.recommend is not None:
        from riskmodel.screening import load_policy

        if args.layout == "bcra":
            raise UsageError("--recommend reads the canonical layout; score with the default --layout, or run "
                             "'riskmodel recommend' on the output")
        if args.engine == "dask":
            raise UsageError("--recommend is applied with --engine pandas (the default); or run 'riskmodel "
                             "recommend' on the Dask output")
        policy = load_policy(args.recommend)  # a bad policy fails before anything is read
    if args.columns is not None and (args.layout == "bcra" or args.engine == "dask"):
        raise UsageError("--columns applies to the canonical layout with --engine pandas (the default)")
    if args.engine == "dask":
        dask_checks(args, bundle)
    columns = columns_option(args.columns)
    horizon = None if args.layout == "bcra" else parse_horizon(args.horizon or "5")
    postprocess = None
    if policy is not None:
        from riskmodel.screening import add_recommendations

        def postprocess(result: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
            return add_recommendations(result, data, policy)

    try:
        with column_warnings_on_stderr():
            # Read whole: a policy whose rule compares each woman with the others scored (WISDOM's "top 2.5%
            # for age"), which chunks would change (a hybrid model and stdin are read whole too).
            run = predict_file(args.input, args.output, model=bundle or args.model or "gail", horizon=horizon,
                               layout=args.layout, exams=args.exams, fallback=args.fallback or "none",
                               details=args.details, keep_input=args.keep_input, columns=columns,
                               chunk_rows=args.chunk_rows, chunk_size=args.score_chunk_rows,
                               whole=policy is not None and policy.needs_reference, postprocess=postprocess,
                               progress=not args.quiet, progress_min_rows=args.progress_min_rows,
                               batch_size=args.batch_size, cache_dir=args.cache_dir, num_workers=args.workers,
                               device=args.device, engine=args.engine, scheduler=args.scheduler,
                               threads=args.threads)
    except DaskColumnTypeError as exc:
        raise UsageError(f"{exc.path}: a column holds another type of value further into the file than the start "
                         "Dask infers column types from; use --engine pandas (it settles each column's type over "
                         f"the whole file) or convert the file to Parquet. Dask: {exc.dask_message}") from None
    if not args.quiet:
        how = f" on Dask ({run.workers} workers)" if args.engine == "dask" else ""
        print(summary(run.counts, run.n_rows, run.model, args.output, how, run.reasons)
              + (columns_clause(run.match) if run.match else ""), file=sys.stderr)
    if bundle is not None and run.n_rows and run.counts.get("no_exam", 0) == run.n_rows:
        print(f"riskmodel: error: no woman of {args.input} has a usable exam in {args.exams} (status no_exam for "
              f"every row: no key match, or no readable view); see the message column", file=sys.stderr)
        return 1
    return 0


def dask_checks(args: argparse.Namespace, bundle: str | None) -> None:
    """What ``--engine dask`` cannot do, said with the command's flags before any work."""
    from riskmodel.distributed.dask_engine import EXAM_MODELS

    if bundle is not None:
        raise UsageError("--engine dask: a hybrid model " + EXAM_MODELS)
    if args.layout == "bcra":
        raise UsageError("--layout bcra is scored with --engine pandas (the default)")
    if args.input == "-":
        raise UsageError("--engine dask: the workers read INPUT, so it must be a file (or a URL they can reach), "
                         "not '-'")
