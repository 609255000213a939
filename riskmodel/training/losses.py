"""Censoring-aware targets and losses for cumulative risk over years 1..Y."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def survival_targets(time: np.ndarray, event: np.ndarray, n_years: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per-year labels and weights for cumulative risk (Mirai's rule, made explicit).

    Year ``k`` (1..``n_years``) asks "invasive cancer by ``k`` years?". It counts for a woman
    only if her answer is known: she had the cancer by ``k`` (``event == 1`` and
    ``time <= k``: label 1), or she was followed at least ``k`` years without it
    (``time >= k``: label 0). Censoring (``event == 0``) and death from other causes
    (``event == 2``) before ``k`` leave year ``k`` unknown (weight 0).

    Args:
        time: follow-up in years, shape ``(n,)``.
        event: 1 = invasive breast cancer, 0 = censored, 2 = died of other causes; shape ``(n,)``.
        n_years: number of yearly horizons.

    Returns:
        ``(labels, weights)``, float32 arrays of shape ``(n, n_years)``.
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event)
    if time.shape != event.shape or time.ndim != 1:
        raise ValueError(f"time and event must be 1-D of the same length, got {time.shape} and {event.shape}")
    if np.isnan(time).any() or (time < 0).any():
        raise ValueError("time must be non-negative and known for every woman")
    if not np.isin(event, (0, 1, 2)).all():
        raise ValueError("event must be 0 (censored), 1 (breast cancer) or 2 (other death)")
    years = np.arange(1, n_years + 1, dtype=np.float64)[None, :]
    cancer_by_k = (event[:, None] == 1) & (time[:, None] <= years)
    known_free = time[:, None] >= years
    labels = cancer_by_k.astype(np.float32)
    weights = (cancer_by_k | known_free).astype(np.float32)
    return labels, weights


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
