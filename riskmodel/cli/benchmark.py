"""``riskmodel benchmark``: the benchmark suite on synthetic data (:func:`riskmodel.benchmarking.run_suite`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskmodel.cli.options import UsageError, add_device, add_quiet, add_seed


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "benchmark",
        help="run the benchmark suite on synthetic data and write a report",
        description=(
            "Generate a held-out synthetic cohort and mammograms by seed, train or fit Gail, a factors-only Cox "
            "model, the image-only model and the hybrid model, and evaluate them with the oracle (true risk) as the "
            "ceiling: report.md with tables and PNG figures, and results.json. A synthetic test bed, not clinical "
            "performance. 'quick' took 5 min 49 s on 2 CPU cores without a GPU (benchmarks/results/quick: training, "
            "fitting, scoring, evaluation and the speed section, with the DICOMs rendered by an earlier run in "
            "--workdir; 26 min on a busy machine); 'full' is sized for a GPU and a day."
        ),
    )
    p.add_argument("--suite", default="quick", help="quick (default) or full")
    p.add_argument("--out", default="benchmark-report", help="report folder (default ./benchmark-report)")
    add_seed(p)
    p.add_argument("--workdir", help="keep images, caches and checkpoints here (default: a temporary folder)")
    add_device(p, "auto, cpu, cuda …")
    p.add_argument("--recorded", help="folder of recorded benchmark results to quote in the speed section "
                                      "(default: benchmarks/results when it exists)")
    p.add_argument("--command-line", help=argparse.SUPPRESS)
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the suite and write its report."""
    from riskmodel.benchmarking import SUITES, run_suite

    if args.suite not in SUITES:
        raise UsageError(f"--suite {args.suite}: choose one of {sorted(SUITES)}")
    recorded = args.recorded
    if recorded is None and Path("benchmarks/results").is_dir():
        recorded = "benchmarks/results"
    command = "riskmodel benchmark " + " ".join(sys.argv[2:]) if args.command_line is None else args.command_line
    run_suite(args.suite, args.out, seed=args.seed, workdir=args.workdir, device=args.device,
              progress=not args.quiet, recorded=recorded, command=command)
    return 0
