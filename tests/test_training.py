"""The training loop on CPU with tiny configs: learning, logs, checkpoints, resume, DDP parity."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.training import TensorExams, TrainConfig, predict, train

HERE = Path(__file__).parent


def _data(n: int, seed: int) -> TensorExams:
    """Exams whose brightness sets the risk: cancer early for bright exams, censored late otherwise."""
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(n, generator=g)
    images = (0.2 + 0.6 * level[:, None, None, None, None]) * torch.ones(n, 4, 1, 48, 40)
    images = images + 0.05 * torch.rand(n, 4, 1, 48, 40, generator=g)
    rng = np.random.default_rng(seed)
    event = (rng.random(n) < level.numpy()).astype(int)
    time = np.where(event == 1, 1 + 3 * (1 - level.numpy()), 6.0)
    labels = pd.DataFrame({"time": time, "event": event, "density": rng.choice(list("abcd"), n)})
    return TensorExams(torch.ones(n, 4, dtype=torch.bool), labels, images=images)


def test_training_learns_logs_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config(image_size=(48, 40)))
    config = TrainConfig(epochs=6, batch_size=8, lr=3e-3, device="cpu", progress=False, patience=0)
    result = train(model, _data(96, 1), _data(48, 2), config, out_dir=tmp_path)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    # Validation C-index approaches that of the true signal (exam brightness), 0.797 on this data.
    from riskmodel.evaluation import harrell_c_index

    val = _data(48, 2)
    oracle = harrell_c_index(val.labels.time, val.labels.event, val.inputs[1].mean(dim=(1, 2, 3, 4)).numpy(), tau=5.0)
    assert result.best_metric > oracle - 0.1 and result.best_metric > 0.65
    for name in ("metrics.csv", "metrics.jsonl", "best.safetensors", "train_config.json",
                 "checkpoint/model.safetensors", "checkpoint/optimizer.pt", "checkpoint/state.json"):
        assert (tmp_path / name).exists(), name
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert list(log["epoch"]) == [1, 2, 3, 4, 5, 6] and {"val_c_index", "val_loss", "images_per_second"} <= set(log)
    pred = predict(model, _data(16, 3), batch_size=4, device="cpu")
    assert pred["risk"].shape == (16, 5) and (np.diff(pred["risk"], axis=1) >= 0).all()


def test_resume_continues_from_the_checkpoint(tmp_path):
    def run(epochs, resume):
        torch.manual_seed(0)
        model = ImageRiskModel(tiny_config(image_size=(48, 40)))
        config = TrainConfig(epochs=epochs, batch_size=8, lr=1e-3, device="cpu", progress=False, patience=0)
        return train(model, _data(32, 1), None, config, out_dir=tmp_path / ("b" if resume else "a"), resume=resume)

    full = run(3, False)
    run(2, True)  # two epochs, then …
    resumed = run(3, True)  # … the third from the checkpoint
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    np.testing.assert_allclose([r["train_loss"] for r in resumed.history],
                               [r["train_loss"] for r in full.history], rtol=1e-5)


def test_early_stopping(tmp_path):
    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config(image_size=(48, 40)))
    config = TrainConfig(epochs=30, batch_size=8, lr=0.0 + 1e-9, device="cpu", progress=False, patience=2)
    result = train(model, _data(32, 1), _data(32, 2), config)
    assert result.stopped_early and len(result.history) < 30


def test_frozen_encoder_second_stage():
    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config(image_size=(48, 40)))
    data = _data(32, 1)
    cached = predict(model, data, batch_size=8, device="cpu")
    stage2 = TensorExams(torch.from_numpy(cached["mask"]), pd.DataFrame({"time": data.labels.time,
                                                                         "event": data.labels.event}),
                         view_embeddings=torch.from_numpy(cached["view_embeddings"]))
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    train(model, stage2, None, TrainConfig(epochs=2, batch_size=8, device="cpu", progress=False, patience=0,
                                           freeze_encoder=True))
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("select", ["best", "last"])
def test_select_keeps_the_best_or_the_last_epochs_weights(tmp_path, select):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config(image_size=(48, 40)))
    config = TrainConfig(epochs=4, batch_size=8, lr=3e-3, device="cpu", progress=False, patience=0, select=select)
    # Validation labels unrelated to the images: the best validation epoch is not the last one.
    src, order = _data(32, 2), np.random.default_rng(5).permutation(32)
    val = TensorExams(torch.ones(32, 4, dtype=torch.bool), pd.DataFrame(
        {"time": np.asarray(src.labels.time)[order], "event": np.asarray(src.labels.event)[order]}),
                      images=src.inputs[1])
    result = train(model, _data(64, 1), val, config, out_dir=tmp_path)
    assert result.best_epoch < 4 and len(result.history) == 4
    best = load_file(str(tmp_path / "best.safetensors"))
    last = load_file(str(tmp_path / "checkpoint" / "model.safetensors"))
    assert any(not torch.equal(best[k], last[k]) for k in best)
    held = model.state_dict()
    assert all(torch.equal(held[k], (best if select == "best" else last)[k]) for k in held)


def test_bad_config():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.from_dict({"epochs": 1, "lr_max": 2})
    with pytest.raises(ValueError, match="select='first': use 'best' or 'last'"):
        TrainConfig(select="first")


def test_two_process_ddp_matches_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    single = tmp_path / "single.json"
    subprocess.run([sys.executable, str(HERE / "ddp_worker.py"), str(single), "8"], check=True, env=env,
                   timeout=300)
    double = tmp_path / "ddp.json"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(HERE / "ddp_worker.py"), str(double), "4"], env=env, timeout=300, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    a, b = json.loads(single.read_text()), json.loads(double.read_text())
    assert len(a) == len(b) == 3
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_progress_prints_the_validation_c_index_after_each_epoch(capsys):
    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config(image_size=(48, 40)))
    config = TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu", progress=True, patience=0)
    result = train(model, _data(16, 1), _data(16, 2), config)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ") and ":" in line
             and "validation C-index" in line]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2: train loss ")
    assert f"{result.history[1]['val_c_index']:.3f}" in lines[1]
