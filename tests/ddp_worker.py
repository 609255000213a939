"""Trains a tiny model on fixed synthetic tensors and writes the loss history (used by test_training.py).

Run as ``python tests/ddp_worker.py OUT.json PER_PROCESS_BATCH`` (one process) or under
``torchrun --nproc-per-node=2`` (each rank gets a per-process batch).
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import torch

from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.training import TensorExams, TrainConfig, train


def make_data(n: int = 32) -> TensorExams:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 4, 1, 48, 40, generator=g)
    signal = images.mean(dim=(1, 2, 3, 4))
    rng = np.random.default_rng(0)
    event = (signal > signal.median()).numpy().astype(int)
    labels = pd.DataFrame({"time": np.where(event == 1, rng.uniform(0.5, 4, n), 6.0), "event": event,
                           "density": rng.choice(list("abcd"), n), "age": rng.uniform(40, 70, n)})
    return TensorExams(torch.ones(n, 4, dtype=torch.bool), labels, images=images)


if __name__ == "__main__":
    out, batch = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config(image_size=(48, 40)))
    result = train(model, make_data(), None, TrainConfig(epochs=3, batch_size=batch, lr=1e-3, device="cpu",
                                                         progress=False, patience=0))
    if int(os.environ.get("RANK", "0")) == 0:
        json.dump([row["train_loss"] for row in result.history], open(out, "w"))
