"""The scoring core every model shares: horizons, validation, the chunk loop and the output frame.

:func:`score_cohort` is what :func:`riskmodel.predict_risk` runs for a pandas DataFrame once it has
a :class:`~riskmodel.models.base.RiskModel` and the model's prepared inputs::

    data ─► validate (schema: required columns, one status + message per row)
         ─► horizon in years per row (a number, "lifetime", a column, one value per row)
         ─► model.assess(chunk, years, **prepared), chunk after chunk (memory bound)
         ─► risk, status, message, model, horizon, the model's output columns (+ details)

Torch-free: it imports only numpy, pandas and :mod:`riskmodel.schema`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.models.base import RiskModel
from riskmodel.schema import ColumnMatch, is_blank, match_columns, not_real_cells, object_full, text_key, validate

__all__ = ["LIFETIME_AGE", "OUTPUT_COLUMNS", "Horizon", "horizon_years", "prepare_and_score", "score_cohort"]

Horizon = float | int | str | Sequence[float] | np.ndarray | pd.Series

#: "lifetime" is to this age (years).
LIFETIME_AGE = 90.0
#: Keyword names of :func:`score_cohort`, which a model's prepared inputs may not use.
RESERVED = frozenset({"model", "data", "horizon", "details", "chunk_size", "progress", "columns", "na_values"})
#: Columns every output has, in this order, before the model's own.
OUTPUT_COLUMNS = ("risk", "status", "message", "model", "horizon")


def _per_row_years(values: pd.Series, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of years, or the word "lifetime" (to age 90), one per row.

    Blank cells give NaN (missing); text that is neither a number nor "lifetime", a boolean or a
    complex number gives −inf, which the caller reports as an invalid horizon.
    """
    not_real = not_real_cells(values)
    lifetime = text_key(values).to_numpy() == "lifetime"
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


