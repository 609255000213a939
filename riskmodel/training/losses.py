"""Censoring-aware losses for cumulative risk over years 1..Y (targets: :func:`riskmodel.survival.survival_targets`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# The targets are torch-free and live with the other survival basics; this name stays importable here.
from riskmodel.survival import survival_targets as survival_targets


def masked_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    pos_weight: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy over the known (weight > 0) years.

    The sum is divided by ``batch_size × n_years`` (a constant), not by the number of known
    entries: averaging per-rank losses under DistributedDataParallel then gives exactly the
    loss of the concatenated global batch.

    Args:
        logits, labels, weights: shape ``(B, Y)``.
        pos_weight: weight of positive labels (class balancing), scalar or shape ``(Y,)``.
    """
    pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels, weight=weights, pos_weight=pw, reduction="sum")
    return loss / max(labels.numel(), 1)


def balance_weight(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-year positive weight ``negatives / positives`` among known entries (1 where no positives)."""
    pos = (labels * weights).sum(axis=0)
    neg = ((1 - labels) * weights).sum(axis=0)
    return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0).astype(np.float32)
