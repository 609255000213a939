"""Datasets that pair exams with survival labels, and the epoch sampler shared by 1 and N processes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from riskmodel.schema import DENSITY_CODES
from riskmodel.survival import survival_targets

LABEL_COLUMNS = ("time", "event")


def _density_index(values: pd.Series) -> np.ndarray:
    """BI-RADS a–d (or 1–4) as class 0–3; -1 where unknown."""
    text = values.astype(str).str.strip().str.lower()
    out = text.map({**{k: v - 1 for k, v in DENSITY_CODES.items()}, **{str(v): v - 1 for v in DENSITY_CODES.values()},
                    **{f"{v}.0": v - 1 for v in DENSITY_CODES.values()}})
    return out.fillna(-1).to_numpy(dtype=np.int64)


class SurvivalLabels:
    """Per-exam training targets, aligned to an ordered list of exam keys.

    Args:
        labels: one row per exam with ``time`` (years), ``event`` (0/1/2) and optionally
            ``density`` (a–d) and ``age`` (years), indexed by the exam key.
        keys: exam keys in dataset order; every key must have a label row.
        n_years: number of yearly horizons.
    """

    def __init__(self, labels: pd.DataFrame, keys: list[str], n_years: int = 5):
        missing_cols = [c for c in LABEL_COLUMNS if c not in labels.columns]
        if missing_cols:
            raise ValueError(f"labels lack column(s) {missing_cols}")
        if labels.index.duplicated().any():
            raise ValueError(f"labels: exam key {labels.index[labels.index.duplicated()][0]!r} appears twice")
        absent = [k for k in keys if k not in labels.index]
        if absent:
            raise ValueError(f"{len(absent)} exam(s) have no label row, e.g. {absent[0]!r}")
        rows = labels.loc[keys]
        self.time = rows["time"].to_numpy(dtype=np.float64)
        self.event = rows["event"].to_numpy(dtype=np.int64)
        self.targets, self.weights = survival_targets(self.time, self.event, n_years)
        self.density = _density_index(rows["density"]) if "density" in rows else np.full(len(rows), -1)
        self.age = rows["age"].to_numpy(dtype=np.float32) if "age" in rows else np.full(len(rows), np.nan, np.float32)

    def item(self, i: int) -> dict[str, Any]:
        return {
            "targets": torch.from_numpy(self.targets[i]),
            "weights": torch.from_numpy(self.weights[i]),
            "density": torch.tensor(self.density[i]),
            "age": torch.tensor(self.age[i]),
            "time": torch.tensor(self.time[i]),
            "event": torch.tensor(self.event[i]),
        }


class LabelledExams(Dataset):
    """Exams from :class:`riskmodel.imaging.ExamDataset` with their survival labels.

    Args:
        exams: output of :func:`riskmodel.imaging.assemble_exams` (or any frame with the view
            path columns and ``exam_id``).
        labels: see :class:`SurvivalLabels`, indexed by the values of ``exams[key]``.
        key: the exams column that matches the labels' index (e.g. ``accession_number``).
        image_size, cache_dir, voi: passed to :class:`~riskmodel.imaging.ExamDataset`.
    """

    def __init__(self, exams: pd.DataFrame, labels: pd.DataFrame, key: str = "exam_id",
                 image_size: tuple[int, int] = (512, 416), cache_dir: str | None = None, n_years: int = 5,
                 voi: str = "auto"):
        from riskmodel.imaging import ExamDataset

        if key not in exams.columns:
            raise ValueError(f"exams has no column {key!r} to match the labels")
        self.images = ExamDataset(exams, image_size=image_size, cache_dir=cache_dir, voi=voi)
        self.keys = exams[key].astype(str).tolist()
        self.labels = SurvivalLabels(labels.set_axis(labels.index.astype(str)), self.keys, n_years)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.images[i]
        return {"images": item["images"], "mask": item["mask"], **self.labels.item(i)}


class TensorExams(Dataset):
    """Exams already in memory: ``images`` (N, 4, 1, H, W) or ``view_embeddings`` (N, 4, D), a mask
    (N, 4) and labels — for tests, benchmarks and the second stage of two-stage training."""

    def __init__(self, mask: torch.Tensor, labels: pd.DataFrame, *, images: torch.Tensor | None = None,
                 view_embeddings: torch.Tensor | None = None, n_years: int = 5):
        if (images is None) == (view_embeddings is None):
            raise ValueError("give exactly one of images or view_embeddings")
        self.inputs = ("images", images) if images is not None else ("view_embeddings", view_embeddings)
        n = len(self.inputs[1])
        if mask.shape != (n, 4) or len(labels) != n:
            raise ValueError(f"mask {tuple(mask.shape)} and labels ({len(labels)} rows) must match {n} exams")
        self.mask = mask.bool()
        keys = [str(i) for i in range(n)]
        self.labels = SurvivalLabels(labels.reset_index(drop=True).set_axis(keys), keys, n_years)

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, i: int) -> dict[str, Any]:
        name, values = self.inputs
        return {name: values[i].float(), "mask": self.mask[i], **self.labels.item(i)}


def epoch_indices(n: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> list[int]:
    """The indices one process visits in one epoch.

    One permutation per ``(seed, epoch)``; process ``rank`` of ``world_size`` takes every
    ``world_size``-th index of it (the tail that does not divide evenly is dropped). With a
    per-process batch ``b``, step ``i`` of all processes together covers the same exams as step
    ``i`` of a single process with batch ``b × world_size`` — so 1 and N processes train alike.
    """
    if shuffle:
        g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    usable = (n // world_size) * world_size
    return order[:usable][rank::world_size]
