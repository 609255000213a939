"""Tables on disk: CSV, TSV or Parquet chosen by extension, identifier columns read as text.

What every front door (the CLI, a web service, a DICOM node) needs to read a user's table and
write one back, with one-line errors that name the file and the rule broken:

* :func:`table_format` tells the format from the extension (``.csv``, ``.txt``, ``.tsv``,
  ``.parquet``, ``.pq``; a ``.gz``/``.bz2``/``.xz``/``.zip`` suffix is looked through).
* :func:`read_table` reads a whole table (``"-"``: CSV on stdin) with the identifier columns
  (:data:`ID_COLUMNS` and any named) as text, so ``00123`` keeps its zeros and ``NA`` stays ``NA``;
  :func:`write_table` writes one by extension (``None``/``"-"``: CSV on stdout).
* :func:`check_input_file`, :func:`check_output`, :func:`read_header`, :func:`check_unique_columns`
  refuse, before any work, what cannot be used (a folder, a missing file, an output that is the
  input, a header written with another separator, a repeated column).

Tables too large for memory are read in chunks by :mod:`riskmodel.distributed.streaming`, with
the same text options.

Examples:
    >>> table_format("cohort.csv.gz"), table_format("risks.parquet")
    ('csv', 'parquet')
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from riskmodel.schema import column_key

#: Column separators of the text formats.
SEPARATORS = {"csv": ",", "tsv": "\t"}
#: Table formats by file extension.
FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
#: pandas' ``float_precision`` for every cohort CSV the library reads: ``"round_trip"`` parses each decimal
#: to the nearest double, as Python's ``float()``, pyarrow and R do. pandas' default (``"high"``) is off by
#: one unit in the last place for about 23% of the shortest decimals of doubles (``0.034558419206478605`` read as
#: ``0.0345584192064786``; ``benchmarks/file_throughput.py --float-check``), so a table written and read back
#: would not give back its own numbers.
CSV_FLOAT_PRECISION = "round_trip"

#: Compression suffixes looked through when telling a table's format.
COMPRESSED = (".gz", ".bz2", ".zip", ".xz")


class ParameterError(ValueError):
    """A parameter's value cannot be used (the caller can fix it).

    ``str()`` names the parameter (``output='run.csv': is a folder; ...``); a front door that spells
    its parameters otherwise (the CLI: ``-o run.csv: ...``) renders :attr:`parameter`, :attr:`value`
    and :attr:`reason` itself. ``value`` None: the message names the parameter alone.
    """

    def __init__(self, parameter: str, value: Any, reason: str):
        self.parameter, self.value, self.reason = parameter, value, reason
        where = parameter if value is None else f"{parameter}={value!r}"
        super().__init__(f"{where}: {reason}")


#: Identifier columns read as text: the woman's and the exam's keys of the canonical schema
#: (``id``, ``exam_id``), BCRA's ``ID`` and the DICOM keys of an exams table.
ID_COLUMNS: tuple[str, ...] = ("id", "ID", "exam_id", "study_key", "patient_id", "accession_number", "study_uid",
                               "series_uid", "sop_uid")


def text_columns_in(columns: Sequence[str], text: Sequence[str]) -> list[str]:
    """The names of ``columns`` that are one of ``text``, case and separators ignored as the schema's
    column matching ignores them (``Exam_ID``, ``EXAM-ID`` and ``exam_id`` are all the key ``exam_id``),
    so an identifier column is never read as a number because of how its header is spelt.

    Examples:
        >>> text_columns_in(["Exam_ID", "Age", "ID"], ID_COLUMNS)
        ['Exam_ID', 'ID']
    """
    keys = {column_key(t) for t in text}
    return [c for c in columns if column_key(c) in keys]


def text_read_options(columns: Sequence[str], text: Sequence[str]) -> dict[str, Any]:
    """``pandas.read_csv`` options reading the columns of ``text`` present in ``columns`` as text.

    Those columns keep every character of the file (``00123``, ``NA``); only an empty cell is
    missing. The other columns keep pandas' default missing-value tokens. ``{}`` when no column
    of ``text`` is present (pandas' defaults apply).

    Examples:
        >>> import io
        >>> opts = text_read_options(["id", "age"], ID_COLUMNS)
        >>> pd.read_csv(io.StringIO("id,age\\n00123,NA\\nNA,40\\n"), **opts).to_dict("list")
        {'id': ['00123', 'NA'], 'age': [nan, 40.0]}
    """
    from pandas._libs.parsers import STR_NA_VALUES

    ids = text_columns_in(columns, text)
    if not ids:
        return {}
    default = sorted(STR_NA_VALUES)
    return {"dtype": dict.fromkeys(ids, str), "keep_default_na": False,
            "na_values": {c: [""] if c in ids else default for c in columns}}


def arrow_ids_as_text(table: Any, text: Sequence[str]) -> Any:
    """A pyarrow Table (or RecordBatch) with its integer columns named in ``text`` cast to strings."""
    import pyarrow as pa

    ids = set(text_columns_in(table.schema.names, text))
    for i, field in enumerate(table.schema):
        if field.name in ids and pa.types.is_integer(field.type):
            column = table.column(i).cast(pa.string())
            if isinstance(table, pa.RecordBatch):
                table = pa.Table.from_batches([table])
            table = table.set_column(i, pa.field(field.name, pa.string()), column)
    return table


def separator_hint(columns: Sequence[str], name: str, fmt: str) -> str | None:
    """A message when a CSV/TSV header read as one column holds another separator (``;``, ``,``, tab,
    ``|``): the file was written with that separator; None otherwise."""
    if fmt not in SEPARATORS or len(columns) != 1:
        return None
    header = str(columns[0])
    for sep, label in ((";", "';'"), (",", "','"), ("\t", "tab"), ("|", "'|'")):
        if sep != SEPARATORS[fmt] and sep in header:
            expected = "tab" if fmt == "tsv" else "','"
            return (f"{name}: the header is one column {header[:60]!r}: the file looks separated by {label}, but a "
                    f".{fmt} file is read with {expected}; save it with {expected} as separator (pandas: "
                    f"pd.read_csv(path, sep={sep!r}).to_csv(new_path, index=False))")
    return None


def table_format(path: str) -> str:
    """``"csv"``, ``"tsv"`` or ``"parquet"`` by ``path``'s extension.

    Raises:
        ValueError: an extension that is none of :data:`FORMATS` (naming the file).
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise ValueError(f"{path}: unknown file type; use .csv, .tsv or .parquet")
    return fmt


def cannot_read(path: str, fmt: str, exc: BaseException) -> ValueError:
    """The one-line error for a file the reader refused: ``PATH: cannot read as FMT: <the reader's first line>``."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ValueError(f"{path}: cannot read as {fmt}: {first}")


def check_input_file(path: str) -> None:
    """An input that is not a readable file: a one-line ValueError saying what it is instead."""
    if Path(path).is_dir():
        raise ValueError(f"{path}: is a folder, not a table; give a .csv, .tsv or .parquet file")
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")


def check_separator(columns: Sequence[str], name: str, fmt: str) -> None:
    """A file written with another separator (one header column holding ';'): a ValueError with a hint."""
    hint = separator_hint(columns, name, fmt)
    if hint is not None:
        raise ValueError(hint)


def check_output(output: str | None, *inputs: str | None) -> None:
    """Refuse, before anything is read, an output that is a folder or one of the inputs (any spelling:
    relative, absolute, through a symlink or a hard link), which writing would destroy.

    Raises:
        ParameterError: for parameter ``output``.
    """
    if output in (None, "-"):
        return
    if Path(output).is_dir():
        raise ParameterError("output", output, "is a folder; give the output file's name")
    for source in inputs:
        if source in (None, "-") or not Path(output).exists() or not Path(source).exists():
            continue
        if os.path.samefile(source, output):
            raise ParameterError("output", output, f"is the input {source}; writing it would replace the input. "
                                                   "Give another output file")


def check_unique_columns(frame: pd.DataFrame, path: str, names: Sequence[str]) -> None:
    """pandas renames a repeated CSV header ``age`` to ``age.1``; a ValueError for each of ``names`` so repeated."""
    for name in names:
        if name in frame.columns and f"{name}.1" in frame.columns:
            raise ValueError(f"{path}: column {name!r} appears more than once")


def read_header(path: str, fmt: str) -> pd.DataFrame:
    """The columns of the table at ``path``, as an empty frame (for the checks that need no data)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path).empty_table().to_pandas()
        header = pd.read_csv(path, sep=SEPARATORS[fmt], nrows=0)
    except Exception as exc:  # the reader's own message names the problem
        raise cannot_read(path, fmt, exc) from exc
    check_separator(list(header.columns), path, fmt)
    return header


