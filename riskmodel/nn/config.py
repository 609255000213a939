"""Hyper-parameters of :class:`~riskmodel.nn.ImageRiskModel`, as a frozen, JSON-serialisable dataclass.

>>> from riskmodel.nn import ModelConfig, tiny_config
>>> ModelConfig().embedding_dim
512
>>> ModelConfig.from_dict(tiny_config().to_dict()) == tiny_config()
True
>>> preset_config("small", image_size=(256, 208)).widths
(16, 32, 64, 128)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "ModelConfig", "preset_config", "tiny_config"]

_NORMS = ("group", "batch")
_POOLS = ("max", "avg", "tissue")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the Mirai-style image model (see ``docs`` / :mod:`riskmodel.nn`).

    Attributes:
        in_channels: channels of each view image (1 = grayscale as produced by ``ExamDataset``).
        widths: output channels of the four (or any number of) ResNet stages.
        blocks: BasicBlocks per stage (``(2, 2, 2, 2)`` = ResNet-18).
        stem_stride: stride of the 7×7 stem convolution (2 as in ResNet; a 3×3/2 max-pool always follows).
        norm: ``"batch"`` (BatchNorm2d, as Mirai; the default) or ``"group"`` (GroupNorm with the largest
            group count ≤ 32 that divides the channels). GroupNorm does not depend on batch statistics, but it
            normalises each image's feature statistics, which removes much of the per-image intensity and
            texture-amplitude information that breast density and parenchymal patterns are made of; on the
            synthetic benchmark it learned the image factor markedly slower (``benchmarks/image_vs_gail.py
            --norm group``). Under DDP on GPUs, BatchNorm is converted to SyncBatchNorm by the trainer.
        pool: global pooling of the last feature map: ``"max"`` (as Mirai), ``"avg"``, or ``"tissue"``
            (the average over the breast only: each feature-map cell is weighted by the fraction of its
            input pixels above ``tissue_threshold``, so that the pooled features do not depend on how
            much of the image is background — with ``"avg"`` a texture measure is diluted by the breast's
            share of the image, which varies with breast size, view and positioning).
        tissue_threshold: input value (display range [0, 1]) above which a pixel counts as tissue for
            ``pool="tissue"``; air behind a windowed mammogram is near 0.
        embed_dim: width D of per-view and exam embeddings; None = ``widths[-1]``. When it differs from
            ``widths[-1]`` the encoder ends with a ``Linear(widths[-1] → D)``.
        agg_layers: transformer layers in the view aggregator (Mirai: 1).
        agg_heads: attention heads; must divide D.
        agg_dropout: dropout inside the aggregator's transformer, in [0, 1).
        n_years: years of the cumulative risk output (Mirai: 5).
        aux_density: add a BI-RADS density head (4 logits, a–d) on the exam embedding.
        aux_age: add an age head (years) on the exam embedding.
        gradient_checkpointing: recompute each encoder stage in the backward pass (saves memory in training;
            with ``norm="batch"`` the recomputation updates BatchNorm running statistics a second time).
        image_size: ``(H, W)`` in pixels the model was trained at; informational, any H, W ≥ 32 run.
        channels_last: run the encoder in ``torch.channels_last`` memory format.
    """

    in_channels: int = 1
    widths: tuple[int, ...] = (64, 128, 256, 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    stem_stride: int = 2
    norm: str = "batch"
    pool: str = "max"
    tissue_threshold: float = 0.05
    embed_dim: int | None = None
    agg_layers: int = 1
    agg_heads: int = 8
    agg_dropout: float = 0.1
    n_years: int = 5
    aux_density: bool = True
    aux_age: bool = True
    gradient_checkpointing: bool = False
    image_size: tuple[int, int] = (512, 416)
    channels_last: bool = False

    def __post_init__(self) -> None:
        # JSON gives lists: store tuples so that configs compare equal and stay hashable.
        for name in ("widths", "blocks", "image_size"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        self._validate()

    def _validate(self) -> None:
        errors: list[str] = []
        if not _is_int(self.in_channels) or self.in_channels < 1:
            errors.append(f"in_channels must be a positive int, got {self.in_channels!r}")
        for name in ("widths", "blocks"):
            value = getattr(self, name)
            if (not isinstance(value, tuple) or not value
                    or not all(_is_int(v) and v >= 1 for v in value)):
                errors.append(f"{name} must be a non-empty sequence of positive ints, got {value!r}")
        if isinstance(self.widths, tuple) and isinstance(self.blocks, tuple) and len(self.widths) != len(self.blocks):
            errors.append(f"widths and blocks must have the same length, got {len(self.widths)} and {len(self.blocks)}")
        if self.stem_stride not in (1, 2) or not _is_int(self.stem_stride):
            errors.append(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")
        if self.norm not in _NORMS:
            errors.append(f"norm must be one of {_NORMS}, got {self.norm!r}")
        if (not isinstance(self.tissue_threshold, (int, float)) or isinstance(self.tissue_threshold, bool)
                or not 0.0 <= self.tissue_threshold < 1.0):
            errors.append(f"tissue_threshold must be in [0, 1), got {self.tissue_threshold!r}")
        if self.pool not in _POOLS:
            errors.append(f"pool must be one of {_POOLS}, got {self.pool!r}")
        if self.embed_dim is not None and (not _is_int(self.embed_dim) or self.embed_dim < 1):
            errors.append(f"embed_dim must be None or a positive int, got {self.embed_dim!r}")
        if not _is_int(self.agg_layers) or self.agg_layers < 1:
            errors.append(f"agg_layers must be an int ≥ 1, got {self.agg_layers!r}")
        if not _is_int(self.agg_heads) or self.agg_heads < 1:
            errors.append(f"agg_heads must be a positive int, got {self.agg_heads!r}")
        elif not errors and self.embedding_dim % self.agg_heads:
            errors.append(f"agg_heads ({self.agg_heads}) must divide embed_dim ({self.embedding_dim})")
        if (not isinstance(self.agg_dropout, (int, float)) or isinstance(self.agg_dropout, bool)
                or not 0.0 <= self.agg_dropout < 1.0):
            errors.append(f"agg_dropout must be a number in [0, 1), got {self.agg_dropout!r}")
        if not _is_int(self.n_years) or self.n_years < 1:
            errors.append(f"n_years must be a positive int, got {self.n_years!r}")
        for name in ("aux_density", "aux_age", "gradient_checkpointing", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                errors.append(f"{name} must be a bool, got {getattr(self, name)!r}")
        if (not isinstance(self.image_size, tuple) or len(self.image_size) != 2
                or not all(_is_int(v) and v >= 32 for v in self.image_size)):
            errors.append(f"image_size must be (H, W) with ints ≥ 32, got {self.image_size!r}")
        if errors:
            raise ValueError("invalid ModelConfig: " + "; ".join(errors))

    @property
    def embedding_dim(self) -> int:
        """D, the width of per-view and exam embeddings (``embed_dim`` or ``widths[-1]``)."""
        return self.widths[-1] if self.embed_dim is None else self.embed_dim

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (tuples become lists)."""
        out = dataclasses.asdict(self)
        for name in ("widths", "blocks", "image_size"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults.

        Raises:
            ValueError: ``d`` has keys that are not fields (named in the message), or a value is invalid.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig key(s): {unknown}")
        return cls(**d)


#: Named network sizes (``riskmodel train --preset NAME``): the :class:`ModelConfig` fields each one sets;
#: every other field (pooling, image size, …) keeps its default unless overridden.
#:
#: * ``resnet18`` — the default :class:`ModelConfig`: ResNet-18 encoder (widths 64–512, two BasicBlocks
#:   per stage, 11.2 M encoder parameters), 8 attention heads.
#: * ``small`` — widths 16, 32, 64, 128 with one BasicBlock per stage, 4 heads (D = 128): the network of
#:   every recorded synthetic image-model benchmark (``benchmarks/image_vs_gail.py``, the ``quick``
#:   suite of :mod:`riskmodel.benchmarking`), trainable on a 2-core CPU.
#: * ``tiny`` — widths 8, 16, 16, 32, one block per stage, 2 heads, no dropout, GroupNorm: smoke tests
#:   (:func:`tiny_config`, ``riskmodel train --tiny``).
PRESETS: dict[str, dict[str, Any]] = {
    "resnet18": {"widths": (64, 128, 256, 512), "blocks": (2, 2, 2, 2), "agg_heads": 8, "agg_dropout": 0.1},
    "small": {"widths": (16, 32, 64, 128), "blocks": (1, 1, 1, 1), "agg_heads": 4, "agg_dropout": 0.1},
    "tiny": {"widths": (8, 16, 16, 32), "blocks": (1, 1, 1, 1), "agg_heads": 2, "agg_dropout": 0.0,
             "norm": "group"},
}


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """The :class:`ModelConfig` of the preset ``name`` (:data:`PRESETS`), with ``overrides`` applied on top.

    Raises:
        ValueError: ``name`` is not a preset (the message lists the presets), or the result is invalid.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}: choose one of {', '.join(sorted(PRESETS))}")
    return ModelConfig.from_dict({**PRESETS[name], **overrides})


def tiny_config(**overrides: Any) -> ModelConfig:
    """A config small enough for CPU tests (≈ 32 k parameters), with ``overrides`` applied.

    The ``tiny`` preset — widths (8, 16, 16, 32), one block per stage, D = 32, 2 heads, no dropout, and
    GroupNorm, so that results do not depend on how a batch is split (exact DDP parity tests) — at an
    image size of 64 × 52.
    """
    return preset_config("tiny", **{"image_size": (64, 52), **overrides})
