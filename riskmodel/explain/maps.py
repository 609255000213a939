"""Saliency, view contributions and bilateral asymmetry for one exam, in the model's input frame.

Every function takes one exam: ``images`` float (1, 4, C, H, W) as the model reads them (canonical
orientation, chest wall at column 0, resized and padded by :func:`~riskmodel.imaging.fit_to_size`)
and ``mask`` bool (1, 4). Maps come back as float32 numpy arrays (4, H, W), one per slot of
:data:`~riskmodel.imaging.exams.VIEW_ORDER`, all zeros for an absent view (it never reaches the
encoder, so nothing can be attributed to it).

Methods (Captum 0.9):

* ``gradcam``: :class:`captum.attr.LayerGradCam` on the target's ``layer`` (the encoder's last
  stage): ReLU of the channel-weighted feature map, weights = spatial mean of the gradient of the
  year's risk; upsampled bilinearly from the layer's grid (H/32 × W/32 for the native model) to H × W.
* ``ig``: :class:`captum.attr.IntegratedGradients` from an all-background (zero) baseline, ``steps``
  Riemann steps; the map is the absolute attribution summed over channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskmodel.explain.target import ExplainTarget

__all__ = ["METHODS", "asymmetry", "saliency", "view_contributions"]

#: Saliency methods by name.
METHODS = ("gradcam", "ig")
#: Slot pairs (left, right) compared by :func:`asymmetry`, as indexes into VIEW_ORDER (L-CC, L-MLO, R-CC, R-MLO).
PAIRS = {"CC": (0, 2), "MLO": (1, 3)}


def _year_risk(target: ExplainTarget, mask: Any, year: int):
    """``images (B, 4, C, H, W) → (B,)`` risk at ``year`` (1-based) with the exam's ``mask`` broadcast."""

    def forward(images):
        return target.risk(images, mask.expand(images.shape[0], -1))[:, year - 1]

    return forward


def saliency(target: ExplainTarget, images: Any, mask: Any, year: int, method: str, *, steps: int = 16) -> np.ndarray:
    """(4, H, W) float32 saliency of the ``year``-year risk by ``method`` (:data:`METHODS`); ≥ 0, zeros where absent.

    Raises:
        ValueError: an unknown method.
    """
    import torch
    import torch.nn.functional as F
    from captum.attr import IntegratedGradients, LayerGradCam

    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}: choose from {', '.join(METHODS)}")
    forward = _year_risk(target, mask, year)
    present = mask[0].nonzero().flatten()
    out = torch.zeros(images.shape[1], *images.shape[-2:], device=images.device)
    if present.numel() == 0:
        return out.cpu().numpy()
    x = images.detach().clone().requires_grad_(True)
    if method == "gradcam":
        cam = LayerGradCam(forward, target.layer).attribute(x, relu_attributions=True)  # (n_present, 1, h, w)
        cam = F.interpolate(cam.detach().float(), size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
        out[present] = cam[:, 0].clamp_min(0.0)
    else:
        attr = IntegratedGradients(forward).attribute(x, baselines=torch.zeros_like(x), n_steps=steps,
                                                      internal_batch_size=max(1, steps // 2))
        out = attr.detach()[0].abs().sum(dim=1).float()
        out[~mask[0]] = 0.0
    return out.cpu().numpy().astype(np.float32)


def view_contributions(target: ExplainTarget, images: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each view's contribution to the exam's risk: (risk with all present views, (4, Y) contributions).

    A view's contribution is ``risk(all present views) − risk(that view masked)`` by year (the
    model's view masking removes it from the encoder and the aggregator); 0 for an absent view and
    NaN for the only present view (masking it leaves no image to score).
    """
    import torch

    with torch.no_grad():
        full = target.risk(images, mask)[0].float().cpu().numpy()
        contrib = np.zeros((mask.shape[1], full.shape[0]))
        for slot in mask[0].nonzero().flatten().tolist():
            reduced = mask.clone()
            reduced[0, slot] = False
            if not reduced.any():
                contrib[slot] = np.nan
                continue
            contrib[slot] = full - target.risk(images, reduced)[0].float().cpu().numpy()
    return full, contrib


def asymmetry(target: ExplainTarget, images: Any, mask: Any) -> dict[str, dict[str, Any]]:
    """Bilateral asymmetry per view pair (CC, MLO) from the encoder's ``layer`` feature maps.

    Both views of a pair are in the canonical orientation (chest wall at column 0: the reader has
    already mirrored the right breast onto the left's layout), so cell (i, j) of one is compared
    with cell (i, j) of the other, as AsymMirai compares left and right feature windows.

    Returns:
        ``{"CC": {...}, "MLO": {...}}`` for each pair with both views present, each with ``map``:
        (H, W) float32 ‖f_L − f_R‖₂ over channels per cell, divided by the pair's mean feature norm and
        upsampled to the input; ``score``: the map's maximum; ``side_score``: ``{"L": s_L, "R": s_R}``,
        where s_L is the largest (‖f_L‖ − ‖f_R‖) / mean norm over cells (0 if none positive): the side
        whose features are stronger where the breasts differ.
    """
    import torch
    import torch.nn.functional as F

    feats: list[torch.Tensor] = []
    handle = target.layer.register_forward_hook(lambda _m, _i, o: feats.append(o.detach()))
    try:
        with torch.no_grad():
            target.risk(images, mask)
    finally:
        handle.remove()
    present = mask[0].nonzero().flatten().tolist()
    by_slot = dict(zip(present, feats[0].float(), strict=True)) if feats else {}
    out: dict[str, dict[str, Any]] = {}
    for name, (left, right) in PAIRS.items():
        if left not in by_slot or right not in by_slot:
            continue
        fl, fr = by_slot[left], by_slot[right]
        nl, nr = fl.norm(dim=0), fr.norm(dim=0)
        scale = float(torch.cat([nl.flatten(), nr.flatten()]).mean()) + 1e-8
        diff = (fl - fr).norm(dim=0) / scale
        up = F.interpolate(diff[None, None], size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
        lat = (nl - nr) / scale
        out[name] = {"map": up[0, 0].cpu().numpy().astype(np.float32), "score": float(diff.max()),
                     "side_score": {"L": max(float(lat.max()), 0.0), "R": max(float((-lat).max()), 0.0)}}
    return out
