"""Additive-hazard output layer (Mirai's ``cumulative_probability_layer``).

::

    h = ReLU(Linear(D → Y)(z))        # non-negative yearly hazard increments
    b = Linear(D → 1)(z)              # base hazard
    logit_k = b + Σ_{j ≤ k} h_j       # k = 1 … Y
    P(cancer within k years) = sigmoid(logit_k)

Because every increment is ≥ 0 the logits, and hence the risks, are non-decreasing in k by
construction (also in floating point for a sequential cumulative sum: adding a non-negative float
never decreases a float).
**ReLU, as Mirai**, rather than softplus: it keeps the layer weight-compatible with Mirai's and lets a
year add exactly zero hazard; the cost is that an increment whose pre-activation stays negative for
every input gets no gradient ("dead" year), which the trainer can watch for.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdditiveHazardHead"]


class AdditiveHazardHead(nn.Module):
    """z (B, in_dim) → cumulative logits (B, n_years), non-decreasing along years.

    >>> import torch
    >>> head = AdditiveHazardHead(8, 5)
    >>> logits = head(torch.randn(3, 8))
    >>> logits.shape, bool((logits.diff(dim=1) >= 0).all())
    (torch.Size([3, 5]), True)
    """

    def __init__(self, in_dim: int, n_years: int):
        super().__init__()
        if in_dim < 1 or n_years < 1:
            raise ValueError(f"in_dim and n_years must be positive, got {in_dim}, {n_years}")
        self.n_years = n_years
        self.hazard = nn.Linear(in_dim, n_years)
        self.base = nn.Linear(in_dim, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) → (B, n_years) logits; ``sigmoid`` gives the risk within 1 … n_years years."""
        increments = torch.relu(self.hazard(z))  # (B, Y), ≥ 0
        return self.base(z) + torch.cumsum(increments, dim=-1)
