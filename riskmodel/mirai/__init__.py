"""Mirai (Yala et al., Sci Transl Med 2021) in riskmodel: import its released snapshots safely, and its architecture.

:func:`import_mirai` converts the release's ``snapshots.zip`` (pickled ``onconet`` modules and calibrators) into a
verified bundle without running any pickle (:mod:`riskmodel.mirai.unpickle`); :class:`MiraiModel`
(:mod:`riskmodel.mirai.model`) is the architecture with Mirai's parameter names. Work in progress (issue 19): not yet
compared with Mirai's own code. :class:`MiraiRiskModel` (:mod:`riskmodel.mirai.adapter`) puts an imported bundle
behind ``predict_risk`` with the woman's risk factors (:mod:`riskmodel.mirai.risk_factors`). Importing this package
imports torch.
"""

from importlib import import_module
from typing import Any

from riskmodel.mirai.calibrator import MiraiCalibration
from riskmodel.mirai.importer import RELEASE_FILES, import_mirai
from riskmodel.mirai.unpickle import ForbiddenGlobalError, SnapshotFormatError

#: The architecture's names, loaded on first use: name -> module.
_LAZY = {"MiraiModel": "model", "MiraiOutput": "model", "EncoderConfig": "config", "TransformerConfig": "config",
         "MiraiConfigError": "config", "CumulativeProbabilityLayer": "hazard", "MiraiRiskModel": "adapter",
         "load_mirai_bundle": "adapter", "load_image_bundle": "adapter", "encode_risk_factors": "risk_factors",
         "RISK_FACTOR_KEYS": "risk_factors"}

__all__ = ["RELEASE_FILES", "RISK_FACTOR_KEYS", "CumulativeProbabilityLayer", "EncoderConfig", "ForbiddenGlobalError",
           "MiraiCalibration", "MiraiConfigError", "MiraiModel", "MiraiOutput", "MiraiRiskModel", "SnapshotFormatError",
           "TransformerConfig", "encode_risk_factors", "import_mirai", "load_image_bundle", "load_mirai_bundle"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"riskmodel.mirai.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'riskmodel.mirai' has no attribute {name!r}")
