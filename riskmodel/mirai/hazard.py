"""Mirai's additive-hazard ("cumulative probability") layer.

From a feature vector x (B, D) it gives one logit per follow-up year k = 1..T (T = ``max_followup`` = 5):

    h = ReLU(hazard_fc(x))              # (B, T) non-negative yearly hazards
    b = base_hazard_fc(x)               # (B, 1) base hazard
    logit_k = b + sum_{j <= k} h_j      # (B, T) non-decreasing in k

so ``sigmoid(logit_k)``, the probability of cancer within k years, never falls with k. The sum runs through a
fixed (T, T) upper-triangular matrix of ones kept as the parameter ``upper_triagular_mask`` (Mirai's name and
spelling, ``requires_grad=False``), so the state_dict carries it like the original.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CumulativeProbabilityLayer"]


class CumulativeProbabilityLayer(nn.Module):
    """Additive-hazard head; parameter names as in Mirai's ``Cumulative_Probability_Layer``.

    Args:
        num_features: D, the length of the input vector.
        max_followup: T, the number of yearly outputs (5 for Mirai).
        independent: Mirai's ``make_probs_indep``: return the yearly hazards h (B, T) instead of the
            cumulative logits (off in every released config).
    """

    def __init__(self, num_features: int, max_followup: int, *, independent: bool = False) -> None:
        super().__init__()
        self.independent = independent
        self.hazard_fc = nn.Linear(num_features, max_followup)
        self.base_hazard_fc = nn.Linear(num_features, 1)
        mask = torch.triu(torch.ones(max_followup, max_followup))  # mask[j, k] = 1 where j <= k
        self.upper_triagular_mask = nn.Parameter(mask, requires_grad=False)

    def hazards(self, x: torch.Tensor) -> torch.Tensor:
        """Non-negative yearly hazards (B, T) for features x (B, D)."""
        return torch.relu(self.hazard_fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cumulative logits (B, T): ``base + cumulative sum of hazards`` (see the module docstring)."""
        hazards = self.hazards(x)
        if self.independent:
            return hazards
        return hazards @ self.upper_triagular_mask + self.base_hazard_fc(x)
