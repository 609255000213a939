"""Which fusion head, image features and factor encoding for a small fusion sample? (synthetic test bed)

Re-uses a finished benchmark-suite run (``--workdir`` of ``python -m benchmarks --suite quick
--workdir W``): the same women, rendered exams and trained image model. It refits the hybrid
model on the suite's unselected fusion sample with several heads, ``image_features`` choices
and factor encodings (``separate``: one column per factor, the ``FactorEncoder`` default;
``literature``: age, the published-relative-risk score and BRCA indicators) and reports each
one's five-year Uno C-index and E/O (overall and by BI-RADS density) on the suite's test women,
next to the factors-only Cox model of each encoding. This is the evidence behind the suite's
choices (docs/evaluation.md, docs/fusion.md).

Usage::

    python -m benchmarks --suite quick --workdir W
    python benchmarks/hybrid_image_features.py --workdir W

Writes ``benchmarks/results/hybrid_image_features.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import machine_info, publish, utc_now
from safetensors.torch import load_file

from riskmodel.benchmarking.suite import HORIZON, SUITES, render, splits
from riskmodel.calibration import YearlyCalibrator
from riskmodel.evaluation import expected_observed, uno_c_index
from riskmodel.fusion import CoxHead, HybridModel, TorchHazardHead
from riskmodel.inference import ImageRiskPredictor, image_preprocessing
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
    fusion_frame = render(fusion, work / "fusion", size, args.seed + 2, conf.jobs, reuse=True)
    test_frame = render(test, work / "test", size, args.seed + 3, conf.jobs, reuse=True)
    model = ImageRiskModel(ModelConfig(image_size=size, **conf.model))
    model.load_state_dict(load_file(str(work / "run" / "best.safetensors")))
    predictor = ImageRiskPredictor(model, image_preprocessing(size, conf.voi), None, device="cpu")
    cache = str(work / "cache")
    fusion_exams = predictor.encode_exams(fusion_frame, cache_dir=cache, batch_size=32)  # the network runs once
    test_exams = predictor.encode_exams(test_frame, cache_dir=cache, batch_size=32)
    t, e = test["time"].to_numpy(), test["event"].to_numpy()
    density = test["density"].to_numpy()

    def scores(risk) -> dict:
        risk = np.asarray(risk, dtype=np.float64)
        by_density = {}
        for d in "abcd":
            m = density == d
            by_density[d] = round(expected_observed(risk[m], t[m], e[m], HORIZON)["eo"], 3)
        return {"uno_c_index_5y": round(uno_c_index(t, e, t, e, risk, tau=HORIZON), 4),
                "eo": round(expected_observed(risk, t, e, HORIZON)["eo"], 3), "eo_by_density": by_density}

    encodings = {"separate": None, "literature": ["literature", "brca"]}
    variants = [("torch", "embedding", "separate"), ("cox_8_components", "embedding", "separate"),
                ("cox", "risk", "separate"), ("torch", "risk", "separate"),
                ("cox", "risk", "literature"), ("torch", "risk", "literature"),
                ("torch_linear", "risk", "literature")]
    heads = {"torch": lambda: TorchHazardHead(seed=args.seed), "cox": lambda: CoxHead(),
             "cox_8_components": lambda: CoxHead(n_components=8),
             "torch_linear": lambda: TorchHazardHead(hidden=0, seed=args.seed)}
    rows, factors_only = [], {}
    for head_name, features, encoding in variants:
        t0 = time.perf_counter()
        torch.manual_seed(args.seed)
        hybrid = HybridModel(predictor, head=heads[head_name](), fallback_head=CoxHead(),
                             factors=encodings[encoding], image_features=features).fit(fusion, fusion_exams)
        risk = hybrid.predict(test, test_exams, horizon=HORIZON)["risk"].to_numpy()
        if encoding not in factors_only:
            only = hybrid.predict(test, test_frame.iloc[0:0], horizon=HORIZON, fallback="factors")["risk"]
            factors_only[encoding] = scores(only)
        rows.append({"head": head_name, "image_features": features, "factors": encoding, **scores(risk),
                     "seconds": round(time.perf_counter() - t0, 1)})
    # The image-only model as the suite calibrates it: isotonic per year on the fusion sample.
    calibrator = YearlyCalibrator("isotonic").fit(fusion_exams.encoding.raw_risk, fusion["time"].to_numpy(),
                                                  fusion["event"].to_numpy(), ipcw=True)
    report = {
        "benchmark": "hybrid_image_features (synthetic test bed; not clinical performance)",
        "date": utc_now(), "machine": machine_info(),
        "command": f"python benchmarks/hybrid_image_features.py --workdir W --suite {args.suite} --seed {args.seed}",
        "data": {"fusion_women": len(fusion),
                 "fusion_cancers_5y": int(((fusion["event"] == 1) & (fusion["time"] <= HORIZON)).sum()),
                 "test_women": len(test), "test_cancers_5y": int(((e == 1) & (t <= HORIZON)).sum())},
        "factors_only_cox": factors_only,
        "image_only": scores(calibrator.predict(test_exams.encoding.raw_risk)[:, -1]),
        "hybrid": rows,
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
