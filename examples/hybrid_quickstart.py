"""The hybrid model end to end on CPU: synthetic women and mammograms → image model → fusion head → risk.

Run from the repository root::

    python examples/hybrid_quickstart.py [OUT_DIR]

It takes a few minutes on two CPU cores (600 women, 64×52-pixel views, a tiny network). With
``RISKMODEL_EXAMPLE_SMALL=1`` it is a smoke run (60 women, one epoch) of well under a minute.
OUT_DIR (default: a temporary folder, deleted at the end) receives the DICOMs, the image bundle
and the saved hybrid model.

Everything here is synthetic and the networks are tiny: the numbers show the plumbing, not a
model's performance, and nothing here is fit for clinical use (see docs/fusion.md).

The same steps from the shell::

    riskmodel synth --n 600 --out OUT --images --image-size 64x52
    riskmodel scan OUT/exams -o OUT/manifest.csv --exams OUT/exams.csv
    riskmodel train --cohort OUT/cohort.csv --exams OUT/exams.csv --out OUT/run --tiny --image-size 64x52
    riskmodel fit-hybrid --cohort OUT/cohort.csv --exams OUT/exams.csv --image-bundle OUT/run/bundle --out OUT/hybrid
    riskmodel predict women.csv --bundle OUT/hybrid --exams OUT/exams.csv -o risks.csv
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import riskmodel
from riskmodel.fusion import HybridModel, TorchHazardHead
from riskmodel.imaging import assemble_exams, scan_dicoms
from riskmodel.inference import ImageRiskPredictor, image_preprocessing
from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.synthetic import make_cohort, write_exams
from riskmodel.training import LabelledExams, TrainConfig, train

SMALL = os.environ.get("RISKMODEL_EXAMPLE_SMALL", "") not in ("", "0")
N_WOMEN = 60 if SMALL else 600
EPOCHS = 1 if SMALL else 4
IMAGE_SIZE = (64, 52)
SEED = 0
#: What a user would have for a woman: the canonical schema, no outcome and no synthetic truth.
CANONICAL = ["id", "exam_id", "age", "race", "age_at_menarche", "age_at_first_birth", "nulliparous", "n_biopsies",
             "atypical_hyperplasia", "first_degree_relatives", "density", "brca", "prs"]


def run(out: Path) -> pd.DataFrame:
    """Build, train, save, load and predict; returns the predictions for the held-out women."""
    torch.set_num_threads(min(2, torch.get_num_threads()))

    # 1. A synthetic cohort with known truth, and four DICOM views per woman.
    cohort = make_cohort(N_WOMEN, seed=SEED)
    write_exams(cohort, out / "dicom", image_size=IMAGE_SIZE, seed=SEED)
    exams = assemble_exams(scan_dicoms(out / "dicom"))
    held_out = cohort.sample(frac=0.2, random_state=SEED).index
    training = cohort.drop(index=held_out)
    print(f"1/4 synthetic cohort: {len(cohort)} women, {int(exams['n_views'].sum())} DICOM views "
          f"({IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}); {len(training)} for training, {len(held_out)} held out")

    # 2. The image model (riskmodel.training), saved as a bundle.
    labels = training.set_index(training["exam_id"].astype(str))
    train_exams = exams[exams["accession_number"].isin(labels.index)].reset_index(drop=True)
    data = LabelledExams(train_exams, labels, key="accession_number", image_size=IMAGE_SIZE)
    torch.manual_seed(SEED)
    network = ImageRiskModel(tiny_config(image_size=IMAGE_SIZE))
    train(network, data, None, TrainConfig(epochs=EPOCHS, batch_size=8, device="cpu", seed=SEED, progress=False))
    image = ImageRiskPredictor(network, image_preprocessing(IMAGE_SIZE), device="cpu")
    image.save(out / "image_bundle", metadata={"note": "synthetic quickstart, not for clinical use"})
    print(f"2/4 image model: {EPOCHS} epoch(s) on {len(data)} exams -> {out / 'image_bundle'}")

    # 3. The hybrid model: image embedding + risk factors → survival head; saved as a folder.
    # A linear head: with a few dozen cancers, a hidden layer or early stopping on a 10 % hold-out has
    # too little to learn from (the default head is meant for thousands of women).
    head = TorchHazardHead(hidden=0, epochs=50 if SMALL else 100, lr=1e-2, weight_decay=1e-2, early_stopping=False,
                           seed=SEED)
    hybrid = HybridModel(riskmodel.load_image_model(out / "image_bundle", device="cpu"), head=head)
    hybrid.fit(training, exams)
    hybrid.save(out / "hybrid")
    s = hybrid.fit_summary_
    print(f"3/4 hybrid model: {s['head']} on {s['n_used']} women ({s['n_events']} cancers, "
          f"{len(s['feature_names'])} inputs) -> {out / 'hybrid'}")

    # 4. Load it back and score the held-out women straight from the DICOM folder. Some have no
    # density (read from the image instead), one has no exam (factors-only fallback).
    women = cohort.loc[held_out, CANONICAL].copy()
    women["density"] = women["density"].astype(object)
    women.iloc[:2, women.columns.get_loc("density")] = None
    women["exam_id"] = women["exam_id"].astype(object)
    women.iloc[2, women.columns.get_loc("exam_id")] = None
    result = riskmodel.predict_risk(women, model=out / "hybrid", exams=out / "dicom", horizon=5, fallback="factors",
                                    details=True, device="cpu")
    print(f"4/4 predict_risk on {len(women)} held-out women (2 without density, 1 without exam):")
    table = pd.DataFrame({"id": women["id"], "age": women["age"].round(1),
                          "risk_1y_%": (100 * result["risk_1y"]).round(3),
                          "risk_5y_%": (100 * result["risk_5y"]).round(3),
                          "status": result["status"], "imputed": result["imputed"]})
    print(table.head(8).to_string(index=False))
    for row in result[result["message"] != ""].itertuples():
        print(f"{women.loc[row.Index, 'id']}: {row.status}: {row.message}")
    truth = cohort.loc[held_out, "true_risk_5y"]
    ok = result["status"] == "ok"
    print(f"mean 5-year risk: predicted {result.loc[ok, 'risk'].mean():.4f}, synthetic truth "
          f"{truth[ok].mean():.4f}; Spearman correlation {result.loc[ok, 'risk'].corr(truth[ok], 'spearman'):.2f} "
          f"on {int(ok.sum())} women")
    return result


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        run(out)
        return 0
    with tempfile.TemporaryDirectory(prefix="riskmodel-hybrid-") as tmp:
        run(Path(tmp))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main(sys.argv))
