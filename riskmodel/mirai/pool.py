"""Mirai's pooling and classification heads, shared by its image encoder and its view transformer.

Both Mirai modules end the same way (``aggregate_and_classify`` in ``onconet/models/resnet_base.py`` and
``onconet/models/hiddens_transfomer.py``): a pool over positions (pixels for the encoder, view tokens for the
transformer), optionally wrapped in ``RiskFactorPool`` which appends the 100-d risk-factor vector, then ReLU,
dropout, an ``fc`` layer (its logits are unused in the survival setup) and the cumulative-probability layer.
Module names here (``internal_pool``, ``<key>_fc``, ``fc``, ``prob_of_failure_layer``) are Mirai's.

Shapes: features ``x`` are (B, C, P) with P positions; ``present`` is (B, P) bool (True = take part) or None.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES, HeadConfig
from riskmodel.mirai.hazard import CumulativeProbabilityLayer

__all__ = ["PoolResult", "PositionPool", "RiskFactorPool", "add_classifier", "classify", "make_pool", "run_pool"]


class PositionPool(nn.Module):
    """Mirai's ``GlobalMaxPool`` / ``GlobalAvgPool`` / ``Simple_AttentionPool`` over the last axis.

    Positions where ``present`` is False are left out (max over present, mean over present, attention
    softmax over present); with every position present this is Mirai's pool exactly.
    """

    def __init__(self, name: str, num_chan: int) -> None:
        super().__init__()
        self.name = name
        if name == "Simple_AttentionPool":
            self.attention_fc = nn.Linear(num_chan, 1)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Pool (B, C, P) → (B, C)."""
        keep = None if present is None else present.unsqueeze(1)  # (B, 1, P)
        if self.name == "GlobalMaxPool":
            if keep is not None:
                x = x.masked_fill(~keep, float("-inf"))
            return x.max(dim=-1).values
        if self.name == "GlobalAvgPool":
            if keep is None:
                return x.mean(dim=-1)
            weights = keep.to(x.dtype)
            return (x * weights).sum(dim=-1) / weights.sum(dim=-1)
        scores = self.attention_fc(x.transpose(1, 2)).transpose(1, 2)  # (B, 1, P)
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        return (x * torch.softmax(scores, dim=-1)).sum(dim=-1)


@dataclass
class PoolResult:
    """What a pool hands to the classifier.

    Attributes:
        pooled: (B, C) the pooled features before any risk factors (the exam/image representation).
        hidden: (B, C + rf_dim) pooled features with the risk-factor vector appended (= ``pooled`` without it).
        risk_factors_predicted: (B, rf_dim) the risk-factor head's probabilities (sigmoid per binary key,
            softmax per categorical key), or None when the module has no risk-factor head.
        risk_factors_used: (B, rf_dim) the vector appended to ``hidden``, or None without the risk-factor pool.
        risk_factors_known: (B, n_keys) bool, True where the supplied block of that key was used.
    """

    pooled: torch.Tensor
    hidden: torch.Tensor
    risk_factors_predicted: torch.Tensor | None = None
    risk_factors_used: torch.Tensor | None = None
    risk_factors_known: torch.Tensor | None = None


