"""The training loop: one process on CPU or GPU, or N processes under ``torchrun`` (DDP).

* bf16 autocast on CUDA, float32 on CPU (bf16 on CPUs without AVX512-BF16/AMX is many times
  slower, so it is never chosen automatically there);
* seeded; checkpoints every epoch (safetensors weights, optimizer state loaded with
  ``torch.load(weights_only=True)``, JSON state) and ``resume=True``;
* model selection and early stopping on the validation C-index (Harrell's, truncated at the
  last horizon, on the last year's risk);
* per-epoch metrics in ``metrics.csv`` and ``metrics.jsonl``; a progress bar on the main process.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from riskmodel.device import choose_device
from riskmodel.survival import survival_targets
from riskmodel.training import distributed as distrib
from riskmodel.training.augment import default_augmentation
from riskmodel.training.data import epoch_indices
from riskmodel.training.losses import balance_weight, masked_bce

INPUT_KEYS = ("images", "view_embeddings")


@dataclass
class TrainConfig:
    """Training settings (JSON-serialisable with :meth:`to_dict`).

    Attributes:
        epochs: passes over the training data.
        batch_size: exams per step *per process*.
        lr, weight_decay: AdamW settings.
        seed: seeds parameters' initialisation order, shuffling and dropout.
        device: ``"auto"`` (GPU if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``…
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"bf16"`` or ``"fp32"``.
        num_workers: DataLoader worker processes.
        balance: weight positive years by negatives/positives (class balancing).
        aux_weight: weight of the auxiliary density (cross-entropy) and age (smooth L1 on
            decades) losses, on exams where those are known.
        patience: epochs without a better validation C-index before stopping (0 = never stop).
        freeze_encoder: train only the aggregator and heads (second stage of two-stage training).
        max_steps_per_epoch: cap on steps per epoch (smoke tests, benchmarks).
        progress: show a progress bar on the main process.
        augment: random top-bottom flips, ±20° rotations and ±10% gain per view on training
            batches of images (:func:`riskmodel.training.augment.default_augmentation`).
        schedule: learning rate over the run: ``"constant"`` or ``"cosine"`` (cosine decay from
            ``lr`` to 0 over ``epochs``, stepped once per epoch).
        select: which epoch's weights the model holds at the end: ``"best"`` (the best validation
            C-index, else the lowest training loss; needs ``out_dir``, where they are saved) or
            ``"last"`` (the last epoch run; validation is still measured and logged). With a cosine
            schedule and a small validation set, ``"last"`` avoids picking an epoch by a noisy
            C-index (``benchmarks/image_sample_efficiency.py``, docs/training.md).
    """

    epochs: int = 10
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    balance: bool = False
    aux_weight: float = 0.2
    patience: int = 3
    freeze_encoder: bool = False
    max_steps_per_epoch: int | None = None
    progress: bool = True
    augment: bool = False
    schedule: str = "constant"
    select: str = "best"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule={self.schedule!r}: use 'constant' or 'cosine'")
        if self.select not in ("best", "last"):
            raise ValueError(f"select={self.select!r}: use 'best' or 'last'")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision={self.precision!r}: use 'auto', 'bf16' or 'fp32'")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.aux_weight >= 0 and self.patience >= 0):
            raise ValueError("lr must be > 0; weight_decay, aux_weight and patience must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training setting(s): {sorted(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    """What :func:`train` returns. ``history`` has one dict per epoch (the rows of metrics.csv)."""

    best_epoch: int
    best_metric: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def _epoch_lr(config: TrainConfig, epoch: int) -> float:
    """Learning rate for ``epoch`` (0-based) under ``config.schedule``."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    return config.lr


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        if device.type == "cpu":
            capability = torch.backends.cpu.get_cpu_capability()
            if "AVX512" not in capability.upper() and "AMX" not in capability.upper():
                warnings.warn("bf16 autocast on a CPU without AVX512-BF16/AMX is very slow; use precision='fp32'",
                              stacklevel=3)
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _forward(model: torch.nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    if "images" in batch:
        return model(batch["images"], batch["mask"])
    return model(view_embeddings=batch["view_embeddings"], mask=batch["mask"])


def _loss(out: dict[str, torch.Tensor], batch: dict[str, Any], pos_weight, aux_weight: float) -> torch.Tensor:
    loss = masked_bce(out["logits"], batch["targets"], batch["weights"], pos_weight)
    n = batch["targets"].shape[0]
    if aux_weight > 0 and "density_logits" in out:
        known = batch["density"] >= 0
        if known.any():
            ce = F.cross_entropy(out["density_logits"][known].float(), batch["density"][known], reduction="sum")
            loss = loss + aux_weight * ce / n
    if aux_weight > 0 and "age" in out:
        known = ~torch.isnan(batch["age"])
        if known.any():
            err = F.smooth_l1_loss(out["age"][known].float() / 10, batch["age"][known] / 10, reduction="sum")
            loss = loss + aux_weight * err / n
    return loss


@torch.no_grad()
def predict(model: torch.nn.Module, data: Dataset, batch_size: int = 8, device: str | torch.device = "auto",
            precision: str = "auto", num_workers: int = 0, progress: bool = False) -> dict[str, np.ndarray]:
    """Run a model over a dataset.

    Returns:
        ``risk`` (N, Y) probabilities, ``embedding`` (N, D), ``view_embeddings`` (N, 4, D),
        ``mask`` (N, 4), and ``time``/``event`` when the dataset has labels — float32/64 numpy.
    """
    dev = choose_device(device) if isinstance(device, str) else device
    model = model.to(dev).eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    keep = ("risk", "embedding", "view_embeddings")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*keep, "mask", "time", "event")}
    iterator = loader
    if progress:
        from tqdm import tqdm

        iterator = tqdm(loader, desc="predicting", unit="batch")
    for batch in iterator:
        batch = _to(batch, dev)
        with _autocast(dev, precision):
            out = _forward(model, batch)
        for k in keep:
            parts[k].append(out[k].float().cpu().numpy())
        parts["mask"].append(batch["mask"].cpu().numpy())
        for k in ("time", "event"):
            if k in batch:
                parts[k].append(batch[k].cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items() if v}


