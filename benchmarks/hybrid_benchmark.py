"""Synthetic benchmark for the hybrid model: hybrid vs image-only vs factors-only vs Gail vs oracle.

A test bed, not clinical evidence. It builds on a finished ``image_vs_gail.py`` run (same
settings and ``--workdir``): the same synthetic population and test women, and that run's
trained image model (``WORKDIR/run/best.safetensors``).

* The fusion heads are fitted on ``--fusion-train`` *unselected* women from the training part of
  the population (not the case-enriched image-training set), so that absolute risks can be
  calibrated; their images are rendered into ``WORKDIR/fusion``.
* On the test women: Uno's C-index at 5 years for each model; expected/observed (mean predicted
  5-year absolute risk / Aalen–Johansen cumulative incidence of breast cancer at 5 years, deaths
  from other causes as a competing event) overall and by BI-RADS density; calibration slope (the
  coefficient ``a`` of a logistic recalibration ``sigmoid(a·logit(p) + b)`` among women whose
  5-year status is known).

Usage::

    python benchmarks/image_vs_gail.py --norm batch --epochs 20 --workdir W
    python benchmarks/hybrid_benchmark.py --workdir W

Writes ``benchmarks/results/hybrid_benchmark.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _report import machine_info, publish, utc_now
from image_vs_gail import HORIZON, enriched, render

import riskmodel
from riskmodel.calibration import PlattCalibrator
from riskmodel.evaluation import uno_c_index
from riskmodel.fusion import HybridModel, TorchHazardHead
from riskmodel.imaging import VIEW_ORDER
from riskmodel.inference import ImageRiskPredictor
from riskmodel.nn import ImageRiskModel, ModelConfig
from riskmodel.synthetic import make_cohort

RESULTS = Path(__file__).parent / "results" / "hybrid_benchmark.json"


def observed_incidence(time_: np.ndarray, event: np.ndarray, horizon: float = HORIZON) -> float:
    """Aalen–Johansen cumulative incidence of breast cancer (event 1) at ``horizon``, deaths competing."""
    from lifelines import AalenJohansenFitter

    ajf = AalenJohansenFitter(calculate_variance=False)
    ajf.fit(time_, event, event_of_interest=1)
    cif = ajf.cumulative_density_
    return float(cif[cif.index <= horizon].iloc[-1, 0])


def calibration(pred: np.ndarray, time_: np.ndarray, event: np.ndarray, density: pd.Series) -> dict:
    out = {"eo": round(float(pred.mean()) / observed_incidence(time_, event), 3)}
    for d in "abcd":
        m = (density == d).to_numpy()
        if ((event[m] == 1) & (time_[m] <= HORIZON)).sum() >= 5:
            out[f"eo_density_{d}"] = round(float(pred[m].mean()) / observed_incidence(time_[m], event[m]), 3)
    cancer = (event == 1) & (time_ <= HORIZON)
    known = cancer | (time_ >= HORIZON)
    platt = PlattCalibrator().fit(np.clip(pred[known], 1e-6, 1 - 1e-6), cancer[known].astype(float))
    out["calibration_slope"] = round(platt.a_, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="the --workdir of a finished image_vs_gail.py run")
    parser.add_argument("--fusion-train", type=int, default=8000, help="unselected women to fit the fusion heads")
    # These must match the image_vs_gail.py run.
    parser.add_argument("--pool", type=int, default=120_000)
    parser.add_argument("--train-cases", type=int, default=450)
    parser.add_argument("--val-cases", type=int, default=100)
    parser.add_argument("--controls", type=int, default=3)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--image-hr", type=float, default=3.0)
    parser.add_argument("--size", default="256x208")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    work = Path(args.workdir)
    t_start = time.perf_counter()

    rng = np.random.default_rng(args.seed)  # the same draws as image_vs_gail.py
    population = make_cohort(args.pool + args.test, seed=args.seed, image_hr_per_sd=args.image_hr)
    population = population[population["brca"] == "negative"].reset_index(drop=True)
    pool, test = population.iloc[: -args.test], population.iloc[-args.test:].reset_index(drop=True)
    train_set = enriched(pool, args.train_cases, args.controls, rng)
    val_set = enriched(pool.drop(train_set.index), args.val_cases, args.controls, rng)
    fusion = pool.drop(train_set.index).drop(val_set.index).sample(n=args.fusion_train, random_state=args.seed + 7)

    t0 = time.perf_counter()
    fusion_exams = render(fusion, work / "fusion", size, args.seed + 10, args.jobs, reuse=True)
    test_exams = render(test, work / "test", size, args.seed + 2, args.jobs, reuse=True)
    render_seconds = time.perf_counter() - t0

    from safetensors.torch import load_file

    config = ModelConfig(widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), agg_heads=4, agg_dropout=0.1,
                         image_size=size, norm="batch")
    model = ImageRiskModel(config)
    model.load_state_dict(load_file(str(work / "run" / "best.safetensors")))
    predictor = ImageRiskPredictor(model, {"image_size": list(size), "view_order": list(VIEW_ORDER)}, None,
                                   device="cpu")
    cache = str(work / "cache")

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    hybrid = HybridModel(predictor, head=TorchHazardHead(seed=args.seed)).fit(fusion, fusion_exams, cache_dir=cache)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    with_images = hybrid.predict(test, test_exams, horizon=HORIZON, cache_dir=cache)
    factors_only = hybrid.predict(test, test_exams.iloc[0:0], horizon=HORIZON, fallback="factors")
    image_only = predictor.predict(test_exams, cache_dir=cache)
    predict_seconds = time.perf_counter() - t0
    assert (with_images["status"] == "ok").all(), with_images["status"].value_counts()

    time_, event = test["time"].to_numpy(), test["event"].to_numpy()
    gail = riskmodel.predict_risk(test, model="gail", horizon=HORIZON)["risk"].to_numpy()
    scores = {
        "gail": gail,
        "factors_only": factors_only["risk"].to_numpy(),
        "image_only": image_only["risk_5y"].to_numpy(),
        "hybrid": with_images["risk"].to_numpy(),
        "oracle_true_risk": test["true_risk_5y"].to_numpy(),
    }
    c = {k: round(uno_c_index(time_, event, time_, event, v, tau=HORIZON), 4) for k, v in scores.items()}
    calib = {k: calibration(scores[k], time_, event, test["density"])
             for k in ("gail", "factors_only", "hybrid", "oracle_true_risk")}
    eo_ok = all(0.90 <= v <= 1.10 for k, v in calib["hybrid"].items() if k.startswith("eo"))
    report = {
        "benchmark": "hybrid_benchmark (synthetic test bed; not clinical performance)",
        "date": utc_now(),
        "command": f"python benchmarks/hybrid_benchmark.py --workdir W --fusion-train {args.fusion_train} "
                   f"--seed {args.seed}",
        "machine": machine_info(),
        "data": {"fusion_train_women": len(fusion), "test_women": len(test),
                 "test_cancers_within_5y": int(((event == 1) & (time_ <= HORIZON)).sum()),
                 "image_hr_per_sd": args.image_hr, "image_size": list(size)},
        "fit_summary": hybrid.fit_summary_,
        "uno_c_index_5y": c,
        "calibration": calib,
        "targets": {
            "hybrid_minus_image_only": round(c["hybrid"] - c["image_only"], 4),
            "hybrid_minus_factors_only": round(c["hybrid"] - c["factors_only"], 4),
            "oracle_minus_hybrid": round(c["oracle_true_risk"] - c["hybrid"], 4),
            "met_discrimination": bool(c["hybrid"] - max(c["image_only"], c["factors_only"]) >= 0.02
                                       and c["oracle_true_risk"] - c["hybrid"] <= 0.02),
            "met_eo_0.90_1.10": eo_ok,
            "met_calibration_slope_0.8_1.2": bool(0.8 <= calib["hybrid"]["calibration_slope"] <= 1.2),
        },
        "timings": {"render_seconds": round(render_seconds, 1), "fit_seconds": round(fit_seconds, 1),
                    "predict_seconds": round(predict_seconds, 1),
                    "total_seconds": round(time.perf_counter() - t_start, 1)},
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
