"""Maps from the model's input frame back onto each view's DICOM pixel grid.

The reader (:func:`~riskmodel.imaging.read_mammogram`) returns a view of ``rows × columns`` pixels,
mirrored left–right when needed so the chest wall is at column 0 (``flipped``); the dataset then
fits it into the model's H × W (:func:`~riskmodel.imaging.fit_to_size`: scale
``s = min(H/rows, W/columns)``, placed against column 0 and centred vertically). :func:`to_dicom_grid`
undoes both: it crops the map to the image's placed rectangle, resizes it to ``rows × columns``
(bilinear) and mirrors it back when the reader mirrored the file, so pixel (r, c) of the result lies
over pixel (r, c) of the file's stored image (as a DICOM viewer shows it).
"""

from __future__ import annotations

import numpy as np

__all__ = ["placed_box", "to_dicom_grid", "to_model_frame"]


def placed_box(shape: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(top, height, left, width)`` of a ``shape`` image inside the model's ``image_size`` frame, as
    :func:`~riskmodel.imaging.fit_to_size` places it (left is always 0, the chest wall).

    >>> placed_box((2048, 1664), (256, 208))
    (0, 256, 0, 208)
    >>> placed_box((100, 100), (64, 52))
    (6, 52, 0, 52)
    """
    height, width = image_size
    h, w = shape
    scale = min(height / h, width / w)
    nh = min(height, max(1, round(h * scale)))
    nw = min(width, max(1, round(w * scale)))
    return (height - nh) // 2, nh, 0, nw


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float array to ``size`` (torch, ``align_corners=False``)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[0, 0].numpy()


def to_dicom_grid(model_map: np.ndarray, shape: tuple[int, int], flipped: bool) -> np.ndarray:
    """A map in the model's (H, W) frame, registered onto the file's stored ``shape`` = (rows, columns) grid.

    Args:
        model_map: (H, W) float map over the model's input.
        shape: the view's (rows, columns) as the reader produced it.
        flipped: the reader mirrored the stored image (``Mammogram.flipped``).

    Returns:
        float32 (rows, columns) in the file's stored orientation.
    """
    top, nh, left, nw = placed_box(shape, model_map.shape)
    out = _resize(model_map[top:top + nh, left:left + nw], shape)
    return np.ascontiguousarray(out[:, ::-1] if flipped else out, dtype=np.float32)


def to_model_frame(grid_map: np.ndarray, image_size: tuple[int, int], flipped: bool) -> np.ndarray:
    """The inverse of :func:`to_dicom_grid`: a (rows, columns) map of the stored image in the model's
    ``image_size`` frame (zeros outside the placed image), e.g. a lesion mask for the deletion curve."""
    canonical = grid_map[:, ::-1] if flipped else grid_map
    top, nh, left, nw = placed_box(grid_map.shape, image_size)
    out = np.zeros(image_size, dtype=np.float32)
    out[top:top + nh, left:left + nw] = _resize(canonical.astype(np.float32), (nh, nw))
    return out
