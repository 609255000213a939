"""Synthetic screening cohorts with known true risk: a test bed for risk models, not real data."""

from riskmodel.synthetic.cohort import make_cohort

__all__ = ["make_cohort"]
