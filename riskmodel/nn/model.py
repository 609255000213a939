"""The full image risk model: encoder per view → view aggregator → additive-hazard head (+ auxiliary heads).

::

    images (B, 4, C, H, W), mask (B, 4)
      ─► encode_views: ImageEncoder on the present views only ─► view_embeddings (B, 4, D), absent = 0
      ─► ViewAggregator (slot embeddings, transformer, masked mean) ─► embedding (B, D)
      ─► AdditiveHazardHead ─► logits (B, Y) ─► risk = sigmoid(logits)
      ─► [Linear(D → 4)] density_logits (B, 4)   [Linear(D → 1)] age = 60 + 10 · out (B,)

"A missing view is masked, not zero-filled": the pixels of an absent slot never reach the encoder,
and the aggregator excludes its token, so the output does not depend on what the slot holds.
"""

from __future__ import annotations

import torch
from torch import nn

from riskmodel.imaging.exams import VIEW_ORDER
from riskmodel.nn.aggregator import ViewAggregator
from riskmodel.nn.config import ModelConfig
from riskmodel.nn.encoder import ImageEncoder
from riskmodel.nn.hazard import AdditiveHazardHead

__all__ = ["AGE_CENTRE", "AGE_SCALE", "N_DENSITY_CLASSES", "ImageRiskModel"]

#: Age head output: ``age = AGE_CENTRE + AGE_SCALE · out`` (years), so ``out`` is O(1) for screening ages.
AGE_CENTRE = 60.0
AGE_SCALE = 10.0
#: BI-RADS density categories a–d.
N_DENSITY_CLASSES = 4


class ImageRiskModel(nn.Module):
    """Mirai-style image-only risk model.

    Args:
        config: the architecture; None = the default :class:`ModelConfig` (ResNet-18, D = 512, 5 years).

    Submodules: ``encoder`` (:class:`ImageEncoder`), ``aggregator`` (:class:`ViewAggregator`), ``hazard``
    (:class:`AdditiveHazardHead`), and when enabled ``density_head`` and ``age_head`` (``nn.Linear``).
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config if config is not None else ModelConfig()
        dim = self.config.embedding_dim
        self.encoder = ImageEncoder(self.config)
        self.aggregator = ViewAggregator(self.config)
        self.hazard = AdditiveHazardHead(dim, self.config.n_years)
        self.density_head = nn.Linear(dim, N_DENSITY_CLASSES) if self.config.aux_density else None
        self.age_head = nn.Linear(dim, 1) if self.config.aux_age else None

    # -- stage 1: per-view embeddings ----------------------------------------------------------------------

    def encode_views(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode the present views of each exam.

        Args:
            images: float (B, 4, C, H, W) in :data:`VIEW_ORDER`.
            mask: (B, 4), True = view present (any dtype; non-zero = present).

        Returns:
            (B, 4, D): the encoder's embedding for present views and zeros for absent ones. The present
            views are gathered into one encoder batch and scattered back; absent ones are never encoded.
        """
        n_slots = len(VIEW_ORDER)
        if images.dim() != 5 or images.shape[1] != n_slots or images.shape[2] != self.config.in_channels:
            raise ValueError(f"images must have shape (B, {n_slots}, {self.config.in_channels}, H, W), "
                             f"got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be a floating-point tensor, got {images.dtype}")
        mask = self._check_mask(mask, images.shape[:2], images.device)
        batch = images.shape[0]
        flat = images.reshape(batch * n_slots, *images.shape[2:])
        index = mask.reshape(-1).nonzero().squeeze(1)
        dim = self.config.embedding_dim
        if index.numel() == 0:
            out = images.new_zeros(batch * n_slots, dim)
            if self.training and torch.is_grad_enabled():
                # Tie the encoder into the graph with zero gradient, so DDP sees its parameters used.
                out = out + 0.0 * sum(p.reshape(-1)[0] for p in self.encoder.parameters())
        else:
            encoded = self.encoder(flat.index_select(0, index))
            out = encoded.new_zeros(batch * n_slots, dim).index_copy(0, index, encoded)
        return out.reshape(batch, n_slots, dim)

    # -- stage 2: aggregation and heads --------------------------------------------------------------------

    def forward(self, images: torch.Tensor | None = None, mask: torch.Tensor | None = None, *,
                view_embeddings: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Risk for each exam, from images or from cached per-view embeddings.

        Args:
            images: float (B, 4, C, H, W) in :data:`VIEW_ORDER`, values in [0, 1].
            mask: (B, 4), True = view present. Required.
            view_embeddings: (B, 4, D), e.g. a cached :meth:`encode_views` output (two-stage training);
                exactly one of ``images`` and ``view_embeddings`` must be given.

        Returns:
            dict with ``"logits"`` (B, Y), ``"risk"`` (B, Y) = sigmoid(logits), probability of a cancer
            within 1 … Y years, non-decreasing in years; ``"embedding"`` (B, D) the exam embedding
            (zeros for an exam with no view); ``"view_embeddings"`` (B, 4, D); and when enabled
            ``"density_logits"`` (B, 4), BI-RADS a–d, and ``"age"`` (B,) in years.
        """
        if (images is None) == (view_embeddings is None):
            raise ValueError("give exactly one of images and view_embeddings")
        if mask is None:
            raise ValueError("mask (B, 4) is required: True where a view is present")
        if images is not None:
            view_embeddings = self.encode_views(images, mask)
        else:
            assert view_embeddings is not None
            expected = (len(VIEW_ORDER), self.config.embedding_dim)
            if view_embeddings.dim() != 3 or tuple(view_embeddings.shape[1:]) != expected:
                raise ValueError(f"view_embeddings must have shape (B, {expected[0]}, {expected[1]}), "
                                 f"got {tuple(view_embeddings.shape)}")
        mask = self._check_mask(mask, view_embeddings.shape[:2], view_embeddings.device)
        embedding = self.aggregator(view_embeddings, mask)
        logits = self.hazard(embedding)
        out = {"logits": logits, "risk": torch.sigmoid(logits), "embedding": embedding,
               "view_embeddings": view_embeddings}
        if self.density_head is not None:
            out["density_logits"] = self.density_head(embedding)
        if self.age_head is not None:
            out["age"] = AGE_CENTRE + AGE_SCALE * self.age_head(embedding).squeeze(-1)
        return out

    @torch.no_grad()
    def embed(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 4, C, H, W) images and (B, 4) mask → (B, D) exam embeddings, without gradients.

        Uses the module's current mode; call ``.eval()`` first for inference.
        """
        return self.aggregator(self.encode_views(images, mask), mask)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"encoder": [...], "head": [...]}``: the image encoder's parameters and all others
        (aggregator, hazard and auxiliary heads). Together they are every parameter, once."""
        encoder = list(self.encoder.parameters())
        ids = {id(p) for p in encoder}
        return {"encoder": encoder, "head": [p for p in self.parameters() if id(p) not in ids]}

    @staticmethod
    def _check_mask(mask: torch.Tensor, shape: torch.Size, device: torch.device) -> torch.Tensor:
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(shape):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a tensor of shape {tuple(shape)}, got {got}")
        return mask.to(device=device, dtype=torch.bool)
