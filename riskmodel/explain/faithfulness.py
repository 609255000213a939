"""Faithfulness of saliency maps against known truth: the pointing game and the deletion curve.

* :func:`pointing_game`: the share of maps whose peak lies inside the target region (a lesion
  mask), or within ``margin`` pixels of it. A map equal to the mask scores 1; a map of independent
  noise scores about the region's share of the searched area.
* :func:`deletion_curve`: the model's risk as the most salient pixels are set to background (0)
  first; its normalised area is small when the map names the pixels the risk depends on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["deletion_auc", "deletion_curve", "peak_hits", "pointing_game"]


def peak_hits(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], margin: float = 0.0,
              regions: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """(n,) bool: whether each map's peak lies within ``margin`` pixels (Euclidean) of its mask.

    Args:
        maps: n float arrays (any shape, e.g. (rows, columns) or two views side by side).
        masks: n bool arrays of the same shapes, the target regions (each non-empty).
        margin: pixels; 0 = the peak must be inside the mask.
        regions: optional n bool arrays: the peak is searched only there (e.g. the breast).

    Raises:
        ValueError: different counts or shapes, an empty mask or region, or a negative margin.
    """
    if len(maps) != len(masks) or (regions is not None and len(regions) != len(maps)):
        raise ValueError(f"pointing game: {len(maps)} maps but {len(masks)} masks"
                         + ("" if regions is None else f" and {len(regions)} regions"))
    if not margin >= 0:
        raise ValueError(f"margin={margin!r}: must be >= 0 pixels")
    hits = np.zeros(len(maps), dtype=bool)
    for i, (m, t) in enumerate(zip(maps, masks, strict=True)):
        m, t = np.asarray(m, dtype=np.float64), np.asarray(t, dtype=bool)
        if m.shape != t.shape or not t.any():
            raise ValueError(f"pointing game: map {i} has shape {m.shape}, its mask {t.shape} with "
                             f"{int(t.sum())} pixels (needs the same shape and a non-empty mask)")
        if regions is not None:
            r = np.asarray(regions[i], dtype=bool)
            if r.shape != m.shape or not r.any():
                raise ValueError(f"pointing game: region {i} must have the map's shape {m.shape} and pixels")
            m = np.where(r, m, -np.inf)
        peak = np.array(np.unravel_index(int(np.argmax(m)), m.shape))
        hits[i] = bool(np.sqrt(((np.argwhere(t) - peak) ** 2).sum(axis=1)).min() <= margin)
    return hits


def pointing_game(maps: Sequence[np.ndarray], masks: Sequence[np.ndarray], margin: float = 0.0,
                  regions: Sequence[np.ndarray] | None = None) -> float:
    """Hit rate of :func:`peak_hits` (a float in [0, 1]).

    >>> mask = np.zeros((4, 4), bool); mask[1, 1] = True
    >>> pointing_game([mask.astype(float)], [mask])
    1.0
    """
    return float(peak_hits(maps, masks, margin, regions).mean())


def deletion_curve(risk: Any, images: np.ndarray, mask: np.ndarray, saliency: np.ndarray, *,
                   fractions: Sequence[float] = tuple(np.linspace(0.0, 1.0, 11)), order: str = "salient",
                   seed: int = 0) -> np.ndarray:
    """Risk as tissue pixels of the present views are set to 0 (background), most salient first.

    Args:
        risk: ``images (B, 4, H, W) float32 numpy, mask (4,) → (B,)`` risks (the horizon's risk).
        images: (4, H, W) the model's input views; mask: (4,) bool present views.
        saliency: (4, H, W) the map over the same input.
        fractions: fractions of the tissue pixels (image > 0 in present views) removed, increasing.
        order: ``"salient"`` (by decreasing saliency, ties in pixel order) or ``"random"`` (``seed``).

    Returns:
        (len(fractions),) risks.
    """
    if images.shape != saliency.shape or images.shape[0] != len(mask):
        raise ValueError(f"deletion curve: images {images.shape}, saliency {saliency.shape}, mask {np.shape(mask)}")
    tissue = (images > 0) & np.asarray(mask, dtype=bool)[:, None, None]
    idx = np.flatnonzero(tissue)
    if order == "salient":
        idx = idx[np.argsort(-saliency.reshape(-1)[idx], kind="stable")]
    elif order == "random":
        idx = np.random.default_rng(seed).permutation(idx)
    else:
        raise ValueError(f"order={order!r}: 'salient' or 'random'")
    batch = np.repeat(images[None].astype(np.float32), len(fractions), axis=0)
    for j, f in enumerate(fractions):
        batch[j].reshape(-1)[idx[: round(f * len(idx))]] = 0.0
    return np.asarray(risk(batch, mask), dtype=np.float64)


def deletion_auc(curve: np.ndarray, fractions: Sequence[float] = tuple(np.linspace(0.0, 1.0, 11))) -> float:
    """Area under ``curve / curve[0]`` over ``fractions`` (trapezoid); lower = risk falls faster.

    >>> deletion_auc(np.array([1.0, 0.0]), [0.0, 1.0])
    0.5
    """
    y, x = np.asarray(curve, dtype=np.float64) / curve[0], np.asarray(fractions, dtype=np.float64)
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())
