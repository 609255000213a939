"""``riskmodel benchmark``: the benchmark suite on synthetic data (:func:`riskmodel.benchmarking.run_suite`)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from riskmodel.cli.options import UsageError, add_device, add_quiet, add_seed

if TYPE_CHECKING:
    from riskmodel.benchmarking import SuiteConfig


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "benchmark",
        help="run the benchmark suite on synthetic data and write a report",
        description=(
            "Generate a held-out synthetic cohort and mammograms by seed, train or fit Gail, a factors-only Cox "
            "model, the image-only model and the hybrid model, and evaluate them with the oracle (true risk) as the "
            "ceiling: report.md with tables and PNG figures, and results.json. A synthetic test bed, not clinical "
            "performance. 'quick' took 19 min 22 s on 2 CPU cores without a GPU, rendering its DICOMs and sharing the "
            "cores with another job (benchmarks/results/quick: rendering, training, fitting, scoring, evaluation and "
            "the speed section); about 6 min on a quiet machine re-using the DICOMs of an earlier run in --workdir; "
            "'full' is sized for a GPU and a day."
        ),
    )
    p.add_argument("--suite", default="quick", help="quick (default) or full")
    p.add_argument("--out", default="benchmark-report", help="report folder (default ./benchmark-report)")
    add_seed(p)
    p.add_argument("--image-hr", type=float, default=None, metavar="HR",
                   help="hazard ratio per SD of the generator's latent image factor (> 0; default: the suite's, "
                        "3.0 for quick); the report states the value it ran at")
    p.add_argument("--train-cancers", type=int, default=None, metavar="N",
                   help="cancers (within 5 years) in the case-enriched image-training set, each with the suite's "
                        "controls (default: the suite's, 500 for quick; fewer if the pool has fewer)")
    p.add_argument("--workdir", help="keep images, caches and checkpoints here (default: a temporary folder)")
    add_device(p, "auto, cpu, cuda …")
    p.add_argument("--recorded", help="folder of recorded benchmark results to quote in the speed section "
                                      "(default: benchmarks/results when it exists)")
    p.add_argument("--command-line", help=argparse.SUPPRESS)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def suite_config(args: argparse.Namespace) -> SuiteConfig:
    """The suite's :class:`~riskmodel.benchmarking.SuiteConfig` with ``--image-hr`` and ``--train-cancers`` applied.

    Raises:
        UsageError: an unknown suite, an image HR that is not a finite number > 0, or fewer than 1 training cancer.
    """
    from riskmodel.benchmarking import SUITES

    if args.suite not in SUITES:
        raise UsageError(f"--suite {args.suite}: choose one of {sorted(SUITES)}")
    changes: dict[str, object] = {}
    if args.image_hr is not None:
        if not (math.isfinite(args.image_hr) and args.image_hr > 0):
            raise UsageError(f"--image-hr {args.image_hr}: must be a finite hazard ratio > 0 (per SD)")
        changes["image_hr"] = float(args.image_hr)
    if args.train_cancers is not None:
        if args.train_cancers < 1:
            raise UsageError(f"--train-cancers {args.train_cancers}: must be at least 1")
        changes["image_train_cases"] = int(args.train_cancers)
    return dataclasses.replace(SUITES[args.suite], **changes)


def run(args: argparse.Namespace) -> int:
    """Run the suite and write its report."""
    from riskmodel.benchmarking import run_suite

    conf = suite_config(args)
    recorded = args.recorded
    if recorded is None and Path("benchmarks/results").is_dir():
        recorded = "benchmarks/results"
    command = "riskmodel benchmark " + " ".join(sys.argv[2:]) if args.command_line is None else args.command_line
    run_suite(conf, args.out, seed=args.seed, workdir=args.workdir, device=args.device,
              progress=not args.quiet, recorded=recorded, command=command)
    return 0
