"""Synthetic benchmark: are the saliency maps of ``riskmodel.explain`` faithful to what drives risk?

A test bed, not clinical evidence: cohort and images come from ``riskmodel.synthetic``, whose
generator records where it drew each mass (``lesions.csv``).

Design
------
* One synthetic population (``make_cohort``, seed 7, default effects: the latent image factor is
  a fine texture in dense tissue, HR 2.0 per SD). ``write_exams(lesion_years=5)``: every woman
  with a cancer within 5 years gets a faint mass in one breast (both views of that breast).
* Training: every 5-year case of the first 70 % of the pool plus one control per case, the
  library's recipe (:func:`riskmodel.training.train_image_model`, preset ``small``, 128 × 104
  pixels, no calibration, ``--epochs`` epochs) on the 2-core CPU.
* Held out: ``--test-cases`` cases (all with a mass) and as many controls from the other 30 %.
* Per held-out case exam, for the 5-year risk and each method of :func:`riskmodel.explain.explain`:
  - **pointing game**: hit when the map's peak over the two views of the lesion side lies in the
    mass's disc dilated by ``--margin`` pixels (on the DICOM grid); baselines: a uniform random
    map (expected hit rate = the dilated disc's share of the breast, computed exactly) and the
    brightest tissue pixel (intensity only);
  - **deletion AUC**: the model's 5-year risk as the most salient pixels (of the model's input
    views) are set to 0 in 10 % steps, area under risk / risk(0) vs fraction removed; the same
    with a random order (``deletion_auc.random``). Lower = more faithful;
  - **asymmetry**: AUC of the per-view-pair asymmetry score for telling the lesion side's pair
    from the other side's (the score of the lesion-side CC+MLO vs the other side's, per exam);
  - CPU time to explain one exam (both methods, views, asymmetry and view contributions).
* 95 % intervals: Wilson for hit rates, bootstrap over exams (1,000 draws) for AUCs and deletion AUCs.

Usage::

    python benchmarks/explain_faithfulness.py [--work /tmp/explain_bench] [--epochs 8] [--test-cases 60]

Writes ``benchmarks/results/explain.json`` and ``benchmarks/results/explain_examples.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, publish, utc_now

RESULTS = Path(__file__).parent / "results" / "explain.json"
FIGURE = Path(__file__).parent / "results" / "explain_examples.png"
SIZE = (128, 104)
HORIZON = 5.0
SEED = 7


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/explain_bench", help="folder for images, the trained bundle and maps")
    p.add_argument("--pool", type=int, default=60_000, help="women simulated")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--test-cases", type=int, default=60, help="held-out case exams (each with a mass)")
    p.add_argument("--margin", type=float, default=3.0, help="pointing-game dilation of the mass's disc (pixels)")
    p.add_argument("--steps", type=int, default=16, help="integrated-gradients steps")
    p.add_argument("--no-write", action="store_true", help="print, do not write the results file")
    return p


def split_cohort(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training women, held-out women): enriched 1:1 case-control sets from two parts of one pool."""
    from riskmodel.benchmarking.suite import enriched
    from riskmodel.synthetic import make_cohort

    pool = make_cohort(args.pool, seed=SEED)
    pool = pool[pool["brca"] == "negative"]  # carriers left out, as in image_vs_gail.py
    cut = int(0.7 * len(pool))
    rng = np.random.default_rng(SEED)
    train = enriched(pool.iloc[:cut], 10**6, 1, rng, HORIZON)
    test = enriched(pool.iloc[cut:], args.test_cases, 1, rng, HORIZON)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def render(cohort: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """Write the women's exams (masses for every 5-year case) unless already there; the exams table."""
    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.synthetic import write_exams

    if not (folder / "lesions.csv").exists():
        write_exams(cohort, folder, image_size=SIZE, seed=SEED, lesion_years=HORIZON)
    exams = assemble_exams(scan_dicoms(folder))
    return exams.set_index("accession_number").loc[cohort["exam_id"].astype(str)].reset_index()


def prepare(args: argparse.Namespace) -> tuple[Path, pd.DataFrame, pd.DataFrame, dict]:
    """Render both sets and train the model once (reused from ``--work``); (bundle, test cohort, test exams, info)."""
    from riskmodel.training.recipe import train_image_model

    work = Path(args.work)
    train, test = split_cohort(args)
    train_exams = render(train, work / "train_exams")
    test_exams = render(test, work / "test_exams")
    bundle = work / "run" / "bundle"
    seconds = 0.0
    if not bundle.exists():
        start = time.perf_counter()
        train_image_model(train, train_exams, work / "run", preset="small", image_size=SIZE, epochs=args.epochs,
                          batch_size=16, lr=1e-3, patience=0, calibration="none", val_fraction=0.15,
                          calib_fraction=0.0, cache_dir=work / "cache", device="cpu", seed=SEED, progress=False)
        seconds = time.perf_counter() - start
        (work / "run" / "train_seconds.txt").write_text(f"{seconds:.1f}\n")
    else:
        seconds = float((work / "run" / "train_seconds.txt").read_text())
    info = {"n_train_exams": len(train), "n_train_cases": int(((train.event == 1) & (train.time <= HORIZON)).sum()),
            "train_seconds": round(seconds, 1)}
    return bundle, test, test_exams, info
