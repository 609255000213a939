"""File to risks: the whole ``riskmodel predict FILE -o OUT`` process beside pyarrow reading and writing the same file.

Goal (issue 25, 2-core machine): the whole process within 2x of pyarrow's own read + write of the same file,
for CSV and Parquet; 10,000,000 rows in under 10 s end to end; peak memory bounded by the chunk size.

For each size and format the script writes a canonical cohort file (``riskmodel.synthetic.make_cohort`` then
``to_csv`` / ``to_parquet``, 22 columns: the canonical inputs plus the generator's truth columns, which
``predict`` ignores), then alternates, ``--runs`` times, two child processes timed from start to exit:

* ``riskmodel predict FILE -o OUT.<same format>`` (Gail, five-year horizon);
* ``python -c "read FILE with pyarrow; write it with pyarrow"`` (multi-threaded CSV reader / Parquet reader,
  pyarrow's CSV / Parquet writer) — the I/O floor;

and records the medians and each child's peak resident memory. It also measures the in-process
``riskmodel.predict_risk`` rate (rows/s) on the same cohort in memory, five-year and lifetime.

Usage::

    python benchmarks/file_throughput.py [--sizes 1000000 10000000] [--runs 3] [--formats csv parquet]

Writes ``benchmarks/results/file_throughput.json``. Data files go to a temporary folder (about 2.6 GB of
CSV for 10M rows), removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, publish, utc_now

import riskmodel
from riskmodel.synthetic import make_cohort

RESULTS = Path(__file__).parent / "results" / "file_throughput.json"
PIECE = 1_000_000  # rows generated at a time

PYARROW_COPY = """
import sys, pyarrow.csv as pc, pyarrow.parquet as pq
src, dst, fmt = sys.argv[1:4]
if fmt == "csv":
    pc.write_csv(pc.read_csv(src), dst)
else:
    pq.write_table(pq.read_table(src), dst)
