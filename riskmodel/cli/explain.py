"""``riskmodel explain``: per-view saliency, asymmetry and view contributions of an image model's risk."""

from __future__ import annotations

import argparse
import sys

from riskmodel.cli.options import UsageError, add_device, add_quiet


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "explain",
        help="why an image model gave each exam its risk: saliency maps, asymmetry and view contributions",
        description=(
            "Load BUNDLE (hashes checked) and explain the YEARS-year image risk of every exam of EXAMS: for each view, "
            "a saliency map per method (gradcam: Grad-CAM on the encoder's last stage; ig: integrated gradients), "
            "registered onto the view's DICOM pixel grid; the left-right asymmetry map of each view pair and a "
            "per-exam asymmetry score; each view's contribution (risk minus risk with the view masked). Writes "
            "OUT/summary.json and, per exam, PNG overlays and .npy maps (optionally DICOM Secondary Captures)."
        ),
    )
    p.add_argument("--bundle", required=True, help="image model bundle folder")
    p.add_argument("--exams", required=True, help="exams table from 'riskmodel scan --exams' (csv/parquet) or a "
                                                  "DICOM folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--years", type=int, default=5, help="risk horizon explained, whole years (default 5)")
    p.add_argument("--methods", default="gradcam,ig", help="comma-separated saliency methods (default gradcam,ig)")
    p.add_argument("--steps", type=int, default=16, help="integrated-gradients steps (default 16)")
    p.add_argument("--dicom-sc", action="store_true", help="also write each overlay as a DICOM Secondary Capture")
    add_device(p)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Explain every exam and write OUT; exit 1 when no exam had a readable view."""
    from riskmodel.explain import iter_explanations, write_explanations
    from riskmodel.explain.core import check_methods
    from riskmodel.inference import load_image_model, read_exams

    try:
        methods = check_methods(args.methods)
    except ValueError as exc:
        raise UsageError(f"--methods {args.methods!r}: {exc}") from None
    model = load_image_model(args.bundle, device=args.device)
    if not 1 <= args.years <= model.n_years:
        raise UsageError(f"--years {args.years}: the bundle gives risks for 1 … {model.n_years} years")
    exams = read_exams(args.exams)
    entries = write_explanations(iter_explanations(model, exams, years=args.years, methods=methods, steps=args.steps),
                                 args.out, dicom_sc=args.dicom_sc)
    ok = sum(e["status"] == "ok" for e in entries)
    if entries and not ok:
        print(f"riskmodel: error: none of the {len(entries)} exams of {args.exams} has a readable view; see "
              f"{args.out}/summary.json for why", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"riskmodel: explained {ok} of {len(entries)} exams ({', '.join(methods)}, {args.years}-year risk) -> "
              f"{args.out}", file=sys.stderr)
    return 0
