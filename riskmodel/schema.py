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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "BRCA_CODES",
    "COLUMNS",
    "DENSITY_CODES",
    "MAX_COUNT",
    "RACE_NAMES",
    "STATUS_CODES",
    "Column",
    "SchemaError",
    "ValidatedCohort",
    "is_blank",
    "validate",
]


class SchemaError(ValueError):
    """A column is missing or unusable as a whole. ``column`` names it."""

    def __init__(self, column: str, rule: str):
        self.column = column
        self.rule = rule
        super().__init__(f"column {column!r}: {rule}")


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
        Column("exam_id", "id", "", "reference to a mammography exam in an exam manifest"),
    ]
}

#: Names that need a finer choice, with the hint given in the row's message.
_AMBIGUOUS = {
    "hispanic": "use hispanic_us_born (3) or hispanic_foreign_born (5)",
    "asian": "use chinese (6), japanese (7), filipino (8) or other_asian (11)",
    "pacific_islander": "use hawaiian (9) or other_pacific_islander (10)",
}
#: Text that means "unknown" in a cell, as CSV exports write it.
_BLANK = ["", "nan", "NaN", "NA", "N/A", "None", "none", "null"]


def is_blank(s: pd.Series) -> np.ndarray:
    """Cells that are NaN/None or text meaning unknown, shape ``(n,)``."""
    missing = s.isna().to_numpy()
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return missing
    return missing | s.astype(str).str.strip().isin(_BLANK).to_numpy()


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
                               self.columns_present)

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
        cells = {k: np.asarray(v, dtype=object)[rows] for k, v in values.items()}
        for i, row in enumerate(rows):
            msg = message.format(**{k: _fmt(cells[k][i]) for k in cells})
            old = self.status[row]
            if old == "ok":
                self.status[row], self.message[row] = code, msg
            else:
                if _RANK[old] > _RANK[code]:
                    self.status[row] = code
                self.message[row] = self.message[row] + "; " + msg


def _fmt(v: object) -> str:
    """A value as short text for messages (``12`` rather than ``12.0``)."""
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "NaN"
        if float(v).is_integer():
            return str(int(v))
    return repr(v) if isinstance(v, str) else str(v)


def _numeric(name: str, s: pd.Series, cohort: ValidatedCohort) -> np.ndarray:
    """Coerce a column to float64; cells that are not numbers flag their rows ``invalid``."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(s.dtype) or isinstance(s.dtype, pd.PeriodDtype):
        raise SchemaError(name, f"has dtype {s.dtype}; expected numbers")
    coerced = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(coerced) & ~is_blank(s)
    if bad.any() and bad.sum() == s.notna().sum() and len(s) > 0:
        raise SchemaError(name, f"has dtype {s.dtype} and no numeric values (first: {s[bad].iloc[0]!r})")
    cohort.flag(bad, "invalid", name + "={v}: not a number", v=s.to_numpy(dtype=object))
    return coerced


def _coded(
    name: str, s: pd.Series, names: dict[str, int], codes: Sequence[int], cohort: ValidatedCohort, hint: str
) -> np.ndarray:
    """Map names (case-insensitive) or numeric codes onto float codes; others flag ``invalid``."""
    out = np.full(len(s), np.nan)
    values = s.to_numpy(dtype=object)
    known = ~is_blank(s)
    as_num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    is_code = np.isin(as_num, np.asarray(codes, dtype=np.float64))
    out[is_code] = as_num[is_code]
    rest = known & ~is_code
    if rest.any():
        key = s[rest].astype(str).str.strip().str.lower().str.replace(r"[\s\-]+", "_", regex=True)
        mapped = key.map(names).to_numpy(dtype=np.float64, na_value=np.nan)
        out[np.flatnonzero(rest)] = mapped
        bad = np.zeros(len(s), dtype=bool)
        bad[np.flatnonzero(rest)] = np.isnan(mapped)
        if len(names) > 8:
            allowed = f"a code {min(codes)}–{max(codes)} or a name in riskmodel.schema.{hint}"
        else:
            allowed = "one of " + ", ".join(map(str, codes)) + " or " + ", ".join(sorted(names))
        hints = np.full(len(s), "", dtype=object)
        hints[np.flatnonzero(rest)] = key.map(_AMBIGUOUS).fillna("").to_numpy(dtype=object)
        for hint_text in set(hints[bad]) - {""}:
            amb = bad & (hints == hint_text)
            cohort.flag(amb, "invalid", name + "={v}: ambiguous; " + hint_text, v=values)
            bad &= ~amb
        cohort.flag(bad, "invalid", name + "={v}: not " + allowed, v=values)
    return out


def _boolean(name: str, s: pd.Series, cohort: ValidatedCohort) -> np.ndarray:
    """Booleans as 0.0/1.0 (NaN unknown); accepts bool, 0/1 and yes/no/true/false text."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        out = s.astype("float64").to_numpy()
    else:
        key = s.astype(str).str.strip().str.lower()
        out = np.where(key.isin(_TRUE), 1.0, np.where(key.isin(_FALSE), 0.0, np.nan))
        out[s.isna().to_numpy()] = np.nan
        bad = np.isnan(out) & ~is_blank(s)
        cohort.flag(bad, "invalid", name + "={v}: not true/false", v=s.to_numpy(dtype=object))
        return out
    bad = ~np.isnan(out) & (out != 0) & (out != 1)
    cohort.flag(bad, "invalid", name + "={v}: must be 0/1 or true/false", v=out)
    out[bad] = np.nan
    return out


