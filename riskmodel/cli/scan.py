"""``riskmodel scan``: the DICOM files under a folder, one row per file (and per exam with --exams)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskmodel.cli.options import UsageError, add_output, add_quiet, output_format
from riskmodel.tables import write_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "scan",
        help="list the DICOM files under a folder, one row per file, with a status for each",
        description=(
            "Read the headers of every file under ROOT and write a manifest: ids, laterality, view, size and a "
            "status (bad files are listed with their error, never dropped; so are broken or looping symlinks, "
            "FIFOs, sockets, devices, links to folders and entries that cannot be read, with a status such as "
            "broken_link or not_regular_file). With --exams, also write one row per exam with its four views and "
            "flags."
        ),
    )
    p.add_argument("root", help="folder to scan (recursively)")
    add_output(p, "manifest file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--exams", help="also write the assembled exams (one row per exam) to this file")
    add_quiet(p, "no summary line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the manifest (and the assembled exams)."""
    from riskmodel.imaging import assemble_exams, scan_dicoms

    if not Path(args.root).is_dir():
        raise UsageError(f"{args.root}: no such folder")
    for target in (args.output, args.exams):
        output_format(target)  # an unknown extension is reported before any work
    # Absolute paths: the tables work from any folder.
    manifest = scan_dicoms(Path(args.root).resolve(), progress=not args.quiet and sys.stderr.isatty())
    write_table(manifest, args.output)
    summary = f"{len(manifest)} files ({int((manifest['status'] == 'ok').sum())} ok)"
    if args.exams:
        exams = assemble_exams(manifest)
        write_table(exams, args.exams)
        summary += f", {len(exams)} exams -> {args.exams}"
    if not args.quiet:
        where = args.output if args.output not in (None, "-") else "stdout"
        print(f"riskmodel: scanned {summary}; manifest -> {where}", file=sys.stderr)
    return 0
