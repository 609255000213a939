"""Tables too large for memory: read in chunks of rows, written incrementally and atomically.

:class:`ChunkedTable` reads a CSV, TSV or Parquet file chunk by chunk. Every chunk gets the
column types a whole-file read gives: pandas infers a CSV column's type from the values it
sees, so a first pass over the file settles each column's type (and counts the rows, and
applies the one whole-column rule of validation, :class:`~riskmodel.distributed.parts.
TextColumnCheck`) before the chunks are handed out; a file that fits in one chunk is read once.
Parquet columns are typed by the file's schema; only the integer and boolean columns that have
missing values somewhere in the file are widened (to float, to object) in every chunk, as
``pandas.read_parquet`` widens them for the whole file.

Identifier columns (:data:`ID_COLUMNS`, and any others the caller names in ``text_columns``) can
be read as text: ``00123`` stays ``00123``, the text ``NA`` stays ``NA``, and only an empty cell
is missing (:func:`text_read_options`); a Parquet integer identifier column becomes text too
(``1``, never ``1.0`` when another cell is missing), other Parquet types are kept as stored.

:class:`AtomicWriter` appends chunks to a temporary file next to the output and renames it to
the output's name only when every chunk is written: a run that fails or is interrupted leaves
no file (and no half-written one) under that name.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import queue
import re
import signal
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import pandas as pd

from riskmodel.distributed.parts import TextColumnCheck
from riskmodel.tables import CSV_FLOAT_PRECISION, cannot_read
from riskmodel.tables import ID_COLUMNS as ID_COLUMNS  # re-exported: the old import path keeps working
from riskmodel.tables import SEPARATORS as SEPARATORS
from riskmodel.tables import arrow_ids_as_text as arrow_ids_as_text
from riskmodel.tables import separator_hint as separator_hint
from riskmodel.tables import text_columns_in as text_columns_in
from riskmodel.tables import text_read_options as text_read_options

#: Text pandas reads as True / False when a whole CSV column is boolean.
_BOOL_TEXT = {"True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}


def _range_index(schema: Any) -> tuple[int, int] | None:
    """``(start, step)`` of the RangeIndex a whole-file read gives a Parquet file, or None when
    pandas stored the index as columns (restored as they are, chunk by chunk)."""
    import json

    try:
        index = json.loads((schema.metadata or {})[b"pandas"])["index_columns"]
    except (KeyError, ValueError, TypeError):
        return 0, 1
    if not index:
        return 0, 1
    if len(index) == 1 and isinstance(index[0], dict) and index[0].get("kind") == "range":
        return int(index[0]["start"]), int(index[0]["step"])
    return None


def _chunk_kind(s: pd.Series) -> Any:
    """What pandas made of one chunk of a CSV column: its dtype, or ``"bool_na"`` for booleans with
    blanks (dtype object holding True/False and NaN)."""
    if s.dtype.kind == "O" and pd.api.types.infer_dtype(s, skipna=True) == "boolean":
        return "bool_na"
    return s.dtype


def _whole_file_dtype(kinds: list[Any], float_values: bool) -> Any:
    """The dtype pandas gives a CSV column read whole, from what it gave each chunk (:func:`_chunk_kind`).

    Returns a dtype, or ``"bool_na"`` for a boolean column with blank cells.
    """
    unique = list(dict.fromkeys(kinds))
    if len(unique) == 1:
        return unique[0]
    if all(not isinstance(d, str) and d.kind in "iuf" for d in unique):
        return np.result_type(*unique)
    # A chunk whose cells are all blank comes out as float NaN whatever the column holds elsewhere.
    if {d if isinstance(d, str) else d.kind for d in unique} <= {"bool_na", "b", "f"} and not float_values:
        return "bool_na"
    return np.dtype(object)


def _binary_source(source: str | bytes) -> IO[bytes]:
    """The uncompressed bytes of a file (by its extension) or of bytes in memory."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    compression = _COMPRESSION.get(Path(source).suffix.lower())
    if compression == "gzip":
        return gzip.open(source, "rb")
    if compression == "bz2":
        return bz2.open(source, "rb")
    if compression == "xz":
        return lzma.open(source, "rb")
    if compression == "zip":
        archive = zipfile.ZipFile(source)
        return archive.open(archive.namelist()[0])
    return open(source, "rb")


