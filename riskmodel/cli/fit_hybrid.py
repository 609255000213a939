"""``riskmodel fit-hybrid``: fit the fusion survival head on a trained image bundle (riskmodel.fusion)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskmodel.cli.options import UsageError, add_cache_dir, add_device, add_quiet, add_seed
from riskmodel.tables import read_table

#: ``--head`` choices.
HEADS = ("torch", "cox", "xgboost")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "fit-hybrid",
        help="fit the fusion survival head (image embedding + risk factors) on top of a trained image bundle",
        description=(
            "Load IMAGE_BUNDLE (from 'riskmodel train'), embed the exam of every woman of COHORT (canonical schema "
            "with time, event and the exam key), encode her risk factors, fit the fusion head and a factors-only "
            "fallback head, and save the hybrid model to OUT (image/ bundle, fusion.json, manifest.json). Score "
            "with 'riskmodel predict --bundle OUT --exams ...'."
        ),
    )
    p.add_argument("--cohort", required=True, help="women: canonical schema + time, event and the exam key column")
    p.add_argument("--exams", required=True, help="exams table (riskmodel scan --exams) or a folder of DICOM files")
    p.add_argument("--image-bundle", required=True, help="trained image model bundle (riskmodel train: OUT/bundle)")
    p.add_argument("--out", required=True, help="output folder for the hybrid model")
    p.add_argument("--head", default="torch", choices=HEADS,
                   help="fusion head: torch additive hazard (default), cox (lifelines, PCA of the embedding), "
                        "xgboost (survival:cox)")
    p.add_argument("--image-features", default="embedding", choices=("embedding", "risk", "embedding+risk"),
                   help="what the head sees of the image: the exam embedding (default), the image network's own "
                        "five-year score (one column; needs far fewer cancers), or both")
    p.add_argument("--factors", help="comma-separated factor groups (age, density, family_history, brca, prs, gail, "
                                     "literature; default: every group with data except literature), e.g. "
                                     "'literature,brca' for one published-relative-risk score plus BRCA indicators")
    p.add_argument("--key", default="exam_id", help="cohort column with each woman's exam key (default exam_id)")
    p.add_argument("--exam-key", default="exam_id",
                   help="exams column holding the same keys (default exam_id: the accession number, else the "
                        "study UID, as 'riskmodel scan --exams' writes it)")
    p.add_argument("--epochs", type=int, default=200, help="torch head: maximum epochs (default 200)")
    p.add_argument("--no-early-stopping", action="store_true",
                   help="torch head: train all epochs (needed with very few cancers)")
    p.add_argument("--batch-size", type=int, default=4, help="exams per forward pass (default 4)")
    add_cache_dir(p, "cache of preprocessed views")
    add_device(p)
    p.add_argument("--workers", type=int, default=0, help="DICOM-reading worker processes")
    add_seed(p)
    p.add_argument("--overwrite", action="store_true", help="replace a hybrid model already saved at OUT")
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Embed the cohort's exams, fit the heads, save the hybrid model."""
    from riskmodel.distributed.files import read_exams_source
    from riskmodel.fusion import CoxHead, HybridModel, TorchHazardHead, XGBoostHead
    from riskmodel.inference import load_image_model

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise UsageError(f"--out {out}: exists and is not an empty folder; pass --overwrite to replace a saved "
                         "hybrid model")
    if not Path(args.image_bundle).is_dir():
        raise UsageError(f"--image-bundle {args.image_bundle}: no such folder")
    cohort = read_table(args.cohort, text=(args.key,))
    missing = [c for c in ("time", "event", args.key) if c not in cohort.columns]
    if missing:
        raise UsageError(f"--cohort {args.cohort}: missing column(s) {missing}")
    exams = read_exams_source(args.exams)
    image = load_image_model(args.image_bundle, device=args.device)
    if args.head == "torch":
        head: object = TorchHazardHead(seed=args.seed, epochs=args.epochs, early_stopping=not args.no_early_stopping)
    elif args.head == "cox":
        head = CoxHead()
    else:
        head = XGBoostHead(seed=args.seed)
    factors = None
    if args.factors:
        from riskmodel.fusion import FACTOR_GROUPS

        factors = [f.strip() for f in args.factors.split(",") if f.strip()]
        unknown = sorted(set(factors) - set(FACTOR_GROUPS))
        if unknown:
            raise UsageError(f"--factors: unknown group(s) {unknown}; choose from {', '.join(FACTOR_GROUPS)}")
    model = HybridModel(image, head=head, factors=factors, image_features=args.image_features)
    model.fit(cohort, exams, key=args.key, exam_key=args.exam_key, batch_size=args.batch_size,
              cache_dir=args.cache_dir, num_workers=args.workers, progress=not args.quiet)
    model.save(out, overwrite=args.overwrite,
               metadata={"cohort": str(args.cohort), "exams": str(args.exams), "image_bundle": str(args.image_bundle)})
    if not args.quiet:
        s = model.fit_summary_
        print(f"riskmodel: fitted a {s['head']} fusion head on {s['n_used']} of {s['n_rows']} women "
              f"({s['n_events']} cancers; {s['n_without_exam']} without a usable exam, {s['n_schema_rejected']} "
              f"failing the schema) -> {out}", file=sys.stderr)
    return 0
