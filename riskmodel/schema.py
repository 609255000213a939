"""The canonical cohort schema: one row per woman, column names, units, codes and row rules.

This is the first stage of the data flow. :func:`validate` coerces a user's table into
typed columns and gives every row a status:

* a problem with a whole column (a required column missing, a column that is not numeric
  at all) raises :class:`SchemaError`, a ``ValueError`` naming the column;
* a problem with one row (a value out of its domain, two values that contradict each other)
  gives that row a status code and a message naming the column and the rule; other rows
  are unaffected. Rows are never dropped, added or reordered.

``NaN`` (or an empty cell) always means *unknown*. Which unknowns a model tolerates is the
model's business, not the schema's.
"""

from __future__ import annotations

import contextlib
import difflib
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BRCA_CODES",
    "COLUMNS",
    "DEFAULT_NA_VALUES",
    "DENSITY_CODES",
    "DENSITY_NAMES",
    "MAX_COUNT",
    "RACE_NAMES",
    "STATUS_CODES",
    "Column",
    "ColumnMatch",
    "ColumnWarning",
    "SchemaError",
    "ValidatedCohort",
    "is_blank",
    "match_columns",
    "validate",
]


class SchemaError(ValueError):
    """A column is missing or unusable as a whole. ``column`` names it."""

    def __init__(self, column: str, rule: str):
        self.column = column
        self.rule = rule
        super().__init__(f"column {column!r}: {rule}")


class ColumnWarning(UserWarning):
    """An input column looks like a canonical one (case, separators, close spelling) but is not used."""


#: Largest plausible number of biopsies or affected first-degree relatives.
MAX_COUNT = 30

#: Row status codes, in the order they take precedence when a row breaks several rules.
STATUS_CODES = {
    "ok": "the row was scored",
    "missing": "a value the model needs is unknown (NaN)",
    "invalid": "a value is outside its allowed domain",
    "inconsistent": "two values contradict each other",
    "out_of_range": "valid input outside the range the model covers (e.g. age)",
    "not_applicable": "the model is not meant for this woman (e.g. a BRCA carrier for Gail)",
    "no_exam": "an image model has no usable mammography exam for this woman",
}

