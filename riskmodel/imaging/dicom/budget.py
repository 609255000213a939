"""The pixel budget: the most bytes of decoded pixel data a file may declare before anything is decoded."""

from __future__ import annotations

import os

__all__ = ["PIXEL_BUDGET_BYTES", "PIXEL_BUDGET_ENV", "resolve_pixel_budget"]

#: The pixel budget: the most bytes of decoded pixel data (Rows × Columns × frames × samples ×
#: BitsAllocated / 8) a file may declare before anything is decoded. 8192 × 6144 pixels at 16
#: bits (96 MiB, 50.3 Mpixel): above the largest mammography detectors in use (24 × 30 cm at
#: 50 µm, Fujifilm: 4728 × 5928; CR plates at 43.75 µm: 5486 × 6857; Hologic 3328 × 4096), with
#: room for a 24 × 30 cm plate at 40 µm (6000 × 7500). Raise it with the ``pixel_budget``
#: argument of :func:`read_mammogram` / :func:`inspect_header`, or the environment variable
#: :data:`PIXEL_BUDGET_ENV` (read at each call, so DataLoader workers and the CLI see it).
PIXEL_BUDGET_BYTES = 8192 * 6144 * 2

#: Environment variable that overrides :data:`PIXEL_BUDGET_BYTES` (an integer number of bytes).
PIXEL_BUDGET_ENV = "RISKMODEL_PIXEL_BUDGET"


def resolve_pixel_budget(value: int | None = None) -> int:
    """The pixel budget in bytes: ``value`` if given, else the :data:`PIXEL_BUDGET_ENV`
    environment variable if set, else :data:`PIXEL_BUDGET_BYTES`.

    Raises:
        ValueError: the value (or the environment variable) is not a positive integer.
    """
    source = "pixel_budget"
    if value is None:
        env = os.environ.get(PIXEL_BUDGET_ENV, "").strip()
        if not env:
            return PIXEL_BUDGET_BYTES
        source = f"environment variable {PIXEL_BUDGET_ENV}"
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{source} must be a positive integer number of bytes, got {env!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{source} must be a positive integer number of bytes, got {value!r}")
    return value