def read_text(source: str | io.StringIO, fmt: str, name: str, text: Sequence[str]) -> pd.DataFrame:
    """A whole CSV/TSV (a path or a buffer, called ``name`` in errors) with the columns of ``text`` read as text."""
    sep = SEPARATORS[fmt]
    try:
        columns = [str(c) for c in pd.read_csv(source, sep=sep, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise ValueError(f"{name}: empty input (no header line)") from None
    except Exception as exc:  # the reader's own message names the problem
        raise cannot_read(name, fmt, exc) from exc
    check_separator(columns, name, fmt)
    if isinstance(source, io.StringIO):
        source.seek(0)
    try:
        return pd.read_csv(source, sep=sep, float_precision=CSV_FLOAT_PRECISION, **text_read_options(columns, text))
    except pd.errors.EmptyDataError:
        raise ValueError(f"{name}: empty input (no header line)") from None
    except Exception as exc:  # the reader's own message names the problem
        raise cannot_read(name, fmt, exc) from exc


def read_table(path: str, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file ('-' reads CSV from stdin).

    Identifier columns (:data:`ID_COLUMNS` and ``text``) are read as text: ``00123`` keeps its
    zeros, ``NA`` stays ``NA``, an empty cell is missing; a Parquet integer identifier column
    becomes text (``1``, not ``1.0`` beside a missing cell).

    Raises:
        ValueError: a missing file, a folder, an unknown extension, an empty or unparsable file,
            a header written with another separator (each naming the file).
    """
    text = (*ID_COLUMNS, *text)
    if path == "-":
        return read_text(io.StringIO(sys.stdin.read()), "csv", "stdin", text)
    check_input_file(path)
    fmt = table_format(path)
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq

            return arrow_ids_as_text(pq.read_table(path), text).to_pandas()
        except Exception as exc:  # the reader's own message names the problem
            raise cannot_read(path, fmt, exc) from exc
    return read_text(path, fmt, path, text)


def write_table(frame: pd.DataFrame, path: str | None) -> None:
    """Write CSV, TSV or Parquet by extension; ``None`` or '-' writes CSV to stdout."""
    if path is None or path == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    fmt = table_format(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