#: Race/ethnicity: BCRAT codes 1–11 and the names accepted for them (case-insensitive,
#: spaces and hyphens read as underscores).
RACE_NAMES: dict[str, int] = {
    "white": 1,
    "african_american": 2,
    "black": 2,
    "hispanic_us_born": 3,
    "other": 4,
    "native_american": 4,
    "american_indian": 4,
    "unknown": 4,
    "hispanic_foreign_born": 5,
    "chinese": 6,
    "japanese": 7,
    "filipino": 8,
    "hawaiian": 9,
    "native_hawaiian": 9,
    "other_pacific_islander": 10,
    "other_asian": 11,
}
#: BI-RADS density categories (5th edition): a (almost entirely fatty) … d (extremely dense).
DENSITY_CODES = {"a": 1, "b": 2, "c": 3, "d": 4}
#: BI-RADS density descriptors (5th edition) accepted for the letters; case-insensitive, spaces as underscores.
DENSITY_NAMES = {
    "almost_entirely_fatty": 1,
    "scattered_fibroglandular": 2,
    "scattered_areas_of_fibroglandular_density": 2,
    "scattered_fibroglandular_density": 2,
    "heterogeneously_dense": 3,
    "extremely_dense": 4,
}
#: Germline status.
BRCA_CODES = {"negative": 0, "brca1": 1, "brca2": 2}


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, unit and documentation."""

    name: str
    kind: str  # "float", "count", "binary", "bool", "race", "density", "brca", "id"
    unit: str
    description: str


COLUMNS: dict[str, Column] = {
    c.name: c
    for c in [
        Column("id", "id", "", "optional identifier (predict_risk keeps the index; the CLI copies id to its output)"),
        Column("age", "float", "years", "current age; the projection starts here"),
        Column("race", "race", "BCRAT code", "race/ethnicity: code 1–11 or a name in RACE_NAMES"),
        Column("age_at_menarche", "float", "years", "age at first menstrual period"),
        Column("age_at_first_birth", "float", "years", "age at first live birth; NaN if none or unknown"),
        Column("nulliparous", "bool", "", "True if she has had no live birth"),
        Column("n_biopsies", "count", "", "number of breast biopsies (benign or not)"),
        Column("atypical_hyperplasia", "binary", "0/1", "atypical hyperplasia found in a biopsy"),
        Column("first_degree_relatives", "count", "", "mother, sisters, daughters with breast cancer"),
        Column("density", "density", "BI-RADS", "breast density a–d (or 1–4)"),
        Column("brca", "brca", "", "germline status: BRCA1, BRCA2 or negative"),
        Column("prs", "float", "SD", "standardized polygenic risk score (mean 0, SD 1 in the population)"),
        Column("prior_breast_cancer", "bool", "", "personal history of invasive breast cancer"),
        Column("prior_dcis_or_lcis", "bool", "", "personal history of DCIS or LCIS"),
        Column("chest_radiation", "bool", "", "chest radiation therapy (e.g. for Hodgkin lymphoma)"),
        Column("exam_id", "id", "", "key of the woman's exam: exams table exam_id (accession number, else study UID)"),
    ]
}

#: Names that need a finer choice, with the hint given in the row's message.
#: The Gail model (BCRA 2.1.2) has separate tables for each subgroup and NCI's BCRAT asks for it, so
#: none is chosen for the user: the row is not scored (see docs/schema.md and gail/data/SOURCES.md).
_HISPANIC = ("ambiguous, not scored: the Gail model uses different tables for US-born and foreign-born Hispanic "
             "women; use hispanic_us_born (3) or hispanic_foreign_born (5)")
_ASIAN = ("ambiguous, not scored: the Gail model uses different rates for each Asian subgroup; use chinese (6), "
          "japanese (7), filipino (8) or other_asian (11)")
_PACIFIC = ("ambiguous, not scored: the Gail model uses different rates for each group; use hawaiian (9) or "
            "other_pacific_islander (10)")
_AMBIGUOUS = {
    "hispanic": _HISPANIC, "latina": _HISPANIC, "latino": _HISPANIC, "hispanic_latina": _HISPANIC,
    "hispanic_latino": _HISPANIC,
    "asian": _ASIAN, "asian_american": _ASIAN,
    "pacific_islander": _PACIFIC, "asian_pacific_islander": _PACIFIC + " (or an Asian subgroup, 6–8 or 11)",
}
#: Text that means "unknown" in a cell, as exports write it. Compared case-insensitively,
#: surrounding spaces ignored; an empty cell is always unknown. ``predict_risk(na_values=...)``
#: and ``validate(na_values=...)`` replace this set.
DEFAULT_NA_VALUES: tuple[str, ...] = (
    "nan", "na", "n/a", "n.a.", "none", "null", "unknown", "unk", "not known", "not tested", "not done",
    "missing", "?", ".", "-",
)


def _na_set(na_values: Iterable[str] | None) -> frozenset[str]:
    """The unknown tokens as a lower-case set ("" always included)."""
    if na_values is None:
        return _DEFAULT_NA
    if isinstance(na_values, str):
        na_values = [na_values]
    tokens = list(na_values)
    if not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"na_values must be strings (text meaning unknown), got {tokens!r}")
    return frozenset({""} | {t.strip().lower() for t in tokens})


_DEFAULT_NA = frozenset({""} | set(DEFAULT_NA_VALUES))


def is_blank(s: pd.Series, na_values: Iterable[str] | None = None) -> np.ndarray:
    """Cells that are NaN/None or text meaning unknown, shape ``(n,)``.

    Args:
        s: a column.
        na_values: text meaning unknown (case-insensitive); default :data:`DEFAULT_NA_VALUES`.
    """
    missing = s.isna().to_numpy()
    tokens = _na_set(na_values)
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        numbers = _number_tokens(tokens)
        if numbers and pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            return missing | s.isin(numbers).to_numpy()
        return missing
    return missing | text_key(s).isin(tokens).to_numpy()


def _number_tokens(tokens: frozenset[str]) -> list[float]:
    """The unknown tokens that are numbers (``na_values=["-9"]`` also matches the number −9)."""
    numbers = []
    for t in tokens:
        try:
            numbers.append(float(t))
        except ValueError:
            continue
    return [v for v in numbers if np.isfinite(v)]


def not_real_cells(s: pd.Series) -> np.ndarray:
    """Cells holding a boolean or a complex number, shape ``(n,)``: neither is a real number here."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.notna().to_numpy(dtype=bool)
    if pd.api.types.is_complex_dtype(s.dtype):
        return np.ones(len(s), dtype=bool)
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) in _NO_BOOL_OR_COMPLEX:
        return np.zeros(len(s), dtype=bool)
    kinds = (bool, np.bool_, complex, np.complexfloating)
    return np.fromiter((isinstance(v, kinds) for v in s.to_numpy(dtype=object)), dtype=bool, count=len(s))


#: ``pandas.api.types.infer_dtype`` kinds of an object column that cannot hold a boolean or complex number.
_NO_BOOL_OR_COMPLEX = frozenset({"string", "empty", "floating", "integer", "mixed-integer-float", "decimal"})


def to_numbers(s: pd.Series) -> np.ndarray:
    """``pandas.to_numeric(s, errors="coerce")`` as float64 (NaN where not a number), shape ``(n,)``.

    For a text or object column the conversion runs once per distinct value (a cohort column holds few),
    which gives the same numbers as converting every cell.

    Examples:
        >>> to_numbers(pd.Series(["1", "x", None, "1", 2.5])).tolist()
        [1.0, nan, nan, 1.0, 2.5]
    """
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    codes, distinct = _DISTINCT.get("object", s, lambda: pd.factorize(s.to_numpy(dtype=object)))
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce").to_numpy(dtype=np.float64,
                                                                                         na_value=np.nan)
    return np.append(numbers, np.nan)[codes]  # code -1 (missing) takes the appended NaN


_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
_RANK = {code: i for i, code in enumerate(STATUS_CODES)}


