"""Scoring a table file into another, row for row, in bounded memory: :func:`predict_file`.

The workflow behind ``riskmodel predict``, for Python callers as much as for the command: the
input (CSV, TSV or Parquet; ``"-"``: CSV on stdin) is read in chunks of ``chunk_rows`` rows
(:class:`~riskmodel.distributed.streaming.ChunkedTable`; read whole for a hybrid model, stdin or
``whole=True``), each chunk is scored (:func:`riskmodel.distributed.predict_part`, looked up on the
package when called; a hybrid model by :func:`riskmodel.predict_risk`; BCRA's column layout
exactly as R's ``absolute.risk``), rows that pandas would misread without a word get status
``invalid``, and the output is written chunk by chunk under a temporary name, renamed when
complete (:class:`~riskmodel.distributed.streaming.AtomicWriter`). With ``engine="dask"`` the
partitions are scored on a Dask cluster and written here in order.

Examples:
    >>> import tempfile, os, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> pd.DataFrame({"id": ["007"], "age": [45], "race": ["white"]}).to_csv(f"{folder}/c.csv", index=False)
    >>> run = predict_file(f"{folder}/c.csv", f"{folder}/risks.csv")
    >>> run.n_rows, run.counts
    (1, {'ok': 1})
    >>> pd.read_csv(f"{folder}/risks.csv", dtype={"id": str})[["id", "status"]].to_dict("records")
    [{'id': '007', 'status': 'ok'}]
"""

from __future__ import annotations

import glob
import io
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import riskmodel.distributed as distributed
from riskmodel.distributed.parts import NUMERIC_KINDS
from riskmodel.distributed.streaming import (
    AtomicWriter,
    BackgroundWriter,
    ChunkedTable,
    FieldCheck,
    Prefetch,
    field_problems,
    interrupt_on_sigterm,
    malformed_rows,
    scored_in_order,
)
from riskmodel.gail import BCRA_COLUMNS
from riskmodel.models.registry import MODELS, resolve, score_frame
from riskmodel.schema import COLUMNS, ColumnMatch, ColumnWarning, match_columns
from riskmodel.tables import (
    CSV_FLOAT_PRECISION,
    ID_COLUMNS,
    SEPARATORS,
    ParameterError,
    check_input_file,
    check_output,
    check_separator,
    check_unique_columns,
    read_header,
    read_table,
    read_text,
    table_format,
    text_columns_in,
    text_read_options,
)

#: Rows per chunk when reading, scoring and writing (``predict_file``'s default); memory grows with it.
CHUNK_ROWS = 250_000
#: Most chunks ``predict_file`` scores at once (``threads``): each holds a chunk in memory.
MAX_THREADS = 64
#: Inputs with at least this many rows get a progress bar on stderr (with ``progress=True``).
PROGRESS_MIN_ROWS = 200_000

#: ``postprocess(result, rows) -> result``: applied to each chunk's result (e.g. screening recommendations).
Postprocess = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


class DaskColumnTypeError(ValueError):
    """A CSV column holds another type of value further into the file than the start Dask infers types from.

    Attributes:
        path: the input file.
        dask_message: Dask's own message.
    """

    def __init__(self, path: str, dask_message: str):
        self.path, self.dask_message = path, dask_message
        super().__init__(f"{path}: a column holds another type of value further into the file than the start Dask "
                         "infers column types from; use engine='pandas' (it settles each column's type over the "
                         f"whole file) or convert the file to Parquet. Dask: {dask_message}")


@dataclass
class FileRun:
    """What :func:`predict_file` wrote.

    Attributes:
        n_rows: rows written (one per input row, in order).
        counts: rows per ``status`` (``{"ok": 18, "invalid": 2}``), in order of first appearance.
        reasons: how many rows not ``ok`` carry each message (a message of several parts joined by
            ``"; "`` counts each part).
        model: the model's name as reported (``"gail"``, ``"gail (BCRA layout)"``, ``"hybrid model DIR"``).
        match: how the input's columns were read as canonical ones (None for the BCRA layout).
        workers: Dask worker threads that scored (``engine="dask"``), else 0.
    """

    n_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    model: str = "gail"
    match: ColumnMatch | None = None
    workers: int = 0

    def add(self, out: pd.DataFrame) -> None:
        """Count the statuses and messages of rows just written."""
        for status, count in out["status"].value_counts(sort=False).items():
            self.counts[status] = self.counts.get(status, 0) + int(count)
        count_reasons(out, self.reasons)


