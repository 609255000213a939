"""Mirai (Yala et al., Sci Transl Med 2021) as a torch module: image encoder + view transformer.

:class:`MiraiModel` holds Mirai's two released modules as the children ``encoder`` (the image encoder,
``mgh_mammo_MIRAI_Base_May20_2019.p``) and ``transformer`` (the view transformer,
``mgh_mammo_cancer_MIRAI_Transformer_Jan13_2020.p``); every parameter and buffer under them has the name the
original module's ``state_dict()`` gives it, so the imported bundle's ``encoder.*``/``transformer.*`` weights load
strictly. It is implemented from Mirai's paper, configs and a reading of its source, not copied.

Input: ``images`` (B, N=4, C=3, H, W) normalised as Mirai does ((pixel − 7047.99) / 12005.5; H×W = 2048×1664
for the released weights), views in :data:`DEFAULT_VIEWS` order unless ``view_seq``/``side_seq`` say otherwise.
Output (:class:`MiraiOutput`): raw (uncalibrated) probabilities of cancer within 1..5 years, the exam
representation and the risk-factor head's predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from riskmodel.mirai.config import EncoderConfig, MiraiConfigError, TransformerConfig
from riskmodel.mirai.encoder import MiraiImageEncoder
from riskmodel.mirai.transformer import MiraiViewTransformer

__all__ = ["DEFAULT_VIEWS", "SIDE_CODES", "VIEW_CODES", "MiraiModel", "MiraiOutput"]

#: Mirai's integer codes (``onconet/utils/dicom.py``: ``get_dicom_info``); Mirai reads ML as MLO.
VIEW_CODES: dict[str, int] = {"CC": 0, "MLO": 1}
SIDE_CODES: dict[str, int] = {"R": 0, "L": 1}
#: View order assumed when no codes are given (the order of Mirai's CSV loader). Order does not change the
#: result: the transformer has no position encoding, only these view/side codes.
DEFAULT_VIEWS: tuple[tuple[str, str], ...] = (("R", "CC"), ("R", "MLO"), ("L", "CC"), ("L", "MLO"))


@dataclass
class MiraiOutput:
    """Mirai's outputs for a batch of B exams (T = 5 years, H = transformer width, N views).

    Attributes:
        probabilities: (B, T) raw probability of cancer within 1..T years (sigmoid of ``logits``; before
            Mirai's per-year calibration); non-decreasing in the year.
        logits: (B, T) cumulative-probability logits.
        embedding: (B, H) the exam representation: the transformer's tokens pooled over the views used,
            before the risk factors are appended.
        hidden: (B, H + 100) ReLU(embedding ⊕ risk-factor vector), the hazard layer's input.
        view_features: (B, N, 512) the image encoder's per-view features (zeros for views not used).
        views_used: (B, N) bool, the views that entered the result.
        risk_factors_predicted: (B, 100) the risk-factor head's probabilities, or None without that head.
        risk_factors_used: (B, 100) the risk-factor vector that entered the hazard layer, or None.
        risk_factors_known: (B, 34) bool, True where a supplied factor was used instead of the prediction.
    """

    probabilities: torch.Tensor
    logits: torch.Tensor
    embedding: torch.Tensor
    hidden: torch.Tensor
    view_features: torch.Tensor
    views_used: torch.Tensor
    risk_factors_predicted: torch.Tensor | None
    risk_factors_used: torch.Tensor | None
    risk_factors_known: torch.Tensor | None


def _default_codes(batch: int, views: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if views != len(DEFAULT_VIEWS):
        raise ValueError(f"view_seq and side_seq are required for {views} views (defaults cover 4)")
    view = torch.tensor([VIEW_CODES[v] for _, v in DEFAULT_VIEWS], device=device)
    side = torch.tensor([SIDE_CODES[s] for s, _ in DEFAULT_VIEWS], device=device)
    return view.expand(batch, views), side.expand(batch, views)


class MiraiModel(nn.Module):
    """Mirai's full model (``onconet/models/mirai_full.py``: ``MiraiFull``) with the original names.

    Build it with :meth:`from_config` (random weights) or :meth:`from_bundle_parts` (an imported bundle).
    """

    def __init__(self, encoder_config: EncoderConfig, transformer_config: TransformerConfig) -> None:
        super().__init__()
        if encoder_config.image_dim != transformer_config.precomputed_hidden_dim:
            raise MiraiConfigError(
                f"the encoder gives {encoder_config.image_dim} features per view but the transformer expects "
                f"precomputed_hidden_dim={transformer_config.precomputed_hidden_dim}"
            )
        self.encoder = MiraiImageEncoder(encoder_config)
        self.transformer = MiraiViewTransformer(transformer_config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MiraiModel:
        """Model with random weights from ``{"kind": "mirai", "encoder_args": {...}, "transformer_args": {...}}``."""
        if config.get("kind") != "mirai":
            raise MiraiConfigError(f"config kind must be 'mirai', got {config.get('kind')!r}")
        for key in ("encoder_args", "transformer_args"):
            if not isinstance(config.get(key), Mapping):
                raise MiraiConfigError(f"config.{key} must be an object of Mirai hyperparameters")
        encoder = EncoderConfig.from_args(config["encoder_args"])
        return cls(encoder, TransformerConfig.from_args(config["transformer_args"]))

    @classmethod
    def from_bundle_parts(cls, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> MiraiModel:
        """Model built from ``config`` with ``state_dict`` (``encoder.*``/``transformer.*`` names) loaded strictly.

        Every parameter and buffer must be present with its shape, and nothing else may be; the only exception
        is BatchNorm's ``num_batches_tracked`` counters, which pickles from old torch versions lack and which
        do not affect inference. Returned in eval mode.
        """
        model = cls.from_config(config)
        expected = model.state_dict()
        missing = [k for k in expected if k not in state_dict and not k.endswith(".num_batches_tracked")]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            raise MiraiConfigError(
                f"Mirai weights do not match the config: missing {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
                f"{' ...' if len(unexpected) > 10 else ''}"
            )
        wrong = [
            f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
            for k, v in state_dict.items()
            if tuple(v.shape) != tuple(expected[k].shape)
        ]
        if wrong:
            raise MiraiConfigError(f"Mirai weights have wrong shapes: {wrong[:10]}")
        model.load_state_dict(dict(state_dict), strict=False)
        return model.eval()

    @property
    def max_followup(self) -> int:
        """Number of yearly outputs (5)."""
        return self.transformer.config.max_followup

    def forward(
        self,
        images: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        *,
        view_seq: torch.Tensor | None = None,
        side_seq: torch.Tensor | None = None,
        time_seq: torch.Tensor | None = None,
        risk_factors: torch.Tensor | None = None,
        missing_view_mode: str | None = None,
    ) -> MiraiOutput:
        """Run Mirai on ``images`` (B, N, C, H, W).

        Args:
            images: normalised views (B, N, C, H, W); N must equal the transformer's ``num_images`` (4).
            view_mask: (B, N) bool, True for a view that is present; None = all present (Mirai's only case).
                Masked views are not encoded; see :mod:`riskmodel.mirai.transformer` for how they are left out.
            view_seq, side_seq: (B, N) integer codes (:data:`VIEW_CODES`, :data:`SIDE_CODES`); default
                :data:`DEFAULT_VIEWS`.
            time_seq: (B, N) exam-time codes; default 0 (the current exam), as in Mirai's inference.
            risk_factors: (B, 100) Mirai's risk-factor vector with all-zero blocks for unknown keys, or None
                (every factor predicted from the images, as Mirai's released inference does).
            missing_view_mode: ``exclude`` or ``mask_embedding`` (default: by how the transformer was trained).
        """
        if images.dim() != 5:
            raise ValueError(f"images must be (B, N, C, H, W), got shape {tuple(images.shape)}")
        batch, views = images.shape[:2]
        if views != self.transformer.config.num_images:
            raise ValueError(f"Mirai takes {self.transformer.config.num_images} views per exam, got {views}")
        present = self._present(view_mask, batch, views, images.device)
        if view_seq is None or side_seq is None:
            default_view, default_side = _default_codes(batch, views, images.device)
            view_seq = default_view if view_seq is None else view_seq
            side_seq = default_side if side_seq is None else side_seq
        if time_seq is None:
            time_seq = torch.zeros_like(view_seq)
        features = images.new_zeros(batch, views, self.encoder.image_dim)
        features[present] = self.encoder(images[present])
        logits, _, pooled = self.transformer(
            features, present, view_seq, side_seq, time_seq, risk_factors, missing_view_mode
        )
        return MiraiOutput(
            probabilities=torch.sigmoid(logits),
            logits=logits,
            embedding=pooled.pooled,
            hidden=torch.relu(pooled.hidden),
            view_features=features,
            views_used=present,
            risk_factors_predicted=pooled.risk_factors_predicted,
            risk_factors_used=pooled.risk_factors_used,
            risk_factors_known=pooled.risk_factors_known,
        )

    @staticmethod
    def _present(view_mask: torch.Tensor | None, batch: int, views: int, device: torch.device) -> torch.Tensor:
        if view_mask is None:
            return torch.ones(batch, views, dtype=torch.bool, device=device)
        if tuple(view_mask.shape) != (batch, views):
            raise ValueError(f"view_mask must have shape ({batch}, {views}), got {tuple(view_mask.shape)}")
        present = view_mask.to(device=device, dtype=torch.bool)
        empty = (~present.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"exam(s) at batch index {empty} have no view present; Mirai needs at least one")
        return present
