"""Training the image risk model: censoring-aware loss, datasets, the (DDP-ready) loop.

Two-stage training as in Mirai: train end to end, then cache per-view embeddings with
:func:`predict` (``view_embeddings``), wrap them in :class:`TensorExams` and train the
aggregator and heads only (``TrainConfig(freeze_encoder=True)``).
"""

from riskmodel.survival import survival_targets
from riskmodel.training.data import LabelledExams, SurvivalLabels, TensorExams, epoch_indices
from riskmodel.training.losses import balance_weight, masked_bce
from riskmodel.training.trainer import CheckpointError, TrainConfig, TrainResult, predict, train

__all__ = [
    "CheckpointError",
    "LabelledExams",
    "SurvivalLabels",
    "TensorExams",
    "TrainConfig",
    "TrainResult",
    "balance_weight",
    "epoch_indices",
    "masked_bce",
    "predict",
    "survival_targets",
    "train",
]