@dataclass
class ValidatedCohort:
    """A cohort coerced to canonical types, with one status and message per row.

    Attributes:
        frame: the canonical columns present, same index and order as the input; numeric
            columns are float64 (NaN = unknown), codes are float64 codes (race 1–11,
            density 1–4, brca 0–2), ``id``/``exam_id`` are kept as given.
        status: object array of shape ``(n,)`` with codes from :data:`STATUS_CODES`.
        message: object array of shape ``(n,)``, empty where ``status == "ok"``.
    """

    frame: pd.DataFrame
    status: np.ndarray
    message: np.ndarray
    columns_present: tuple[str, ...] = field(default=())
    #: Input column -> canonical column it was read as; input columns not read (see :func:`match_columns`).
    columns_used: dict[str, str] = field(default_factory=dict)
    columns_ignored: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of rows with status ``"ok"``."""
        return self.status == "ok"

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self, start: int, stop: int) -> ValidatedCohort:
        """Rows ``start:stop`` as a cohort whose status and message arrays are views of this one's,
        so that flags set on the part show on the whole (used to score in chunks)."""
        return ValidatedCohort(self.frame.iloc[start:stop], self.status[start:stop], self.message[start:stop],
                               self.columns_present, self.columns_used, self.columns_ignored)

    def column(self, name: str) -> np.ndarray:
        """A canonical column as float64, all-NaN if the input did not have it."""
        if name in self.frame:
            return self.frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.full(len(self.frame), np.nan)

    def flag(self, mask: np.ndarray, code: str, message: str, **values: np.ndarray) -> None:
        """Record a problem on the rows in ``mask``; the most basic problem keeps the status.

        Args:
            mask: boolean array of shape ``(n,)``.
            code: a key of :data:`STATUS_CODES` other than ``"ok"``.
            message: text naming the column and the rule; ``{name}`` placeholders are
                filled, for the flagged rows only, from the ``values`` arrays of shape ``(n,)``.
        """
        if code not in STATUS_CODES or code == "ok":
            raise ValueError(f"unknown status code {code!r}")
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        if rows.size == 0:
            return
        cells = {k: _cells_at(v, rows) for k, v in values.items()}
        for i, row in enumerate(rows):
            msg = message.format(**{k: _fmt(cells[k][i]) for k in cells})
            old = self.status[row]
            if old == "ok":
                # A note already on an ok row (see :meth:`note`) stays, after the problem.
                note = self.message[row]
                self.status[row], self.message[row] = code, msg + "; " + note if note else msg
            else:
                if _RANK[old] > _RANK[code]:
                    self.status[row] = code
                self.message[row] = self.message[row] + "; " + msg


    def note(self, mask: np.ndarray, message: str, **values: np.ndarray) -> None:
        """Add ``message`` to the rows in ``mask`` without changing their status (a caveat, not a problem).

        ``message`` and ``values`` are as for :meth:`flag`.
        """
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        cells = {k: _cells_at(v, rows) for k, v in values.items()}
        self._append(rows, [message.format(**{k: _fmt(cells[k][i]) for k in cells}) for i in range(rows.size)])

    def _append(self, rows: np.ndarray, texts: Sequence[str]) -> None:
        """Append ``texts[i]`` to the message of row ``rows[i]``, status unchanged."""
        for row, msg in zip(rows, texts, strict=True):
            self.message[row] = self.message[row] + "; " + msg if self.message[row] else msg


def _cells_at(values: Any, rows: np.ndarray) -> np.ndarray:
    """``np.asarray(values, dtype=object)[rows]``, converting only those rows when ``values`` is an ndarray."""
    if isinstance(values, np.ndarray):
        return values[rows].astype(object)
    return np.asarray(values, dtype=object)[rows]


def object_full(n: int, value: object) -> np.ndarray:
    """An object array of shape ``(n,)`` holding ``value`` (``np.full(n, value, dtype=object)``, 20x faster).

    >>> object_full(2, "ok").tolist()
    ['ok', 'ok']
    """
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _fmt(v: object) -> str:
    """A value as short text for messages (``12`` rather than ``12.0``)."""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "NaN"
        if float(v).is_integer():
            return str(int(v))
    return repr(v) if isinstance(v, str) else str(v)


def _flag_not_real(name: str, s: pd.Series, cohort: ValidatedCohort, what: str) -> np.ndarray:
    """Flag cells holding a boolean or complex number ``invalid``; returns their mask, shape ``(n,)``."""
    bad = not_real_cells(s)
    if bad.any():
        values = s.to_numpy(dtype=object)
        cplx = np.fromiter((isinstance(v, complex | np.complexfloating) for v in values), dtype=bool, count=len(s))
        cplx |= pd.api.types.is_complex_dtype(s.dtype)
        cohort.flag(bad & ~cplx, "invalid", name + "={v}: a true/false value is not " + what, v=values)
        cohort.flag(bad & cplx, "invalid", name + "={v}: a complex number is not " + what, v=values)
    return bad


def _numeric(name: str, s: pd.Series, cohort: ValidatedCohort, na: frozenset[str]) -> np.ndarray:
    """Coerce a column to float64; cells that are not numbers flag their rows ``invalid``.

    Booleans and complex numbers are not numbers here (``age=True`` is not age 1).
    """
    not_real = _flag_not_real(name, s, cohort, "a number")
    if not_real.any():
        s = s.astype(object).where(~not_real, None)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        out = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)  # a view would change the caller's data
        if _number_tokens(na):
            out[is_blank(s, na)] = np.nan
        return out
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or isinstance(s.dtype, pd.PeriodDtype):
        raise SchemaError(name, f"has dtype {s.dtype}; expected numbers")
    coerced = to_numbers(s)
    blank = is_blank(s, na)
    coerced[blank] = np.nan
    bad = np.isnan(coerced) & ~blank & ~not_real
    if bad.any() and bad.sum() == s.notna().sum() and len(s) > 0:
        raise SchemaError(name, f"has dtype {s.dtype} and no numeric values (first: {s[bad].iloc[0]!r})")
    cohort.flag(bad, "invalid", name + "={v}: not a number", v=s.to_numpy(dtype=object))
    return coerced


def _binary(name: str, s: pd.Series, cohort: ValidatedCohort, na: frozenset[str]) -> np.ndarray:
    """A 0/1 column: numbers as given (the row rules check them), booleans and yes/no text as 1/0."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64").to_numpy()
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return _numeric(name, s, cohort, na)
    values = s.to_numpy(dtype=object)
    key = text_key(s)
    is_bool = np.fromiter((isinstance(v, bool | np.bool_) for v in values), dtype=bool, count=len(s))
    yes = (key.isin(_TRUE).to_numpy() & ~key.isin(("1", "1.0")).to_numpy()) | (is_bool & (key == "true").to_numpy())
    no = (key.isin(_FALSE).to_numpy() & ~key.isin(("0", "0.0")).to_numpy()) | (is_bool & (key == "false").to_numpy())
    words = yes | no
    if not words.any():
        return _numeric(name, s, cohort, na)
    out = _numeric(name, s.astype(object).where(~words, 0), cohort, na)
    out[yes], out[no] = 1.0, 0.0
    return out


