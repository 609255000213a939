"""Mirai-style mammography risk model in plain torch (no torchvision).

One module per part, composed by :class:`ImageRiskModel`::

    config.py      ModelConfig (frozen, JSON via to_dict/from_dict), named sizes PRESETS / preset_config
                   (resnet18 = the default, small, tiny), tiny_config() for tests
    encoder.py     ImageEncoder: ResNet-18 (BatchNorm by default, GroupNorm optional), global max / avg /
                   breast-only ("tissue") pool → (N, D)
    aggregator.py  ViewAggregator: CC/MLO + L/R slot embeddings, post-norm transformer, masked mean → (B, D)
    hazard.py      AdditiveHazardHead: base + cumulative ReLU hazards → (B, Y) monotone logits
    model.py       ImageRiskModel: encode_views (present views only), forward, embed, parameter_groups

Inputs are :class:`~riskmodel.imaging.ExamDataset` batches: ``images`` (B, 4, 1, H, W) float32 in [0, 1]
and ``mask`` (B, 4) bool, in :data:`~riskmodel.imaging.VIEW_ORDER`.

>>> import torch
>>> from riskmodel.nn import ImageRiskModel, tiny_config
>>> model = ImageRiskModel(tiny_config()).eval()
>>> out = model(torch.rand(2, 4, 1, 64, 52), torch.tensor([[True] * 4, [True, True, False, True]]))
>>> tuple(out["risk"].shape), tuple(out["embedding"].shape), tuple(out["density_logits"].shape)
((2, 5), (2, 32), (2, 4))
"""

from importlib import import_module
from typing import Any

# The configuration (and its named presets) is torch-free, so that the CLI and the benchmark suite can name
# presets without importing torch; the network modules are imported when first asked for.
from riskmodel.nn.config import PRESETS, ModelConfig, preset_config, tiny_config

_LAZY = {"AdditiveHazardHead": "hazard", "ImageEncoder": "encoder", "ImageRiskModel": "model",
         "ViewAggregator": "aggregator"}

__all__ = [
    "PRESETS", "AdditiveHazardHead", "ImageEncoder", "ImageRiskModel", "ModelConfig", "ViewAggregator", "preset_config",
    "tiny_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"riskmodel.nn.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
