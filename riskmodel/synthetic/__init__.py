"""Test-bed generators with known truth (not real data).

* :func:`make_cohort`: screening cohorts in the canonical schema with observed outcomes and the
  generator's true risks;
* :func:`write_exams`: four-view synthetic mammograms as real DICOM files, whose pixels carry
  density, a latent image-only risk factor and, for early cancers, a faint lesion.
"""

from riskmodel.synthetic.cohort import make_cohort
from riskmodel.synthetic.mammogram import lesion_mask, write_exams

__all__ = ["lesion_mask", "make_cohort", "write_exams"]
