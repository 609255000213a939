"""Scoring beyond one process: large files in chunks, cohorts on Dask, exams on several GPUs.

* :func:`predict_risk_dask` (also reached by :func:`riskmodel.predict_risk` given a Dask
  DataFrame): cohort scoring partition by partition on a Dask cluster, row for row equal to
  pandas (:mod:`riskmodel.distributed.dask_engine`).
* :mod:`riskmodel.distributed.streaming`: CSV/TSV/Parquet read in chunks, each typed as a
  whole-file read types it, and output written incrementally under a temporary name, renamed
  when complete (``riskmodel predict``).
* :func:`predict_exams`: exam scoring and embedding split across the processes of a ``torchrun``
  launch, merged into one output in manifest order (``riskmodel embed`` under ``torchrun``;
  :mod:`riskmodel.distributed.exams`).
* :mod:`riskmodel.distributed.parts`: what keeps a part's results equal to the whole table's.

Not to be confused with :mod:`riskmodel.training.distributed` (DDP training set-up, which
:func:`predict_exams` reuses). See ``docs/scaling.md`` for which to use when.
"""

from riskmodel.distributed.dask_engine import predict_risk_dask
from riskmodel.distributed.exams import predict_exams
from riskmodel.distributed.parts import predict_part

__all__ = ["predict_exams", "predict_part", "predict_risk_dask"]
