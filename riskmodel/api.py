"""``riskmodel.predict_risk``: resolve the model, then score the cohort through the RiskModel protocol.

Three steps, each in its own module: :func:`riskmodel.models.registry.resolve` turns a name, a
saved folder or an object into a :class:`~riskmodel.models.base.RiskModel`; a Dask DataFrame goes
to :func:`riskmodel.distributed.predict_risk_dask`; a pandas DataFrame goes through the model's
``prepare`` and the shared core :func:`riskmodel.models.core.score_cohort`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from riskmodel.distributed import predict_risk_dask
from riskmodel.models.core import LIFETIME_AGE, OUTPUT_COLUMNS, Horizon
from riskmodel.models.registry import HYBRID_NEEDS_BUNDLE, MODELS, score_frame
from riskmodel.schema import match_columns

if TYPE_CHECKING:  # pragma: no cover
    import dask.dataframe as dd

__all__ = ["HYBRID_NEEDS_BUNDLE", "LIFETIME_AGE", "MODELS", "OUTPUT_COLUMNS", "predict_risk"]


def _is_dask(data: Any) -> bool:
    """A Dask collection (without importing dask for pandas input)."""
    return not isinstance(data, pd.DataFrame) and hasattr(data, "__dask_graph__")


def predict_risk(
    data: pd.DataFrame | dd.DataFrame,
    model: str | os.PathLike[str] | Any = "gail",
    horizon: Horizon = 5.0,
    *,
    exams: pd.DataFrame | str | os.PathLike[str] | None = None,
    fallback: str = "none",
    details: bool = False,
    chunk_size: int = 250_000,
    progress: bool = False,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    num_workers: int = 0,
    device: str = "auto",
    columns: Mapping[Any, str] | None = None,
    na_values: Iterable[str] | None = None,
) -> pd.DataFrame | dd.DataFrame:
    """Absolute risk of invasive breast cancer for each woman in ``data``.

    Args:
        data: one row per woman in the canonical schema (:mod:`riskmodel.schema`; the
            columns are listed in ``docs/schema.md``). NaN means unknown. A Dask DataFrame is
            scored lazily, partition by partition, by
            :func:`riskmodel.distributed.predict_risk_dask` (table-only models; ``horizon`` a
            number, ``"lifetime"`` or a column; no progress bar); the result is then a Dask
            DataFrame.
        model: a name in :data:`riskmodel.MODELS` (``"gail"``, or one added with
            :func:`riskmodel.models.registry.register`); the folder of a saved model, recognised
            by its manifest: an image-only bundle (:func:`riskmodel.inference.save_image_model`,
            a training run's ``bundle/``) or a hybrid model (:meth:`riskmodel.fusion.HybridModel.save`,
            ``riskmodel fit-hybrid``); or a model object: a fitted
            :class:`~riskmodel.fusion.HybridModel`, an :class:`~riskmodel.inference.ImageRiskPredictor`,
            or anything satisfying :class:`riskmodel.RiskModel` (``docs/models.md``). ``"hybrid"``
            alone raises ValueError: no pretrained weights ship, a trained model is needed.
        horizon: years from the woman's current age: a number (default 5), ``"lifetime"``
            (to age 90), the name of a column of ``data``, or one value per row. The image-only
            and hybrid models project at most 5 years (longer horizons: status ``out_of_range``).
        exams: image-only and hybrid models only, and required for them: the exams, as a DataFrame from
            :func:`riskmodel.imaging.assemble_exams`, a folder of DICOM files (scanned and
            assembled here), an exams table file (``riskmodel scan --exams``), or an
            :class:`~riskmodel.inference.EncodedExams` made by the model's own image predictor
            (the network is then not run again). Each woman's
            exam is found through the model's key columns (default: ``data["exam_id"]`` =
            ``exams["exam_id"]``, the accession number or else the study UID as
            :func:`~riskmodel.imaging.assemble_exams` writes it; a key that several exams share
            matches none); a woman without a usable exam gets status ``no_exam``.
        fallback: hybrid models: ``"none"`` (default; a woman without a usable exam gets
            status ``no_exam``) or ``"factors"`` (she is scored by the factors-only head fitted
            with the model; status ``ok`` and a message saying so). An image-only model has no
            fallback (``"factors"`` raises ValueError).
        details: if True, add model-specific columns (for Gail: ``average_risk``, the risk
            of a woman of the same age and race with average risk factors, and the
            relative risks ``rr_under50`` and ``rr_over50``; for the image-only model:
            ``exam_used``, ``n_views``; for the hybrid: ``exam_used``, ``n_views``, ``imputed``,
            ``fallback``).
        chunk_size: rows scored at a time (bounds memory; results do not depend on it).
        progress: show a progress bar (tqdm, on stderr) while scoring.
        batch_size, cache_dir, num_workers: models that read exams: exams per forward pass, cache
            of preprocessed views, DataLoader worker processes reading the DICOMs.
        device: where a model loaded from a folder runs (``"auto"``: the GPU if any).
        columns: renames ``{"their_name": "canonical_name"}``. Without it, a column whose name
            is a canonical one once case, spaces and separators are ignored (``"Race"``,
            ``"N_Biopsies"``, ``" AGE "``) is read as that column; an unused column that looks like
            a canonical one gives a :class:`riskmodel.ColumnWarning` (see
            :func:`riskmodel.schema.match_columns`).
        na_values: text meaning unknown in any column, case-insensitive; replaces
            :data:`riskmodel.schema.DEFAULT_NA_VALUES` (``unknown``, ``NA``, ``not tested``, …).

    Returns:
        A DataFrame with the index and row order of ``data`` and the columns ``risk``
        (probability in [0, 1], NaN where not scored), ``status`` (``"ok"`` or a code from
        :data:`riskmodel.schema.STATUS_CODES`), ``message`` (for Gail empty when ok; else the
        column and rule broken; a hybrid model may also explain an ``ok`` row: fallback used,
        views that could not be read), ``model`` and ``horizon`` (years used for that row).
        The image-only and hybrid models always add ``risk_1y`` … ``risk_5y`` (a model's
        ``output_columns``). ``out.attrs["columns_used"]`` is
        ``{input column: canonical column}`` for the columns read, ``out.attrs["columns_ignored"]``
        the list of input columns not read. A bad value in a column the model does not read and
        lists in ``notes_only_columns`` (for Gail: ``density``) leaves the status as it is and is
        reported in ``message``.

    Raises:
        riskmodel.SchemaError: a required column is missing or unusable as a whole.
        ValueError: an unknown model, ``model="hybrid"`` without a trained model, an image or
            hybrid model without ``exams`` (or ``exams`` given to a model that reads none), or a
            malformed ``horizon``.
        TypeError: a model object that is not a :class:`riskmodel.RiskModel` (the message names
            what it lacks).
        riskmodel.bundle.BundleError: a folder that is not a saved model, or one that fails its
            integrity checks.

    Examples:
        >>> import pandas as pd, riskmodel
        >>> df = pd.DataFrame({"age": [50.0, 95.0], "race": [1, 1]})
        >>> out = riskmodel.predict_risk(df, horizon=5)
        >>> out["status"].tolist()
        ['ok', 'out_of_range']
    """
    if _is_dask(data):
        if progress:
            raise ValueError("progress=True is for pandas input; a Dask result is lazy: follow its computation on "
                             "the Dask dashboard or with dask.distributed.progress")
        if na_values is not None:
            raise ValueError("na_values= is for pandas input; a Dask DataFrame is read with the default unknown "
                             "tokens (riskmodel.schema.DEFAULT_NA_VALUES)")
        data = match_columns(data, columns).apply(data)
        return predict_risk_dask(data, model, horizon, details=details, chunk_size=chunk_size, exams=exams)
    return score_frame(data, model, horizon, exams=exams, fallback=fallback, details=details, chunk_size=chunk_size,
                       progress=progress, batch_size=batch_size, cache_dir=cache_dir, num_workers=num_workers,
                       device=device, columns=columns, na_values=na_values)