def horizon_years(data: pd.DataFrame, horizon: Horizon, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row horizon in years, which rows asked for "lifetime" (to age 90), and the values as given.

    Args:
        data: the cohort with canonical column names (a horizon column is looked up in it).
        horizon: a number, ``"lifetime"``, a column name, or one value per row (a Series is
            matched by its index, anything else by position).
        age: ``(n,)`` ages in years (for ``"lifetime"``).

    Returns:
        ``(years, lifetime, given)``, each of shape ``(n,)``: years as float64 (NaN for a blank
        cell, −inf for a cell that is not a number of years), a boolean mask, the values as given.

    Raises:
        ValueError: a malformed scalar horizon, or per-row values of the wrong length or labels.
    """
    n = len(data)
    if isinstance(horizon, str) and horizon != "lifetime" and horizon in data.columns:
        return _per_row_years(data[horizon], age)
    if isinstance(horizon, str) or np.isscalar(horizon):
        value = _scalar_years(horizon)
        if value is None:
            return LIFETIME_AGE - age, np.ones(n, dtype=bool), object_full(n, "lifetime")
        return np.full(n, value), np.zeros(n, dtype=bool), object_full(n, value)
    if isinstance(horizon, pd.Series):
        if len(horizon) != n:
            raise ValueError(f"horizon has {len(horizon)} values for {n} rows; give one per row")
        return _per_row_years(_aligned(horizon, data.index).reset_index(drop=True), age)
    values = pd.Series(np.asarray(horizon, dtype=object))
    if values.shape != (n,):
        raise ValueError(f"horizon has {values.shape[0]} values for {n} rows; give one per row")
    return _per_row_years(values, age)


def _per_chunk(prepared: Mapping[str, Any], n: int, name: str) -> set[str]:
    """The prepared inputs that are per-row arrays (sliced with each chunk).

    Raises:
        ValueError: an array whose first dimension is not the number of rows (a model's bug).
    """
    rows = set()
    for key, value in prepared.items():
        if isinstance(value, np.ndarray):
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"model {name!r}: prepare() returned {key!r} with shape {value.shape}; an array "
                                 f"must have one entry per cohort row ({n})")
            rows.add(key)
    return rows


def _checked_result(result: Mapping[str, Any], n: int, name: str, wanted: Iterable[str],
                    details: bool = True) -> dict[str, np.ndarray]:
    """``assess``'s output as arrays of shape ``(n,)``: every column, or with ``details=False`` only
    ``risk`` and ``wanted`` (a detail column a :class:`~riskmodel.models.base.LazyColumns` defers is
    then never computed).

    Raises:
        ValueError: ``risk`` or an output column is missing, or an array has another length (a model's bug).
    """
    if not isinstance(result, Mapping):
        raise TypeError(f"model {name!r}: assess() must return a mapping of column name to array, got "
                        f"{type(result).__name__}")
    missing = [c for c in ("risk", *wanted) if c not in result]
    if missing:
        raise ValueError(f"model {name!r}: assess() returned no {', '.join(map(repr, missing))}")
    out = {}
    keys = list(result) if details else ["risk", *(k for k in wanted if k != "risk")]
    for key in keys:
        arr = np.asarray(result[key])
        if arr.shape != (n,):
            raise ValueError(f"model {name!r}: assess() returned {key!r} with shape {arr.shape}; expected ({n},)")
        out[key] = arr
    return out


def score_cohort(
    model: RiskModel,
    data: pd.DataFrame,
    horizon: Horizon = 5.0,
    *,
    details: bool = False,
    chunk_size: int = 250_000,
    progress: bool = False,
    columns: Mapping[Any, str] | ColumnMatch | None = None,
    na_values: Iterable[str] | None = None,
    **prepared: Any,
) -> pd.DataFrame:
    """Score a pandas cohort with a :class:`~riskmodel.models.base.RiskModel`: one output row per input row.

    Args:
        model: the model (already resolved: :func:`riskmodel.models.registry.resolve`).
        data: one row per woman, canonical schema (columns matched as :func:`riskmodel.schema.match_columns` does).
        horizon: years from the woman's current age: a number, ``"lifetime"`` (to age 90), the
            name of a column of ``data``, or one value per row (a Series by its index).
        details: add every other column ``assess`` returns (``output_columns`` are always added).
        chunk_size: rows assessed at a time (memory only; results do not depend on it).
        progress: a tqdm progress bar on stderr.
        columns: renames ``{input column: canonical column}``, or a :class:`~riskmodel.schema.ColumnMatch`.
        na_values: text meaning unknown (default :data:`riskmodel.schema.DEFAULT_NA_VALUES`).
        prepared: what ``model.prepare`` returned; numpy arrays are per row and sliced with each chunk.

    Returns:
        ``risk``, ``status``, ``message``, ``model``, ``horizon`` and the model's columns, with
        the index and order of ``data``; ``attrs["columns_used"]`` (input column → canonical
        column) and ``attrs["columns_ignored"]`` (input columns not read).

    Raises:
        riskmodel.SchemaError: a required column is missing or unusable as a whole.
        ValueError: a malformed horizon.
    """
    name = str(model.name)
    match = columns if isinstance(columns, ColumnMatch) else match_columns(data, columns)
    cohort = validate(data, required=model.required_columns, columns=match, na_values=na_values,
                      notes_only=getattr(model, "notes_only_columns", ()))
    data = match.apply(data)  # canonical names for the horizon column
    age = cohort.column("age")
    years, lifetime, given = horizon_years(data, horizon, age)
    # "lifetime" at age >= 90 leaves no years: not a bad horizon, the model reports the age.
    years = np.where(lifetime & ~(years > 0), np.nan, years)
    cohort.flag(np.isnan(years) & ~lifetime & cohort.ok, "missing", "horizon: missing for this row")
    cohort.flag(~(years > 0) & ~np.isnan(years), "invalid", "horizon={h}: must be a positive number of years",
                h=given)
    cohort.flag(lifetime & np.isnan(age) & cohort.ok, "missing", "age: missing, and horizon='lifetime' is to age "
                f"{LIFETIME_AGE:g}")
    years = np.where(years > 0, years, np.nan)
    n = len(cohort)
    sliced = _per_chunk(prepared, n, name)
    step = max(int(chunk_size), 1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="rows", desc=f"scoring ({name})")
    parts = []
    for start in range(0, max(n, 1), step):
        stop = min(start + step, n)
        args = {k: (v[start:stop] if k in sliced else v) for k, v in prepared.items()}
        parts.append(_checked_result(model.assess(cohort.rows(start, stop), years[start:stop], **args),
                                     stop - start, name, model.output_columns, details))
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    result = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    risk = result["risk"]
    if model.max_horizon is not None:
        cohort.flag(cohort.ok & (years > model.max_horizon + 1e-9), "out_of_range",
                    f"horizon={{h}}: the {name} model projects at most {model.max_horizon:g} years", h=years)
    cohort.flag(cohort.ok & np.isnan(risk.astype(np.float64)), "invalid", f"the {name} model gave no risk for this row")
    out = pd.DataFrame(
        {
            "risk": np.where(cohort.ok, risk, np.nan),
            "status": cohort.status,
            "message": cohort.message,
            "model": name,
            "horizon": years,
        },
        index=data.index,
    )
    always = tuple(model.output_columns)
    for key in always:
        out[key] = result[key]
    if details:
        for key, values in result.items():
            if key != "risk" and key not in always:
                out[key] = values
    out.attrs["columns_used"] = dict(cohort.columns_used)
    out.attrs["columns_ignored"] = list(cohort.columns_ignored)
    return out


def prepare_and_score(model: RiskModel, data: pd.DataFrame, horizon: Horizon = 5.0, *,
                      inputs: Mapping[str, Any] | None = None,
                      columns: Mapping[Any, str] | ColumnMatch | None = None, **options: Any) -> pd.DataFrame:
    """``model.prepare(data, **inputs)`` (on canonical column names), then :func:`score_cohort`.

    What :func:`riskmodel.predict_risk` does for a pandas DataFrame once the model is resolved,
    and what a model's own ``predict`` method calls. ``options``: ``details``, ``chunk_size``,
    ``progress``, ``na_values``, as for :func:`score_cohort`.

    Raises:
        TypeError: ``data`` is not a pandas DataFrame.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    match = columns if isinstance(columns, ColumnMatch) else match_columns(data, columns)
    prepared = model.prepare(match.apply(data), **(inputs or {}))
    taken = sorted(set(prepared) & RESERVED)
    if taken:
        raise ValueError(f"model {model.name!r}: prepare() returned {taken}, names score_cohort itself takes; "
                         "rename them")
    return score_cohort(model, data, horizon, columns=match, **options, **prepared)
