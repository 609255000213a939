"""A CSV/TSV read by pyarrow that gives exactly the chunks pandas gives (the fast path of :class:`ChunkedTable`).

pandas' CSV reader is single-threaded and, chunk by chunk, needs a first full parse only to settle each
column's type. This module reads the file twice with pyarrow's multi-threaded parser, every column as
text, and does pandas' part itself:

1. :func:`plan` (first pass) classifies each column's cells: pandas' missing-value tokens, plain integers
   (``-?[0-9]{1,15}``), plain decimals (``-?digits[.digits][e±dd]``) and the distinct other texts. The
   column's type is then the type **pandas itself** infers for a tiny CSV holding one integer, one
   decimal, one missing cell (where the file has them) and every other distinct text: pandas' inference
   (int64, then float64, then boolean, else object) depends only on which kinds of cell a column holds.
2. :func:`chunks` (second pass) converts each column to that type: integers and decimals by pyarrow's
   correctly rounded parser (pandas reads with ``float_precision="round_trip"``,
   :data:`riskmodel.tables.CSV_FLOAT_PRECISION`, which is also correctly rounded, so the values are the
   same bits), ``True``/``False`` texts to booleans, text kept as it is in the file, missing tokens as NaN;
   the row labels count on from chunk to chunk as pandas' do.

Where a file is outside what this reproduces exactly, :func:`plan` returns None with the reason and the
caller reads the file with pandas: a numeric column with a cell pandas reads as a number but that is not
plain (``+5``, `` 5``, ``inf``), a column of a checked numeric kind read as text (the whole-column rule
needs pandas' values), more than :data:`MAX_OTHER` distinct other texts in a column, a header pandas and
pyarrow read differently, repeated names, compressed input, or any error pyarrow raises (pandas' own read
then reports it).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Distinct texts per column (other than plain numbers and missing tokens) the first pass keeps; more
#: and the file is read by pandas.
MAX_OTHER = 10_000

#: Bytes pyarrow parses at a time (per thread). Its streaming reader reads up to 32 blocks ahead, so this
#: bounds the memory the reader holds (32 MiB) whatever the file's size; larger blocks are not faster.
BLOCK_SIZE = 1 << 20

_INT = r"^-?[0-9]{1,15}$"
#: Plain numbers: integers of up to 15 digits and decimals (a point or an exponent of up to 2 digits).
_DECIMAL = r"^-?([0-9]{1,15}|([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,2})?|[0-9]+[eE][-+]?[0-9]{1,2})$"
_INT_RE = re.compile(_INT[1:-1])
_DECIMAL_RE = re.compile(_DECIMAL[1:-1])
#: A column with at most this many distinct texts in a group of rows is classified per distinct text.
_DISTINCT_LIMIT = 5_000
#: Rows the first pass classifies at a time.
_GROUP_ROWS = 1 << 16
#: The texts pandas' C parser reads as booleans by default.
_TRUE = ("True", "TRUE", "true")
_FALSE = ("False", "FALSE", "false")


@dataclass
class ColumnPlan:
    """How one column is converted: ``kind`` is ``"text"`` (identifier read as text), ``"int"``, ``"float"``,
    ``"bool"``, ``"bool_na"`` (True/False with NaN) or ``"object"``; ``na``: the texts read as missing."""

    name: str
    kind: str
    na: tuple[str, ...]


@dataclass
class Plan:
    """The first pass's findings: the file's columns (in file order), their conversions and its row count."""

    path: str
    sep: str
    columns: list[ColumnPlan]
    n_rows: int
    quoted: bool = True


def _options(sep: str, names: Sequence[str], quoted: bool) -> tuple[Any, Any, Any]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    read = pcsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=True)
    # A line break inside a value needs quotes: a file without a quote character has none, and is
    # parsed faster without looking for them.
    parse = pcsv.ParseOptions(delimiter=sep, newlines_in_values=quoted)
    convert = pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), include_columns=list(names),
                                  strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[])
    return read, parse, convert


def _bytes_scan(path: str) -> tuple[bool, bool]:
    """``(has a NUL byte, has a quote character)`` over the raw file."""
    nul = quote = False
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            nul = nul or b"\x00" in block
            quote = quote or b'"' in block
            if nul:
                break
    return nul, quote


class _Kinds:
    """The kinds of cell seen in one column so far: plain integers, other plain decimals, missing tokens and
    the distinct other texts. Columns with few distinct texts are classified once per distinct text (in
    Python); the others cell by cell with pyarrow's regular expressions."""

    def __init__(self, na: Sequence[str]):
        self.na = frozenset(na)
        self.na_array: Any = None
        self.int = self.dec = self.has_na = False
        self.other: set[str] = set()
        self.seen: set[str] = set()
        self.distinct = True

    def add(self, arr: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.distinct:
            values = pc.unique(arr)
            if len(values) <= _DISTINCT_LIMIT and len(self.seen) <= 4 * _DISTINCT_LIMIT:
                new = set(values.to_pylist()) - self.seen
                self.seen |= new
                for v in new:
                    if v in self.na:
                        self.has_na = True
                    elif _INT_RE.fullmatch(v):
                        self.int = True
                    elif _DECIMAL_RE.fullmatch(v):
                        self.dec = True
                    else:
                        self.other.add(v)
                return
            self.distinct, self.seen = False, set()  # many distinct texts: cell by cell, memory bounded
        if self.na_array is None:
            self.na_array = pa.array(sorted(self.na), pa.string())
        is_na = pc.is_in(arr, value_set=self.na_array)
        is_dec = pc.match_substring_regex(arr, _DECIMAL)
        if not self.has_na and pc.any(is_na).as_py():
            self.has_na = True
        if not self.dec:  # once a column has a decimal, whether it also has integers changes nothing
            plain = pc.and_not(is_dec, is_na)
            is_int = pc.match_substring_regex(arr, _INT)
            self.int = self.int or bool(pc.any(pc.and_(plain, is_int)).as_py())
            self.dec = bool(pc.any(pc.and_not(plain, is_int)).as_py())
        other = pc.invert(pc.or_(is_dec, is_na))
        if pc.any(other).as_py():
            self.other.update(pc.unique(arr.filter(other)).to_pylist())


def plan(path: str, sep: str, header: Sequence[str], columns: Sequence[str], na: dict[str, Sequence[str]],
         text: Sequence[str], check: Sequence[str]) -> Plan | str:
    """First pass over ``path``: the conversion of each of ``columns``, or why pandas must read the file.

    Args:
        path: an uncompressed CSV/TSV file.
        sep: its separator.
        header: the column names pandas reads from its first line.
        columns: the columns to read (a subset of ``header``, in any order; read in file order).
        na: per column, the texts pandas reads as missing.
        text: columns read as text (``dtype=str``: no type inference).
        check: columns the whole-column numeric rule applies to (they must not come out as text here).

    Returns:
        A :class:`Plan`, or a string saying why this path does not apply.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if len(set(header)) != len(header):
        return "repeated column names"
    nul, quoted = _bytes_scan(path)
    if nul:
        return "a NUL byte (pandas cuts the text there)"
    wanted = [c for c in header if c in set(columns)]
    read, parse, convert = _options(sep, wanted, quoted)
    kinds = {c: _Kinds(na[c]) for c in wanted if c not in text}
    n = 0
    try:
        reader = pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        if reader.schema.names != wanted:
            return "pyarrow reads the header differently"
        for group in _row_groups(reader, _GROUP_ROWS):
            n += group.num_rows
            for name, k in kinds.items():
                k.add(group.column(name).combine_chunks())
                if len(k.other) > MAX_OTHER:
                    return f"column {name!r}: more than {MAX_OTHER} distinct texts"
    except (pa.ArrowException, ValueError, OSError, UnicodeDecodeError) as exc:
        return f"pyarrow: {exc}"
    if n == 0:
        return "no data rows"
    out = []
    for name in wanted:
        if name in text:
            out.append(ColumnPlan(name, "text", tuple(na[name])))
            continue
        kind = _pandas_kind(kinds[name], na[name])
        if kind is None:
            return f"column {name!r}: a cell pandas reads as a number is not a plain number"
        if kind == "object" and name in check:
            return f"column {name!r}: numeric column read as text"
        out.append(ColumnPlan(name, kind, tuple(na[name])))
    return Plan(path, sep, out, n, quoted)


def _pandas_kind(k: _Kinds, na: Sequence[str]) -> str | None:
    """pandas' type for a column holding the kinds of cell in ``k`` (its own inference on a tiny CSV)."""
    cells = sorted(k.other) + (["1"] if k.int else []) + (["1.5"] if k.dec else [])
    if k.has_na or not cells:
        cells.append(na[0] if na else "")
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(["c"])
    writer.writerows([c] for c in cells)
    buf.seek(0)
    s = pd.read_csv(buf, keep_default_na=False, na_values={"c": list(na)}, float_precision="round_trip")["c"]
    if s.dtype.kind in "iuf":
        # Only plain numbers convert here exactly as pandas does: any other text it read as a number is not.
        return None if k.other else ("int" if s.dtype.kind in "iu" else "float")
    if s.dtype.kind == "b":
        return "bool" if k.other <= set(_TRUE + _FALSE) else None
    if pd.api.types.infer_dtype(s, skipna=True) == "boolean":
        return "bool_na" if k.other <= set(_TRUE + _FALSE) else None
    return "object"


def _convert(arr: Any, col: ColumnPlan) -> np.ndarray:
    """One column of a record batch as pandas reads it (``arr``: pyarrow strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    is_na = pc.is_in(arr, value_set=pa.array(list(col.na), pa.string())).to_numpy(zero_copy_only=False)
    if col.kind in ("int", "float"):
        if col.kind == "int" and not is_na.any():
            return pc.cast(arr, pa.int64()).to_numpy()
        values = pc.if_else(pa.array(is_na), pa.scalar(None, pa.string()), arr)
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    if col.kind == "bool":
        return pc.is_in(arr, value_set=pa.array(list(_TRUE), pa.string())).to_numpy(zero_copy_only=False)
    if col.kind == "bool_na":  # Python True/False, NaN where missing
        out = pc.is_in(arr, value_set=pa.array(list(_TRUE), pa.string())).to_numpy(zero_copy_only=False).astype(object)
    else:
        out = arr.to_numpy(zero_copy_only=False).astype(object, copy=False)
        if not out.flags.writeable:
            out = out.copy()
    out[is_na] = np.nan
    return out


def _row_groups(batches: Iterable[Any], rows: int) -> Iterator[Any]:
    """pyarrow Tables of ``rows`` rows (the last shorter) from record ``batches``; nothing for no rows."""
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def chunks(p: Plan, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Second pass: the file's rows as DataFrames of ``chunk_rows`` rows (the last shorter), typed as
    :func:`plan` settled, row labels counting on from 0 over the whole file."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [c.name for c in p.columns]
    read, parse, convert = _options(p.sep, names, p.quoted)
    offset = 0

    def frame(table: Any) -> pd.DataFrame:
        nonlocal offset
        data = {c.name: _convert(table.column(c.name).combine_chunks(), c) for c in p.columns}
        out = pd.DataFrame(data, index=pd.RangeIndex(offset, offset + table.num_rows), columns=names)
        offset += table.num_rows
        return out

    reader = pcsv.open_csv(p.path, read_options=read, parse_options=parse, convert_options=convert)
    for table in _row_groups(reader, chunk_rows):
        yield frame(table)
    if offset == 0:  # no data rows: one empty chunk, as pandas gives
        yield frame(pa.schema([(n, pa.string()) for n in names]).empty_table())