def _validate(model, data, config: TrainConfig, device, pos_weight, n_years: int) -> dict[str, float]:
    from riskmodel.evaluation.metrics import harrell_c_index

    pred = predict(model, data, batch_size=config.batch_size, device=device, precision=config.precision)
    risk = pred["risk"]
    metrics = {"val_c_index": float("nan")}
    if (pred["event"] == 1).any():
        metrics["val_c_index"] = harrell_c_index(pred["time"], pred["event"], risk[:, -1], tau=float(n_years))
    y, w = survival_targets(pred["time"], pred["event"], n_years)
    logits = torch.logit(torch.from_numpy(risk).double().clamp(1e-7, 1 - 1e-7))
    metrics["val_loss"] = float(masked_bce(logits, torch.from_numpy(y).double(), torch.from_numpy(w).double(),
                                           None if pos_weight is None else pos_weight.double().cpu()))
    return metrics


def _save_weights(model, path: Path) -> None:
    """The model's state dict as safetensors at ``path``, with the mode of every other file (0666
    less the umask; safetensors' own ``save_file`` makes 0600 files)."""
    from safetensors.torch import save

    from riskmodel.jsonstate import write_file

    write_file(path, save({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}))


def _save_checkpoint(folder: Path, model, optimizer, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.safetensors.tmp"
    _save_weights(model, tmp)
    tmp.replace(folder / "model.safetensors")
    torch.save(optimizer.state_dict(), folder / "optimizer.pt.tmp")
    (folder / "optimizer.pt.tmp").replace(folder / "optimizer.pt")
    (folder / "state.json").write_text(json.dumps(state, indent=2))


class CheckpointError(ValueError):
    """A training checkpoint that cannot be resumed from; the message names the file (the CLI exits 2)."""


def _load_checkpoint(folder: Path, model, optimizer, device) -> dict:
    """Restore ``model`` and ``optimizer`` from ``folder`` and return its ``state.json``.

    ``optimizer.pt`` is read with ``torch.load(weights_only=True)`` only: a file holding anything
    but tensors and plain containers (e.g. a pickle that would run code) is refused, never unpickled.

    Raises:
        CheckpointError: a file that is missing, unreadable, not of this model or not plain data.
    """
    from safetensors.torch import load_file

    fix = "; delete the checkpoint folder or train without --resume"
    path = folder / "model.safetensors"
    try:
        model.load_state_dict(load_file(str(path), device=str(device)))
        path = folder / "optimizer.pt"
        try:
            opt_state = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:  # an UnpicklingError whose text suggests unsafe loading: not repeated
            raise CheckpointError(f"{path}: refused ({type(exc).__name__}): not a plain optimizer state of tensors "
                                  f"and numbers; riskmodel never unpickles other objects{fix}") from None
        optimizer.load_state_dict(opt_state)
        path = folder / "state.json"
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or not {"epoch", "best_metric", "best_epoch", "stale", "history"} <= set(state):
            raise ValueError("not a state written by riskmodel.training.train")
    except (CheckpointError, MemoryError):  # a resource error is not a bad checkpoint
        raise
    except Exception as exc:  # OSError, ValueError, RuntimeError (shapes), safetensors' own error, …
        raise CheckpointError(f"{path}: cannot resume from it ({type(exc).__name__}: {exc}){fix}") from None
    return state


def train(model: torch.nn.Module, train_data: Dataset, val_data: Dataset | None = None,
          config: TrainConfig | None = None, out_dir: str | Path | None = None, resume: bool = False) -> TrainResult:
    """Train ``model`` (an :class:`riskmodel.nn.ImageRiskModel`) on labelled exams.

    Args:
        model: the model; trained in place. At the end it holds the weights ``config.select``
            names: the best epoch's (by validation C-index, or training loss without validation
            data; with ``out_dir``) or the last epoch's.
        train_data, val_data: datasets yielding ``images`` (or ``view_embeddings``), ``mask``,
            ``targets``, ``weights``, ``density``, ``age``, ``time``, ``event`` — e.g.
            :class:`riskmodel.training.LabelledExams`.
        config: :class:`TrainConfig`.
        out_dir: where checkpoints, ``best.safetensors`` and the metrics log go (main process).
        resume: continue from ``out_dir/checkpoint`` if it exists.

    Raises:
        CheckpointError: with ``resume``, a checkpoint that cannot be read safely or is not of this
            model (a ``ValueError``).
    """
    config = config or TrainConfig()
    info = distrib.setup(config.device)
    torch.manual_seed(config.seed)
    device = info.device
    model.to(device)
    if config.freeze_encoder:
        for p in model.parameter_groups()["encoder"]:
            p.requires_grad_(False)
    core = model
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":  # batch statistics over the global batch, not each GPU's 1-2 exams
            core = torch.nn.SyncBatchNorm.convert_sync_batchnorm(core)

        # Auxiliary heads get no loss in a batch without known density/age: let DDP skip them.
        model = DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=True)
    params = [p for p in core.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    n_years = core.config.n_years
    pos_weight = None
    if config.balance:
        labels = train_data.labels if hasattr(train_data, "labels") else None
        if labels is None:
            raise ValueError("balance=True needs a dataset with .labels (LabelledExams or TensorExams)")
        pos_weight = torch.from_numpy(balance_weight(labels.targets, labels.weights)).to(device)

    out = Path(out_dir) if out_dir is not None else None
    history: list[dict[str, float]] = []
    start_epoch, best_metric, best_epoch, stale = 0, -math.inf, -1, 0
    if resume and out is not None and (out / "checkpoint" / "state.json").exists():
        state = _load_checkpoint(out / "checkpoint", core, optimizer, device)
        start_epoch, best_metric, best_epoch = state["epoch"] + 1, state["best_metric"], state["best_epoch"]
        stale, history = state["stale"], state["history"]
    if out is not None and info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))

    augment = default_augmentation() if config.augment else None
    stopped = False
    for epoch in range(start_epoch, config.epochs):
        model.train()
        lr = _epoch_lr(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        gen = torch.Generator().manual_seed(config.seed * 7919 + epoch * 101 + info.rank)
        indices = epoch_indices(len(train_data), epoch, config.seed, info.rank, info.world_size)
        loader = DataLoader(Subset(train_data, indices), batch_size=config.batch_size, shuffle=False,
                            num_workers=config.num_workers, pin_memory=device.type == "cuda", drop_last=True)
        torch.manual_seed(config.seed * 1000 + epoch * 10 + info.rank)  # dropout stream
        steps = len(loader) if config.max_steps_per_epoch is None else min(len(loader), config.max_steps_per_epoch)
        bar = None
        if config.progress and info.is_main:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step")
        t0, total_loss, views = time.perf_counter(), 0.0, 0
        for step, batch in enumerate(loader):
            if step >= steps:
                break
            batch = _to(batch, device)
            if augment is not None and "images" in batch:
                batch["images"] = augment(batch["images"], batch["mask"], gen)
            with _autocast(device, config.precision):
                result = _forward(model, batch)
            loss = _loss(result, batch, pos_weight, config.aux_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach())
            views += int(batch["mask"].sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss / (step + 1):.4f}")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": distrib.mean_across(total_loss / max(steps, 1), info),
               "seconds": seconds, "images_per_second": distrib.mean_across(views / max(seconds, 1e-9), info)
               * info.world_size, "lr": lr}
        metric = -row["train_loss"]
        if val_data is not None:
            row.update(_validate(core, val_data, config, device, pos_weight, n_years))
            metric = row["val_c_index"] if not math.isnan(row["val_c_index"]) else -row["val_loss"]
        improved = metric > best_metric
        if improved:
            best_metric, best_epoch, stale = metric, epoch + 1, 0
        else:
            stale += 1
        history.append(row)
        if config.progress and info.is_main:
            print(_epoch_line(row, config.epochs, best_metric, best_epoch), file=sys.stderr, flush=True)
        if out is not None and info.is_main:
            _write_metrics(out, history)
            if improved:
                _save_weights(core, out / "best.safetensors")
            _save_checkpoint(out / "checkpoint", core, optimizer,
                             {"epoch": epoch, "best_metric": best_metric, "best_epoch": best_epoch, "stale": stale,
                              "history": history})
        distrib.barrier(info)
        if config.patience and stale >= config.patience:
            stopped = True
            break
    if config.select == "best" and out is not None and (out / "best.safetensors").exists():
        from safetensors.torch import load_file

        core.load_state_dict(load_file(str(out / "best.safetensors"), device=str(device)))
    if info.distributed:
        # Free the DDP wrapper (its reducer holds the process group) before the group is destroyed;
        # left to the garbage collector it may be torn down after the group, aborting the process.
        import gc

        model = result = loss = batch = None  # the last references to the wrapper and its graph
        gc.collect()
    distrib.cleanup(info)
    return TrainResult(best_epoch=best_epoch, best_metric=best_metric, history=history, stopped_early=stopped)


def _epoch_line(row: dict[str, float], epochs: int, best_metric: float, best_epoch: int) -> str:
    """One line after each epoch: training loss, and with validation data its C-index (the model
    selection metric) and loss, and the best epoch so far.

    Examples:
        >>> _epoch_line({"epoch": 2, "train_loss": 0.5, "val_c_index": 0.61, "val_loss": 0.4, "seconds": 3.0},
        ...             12, 0.63, 1)
        'epoch 2/12: train loss 0.5000, validation C-index 0.610, loss 0.4000 (best C-index 0.630 at epoch 1), 3 s'
    """
    text = f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}"
    if "val_c_index" in row:
        c = row["val_c_index"]
        text += f", validation C-index {'–' if math.isnan(c) else f'{c:.3f}'}, loss {row['val_loss']:.4f}"
        if not math.isnan(c) and best_metric >= 0:
            text += f" (best C-index {best_metric:.3f} at epoch {best_epoch})"
    return text + f", {row['seconds']:.0f} s"


def _write_metrics(out: Path, history: list[dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    (out / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
