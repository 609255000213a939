"""Mirai (Yala et al., Sci Transl Med 2021) in riskmodel: import its released snapshots safely.

:func:`import_mirai` converts the release's ``snapshots.zip`` (pickled ``onconet`` modules and calibrators) into a
verified bundle without running any pickle (:mod:`riskmodel.mirai.unpickle`). Importing this package imports torch.
"""

from riskmodel.mirai.calibrator import MiraiCalibration
from riskmodel.mirai.importer import RELEASE_FILES, import_mirai
from riskmodel.mirai.unpickle import ForbiddenGlobalError, SnapshotFormatError

__all__ = ["RELEASE_FILES", "ForbiddenGlobalError", "MiraiCalibration", "SnapshotFormatError", "import_mirai"]
