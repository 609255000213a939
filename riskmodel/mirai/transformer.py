"""Mirai's view-aggregation transformer (``onconet/models/hiddens_transfomer.py``) with Mirai's names.

Per exam, N = 4 view tokens of 512 values (the image encoder's output) go through:

1. ``mask_embedding`` (Embedding(2, 512)): token ← token·kept + mask_embedding[kept] (kept = 1 for a present
   view, so row 1 is added to every present token, row 0 replaces a missing one);
2. ``projection_layer``: Linear(512 → H);
3. view/side/time conditioning (``transformer.view_embed``/``time_embed``/``side_embed``, each Embedding(·, 32),
   concatenated in the order view, time, side to 96 values e): token ← embed_scale_fc(e)·token + embed_add_fc(e);
   codes: view CC=0, MLO=1; side R=0, L=1; time 0 (current exam; up to 10);
4. ``num_layers`` post-LayerNorm blocks ``transformer.transformer_layer_<i>``: multi-head self-attention
   (``query``/``key``/``value``/``aggregate_fc``, each Linear(H, H), scaled dot product, no position encoding),
   residual + ``layernorm_attn``, then ``fc2(ReLU(fc1(·)))`` (width H) + residual + ``layernorm_fc``;
5. ``pool`` over tokens (RiskFactorPool around Max/Avg/Simple-attention pool) → H + 100 values;
6. ReLU, dropout, ``fc`` (unused logits) and ``prob_of_failure_layer`` → 5 cumulative logits.

``kept_images_vec`` (a (1, N, 1) parameter of ones) and ``pred_masked_img_fc`` (Linear(H → 512)) serve Mirai's
training-time image dropout only; they are kept for the state_dict.

Missing views (``present`` False): with ``exclude`` (the default unless the module was trained with image
dropout) a missing token is left out as an attention key and from the pool, so neither its content nor the
mask embedding affects the result; with ``mask_embedding`` it takes Mirai's learned mask embedding and takes part
like any token (Mirai's own mechanism, trained only when ``pred_missing_mammos`` and ``mask_prob`` > 0). With all
views present both modes are exactly Mirai's computation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from riskmodel.mirai.config import TransformerConfig
from riskmodel.mirai.pool import PoolResult, add_classifier, classify, make_pool, run_pool

__all__ = [
    "EMBEDDING_DIM",
    "MAX_SIDES",
    "MAX_TIME",
    "MAX_VIEWS",
    "MISSING_VIEW_MODES",
    "MiraiViewTransformer",
    "MultiHeadAttention",
    "TransformerLayer",
    "TransformerStack",
]

EMBEDDING_DIM = 96  #: total width of the view/time/side embeddings (32 each)
MAX_TIME = 10  #: largest time code (time embedding has MAX_TIME + 1 rows)
MAX_VIEWS = 2  #: view codes 0 (CC), 1 (MLO); 2 = padding
MAX_SIDES = 2  #: side codes 0 (R), 1 (L); 2 = padding
MISSING_VIEW_MODES = ("exclude", "mask_embedding")


class MultiHeadAttention(nn.Module):
    """Self-attention over tokens (B, N, H) with ``num_heads`` heads of H/num_heads values each."""

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.aggregate_fc = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x: torch.Tensor, key_present: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, H); ``key_present`` (B, N) bool or None (False = not attended to)."""
        batch, tokens, hidden = x.shape
        per_head = hidden // self.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, self.num_heads, per_head).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(per_head)  # (B, heads, N, N)
        if key_present is not None:
            scores = scores.masked_fill(~key_present[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(batch, tokens, hidden)
        return self.aggregate_fc(out)


class TransformerLayer(nn.Module):
    """One post-LayerNorm block: attention + residual + LayerNorm, FFN (width H) + residual + LayerNorm."""

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.multihead_attention = MultiHeadAttention(hidden_dim, num_heads, dropout)
        self.layernorm_attn = nn.LayerNorm(hidden_dim)
        self.fc1 = nn.Linear(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.layernorm_fc = nn.LayerNorm(hidden_dim)

    def forward(self, x: torch.Tensor, key_present: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layernorm_attn(self.multihead_attention(x, key_present) + x)
        return self.layernorm_fc(self.fc2(torch.relu(self.fc1(x))) + x)


class TransformerStack(nn.Module):
    """Mirai's ``Transformer``: view/time/side conditioning then ``num_layers`` blocks."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        part = EMBEDDING_DIM // 3
        # padding_idx=-1 in Mirai: the last row (the padding code) starts at zero.
        self.time_embed = nn.Embedding(MAX_TIME + 1, part, padding_idx=MAX_TIME)
        self.view_embed = nn.Embedding(MAX_VIEWS + 1, part, padding_idx=MAX_VIEWS)
        self.side_embed = nn.Embedding(MAX_SIDES + 1, part, padding_idx=MAX_SIDES)
        self.embed_add_fc = nn.Linear(EMBEDDING_DIM, cfg.hidden_dim)
        self.embed_scale_fc = nn.Linear(EMBEDDING_DIM, cfg.hidden_dim)
        self.num_layers = cfg.num_layers
        for i in range(cfg.num_layers):
            self.add_module(f"transformer_layer_{i}", TransformerLayer(cfg.hidden_dim, cfg.num_heads, cfg.dropout))

    def forward(
        self,
        x: torch.Tensor,
        time_seq: torch.Tensor,
        view_seq: torch.Tensor,
        side_seq: torch.Tensor,
        key_present: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, H) and integer codes (B, N) → (B, N, H)."""
        embed = torch.cat([self.view_embed(view_seq), self.time_embed(time_seq), self.side_embed(side_seq)], dim=-1)
        x = self.embed_scale_fc(embed) * x + self.embed_add_fc(embed)
        for i in range(self.num_layers):
            x = self._modules[f"transformer_layer_{i}"](x, key_present)
        return x


class MiraiViewTransformer(nn.Module):
    """Mirai's ``AllImageTransformer`` (see the module docstring for the computation and names)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.projection_layer = nn.Linear(cfg.precomputed_hidden_dim, cfg.hidden_dim)
        self.mask_embedding = nn.Embedding(2, cfg.precomputed_hidden_dim, padding_idx=1)
        self.kept_images_vec = nn.Parameter(torch.ones(1, cfg.num_images, 1), requires_grad=False)
        self.transformer = TransformerStack(cfg)
        self.pred_masked_img_fc = nn.Linear(cfg.hidden_dim, cfg.precomputed_hidden_dim)
        self.pool = make_pool(cfg, cfg.hidden_dim)
        add_classifier(self, cfg, cfg.hidden_dim + cfg.rf_dim)

    @property
    def default_missing_view_mode(self) -> str:
        """``mask_embedding`` if the module was trained with image dropout, else ``exclude``."""
        cfg = self.config
        return "mask_embedding" if cfg.pred_missing_mammos and cfg.mask_prob > 0 else "exclude"

    def forward(
        self,
        x: torch.Tensor,
        present: torch.Tensor,
        view_seq: torch.Tensor,
        side_seq: torch.Tensor,
        time_seq: torch.Tensor,
        risk_factors: torch.Tensor | None = None,
        missing_view_mode: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, PoolResult]:
        """View features x (B, N, 512), ``present`` (B, N) bool → (logits (B, T), tokens (B, N, H), pool result).

        Logits are the cumulative-probability logits for years 1..T; ``risk_factors`` is (B, rf_dim) or None.
        """
        mode = missing_view_mode or self.default_missing_view_mode
        if mode not in MISSING_VIEW_MODES:
            raise ValueError(f"missing_view_mode must be one of {MISSING_VIEW_MODES}, got {mode!r}")
        kept = present.long()
        x = x * kept.unsqueeze(-1).to(x.dtype) + self.mask_embedding(kept)
        x = self.projection_layer(x)
        key_present = None if mode == "mask_embedding" or bool(present.all()) else present
        tokens = self.transformer(x, time_seq, view_seq, side_seq, key_present)
        result = run_pool(self.pool, tokens.transpose(1, 2), key_present, risk_factors)
        logits, _ = classify(self, result.hidden)
        return logits, tokens, result
