"""Mirai's image encoder: a ResNet-18 variant with Mirai's module names.

Structure (``onconet/models/custom_resnet.py`` wrapping ``onconet/models/resnet_base.py``):

- ``_model.downsampler``: conv 7×7 stride 2 (``conv1``, no bias), BatchNorm (``bn1``), ReLU, max-pool 3/2;
- four stages of ``BasicBlock``s named ``_model.layer<s>_<i>`` (s = 1..4, i = 0..repeats-1), widths 64, 128,
  256, 512; stages 2-4 start with stride 2 and a ``downsample`` = Sequential(conv 1×1 no bias, BatchNorm);
- ``_model.pool``: the pool over pixels (GlobalMaxPool in ``configs/mirai_base.json``), inside ``RiskFactorPool``
  with its 34 ``<key>_fc`` risk-factor heads; then ``_model.fc`` and ``_model.prob_of_failure_layer``.

In Mirai's full model only the first ``img_only_dim`` (512) values of the encoder's pooled hidden are used
(``onconet/models/mirai_full.py``), i.e. ReLU(pooled image features): the encoder's risk-factor, fc and hazard
heads never reach the output. They are built here so the state_dict matches, and :meth:`MiraiImageEncoder.head`
runs them for completeness.

Input: (M, num_chan, H, W) normalised images (Mirai: H=2048, W=1664, 3 channels). Output: (M, 512) features;
the feature map before pooling is (M, 512, ceil(H/32), ceil(W/32)), 64×52 at Mirai's size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from riskmodel.mirai.config import EncoderConfig
from riskmodel.mirai.pool import PoolResult, add_classifier, classify, make_pool, run_pool

__all__ = ["BasicBlock", "Downsampler", "MiraiImageEncoder", "ResNetBackbone"]


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class Downsampler(nn.Module):
    """Stem: conv 7×7/2 → BN → ReLU → max-pool 3/2 (4× smaller)."""

    def __init__(self, inplanes: int, num_chan: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_chan, inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        fan_out = self.conv1.kernel_size[0] * self.conv1.kernel_size[1] * inplanes
        nn.init.normal_(self.conv1.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(torch.relu(self.bn1(self.conv1(x))))


class BasicBlock(nn.Module):
    """Residual block: conv3×3 → BN → ReLU → conv3×3 → BN, plus the (optionally downsampled) input, ReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.conv2 = _conv3x3(planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + residual)


class ResNetBackbone(nn.Module):
    """Mirai's ``resnet_base.ResNet`` for image input (``use_precomputed_hiddens`` false)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        widths = cfg.stage_widths
        self.downsampler = Downsampler(widths[0], cfg.num_chan)
        self.block_names: list[str] = []
        inplanes = widths[0]
        for stage, (layout, planes) in enumerate(zip(cfg.block_layout, widths, strict=True), start=1):
            stride = 1 if stage == 1 else 2
            repeats = sum(n for _, n in layout)
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                downsample = None
                if (i == 0 and stride != 1) or inplanes != planes:
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                    )
                name = f"layer{stage}_{i}"
                self.add_module(name, BasicBlock(inplanes, planes, block_stride, downsample))
                self.block_names.append(name)
                inplanes = planes
        self.image_dim = widths[-1]
        self.pool = make_pool(cfg, self.image_dim)
        add_classifier(self, cfg, self.image_dim + cfg.rf_dim)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(M, C_in, H, W) → (M, 512, H/32, W/32) (rounded up)."""
        x = self.downsampler(x)
        for name in self.block_names:
            x = self._modules[name](x)
        return x


class MiraiImageEncoder(nn.Module):
    """Mirai's image encoder (``CustomResnet``); its only child is ``_model`` as in the original."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self._model = ResNetBackbone(cfg)

    @property
    def image_dim(self) -> int:
        """Length of the per-view feature vector (512)."""
        return self._model.image_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image features (M, 512) for images (M, C, H, W): ReLU of the pooled last feature map.

        Equal to Mirai's ``image_encoder(x)[1][:, :img_only_dim]`` in eval mode (dropout off).
        """
        fmap = self._model.feature_map(x)
        pooled = self._model.pool.internal_pool if hasattr(self._model.pool, "internal_pool") else self._model.pool
        return torch.relu(pooled(fmap.flatten(2)))

    def head(
        self, x: torch.Tensor, risk_factors: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, PoolResult]:
        """The encoder's own stage-1 head on images (M, C, H, W): (logits (M, 5), pool result)."""
        result = run_pool(self._model.pool, self._model.feature_map(x).flatten(2), None, risk_factors)
        logits, _ = classify(self._model, result.hidden)
        return logits, result
