"""The "dcmtk" Mirai preset against DCMTK's own ``dcmj2pnm`` (Mirai's arguments), per synthetic vendor style.

A test bed, not clinical evidence: the images come from ``riskmodel.synthetic`` (four vendor styles) plus
files written for the branches the generator does not produce (C-View window, SIGMOID, rescale with
MONOCHROME1, a GE 12-bit VOI LUT). For every file: the preset's 16-bit image before resizing
(``mirai_image16``) against the PNG ``dcmj2pnm`` writes with the arguments Mirai's
``dicom_to_image_dcmtk`` passes (``mirai_dcmj2pnm_args``): max absolute difference, % of pixels equal.

Usage::

    python benchmarks/mirai_dcmtk.py [--size 512 416] [--women 2]

Writes ``benchmarks/results/mirai_dcmtk.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, utc_now

from riskmodel.imaging.mirai_preprocess import dcmj2pnm_reference, mirai_image16
from riskmodel.synthetic.mammogram import VENDORS, write_exams

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from imaging_fixtures import phantom, write_mg

RESULTS = Path(__file__).parent / "results" / "mirai_dcmtk.json"


def special_files(root: Path, size: tuple[int, int]) -> dict[str, list[Path]]:
    """One file per branch the generator does not write."""
    d = phantom(*size, seed=1, noise=0.02)
    lut = list(np.rint(np.linspace(0, 4095, 4096) ** 1.1 / 4095**0.1).astype(int))
    cases = {
        "c_view_window": dict(voi_lut=(0, lut, 12), extra={"SeriesDescription": "L CC C-View"}),
        "sigmoid_monochrome2": dict(window=(2000, 3000), voi_function="SIGMOID"),
        "sigmoid_monochrome1": dict(window=(2000, 3000), voi_function="SIGMOID", photometric="MONOCHROME1"),
        "rescale_monochrome1": dict(photometric="MONOCHROME1", rescale=(1.5, -100.0)),
        "rescale_fractional": dict(rescale=(0.37, -900.0)),
        "ge_12bit_lut_monochrome1": dict(voi_lut=(0, lut, 12), manufacturer="GE MEDICAL SYSTEMS",
                                         photometric="MONOCHROME1"),
    }
    return {k: [write_mg(root / f"{k}.dcm", d, **kw)[0]] for k, kw in cases.items()}


def compare(paths: list[Path], work: Path) -> dict:
    """Max |diff| and % equal pixels over ``paths``, with the commands run."""
    worst, equal, total, commands = 0, 0, 0, set()
    for path in paths:
        ours, _, _ = mirai_image16(path, "dcmtk")
        ref, command = dcmj2pnm_reference(path, work)
        diff = np.abs(ref.astype(np.int64) - ours.astype(np.int64))
        worst, equal, total = max(worst, int(diff.max())), equal + int((diff == 0).sum()), total + diff.size
        commands.add(" ".join(["dcmj2pnm", *command[1:-2], "IN.dcm", "OUT.png"]))
    return {"files": len(paths), "max_abs_diff": worst, "pct_pixels_equal": round(100.0 * equal / total, 4),
            "commands": sorted(commands)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=(512, 416), metavar=("ROWS", "COLUMNS"))
    p.add_argument("--women", type=int, default=2, help="synthetic women (four views each) per vendor style")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    t0 = time.perf_counter()
    size = tuple(args.size)
    version = subprocess.run(["dcmj2pnm", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    styles: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        groups: dict[str, list[Path]] = {}
        for vendor in VENDORS:
            cohort = pd.DataFrame({"id": [f"{vendor}{i}" for i in range(args.women)],
                                   "exam_id": [f"{vendor}{i}x" for i in range(args.women)],
                                   "age": [55] * args.women, "density": list("abcd" * args.women)[:args.women]})
            manifest = write_exams(cohort, root / vendor, image_size=size, vendors=(vendor,))
            groups[f"synthetic:{vendor}"] = [root / vendor / rel for rel in manifest["path"]]
        groups.update(special_files(root / "special", size))
        for name, paths in groups.items():
            styles[name] = compare(paths, root)
            print(name, styles[name]["max_abs_diff"], styles[name]["pct_pixels_equal"], flush=True)
    report = {
        "benchmark": "mirai_dcmtk", "created": utc_now(), "machine": machine_info(),
        "configuration": {"image_size": list(size), "women_per_vendor": args.women, "preset": "dcmtk",
                          "compared": "mirai_image16(path, 'dcmtk') vs dcmj2pnm PNG, before resizing"},
        "dcmj2pnm_version": version,
        "note": "JPEG 2000 files (GE style) are written uncompressed before dcmj2pnm (Debian's DCMTK has no JPEG 2000 "
                "decoder); the pixel values are unchanged. Synthetic test bed, not clinical data.",
        "styles": styles,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "python benchmarks/mirai_dcmtk.py " + " ".join(sys.argv[1:]),
    }
    Path(args.results).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
