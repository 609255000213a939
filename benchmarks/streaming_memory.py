"""Peak memory and speed of ``riskmodel predict`` streaming a 10-million-row CSV in chunks.

Target (issue #8): scoring a 10,000,000-row file keeps peak memory under 1 GB, whatever the
file size.

Usage::

    python benchmarks/streaming_memory.py [--rows 10000000] [--small-rows 1000000] [--chunk-rows N]

Writes a synthetic cohort (``riskmodel.synthetic.make_cohort``, drawn in blocks of 500,000
women, the 13 canonical columns, unique ids) as CSV to a temporary folder, runs
``python -m riskmodel.cli predict COHORT.csv -o RISKS.csv`` on it in a child process (progress
bar on), and records the child's peak resident set size, its wall time and rows/s; then checks
the output has one row per input row. Peak RSS is the kernel's count for the child (``os.wait4``),
which includes the image it was forked from: the parent therefore stays small (the files are
written by another child process, and pandas is imported here only after the measurements); the
child's own high-water mark (``VmHWM`` in ``/proc``, polled) is recorded too.
The same is done on a ``--small-rows`` file to show that peak memory does not grow with the
file. Writes ``benchmarks/results/streaming_memory.json``. Needs about 1.6 GB of free disk per
10 million rows (input and output); the files are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "streaming_memory.json"
MEMORY_TARGET_MB = 1024
BLOCK = 500_000
CANONICAL = ["id", "age", "race", "age_at_menarche", "age_at_first_birth", "nulliparous", "n_biopsies",
             "atypical_hyperplasia", "first_degree_relatives", "density", "brca", "prs", "exam_id"]


def write_cohort(path: Path, rows: int) -> None:
    """Write ``rows`` synthetic women as CSV, block by block (run in a child process)."""
    import numpy as np

    from riskmodel.synthetic import make_cohort

    with open(path, "w", newline="") as fh:
        for i, first in enumerate(range(0, rows, BLOCK)):
            n = min(BLOCK, rows - first)
            block = make_cohort(n, seed=i)[CANONICAL[1:-1]]
            block.insert(0, "id", np.arange(first + 1, first + n + 1))
            block.to_csv(fh, index=False, header=i == 0)


def generate(path: Path, rows: int) -> float:
    """:func:`write_cohort` in a child process (this one stays small); returns seconds taken."""
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--generate", str(path), str(rows)], check=True)
    return time.perf_counter() - start


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def count_lines(path: Path) -> int:
    """Newlines in a file, read 16 MB at a time."""
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def run_predict(src: Path, out: Path, chunk_rows: int | None) -> dict[str, object]:
    """``riskmodel predict`` in a child process: wall time, peak RSS, rows/s, output rows."""
    cmd = [sys.executable, "-m", "riskmodel.cli", "predict", str(src), "-o", str(out)]
    if chunk_rows:
        cmd += ["--chunk-rows", str(chunk_rows)]
    log = out.with_suffix(".log")
    start = time.perf_counter()
    hwm = 0.0
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm = max(hwm, _vm_hwm_mb(proc.pid) or 0.0)
            time.sleep(0.05)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"riskmodel predict failed ({proc.returncode}): {log.read_text()[-2000:]}")
    rows_in = count_lines(src) - 1
    rows_out = count_lines(out) - 1
    summary = [line for line in log.read_text().replace("\r", "\n").splitlines() if line.startswith("riskmodel:")]
    bars = [line for line in log.read_text().replace("\r", "\n").splitlines() if "scoring (gail)" in line]
    return {
        "rows": rows_in,
        "input_mb": round(src.stat().st_size / 2**20, 1),
        "output_mb": round(out.stat().st_size / 2**20, 1),
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows_in / seconds),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "polled_vm_hwm_mb": round(hwm, 1),
        "output_rows": rows_out,
        "one_output_row_per_input_row": rows_out == rows_in,
        "summary_line": summary[-1] if summary else None,
        "last_progress_bar": bars[-1].strip() if bars else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=None, help="default: the CLI's default")
    parser.add_argument("--tmp", default=None, help="folder for the temporary files (default: the system's)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write results/")
    parser.add_argument("--generate", nargs=2, metavar=("PATH", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        write_cohort(Path(args.generate[0]), int(args.generate[1]))
        return

    results = {}
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="riskmodel-streaming-") as folder:
        for name, rows in (("small", args.small_rows), ("large", args.rows)):
            src, out = Path(folder) / f"cohort_{rows}.csv", Path(folder) / f"risks_{rows}.csv"
            seconds = generate(src, rows)
            results[name] = {"generate_seconds": round(seconds, 1), **run_predict(src, out, args.chunk_rows)}
            src.unlink()
            out.unlink()
    from _report import machine_info, publish, utc_now  # imports pandas and riskmodel: after the measurements

    from riskmodel.cli import CHUNK_ROWS

    large = results["large"]
    chunk = args.chunk_rows or CHUNK_ROWS
    command = f"python benchmarks/streaming_memory.py --rows {args.rows} --small-rows {args.small_rows}"
    report = {
        "benchmark": "streaming_memory",
        "date": utc_now(),
        "command": command + (f" --chunk-rows {args.chunk_rows}" if args.chunk_rows else ""),
        "predict_command": f"python -m riskmodel.cli predict COHORT.csv -o RISKS.csv (--chunk-rows {chunk})",
        "machine": machine_info(),
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "chunk_rows": chunk,
        "memory_target_mb": MEMORY_TARGET_MB,
        "meets_memory_target": large["peak_rss_mb"] < MEMORY_TARGET_MB,
        "results": results,
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
