"""Cohort scoring on Dask: :func:`predict_risk_dask`, partition by partition.

Validation and the Gail model work row by row, so each partition is scored on its own with
:func:`riskmodel.distributed.parts.predict_part`, on whichever worker holds it; the one
whole-column rule (a numeric column without a single number) is checked over all partitions
before the graph is built. The result is a lazy Dask DataFrame with the partitions, index and
row order of the input; computed, it equals ``riskmodel.predict_risk`` on the same rows.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from riskmodel.distributed.parts import TextColumnCheck, predict_part, text_columns
from riskmodel.models.core import prepare_and_score
from riskmodel.models.registry import resolve

if TYPE_CHECKING:  # pragma: no cover
    import dask.dataframe as dd

#: Why a model that reads mammograms is not scored on Dask.
EXAM_MODELS = (
    "reads mammograms; Dask scoring is for models that need only the cohort table (e.g. 'gail'). A hybrid model "
    "spends its time in the image network: score it with riskmodel.predict_risk on a pandas DataFrame on a GPU "
    "machine, and spread exam scoring over several GPUs with torchrun ('torchrun --nproc-per-node N -m "
    "riskmodel.cli embed ...', see docs/scaling.md)"
)


def _text_counts(part: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per column of one partition: cells that are not numbers, non-missing cells, the first bad cell as text."""
    check = TextColumnCheck()
    check.update(part, columns)
    rows = [(name, *check.counts[name]) for name in columns]
    return pd.DataFrame({"column": [r[0] for r in rows], "bad": [r[1] for r in rows],
                         "notna": [r[2] for r in rows],
                         "first": [None if r[3] is None else str(r[3]) for r in rows]}).astype(
        {"column": object, "first": object})


def _check_text_columns(ddf: dd.DataFrame, columns: list[str]) -> None:
    """Apply the whole-column rule over all partitions (computes a small reduction: one pass over the data)."""
    meta = pd.DataFrame({"column": pd.Series(dtype=object), "bad": pd.Series(dtype=np.int64),
                         "notna": pd.Series(dtype=np.int64), "first": pd.Series(dtype=object)})
    counts = ddf[columns].map_partitions(_text_counts, columns, meta=meta).compute()
    check = TextColumnCheck()
    for row in counts.itertuples(index=False):  # partitions in order: the first bad cell is the table's
        check.add(row.column, int(row.bad), int(row.notna), None if pd.isna(row.first) else row.first)
    check.check({name: ddf[name].dtype for name in columns})


def predict_risk_dask(
    ddf: dd.DataFrame,
    model: str | Any = "gail",
    horizon: float | str = 5.0,
    *,
    details: bool = False,
    chunk_size: int = 250_000,
    exams: Any = None,
) -> dd.DataFrame:
    """:func:`riskmodel.predict_risk` on a Dask DataFrame, partition by partition.

    Nothing is computed except column checks: the result is lazy. Compute it (``.compute()``,
    ``.to_parquet(...)``) on the active ``dask.distributed.Client`` (a ``LocalCluster`` or an
    existing cluster: ``Client("tcp://scheduler:8786")``) or with Dask's default scheduler.

    Args:
        ddf: one row per woman, canonical schema (as for ``predict_risk``); any partitioning.
        model: a name in :data:`riskmodel.MODELS` (``"gail"``) or a
            :class:`~riskmodel.models.base.RiskModel` object (sent to the workers, so it must be
            picklable). Models that read mammograms (``"exams"`` in their ``inputs``: an image or
            hybrid model) raise ValueError: see :data:`EXAM_MODELS`.
        horizon: years (a positive number), ``"lifetime"``, or the name of a column of ``ddf``
            (per-row horizons: put them in a column).
        details: add the model's detail columns, as ``predict_risk`` does.
        chunk_size: rows scored at a time inside a partition (memory only).
        exams: must be None (models that read exams are not scored on Dask).

    Returns:
        A lazy Dask DataFrame with the partitions (divisions), index and row order of ``ddf`` and
        the columns of ``predict_risk``'s output (``risk``, ``status``, ``message``, ``model``,
        ``horizon`` …), with the same dtypes; computed, it equals ``predict_risk(ddf.compute(), ...)``
        row for row, invalid rows, statuses and messages included.

    Raises:
        riskmodel.SchemaError: a required column is missing, or a numeric column has no number in
            any partition (checked eagerly, with one pass over the data, only when such a column
            is stored as text).
        ValueError: an unknown model, a model that reads mammograms, ``exams`` given, or a
            horizon that is not a number, ``"lifetime"`` or a column name.
        TypeError: ``ddf`` is not a Dask DataFrame.

    Examples:
        >>> import dask.dataframe as dd, pandas as pd
        >>> df = pd.DataFrame({"age": [50.0, 95.0, 40.0], "race": [1, 1, 2]})
        >>> out = predict_risk_dask(dd.from_pandas(df, npartitions=2), horizon=5)
        >>> out.npartitions
        2
        >>> out.compute(scheduler="sync")["status"].tolist()
        ['ok', 'out_of_range', 'ok']
    """
    import dask.dataframe as dd

    if not isinstance(ddf, dd.DataFrame):
        raise TypeError(f"ddf must be a dask.dataframe.DataFrame, got {type(ddf).__name__}")
    if isinstance(model, os.PathLike) or (isinstance(model, str) and os.path.isdir(model)):
        raise ValueError(f"model {os.fspath(model)!r} is a saved image or hybrid model, which " + EXAM_MODELS)
    impl = resolve(model, device="cpu")
    name = impl.name
    if "exams" in impl.inputs:
        raise ValueError(f"model {name!r} " + EXAM_MODELS)
    if exams is not None:
        raise ValueError(f"exams= is for models that read mammograms, which are not scored on Dask; model {name!r} "
                         "does not use them")
    if not (isinstance(horizon, str) or np.isscalar(horizon)):
        raise ValueError("with a Dask DataFrame, horizon is a number of years, 'lifetime' or the name of a column; "
                         "put per-row horizons in a column of the DataFrame")
    options = {"details": details, "chunk_size": chunk_size}
    # Whole-column checks (required columns, dtypes, horizon) on the empty meta frame: the errors
    # pandas would raise, raised now; and the output's columns and dtypes.
    meta = prepare_and_score(impl, ddf._meta, horizon, **options)
    text = text_columns(ddf._meta)
    if text:
        _check_text_columns(ddf, text)
    spec = model if isinstance(model, str) else impl
    return ddf.map_partitions(predict_part, spec, horizon, meta=meta, **options)


def ordered_partitions(client: Any, ddf: dd.DataFrame, window: int) -> Iterator[pd.DataFrame]:
    """Compute the partitions of ``ddf`` on ``client`` and yield them in order, as pandas DataFrames.

    At most ``window`` partitions are computed or held at a time, so the caller's memory stays
    bounded (about ``window`` partitions) while the cluster works in parallel.
    """
    parts = ddf.to_delayed()
    pending: deque[Any] = deque()
    nxt = 0
    while nxt < len(parts) or pending:
        while nxt < len(parts) and len(pending) < max(window, 1):
            pending.append(client.compute(parts[nxt]))
            nxt += 1
        future = pending.popleft()
        frame = future.result()
        future.release()
        yield frame