def count_reasons(frame: pd.DataFrame, reasons: dict[str, int]) -> None:
    """Add the messages of ``frame``'s rows not ``ok`` (each message split at '; ') to ``reasons``."""
    bad = frame.loc[frame["status"] != "ok", "message"].dropna().astype(str)
    parts = bad[bad != ""].str.split("; ").explode()
    for message, count in parts.value_counts(sort=False).items():
        reasons[message] = reasons.get(message, 0) + int(count)


def parse_horizon(value: str) -> float | str:
    """A horizon given as text: a positive number of years, ``"lifetime"`` (any case) or a column name.

    Raises:
        ParameterError: a number that is not positive and finite (parameter ``horizon``).
    """
    if value.strip().lower() == "lifetime":
        return "lifetime"
    try:
        years = float(value)
    except ValueError:
        return value  # a column name; predict_risk checks it
    if not np.isfinite(years) or years <= 0:
        raise ParameterError("horizon", value, "must be a positive number of years, 'lifetime' or a column name")
    return years


def predict_bcra(data: pd.DataFrame, details: bool = False) -> pd.DataFrame:
    """BCRA layout (``ID, T1, T2, N_Biop, …``): exactly R's ``absolute.risk``, with a status and message for each NA.

    Returns one row per row of ``data`` (same index): ``risk`` (probability from T1 to T2), ``status``,
    ``message``, ``model`` (``gail-bcra``), ``horizon`` (T2 − T1, years); with ``details``, ``average_risk``,
    ``rr_under50``, ``rr_over50``.
    """
    from riskmodel.gail import bcra_explain

    explained = bcra_explain(data)
    out = pd.DataFrame(
        {
            "risk": explained["AbsRisk"] / 100.0,
            "status": explained["status"],
            "message": explained["message"],
            "model": "gail-bcra",
            "horizon": pd.to_numeric(data["T2"], errors="coerce") - pd.to_numeric(data["T1"], errors="coerce"),
        },
        index=data.index,
    )
    if details:
        from riskmodel.gail import bcra_absolute_risk, bcra_relative_risk

        out["average_risk"] = bcra_absolute_risk(data, avg_white=1) / 100.0
        rr = bcra_relative_risk(data)
        out["rr_under50"], out["rr_over50"] = rr["RR_Star1"], rr["RR_Star2"]
    return out


def read_exams_source(value: str) -> pd.DataFrame | str:
    """Exams given as a path: a folder of DICOM files (returned as it is) or an exams table (read).

    Raises:
        ParameterError: no such file or folder, or a table that is not an exams table (parameter ``exams``).
        ValueError: an unknown file type.
    """
    from riskmodel.fusion.hybrid import read_exams

    if Path(value).is_dir():
        return value
    if not Path(value).is_file():
        raise ParameterError("exams", value, "no such exams table or DICOM folder")
    table_format(value)
    try:
        return read_exams(value)
    except ValueError as exc:
        raise ParameterError("exams", value, str(exc)) from None


