"""Per-view image encoder: a ResNet (BasicBlock) in plain torch, then global pooling.

Layout (ResNet-18 with the defaults, as Mirai's ``custom_resnet``)::

    x (N, C, H, W) ─► conv 7×7/stem_stride ─► norm ─► ReLU ─► max-pool 3×3/2
                   ─► stage 1 … stage S (BasicBlocks; stride 1 in stage 1, 2 after)
                   ─► global max / avg / tissue pool ─► [Linear(widths[-1] → D) if D ≠ widths[-1]] ─► (N, D)

With stem stride 2 the total stride is 32, so a 512 × 416 view gives a 16 × 13 map and Mirai's
2048 × 1664 a 64 × 52 one. Any H, W ≥ 32 runs (smaller inputs run too but pool a 1 × 1 map).

``pool="tissue"`` averages the last map over the breast only: the input's tissue mask (pixels above
``config.tissue_threshold``) is area-averaged down to the map's grid, and each cell is weighted by its
tissue fraction (plus 1e-4, so that an all-background image pools to the plain average).

Initialisation: Kaiming-normal (fan-out, ReLU) convolutions; norm weight 1 and bias 0, except the
last norm of each residual block, whose weight starts at 0 so that every block starts as the
identity (Goyal et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from riskmodel.nn.config import ModelConfig

__all__ = ["BasicBlock", "ImageEncoder", "make_norm", "tissue_pool"]


def make_norm(kind: str, channels: int) -> nn.Module:
    """``GroupNorm`` with the largest group count ≤ 32 dividing ``channels`` (``kind="group"``), or
    ``BatchNorm2d`` (``kind="batch"``)."""
    if kind == "group":
        groups = max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}")


class BasicBlock(nn.Module):
    """ResNet BasicBlock: two 3×3 convolutions and a residual; (N, C_in, H, W) → (N, C_out, H/s, W/s)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = make_norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            make_norm(norm, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


class ImageEncoder(nn.Module):
    """Shared encoder applied to each view separately.

    Args:
        config: the model configuration (uses ``in_channels``, ``widths``, ``blocks``, ``stem_stride``,
            ``norm``, ``pool``, ``embed_dim``, ``gradient_checkpointing``, ``channels_last``).

    ``forward(x)``: ``x`` float (N, C, H, W), values in [0, 1] as produced by ``ExamDataset`` (the first
    norm layer standardises them; no fixed mean/std is applied). Returns (N, D) float embeddings.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        widths, norm = config.widths, config.norm
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, widths[0], 7, stride=config.stem_stride, padding=3, bias=False),
            make_norm(norm, widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages = []
        in_channels = widths[0]
        for i, (width, n_blocks) in enumerate(zip(widths, config.blocks, strict=True)):
            blocks = [BasicBlock(in_channels, width, 1 if i == 0 else 2, norm)]
            blocks += [BasicBlock(width, width, 1, norm) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        # "tissue" pools in forward (it needs the input's tissue mask); no module for it.
        self.pool: nn.Module | None = {"max": nn.AdaptiveMaxPool2d(1), "avg": nn.AdaptiveAvgPool2d(1)}.get(config.pool)
        dim = config.embedding_dim
        self.proj: nn.Module = nn.Identity() if dim == widths[-1] else nn.Linear(widths[-1], dim)
        self.out_dim = dim
        self.reset_parameters()
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def reset_parameters(self) -> None:
        """Kaiming init of convolutions; norms at (1, 0); last norm of each block at weight 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.norm2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float → (N, D) per-view embeddings."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, H, W) images, got {tuple(x.shape)}")
        tissue = None
        if self.config.pool == "tissue":  # (N, 1, H, W) share of channels above the threshold
            tissue = (x > self.config.tissue_threshold).float().mean(dim=1, keepdim=True)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        use_checkpoint = self.config.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for stage in self.stages:
            x = checkpoint(stage, x, use_reentrant=False) if use_checkpoint else stage(x)
        pooled = tissue_pool(x, tissue) if self.pool is None else self.pool(x).flatten(1)
        return self.proj(pooled)


def tissue_pool(features: torch.Tensor, tissue: torch.Tensor, floor: float = 1e-4) -> torch.Tensor:
    """Average ``features`` (N, C, h, w) over the tissue, given the input-resolution tissue mask
    ``tissue`` (N, 1, H, W) in [0, 1]; returns (N, C).

    The mask is area-averaged to (h, w); each cell's weight is its tissue fraction plus ``floor``.

    >>> f = torch.zeros(1, 1, 2, 2); f[0, 0, 0, 0] = 4.0
    >>> m = torch.zeros(1, 1, 4, 4); m[0, 0, :2, :2] = 1.0   # tissue only in the top-left cell
    >>> round(float(tissue_pool(f, m)), 2), float(f.mean())
    (4.0, 1.0)
    """
    w = nn.functional.adaptive_avg_pool2d(tissue.to(features.dtype), features.shape[-2:]) + floor
    return (features * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3))