def malformed_rows(source: str | bytes, fmt: str) -> dict[int, str]:
    """Data rows of a CSV/TSV that pandas reads wrongly without a word, with what is wrong.

    pandas fills the missing fields of a row with fewer fields than the header with blanks, and
    cuts a field at a NUL byte. This finds both in one extra pass (pyarrow's parser, reading
    one column as bytes: about a seventh of the time pandas takes to read the file).

    Args:
        source: a file's path (``.gz``, ``.bz2``, ``.xz``, ``.zip`` decompressed) or its bytes.
        fmt: ``"csv"`` or ``"tsv"``.

    Returns:
        ``{row: message}``, rows numbered from 0 as pandas numbers the data rows (blank lines
        skipped); empty when every row is well formed, and for a file with a row of more fields
        than the header (pandas' own reading of it decides).
    """
    check = field_problems(source, fmt)
    return check.rows if check.parsed and check.longer is None else {}


#: Bytes pyarrow's parser reads at a time in :func:`field_problems` (it reads a few blocks ahead).
FIELD_CHECK_BLOCK = 1 << 22


class FieldCheck(NamedTuple):
    """What :func:`field_problems` found in a CSV/TSV.

    Attributes:
        rows: ``{row: message}`` for rows with fewer fields than the header or a NUL byte.
        longer: the first row with more fields than the header (``"line 3: 5 fields where the header
            has 4"``), or None. pandas refuses such a file, or drops the extra field without a word when
            it reads in small chunks or only some columns.
        parsed: False when pyarrow could not parse the file (pandas' own reading reports why).
    """

    rows: dict[int, str]
    longer: str | None
    parsed: bool


def field_problems(source: str | bytes, fmt: str) -> FieldCheck:
    """:func:`malformed_rows`'s findings, and the first row with more fields than the header (:class:`FieldCheck`)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    found: dict[int, str] = {}
    short: list[tuple[int, int, int]] = []
    longer: list[str] = []

    def invalid(row: Any) -> str:
        if row.actual_columns < row.expected_columns and row.number is not None:
            short.append((int(row.number) - 2, row.actual_columns, row.expected_columns))
        if row.actual_columns > row.expected_columns and not longer:
            where = f"line {row.number}" if row.number is not None else "a row"
            longer.append(f"{where}: {row.actual_columns} fields where the header has {row.expected_columns}")
        return "skip"

    read = pcsv.ReadOptions(use_threads=False, block_size=FIELD_CHECK_BLOCK)
    parse = pcsv.ParseOptions(delimiter=SEPARATORS[fmt], newlines_in_values=True, invalid_row_handler=invalid)
    with _binary_source(source) as fh:
        try:
            first = str(pd.read_csv(fh, sep=SEPARATORS[fmt], nrows=0).columns[0])
            fh.seek(0)
            convert = pcsv.ConvertOptions(include_columns=[first], column_types={first: pa.binary()})
            for _ in pcsv.open_csv(fh, read_options=read, parse_options=parse, convert_options=convert):
                pass
        except (pa.ArrowInvalid, ValueError, IndexError, pd.errors.EmptyDataError):
            return FieldCheck({}, None, False)  # pandas cannot parse it either: its error is reported when it reads it
    if longer:
        return FieldCheck({}, longer[0], True)
    for row, actual, expected in short:
        found[row] = f"{actual} field(s) where the header has {expected}; the row is not scored"
    with _binary_source(source) as fh:
        has_nul = any(b"\x00" in block for block in iter(lambda: fh.read(1 << 20), b""))
    if has_nul:
        found.update(_nul_rows(source, fmt, [r for r, _, _ in short]))
    return FieldCheck(found, None, True)


def _nul_rows(source: str | bytes, fmt: str, short: list[int]) -> dict[int, str]:
    """Rows with a NUL byte in a field (the rare slow path of :func:`malformed_rows`: every column read)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(delimiter=SEPARATORS[fmt], newlines_in_values=True,
                              invalid_row_handler=lambda row: "skip")
    with _binary_source(source) as fh:
        table = pcsv.read_csv(fh, read_options=pcsv.ReadOptions(use_threads=False), parse_options=parse,
                              convert_options=pcsv.ConvertOptions(column_types={}, strings_can_be_null=False))
    rows = np.setdiff1d(np.arange(table.num_rows + len(short)), np.asarray(short, dtype=np.int64))
    found: dict[int, str] = {}
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_binary(column.type)):
            continue
        hits = np.flatnonzero(pc.fill_null(pc.match_substring(column.cast(pa.binary()), "\x00"), False)
                              .to_numpy(zero_copy_only=False))
        for i in hits:
            row = int(rows[i])
            note = f"column {name!r} holds a NUL byte (pandas cuts the text there)"
            found[row] = f"{note}; {found[row]}" if row in found else f"{note}; the row is not scored"
    return found


