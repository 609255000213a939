"""Scoring one part of a larger table exactly as the whole table would score it.

:func:`riskmodel.predict_risk` validates and scores row by row, with one exception: a
canonical numeric column (``age``, ``prs``, counts …) that holds text in *every* non-empty
cell is an error of the whole column (:class:`~riskmodel.SchemaError`), not an ``invalid``
status on each row. A part of a table (a chunk of a file, a Dask partition) can look like
that when the whole table does not. :func:`predict_part` scores such a part as the whole
table would, and :class:`TextColumnCheck` applies the whole-column rule over all parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.models.core import prepare_and_score
from riskmodel.models.registry import resolve
from riskmodel.schema import COLUMNS, SchemaError, is_blank

#: Column kinds that :func:`riskmodel.schema.validate` coerces to numbers (and may reject as a whole).
NUMERIC_KINDS = frozenset({"float", "count", "binary"})


def text_columns(frame: pd.DataFrame) -> list[str]:
    """Canonical numeric columns of ``frame`` held as text (or other non-numeric values).

    These are the columns :func:`riskmodel.schema.validate` coerces cell by cell, and the only
    ones it can reject as a whole for having no number at all.
    """
    names = []
    for name, column in COLUMNS.items():
        if column.kind not in NUMERIC_KINDS or name not in frame.columns or frame.columns.duplicated().any():
            continue
        dtype = frame[name].dtype
        if (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)
                or pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype)):
            continue
        names.append(name)
    return names


def _not_numbers(s: pd.Series) -> np.ndarray:
    """Cells that are neither blank nor a number, shape ``(n,)`` (the rule of :func:`riskmodel.schema.validate`)."""
    coerced = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.isnan(coerced) & ~is_blank(s)


def _no_number_at_all(s: pd.Series) -> bool:
    """True where validate() would reject the column ``s`` as a whole."""
    bad = _not_numbers(s)
    return bool(len(s) > 0 and bad.any() and bad.sum() == s.notna().sum())


@dataclass
class TextColumnCheck:
    """The whole-column rule of :func:`riskmodel.schema.validate`, accumulated over the parts of a table.

    Feed every part to :meth:`update` (or merge the :attr:`counts` of parts scanned elsewhere),
    then :meth:`check` raises the error validating the whole table would raise.

    Attributes:
        counts: per column ``[cells that are not numbers, non-missing cells, first such cell]``.

    Examples:
        >>> import pandas as pd
        >>> check = TextColumnCheck()
        >>> check.update(pd.DataFrame({"age": ["fifty", None]}))
        >>> check.update(pd.DataFrame({"age": ["52", "sixty"]}))
        >>> check.check()  # one number in the whole column: rows are flagged, the column is fine
        >>> check = TextColumnCheck()
        >>> check.update(pd.DataFrame({"age": ["fifty", None]}))
        >>> check.check()
        Traceback (most recent call last):
        ...
        riskmodel.schema.SchemaError: column 'age': has dtype object and no numeric values (first: 'fifty')
    """

    counts: dict[str, list[Any]] = field(default_factory=dict)

    def update(self, part: pd.DataFrame, columns: list[str] | None = None) -> None:
        """Count the cells of ``columns`` (default: :func:`text_columns`) in the next part, in table order."""
        for name in text_columns(part) if columns is None else columns:
            s = part[name]
            if pd.api.types.is_bool_dtype(s.dtype):  # True/False read as text elsewhere in the column
                bad, notna, first = int(s.notna().sum()), int(s.notna().sum()), str(s.iloc[0]) if len(s) else None
            elif pd.api.types.is_numeric_dtype(s.dtype):
                bad, notna, first = 0, int(s.notna().sum()), None
            else:
                mask = _not_numbers(s)
                bad, notna = int(mask.sum()), int(s.notna().sum())
                first = s[mask].iloc[0] if bad else None
            self.add(name, bad, notna, first)

    def add(self, name: str, bad: int, notna: int, first: Any) -> None:
        """Add the counts of one part (parts in table order, so that the first bad cell is the table's)."""
        total = self.counts.setdefault(name, [0, 0, None])
        total[0] += bad
        total[1] += notna
        if total[2] is None and first is not None:
            total[2] = first

    def check(self, dtypes: dict[str, Any] | None = None) -> None:
        """Raise :class:`~riskmodel.SchemaError` for a column with no number in the whole table.

        Args:
            dtypes: the column's dtype in the whole table, for the message (default ``object``).
        """
        for name, (bad, notna, first) in self.counts.items():
            if bad and bad == notna:
                dtype = (dtypes or {}).get(name, "object")
                raise SchemaError(name, f"has dtype {dtype} and no numeric values (first: {first!r})")


def _pad_value(s: pd.Series) -> pd.Series:
    """A one-cell Series holding the number 0, in the dtype of ``s`` (text)."""
    return pd.Series(["0"], dtype=object).astype(s.dtype)


def predict_part(part: pd.DataFrame, model: str | os.PathLike[str] | Any = "gail", horizon: float | str = 5.0,
                 **options: Any) -> pd.DataFrame:
    """:func:`riskmodel.predict_risk` on a part of a larger table, each row scored as in the whole table.

    The one rule of validation that looks at more than a row, "a numeric column with no number
    at all is unusable", is left to :class:`TextColumnCheck` over the whole table. When this part
    alone breaks it (every filled cell of ``prs`` in these rows is text, say), the part is scored
    with one extra row holding a number in that column, and the extra row's output is dropped:
    each row gets the same status and message as when the whole table is scored.

    Args:
        part: rows of the table (any index; it is kept).
        model: a name in :data:`riskmodel.MODELS` or a :class:`~riskmodel.models.base.RiskModel`
            that needs only the cohort table (``inputs`` empty).
        horizon: a number, ``"lifetime"`` or a column name (per-row arrays belong in a column).
        options: ``details``, ``chunk_size``, ``progress``, ``columns``, ``na_values``, as for
            :func:`riskmodel.predict_risk`.

    Returns:
        :func:`riskmodel.predict_risk`'s output for these rows, same index and order.
    """
    impl = resolve(model, device="cpu")
    if impl.inputs:
        raise ValueError(f"model {impl.name!r} needs {', '.join(impl.inputs)} besides the cohort table; predict_part "
                         "scores table-only models: use riskmodel.predict_risk(..., exams=...)")
    padded = [name for name in text_columns(part) if _no_number_at_all(part[name])]
    if not padded:
        return prepare_and_score(impl, part, horizon, **options)
    for name in padded:
        dtype = part[name].dtype
        if isinstance(dtype, pd.CategoricalDtype) and "0" not in dtype.categories:
            part = part.assign(**{name: part[name].cat.add_categories(["0"])})
    extra = part.iloc[[-1]].copy()
    for name in padded:
        extra[name] = _pad_value(part[name]).set_axis(extra.index)
    return prepare_and_score(impl, pd.concat([part, extra]), horizon, **options).iloc[:-1]
