"""Synthetic exam rendering (exams/s) and DICOM read + preprocess throughput (images/s).

Targets (issue #3, 2-core CI machine): at least 20 exams per second rendered and written at
512×416. Reading is reported per vendor style (uncompressed, RLE, JPEG 2000), as
``read_mammogram`` (decode, LUTs, orientation) alone and followed by the resize that
``ExamDataset`` applies.

Usage::

    python benchmarks/imaging_throughput.py [--exams 200] [--jobs 2] [--size 512x416]

Writes ``benchmarks/results/imaging_throughput.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, publish, utc_now

from riskmodel.imaging import read_mammogram
from riskmodel.imaging.dataset import fit_to_size
from riskmodel.synthetic import make_cohort, write_exams

RESULTS = Path(__file__).parent / "results" / "imaging_throughput.json"
RENDER_TARGET = 20.0  # exams/s at 512x416 on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--size", default="512x416")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    cohort = make_cohort(args.exams, seed=1)
    report: dict = {
        "benchmark": "imaging_throughput",
        "date": utc_now(),
        "command": f"python benchmarks/imaging_throughput.py --exams {args.exams} --jobs {args.jobs} "
                   f"--size {args.size}",
        "machine": machine_info(),
        "image_size": list(size),
    }
    with tempfile.TemporaryDirectory() as tmp:
        render = {}
        for jobs in sorted({1, args.jobs}):
            out = Path(tmp) / f"jobs{jobs}"
            start = time.perf_counter()
            manifest = write_exams(cohort, out, image_size=size, seed=1, n_jobs=jobs)
            seconds = time.perf_counter() - start
            render[f"n_jobs={jobs}"] = {"exams": args.exams, "seconds": round(seconds, 3),
                                        "exams_per_second": round(args.exams / seconds, 2)}
        best = max(v["exams_per_second"] for v in render.values())
        report["render"] = {**render, "target_exams_per_second": RENDER_TARGET, "meets_target": best >= RENDER_TARGET}

        read = {}
        for syntax, group in manifest.groupby("transfer_syntax"):
            paths = [out / p for p in group["path"]]
            start = time.perf_counter()
            images = [read_mammogram(p) for p in paths]
            t_read = time.perf_counter() - start
            start = time.perf_counter()
            for img in images:
                fit_to_size(img.pixels, size)
            t_resize = time.perf_counter() - start
            vendors = ", ".join(sorted(group["vendor"].unique()))
            read[syntax] = {"vendors": vendors, "images": len(paths),
                            "read_images_per_second": round(len(paths) / t_read, 1),
                            "read_and_resize_images_per_second": round(len(paths) / (t_read + t_resize), 1)}
        report["read"] = read
        total = sum(v["images"] for v in read.values())
        per_image = sum(v["images"] / v["read_and_resize_images_per_second"] for v in read.values())
        report["read_all"] = {"images": total, "read_and_resize_images_per_second": round(total / per_image, 1)}
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    pd.options.mode.copy_on_write = True
    np.seterr(all="ignore")
    main()
