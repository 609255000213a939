"""Gail model throughput and memory: five-year and lifetime risk for mixed-race profiles.

Targets (issue #2, 2-core CI machine): five-year risk for 1,000,000 profiles at
≥ 1,000,000 rows/s; lifetime risk (to age 90) at ≥ 250,000 rows/s with peak memory
under 2 GB. For scale, R's BCRA does about 4,300 rows/s on the same machine.

Usage::

    python benchmarks/gail_throughput.py [--rows 1000000] [--repeats 3]

Writes ``benchmarks/results/gail_throughput.json`` and prints a summary. Timings are the
best of ``--repeats`` runs of ``bcra_absolute_risk`` on a DataFrame already in memory;
peak memory is the largest traced allocation (tracemalloc, which NumPy reports to) during
one call, measured in a separate run so tracing does not slow the timed ones.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, publish, utc_now

import riskmodel
from riskmodel.gail import bcra_absolute_risk, bcra_to_canonical

RESULTS = Path(__file__).parent / "results" / "gail_throughput.json"
TARGETS = {"five_year": 1_000_000, "lifetime": 250_000}  # rows/s
MEMORY_TARGET_MB = 2048


def make_profiles(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` valid BCRA profiles, ages 35–85, every race code, all covariate levels."""
    rng = np.random.default_rng(seed)
    t1 = np.round(rng.uniform(35, 85, n), 1)
    n_biop = rng.choice([0, 1, 2, 3, 99], n, p=[0.6, 0.2, 0.1, 0.05, 0.05])
    hyp = np.where(np.isin(n_biop, [0, 99]), 99, rng.choice([0, 1, 99], n, p=[0.6, 0.1, 0.3]))
    age_men = rng.choice([10, 11, 12, 13, 14, 15, 99], n)
    age1st = rng.choice([17, 21, 24, 27, 32, 98, 99], n)
    age1st = np.where((age1st < 98) & (age1st > t1), 99, age1st)
    return pd.DataFrame({
        "ID": np.arange(n), "T1": t1, "T2": t1 + 5, "N_Biop": n_biop, "HypPlas": hyp, "AgeMen": age_men,
        "Age1st": age1st, "N_Rels": rng.choice([0, 1, 2, 99], n, p=[0.8, 0.12, 0.05, 0.03]),
        "Race": rng.integers(1, 12, n),
    })


def _best_time(frame: pd.DataFrame, repeats: int) -> tuple[float, pd.Series]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = bcra_absolute_risk(frame)
        best = min(best, time.perf_counter() - start)
    return best, out


def _peak_mb(frame: pd.DataFrame) -> float:
    tracemalloc.start()
    bcra_absolute_risk(frame)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/")
    args = parser.parse_args()

    five = make_profiles(args.rows)
    life = five.assign(T2=90.0)
    results = {}
    for name, frame in (("five_year", five), ("lifetime", life)):
        seconds, risk = _best_time(frame, args.repeats)
        rate = args.rows / seconds
        results[name] = {
            "rows": args.rows,
            "seconds": round(seconds, 4),
            "rows_per_second": round(rate),
            "target_rows_per_second": TARGETS[name],
            "meets_target": rate >= TARGETS[name],
            "peak_traced_mb": round(_peak_mb(frame), 1),
            "scored_rows": int(risk.notna().sum()),
            "mean_risk_percent": round(float(risk.mean()), 4),
        }
    # The canonical path (schema validation + Gail) that riskmodel.predict_risk users take; no target.
    canonical = bcra_to_canonical(five)
    start = time.perf_counter()
    out = riskmodel.predict_risk(canonical, horizon=5.0)
    seconds = time.perf_counter() - start
    results["predict_risk_five_year"] = {
        "rows": args.rows,
        "seconds": round(seconds, 4),
        "rows_per_second": round(args.rows / seconds),
        "ok_rows": int((out["status"] == "ok").sum()),
    }
    results["lifetime"]["memory_target_mb"] = MEMORY_TARGET_MB
    results["lifetime"]["meets_memory_target"] = results["lifetime"]["peak_traced_mb"] < MEMORY_TARGET_MB
    report = {
        "benchmark": "gail_throughput",
        "date": utc_now(),
        "command": f"python benchmarks/gail_throughput.py --rows {args.rows} --repeats {args.repeats}",
        "machine": machine_info(),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "results": results,
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
