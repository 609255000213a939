"""Speed of ``riskmodel.synthetic.make_cohort``: simulated women per second.

Target (issue: synthetic cohorts): 1,000,000 women "in seconds" on a 2-core machine.

Usage::

    python benchmarks/synthetic_cohort_speed.py [--rows 1000000] [--repeats 3]

Writes ``benchmarks/results/synthetic_cohort.json`` (date, machine, n, seconds, rows/s)
and prints it. The time is the best of ``--repeats`` calls after one small warm-up call
(which loads the Gail tables and the parameter file); peak memory is the process's
maximum resident set size at the end.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from _report import machine_info, publish, utc_now

from riskmodel.synthetic import make_cohort

RESULTS = Path(__file__).parent / "results" / "synthetic_cohort.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/")
    args = parser.parse_args()

    make_cohort(1_000, seed=args.seed)  # warm-up: tables, parameter file, imports
    times = []
    frame = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        frame = make_cohort(args.rows, seed=args.seed)
        times.append(time.perf_counter() - start)
    best = min(times)
    report = {
        "benchmark": "synthetic_cohort_speed",
        "date": utc_now(),
        "command": f"python benchmarks/synthetic_cohort_speed.py --rows {args.rows} --repeats {args.repeats}",
        "machine": machine_info(),
        "n": args.rows,
        "seed": args.seed,
        "seconds": round(best, 4),
        "seconds_all_repeats": [round(t, 4) for t in times],
        "rows_per_second": round(args.rows / best),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cohort": {
            "mean_true_risk_5y": round(float(frame["true_risk_5y"].mean()), 6),
            "events": {str(k): int(v) for k, v in frame["event"].value_counts().sort_index().items()},
        },
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
