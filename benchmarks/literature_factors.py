"""Factor encodings for small fusion cohorts: separate factor columns vs one literature score.

A test bed, not clinical evidence: cohorts come from ``riskmodel.synthetic.make_cohort``.

One synthetic population (``--n`` women, image factor HR ``--image-hr`` per SD); the last
``--test`` women are held out. For each training size in ``--train-sizes`` (the first women), a
lifelines Cox model (``riskmodel.fusion.CoxHead``, no embedding) is fitted on

* ``separate``: the default ``FactorEncoder`` groups (age, density dummies, family history,
  BRCA, PRS, Gail log RR) — one coefficient per column;
* ``literature``: ``FactorEncoder(factors=["literature", "brca"])`` — age, one published
  log relative risk (Gail with family history + BCSC v1 density + PRS313) and BRCA indicators;

and scored on the test women by Uno's C-index at 5 years, next to the generator's truth with and
without the image factor (which no factors-only model can see). The generator is built from the
same Gail and PRS figures, so the literature score is close to correctly specified here: read its
advantage as an upper bound for real data.

Usage::

    python benchmarks/literature_factors.py [--n 80000] [--test 40000] [--train-sizes 3000 10000 40000]

Writes ``benchmarks/results/literature_factors.json``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from _report import machine_info, publish, utc_now

from riskmodel.evaluation import uno_c_index
from riskmodel.fusion import CoxHead, FactorEncoder
from riskmodel.synthetic import make_cohort

RESULTS = Path(__file__).parent / "results" / "literature_factors.json"
ENCODINGS = {"separate": None, "literature": ["literature", "brca"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=80_000)
    parser.add_argument("--test", type=int, default=40_000)
    parser.add_argument("--train-sizes", type=int, nargs="+", default=[3_000, 10_000, 40_000])
    parser.add_argument("--image-hr", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if max(args.train_sizes) + args.test > args.n:
        parser.error("the largest training size plus --test must not exceed --n")
    t0 = time.perf_counter()
    cohort = make_cohort(args.n, seed=args.seed, image_hr_per_sd=args.image_hr)
    test = cohort.iloc[-args.test:]
    t, e = test["time"].to_numpy(), test["event"].to_numpy()

    def c_index(score) -> float:
        return round(uno_c_index(t, e, t, e, score, tau=5.0), 4)

    rows = []
    for size in args.train_sizes:
        train = cohort.iloc[:size]
        cancers = int(((train["event"] == 1) & (train["time"] <= 5)).sum())
        row = {"train_women": size, "train_cancers_5y": cancers}
        for name, factors in ENCODINGS.items():
            enc = FactorEncoder(factors=factors).fit(train)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # lifelines' convergence chatter on small samples
                head = CoxHead(n_components=0).fit(enc.transform(train), train["time"].to_numpy(),
                                                   (train["event"] == 1).to_numpy().astype(int))
            row[name] = c_index(head.predict_net_risk(enc.transform(test))[:, -1])
        rows.append(row)
    report = {
        "benchmark": "literature_factors (synthetic test bed; not clinical performance)",
        "date": utc_now(),
        "command": "python benchmarks/literature_factors.py --n {} --test {} --train-sizes {} --image-hr {} --seed {}"
                   .format(args.n, args.test, " ".join(map(str, args.train_sizes)), args.image_hr, args.seed),
        "machine": machine_info(),
        "test_women": args.test,
        "test_cancers_5y": int(((e == 1) & (t <= 5)).sum()),
        "uno_c_index_5y": rows,
        "reference": {"truth_full": c_index(test["true_risk_5y"].to_numpy()),
                      "truth_without_image": c_index(test["true_risk_5y_no_image"].to_numpy())},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
