"""``riskmodel embed``: per-year risk and the embedding of every exam of a table (``torchrun``-ready)."""

from __future__ import annotations

import argparse
import sys

from riskmodel.cli.options import add_cache_dir, add_device, add_output, add_quiet, output_format
from riskmodel.tables import check_output, read_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "embed",
        help="score exams with a model bundle: per-year risk and the exam embedding, one row per exam",
        description=(
            "Load BUNDLE (hashes checked), read every exam of EXAMS (from 'riskmodel scan --exams'), and write one "
            "row per exam: exam_id (the key a cohort's exam_id holds: the accession number, else the study UID), "
            "accession_number, n_views, status, message, risk_1y..risk_5y (calibrated) and emb_000... "
            "Unreadable views are masked; an exam with no readable view gets status no_views. Several GPUs: "
            "'torchrun --nproc-per-node=N -m riskmodel.cli embed ...' splits the exams across N processes and "
            "writes one output, in table order, equal to one process's."
        ),
    )
    p.add_argument("--bundle", required=True, help="model bundle folder")
    p.add_argument("--manifest", "--exams", dest="exams", required=True,
                   help="exams table from 'riskmodel scan --exams' (csv/parquet)")
    add_output(p, "output file (.parquet, .csv); default: CSV on stdout")
    p.add_argument("--batch-size", type=int, default=4)
    add_cache_dir(p, "cache of preprocessed views")
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """One process, or every process of a torchrun launch (each scores its share; rank 0 writes the output)."""
    from riskmodel.distributed import predict_exams
    from riskmodel.distributed.streaming import interrupt_on_sigterm
    from riskmodel.imaging import resolve_view_paths, upgrade_exams

    check_output(args.output, args.exams)
    fmt = output_format(args.output)
    exams = upgrade_exams(resolve_view_paths(read_table(args.exams), args.exams), args.exams)
    try:
        with interrupt_on_sigterm():
            run = predict_exams(args.bundle, exams, args.output, fmt=fmt, device=args.device,
                                batch_size=args.batch_size, cache_dir=args.cache_dir, embeddings=True,
                                progress=not args.quiet and len(exams) >= 1)
    except RuntimeError as exc:  # another torchrun process failed and reported why
        print(f"riskmodel: error: {exc}", file=sys.stderr)
        return 1
    if run is not None and run.n_exams and not run.n_ok:
        print(f"riskmodel: error: none of the {run.n_exams} exams of {args.exams} has a readable view (status "
              "no_views); see the message column of the output for why", file=sys.stderr)
        return 1
    if run is not None and not args.quiet:
        on = f" on {run.world_size} processes" if run.world_size > 1 else ""
        print(f"riskmodel: embedded {run.n_exams} exams ({run.n_ok} ok){on} -> {args.output or 'stdout'}",
              file=sys.stderr)
    return 0
