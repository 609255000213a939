"""Which fusion head and image features for a small fusion sample? (synthetic test bed)

Re-uses a finished benchmark-suite run (``--workdir`` of ``python -m benchmarks --suite quick
--workdir W``): the same women, rendered exams and trained image model. It refits the hybrid
model on the suite's unselected fusion sample with several heads and ``image_features`` choices
and reports each one's five-year Uno C-index and E/O on the suite's test women, next to the
factors-only Cox model. This is the evidence behind the suite's choice of
``image_features="risk"`` (docs/evaluation.md).

Usage::

    python -m benchmarks --suite quick --workdir W
    python benchmarks/hybrid_image_features.py --workdir W

Writes ``benchmarks/results/hybrid_image_features.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _report import machine_info, publish, utc_now
from safetensors.torch import load_file

from riskmodel.benchmarking.suite import HORIZON, SUITES, render, splits
from riskmodel.evaluation import expected_observed, uno_c_index
from riskmodel.fusion import CoxHead, HybridModel, TorchHazardHead
from riskmodel.imaging import VIEW_ORDER
from riskmodel.inference import ImageRiskPredictor
from riskmodel.nn import ImageRiskModel, ModelConfig

RESULTS = Path(__file__).parent / "results" / "hybrid_image_features.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="--workdir of a finished suite run")
    parser.add_argument("--suite", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    conf, work = SUITES[args.suite], Path(args.workdir)
    size = tuple(conf.image_size)
    _, test, fusion, _, _ = splits(conf, args.seed)
    fusion_exams = render(fusion, work / "fusion", size, args.seed + 2, conf.jobs, reuse=True)
    test_exams = render(test, work / "test", size, args.seed + 3, conf.jobs, reuse=True)
    model = ImageRiskModel(ModelConfig(image_size=size, **conf.model))
    model.load_state_dict(load_file(str(work / "run" / "best.safetensors")))
    predictor = ImageRiskPredictor(model, {"image_size": list(size), "view_order": list(VIEW_ORDER)}, None,
                                   device="cpu")
    cache = str(work / "cache")
    t, e = test["time"].to_numpy(), test["event"].to_numpy()
    variants = [("torch", "embedding"), ("cox_8_components", "embedding"), ("cox_2_components", "embedding"),
                ("cox", "risk"), ("torch", "risk"), ("cox_2_components", "embedding+risk")]
    rows = []
    factors = None
    for head_name, features in variants:
        head = {"torch": lambda: TorchHazardHead(seed=args.seed), "cox": lambda: CoxHead(),
                "cox_8_components": lambda: CoxHead(n_components=8),
                "cox_2_components": lambda: CoxHead(n_components=2)}[head_name]()
        t0 = time.perf_counter()
        torch.manual_seed(args.seed)
        hybrid = HybridModel(predictor, head=head, fallback_head=CoxHead(), image_features=features).fit(
            fusion, fusion_exams, cache_dir=cache)
        risk = hybrid.predict(test, test_exams, horizon=HORIZON, cache_dir=cache)["risk"].to_numpy()
        if factors is None:
            factors = hybrid.predict(test, test_exams.iloc[0:0], horizon=HORIZON, fallback="factors")["risk"]
        rows.append({"head": head_name, "image_features": features,
                     "uno_c_index_5y": round(uno_c_index(t, e, t, e, risk, tau=HORIZON), 4),
                     "eo": round(expected_observed(risk, t, e, HORIZON)["eo"], 3),
                     "seconds": round(time.perf_counter() - t0, 1)})
    factors = factors.to_numpy()
    report = {
        "benchmark": "hybrid_image_features (synthetic test bed; not clinical performance)",
        "date": utc_now(), "machine": machine_info(),
        "command": f"python benchmarks/hybrid_image_features.py --workdir W --suite {args.suite} --seed {args.seed}",
        "data": {"fusion_women": len(fusion),
                 "fusion_cancers_5y": int(((fusion["event"] == 1) & (fusion["time"] <= HORIZON)).sum()),
                 "test_women": len(test), "test_cancers_5y": int(((e == 1) & (t <= HORIZON)).sum())},
        "factors_only_cox": {"uno_c_index_5y": round(uno_c_index(t, e, t, e, factors, tau=HORIZON), 4),
                             "eo": round(expected_observed(factors, t, e, HORIZON)["eo"], 3)},
        "hybrid": rows,
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
