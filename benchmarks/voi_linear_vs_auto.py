"""Synthetic A/B: the DICOM reader's VOI mode ("auto" vs "linear") under the same image model and data.

A test bed, not clinical evidence: cohort and images come from ``riskmodel.synthetic``.

Design
------
* The quick benchmark suite's women and images (``SUITES["quick"]``, ``splits``, ``render`` with the
  suite's seeds, so a suite ``--workdir`` is reused), and its image-model recipe (``ModelConfig``
  and ``TrainConfig`` from the ``SuiteConfig``).
* The network is trained once per VOI mode, from the same seed: ``"auto"`` applies each file's
  VOI LUT or window as written (GE-style files carry a sigmoid-like VOI LUT); ``"linear"`` maps
  the same range linearly (``riskmodel.imaging.read_mammogram``).
* On the suite's unselected test women: the raw five-year Uno C-index, and how the image score
  follows the generator's latent image factor — correlation overall, by density and by vendor
  style, and the mean error of the factor the score implies where it is high (``u > 1.5``, where
  most cancers are), by vendor (``score_diagnostics`` of ``image_vs_gail.py``). The correlations
  are much less noisy than a C-index on ~80 cancers.

Usage::

    python benchmarks/voi_linear_vs_auto.py --workdir W   # W: a quick-suite workdir, or a new folder

Writes ``benchmarks/results/voi_linear_vs_auto.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _report import machine_info, utc_now
from image_vs_gail import score_diagnostics, warm_cache

from riskmodel.benchmarking.suite import HORIZON, SUITES, render, splits
from riskmodel.evaluation import uno_c_index
from riskmodel.nn import ImageRiskModel, ModelConfig
from riskmodel.training import LabelledExams, TrainConfig, predict, train

RESULTS = Path(__file__).parent / "results" / "voi_linear_vs_auto.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="images, caches and the two runs (a quick-suite workdir is reused)")
    p.add_argument("--suite", default="quick")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    conf, work = SUITES[args.suite], Path(args.workdir)
    size = tuple(conf.image_size)
    t_start = time.perf_counter()
    population, test, _, image_train, image_val = splits(conf, args.seed)
    # The suite renders train, val, fusion, test with seed + 0..3: the same seeds reuse its images.
    frames = {"train": render(image_train, work / "train", size, args.seed, conf.jobs, reuse=True),
              "val": render(image_val, work / "val", size, args.seed + 1, conf.jobs, reuse=True),
              "test": render(test, work / "test", size, args.seed + 3, conf.jobs, reuse=True)}
    labels = population.set_index(population["exam_id"].astype(str))
    t, e = test["time"].to_numpy(), test["event"].to_numpy()
    runs = {}
    for mode in ("auto", "linear"):
        data = {name: LabelledExams(frames[name], labels, key="accession_number", image_size=size,
                                    cache_dir=str(work / "cache"), voi=mode) for name in frames}
        t0 = time.perf_counter()
        for name in frames:
            warm_cache(data[name].images, conf.jobs)
        cache_seconds = time.perf_counter() - t0
        torch.manual_seed(args.seed)
        model = ImageRiskModel(ModelConfig(image_size=size, **conf.model))
        t0 = time.perf_counter()
        result = train(model, data["train"], data["val"],
                       TrainConfig(epochs=conf.epochs, batch_size=conf.batch_size, lr=conf.lr, seed=args.seed,
                                   device="cpu", patience=conf.patience, progress=False, augment=conf.augment,
                                   schedule=conf.schedule),
                       out_dir=work / f"run_voi_{mode}")
        train_seconds = time.perf_counter() - t0
        risk5 = predict(model, data["test"], batch_size=32, device="cpu")["risk"][:, -1]
        runs[mode] = {"uno_c_index_5y": round(uno_c_index(t, e, t, e, risk5, tau=HORIZON), 4),
                      "image_score_vs_latent": score_diagnostics(risk5, test, frames["test"]),
                      "best_epoch": result.best_epoch, "best_val_c_index": round(result.best_metric, 4),
                      "cache_seconds": round(cache_seconds, 1), "train_seconds": round(train_seconds, 1)}
        print(mode, json.dumps(runs[mode]), flush=True)
    report = {
        "benchmark": "voi_linear_vs_auto (synthetic test bed; not clinical performance)",
        "date": utc_now(), "machine": machine_info(),
        "command": f"python benchmarks/voi_linear_vs_auto.py --workdir {args.workdir} --suite {args.suite} "
                   f"--seed {args.seed}",
        "data": {"suite": args.suite, "image_size": list(size), "train_exams": len(image_train),
                 "val_exams": len(image_val), "test_women": len(test),
                 "test_cancers_within_5y": int(((e == 1) & (t <= HORIZON)).sum())},
        "runs": runs, "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    if not args.no_write:
        Path(args.results).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
