"""``riskmodel.predict_risk``: validate a cohort, run a model, return one row per woman."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from riskmodel.schema import _not_real, is_blank, match_columns, validate

if TYPE_CHECKING:  # pragma: no cover
    import dask.dataframe as dd

Horizon = float | int | str | Sequence[float] | np.ndarray | pd.Series

#: Model names accepted by :func:`predict_risk`, with what each is.
MODELS = {
    "gail": "Gail model / NCI BCRAT (R BCRA 2.1.2), ages 20–90, invasive breast cancer",
    "hybrid": "mammography embedding + risk factors (riskmodel.fusion.HybridModel), 1–5 years; needs a trained "
              "model folder (HybridModel.save / riskmodel fit-hybrid) and exams",
}
#: Why ``model="hybrid"`` alone cannot be scored.
HYBRID_NEEDS_BUNDLE = (
    "model='hybrid' needs a trained hybrid model: pass the path of a folder written by HybridModel.save (or "
    "'riskmodel fit-hybrid'), or a fitted riskmodel.fusion.HybridModel. riskmodel ships no pretrained weights; "
    "see docs/fusion.md to train one on your own exams"
)

LIFETIME_AGE = 90.0
OUTPUT_COLUMNS = ("risk", "status", "message", "model", "horizon")


def _load_model(model: str | os.PathLike[str] | Any, device: str = "auto") -> Any:
    if isinstance(model, os.PathLike) or (isinstance(model, str) and model not in MODELS and Path(model).is_dir()):
        from riskmodel.fusion.hybrid import load_hybrid

        return load_hybrid(model, device=device)
    if not isinstance(model, str):
        if not hasattr(model, "score") or not hasattr(model, "required_columns"):
            raise TypeError("model must be a name in riskmodel.MODELS, the folder of a saved hybrid model, or an "
                            "object with `required_columns` and `score(cohort, horizon)`")
        return model
    if model == "gail":
        from riskmodel.gail import GailModel

        return GailModel()
    if model == "hybrid":
        raise ValueError(HYBRID_NEEDS_BUNDLE)
    raise ValueError(f"unknown model {model!r}; available: {', '.join(MODELS)} (hybrid: the folder of a saved "
                     "model), or no such folder")


def _per_row_years(values: pd.Series, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of years, or the word "lifetime" (to age 90), one per row.

    Blank cells give NaN (missing); text that is neither a number nor "lifetime", a boolean or a
    complex number gives −inf, which the caller reports as an invalid horizon.
    """
    not_real = _not_real(values)
    lifetime = values.astype(str).str.strip().str.lower().to_numpy() == "lifetime"
    usable = ~lifetime & ~not_real
    years = pd.to_numeric(values.astype(object).where(usable), errors="coerce").to_numpy(dtype=np.float64,
                                                                                         na_value=np.nan)
    years[(np.isnan(years) & ~lifetime & ~is_blank(values)) | not_real] = -np.inf
    return np.where(lifetime, LIFETIME_AGE - age, years), lifetime, values.to_numpy(dtype=object)


def _aligned(horizon: pd.Series, index: pd.Index) -> pd.Series:
    """A per-row horizon Series on the cohort's index (by label, not by position).

    Raises:
        ValueError: its labels are not the cohort's (naming some that are missing or extra), or
            either index has duplicate labels and the two differ.
    """
    if horizon.index.equals(index):
        return horizon
    missing = index.difference(horizon.index, sort=False)
    extra = horizon.index.difference(index, sort=False)
    if len(missing) or len(extra):
        parts = [f"{len(missing)} of the cohort's labels are missing from it (first: {list(missing[:5])})"
                 if len(missing) else "", f"{len(extra)} labels are not in the cohort (first: {list(extra[:5])})"
                 if len(extra) else ""]
        raise ValueError("horizon: a Series is matched to the cohort by its index, but "
                         + "; ".join(p for p in parts if p))
    if not index.is_unique or not horizon.index.is_unique:
        raise ValueError("horizon: a Series is matched to the cohort by its index, but an index has duplicate "
                         "labels in a different order; give a list or array (by position) instead")
    return horizon.reindex(index)