"""


def write_cohort(path: Path, n: int, fmt: str) -> None:
    """``n`` canonical rows from ``make_cohort`` (pieces of a million, ids kept unique) as CSV or Parquet.

    Each piece is written as it is drawn (a Parquet row group each), so at most one piece is in memory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for k, start in enumerate(range(0, n, PIECE)):
            part = make_cohort(min(PIECE, n - start), seed=k)
            part["id"] = [f"W{start + i + 1:09d}" for i in range(len(part))]
            if fmt == "csv":
                part.to_csv(path, index=False, mode="w" if k == 0 else "a", header=k == 0)
                continue
            table = pa.Table.from_pandas(part, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def child_with_peak(args: list[str]) -> tuple[float, float]:
    """Run ``args`` under a small Python wrapper that reports the child's own peak RSS (MB)."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:]); s = time.perf_counter() - t; "
               "print(s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, file=sys.stderr); "
               "sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    seconds, peak = proc.stderr.strip().splitlines()[-1].split()
    return float(seconds), float(peak)


def in_process_rate(n: int, horizon: float | str, repeats: int) -> float:
    """Best rows/s of ``riskmodel.predict_risk(cohort, horizon=...)`` on ``n`` canonical rows in memory."""
    cohort = make_cohort(n, seed=0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        riskmodel.predict_risk(cohort, model="gail", horizon=horizon)
        best = min(best, time.perf_counter() - start)
    return n / best


def float_check(n: int = 1_000_000, seed: int = 0) -> dict[str, object]:
    """How many of ``n`` shortest round-trip decimals (``repr`` of doubles, as ``to_csv`` writes them) pandas'
    default CSV float parser reads back as another double, beside ``float_precision="round_trip"``, which the
    library uses (:data:`riskmodel.tables.CSV_FLOAT_PRECISION`), and pyarrow's parser."""
    import io

    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.random(n // 2) * 100, rng.standard_normal(n - n // 2)])
    text = [repr(float(v)) for v in values]
    csv_text = "v\n" + "\n".join(text) + "\n"
    exact = values.view(np.uint64)
    default_values = pd.read_csv(io.StringIO(csv_text))["v"].to_numpy()
    default = default_values.view(np.uint64)
    round_trip = pd.read_csv(io.StringIO(csv_text), float_precision="round_trip")["v"].to_numpy().view(np.uint64)
    arrow = pc.cast(pa.array(text), pa.float64()).to_numpy().view(np.uint64)
    wrong = np.flatnonzero(default != exact)
    return {"values": n, "what": "repr() of uniform(0, 100) and standard normal doubles",
            "pandas_default_misread": int(wrong.size), "pandas_round_trip_misread": int((round_trip != exact).sum()),
            "pyarrow_misread": int((arrow != exact).sum()),
            "example": None if not wrong.size else {"text": text[wrong[0]],
                                                    "pandas_default": repr(float(default_values[wrong[0]]))}}


def csv_reader(path: Path) -> str:
    """Which reader ``riskmodel predict`` takes for this CSV (``pyarrow`` two passes or ``pandas``)."""
    from riskmodel.distributed.streaming import ChunkedTable
    from riskmodel.schema import COLUMNS
    from riskmodel.tables import ID_COLUMNS

    header = pd.read_csv(path, nrows=0).columns
    used = [c for c in header if c in COLUMNS]
    table = ChunkedTable.arrow_only(str(path), "csv", 250_000, text_columns=ID_COLUMNS, read_columns=used,
                                    check_columns=[c for c in used if COLUMNS[c].kind in ("float", "count")])
    return "pyarrow (two passes, riskmodel.distributed.arrow_csv)" if table is not None else "pandas"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"], choices=["csv", "parquet"])
    parser.add_argument("--runs", type=int, default=3, help="paired runs per size and format (median reported)")
    parser.add_argument("--rate-rows", type=int, default=1_000_000, help="rows for the in-process rate")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    parser.add_argument("--float-check", action="store_true",
                        help="only count the decimals pandas' default CSV parser misreads (print, write nothing)")
    args = parser.parse_args()
    if args.float_check:
        print(float_check())
        return

    riskmodel_cli = str(Path(sys.executable).with_name("riskmodel"))
    cases = []
    folder = Path(tempfile.mkdtemp(prefix="file_throughput."))
    try:
        for n in args.sizes:
            for fmt in args.formats:
                src = folder / f"cohort_{n}.{fmt}"
                write_cohort(src, n, fmt)
                ours, floor = [], []
                load_before = os.getloadavg()[0]
                for _ in range(args.runs):
                    ours.append(child_with_peak([riskmodel_cli, "predict", str(src), "-o",
                                                 str(folder / f"risks.{fmt}")]))
                    floor.append(child_with_peak([sys.executable, "-c", PYARROW_COPY, str(src),
                                                  str(folder / f"copy.{fmt}"), fmt]))
                reader = csv_reader(src) if fmt == "csv" else "pyarrow.parquet (row groups)"
                med_ours = statistics.median(s for s, _ in ours)
                med_floor = statistics.median(s for s, _ in floor)
                cases.append({
                    "rows": n, "format": fmt, "file_mb": round(src.stat().st_size / 2**20, 1), "reader": reader,
                    "riskmodel_predict_seconds": [round(s, 3) for s, _ in ours],
                    "pyarrow_read_write_seconds": [round(s, 3) for s, _ in floor],
                    "median_riskmodel_seconds": round(med_ours, 3),
                    "median_pyarrow_seconds": round(med_floor, 3),
                    "ratio_to_pyarrow": round(med_ours / med_floor, 2),
                    "rows_per_second": round(n / med_ours),
                    "peak_rss_mb_riskmodel": round(max(p for _, p in ours), 1),
                    "peak_rss_mb_pyarrow": round(max(p for _, p in floor), 1),
                    "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                })
                print(cases[-1], file=sys.stderr)
                for stale in folder.glob("*"):
                    if stale != src:
                        stale.unlink()
                src.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rates = {str(h): round(in_process_rate(args.rate_rows, h, 3)) for h in (5.0, "lifetime")}
    report = {
        "benchmark": "file_throughput",
        "command": "python benchmarks/file_throughput.py " + " ".join(sys.argv[1:]),
        "date": utc_now(),
        "machine": machine_info(),
        "riskmodel_version": riskmodel.__version__,
        "data": "riskmodel.synthetic.make_cohort rows (22 columns: canonical inputs + truth columns), "
                "written with pandas to_csv / to_parquet",
        "model": "gail, horizon 5 years, riskmodel predict defaults (chunks of 250,000 rows)",
        "goal": {"ratio_to_pyarrow_at_most": 2.0, "ten_million_rows_seconds_under": 10.0},
        "cases": cases,
        "in_process_predict_risk_rows_per_second": {"rows": args.rate_rows, **rates},
        "float_parsing": float_check(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__, "pandas": pd.__version__,
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
