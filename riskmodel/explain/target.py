"""What an explanation needs of an image model: a differentiable risk and the encoder layer to look at.

:class:`ExplainTarget` is the one interface the saliency code uses, so that any image model whose
views go through a per-view convolutional encoder can be explained the same way:

* ``risk(images, mask)``: ``images`` float (B, 4, C, H, W) in :data:`~riskmodel.imaging.exams.VIEW_ORDER`,
  ``mask`` bool (B, 4) → risk (B, Y) by year, differentiable in ``images``; a view whose mask is
  False must not reach the encoder (the model's view masking), so it gets no gradient;
* ``layer``: the encoder module whose output (N_present, C', h, w) feature maps Grad-CAM and the
  asymmetry maps use (for the native model, the last ResNet stage);
* ``image_size`` and ``voi``: how views are read for the model (:class:`~riskmodel.imaging.ExamDataset`).

:func:`native_target` builds it for :class:`riskmodel.nn.ImageRiskModel` (what
:class:`riskmodel.inference.ImageRiskPredictor` holds); :func:`mirai_target` for
:class:`riskmodel.mirai.MiraiModel` (duck-typed: this module imports neither, so it stays below both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ExplainTarget", "mirai_target", "native_target"]


@dataclass(frozen=True)
class ExplainTarget:
    """An image model seen by the explanation code (see the module docstring).

    Attributes:
        risk: ``(images (B, 4, C, H, W), mask (B, 4)) → (B, Y)`` uncalibrated risk by year.
        layer: the torch module whose output feature maps Grad-CAM and asymmetry read.
        image_size: ``(H, W)`` the model reads each view at.
        voi: the DICOM reader's VOI mode the model was trained with.
        n_years: Y, the number of yearly risks.
        device: the torch device the model is on.
    """

    risk: Callable[[Any, Any], Any]
    layer: Any
    image_size: tuple[int, int]
    voi: str
    n_years: int
    device: Any


def native_target(model: Any, preprocessing: dict[str, Any], device: Any = None) -> ExplainTarget:
    """The :class:`ExplainTarget` of a :class:`riskmodel.nn.ImageRiskModel` (eval mode) and its
    preprocessing dict (``image_size``, optional ``voi``); Grad-CAM on the encoder's last stage."""
    import torch

    def risk(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(images, mask)["risk"]

    dev = device if device is not None else next(model.parameters()).device
    size = tuple(int(v) for v in preprocessing["image_size"])
    return ExplainTarget(risk=risk, layer=model.encoder.stages[-1], image_size=(size[0], size[1]),
                         voi=str(preprocessing.get("voi", "auto")), n_years=int(model.config.n_years), device=dev)


def mirai_target(model: Any, image_size: tuple[int, int], *, voi: str = "auto",
                 prepare: Callable[[Any], Any] | None = None, device: Any = None) -> ExplainTarget:
    """The :class:`ExplainTarget` of a :class:`riskmodel.mirai.MiraiModel` (eval mode).

    Args:
        model: the Mirai model; its risk is ``model(images, view_mask).probabilities`` (B, 5) and Grad-CAM
            reads the encoder's last residual block.
        image_size: ``(H, W)`` the views are read at for it.
        voi: the reader's VOI mode.
        prepare: maps the reader's (B, 4, 1, H, W) views in [0, 1] to Mirai's input (channels, normalisation);
            None: the grey channel repeated to the encoder's channel count.
        device: where the model is (default: its parameters').
    """
    backbone = model.encoder._model
    channels = int(model.encoder.config.num_chan)

    def risk(images: Any, mask: Any) -> Any:
        x = prepare(images) if prepare is not None else images.expand(-1, -1, channels, -1, -1)
        return model(x, mask).probabilities

    dev = device if device is not None else next(model.parameters()).device
    return ExplainTarget(risk=risk, layer=getattr(backbone, backbone.block_names[-1]),
                         image_size=(int(image_size[0]), int(image_size[1])), voi=voi,
                         n_years=int(model.max_followup), device=dev)