def _scalar_years(horizon: object) -> float | None:
    """A scalar horizon as a number of years, None for "lifetime"; text is read case- and space-insensitively.

    Raises:
        ValueError: a boolean, a complex number, text that is neither a number nor "lifetime", or a
            number that is not positive and finite.
    """
    if isinstance(horizon, bool | np.bool_ | complex | np.complexfloating):
        raise ValueError(f"horizon={horizon!r}: not a number of years (a "
                         f"{'boolean' if isinstance(horizon, bool | np.bool_) else 'complex number'})")
    if isinstance(horizon, str):
        if horizon.strip().lower() == "lifetime":
            return None
        try:
            value = float(horizon.strip())
        except ValueError:
            raise ValueError(f"horizon={horizon!r}: give a number of years, 'lifetime', or the name of a column"
                             ) from None
    else:
        try:
            value = float(horizon)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"horizon={horizon!r}: not a number of years") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"horizon={horizon!r}: must be a positive number of years")
    return value


def _horizon_years(data: pd.DataFrame, horizon: Horizon, age: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-row horizon in years, which rows asked for "lifetime" (to age 90), and the values as given."""
    n = len(data)
    if isinstance(horizon, str) and horizon != "lifetime" and horizon in data.columns:
        return _per_row_years(data[horizon], age)
    if isinstance(horizon, str) or np.isscalar(horizon):
        value = _scalar_years(horizon)
        if value is None:
            return LIFETIME_AGE - age, np.ones(n, dtype=bool), np.full(n, "lifetime", dtype=object)
        return np.full(n, value), np.zeros(n, dtype=bool), np.full(n, value, dtype=object)
    if isinstance(horizon, pd.Series):
        if len(horizon) != n:
            raise ValueError(f"horizon has {len(horizon)} values for {n} rows; give one per row")
        return _per_row_years(_aligned(horizon, data.index).reset_index(drop=True), age)
    values = pd.Series(np.asarray(horizon, dtype=object))
    if values.shape != (n,):
        raise ValueError(f"horizon has {values.shape[0]} values for {n} rows; give one per row")
    return _per_row_years(values, age)


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
        model: ``"gail"``; the folder of a hybrid model saved by
            :meth:`riskmodel.fusion.HybridModel.save` (or ``riskmodel fit-hybrid``); a fitted
            :class:`~riskmodel.fusion.HybridModel`; or a model object with ``required_columns``
            and ``score(cohort, horizon)``. ``"hybrid"`` alone raises ValueError: no pretrained
            weights ship, a trained model is needed.
        horizon: years from the woman's current age: a number (default 5), ``"lifetime"``
            (to age 90), the name of a column of ``data``, or one value per row. The hybrid
            model projects at most 5 years (longer horizons: status ``out_of_range``).
        exams: hybrid models only, and required for them: the exams, as a DataFrame from
            :func:`riskmodel.imaging.assemble_exams`, a folder of DICOM files (scanned and
            assembled here), an exams table file (``riskmodel scan --exams``), or an
            :class:`~riskmodel.inference.EncodedExams` made by the model's own image predictor
            (the network is then not run again). Each woman's
            exam is found through the model's key columns (default: ``data["exam_id"]`` =
            ``exams["accession_number"]``).
        fallback: hybrid models only: ``"none"`` (default; a woman without a usable exam gets
            status ``no_exam``) or ``"factors"`` (she is scored by the factors-only head fitted
            with the model; status ``ok`` and a message saying so).
        details: if True, add model-specific columns (for Gail: ``average_risk``, the risk
            of a woman of the same age and race with average risk factors, and the
            relative risks ``rr_under50`` and ``rr_over50``; for the hybrid: ``exam_used``,
            ``n_views``, ``imputed``, ``fallback``).
        chunk_size: rows scored at a time (bounds memory; results do not depend on it).
        progress: show a progress bar (tqdm, on stderr) while scoring.
        batch_size, cache_dir, num_workers: hybrid models only: exams per forward pass, cache
            of preprocessed views, DataLoader worker processes reading the DICOMs.
        device: where a hybrid model loaded from a folder runs (``"auto"``: the GPU if any).
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
        A hybrid model always adds ``risk_1y`` … ``risk_5y``. ``out.attrs["columns_used"]`` is
        ``{input column: canonical column}`` for the columns read, ``out.attrs["columns_ignored"]``
        the list of input columns not read. A bad value in a column the model does not read and
        lists in ``notes_only_columns`` (for Gail: ``density``) leaves the status as it is and is
        reported in ``message``.

    Raises:
        riskmodel.SchemaError: a required column is missing or unusable as a whole.
        ValueError: an unknown model, ``model="hybrid"`` without a trained model, a hybrid
            model without ``exams`` (or ``exams`` given to a model that reads none), or a
            malformed ``horizon``.
        riskmodel.bundle.BundleError: a saved hybrid model that fails its integrity checks.

    Examples:
        >>> import pandas as pd, riskmodel
        >>> df = pd.DataFrame({"age": [50.0, 95.0], "race": [1, 1]})
        >>> out = riskmodel.predict_risk(df, horizon=5)
        >>> out["status"].tolist()
        ['ok', 'out_of_range']
    """
    if _is_dask(data):
        from riskmodel.distributed import predict_risk_dask

        if progress:
            raise ValueError("progress=True is for pandas input; a Dask result is lazy: follow its computation on "
                             "the Dask dashboard or with dask.distributed.progress")
        if na_values is not None:
            raise ValueError("na_values= is for pandas input; a Dask DataFrame is read with the default unknown "
                             "tokens (riskmodel.schema.DEFAULT_NA_VALUES)")
        data = match_columns(data, columns).apply(data)
        return predict_risk_dask(data, model, horizon, details=details, chunk_size=chunk_size, exams=exams)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    match = match_columns(data, columns)
    impl = _load_model(model, device=device)
    needs_exams = bool(getattr(impl, "needs_exams", False))
    score_options: dict[str, Any] = {}
    if needs_exams:
        from riskmodel.fusion.hybrid import _check_fallback, read_exams

        if exams is None:
            raise ValueError(f"model {getattr(impl, 'name', 'hybrid')!r} reads mammograms: pass exams= (a DataFrame "
                             "from riskmodel.imaging.assemble_exams, a folder of DICOM files, or an exams table)")
        _check_fallback(fallback)
        score_options = {"exams": read_exams(exams), "fallback": fallback, "batch_size": batch_size,
                         "cache_dir": cache_dir, "num_workers": num_workers, "progress": progress}
    elif exams is not None:
        raise ValueError(f"exams= is for models that read mammograms (a hybrid model); model "
                         f"{getattr(impl, 'name', type(impl).__name__)!r} does not use them")
    cohort = validate(data, required=impl.required_columns, columns=match, na_values=na_values,
                      notes_only=getattr(impl, "notes_only_columns", ()))
    data = match.apply(data)  # canonical names for the horizon column and the exam keys
    if needs_exams:
        keys = impl.exam_keys(data)
    age = cohort.column("age")
    years, lifetime, given = _horizon_years(data, horizon, age)
    # "lifetime" at age >= 90 leaves no years: not a bad horizon, the model reports the age.
    years = np.where(lifetime & ~(years > 0), np.nan, years)
    cohort.flag(np.isnan(years) & ~lifetime & cohort.ok, "missing", "horizon: missing for this row")
    cohort.flag(~(years > 0) & ~np.isnan(years), "invalid", "horizon={h}: must be a positive number of years",
                h=given)
    years = np.where(years > 0, years, np.nan)
    n = len(cohort)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="rows", desc=f"scoring ({getattr(impl, 'name', 'model')})")
    parts = []
    for start in range(0, max(n, 1), max(int(chunk_size), 1)):
        stop = min(start + max(int(chunk_size), 1), n)
        if needs_exams:
            parts.append(impl.score(cohort.rows(start, stop), years[start:stop], keys=keys[start:stop],
                                    **score_options))
        else:
            parts.append(impl.score(cohort.rows(start, stop), years[start:stop]))
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    result = {name: np.concatenate([np.asarray(getattr(p, name)) for p in parts]) for name in vars(parts[0])}
    out = pd.DataFrame(
        {
            "risk": result["risk"],
            "status": cohort.status,
            "message": cohort.message,
            "model": getattr(impl, "name", type(impl).__name__),
            "horizon": years,
        },
        index=data.index,
    )
    always = tuple(getattr(impl, "output_columns", ()))
    for name in always:
        out[name] = result[name]
    if details:
        for name, values in result.items():
            if name != "risk" and name not in always:
                out[name] = values
    out.attrs["columns_used"] = dict(cohort.columns_used)
    out.attrs["columns_ignored"] = list(cohort.columns_ignored)
    return out
