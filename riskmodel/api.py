"""``riskmodel.predict_risk``: validate a cohort, run a model, return one row per woman."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.schema import is_blank, validate

Horizon = float | int | str | Sequence[float] | np.ndarray | pd.Series

#: Model names accepted by :func:`predict_risk`, with what each is.
MODELS = {"gail": "Gail model / NCI BCRAT (R BCRA 2.1.2), ages 20–90, invasive breast cancer"}

LIFETIME_AGE = 90.0
OUTPUT_COLUMNS = ("risk", "status", "message", "model", "horizon")


def _load_model(model: str | Any) -> Any:
    if not isinstance(model, str):
        if not hasattr(model, "score") or not hasattr(model, "required_columns"):
            raise TypeError("model must be a name in riskmodel.MODELS or an object with "
                            "`required_columns` and `score(cohort, horizon)`")
        return model
    if model == "gail":
        from riskmodel.gail import GailModel

        return GailModel()
    raise ValueError(f"unknown model {model!r}; available: {', '.join(MODELS)}")


def _per_row_years(values: pd.Series, age: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers of years, or the word "lifetime" (to age 90), one per row.

    Blank cells give NaN (missing); text that is neither a number nor "lifetime" gives −inf,
    which the caller reports as an invalid horizon.
    """
    lifetime = values.astype(str).str.strip().str.lower().to_numpy() == "lifetime"
    years = pd.to_numeric(values.where(~lifetime), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    years[np.isnan(years) & ~lifetime & ~is_blank(values)] = -np.inf
    return np.where(lifetime, LIFETIME_AGE - age, years), lifetime, values.to_numpy(dtype=object)


def _horizon_years(data: pd.DataFrame, horizon: Horizon, age: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-row horizon in years, which rows asked for "lifetime" (to age 90), and the values as given."""
    n = len(data)
    if isinstance(horizon, str):
        if horizon == "lifetime":
            return LIFETIME_AGE - age, np.ones(n, dtype=bool), np.full(n, horizon, dtype=object)
        if horizon in data.columns:
            return _per_row_years(data[horizon], age)
        raise ValueError(f"horizon={horizon!r}: give a number of years, 'lifetime', or the name of a column")
    if np.isscalar(horizon):
        try:
            value = float(horizon)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"horizon={horizon!r}: not a number of years") from None
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"horizon={horizon!r}: must be a positive number of years")
        return np.full(n, value), np.zeros(n, dtype=bool), np.full(n, value, dtype=object)
    values = pd.Series(np.asarray(horizon, dtype=object))
    if values.shape != (n,):
        raise ValueError(f"horizon has {values.shape[0]} values for {n} rows; give one per row")
    return _per_row_years(values, age)


def predict_risk(
    data: pd.DataFrame,
    model: str | Any = "gail",
    horizon: Horizon = 5.0,
    *,
    details: bool = False,
    chunk_size: int = 250_000,
    progress: bool = False,
) -> pd.DataFrame:
    """Absolute risk of invasive breast cancer for each woman in ``data``.

    Args:
        data: one row per woman in the canonical schema (:mod:`riskmodel.schema`; the
            columns are listed in ``docs/schema.md``). NaN means unknown.
        model: a name in :data:`MODELS` (``"gail"``) or a model object with
            ``required_columns`` and ``score(cohort, horizon)``.
        horizon: years from the woman's current age: a number (default 5), ``"lifetime"``
            (to age 90), the name of a column of ``data``, or one value per row.
        details: if True, add model-specific columns (for Gail: ``average_risk``, the risk
            of a woman of the same age and race with average risk factors, and the
            relative risks ``rr_under50`` and ``rr_over50``).
        chunk_size: rows scored at a time (bounds memory; results do not depend on it).
        progress: show a progress bar (tqdm, on stderr) while scoring.

    Returns:
        A DataFrame with the index and row order of ``data`` and the columns ``risk``
        (probability in [0, 1], NaN where not scored), ``status`` (``"ok"`` or a code from
        :data:`riskmodel.schema.STATUS_CODES`), ``message`` (empty when ok, else the
        column and rule broken), ``model`` and ``horizon`` (years used for that row).

    Raises:
        riskmodel.SchemaError: a required column is missing or unusable as a whole.
        ValueError: an unknown model or a malformed ``horizon``.

    Examples:
        >>> import pandas as pd, riskmodel
        >>> df = pd.DataFrame({"age": [50.0, 95.0], "race": [1, 1]})
        >>> out = riskmodel.predict_risk(df, horizon=5)
        >>> out["status"].tolist()
        ['ok', 'out_of_range']
    """
    impl = _load_model(model)
    cohort = validate(data, required=impl.required_columns)
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
    if details:
        for name, values in result.items():
            if name != "risk":
                out[name] = values
    return out
