"""``riskmodel synth``: a synthetic cohort with known truth (and optionally DICOM mammograms)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskmodel.cli.options import UsageError, add_quiet, add_seed, image_size
from riskmodel.tables import write_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "synth",
        help="a synthetic screening cohort with known truth (and optionally four-view DICOM mammograms)",
        description=(
            "Write OUT/cohort.csv: N women in the canonical schema with observed outcome (time, event) and the "
            "generator's true risks (a test bed, not real data). With --images, also write four DICOM views per "
            "woman under OUT/exams/ with manifest.csv, truth.csv and lesions.csv (each mass: position and radius per "
            "view)."
        ),
    )
    p.add_argument("--n", type=int, required=True, help="number of women")
    p.add_argument("--out", required=True, help="output folder")
    add_seed(p, "random seed (output is deterministic for a seed)")
    p.add_argument("--images", action="store_true", help="also write synthetic mammograms as DICOM")
    p.add_argument("--image-size", default="512x416", help="ROWSxCOLUMNS, 64x52 up to 2048x1664 (default 512x416)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for image rendering (default 1)")
    add_quiet(p, "no summary line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write OUT/cohort.csv (and OUT/exams/ with --images)."""
    from riskmodel.synthetic import make_cohort

    if args.n < 1:
        raise UsageError(f"--n {args.n}: must be at least 1")
    size = image_size(args.image_size) if args.images else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cohort = make_cohort(args.n, seed=args.seed)
    write_table(cohort, str(out / "cohort.csv"))
    message = f"riskmodel: wrote {len(cohort)} women to {out / 'cohort.csv'}"
    if args.images:
        from riskmodel.synthetic import write_exams

        manifest = write_exams(cohort, out / "exams", image_size=size, seed=args.seed, n_jobs=args.jobs,
                               progress=not args.quiet and sys.stderr.isatty())
        message += f" and {len(manifest)} DICOM images to {out / 'exams'} (manifest.csv, truth.csv, lesions.csv)"
    if not args.quiet:
        print(message, file=sys.stderr)
    return 0
