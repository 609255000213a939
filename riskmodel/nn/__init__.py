"""Mirai-style mammography risk model in plain torch (no torchvision).

One module per part, composed by :class:`ImageRiskModel`::

    config.py      ModelConfig (frozen, JSON via to_dict/from_dict), tiny_config() for tests
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

from riskmodel.nn.aggregator import ViewAggregator
from riskmodel.nn.config import ModelConfig, tiny_config
from riskmodel.nn.encoder import ImageEncoder
from riskmodel.nn.hazard import AdditiveHazardHead
from riskmodel.nn.model import ImageRiskModel

__all__ = ["AdditiveHazardHead", "ImageEncoder", "ImageRiskModel", "ModelConfig", "ViewAggregator", "tiny_config"]
