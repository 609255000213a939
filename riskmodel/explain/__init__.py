"""Explanations of image risk models: saliency per view, bilateral asymmetry, view contributions.

* :func:`explain` / :func:`iter_explanations`: per exam and horizon, maps registered onto each view's
  DICOM grid (:mod:`.core`, :mod:`.maps`, :mod:`.register`);
* :func:`write_explanations`: PNG overlays, raw ``.npy`` maps, a JSON summary, optional DICOM
  Secondary Capture (:mod:`.output`);
* :func:`pointing_game`, :func:`deletion_curve`: faithfulness against known truth (:mod:`.faithfulness`).

See ``docs/explainability.md`` for what the maps do and do not mean.
"""

from riskmodel.explain.core import ExamExplanation, ViewExplanation, explain, iter_explanations
from riskmodel.explain.faithfulness import deletion_curve, pointing_game
from riskmodel.explain.maps import METHODS
from riskmodel.explain.output import write_explanations
from riskmodel.explain.target import ExplainTarget, mirai_target, native_target

__all__ = ["METHODS", "ExamExplanation", "ExplainTarget", "ViewExplanation", "deletion_curve", "explain",
           "iter_explanations", "mirai_target", "native_target", "pointing_game", "write_explanations"]
