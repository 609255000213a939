"""Rebuild whichever head wrote a saved state (:func:`head_from_dict`)."""

from __future__ import annotations

from typing import Any

from riskmodel.fusion.heads.base import FORMAT_PREFIX
from riskmodel.fusion.heads.boosting import XGBoostHead
from riskmodel.fusion.heads.cox import CoxHead
from riskmodel.fusion.heads.torch_hazard import TorchHazardHead

__all__ = ["head_from_dict"]

_HEADS = {c.__name__: c for c in (TorchHazardHead, CoxHead, XGBoostHead)}


def head_from_dict(d: dict[str, Any]) -> TorchHazardHead | CoxHead | XGBoostHead:
    """Rebuild whichever head wrote ``d`` (dispatch on its ``format`` tag)."""
    fmt = d.get("format", "") if isinstance(d, dict) else ""
    name = fmt[len(FORMAT_PREFIX):] if fmt.startswith(FORMAT_PREFIX) else ""
    if name not in _HEADS:
        raise ValueError(f"not a fusion head state: format {fmt!r}")
    return _HEADS[name].from_dict(d)