def _coded(
    name: str, s: pd.Series, names: dict[str, int], codes: Sequence[int], cohort: ValidatedCohort, allowed: str,
    na: frozenset[str],
) -> np.ndarray:
    """Map names (case-insensitive) or numeric codes onto float codes; others flag ``invalid``."""
    out = np.full(len(s), np.nan)
    values = s.to_numpy(dtype=object)
    not_real = _flag_not_real(name, s, cohort, "a code")
    if not_real.any():
        s = s.astype(object).where(~not_real, None)
    named = np.zeros(len(s), dtype=bool)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        named = _name_key(s).isin(names.keys()).to_numpy()  # a name ("unknown" race) before an unknown token
    known = (~is_blank(s, na) | named) & ~not_real
    as_num = to_numbers(s)
    is_code = np.isin(as_num, np.asarray(codes, dtype=np.float64))
    out[is_code] = as_num[is_code]
    rest = known & ~is_code
    if rest.any():
        key = _name_key(s[rest])
        mapped = key.map(names).to_numpy(dtype=np.float64, na_value=np.nan)
        out[np.flatnonzero(rest)] = mapped
        bad = np.zeros(len(s), dtype=bool)
        bad[np.flatnonzero(rest)] = np.isnan(mapped)
        hints = np.full(len(s), "", dtype=object)
        hints[np.flatnonzero(rest)] = key.map(_AMBIGUOUS).fillna("").to_numpy(dtype=object)
        for hint_text in set(hints[bad]) - {""}:
            amb = bad & (hints == hint_text)
            cohort.flag(amb, "invalid", name + "={v}: " + hint_text, v=values)
            bad &= ~amb
        cohort.flag(bad, "invalid", name + "={v}: not " + allowed, v=values)
    return out


def _name_key(s: pd.Series) -> pd.Series:
    """Text as a name key: case-insensitive; spaces, hyphens, commas and brackets read as underscores."""
    return on_distinct_text(s, lambda u: u.str.strip().str.lower().str.replace(r"[\s\-,()/]+", "_", regex=True)
                            .str.strip("_"))


#: Columns this short are transformed cell by cell (:func:`on_distinct_text`).
_FEW_ROWS = 64


class _Distinct(threading.local):
    """Per-thread memo of each text column's distinct texts while :func:`validate` runs.

    One column goes through several text rules (a name key, the unknown tokens, numbers), each of
    which needs its distinct texts; found once per column. Entries hold the Series they describe (so
    its ``id`` cannot be reused) and live only inside :func:`validate`, whose rules never change a
    column in place.
    """

    entries: dict[tuple[str, int], tuple[pd.Series, Any]] | None = None

    def get(self, kind: str, s: pd.Series, make: Callable[[], Any]) -> Any:
        if self.entries is None or s.dtype != object:  # only text columns: the rules never write into them
            return make()
        hit = self.entries.get((kind, id(s)))
        if hit is not None and hit[0] is s:
            return hit[1]
        value = make()
        self.entries[(kind, id(s))] = (s, value)
        return value


_DISTINCT = _Distinct()


