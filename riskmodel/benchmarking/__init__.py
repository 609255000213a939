"""The benchmark suite (``riskmodel benchmark --suite quick|full``) and its speed measurements.

It sits at the end of the data flow: it generates a synthetic cohort and exams, trains or fits
every model, scores held-out women and evaluates them with :mod:`riskmodel.evaluation`.
"""

from riskmodel.benchmarking.suite import SUITES, SuiteConfig, run_suite

__all__ = ["SUITES", "SuiteConfig", "run_suite"]