def validate(data: pd.DataFrame, required: Sequence[str] = ("age",)) -> ValidatedCohort:
    """Coerce ``data`` to the canonical schema and give each row a status.

    Args:
        data: one row per woman; canonical column names (see :data:`COLUMNS`). Extra
            columns are ignored.
        required: columns that must be present (their values may still be NaN; whether a
            model accepts that is the model's rule).

    Returns:
        A :class:`ValidatedCohort` with one status per input row, in input order.

    Raises:
        SchemaError: a required column is missing, or a column has no usable values at all.
        TypeError: ``data`` is not a pandas DataFrame.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if data.columns.duplicated().any():
        dup = data.columns[data.columns.duplicated()][0]
        raise SchemaError(str(dup), "appears more than once")
    for name in required:
        if name not in data.columns:
            raise SchemaError(name, "is required but missing from the input")
    n = len(data)
    cohort = ValidatedCohort(
        frame=pd.DataFrame(index=data.index),
        status=np.full(n, "ok", dtype=object),
        message=np.full(n, "", dtype=object),
    )
    cols: dict[str, object] = {}
    for name, col in COLUMNS.items():
        if name not in data.columns:
            continue
        s = data[name]
        if col.kind == "id":
            cols[name] = s.to_numpy()
        elif col.kind in ("float", "count", "binary"):
            cols[name] = _numeric(name, s, cohort)
        elif col.kind == "bool":
            cols[name] = _boolean(name, s, cohort)
        elif col.kind == "race":
            cols[name] = _coded(name, s, RACE_NAMES, range(1, 12), cohort, "RACE_NAMES")
        elif col.kind == "density":
            cols[name] = _coded(name, s, DENSITY_CODES, range(1, 5), cohort, "DENSITY_CODES")
        elif col.kind == "brca":
            cols[name] = _coded(name, s, BRCA_CODES, range(3), cohort, "BRCA_CODES")
    cohort.frame = pd.DataFrame(cols, index=data.index)
    cohort.columns_present = tuple(cols)
    _row_rules(cohort, data)
    return cohort


def _row_rules(c: ValidatedCohort, data: pd.DataFrame) -> None:
    """Domain and consistency rules that hold whatever the model."""
    age = c.column("age")
    if "age" in c.frame:
        # Missing in the input, not a cell that failed to parse (that one is already "invalid").
        c.flag(np.isnan(age) & is_blank(data["age"]), "missing", "age: missing (required)")
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
    c.flag(~np.isnan(prs) & ~np.isfinite(prs), "invalid", "prs: must be a finite number of SDs")