class ChunkedTable:
    """A CSV, TSV or Parquet file read ``chunk_rows`` rows at a time.

    Opening scans the file once (CSV/TSV: every cell; Parquet: the footer, and the text
    columns named in ``check_columns``). Iterating yields DataFrames of at most ``chunk_rows``
    rows, in file order, whose concatenation equals the whole file read by pandas with
    ``low_memory=False`` (``pandas.read_parquet`` for Parquet), index included: row labels
    count on from chunk to chunk, so a message naming a row names it as in the whole file.

    Attributes:
        path, fmt: the file and its format (``"csv"``, ``"tsv"`` or ``"parquet"``).
        columns: column names, in file order.
        n_rows: number of data rows.

    Args:
        check_columns: canonical numeric columns to which validation's whole-column rule applies
            (a column with no number at all): checked over the whole file while opening.
        progress: show a progress bar (stderr) over the scan of a file larger than one chunk.
        text_columns: columns read as text (:func:`text_read_options`; Parquet: integer columns
            cast to text), e.g. :data:`ID_COLUMNS`; default none (pandas' types).
        read_columns: read only these columns (names as pandas gives them), in file order; default
            all. Each column's values and types are the same as when every column is read; the
            caller checks the rows' field counts (:func:`field_problems`), which pandas checks only
            over the columns it reads.
        categorical_columns: Parquet: those of these columns stored as text are read dictionary-encoded,
            as pandas categoricals (a few Python strings per chunk instead of one per row), which
            :func:`riskmodel.schema.validate` reads cell for cell as the text they hold. For columns
            that are validated and not copied to an output. Ignored for CSV/TSV.

    Raises:
        ValueError: the file cannot be parsed (naming the file and the parser's message).
        riskmodel.SchemaError: a column of ``check_columns`` has no number in the whole file.
    """

    def __init__(self, path: str, fmt: str, chunk_rows: int, *, check_columns: Sequence[str] = (),
                 progress: bool = False, text_columns: Sequence[str] = (),
                 read_columns: Sequence[str] | None = None, arrow: bool = True,
                 categorical_columns: Sequence[str] = ()):
        self._setup(path, fmt, chunk_rows, text_columns, read_columns, arrow)
        self._categorical = [c for c in categorical_columns if c not in self.text_columns]
        if fmt == "parquet":
            self._scan_parquet(check_columns)
        elif fmt in SEPARATORS:
            self._scan_text(check_columns, progress)
        else:
            raise ValueError(f"{path}: unknown format {fmt!r}")

    @classmethod
    def arrow_only(cls, path: str, fmt: str, chunk_rows: int, *, check_columns: Sequence[str] = (),
                   text_columns: Sequence[str] = (), read_columns: Sequence[str] | None = None
                   ) -> ChunkedTable | None:
        """The table read by pyarrow's parser (:mod:`riskmodel.distributed.arrow_csv`), or None where that
        path does not reproduce pandas' reading exactly (then open it as ``ChunkedTable(...)``). A CSV/TSV
        it accepts parsed with every row of the header's length and no NUL byte (what :func:`field_problems`
        would check)."""
        table = cls.__new__(cls)
        table._setup(path, fmt, chunk_rows, text_columns, read_columns, True)
        return table if fmt in SEPARATORS and table._arrow_plan(check_columns) else None

    def _setup(self, path: str, fmt: str, chunk_rows: int, text_columns: Sequence[str],
               read_columns: Sequence[str] | None, arrow: bool) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows={chunk_rows}: must be at least 1")
        self.path, self.fmt, self.chunk_rows = path, fmt, int(chunk_rows)
        self.text_columns = tuple(text_columns)
        self._text_options: dict[str, Any] = {}
        self.n_rows = 0
        self._single: pd.DataFrame | None = None
        self._dtypes: dict[str, Any] = {}
        self._bool_na: list[str] = []
        self._widen: dict[str, Any] = {}
        self._usecols: list[str] | None = None if read_columns is None else list(read_columns)
        self.arrow = arrow
        self._categorical: list[str] = []
        self._arrow: Any = None
        self.arrow_reason: str | None = "not tried"

    # ------------------------------------------------------------------ text

    def _read_csv(self, chunked: bool = True, **options: Any) -> Any:
        options = {**self._text_options, **options}
        options["dtype"] = {**options.get("dtype", {}), **self._text_options.get("dtype", {})}
        if chunked:
            options["chunksize"] = self.chunk_rows
        return pd.read_csv(self.path, sep=SEPARATORS[self.fmt], float_precision=CSV_FLOAT_PRECISION, **options)

    def _scan_text(self, check_columns: Sequence[str], progress: bool) -> None:
        if self.text_columns or self._usecols is not None:
            try:
                header = [str(c) for c in pd.read_csv(self.path, sep=SEPARATORS[self.fmt], nrows=0).columns]
            except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                raise cannot_read(self.path, self.fmt, exc) from exc
            self._text_options = text_read_options(header, self.text_columns)
            if self._usecols is not None:  # by position: pandas' names of repeated columns are its own
                wanted = set(self._usecols)
                self._text_options["usecols"] = [i for i, name in enumerate(header) if name in wanted]
                self._text_options["dtype"] = {k: v for k, v in self._text_options.get("dtype", {}).items()
                                               if k in wanted}
        if self._arrow_plan(check_columns):
            return
        seen: dict[str, list[Any]] = {}
        float_values: dict[str, bool] = {}
        check = TextColumnCheck()
        bar, chunks = None, 0
        try:
            with self._read_csv() as reader:
                for chunk in reader:
                    chunks += 1
                    self.n_rows += len(chunk)
                    self._single = chunk if chunks == 1 else None
                    if chunks == 1:
                        self.columns = [str(c) for c in chunk.columns]
                    elif progress and bar is None:
                        from tqdm import tqdm

                        bar = tqdm(unit="rows", desc="reading (column types)", initial=self.n_rows - len(chunk))
                    for name in chunk.columns:
                        s = chunk[name]
                        seen.setdefault(name, []).append(_chunk_kind(s))
                        if s.dtype.kind == "f" and s.notna().any():
                            float_values[name] = True
                    check.update(chunk, [c for c in check_columns if c in chunk.columns])
                    if bar is not None:
                        bar.update(len(chunk))
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise cannot_read(self.path, self.fmt, exc) from exc
        finally:
            if bar is not None:
                bar.close()
        if chunks == 0:  # pandas yields nothing for a header-only file
            self._single = self._read_csv(chunked=False)
            self.columns = [str(c) for c in self._single.columns]
            return
        final = {name: _whole_file_dtype(dtypes, float_values.get(name, False)) for name, dtypes in seen.items()}
        text = {k for k, d in final.items() if isinstance(d, np.dtype) and d.kind == "O"}
        check.counts = {k: v for k, v in check.counts.items() if k in text}
        check.check()
        if chunks > 1:
            self._bool_na = [name for name, d in final.items() if isinstance(d, str)]
            self._dtypes = {name: (object if isinstance(d, str) else d) for name, d in final.items()}

    def _arrow_plan(self, check_columns: Sequence[str]) -> bool:
        """Settle the column types with pyarrow's parser (:mod:`riskmodel.distributed.arrow_csv`) where it
        reproduces pandas' chunks exactly; False (pandas reads the file) where it does not."""
        from pandas._libs.parsers import STR_NA_VALUES

        from riskmodel.distributed import arrow_csv

        self.arrow_reason = "not tried"
        if not self.arrow or Path(self.path).suffix.lower() in _COMPRESSION or not os.path.isfile(self.path):
            self.arrow_reason = "compressed, not a file, or arrow=False"
            return False
        try:
            header = [str(c) for c in pd.read_csv(self.path, sep=SEPARATORS[self.fmt], nrows=0).columns]
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError):
            return False
        opts = text_read_options(header, self.text_columns)
        text = list(opts.get("dtype", {}))
        na = opts.get("na_values") or dict.fromkeys(header, sorted(STR_NA_VALUES))
        columns = header if self._usecols is None else [c for c in header if c in set(self._usecols)]
        found = arrow_csv.plan(self.path, SEPARATORS[self.fmt], header, columns,
                               {c: sorted(na[c]) for c in columns}, text, list(check_columns))
        if isinstance(found, str):
            self.arrow_reason = found
            return False
        self.arrow_reason, self._arrow = None, found
        self.n_rows = found.n_rows
        self.columns = [c.name for c in found.columns]
        return True

    # --------------------------------------------------------------- parquet

    def _parquet(self, dictionary: bool = False) -> Any:
        import pyarrow.parquet as pq

        try:
            if dictionary and self._categorical:  # after the scan: only the columns stored as text
                return pq.ParquetFile(self.path, read_dictionary=self._categorical)
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow's message names the problem
            raise cannot_read(self.path, self.fmt, exc) from exc

    def _scan_parquet(self, check_columns: Sequence[str]) -> None:
        import pyarrow as pa

        pf = self._parquet()
        schema, meta = pf.schema_arrow, pf.metadata
        self.n_rows = int(meta.num_rows)
        empty = schema.empty_table().to_pandas()
        self.columns = [str(c) for c in empty.columns]
        # Of the columns asked for as categoricals, those stored as text (read dictionary-encoded).
        self._categorical = [f.name for f in schema if f.name in set(self._categorical)
                             and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        # Integer and boolean columns become float / object for the whole file when any cell is missing.
        ids = set(text_columns_in(schema.names, self.text_columns))
        candidates = {f.name: f.type for f in schema if f.name not in ids
                      and (pa.types.is_integer(f.type) or pa.types.is_boolean(f.type))}
        unknown: list[str] = []
        for name in candidates:
            nulls, known = 0, True
            for rg in range(meta.num_row_groups):
                group = meta.row_group(rg)
                col = next((group.column(j) for j in range(group.num_columns)
                            if group.column(j).path_in_schema == name), None)
                stats = None if col is None else col.statistics
                if stats is None or not stats.has_null_count:
                    known = False
                    break
                nulls += stats.null_count
            if not known:
                unknown.append(name)
            elif nulls:
                self._widen[name] = candidates[name]
        if unknown:
            for batch in pf.iter_batches(batch_size=max(self.chunk_rows, 65_536), columns=unknown):
                for name in list(unknown):
                    if batch.column(name).null_count:
                        self._widen[name] = candidates[name]
                        unknown.remove(name)
                if not unknown:
                    break
        text = [c for c in check_columns if c in empty.columns and not (
            pd.api.types.is_numeric_dtype(empty[c].dtype) or pd.api.types.is_bool_dtype(empty[c].dtype))]
        if text:
            check = TextColumnCheck()
            for part in self._parquet_chunks(columns=text):
                check.update(part, text)
            check.check({c: empty[c].dtype for c in text})

    def _parquet_chunks(self, columns: list[str] | None = None, dictionary: bool = False) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        pf = self._parquet(dictionary)
        range_index = _range_index(pf.schema_arrow)
        produced, offset = False, 0
        for batch in pf.iter_batches(batch_size=self.chunk_rows, columns=columns):
            # Equal texts need not share one Python object: pyarrow's de-duplication costs more than
            # the rest of the conversion for a column of distinct identifiers.
            frame = arrow_ids_as_text(pa.Table.from_batches([batch]), self.text_columns).to_pandas(
                deduplicate_objects=False)
            for name, kind in self._widen.items():
                if name in frame.columns:
                    frame[name] = frame[name].astype(object if pa.types.is_boolean(kind) else np.float64)
            if range_index is not None:  # pandas restores a stored RangeIndex per batch, from its start
                start, step = range_index
                frame.index = pd.RangeIndex(start + offset * step, start + (offset + len(frame)) * step, step,
                                            name=frame.index.name)
            offset += len(frame)
            produced = True
            yield frame
        if not produced:
            schema = pf.schema_arrow if columns is None else pa.schema([pf.schema_arrow.field(c) for c in columns])
            yield schema.empty_table().to_pandas()

    # ------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self.fmt == "parquet":
            yield from self._parquet_chunks(self._usecols, dictionary=True)
            return
        if self._arrow is not None:
            from riskmodel.distributed import arrow_csv

            yield from arrow_csv.chunks(self._arrow, self.chunk_rows)
            return
        if self._single is not None:
            yield self._single
            return
        try:
            with self._read_csv(dtype=self._dtypes) as reader:
                for chunk in reader:
                    for name in self._bool_na:
                        s = chunk[name]
                        chunk[name] = s.where(s.isna(), s.map(_BOOL_TEXT))
                    yield chunk
        except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise cannot_read(self.path, self.fmt, exc) from exc


class Prefetch:
    """Iterates ``items`` in a background thread, up to ``depth`` items ahead of the consumer.

    pyarrow's parser and much of pandas' and numpy's work release the GIL, so reading the next chunk
    overlaps with scoring this one on a second core. Items come in order; an exception raised while
    producing an item is raised by the consumer's iteration at that item. :meth:`close` stops the
    thread (call it when leaving early).
    """

    def __init__(self, items: Any, depth: int = 1):
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="riskmodel-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, items: Any) -> None:
        try:
            for item in items:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(("error", exc))

    def __iter__(self) -> Iterator[Any]:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def scored_in_order(score: Callable[..., pd.DataFrame], chunks: Any, threads: int,
                    **options: Any) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``(chunk, score(chunk, **options))`` for each chunk, in the chunks' order, scoring up to ``threads``
    chunks at once (numpy and pandas release the GIL in their loops, so two threads use two cores).

    At most ``threads`` chunks are held beyond the one being handed out. A failure in any chunk is raised
    when its turn comes; leaving early (an error, an interrupt) cancels the chunks not started.
    """
    if threads <= 1:
        for data in chunks:
            yield data, score(data, **options)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(threads, thread_name_prefix="riskmodel-score")
    pending: deque[tuple[pd.DataFrame, Any]] = deque()
    try:
        for data in chunks:
            pending.append((data, pool.submit(score, data, **options)))
            if len(pending) >= threads:
                data, future = pending.popleft()
                yield data, future.result()
        while pending:
            data, future = pending.popleft()
            yield data, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class BackgroundWriter:
    """Calls ``write(item)`` for each :meth:`put` item in one background thread, in order.

    Writing (pyarrow's text kernels and the file's I/O) then overlaps with scoring the next chunk.
    :meth:`finish` waits for every item and raises the first error a write raised; :meth:`put`
    raises it too, at the next item. :meth:`close` stops the thread without writing what is queued
    (after an error or an interrupt, before the output is deleted).
    """

    def __init__(self, write: Any, depth: int = 1):
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="riskmodel-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            try:
                self._write(item)
            except BaseException as exc:  # raised in the caller's thread by put() or finish()
                self._error = exc
                return

    def put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if not self._thread.is_alive() and self._error is None:
                    raise RuntimeError("the writer thread stopped") from None

    def finish(self) -> None:
        if self._thread.is_alive():
            self.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._stop.set()
        # A thread waiting on an empty queue takes this None; with the queue full it is writing, and
        # stops at the item it takes next.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join()


def _open_text(path: str, compression: str | None) -> tuple[IO[str], list[Any]]:
    """A text handle writing ``path`` (compressed or not) and the handles to close after it."""
    if compression is None:
        return open(path, "w", newline="", encoding="utf-8"), []
    if compression == "gzip":
        return gzip.open(path, "wt", newline="", encoding="utf-8"), []
    if compression == "bz2":
        return bz2.open(path, "wt", newline="", encoding="utf-8"), []
    if compression == "xz":
        return lzma.open(path, "wt", newline="", encoding="utf-8"), []
    archive = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
    member = archive.open(Path(path).name, "w", force_zip64=True)
    return io.TextIOWrapper(member, encoding="utf-8", newline=""), [archive]


class AtomicWriter:
    """Writes a table chunk by chunk to ``path`` and renames it into place only when complete.

    CSV/TSV (optionally ``.gz``, ``.bz2``, ``.xz``, ``.zip``) or Parquet by ``fmt``; ``path`` None
    or ``"-"`` streams CSV to standard output instead. Chunks go to a temporary file in the
    output's folder (``.NAME.XXXX.partial``), flushed to disk and renamed to ``path`` by
    :meth:`commit`; :meth:`abort` (or leaving the ``with`` block by an exception, Ctrl-C
    included) deletes it. Every chunk must have the same columns; Parquet chunks are cast to
    the first chunk's schema.

    Examples:
        >>> import pandas as pd, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> with AtomicWriter(os.path.join(folder, "out.csv"), "csv") as out:
        ...     out.write(pd.DataFrame({"a": [1, 2]}))
        ...     out.write(pd.DataFrame({"a": [3]}))
        >>> open(os.path.join(folder, "out.csv")).read().split()
        ['a', '1', '2', '3']
        >>> os.listdir(folder)
        ['out.csv']
    """

    def __init__(self, path: str | None, fmt: str = "csv"):
        self.path = None if path in (None, "-") else str(path)
        self.fmt = "csv" if self.path is None else fmt
        self.rows = 0
        self._tmp: str | None = None
        self._handle: IO[str] | None = None
        self._extra: list[Any] = []
        self._parquet: Any = None
        self._schema: Any = None
        if self.path is not None:
            target = Path(self.path)
            if target.is_dir():
                raise IsADirectoryError(f"{self.path}: is a folder; give the output file's name")
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
            os.close(fd)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (its index is not written)."""
        if self.fmt == "parquet":
            self._write_parquet(frame)
        else:
            if self._handle is None:
                if self._tmp is None:
                    self._handle = sys.stdout
                else:
                    suffix = Path(self.path or "").suffix.lower()
                    self._handle, self._extra = _open_text(self._tmp, _COMPRESSION.get(suffix))
                header = True
            else:
                header = False
            text = csv_text(frame, SEPARATORS[self.fmt], header)
            if text is None:
                frame.to_csv(self._handle, index=False, header=header, sep=SEPARATORS[self.fmt])
            else:
                self._handle.write(text)
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) and frame[f.name].dtype == object
                      else f for f in table.schema]
            self._schema = pa.schema(fields, metadata=table.schema.metadata)
            self._parquet = pq.ParquetWriter(self._tmp, self._schema)
        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._parquet.write_table(table)

    def _close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()
            for extra in self._extra:
                extra.close()
        elif self._handle is sys.stdout:
            sys.stdout.flush()
        self._handle = None

    def commit(self) -> None:
        """Finish the file and rename it to its final name (no chunk written: a file with no rows).

        A failure on the way (the disk full, the name taken by a folder, Ctrl-C) deletes the
        temporary file before the error propagates."""
        try:
            self._commit()
        except BaseException:
            self.abort()
            raise

    def _commit(self) -> None:
        if self.path is not None and self._tmp is not None and self._handle is None and self._parquet is None:
            if self.fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({}), self._tmp)
            else:  # a valid (compressed) empty file
                self._handle, self._extra = _open_text(self._tmp, _COMPRESSION.get(Path(self.path).suffix.lower()))
        self._close()
        if self._tmp is None or self.path is None:
            return
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        """Close and delete the temporary file; nothing is left under the final name."""
        try:
            self._close()
        finally:
            if self._tmp is not None and os.path.exists(self._tmp):
                os.remove(self._tmp)
            self._tmp = None


