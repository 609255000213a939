"""Put a mammogram in the canonical orientation: chest wall at column 0, decided from the pixels first."""

from __future__ import annotations

from typing import Any

import numpy as np

#: Relative difference between the two edge strips below which the pixels do not decide the
#: orientation (see :func:`chest_wall_side`).
ORIENTATION_MIN_CONTRAST = 0.10


def chest_wall_side(pixels: np.ndarray) -> str:
    """Which edge the chest wall is on, from the pixels: ``"left"``, ``"right"`` or ``""``.

    Rule: compare the mean of the left-most and right-most quarter of the columns (float64
    sums). The chest wall side holds tissue over the full height; the nipple side holds the
    rounded tip of the breast and background. The brighter strip is the chest wall. If the two
    means differ by less than :data:`ORIENTATION_MIN_CONTRAST` (10 %) of the larger one, or the
    image is under 2 columns wide, the pixels do not decide and ``""`` is returned.

    Args:
        pixels: array of shape ``(rows, columns)``, higher = denser, background near 0.

    >>> img = np.zeros((4, 8)); img[:, :3] = 1.0
    >>> chest_wall_side(img), chest_wall_side(img[:, ::-1]), chest_wall_side(np.ones((4, 8)))
    ('left', 'right', '')
    """
    cols = pixels.shape[1]
    if cols < 2:
        return ""
    strip = max(1, cols // 4)
    left = float(pixels[:, :strip].mean(dtype=np.float64))
    right = float(pixels[:, -strip:].mean(dtype=np.float64))
    top = max(left, right)
    if top <= 0 or abs(left - right) < ORIENTATION_MIN_CONTRAST * top:
        return ""
    return "left" if left > right else "right"


def orient(y: np.ndarray, ds: Any, laterality: str) -> tuple[np.ndarray, bool, str]:
    """Mirror so the chest wall is at column 0 (step 7); returns ``(float32 image, flipped, source)``.
    The side is decided by the pixels first, then PatientOrientation's row
    direction (A = toward the nipple, chest wall at column 0; P = the reverse), then the display
    convention (right breasts stored with the chest wall on the right)."""
    side = chest_wall_side(y)
    source = "pixels"
    if not side:
        row_dir = ""
        try:
            po = ds.get("PatientOrientation", None)
            row_dir = str(po[0]).strip().upper() if po is not None and len(po) >= 1 else ""
        except Exception:
            row_dir = ""
        if row_dir.startswith("A"):
            side, source = "left", "PatientOrientation"
        elif row_dir.startswith("P"):
            side, source = "right", "PatientOrientation"
        else:
            side, source = ("right" if laterality == "R" else "left"), "laterality"
    flipped = side == "right"
    if flipped:
        y = y[:, ::-1]
    return np.ascontiguousarray(y, dtype=np.float32), flipped, source
