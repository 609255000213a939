"""The image-model training recipe behind ``riskmodel train``, as one function: :func:`train_image_model`.

Labelled exams are split by woman into train / validation / calibration sets
(:func:`split_by_woman`), the network is trained with early stopping on the validation C-index
(optionally followed by Mirai's second stage: the encoder frozen, per-view embeddings cached, the
aggregator and heads trained on them), per-year calibrators are fitted on the held-out calibration
set with IPCW, and a model bundle (safetensors + JSON + SHA-256 manifest) is written to
``OUT/bundle``, ready for :func:`riskmodel.load_image_model`.

Example (a sketch; ``docs/training.md`` runs it end to end)::

    from riskmodel.tables import read_table
    from riskmodel.imaging import resolve_view_paths
    from riskmodel.training.recipe import train_image_model

    run = train_image_model(read_table("labels.csv", text=("exam_id",)),
                            resolve_view_paths(read_table("exams.csv"), "exams.csv"), "run",
                            preset="small", image_size=(256, 208), epochs=20)
    run.bundle  # Path("run/bundle")
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from riskmodel.calibration import YearlyCalibrator
from riskmodel.inference import ImageRiskPredictor, image_preprocessing
from riskmodel.nn import ImageRiskModel
from riskmodel.nn.config import preset_config
from riskmodel.tables import ParameterError
from riskmodel.training.data import LabelledExams, TensorExams
from riskmodel.training.trainer import TrainConfig, TrainResult, predict, train

#: Parts of :func:`split_by_woman`, in the order the fractions are drawn.
PARTS = ("train", "val", "calib")


@dataclass
class ImageTrainingRun:
    """What :func:`train_image_model` did.

    Attributes:
        result: the training loop's result (best epoch, best validation metric, history); the
            second stage's when ``stage2_epochs`` > 0.
        bundle: the written bundle's folder; None in a process of rank > 0 under ``torchrun``
            (only rank 0 calibrates and saves).
        calibrator: the fitted per-year calibrator, or None (not requested, the calibration
            split empty, or fitting failed: see ``calibration``).
        calibration: what the bundle records about calibration, e.g. ``"isotonic (IPCW) on 12
            held-out exams"`` or ``"not fitted: ..."``.
        calibration_failed: True when a calibrator was asked for and could not be fitted (the
            bundle's risks are then uncalibrated).
        sizes: exams per split: ``{"train": n, "val": n, "calib": n}``.
    """

    result: TrainResult
    bundle: Path | None
    calibrator: YearlyCalibrator | None
    calibration: str
    calibration_failed: bool
    sizes: dict[str, int]


def split_by_woman(keys: pd.Series, fractions: tuple[float, float], seed: int) -> np.ndarray:
    """``'train'`` / ``'val'`` / ``'calib'`` per row, by woman: all rows with the same key land in one split.

    Args:
        keys: one key per row (the woman's id, as text).
        fractions: ``(validation, calibration)`` fractions of women, each in [0, 1], summing to at most 1.
        seed: the random seed (the split is deterministic for a seed and a set of keys).

    Returns:
        An array of ``len(keys)`` labels.
    """
    unique = pd.Index(keys.unique())
    rng = np.random.default_rng(seed)
    u = rng.random(len(unique))
    val, calib = fractions
    part = np.where(u < val, "val", np.where(u < val + calib, "calib", "train"))
    return pd.Series(part, index=unique).loc[keys].to_numpy()


def check_training_tables(cohort: pd.DataFrame, exams: pd.DataFrame, key: str, label_key: str) -> None:
    """The columns :func:`train_image_model` reads: ``cohort`` has ``label_key``, ``time`` and ``event``;
    ``exams`` has ``key``, once per exam.

    Raises:
        ParameterError: for parameter ``cohort`` or ``exams``, listing the missing columns; for ``exams``,
            an exam key on more than one row (the exam would be trained on as often as it appears).
    """
    for frame, name, cols in ((cohort, "cohort", (label_key, "time", "event")), (exams, "exams", (key,))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ParameterError(name, None, f"missing column(s) {missing}")
    keys = exams[key].astype(str)
    repeated = keys[keys.duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        rows = np.flatnonzero((keys == first).to_numpy())
        raise ParameterError("exams", None, f"{key} {first!r} is on {rows.size} rows (rows {rows[:5].tolist()}; "
                             f"{repeated.nunique()} repeated keys in all): one row per exam, as 'riskmodel scan "
                             f"--exams' writes; the exam would be trained on as often as it appears")


def train_image_model(
    cohort: pd.DataFrame,
    exams: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    preset: str = "resnet18",
    overrides: Mapping[str, Any] | None = None,
    image_size: tuple[int, int] = (512, 416),
    key: str = "exam_id",
    label_key: str = "exam_id",
    voi: str = "auto",
    epochs: int = 16,
    stage2_epochs: int = 0,
    batch_size: int = 8,
    lr: float = 3e-4,
    patience: int = 0,
    balance: bool = False,
    aux_weight: float = 0.2,
    augment: bool = True,
    schedule: str = "cosine",
    select: str = "last",
    val_fraction: float = 0.15,
    calib_fraction: float = 0.15,
    calibration: str = "isotonic",
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    workers: int = 0,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    sources: Mapping[str, str] | None = None,
) -> ImageTrainingRun:
    """Train :class:`riskmodel.nn.ImageRiskModel` on labelled exams and write ``OUT/bundle`` (``riskmodel train``).

    Args:
        cohort: labels, one row per exam: ``label_key``, ``time`` (years), ``event`` (0 censored,
            1 cancer, 2 other death), optionally ``density`` and ``age``.
        exams: exams table (:func:`riskmodel.imaging.assemble_exams`; view paths resolved, e.g. by
            :func:`riskmodel.imaging.resolve_view_paths`) with ``key``; ``patient_id`` (when present)
            keeps a woman's exams in one split.
        out: output folder: ``training/`` (logs, checkpoints; ``training_stage2/``) and ``bundle/``.
        preset, overrides, image_size: the network: :func:`riskmodel.nn.config.preset_config` of
            ``preset`` (``resnet18``, ``small``, ``tiny``) at ``image_size`` (rows, columns), then
            ``overrides`` (ModelConfig fields); recorded in the bundle.
        key, label_key: the exams column and the cohort column holding the same exam keys.
        voi: how pixel values are mapped (:data:`riskmodel.imaging.VOI_MODES`); stored in the bundle.
        epochs, batch_size, lr, patience, balance, augment, schedule, select, seed, workers, device: the
            training loop's settings (:class:`riskmodel.training.TrainConfig`; ``workers`` data-loading
            processes; ``patience`` 0 turns early stopping off). The defaults are the recipe the
            sample-efficiency grid supports (``docs/training.md``): 16 epochs under a cosine schedule,
            augmentation, no early stopping, the last epoch's weights kept (a small validation set's
            C-index is too noisy to pick an epoch by).
        aux_weight: weight of the auxiliary BI-RADS density (cross-entropy) and age (smooth L1 on decades)
            losses on exams whose cohort row has them (:class:`~riskmodel.training.TrainConfig`; 0 turns them off).
        stage2_epochs: then freeze the encoder, cache view embeddings and train the aggregator and
            heads for this many epochs (0: off).
        val_fraction, calib_fraction: fractions of women held out for validation and calibration.
        calibration: ``"isotonic"``, ``"platt"`` or ``"none"``.
        cache_dir: cache of preprocessed views (speeds up later epochs).
        resume: continue from ``OUT/training/checkpoint``.
        progress: progress bars on stderr.
        sources: what the bundle records of the data's origin, e.g. ``{"cohort": "labels.csv",
            "exams": "exams.csv"}``.

    Returns:
        :class:`ImageTrainingRun`.

    Raises:
        ParameterError: a missing column (parameter ``cohort`` or ``exams``).
        ValueError: no exam's key matches the cohort, an unknown preset or override, bad settings.
    """
    check_training_tables(cohort, exams, key, label_key)
    size = (int(image_size[0]), int(image_size[1]))
    overrides = dict(overrides or {})
    config = preset_config(preset, **{"image_size": size, **overrides})
    labels = cohort.set_index(cohort[label_key].astype(str))
    exams = exams[exams[key].astype(str).isin(labels.index)].reset_index(drop=True)
    if exams.empty:
        raise ValueError(f"no exam's {key} matches the cohort's {label_key}")
    woman = exams["patient_id"] if "patient_id" in exams else exams[key]
    split = split_by_woman(woman.astype(str), (val_fraction, calib_fraction), seed)
    data = {part: LabelledExams(exams[split == part].reset_index(drop=True), labels, key=key, image_size=size,
                                cache_dir=cache_dir, n_years=config.n_years, voi=voi)
            for part in PARTS}
    torch.manual_seed(seed)
    model = ImageRiskModel(config)
    tconf = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, balance=balance,
                        aux_weight=aux_weight, patience=patience, num_workers=workers, progress=progress,
                        augment=augment, schedule=schedule, select=select)
    out = Path(out)
    result = train(model, data["train"], data["val"] if len(data["val"]) else None, tconf, out_dir=out / "training",
                   resume=resume)
    if stage2_epochs:
        result = second_stage(model, data, dataclasses.replace(tconf, epochs=stage2_epochs, freeze_encoder=True),
                              out / "training_stage2")
    sizes = {part: len(data[part]) for part in PARTS}
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, the main process calibrates and saves
        return ImageTrainingRun(result, None, None, "", False, sizes)
    calibrator, note, failed = fit_calibrator(model, data["calib"], calibration, batch_size, device)
    meta = {"calibration": note, "training": {
        **dict(sources or {}), "n_train": sizes["train"], "n_val": sizes["val"], "n_calib": sizes["calib"],
        "best_epoch": result.best_epoch, "best_val_metric": result.best_metric, "config": tconf.to_dict(),
        "model": {"preset": preset, "overrides": overrides}}}
    predictor = ImageRiskPredictor(model, image_preprocessing(size, voi), calibrator, meta, device="cpu")
    predictor.save(out / "bundle", overwrite=True)
    return ImageTrainingRun(result, out / "bundle", calibrator, note, failed, sizes)


def fit_calibrator(model: Any, calib: LabelledExams, method: str, batch_size: int,
                   device: str) -> tuple[YearlyCalibrator | None, str, bool]:
    """Per-year calibrators fitted with IPCW on the held-out ``calib`` exams.

    Returns:
        ``(calibrator or None, the note the bundle records, whether fitting was asked for and failed)``.
    """
    if method == "none":
        return None, "not requested", False
    if not len(calib):
        return None, "not fitted: the calibration split is empty", False
    pred = predict(model, calib, batch_size=batch_size, device=device)
    try:
        calibrator = YearlyCalibrator(method=method, n_years=model.config.n_years)
        # IPCW: women censored before year k are represented by those followed longer.
        calibrator.fit(pred["risk"], pred["time"], pred["event"], ipcw=True)
    except ValueError as exc:  # e.g. no cancer in a year of the calibration split
        return None, f"not fitted: {exc}", True
    return calibrator, f"{method} (IPCW) on {len(calib)} held-out exams", False


def second_stage(model: Any, data: Mapping[str, LabelledExams], config: TrainConfig, out_dir: Path) -> TrainResult:
    """Mirai's second stage: cache per-view embeddings once (frozen encoder), train the heads on them.

    Args:
        model: the trained :class:`riskmodel.nn.ImageRiskModel` (trained further in place).
        data: the ``"train"`` and ``"val"`` exams (an empty validation set: none).
        config: the training settings, with ``freeze_encoder=True`` and the second stage's epochs.
        out_dir: logs and checkpoints of this stage.
    """
    def cached(part: str) -> TensorExams | None:
        if not len(data[part]):
            return None
        pred = predict(model, data[part], batch_size=config.batch_size, device=config.device)
        labels = pd.DataFrame({"time": pred["time"], "event": pred["event"],
                               "density": data[part].labels.density, "age": data[part].labels.age})
        labels["density"] = labels["density"].map({-1: None, 0: "a", 1: "b", 2: "c", 3: "d"})
        return TensorExams(torch.from_numpy(pred["mask"]), labels,
                           view_embeddings=torch.from_numpy(pred["view_embeddings"]), n_years=model.config.n_years)

    return train(model, cached("train"), cached("val"), config, out_dir=out_dir)