def read_whole(path: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """A table read whole ('-': CSV on stdin) and its malformed rows (:func:`~riskmodel.distributed.streaming.
    malformed_rows`; none for Parquet)."""
    if path == "-":
        raw = sys.stdin.read()
        return read_text(io.StringIO(raw), "csv", "stdin", ID_COLUMNS), malformed_rows(raw.encode(), "csv")
    data = read_table(path)
    fmt = table_format(path)
    return data, {} if fmt == "parquet" else malformed_rows(path, fmt)


def flag_rows(result: pd.DataFrame, start: int, flagged: Mapping[int, str]) -> pd.DataFrame:
    """``result`` for the file's rows ``start`` … ``start + len(result) - 1``, with the malformed ones
    (``flagged``: file row → message) given status ``invalid``, their message first and no risk."""
    if not flagged:
        return result
    keys = np.fromiter(flagged, dtype=np.int64, count=len(flagged))
    keys = np.sort(keys[(keys >= start) & (keys < start + len(result))])
    if not keys.size:
        return result
    result = result.copy()
    rows = np.zeros(len(result), dtype=bool)
    rows[keys - start] = True
    numbers = [c for c in result.columns if c != "horizon" and pd.api.types.is_float_dtype(result[c].dtype)]
    result.loc[rows, numbers] = np.nan
    result["status"] = result["status"].astype(object)
    result.loc[rows, "status"] = "invalid"
    before = result.loc[rows, "message"].fillna("").astype(str)
    result["message"] = result["message"].astype(object)
    result.loc[rows, "message"] = [flagged[int(k)] + (f"; {m}" if m else "")
                                     for k, m in zip(keys, before, strict=True)]
    return result


def output_rows(data: pd.DataFrame, result: pd.DataFrame, keep_input: bool, id_column: str = "id") -> pd.DataFrame:
    """What is written for these rows: the ``id_column`` (when present) or every input column, then ``result``."""
    if keep_input:
        clash = [c for c in result.columns if c in data.columns]
        return pd.concat([data.drop(columns=clash), result], axis=1)
    front = [c for c in (id_column,) if c in data.columns]
    return pd.concat([data[front], result], axis=1)


def is_model_folder(model: str) -> bool:
    """Whether ``model`` names a saved model's folder rather than a model of :data:`riskmodel.MODELS`."""
    return model not in MODELS and Path(model).is_dir()


#: Canonical column kinds read as codes from names or numbers (race, density, BRCA).
CODED_KINDS = frozenset({"race", "density", "brca"})


def _columns_read(renamed: Sequence[Any], match: ColumnMatch, horizon: float | str,
                  table_only: bool = False) -> list[str]:
    """The input's columns that scoring reads: those matched to canonical ones and a horizon column.

    Args:
        renamed: the header's columns after ``match`` renamed them.
        table_only: the model reads no key column but ``id`` (the built-in Gail model): ``exam_id`` and
            any other key column are not read (no rule checks a key; the output copies only ``id``).
    """
    originals = [k for k, c in match.used.items() if not (table_only and COLUMNS[c].kind == "id" and c != "id")]
    if isinstance(horizon, str) and horizon in renamed:
        reverse = {v: k for k, v in match.used.items()}
        originals.append(reverse.get(horizon, horizon))
    return [str(c) for c in dict.fromkeys(originals)]


def _check_horizon_column(horizon: float | str | None, columns: Sequence[Any]) -> None:
    if isinstance(horizon, str) and horizon != "lifetime" and horizon not in columns:
        raise ParameterError("horizon", horizon, "not a number, 'lifetime' or a column of the input")


def _load_model_folder(model: str, data_columns: Sequence[Any], input: str, device: str) -> Any:
    """The model saved in the folder ``model`` (a hybrid model, an image bundle or an imported Mirai model,
    :func:`riskmodel.models.registry.resolve`), after checking the input has the column that keys each woman's
    exam."""
    loaded = resolve(model, device=device)
    key = getattr(loaded, "key_", None) or getattr(loaded, "key", None)
    exam_key = getattr(loaded, "exam_key_", None) or getattr(loaded, "exam_key", None)
    if key is not None and key not in data_columns:
        what = "hybrid" if hasattr(loaded, "key_") else loaded.name
        raise ValueError(f"{input}: no column {key!r}; the {what} model finds each woman's exam "
                         f"through it (= exams column {exam_key!r})")
    return loaded


def predict_file(
    input: str,
    output: str | None = None,
    *,
    model: str = "gail",
    horizon: float | str = 5.0,
    layout: str = "canonical",
    exams: pd.DataFrame | str | None = None,
    fallback: str = "none",
    details: bool = False,
    keep_input: bool = False,
    columns: Mapping[str, str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    chunk_size: int = CHUNK_ROWS,
    whole: bool = False,
    postprocess: Postprocess | None = None,
    progress: bool = False,
    progress_min_rows: int = PROGRESS_MIN_ROWS,
    batch_size: int = 4,
    cache_dir: str | None = None,
    num_workers: int = 0,
    device: str = "auto",
    engine: str = "pandas",
    scheduler: str | None = None,
    threads: int = 0,
) -> FileRun:
    """Score every row of the table file ``input`` and write one output row per input row, in order.

    Args:
        input: CSV, TSV or Parquet file by extension (``"-"``: CSV on stdin); the canonical schema
            (``docs/schema.md``), or R BCRA's columns with ``layout="bcra"``. Identifier columns
            are read as text.
        output: file to write (``.csv``, ``.tsv``, ``.parquet``, optionally compressed); None or
            ``"-"``: CSV on stdout. Written under a temporary name and renamed when complete; a
            failure leaves nothing under this name.
        model: a name in :data:`riskmodel.MODELS` (``"gail"``) or the folder of a saved model: a hybrid
            model, an image bundle or an imported Mirai model (then ``exams`` is needed; the input is read whole).
        horizon: years, ``"lifetime"`` or a column of the input (ignored for ``layout="bcra"``,
            where each row projects from T1 to T2).
        layout: ``"canonical"`` or ``"bcra"`` (Gail, exactly as BCRA's ``absolute.risk``).
        exams: hybrid model: an exams DataFrame, an exams table file or a folder of DICOM files.
        fallback, details, batch_size, cache_dir, num_workers, device: as for :func:`riskmodel.predict_risk`.
        keep_input: copy every input column into the output (else only ``id``, ``ID`` in BCRA's layout).
        columns: ``{their_name: canonical_name}`` renames (:func:`riskmodel.schema.match_columns`); a
            :class:`~riskmodel.schema.ColumnWarning` is issued once for the header.
        chunk_rows: rows read, scored and written at a time (memory grows with it; results do not
            depend on it). With ``engine="dask"``: about the rows per partition of a CSV.
        chunk_size: rows :func:`riskmodel.predict_risk` scores at a time within a chunk.
        whole: read the whole input at once (needed when ``postprocess`` compares rows with each other).
        postprocess: ``f(result, rows) -> result`` applied to each chunk's result before it is written,
            e.g. ``lambda r, d: riskmodel.screening.add_recommendations(r, d, policy)``.
        progress: progress bars on stderr (the scan of a large file; scoring inputs of at least
            ``progress_min_rows`` rows; a hybrid model's exams).
        engine: ``"pandas"`` (this process, chunk by chunk) or ``"dask"`` (Gail, canonical layout:
            partitions scored on a Dask cluster, the one at ``scheduler`` or a local one of
            ``num_workers`` processes, default one per core).
        threads: chunks scored at once in threads of this process (``engine="pandas"``, not ``whole``);
            results and their order do not depend on it. 0 (default): up to 2 (the cores there are) for
            the built-in Gail model, both layouts, and 1 for any other model, whose thread safety this
            function cannot know. The chunk being read and the one being written add a thread each.

    Returns:
        :class:`FileRun`: rows written, rows per status, the most frequent messages, how columns were read.

    Raises:
        ParameterError: ``output`` is a folder or the input; ``horizon`` names no column; ``exams`` unusable.
        ValueError: the input cannot be read (named, with the reason), a required column is missing,
            a repeated column, an unknown model; :class:`DaskColumnTypeError` (Dask only).
    """
    check_output(output, input, exams if isinstance(exams, str) else None)
    out_fmt = "csv" if output in (None, "-") else table_format(output)
    if chunk_rows < 1:
        raise ParameterError("chunk_rows", chunk_rows, "must be at least 1")
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= MAX_THREADS:
        raise ParameterError("threads", threads, f"must be a whole number from 0 (automatic) to {MAX_THREADS}: "
                             "each thread holds a chunk in memory")
    hybrid = is_model_folder(model)
    if engine == "dask":
        return _predict_dask(input, output, out_fmt, model=model, horizon=horizon, details=details,
                             keep_input=keep_input, chunk_rows=chunk_rows, chunk_size=chunk_size, progress=progress,
                             scheduler=scheduler, n_workers=num_workers)
    bcra = layout == "bcra"
    names = BCRA_COLUMNS if bcra else tuple(COLUMNS)
    run = FileRun(model="gail (BCRA layout)" if bcra else f"saved model {model}" if hybrid else model)
    whole = whole or hybrid or input == "-"
    if whole:
        data, flagged = read_whole(input)
        header, table = data.iloc[:0], [data]
        n = len(data)
    else:
        check_input_file(input)
        fmt = table_format(input)
        header = read_header(input, fmt)
        flagged = {}
    check_unique_columns(header, input, names)
    match = None
    if not bcra:
        match = run.match = match_columns(header, columns)
        header = match.apply(header)
    _check_horizon_column(None if bcra else horizon, header.columns)
    loaded = None
    if hybrid:
        loaded = _load_model_folder(model, header.columns, input, device)
        run.model = f"{'hybrid' if hasattr(loaded, 'key_') else loaded.name} model {model}"
        exams = read_exams_source(exams) if isinstance(exams, str) else exams

    def score(data: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        if bcra:
            return predict_bcra(data, details)
        data = match.apply(data)
        if loaded is None:
            return distributed.predict_part(data, model=model, horizon=horizon, details=details,
                                            chunk_size=chunk_size)
        return score_frame(data, model=loaded, horizon=horizon, exams=exams, fallback=fallback,
                           details=details, chunk_size=chunk_size, progress=progress,
                           batch_size=batch_size, cache_dir=cache_dir, num_workers=num_workers)

    if loaded is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ColumnWarning)  # said once, for the header
            score(header)  # a missing column is reported before any data is read
    if not whole:
        # The whole-column rule, over the file's own names (matched to canonical ones).
        numeric = [] if match is None else [k for k, c in match.used.items() if COLUMNS[c].kind in NUMERIC_KINDS]
        # Only the columns scoring reads, unless the output or a postprocess needs the others.
        prune = match is not None and not keep_input and postprocess is None
        read_columns = _columns_read(header.columns, match, horizon, model == "gail") if prune else None
        # Coded text columns (race, density, BRCA) that only validation reads: as categoricals (Parquet).
        coded = [k for k, c in match.used.items() if COLUMNS[c].kind in CODED_KINDS] if prune else []
        table = None
        if fmt != "parquet":  # pyarrow's parser where it reads the file exactly as pandas would
            table = ChunkedTable.arrow_only(input, fmt, chunk_rows, check_columns=numeric, text_columns=ID_COLUMNS,
                                            read_columns=read_columns)
        if table is None:
            fields = FieldCheck({}, None, True) if fmt == "parquet" else field_problems(input, fmt)
            if fields.longer is not None:
                raise ValueError(f"{input}: cannot read as {fmt}: {fields.longer} (a separator inside an "
                                 f"unquoted value?); no row was scored")
            flagged = fields.rows
            table = ChunkedTable(input, fmt, chunk_rows, check_columns=numeric, progress=progress,
                                 text_columns=ID_COLUMNS, read_columns=read_columns if fields.parsed else None,
                                 arrow=False, categorical_columns=coded)
        n = table.n_rows
    bar = None
    if progress and n >= progress_min_rows and loaded is None:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="rows", desc=f"scoring ({'gail-bcra' if bcra else model})")
    id_column = "ID" if bcra else (match.source("id") if match else None) or "id"
    # The next chunk is read, and the last one written, in background threads while this one is scored.
    chunks = Prefetch(table) if not whole else table
    if threads == 0:
        threads = min(2, os.cpu_count() or 1) if (bcra or model == "gail") and loaded is None else 1
    try:
        with interrupt_on_sigterm(), AtomicWriter(output, out_fmt) as writer, warnings.catch_warnings():
            warnings.simplefilter("ignore", ColumnWarning)  # said once, for the header
            background = BackgroundWriter(writer.write)
            start = 0
            pairs = scored_in_order(score, chunks, 1 if whole else threads, progress=progress and n >= 1)
            try:
                for data, scored in pairs:
                    result = flag_rows(scored, start, flagged)
                    if postprocess is not None:
                        result = postprocess(result, data)
                    out = output_rows(data, result, keep_input, id_column)
                    background.put(out)
                    start += len(out)
                    run.add(out)
                    if bar is not None:
                        bar.update(len(data))
                background.finish()
            finally:
                pairs.close()  # an error or interrupt: no chunk is left scoring
                background.close()
    finally:
        if isinstance(chunks, Prefetch):
            chunks.close()
        if bar is not None:
            bar.close()
    run.n_rows = writer.rows
    return run


def _predict_dask(input: str, output: str | None, out_fmt: str, *, model: str, horizon: float | str,
                  details: bool, keep_input: bool, chunk_rows: int, chunk_size: int, progress: bool,
                  scheduler: str | None, n_workers: int) -> FileRun:
    """``engine="dask"``: the workers read ``input`` and score it; partitions are written here, in order."""
    from riskmodel.distributed.dask_engine import EXAM_MODELS

    if is_model_folder(model):
        raise ValueError(f"engine='dask': a hybrid model {EXAM_MODELS}")
    if input == "-":
        raise ValueError("engine='dask': the workers read the input, so it must be a file (or a URL they can "
                         "reach), not '-'")
    fmt = table_format(input)
    if "://" not in input and not glob.glob(input):  # a file, a Parquet folder or a pattern (part-*.csv)
        raise ValueError(f"{input}: no such file")
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from riskmodel.distributed.dask_engine import ordered_partitions, predict_risk_dask

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=n_workers or None, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    run = FileRun(model=model)
    try:
        ddf = _read_dask(input, fmt, chunk_rows)
        check_separator(list(ddf.columns), input, fmt)
        check_unique_columns(ddf._meta, input, tuple(COLUMNS))
        files = sorted(glob.glob(input)) if fmt != "parquet" and "://" not in input else []
        flagged = malformed_rows(files[0], fmt) if len(files) == 1 else {}
        _check_horizon_column(horizon, ddf.columns)
        result = predict_risk_dask(ddf, model=model, horizon=horizon, details=details, chunk_size=chunk_size)
        out = dd.map_partitions(lambda d, r: output_rows(d, r, keep_input), ddf, result,
                                meta=output_rows(ddf._meta, result._meta, keep_input), align_dataframes=False)
        run.workers = threads = sum(client.nthreads().values()) or 1
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=out.npartitions, unit="partitions", desc=f"scoring on Dask ({threads} workers)")
        try:
            with interrupt_on_sigterm(), AtomicWriter(output, out_fmt) as writer:
                for frame in ordered_partitions(client, out, window=2 * threads):
                    frame = flag_rows(frame, writer.rows, flagged)
                    writer.write(frame)
                    run.add(frame)
                    if bar is not None:
                        bar.update(1)
        except ValueError as exc:
            if "Mismatched dtypes" not in str(exc):
                raise
            raise DaskColumnTypeError(input, str(exc)) from None
        finally:
            if bar is not None:
                bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    run.n_rows = writer.rows
    return run