class RiskFactorPool(nn.Module):
    """Mirai's ``RiskFactorPool``: pooled features ⊕ a risk-factor vector of ``rf_dim`` (100) values.

    With ``pred_risk_factors`` it holds one ``Linear(C, n_k)`` named ``<key>_fc`` per key, applied to the pooled
    features. At inference the appended vector follows Mirai's "use predicted if unknown" rule
    (``use_pred_risk_factors_if_unk`` with ``use_pred_risk_factors_at_test``): a key whose supplied block is all
    zeros (Mirai encodes a missing value as an all-zero block) takes the predicted probabilities, a key with any
    non-zero entry keeps the supplied block. ``risk_factors=None`` predicts every key — what Mirai's released
    inference does, since it always passes None.
    """

    def __init__(self, cfg: HeadConfig, num_chan: int) -> None:
        super().__init__()
        self.keys = cfg.risk_factor_keys
        self.widths = tuple(RISK_FACTOR_NUM_CLASSES[k] for k in self.keys)
        self.pred_risk_factors = cfg.pred_risk_factors
        self.internal_pool = PositionPool(cfg.pool_name, num_chan)
        self.dropout = nn.Dropout(cfg.dropout)
        if cfg.pred_risk_factors:
            for key, width in zip(self.keys, self.widths, strict=True):
                self.add_module(f"{key}_fc", nn.Linear(num_chan, width))

    def predict(self, pooled: torch.Tensor) -> torch.Tensor:
        """Risk-factor probabilities (B, rf_dim) from pooled features (B, C), blocks in key order."""
        blocks = []
        for key, width in zip(self.keys, self.widths, strict=True):
            logit = self._modules[f"{key}_fc"](pooled)
            blocks.append(torch.sigmoid(logit) if width == 1 else torch.softmax(logit, dim=-1))
        return torch.cat(blocks, dim=-1)

    def forward(
        self, x: torch.Tensor, present: torch.Tensor | None = None, risk_factors: torch.Tensor | None = None
    ) -> PoolResult:
        """Pool x (B, C, P) and append the risk-factor vector; ``risk_factors`` is (B, rf_dim) or None."""
        pooled = self.internal_pool(x, present)
        batch = pooled.shape[0]
        rf_dim = sum(self.widths)
        if risk_factors is not None and tuple(risk_factors.shape) != (batch, rf_dim):
            raise ValueError(f"risk_factors must have shape ({batch}, {rf_dim}), got {tuple(risk_factors.shape)}")
        predicted = self.predict(pooled) if self.pred_risk_factors else None
        if predicted is None and risk_factors is None:
            raise ValueError("this Mirai module has no risk-factor head, so risk_factors (B, rf_dim) are required")
        if risk_factors is None:
            used, known = predicted, torch.zeros(batch, len(self.keys), dtype=torch.bool, device=pooled.device)
        else:
            supplied = risk_factors.to(pooled.dtype)
            known = torch.stack([b.sum(dim=-1) > 0 for b in supplied.split(self.widths, dim=-1)], dim=-1)
            used = supplied
            if predicted is not None:
                known_cols = known.repeat_interleave(torch.tensor(self.widths, device=known.device), dim=-1)
                used = torch.where(known_cols, supplied, predicted)
        hidden = self.dropout(torch.cat([pooled, used], dim=-1))
        return PoolResult(pooled, hidden, predicted, used, known)


def make_pool(cfg: HeadConfig, num_chan: int) -> nn.Module:
    """The pool Mirai builds for ``cfg``: ``RiskFactorPool`` when ``use_risk_factors``, else the plain pool."""
    return RiskFactorPool(cfg, num_chan) if cfg.use_risk_factors else PositionPool(cfg.pool_name, num_chan)


def run_pool(
    pool: nn.Module, x: torch.Tensor, present: torch.Tensor | None, risk_factors: torch.Tensor | None
) -> PoolResult:
    """Run either kind of pool from :func:`make_pool` and return a :class:`PoolResult`."""
    if isinstance(pool, RiskFactorPool):
        return pool(x, present, risk_factors)
    pooled = pool(x, present)
    return PoolResult(pooled, pooled)


def add_classifier(owner: nn.Module, cfg: HeadConfig, hidden_dim: int) -> None:
    """Register Mirai's ``dropout``, ``fc`` and (survival setup) ``prob_of_failure_layer`` on ``owner``."""
    owner.head_dropout = nn.Dropout(cfg.dropout)
    owner.fc = nn.Linear(hidden_dim, cfg.num_classes)
    if cfg.survival_analysis_setup:
        owner.prob_of_failure_layer = CumulativeProbabilityLayer(
            hidden_dim, cfg.max_followup, independent=cfg.make_probs_indep
        )


def classify(owner: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirai's classification step on ``hidden`` (B, D): returns (logits, ReLU'd+dropout hidden).

    Logits are the cumulative-probability logits (B, max_followup) in the survival setup, else ``fc``'s.
    """
    hidden = owner.head_dropout(torch.relu(hidden))
    if hasattr(owner, "prob_of_failure_layer"):
        return owner.prob_of_failure_layer(hidden), hidden
    return owner.fc(hidden), hidden
