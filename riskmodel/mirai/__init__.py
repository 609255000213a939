"""Mirai (Yala et al., Sci Transl Med 2021) in riskmodel: import its released snapshots safely, and its architecture.

:func:`import_mirai` converts the release's ``snapshots.zip`` (pickled ``onconet`` modules and calibrators) into a
verified bundle without running any pickle (:mod:`riskmodel.mirai.unpickle`); :class:`MiraiModel`
(:mod:`riskmodel.mirai.model`) is the architecture with Mirai's parameter names. Work in progress (issue 19): not yet
compared with Mirai's own code, no preprocessing presets, not yet behind ``predict_risk``. Importing this package
imports torch.
"""

from importlib import import_module
from typing import Any

from riskmodel.mirai.calibrator import MiraiCalibration
from riskmodel.mirai.importer import RELEASE_FILES, import_mirai
from riskmodel.mirai.unpickle import ForbiddenGlobalError, SnapshotFormatError

#: The architecture's names, loaded on first use: name -> module.
_LAZY = {"MiraiModel": "model", "MiraiOutput": "model", "EncoderConfig": "config", "TransformerConfig": "config",
         "MiraiConfigError": "config", "CumulativeProbabilityLayer": "hazard"}

__all__ = ["RELEASE_FILES", "CumulativeProbabilityLayer", "EncoderConfig", "ForbiddenGlobalError", "MiraiCalibration",
           "MiraiConfigError", "MiraiModel", "MiraiOutput", "SnapshotFormatError", "TransformerConfig", "import_mirai"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"riskmodel.mirai.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'riskmodel.mirai' has no attribute {name!r}")