def _read_dask(input: str, fmt: str, chunk_rows: int) -> Any:
    """``input`` as a Dask DataFrame, identifier columns as text, text columns as text in every block."""
    import dask.dataframe as dd

    if fmt == "parquet":
        ddf = dd.read_parquet(input)
        ids = [c for c in text_columns_in(list(ddf.columns), ID_COLUMNS)
               if pd.api.types.is_numeric_dtype(ddf[c].dtype) and not pd.api.types.is_bool_dtype(ddf[c].dtype)]
        if ids:  # pandas turns an integer column with a missing cell into floats: back to the integers' text
            ddf = ddf.map_partitions(_numbers_as_text, ids, meta=ddf._meta.astype(dict.fromkeys(ids, object)))
        return ddf
    compressed = Path(input).suffix.lower() in (".gz", ".bz2", ".xz", ".zip")
    options = {"sep": SEPARATORS[fmt], "blocksize": None if compressed else _blocksize(input, chunk_rows),
               "float_precision": CSV_FLOAT_PRECISION}
    ddf = dd.read_csv(input, **options)
    # Dask casts each block to the types it inferred from the first rows. A block of numbers cast to
    # text would re-print them (not always the digits of the file) and text cast to bool is always True
    # ("False" included): columns of text or True/False are read as text in every block, which is
    # what pandas keeps of a text column, and what validation reads True/False from.
    text = [c for c in ddf.columns if pd.api.types.is_bool_dtype(ddf[c].dtype)
            or not pd.api.types.is_numeric_dtype(ddf[c].dtype)]
    ids = text_read_options([str(c) for c in ddf.columns], ID_COLUMNS)  # identifiers: text, "NA" kept
    if text or ids:
        ddf = dd.read_csv(input, **{**options, **ids,
                                    "dtype": {**dict.fromkeys(text, object), **ids.get("dtype", {})}})
    return ddf


def _numbers_as_text(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the numeric ``columns`` as text: integral values without a decimal part, missing kept."""
    frame = frame.copy()
    for c in columns:
        s = frame[c]
        integral = s.dropna().mod(1).eq(0).all()
        text = (s.astype("Int64") if integral else s).astype(str)
        frame[c] = text.astype(object).where(s.notna(), None)
    return frame


def _blocksize(path: str, chunk_rows: int) -> int:
    """Bytes of CSV that hold about ``chunk_rows`` rows (from the length of the first lines; 64 MB for a URL)."""
    files = sorted(glob.glob(path)) if "://" not in path else []
    if not files:
        return 64 << 20
    with open(files[0], "rb") as fh:
        sample = fh.read(1 << 16)
    lines = max(sample.count(b"\n") - 1, 1)
    per_row = max(len(sample) / (lines + 1), 1.0)
    return max(int(per_row * chunk_rows), 1 << 10)