@contextlib.contextmanager
def _remember_distinct() -> Iterator[None]:
    outer = _DISTINCT.entries
    _DISTINCT.entries = {} if outer is None else outer
    try:
        yield
    finally:
        _DISTINCT.entries = outer


def on_distinct_text(s: pd.Series, transform: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``transform`` (an element-wise text operation) of ``str(value)`` for every cell, computed once per distinct text.

    A cohort column holds few distinct values (codes, names, yes/no), so this is the same as
    ``transform(s.astype(str))`` cell by cell but costs one pass to find the distinct texts instead of one
    Python-level string operation per row. The distinct values are taken after ``str()``, so ``True``, ``1``
    and ``1.0`` stay distinct (they hash equal as Python objects).

    Args:
        s: a column, shape ``(n,)``.
        transform: maps a Series of text to a Series of the same length (e.g. ``lambda u: u.str.lower()``).

    Returns:
        An object Series, shape ``(n,)``, with ``s``'s index.

    Examples:
        >>> on_distinct_text(pd.Series([" A", "b", " A", True, 1]), lambda u: u.str.strip().str.lower()).tolist()
        ['a', 'b', 'a', 'true', '1']
    """
    if len(s) <= _FEW_ROWS:  # finding the distinct values costs more than it saves
        return pd.Series(transform(s.astype(str)).to_numpy(dtype=object), index=s.index, dtype=object)
    codes, distinct = _DISTINCT.get(
        "text", s, lambda: pd.factorize(s.astype(str).to_numpy(dtype=object), use_na_sentinel=False))
    done = transform(pd.Series(distinct, dtype=object)).to_numpy(dtype=object)
    return pd.Series(done[codes], index=s.index, dtype=object)


def text_key(s: pd.Series) -> pd.Series:
    """Each cell's text stripped and lower-cased (computed once per distinct text), shape ``(n,)``.

    Examples:
        >>> text_key(pd.Series([" Yes", "NO", None])).tolist()
        ['yes', 'no', 'none']
    """
    return on_distinct_text(s, lambda u: u.str.strip().str.lower())


def _boolean(name: str, s: pd.Series, cohort: ValidatedCohort, na: frozenset[str]) -> np.ndarray:
    """Booleans as 0.0/1.0 (NaN unknown); accepts bool, 0/1 and yes/no/true/false text."""
    if pd.api.types.is_complex_dtype(s.dtype):
        _flag_not_real(name, s, cohort, "true/false")
        return np.full(len(s), np.nan)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        out = s.astype("float64").to_numpy()
        if _number_tokens(na):
            out[is_blank(s, na)] = np.nan
    else:
        key = text_key(s)
        out = np.where(key.isin(_TRUE), 1.0, np.where(key.isin(_FALSE), 0.0, np.nan))
        out[s.isna().to_numpy()] = np.nan
        bad = np.isnan(out) & ~is_blank(s, na)
        cohort.flag(bad, "invalid", name + "={v}: not true/false", v=s.to_numpy(dtype=object))
        return out
    bad = ~np.isnan(out) & (out != 0) & (out != 1)
    cohort.flag(bad, "invalid", name + "={v}: must be 0/1 or true/false", v=out)
    out[bad] = np.nan
    return out


def column_key(name: object) -> str:
    """A column name reduced for matching: lower case; runs of spaces, ``-``, ``.``, ``/`` and ``_`` as one ``_``.

    Examples:
        >>> column_key(" Exam-ID ")
        'exam_id'
    """
    return re.sub(r"[\s\-./_]+", "_", str(name).strip().lower()).strip("_")


@dataclass(frozen=True)
class ColumnMatch:
    """Which input columns are read as which canonical columns (see :func:`match_columns`).

    Attributes:
        used: input column -> canonical column, in input order.
        ignored: input columns that are not read (in input order).
        lookalikes: ignored input column -> the canonical column it resembles (a :class:`ColumnWarning` each).
    """

    used: dict[object, str]
    ignored: tuple[object, ...]
    lookalikes: dict[object, str]

    def source(self, canonical: str) -> object | None:
        """The input column read as ``canonical``, or None."""
        return next((k for k, v in self.used.items() if v == canonical), None)

    def apply(self, data: pd.DataFrame) -> pd.DataFrame:
        """``data`` with the used columns under their canonical names (``data`` itself if none is renamed)."""
        renames = {k: v for k, v in self.used.items() if k != v}
        return data.rename(columns=renames) if renames else data

    def check_required(self, required: Iterable[str]) -> None:
        """Raise :class:`SchemaError` for a required column that nothing matched, with a hint if one looks like it."""
        for name in required:
            if self.source(name) is None:
                raise SchemaError(name, "is required but missing from the input" + self._hint(name))

    def _hint(self, name: str) -> str:
        found = [c for c, canon in self.lookalikes.items() if canon == name]
        found += [c for c in self.ignored if c not in found
                  and (name in column_key(c).split("_")
                       or difflib.SequenceMatcher(None, column_key(c), name).ratio() >= 0.6)]
        if not found:
            return ""
        return (f"; found {found[0]!r}: if that is it, rename it to {name!r} or pass "
                f"columns={{{found[0]!r}: {name!r}}}")


def match_columns(data: pd.DataFrame, columns: Mapping[object, str] | None = None, *,
                  warn: bool = True) -> ColumnMatch:
    """Find the canonical columns in ``data``: exact names, explicit renames, then case and separators ignored.

    1. ``columns`` renames: ``{"their_name": "canonical_name"}``.
    2. A column with a canonical name is read as that column.
    3. A column whose name equals a canonical name once case, surrounding spaces and separators
       (spaces, ``-``, ``.``, ``/``, ``_``) are ignored (``"Race"``, ``"N_Biopsies"``,
       ``"First Degree Relatives"``) is read as it, unless the canonical column is already found.

    An input column that is not read but looks like a canonical column (step 3's rule, or a close
    spelling such as ``age_at_menarch``) gives a :class:`ColumnWarning` naming both.

    Raises:
        SchemaError: ``columns`` names a canonical column that does not exist or an input column
            that is missing, maps two inputs to one canonical column, or a rename target is also
            an input column; or two input columns match one canonical column in step 3.
        TypeError: ``columns`` is not a mapping.
    """
    names = list(data.columns)
    targets: dict[str, object] = {}
    if columns is not None:
        if not isinstance(columns, Mapping):
            raise TypeError(f"columns must be a mapping {{input column: canonical column}}, got "
                            f"{type(columns).__name__}")
        for given, canonical in columns.items():
            if canonical not in COLUMNS:
                close = difflib.get_close_matches(column_key(canonical), COLUMNS, n=1)
                raise SchemaError(str(canonical), f"columns= maps {given!r} to it, but it is not a canonical column"
                                  + (f" (did you mean {close[0]!r}?)" if close else "")
                                  + "; see riskmodel.schema.COLUMNS")
            if given not in names:
                listed = ", ".join(map(repr, names[:12])) + (" …" if len(names) > 12 else "")
                raise SchemaError(str(given), f"columns= renames it to {canonical!r}, but the input has no such "
                                  f"column (it has {listed})")
            if canonical in targets:
                raise SchemaError(canonical, f"columns= maps both {targets[canonical]!r} and {given!r} to it")
            targets[canonical] = given
    for name in names:
        if name in targets.values() or not isinstance(name, str) or name not in COLUMNS:
            continue
        if name in targets:
            raise SchemaError(name, f"columns= maps {targets[name]!r} to it, but the input also has a column "
                              f"{name!r}; drop one of them")
        targets[name] = name
    loose: dict[str, list[object]] = {}
    for name in names:
        if name not in targets.values() and column_key(name) in COLUMNS and column_key(name) not in targets:
            loose.setdefault(column_key(name), []).append(name)
    for canonical, found in loose.items():
        if len(found) > 1:
            raise SchemaError(canonical, f"input columns {', '.join(map(repr, found))} all match it (case and "
                              f"separators ignored); keep one, or pass columns={{{found[0]!r}: {canonical!r}}}")
        targets[canonical] = found[0]
    used = {name: canonical for name in names for canonical, src in targets.items() if src is name or src == name}
    ignored = tuple(name for name in names if name not in used)
    lookalikes = {}
    for name in ignored:
        key = column_key(name)
        close = [key] if key in COLUMNS else difflib.get_close_matches(key, COLUMNS, n=1, cutoff=0.8)
        if close:
            lookalikes[name] = close[0]
    match = ColumnMatch(used, ignored, lookalikes)
    if warn:
        for name, canonical in lookalikes.items():
            source = match.source(canonical)
            why = (f"{canonical!r} is read from {source!r}" if source is not None else
                   f"rename it, or pass columns={{{name!r}: {canonical!r}}}")
            warnings.warn(ColumnWarning(f"input column {name!r} looks like the canonical column {canonical!r} but "
                                        f"is not used; {why}"), stacklevel=3)
    return match


def validate(
    data: pd.DataFrame,
    required: Sequence[str] = ("age",),
    *,
    columns: Mapping[object, str] | ColumnMatch | None = None,
    na_values: Iterable[str] | None = None,
    notes_only: Iterable[str] = (),
) -> ValidatedCohort:
    """Coerce ``data`` to the canonical schema and give each row a status.

    Args:
        data: one row per woman; canonical column names (see :data:`COLUMNS`), matched as
            :func:`match_columns` does (case and separators ignored). Extra columns are ignored.
        required: columns that must be present (their values may still be NaN; whether a
            model accepts that is the model's rule).
        columns: renames ``{input column: canonical column}``, or a :class:`ColumnMatch`
            already made for ``data`` (no second warning).
        na_values: text meaning unknown, case-insensitive (default :data:`DEFAULT_NA_VALUES`).
        notes_only: canonical columns the model does not read: a bad value there is reported in
            the row's message, but the row's status is not changed.

    Returns:
        A :class:`ValidatedCohort` with one status per input row, in input order;
        ``columns_used`` and ``columns_ignored`` say which input columns were read.

    Raises:
        SchemaError: a required column is missing, or a column has no usable values at all,
            or ``columns`` is malformed (see :func:`match_columns`).
        TypeError: ``data`` is not a pandas DataFrame.
    """
    with _remember_distinct():
        return _validate(data, required, columns, na_values, notes_only)


def _validate(data: pd.DataFrame, required: Sequence[str], columns: Mapping[object, str] | ColumnMatch | None,
              na_values: Iterable[str] | None, notes_only: Iterable[str]) -> ValidatedCohort:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if data.columns.duplicated().any():
        dup = data.columns[data.columns.duplicated()][0]
        raise SchemaError(str(dup), "appears more than once")
    match = columns if isinstance(columns, ColumnMatch) else match_columns(data, columns)
    match.check_required(required)
    na = _na_set(na_values)
    lenient = frozenset(notes_only)
    source = {canonical: data[name] for name, canonical in match.used.items()}
    n = len(data)
    cohort = ValidatedCohort(
        frame=pd.DataFrame(index=data.index),
        status=object_full(n, "ok"),
        message=object_full(n, ""),
    )
    cols: dict[str, object] = {}
    for name, col in COLUMNS.items():
        if name not in source:
            continue
        target = cohort if name not in lenient else ValidatedCohort(
            pd.DataFrame(index=data.index), object_full(n, "ok"), object_full(n, ""))
        try:
            cols[name] = _parse(name, col.kind, source[name], target, na)
        except SchemaError as exc:
            if target is cohort:
                raise
            # A whole column the model does not read is unusable: say so on each row that has a value.
            cols[name] = np.full(n, np.nan)
            rows = np.flatnonzero(~is_blank(source[name], na))
            cohort._append(rows, [str(exc) + NOT_READ] * rows.size)
        if target is not cohort:
            _as_notes(cohort, target)
    cohort.frame = pd.DataFrame(cols, index=data.index)
    cohort.columns_present = tuple(cols)
    cohort.columns_used, cohort.columns_ignored = dict(match.used), match.ignored
    _row_rules(cohort, source, na, lenient)
    return cohort


#: Row message added to a problem in a column the model does not read.
NOT_READ = " (not used by this model: the risk does not depend on it)"


def _as_notes(cohort: ValidatedCohort, scratch: ValidatedCohort) -> None:
    """The problems found in ``scratch`` (a column the model does not read) as notes on ``cohort``."""
    rows = np.flatnonzero(scratch.status != "ok")
    cohort._append(rows, [str(scratch.message[row]) + NOT_READ for row in rows])


def _parse(name: str, kind: str, s: pd.Series, cohort: ValidatedCohort, na: frozenset[str]) -> object:
    """One input column coerced to its canonical type (see :data:`COLUMNS` kinds).

    A long text column (object dtype, every filled cell a ``str``) is parsed once per distinct cell:
    a cell's value, status and message depend only on the cell, so the rules run on the column's
    distinct cells and their outcome is copied to every row holding each (:class:`_FlagLog`). A
    categorical column whose categories are all ``str`` is read the same way, cell for cell as the
    text column it stands for (its missing cells as NaN).
    """
    if kind == "id":
        return s.to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        distinct = _category_cells(s)
    else:
        distinct = _distinct_cells(s) if s.dtype == object and len(s) > _FEW_ROWS else None
    if distinct is None:
        return _parse_cells(name, kind, s, cohort, na)
    codes, cells = distinct
    log = _FlagLog()
    out = _parse_cells(name, kind, pd.Series(cells, dtype=object), log, na)  # type: ignore[arg-type]
    log.replay(cohort, codes)
    return np.asarray(out)[codes]


def _distinct_cells(s: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, cells)`` with ``cells[codes]`` standing for ``s`` cell for cell: ``codes`` shape ``(n,)``
    (int), ``cells`` the distinct texts in order of first appearance, then one missing cell if ``s``
    has any. None (parse cell by cell) unless every filled cell is a ``str`` and the missing cells are
    all of one type (``None``, NaN, ``pd.NA``): text equal as Python objects then reads the same."""
    values = s.to_numpy(dtype=object)
    # missing -> -1; the same factorization :func:`to_numbers` reuses when the column is parsed cell by cell
    codes, cells = _DISTINCT.get("object", s, lambda: pd.factorize(values))
    if not all(type(v) is str for v in cells):
        return None
    missing = codes < 0
    if missing.any():
        if len(set(map(type, values[missing]))) != 1:
            return None
        cells = np.append(np.asarray(cells, dtype=object), np.array([values[int(np.argmax(missing))]], dtype=object))
        codes = np.where(missing, len(cells) - 1, codes)
    return codes, np.asarray(cells, dtype=object)


def _category_cells(s: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`_distinct_cells` of a categorical column: its categories, then NaN for a missing cell; None
    unless every category is a ``str``."""
    categories = np.asarray(s.cat.categories, dtype=object)
    if not all(type(v) is str for v in categories):
        return None
    codes = np.asarray(s.cat.codes, dtype=np.intp)
    if (codes < 0).any():
        categories = np.append(categories, np.array([np.nan], dtype=object))
        codes = np.where(codes < 0, len(categories) - 1, codes)
    return codes, categories


class _FlagLog:
    """Stands in for a :class:`ValidatedCohort` while a column's rules run on its distinct cells:
    records each flag and note, to be replayed on the rows holding those cells (:meth:`replay`)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, np.ndarray, tuple[str, ...], dict[str, np.ndarray]]] = []

    def flag(self, mask: np.ndarray, code: str, message: str, **values: np.ndarray) -> None:
        self._record("flag", mask, (code, message), values)

    def note(self, mask: np.ndarray, message: str, **values: np.ndarray) -> None:
        self._record("note", mask, (message,), values)

    def _record(self, kind: str, mask: np.ndarray, args: tuple[str, ...], values: dict[str, np.ndarray]) -> None:
        mask = np.array(mask, dtype=bool)  # copies: the rule may change its arrays after flagging
        if mask.any():
            self.calls.append((kind, mask, args, {k: np.array(v, dtype=object) for k, v in values.items()}))

    def replay(self, cohort: ValidatedCohort, codes: np.ndarray) -> None:
        """Each recorded call on ``cohort``, for the rows whose cell is ``cells[codes]``, in the order made."""
        for kind, mask, args, values in self.calls:
            getattr(cohort, kind)(mask[codes], *args, **{k: v[codes] for k, v in values.items()})


def _parse_cells(name: str, kind: str, s: pd.Series, cohort: ValidatedCohort, na: frozenset[str]) -> object:
    """:func:`_parse` cell by cell."""
    if kind == "binary":
        return _binary(name, s, cohort, na)
    if kind in ("float", "count"):
        return _numeric(name, s, cohort, na)
    if kind == "bool":
        return _boolean(name, s, cohort, na)
    if kind == "race":
        return _coded(name, s, RACE_NAMES, range(1, 12), cohort, "a code 1–11 or a name in riskmodel.schema.RACE_NAMES",
                      na)
    if kind == "density":
        return _coded(name, s, DENSITY_CODES | DENSITY_NAMES, range(1, 5), cohort, "one of 1, 2, 3, 4 or a, b, c, d",
                      na)
    if kind == "brca":
        return _coded(name, s, BRCA_CODES, range(3), cohort, "one of 0, 1, 2 or brca1, brca2, negative", na)
    raise ValueError(f"unknown column kind {kind!r}")


def _row_rules(c: ValidatedCohort, source: dict[str, pd.Series], na: frozenset[str], lenient: frozenset[str]) -> None:
    """Domain and consistency rules that hold whatever the model (``source``: the input columns by canonical name)."""
    age = c.column("age")
    if "age" in c.frame:
        # Missing in the input, not a cell that failed to parse (that one is already "invalid").
        c.flag(np.isnan(age) & is_blank(source["age"], na), "missing", "age: missing (required)")
        c.flag(~np.isnan(age) & ~((age > 0) & (age < 120)), "invalid",
               "age={v}: must be in (0, 120) years", v=age)
    for name in ("n_biopsies", "first_degree_relatives"):
        v = c.column(name)
        bad = ~np.isnan(v) & ((v < 0) | (v != np.floor(v)) | ~np.isfinite(v))
        c.flag(bad, "invalid", name + "={v}: must be a whole number ≥ 0", v=v)
        # BCRA's "99 = unknown" must not slip through as a count: NaN is the only unknown here.
        c.flag(~bad & (v > MAX_COUNT), "invalid",
               name + "={v}: implausible count (> " + str(MAX_COUNT) + "); use NaN for unknown", v=v)
    ah = c.column("atypical_hyperplasia")
    c.flag(~np.isnan(ah) & (ah != 0) & (ah != 1), "invalid",
           "atypical_hyperplasia={v}: must be 0, 1 or NaN", v=ah)
    nb = c.column("n_biopsies")
    c.flag((ah == 1) & (nb == 0), "inconsistent",
           "atypical_hyperplasia=1 with n_biopsies=0: hyperplasia is only found in a biopsy")
    men = c.column("age_at_menarche")
    c.flag(~np.isnan(men) & ~((men > 0) & np.isfinite(men)), "invalid",
           "age_at_menarche={v}: must be > 0 years", v=men)
    c.flag(men > age, "inconsistent", "age_at_menarche={m} is after age={a}", m=men, a=age)
    afb = c.column("age_at_first_birth")
    nulli = c.column("nulliparous")
    c.flag(~np.isnan(afb) & ~((afb > 0) & np.isfinite(afb)), "invalid",
           "age_at_first_birth={v}: must be > 0 years", v=afb)
    c.flag((nulli == 1) & ~np.isnan(afb), "inconsistent",
           "nulliparous=True but age_at_first_birth={v} is given", v=afb)
    c.flag(afb > age, "inconsistent", "age_at_first_birth={f} is after age={a}", f=afb, a=age)
    c.flag(afb < men, "inconsistent",
           "age_at_first_birth={f} is before age_at_menarche={m}", f=afb, m=men)
    prs = c.column("prs")
    bad_prs = ~np.isnan(prs) & ~np.isfinite(prs)
    if "prs" in lenient:
        c.note(bad_prs, "prs: must be a finite number of SDs" + NOT_READ)
    else:
        c.flag(bad_prs, "invalid", "prs: must be a finite number of SDs")