def _float_text(values: np.ndarray) -> Any:
    """float64 values as the text pandas writes (Python's ``repr``; NaN: null), as a pyarrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(pa.array(values, from_pandas=True), pa.string())  # shortest round-trip digits, NaN -> null
    # Arrow writes integral values without ".0" ("5", "-0") where repr writes "5.0", "-0.0".
    integral = pc.fill_null(pc.match_substring_regex(text, r"^-?[0-9]+$"), False)
    text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    # Arrow and repr switch to exponent notation at different magnitudes (repr: below 1e-4 and from 1e16):
    # those few cells are written by repr itself.
    with np.errstate(invalid="ignore"):
        size = np.abs(values)
        exponent = pc.fill_null(pc.match_substring(text, "e"), False).to_numpy(zero_copy_only=False)
        odd = np.flatnonzero(((size < 1e-4) & (size > 0)) | exponent)
    if len(odd):
        patched = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        patched[odd] = [repr(float(v)) for v in values[odd]]
        text = pa.array(patched, type=pa.string())
    return text


def _column_text(s: pd.Series) -> Any:
    """One column as pyarrow text the way ``DataFrame.to_csv`` writes it, or None for a kind not handled here."""
    import pyarrow as pa

    if s.dtype == np.float64:
        return _float_text(s.to_numpy())
    if s.dtype.kind in "iu":
        return pa.array(s.to_numpy()).cast(pa.string())
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        if pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
            return None
        return pa.array(s.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    return None


def csv_text(frame: pd.DataFrame, sep: str, header: bool) -> str | None:
    r"""``frame.to_csv(index=False, sep=sep, header=header)``, the same text, built with pyarrow's kernels.

    Handles frames of float64, integer and text columns (two columns or more; text: ``str`` or missing),
    which is what scoring writes; returns None for anything else, and the caller lets pandas write it.
    Fields holding the separator, a double quote or a newline are quoted as pandas quotes them.

    Examples:
        >>> csv_text(pd.DataFrame({"id": ["a", None, "b,c"], "risk": [0.5, float("nan"), 5e-05]}), ",", True)
        'id,risk\na,0.5\n,\n"b,c",5e-05\n'
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if frame.shape[1] < 2 or len(frame) == 0 or not all(isinstance(c, str) for c in frame.columns):
        return None
    columns = []
    for name in frame.columns:
        text = _column_text(frame[name])
        if text is None:
            return None
        special = pc.fill_null(pc.match_substring_regex(text, "[" + re.escape(sep) + '"\n]'), False)
        if pc.any(special).as_py():
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
            text = pc.if_else(special, quoted, text)
        columns.append(pc.fill_null(text, ""))
    # Each line ends in "\n"; the lines lie end to end in the result's data buffer, which is the body's text.
    body = pc.binary_join_element_wise(pc.binary_join_element_wise(*columns, sep), "", "\n")
    body = body.combine_chunks() if isinstance(body, pa.ChunkedArray) else body
    offsets = np.frombuffer(body.buffers()[1], dtype=np.int32, count=len(body) + 1, offset=body.offset * 4)
    text = body.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]].decode("utf-8")
    if header:
        cells = ['"' + n.replace('"', '""') + '"' if re.search("[" + re.escape(sep) + '"\n]', n) else n
                 for n in frame.columns]
        text = sep.join(cells) + "\n" + text
    return text


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Inside the block, SIGTERM (``kill``, a batch scheduler's time limit, torchrun stopping its
    workers) raises KeyboardInterrupt like Ctrl-C, so that ``with AtomicWriter(...)`` blocks and
    ``finally`` clauses clean up. Does nothing outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
