"""View aggregation: four per-view tokens → one exam embedding (Mirai's ``hiddens_transformer``).

Design:

* **Slot identity.** Each slot of :data:`~riskmodel.imaging.exams.VIEW_ORDER` gets a learned view-family
  embedding (CC / MLO) plus a learned side embedding (L / R), *added* to its token (Mirai uses FiLM of
  a concatenated view/side/time embedding; there is no time slot here). Without them the model would
  be invariant to permuting the slots.
* **Transformer.** ``nn.TransformerEncoder`` of ``agg_layers`` **post-norm** layers, as Mirai's single
  block: self-attention → residual → LayerNorm → FFN (width D, not 4D, ReLU) → residual → LayerNorm.
  Absent views are excluded as keys via ``src_key_padding_mask = ~mask``; their token values are
  zeroed first so NaN/inf garbage in an absent slot cannot leak in (0 · NaN = NaN).
* **Pooling.** Masked **mean** over present tokens (Mirai's grid had max / attention / mean); it weighs
  every present view and is stable for 1–4 views.
* **No view.** An exam with no present view returns an all-zero embedding. Internally its padding mask
  is lifted (an all-masked attention row gives NaN in softmax on torch < 2.5) and, as every token has
  pooling weight 0, the masked mean is 0 / max(0, 1) = 0; neither outputs nor gradients contain NaN.
"""

from __future__ import annotations

import torch
from torch import nn

from riskmodel.imaging.exams import VIEW_ORDER
from riskmodel.nn.config import ModelConfig

__all__ = ["ViewAggregator"]

_FAMILIES = ("CC", "MLO")
_SIDES = ("L", "R")


class ViewAggregator(nn.Module):
    """Transformer over the 4 view tokens of an exam, then masked mean pooling.

    Args:
        config: uses ``embedding_dim``, ``agg_layers``, ``agg_heads``, ``agg_dropout``.

    ``forward(tokens, mask)``: tokens float (B, 4, D) in :data:`VIEW_ORDER`; mask bool (B, 4), True = view
    present. Returns (B, D); rows with no present view are zeros.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        dim = config.embedding_dim
        self.dim = dim
        sides, families = zip(*(slot.split("-") for slot in VIEW_ORDER), strict=True)
        self.register_buffer("family_index", torch.tensor([_FAMILIES.index(f) for f in families]),
                             persistent=False)
        self.register_buffer("side_index", torch.tensor([_SIDES.index(s) for s in sides]), persistent=False)
        self.family_embedding = nn.Embedding(len(_FAMILIES), dim)
        self.side_embedding = nn.Embedding(len(_SIDES), dim)
        nn.init.normal_(self.family_embedding.weight, std=0.02)
        nn.init.normal_(self.side_embedding.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, config.agg_heads, dim_feedforward=dim, dropout=config.agg_dropout,
                                           activation="relu", batch_first=True, norm_first=False)
        self.transformer = nn.TransformerEncoder(layer, config.agg_layers, enable_nested_tensor=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 4, D) tokens and (B, 4) bool mask → (B, D) exam embedding (zeros where no view is present)."""
        n_slots = len(VIEW_ORDER)
        if tokens.dim() != 3 or tokens.shape[1:] != (n_slots, self.dim):
            raise ValueError(f"expected tokens of shape (B, {n_slots}, {self.dim}), got {tuple(tokens.shape)}")
        if mask.shape != tokens.shape[:2]:
            raise ValueError(f"mask must have shape {tuple(tokens.shape[:2])}, got {tuple(mask.shape)}")
        mask = mask.to(device=tokens.device, dtype=torch.bool)
        slot = self.family_embedding(self.family_index) + self.side_embedding(self.side_index)  # (4, D)
        x = tokens.masked_fill(~mask[..., None], 0.0) + slot.to(tokens.dtype)
        has_view = mask.any(dim=1)  # (B,)
        # An exam with no view would mask every key (NaN softmax): let it attend freely, zero it below.
        padding = ~mask & has_view[:, None]
        x = self.transformer(x, src_key_padding_mask=padding)
        weights = mask.to(x.dtype)[..., None]  # (B, 4, 1)
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)  # no view: 0 / 1 = 0
