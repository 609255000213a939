"""The DICOM node (``riskmodel listen``): receive mammograms, score each study, send back a structured report.

* :mod:`riskmodel.node.store`: the output folder, the write-before-acknowledge journal, ``results.csv``;
* :mod:`riskmodel.node.scoring`: one study → ``predict_risk`` with the saved model → row, FHIR, SR;
* :mod:`riskmodel.node.sr`: the highdicom Comprehensive SR;
* :mod:`riskmodel.node.scp`: the pynetdicom Storage SCP and its worker.

See ``docs/dicom-node.md``. pynetdicom is imported only when a node starts.
"""

from riskmodel.node.scoring import StudyScorer
from riskmodel.node.store import RESULT_COLUMNS, NodeStore

__all__ = ["RESULT_COLUMNS", "NodeStore", "StudyScorer"]
