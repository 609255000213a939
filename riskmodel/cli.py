"""The ``riskmodel`` command: a thin shell over the public API.

Exit codes: 0 when the input was read and every row has a status (rows that break rules
are reported in the ``status``/``message`` columns), 2 with a one-line message for input
that cannot be used at all (missing file, unknown format, missing column).
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel.api import MODELS, predict_risk
from riskmodel.imaging.dicom import VOI_MODES
from riskmodel.nn.config import PRESETS, ModelConfig
from riskmodel.schema import ColumnWarning
from riskmodel.version import __version__

#: Rows per chunk when reading, scoring and writing (``predict --chunk-rows``'s default); memory grows with it.
CHUNK_ROWS = 250_000
#: Inputs with at least this many rows get a progress bar on stderr (unless --quiet).
PROGRESS_MIN_ROWS = 200_000
_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


class UsageError(Exception):
    """Input the command cannot use at all: reported on one line, exit code 2."""


def _format(path: str) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz"):
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise UsageError(f"{path}: unknown file type; use .csv, .tsv or .parquet")
    return fmt


def read_table(path: str, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file ('-' reads CSV from stdin).

    Identifier columns (:data:`~riskmodel.distributed.streaming.ID_COLUMNS` and ``text``) are read
    as text: ``00123`` keeps its zeros, ``NA`` stays ``NA``, an empty cell is missing; a Parquet
    integer identifier column becomes text (``1``, not ``1.0`` beside a missing cell).
    """
    from riskmodel.distributed.streaming import ID_COLUMNS

    text = (*ID_COLUMNS, *text)
    if path == "-":
        return _read_text(io.StringIO(sys.stdin.read()), "csv", "stdin", text)
    _check_input_file(path)
    fmt = _format(path)
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq

            from riskmodel.distributed.streaming import arrow_ids_as_text

            return arrow_ids_as_text(pq.read_table(path), text).to_pandas()
        except Exception as exc:  # the reader's own message names the problem
            raise _cannot_read(path, fmt, exc) from exc
    return _read_text(path, fmt, path, text)


def _cannot_read(path: str, fmt: str, exc: BaseException) -> UsageError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UsageError(f"{path}: cannot read as {fmt}: {first}")


def _check_input_file(path: str) -> None:
    """An input that is not a readable file: a one-line error saying what it is instead."""
    if Path(path).is_dir():
        raise UsageError(f"{path}: is a folder, not a table; give a .csv, .tsv or .parquet file")
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")


def _read_text(source: str | io.StringIO, fmt: str, name: str, text: Sequence[str]) -> pd.DataFrame:
    """A whole CSV/TSV (a path or a buffer) with the columns of ``text`` read as text."""
    from riskmodel.distributed.streaming import SEPARATORS, text_read_options

    sep = SEPARATORS[fmt]
    try:
        columns = [str(c) for c in pd.read_csv(source, sep=sep, nrows=0).columns]
        _separator_check(columns, name, fmt)
        if isinstance(source, io.StringIO):
            source.seek(0)
        return pd.read_csv(source, sep=sep, **text_read_options(columns, text))
    except UsageError:
        raise
    except pd.errors.EmptyDataError:
        raise UsageError(f"{name}: empty input (no header line)") from None
    except Exception as exc:  # the reader's own message names the problem
        raise _cannot_read(name, fmt, exc) from exc


def write_table(frame: pd.DataFrame, path: str | None) -> None:
    """Write CSV, TSV or Parquet by extension; ``None`` or '-' writes CSV to stdout."""
    if path is None or path == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    fmt = _format(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")


def _check_output(output: str | None, *inputs: str | None) -> None:
    """Refuse, before anything is read, an output that is a folder or one of the inputs (any spelling:
    relative, absolute, through a symlink or a hard link), which writing would destroy."""
    if output in (None, "-"):
        return
    if Path(output).is_dir():
        raise UsageError(f"-o {output}: is a folder; give the output file's name")
    for source in inputs:
        if source in (None, "-") or not Path(output).exists() or not Path(source).exists():
            continue
        if os.path.samefile(source, output):
            raise UsageError(f"-o {output}: is the input {source}; writing it would replace the input. Give "
                             "another output file")


def _horizon(value: str) -> float | str:
    if value.strip().lower() == "lifetime":
        return "lifetime"
    try:
        years = float(value)
    except ValueError:
        return value  # a column name; predict_risk checks it
    if not np.isfinite(years) or years <= 0:
        raise UsageError(f"--horizon {value}: must be a positive number of years, 'lifetime' or a column name")
    return years


def _columns_option(text: str | None) -> dict[str, str] | None:
    """``--columns their=canonical,...`` as a dict for ``predict_risk(columns=...)``."""
    if text is None:
        return None
    renames: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        their, sep, canonical = item.partition("=")
        if not sep or not their.strip() or not canonical.strip():
            raise UsageError(f"--columns {text}: give THEIR=CANONICAL pairs separated by commas, e.g. "
                             "--columns Alter=age,Biopsien=n_biopsies")
        renames[their.strip()] = canonical.strip()
    return renames


def _match(header: pd.DataFrame, args: argparse.Namespace):
    """The input columns read as canonical ones (``--columns`` and case-insensitive names); warns once."""
    from riskmodel.schema import match_columns

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ColumnWarning)
        match = match_columns(header, _columns_option(args.columns))
    for w in caught:
        print(f"riskmodel: warning: {w.message}", file=sys.stderr)
    return match


def _columns_clause(match) -> str:
    """The closing line's part that says which input columns were read (``Race->race``) and which were not."""
    used = ", ".join(str(k) if k == v else f"{k}->{v}" for k, v in match.used.items()) or "none"
    ignored = ", ".join(map(str, match.ignored)) or "none"
    return f"; columns used: {used}; ignored: {ignored}"


def _check_duplicates(data: pd.DataFrame, path: str, names: tuple[str, ...]) -> None:
    """pandas renames a repeated CSV header ``age`` to ``age.1``; treat that as the error it is."""
    for name in names:
        if name in data.columns and f"{name}.1" in data.columns:
            raise UsageError(f"{path}: column {name!r} appears more than once")


def _predict_bcra(data: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """BCRA layout: exactly R's absolute.risk, with a status and message for each NA."""
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
    if args.details:
        from riskmodel.gail import bcra_absolute_risk, bcra_relative_risk

        out["average_risk"] = bcra_absolute_risk(data, avg_white=1) / 100.0
        rr = bcra_relative_risk(data)
        out["rr_under50"], out["rr_over50"] = rr["RR_Star1"], rr["RR_Star2"]
    return out


def _exams_source(value: str) -> pd.DataFrame | str:
    """``--exams``: a folder of DICOM files (scanned by predict_risk) or an exams table."""
    from riskmodel.fusion.hybrid import read_exams

    if Path(value).is_dir():
        return value
    if not Path(value).is_file():
        raise UsageError(f"--exams {value}: no such exams table or DICOM folder")
    _format(value)
    try:
        return read_exams(value)
    except ValueError as exc:
        raise UsageError(f"--exams {value}: {exc}") from None


def _hybrid_model(args: argparse.Namespace) -> str | None:
    """The saved hybrid model's folder when --model hybrid / --bundle is used, else None (Gail)."""
    from riskmodel.api import HYBRID_NEEDS_BUNDLE

    if args.bundle is None and args.model != "hybrid":
        for flag, value in (("--exams", args.exams), ("--fallback", args.fallback)):
            if value is not None:
                raise UsageError(f"{flag} is only used with a hybrid model (--bundle HYBRID_DIR)")
        return None
    if args.bundle is None:
        raise UsageError("--model hybrid needs --bundle HYBRID_DIR: " + HYBRID_NEEDS_BUNDLE.split(": ", 1)[1])
    if args.model not in (None, "hybrid"):
        raise UsageError(f"--bundle is a hybrid model; it cannot be used with --model {args.model}")
    if args.layout == "bcra":
        raise UsageError("--layout bcra is for the Gail model; a hybrid model reads the canonical schema")
    if not Path(args.bundle).is_dir():
        raise UsageError(f"--bundle {args.bundle}: no such folder")
    if args.exams is None:
        raise UsageError("a hybrid model reads mammograms: give --exams EXAMS_TABLE_OR_DICOM_DIR")
    return args.bundle


def _header(path: str, fmt: str) -> pd.DataFrame:
    """The input's columns, as an empty frame (for the checks that need no data)."""
    from riskmodel.distributed.streaming import SEPARATORS

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path).empty_table().to_pandas()
        header = pd.read_csv(path, sep=SEPARATORS[fmt], nrows=0)
    except Exception as exc:  # the reader's own message names the problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: cannot read as {fmt}: {first}") from exc
    _separator_check(list(header.columns), path, fmt)
    return header


def _separator_check(columns: Sequence[str], name: str, fmt: str) -> None:
    """A file written with another separator (one header column holding ';'): a one-line error with a hint."""
    from riskmodel.distributed.streaming import separator_hint

    hint = separator_hint(columns, name, fmt)
    if hint is not None:
        raise UsageError(hint)


def _read_whole_input(path: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """``predict``'s input read whole ('-': stdin), and its malformed rows (:func:`malformed_rows`)."""
    from riskmodel.distributed.streaming import ID_COLUMNS, malformed_rows

    if path == "-":
        raw = sys.stdin.read()
        return _read_text(io.StringIO(raw), "csv", "stdin", ID_COLUMNS), malformed_rows(raw.encode(), "csv")
    data = read_table(path)
    fmt = _format(path)
    return data, {} if fmt == "parquet" else malformed_rows(path, fmt)


def _flag_rows(result: pd.DataFrame, start: int, flagged: dict[int, str]) -> pd.DataFrame:
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


def _output_rows(data: pd.DataFrame, result: pd.DataFrame, args: argparse.Namespace,
                 id_column: str | None = None) -> pd.DataFrame:
    """What ``predict`` writes for these rows: the id column (``id_column``, default ``id``, or ``ID`` in the
    BCRA layout; or every input column) and the result."""
    id_column = "ID" if args.layout == "bcra" else id_column or "id"
    if args.keep_input:
        clash = [c for c in result.columns if c in data.columns]
        return pd.concat([data.drop(columns=clash), result], axis=1)
    front = [c for c in (id_column,) if c in data.columns]
    return pd.concat([data[front], result], axis=1)


def _summary(counts: dict[str, int], n: int, model: str, output: str | None, how: str = "",
             reasons: dict[str, int] | None = None) -> str:
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    summary = ", ".join(f"{k} {v}" for k, v in ordered) or "no rows"
    where = output if output not in (None, "-") else "stdout"
    rows = "row" if n == 1 else "rows"
    return f"riskmodel: scored {n} {rows} with {model}{how} ({summary}) -> {where}{_top_reasons(reasons or {})}"


#: How many of the most frequent messages of rows not ``ok`` the closing line quotes.
TOP_REASONS = 3


def _count_reasons(frame: pd.DataFrame, reasons: dict[str, int]) -> None:
    """Add the messages of ``frame``'s rows not ``ok`` (each message split at '; ') to ``reasons``."""
    bad = frame.loc[frame["status"] != "ok", "message"].dropna().astype(str)
    parts = bad[bad != ""].str.split("; ").explode()
    for message, count in parts.value_counts(sort=False).items():
        reasons[message] = reasons.get(message, 0) + int(count)


def _top_reasons(reasons: dict[str, int]) -> str:
    """'; top reasons: MESSAGE (N rows), …' for the :data:`TOP_REASONS` most frequent messages, or ''."""
    if not reasons:
        return ""
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    shown = ", ".join(f"{m[:100] + '…' if len(m) > 100 else m} ({c} row{'s' if c > 1 else ''})" for m, c in top)
    more = f" and {len(reasons) - len(top)} other message(s)" if len(reasons) > len(top) else ""
    return f"; top reasons: {shown}{more}"


def _predict(args: argparse.Namespace) -> int:
    from riskmodel.distributed import predict_part
    from riskmodel.distributed.parts import NUMERIC_KINDS
    from riskmodel.distributed.streaming import (
        ID_COLUMNS,
        AtomicWriter,
        ChunkedTable,
        interrupt_on_sigterm,
        malformed_rows,
    )
    from riskmodel.gail import BCRA_COLUMNS
    from riskmodel.schema import COLUMNS

    _check_output(args.output, args.input, args.exams)
    bundle = _hybrid_model(args)
    out_fmt = "csv" if args.output in (None, "-") else _format(args.output)
    if args.chunk_rows < 1:
        raise UsageError(f"--chunk-rows {args.chunk_rows}: must be at least 1")
    if args.layout == "bcra" and args.horizon is not None:
        raise UsageError("--horizon does not apply with --layout bcra: each row projects from T1 to T2")
    if args.scheduler is not None and args.engine != "dask":
        raise UsageError("--scheduler is for --engine dask")
    policy = None
    if args.recommend is not None:
        from riskmodel.screening import load_policy

        if args.layout == "bcra":
            raise UsageError("--recommend reads the canonical layout; score with the default --layout, or run "
                             "'riskmodel recommend' on the output")
        if args.engine == "dask":
            raise UsageError("--recommend is applied with --engine pandas (the default); or run 'riskmodel "
                             "recommend' on the Dask output")
        policy = load_policy(args.recommend)  # a bad policy fails before anything is read
    if args.columns is not None and (args.layout == "bcra" or args.engine == "dask"):
        raise UsageError("--columns applies to the canonical layout with --engine pandas (the default)")
    if args.engine == "dask":
        return _predict_dask(args, bundle, out_fmt)
    names = BCRA_COLUMNS if args.layout == "bcra" else tuple(COLUMNS)
    horizon = None if args.layout == "bcra" else _horizon(args.horizon or "5")
    model = None
    # Read whole: a hybrid model (its exams dominate), stdin, or a policy whose rule compares each
    # woman with the others scored (WISDOM's "top 2.5% for age"), which chunks would change.
    whole = bundle is not None or args.input == "-" or (policy is not None and policy.needs_reference)
    if whole:
        data, flagged = _read_whole_input(args.input)
        header, table = data.iloc[:0], [data]
        n = len(data)
    else:
        _check_input_file(args.input)
        fmt = _format(args.input)
        header = _header(args.input, fmt)
        flagged = {} if fmt == "parquet" else malformed_rows(args.input, fmt)
    _check_duplicates(header, args.input, names)
    match = None
    if args.layout != "bcra":
        match = _match(header, args)
        header = match.apply(header)
    if isinstance(horizon, str) and horizon != "lifetime" and horizon not in header.columns:
        raise UsageError(f"--horizon {horizon}: not a number, 'lifetime' or a column of the input")
    if bundle is not None:
        from riskmodel.fusion.hybrid import load_hybrid

        model = load_hybrid(bundle, device=args.device)
        if model.key_ not in header.columns:
            raise UsageError(f"{args.input}: no column {model.key_!r}; the hybrid model finds each woman's exam "
                             f"through it (= exams column {model.exam_key_!r})")
        exams = _exams_source(args.exams)

    def score(data: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        if args.layout == "bcra":
            return _predict_bcra(data, args)
        data = match.apply(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ColumnWarning)  # said once, for the header, by _match
            if model is None:
                return predict_part(data, model=args.model or "gail", horizon=horizon, details=args.details,
                                    chunk_size=CHUNK_ROWS)
            return predict_risk(data, model=model, horizon=horizon, exams=exams, fallback=args.fallback or "none",
                                details=args.details, chunk_size=CHUNK_ROWS, progress=progress,
                                batch_size=args.batch_size, cache_dir=args.cache_dir, num_workers=args.workers)

    if model is None:
        score(header)  # a missing column is reported before any data is read
    if not whole:
        # The whole-column rule, over the file's own names (matched to canonical ones).
        numeric = [] if match is None else [k for k, c in match.used.items() if COLUMNS[c].kind in NUMERIC_KINDS]
        table = ChunkedTable(args.input, fmt, args.chunk_rows, check_columns=numeric, progress=not args.quiet,
                             text_columns=ID_COLUMNS)
        n = table.n_rows
    bar = None
    if not args.quiet and n >= PROGRESS_MIN_ROWS and model is None:
        from tqdm import tqdm

        name = "gail-bcra" if args.layout == "bcra" else args.model or "gail"
        bar = tqdm(total=n, unit="rows", desc=f"scoring ({name})")
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    try:
        with interrupt_on_sigterm(), AtomicWriter(args.output, out_fmt) as writer:
            for data in table:
                result = _flag_rows(score(data, progress=not args.quiet and n >= 1), writer.rows, flagged)
                if policy is not None:
                    from riskmodel.screening import add_recommendations

                    result = add_recommendations(result, data, policy)
                out = _output_rows(data, result, args, match.source("id") if match else None)
                writer.write(out)
                for status, count in out["status"].value_counts(sort=False).items():
                    counts[status] = counts.get(status, 0) + int(count)
                _count_reasons(out, reasons)
                if bar is not None:
                    bar.update(len(data))
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        name = ("gail (BCRA layout)" if args.layout == "bcra" else f"hybrid model {bundle}" if bundle
                else args.model or "gail")
        print(_summary(counts, writer.rows, name, args.output, reasons=reasons)
              + (_columns_clause(match) if match else ""), file=sys.stderr)
    if bundle is not None and writer.rows and counts.get("no_exam", 0) == writer.rows:
        print(f"riskmodel: error: no woman of {args.input} has a usable exam in {args.exams} (status no_exam for "
              f"every row: no key match, or no readable view); see the message column", file=sys.stderr)
        return 1
    return 0


def _predict_dask(args: argparse.Namespace, bundle: str | None, out_fmt: str) -> int:
    """``predict --engine dask``: the workers read INPUT and score it; partitions are written here, in order."""
    from riskmodel.distributed.dask_engine import EXAM_MODELS
    from riskmodel.distributed.streaming import (
        ID_COLUMNS,
        SEPARATORS,
        AtomicWriter,
        interrupt_on_sigterm,
        malformed_rows,
        text_columns_in,
        text_read_options,
    )
    from riskmodel.schema import COLUMNS

    if bundle is not None:
        raise UsageError("--engine dask: a hybrid model " + EXAM_MODELS)
    if args.layout == "bcra":
        raise UsageError("--layout bcra is scored with --engine pandas (the default)")
    if args.input == "-":
        raise UsageError("--engine dask: the workers read INPUT, so it must be a file (or a URL they can reach), "
                         "not '-'")
    fmt = _format(args.input)
    if "://" not in args.input and not glob.glob(args.input):  # a file, a Parquet folder or a pattern (part-*.csv)
        raise UsageError(f"{args.input}: no such file")
    horizon = _horizon(args.horizon or "5")
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from riskmodel.distributed import predict_risk_dask
    from riskmodel.distributed.dask_engine import ordered_partitions

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers or None, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        if fmt == "parquet":
            ddf = dd.read_parquet(args.input)
            ids = [c for c in text_columns_in(list(ddf.columns), ID_COLUMNS)
                   if pd.api.types.is_numeric_dtype(ddf[c].dtype) and not pd.api.types.is_bool_dtype(ddf[c].dtype)]
            if ids:  # pandas turns an integer column with a missing cell into floats: back to the integers' text
                ddf = ddf.map_partitions(_numbers_as_text, ids, meta=ddf._meta.astype(dict.fromkeys(ids, object)))
        else:
            compressed = Path(args.input).suffix.lower() in (".gz", ".bz2", ".xz", ".zip")
            options = {"sep": SEPARATORS[fmt], "blocksize": None if compressed else _blocksize(args.input,
                                                                                              args.chunk_rows)}
            ddf = dd.read_csv(args.input, **options)
            # Dask casts each block to the types it inferred from the first rows. A block of numbers cast to
            # text would re-print them (not always the digits of the file) and text cast to bool is always True
            # ("False" included): columns of text or True/False are read as text in every block, which is
            # what pandas keeps of a text column, and what validation reads True/False from.
            text = [c for c in ddf.columns if pd.api.types.is_bool_dtype(ddf[c].dtype)
                    or not pd.api.types.is_numeric_dtype(ddf[c].dtype)]
            ids = text_read_options([str(c) for c in ddf.columns], ID_COLUMNS)  # identifiers: text, "NA" kept
            if text or ids:
                ddf = dd.read_csv(args.input, **{**options, **ids,
                                                 "dtype": {**dict.fromkeys(text, object), **ids.get("dtype", {})}})
        _separator_check(list(ddf.columns), args.input, fmt)
        _check_duplicates(ddf._meta, args.input, tuple(COLUMNS))
        files = sorted(glob.glob(args.input)) if fmt != "parquet" and "://" not in args.input else []
        flagged = malformed_rows(files[0], fmt) if len(files) == 1 else {}
        if isinstance(horizon, str) and horizon != "lifetime" and horizon not in ddf.columns:
            raise UsageError(f"--horizon {horizon}: not a number, 'lifetime' or a column of the input")
        result = predict_risk_dask(ddf, model=args.model or "gail", horizon=horizon, details=args.details,
                                   chunk_size=CHUNK_ROWS)
        out = dd.map_partitions(lambda d, r: _output_rows(d, r, args), ddf, result,
                                meta=_output_rows(ddf._meta, result._meta, args), align_dataframes=False)
        threads = sum(client.nthreads().values()) or 1
        bar = None
        if not args.quiet:
            from tqdm import tqdm

            bar = tqdm(total=out.npartitions, unit="partitions", desc=f"scoring on Dask ({threads} workers)")
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        try:
            with interrupt_on_sigterm(), AtomicWriter(args.output, out_fmt) as writer:
                for frame in ordered_partitions(client, out, window=2 * threads):
                    frame = _flag_rows(frame, writer.rows, flagged)
                    writer.write(frame)
                    for status, count in frame["status"].value_counts(sort=False).items():
                        counts[status] = counts.get(status, 0) + int(count)
                    _count_reasons(frame, reasons)
                    if bar is not None:
                        bar.update(1)
        except ValueError as exc:
            if "Mismatched dtypes" not in str(exc):
                raise
            raise UsageError(f"{args.input}: a column holds another type of value further into the file than the "
                             "start Dask infers column types from; use --engine pandas (it settles each column's "
                             f"type over the whole file) or convert the file to Parquet. Dask: {exc}") from None
        finally:
            if bar is not None:
                bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not args.quiet:
        print(_summary(counts, writer.rows, args.model or "gail", args.output, f" on Dask ({threads} workers)",
                       reasons), file=sys.stderr)
    return 0


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


def _image_size(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--image-size {text}: expected ROWSxCOLUMNS, e.g. 512x416") from None
    return rows, cols


def _synth(args: argparse.Namespace) -> int:
    from riskmodel.synthetic import make_cohort

    if args.n < 1:
        raise UsageError(f"--n {args.n}: must be at least 1")
    size = _image_size(args.image_size) if args.images else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cohort = make_cohort(args.n, seed=args.seed)
    write_table(cohort, str(out / "cohort.csv"))
    message = f"riskmodel: wrote {len(cohort)} women to {out / 'cohort.csv'}"
    if args.images:
        from riskmodel.synthetic import write_exams

        manifest = write_exams(cohort, out / "exams", image_size=size, seed=args.seed, n_jobs=args.jobs)
        message += f" and {len(manifest)} DICOM images to {out / 'exams'} (manifest.csv, truth.csv)"
    if not args.quiet:
        print(message, file=sys.stderr)
    return 0


def _scan(args: argparse.Namespace) -> int:
    from riskmodel.imaging import assemble_exams, scan_dicoms

    if not Path(args.root).is_dir():
        raise UsageError(f"{args.root}: no such folder")
    for target in (args.output, args.exams):
        if target not in (None, "-"):
            _format(target)  # an unknown extension is reported before any work
    manifest = scan_dicoms(Path(args.root).resolve())  # absolute paths: the tables work from any folder
    write_table(manifest, args.output)
    summary = f"{len(manifest)} files ({int((manifest['status'] == 'ok').sum())} ok)"
    if args.exams:
        exams = assemble_exams(manifest)
        write_table(exams, args.exams)
        summary += f", {len(exams)} exams -> {args.exams}"
    if not args.quiet:
        where = args.output if args.output not in (None, "-") else "stdout"
        print(f"riskmodel: scanned {summary}; manifest -> {where}", file=sys.stderr)
    return 0


def _split(keys: pd.Series, fractions: tuple[float, float], seed: int) -> np.ndarray:
    """'train' / 'val' / 'calib' per row, by woman (all exams of a woman in one split)."""
    unique = pd.Index(keys.unique())
    rng = np.random.default_rng(seed)
    u = rng.random(len(unique))
    val, calib = fractions
    part = np.where(u < val, "val", np.where(u < val + calib, "calib", "train"))
    return pd.Series(part, index=unique).loc[keys].to_numpy()


def _model_config(args: argparse.Namespace, size: tuple[int, int]) -> tuple[ModelConfig, dict]:
    """``train``'s ModelConfig: the ``--preset`` (or ``--tiny``) network at ``size``, then ``--model-config``.

    Returns the config and what the bundle records of its origin: ``{"preset": NAME, "overrides": {...}}``.
    """
    import json

    from riskmodel.nn.config import preset_config

    if args.tiny and args.preset not in (None, "tiny"):
        raise UsageError(f"--tiny is the same as --preset tiny: give --preset {args.preset} or --tiny, not both")
    preset = "tiny" if args.tiny else (args.preset or "resnet18")
    try:
        overrides = json.loads(args.model_config) if args.model_config else {}
        if not isinstance(overrides, dict):
            raise ValueError("must be a JSON object")
        config = preset_config(preset, **{"image_size": size, **overrides})
    except ValueError as exc:
        raise UsageError(f"--model-config: {exc}") from None
    return config, {"preset": preset, "overrides": overrides}


def _train(args: argparse.Namespace) -> int:
    from riskmodel.calibration import YearlyCalibrator
    from riskmodel.imaging import resolve_view_paths
    from riskmodel.inference import ImageRiskPredictor, image_preprocessing
    from riskmodel.nn import ImageRiskModel
    from riskmodel.training import LabelledExams, TrainConfig, predict, train

    cohort = read_table(args.cohort, text=(args.label_key,))
    exams = resolve_view_paths(read_table(args.exams, text=(args.key,)), args.exams)
    for frame, name, cols in ((cohort, "--cohort", (args.label_key, "time", "event")), (exams, "--exams", (args.key,))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise UsageError(f"{name}: missing column(s) {missing}")
    size = _image_size(args.image_size)
    config, model_meta = _model_config(args, size)
    labels = cohort.set_index(cohort[args.label_key].astype(str))
    exams = exams[exams[args.key].astype(str).isin(labels.index)].reset_index(drop=True)
    if exams.empty:
        raise UsageError(f"no exam's {args.key} matches the cohort's {args.label_key}")
    woman = exams["patient_id"] if "patient_id" in exams else exams[args.key]
    split = _split(woman.astype(str), (args.val_fraction, args.calib_fraction), args.seed)
    data = {part: LabelledExams(exams[split == part].reset_index(drop=True), labels, key=args.key,
                                image_size=size, cache_dir=args.cache_dir, n_years=config.n_years, voi=args.voi)
            for part in ("train", "val", "calib")}
    torch_seed(args.seed)
    model = ImageRiskModel(config)
    tconf = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        device=args.device, balance=args.balance, patience=args.patience,
                        num_workers=args.workers, progress=not args.quiet, augment=args.augment,
                        schedule=args.schedule)
    out = Path(args.out)
    result = train(model, data["train"], data["val"] if len(data["val"]) else None, tconf, out_dir=out / "training",
                   resume=args.resume)
    if args.stage2_epochs:
        result = _second_stage(model, data, tconf, args, out)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, the main process calibrates and saves
        return 0
    calibrator, calibration_note = None, "not requested"
    if args.calibration != "none" and len(data["calib"]):
        pred = predict(model, data["calib"], batch_size=args.batch_size, device=args.device)
        try:
            calibrator = YearlyCalibrator(method=args.calibration, n_years=config.n_years)
            # IPCW: women censored before year k are represented by those followed longer.
            calibrator.fit(pred["risk"], pred["time"], pred["event"], ipcw=True)
            calibration_note = f"{args.calibration} (IPCW) on {len(data['calib'])} held-out exams"
        except ValueError as exc:  # e.g. no cancer in a year of the calibration split
            calibrator, calibration_note = None, f"not fitted: {exc}"
            print(f"riskmodel: warning: calibration {calibration_note}; the bundle's risks are uncalibrated",
                  file=sys.stderr)
    elif args.calibration != "none":
        calibration_note = "not fitted: the calibration split is empty"
    meta = {"calibration": calibration_note, "training": {
        "cohort": str(args.cohort), "exams": str(args.exams), "n_train": len(data["train"]),
                         "n_val": len(data["val"]), "n_calib": len(data["calib"]), "best_epoch": result.best_epoch,
                         "best_val_metric": result.best_metric, "config": tconf.to_dict(), "model": model_meta}}
    predictor = ImageRiskPredictor(model, image_preprocessing(size, args.voi), calibrator, meta, device="cpu")
    predictor.save(out / "bundle", overwrite=True)
    if not args.quiet:
        print(f"riskmodel: trained {result.best_epoch} epoch(s) best; bundle -> {out / 'bundle'}", file=sys.stderr)
    return 0


def _second_stage(model, data: dict, tconf, args: argparse.Namespace, out: Path):
    """Mirai's second stage: freeze the encoder, cache per-view embeddings once, train the heads on them."""
    import dataclasses

    import torch

    from riskmodel.training import TensorExams, predict, train

    def cached(part: str):
        if not len(data[part]):
            return None
        pred = predict(model, data[part], batch_size=args.batch_size, device=args.device)
        labels = pd.DataFrame({"time": pred["time"], "event": pred["event"],
                               "density": data[part].labels.density, "age": data[part].labels.age})
        labels["density"] = labels["density"].map({-1: None, 0: "a", 1: "b", 2: "c", 3: "d"})
        return TensorExams(torch.from_numpy(pred["mask"]), labels,
                           view_embeddings=torch.from_numpy(pred["view_embeddings"]), n_years=model.config.n_years)

    stage2 = dataclasses.replace(tconf, epochs=args.stage2_epochs, freeze_encoder=True)
    return train(model, cached("train"), cached("val"), stage2, out_dir=out / "training_stage2")


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _embed(args: argparse.Namespace) -> int:
    """One process, or every process of a torchrun launch (each scores its share; rank 0 writes the output)."""
    from riskmodel.distributed import predict_exams
    from riskmodel.distributed.streaming import interrupt_on_sigterm

    _check_output(args.output, args.exams)
    from riskmodel.imaging import resolve_view_paths

    fmt = "csv" if args.output in (None, "-") else _format(args.output)
    exams = resolve_view_paths(read_table(args.exams), args.exams)
    try:
        with interrupt_on_sigterm():
            run = predict_exams(args.bundle, exams, args.output, fmt=fmt, device=args.device,
                                batch_size=args.batch_size, cache_dir=args.cache_dir, embeddings=True,
                                progress=not args.quiet and len(exams) >= 1)
    except RuntimeError as exc:  # another torchrun process failed and reported why
        print(f"riskmodel: error: {exc}", file=sys.stderr)
        return 1
    if run is not None and run.n_exams and not run.n_ok:
        print(f"riskmodel: error: none of the {run.n_exams} exams of {args.exams} has a readable view (status "
              "no_views); see the message column of the output for why", file=sys.stderr)
        return 1
    if run is not None and not args.quiet:
        on = f" on {run.world_size} processes" if run.world_size > 1 else ""
        print(f"riskmodel: embedded {run.n_exams} exams ({run.n_ok} ok){on} -> {args.output or 'stdout'}",
              file=sys.stderr)
    return 0


def _recommend(args: argparse.Namespace) -> int:
    """``riskmodel recommend``: apply a screening policy to a table of risks (riskmodel.screening).

    Everything is checked and computed before anything is written; then the report pages, the
    FHIR file and ``-o`` are each written under a temporary name and renamed into place, so a
    failure leaves no partial file, empty folder or truncated PDF behind.
    """
    from riskmodel.distributed.streaming import AtomicWriter, interrupt_on_sigterm
    from riskmodel.screening import add_recommendations, load_policy, risk_assessments, write_reports
    from riskmodel.screening.fhir import fhir_datetime, fhir_text
    from riskmodel.screening.files import write_atomically

    policy = load_policy(args.policy)  # a PolicyError (ValueError) becomes the one-line error of main()
    if args.pdf and args.report is None:
        raise UsageError("--pdf needs --report DIR")
    if args.fhir is not None and Path(args.fhir).suffix.lower() not in (".ndjson", ".json"):
        raise UsageError(f"--fhir {args.fhir}: use .ndjson (one resource per line) or .json (a Bundle)")
    if args.date is not None:
        try:
            fhir_datetime(args.date)
        except ValueError as exc:
            raise UsageError(f"--date: {exc}") from None
    written = {flag: Path(v) for flag, v in (("-o", args.output), ("--fhir", args.fhir), ("--report", args.report))
               if v not in (None, "-")}
    read = [Path(v) for v in (args.risks, args.cohort, args.reference) if v not in (None, "-")]
    for flag, path in written.items():
        if flag != "--report" and path.is_dir():
            raise UsageError(f"{flag} {path}: is a folder; give a file name")
        if flag == "--report" and path.exists() and not path.is_dir():
            raise UsageError(f"--report {path}: exists and is not a folder")
        same = [q for q in [*read, *(w for f, w in written.items() if f != flag)]
                if q.resolve() == path.resolve() or (q.exists() and path.exists() and path.samefile(q))]
        if same:
            raise UsageError(f"{flag} {path}: is also {same[0]} on this command line; it would be overwritten")
    out_fmt = "csv" if args.output in (None, "-") else _format(args.output)
    data = read_table(args.risks)
    _check_duplicates(data, args.risks, ("risk", "status", "age", "id"))
    cohort = None
    if args.cohort is not None:
        cohort = read_table(args.cohort)
        cohort = _match(cohort, args).apply(cohort)
        if len(cohort) != len(data):
            raise UsageError(f"--cohort {args.cohort}: {len(cohort)} rows, but {args.risks} has {len(data)}; give "
                             "the table that was scored, in the same order")
        cohort.index = data.index
        if "id" in data.columns and "id" in cohort.columns:
            differ = np.flatnonzero(data["id"].astype(str).to_numpy() != cohort["id"].astype(str).to_numpy())
            if differ.size:
                i = int(differ[0])
                raise UsageError(f"--cohort {args.cohort}: row {i + 1} has id {cohort['id'].iat[i]!r} but "
                                 f"{args.risks} has {data['id'].iat[i]!r}; the rows must be the same women in the "
                                 "same order")
    if "age" not in data.columns and (cohort is None or "age" not in cohort.columns):
        raise UsageError(f"{args.risks}: no age column; pass --cohort COHORT (the table that was scored) or "
                         "score with 'riskmodel predict --keep-input'")
    reference = read_table(args.reference) if args.reference is not None else None
    out = add_recommendations(data, cohort, policy, reference=reference)
    fhir = (fhir_text(risk_assessments(out, cohort=cohort, occurrence=args.date), args.fhir)
            if args.fhir is not None else None)
    extra = []
    with interrupt_on_sigterm(), AtomicWriter(args.output, out_fmt) as writer:
        if args.report is not None:  # rendered into a temporary folder, moved in only when complete
            pages = write_reports(out, args.report, cohort=cohort, pdf=args.pdf, date=args.date, policy=policy)
            extra.append(f"{len(pages)} report files -> {args.report}")
        if fhir is not None:
            extra.insert(0, f"FHIR -> {write_atomically(Path(args.fhir), fhir)}")
        writer.write(out)  # -o: renamed into place as the block ends; stdout: written last
    if not args.quiet:
        counts = out["recommendation_status"].value_counts()
        summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no rows"
        where = args.output if args.output not in (None, "-") else "stdout"
        print(f"riskmodel: applied {policy.id} {policy.version} to {len(out)} rows ({summary}) -> {where}"
              + "".join(f"; {e}" for e in extra), file=sys.stderr)
    return 0


HEADS = ("torch", "cox", "xgboost")


def _fit_hybrid(args: argparse.Namespace) -> int:
    from riskmodel.fusion import CoxHead, HybridModel, TorchHazardHead, XGBoostHead
    from riskmodel.inference import load_image_model

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise UsageError(f"--out {out}: exists and is not an empty folder; pass --overwrite to replace a saved "
                         "hybrid model")
    if not Path(args.image_bundle).is_dir():
        raise UsageError(f"--image-bundle {args.image_bundle}: no such folder")
    cohort = read_table(args.cohort, text=(args.key,))
    missing = [c for c in ("time", "event", args.key) if c not in cohort.columns]
    if missing:
        raise UsageError(f"--cohort {args.cohort}: missing column(s) {missing}")
    exams = _exams_source(args.exams)
    image = load_image_model(args.image_bundle, device=args.device)
    if args.head == "torch":
        head: object = TorchHazardHead(seed=args.seed, epochs=args.epochs, early_stopping=not args.no_early_stopping)
    elif args.head == "cox":
        head = CoxHead()
    else:
        head = XGBoostHead(seed=args.seed)
    factors = None
    if args.factors:
        from riskmodel.fusion import FACTOR_GROUPS

        factors = [f.strip() for f in args.factors.split(",") if f.strip()]
        unknown = sorted(set(factors) - set(FACTOR_GROUPS))
        if unknown:
            raise UsageError(f"--factors: unknown group(s) {unknown}; choose from {', '.join(FACTOR_GROUPS)}")
    model = HybridModel(image, head=head, factors=factors, image_features=args.image_features)
    model.fit(cohort, exams, key=args.key, exam_key=args.exam_key, batch_size=args.batch_size,
              cache_dir=args.cache_dir, num_workers=args.workers, progress=not args.quiet)
    model.save(out, overwrite=args.overwrite,
               metadata={"cohort": str(args.cohort), "exams": str(args.exams), "image_bundle": str(args.image_bundle)})
    if not args.quiet:
        s = model.fit_summary_
        print(f"riskmodel: fitted a {s['head']} fusion head on {s['n_used']} of {s['n_rows']} women "
              f"({s['n_events']} cancers; {s['n_without_exam']} without a usable exam, {s['n_schema_rejected']} "
              f"failing the schema) -> {out}", file=sys.stderr)
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from riskmodel.benchmarking import SUITES, run_suite

    if args.suite not in SUITES:
        raise UsageError(f"--suite {args.suite}: choose one of {sorted(SUITES)}")
    recorded = args.recorded
    if recorded is None and Path("benchmarks/results").is_dir():
        recorded = "benchmarks/results"
    command = "riskmodel benchmark " + " ".join(sys.argv[2:]) if args.command_line is None else args.command_line
    run_suite(args.suite, args.out, seed=args.seed, workdir=args.workdir, device=args.device,
              progress=not args.quiet, recorded=recorded, command=command)
    return 0


def _risk_table(spec: str, n: int, cohort: pd.DataFrame, id_column: str | None) -> tuple[str, pd.DataFrame]:
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    if not name:
        raise UsageError(f"--risks {spec}: give NAME=PATH or PATH")
    frame = read_table(path, text=() if id_column is None else (id_column,))
    if id_column is not None:
        for label, f in (("--cohort", cohort), (path, frame)):
            if id_column not in f.columns:
                raise UsageError(f"{label}: no column {id_column!r} (--id)")
        if frame[id_column].duplicated().any():
            dup = frame.loc[frame[id_column].duplicated(), id_column].iloc[0]
            raise UsageError(f"{path}: id {dup!r} appears more than once")
        frame = frame.set_index(frame[id_column].astype(str)).reindex(cohort[id_column].astype(str).to_numpy())
    elif len(frame) != n:
        raise UsageError(f"{path}: {len(frame)} rows but the cohort has {n}; give --id COLUMN to match rows by id")
    if "risk" not in frame.columns and not any(c.startswith("risk_") for c in frame.columns):
        raise UsageError(f"{path}: no 'risk' column (absolute risk by the horizon) and no risk_1y … columns")
    return name, frame.reset_index(drop=True)


def _evaluate(args: argparse.Namespace) -> int:
    from riskmodel.evaluation import evaluate_risks, write_report

    cohort = read_table(args.cohort, text=() if args.id is None else (args.id,))
    if not args.risks:
        raise UsageError("give at least one --risks [NAME=]PATH")
    risks = dict(_risk_table(spec, len(cohort), cohort, args.id) for spec in args.risks)
    subgroups = None if args.subgroups is None else [c for c in args.subgroups.split(",") if c]
    for c in subgroups or []:
        if c not in cohort.columns:
            raise UsageError(f"--subgroups: the cohort has no column {c!r}")
    ev = evaluate_risks(cohort.reset_index(drop=True), risks, horizon=args.horizon, reference=args.reference,
                        subgroups=subgroups, n_boot=args.bootstrap, seed=args.seed)
    preamble = [f"- Cohort: `{args.cohort}` ({len(cohort):,} women); risks: "
                + ", ".join(f"`{s}`" for s in args.risks) + ".",
                f"- Command: `riskmodel evaluate {' '.join(sys.argv[2:])}`."]
    write_report(ev, args.out, title=args.title, preamble=preamble, plots=not args.no_plots)
    if not args.quiet:
        for name, m in ev.models.items():
            print(f"{name}: n={m['n']} cancers={m['cancers']} C={m['c_index']:.3f} E/O={m['eo']:.2f}",
                  file=sys.stderr)
        print(f"report written to {args.out}/report.md", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``docs/cli.md``)."""
    parser = argparse.ArgumentParser(
        prog="riskmodel",
        description=(
            "Personalized breast-cancer risk prediction. Run 'riskmodel COMMAND --help' for a command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"riskmodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "predict",
        help="absolute risk for every row of a cohort table",
        description=(
            "Score every row of INPUT (CSV, TSV or Parquet; '-' for CSV on stdin) and write one output row per "
            "input row, in order: risk (probability), status, message, model, horizon. Rows that break a rule get "
            "a status and a message and NaN risk; the others are scored. Exit code 0 when the file could be read, "
            "2 (with a one-line message) when it could not be used at all."
        ),
    )
    p.add_argument(
        "input", help="cohort table in the canonical schema (docs/schema.md), or BCRA layout with --layout bcra"
    )
    p.add_argument("-o", "--output", help="output file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--model", default=None, choices=sorted(MODELS),
                   help="risk model (default: gail; hybrid needs --bundle and --exams)")
    p.add_argument("--horizon", default=None,
                   help="years from current age, 'lifetime' (to age 90), or a column name (default: 5; the hybrid "
                        "model projects at most 5 years)")
    p.add_argument("--layout", default="canonical", choices=("canonical", "bcra"),
                   help="input columns: the canonical schema, or R BCRA's (ID, T1, T2, N_Biop, HypPlas, AgeMen, "
                        "Age1st, N_Rels, Race), scored exactly as BCRA's absolute.risk from T1 to T2")
    p.add_argument("--bundle", metavar="HYBRID_DIR",
                   help="a saved hybrid model (riskmodel fit-hybrid); implies --model hybrid")
    p.add_argument("--exams", metavar="EXAMS_TABLE_OR_DICOM_DIR",
                   help="hybrid model: the exams (table from 'riskmodel scan --exams', or a folder of DICOM files)")
    p.add_argument("--fallback", choices=("none", "factors"), default=None,
                   help="hybrid model: a woman without a usable exam gets status no_exam (none, default) or the "
                        "factors-only model's risk (factors)")
    p.add_argument("--batch-size", type=int, default=4, help="hybrid model: exams per forward pass (default 4)")
    p.add_argument("--cache-dir", help="hybrid model: cache of preprocessed views")
    p.add_argument("--device", default="auto", help="hybrid model: auto, cpu, cuda, cuda:1 … (default auto)")
    p.add_argument("--workers", type=int, default=0,
                   help="hybrid model: DICOM-reading worker processes (default 0); --engine dask without "
                        "--scheduler: worker processes of the local Dask cluster (default 0 = one per core)")
    p.add_argument("--details", action="store_true",
                   help="add model-specific columns (Gail: average_risk, rr_*; hybrid: exam_used, n_views, "
                        "imputed, fallback)")
    p.add_argument("--keep-input", action="store_true", help="copy all input columns into the output")
    p.add_argument("--columns", metavar="THEIR=CANONICAL,...",
                   help="input columns to read as canonical ones, e.g. Alter=age,Biopsien=n_biopsies (names "
                        "differing from canonical ones only in case or separators, e.g. Race, N_Biopsies, are "
                        "matched without it); the closing line lists the columns used and ignored")
    p.add_argument("--recommend", metavar="POLICY",
                   help="also apply a screening policy (uspstf2024, wisdom, mypebs, acr2023, chemoprevention or a "
                        "policy file): adds the columns of 'riskmodel recommend' (docs/screening.md)")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, metavar="N",
                   help=f"read, score and write N rows at a time, so memory stays bounded whatever the file size "
                        f"(default {CHUNK_ROWS:,}; results do not depend on it). The output is written under a "
                        "temporary name and renamed when complete. With --engine dask: rows per partition")
    p.add_argument("--engine", choices=("pandas", "dask"), default="pandas",
                   help="pandas (default): this process, chunk by chunk; dask: partitions scored in parallel on a "
                        "Dask cluster (Gail model, canonical layout), written here in order")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="--engine dask: an existing cluster's scheduler, e.g. tcp://10.0.0.5:8786 (its workers "
                        "must be able to read INPUT); default: a local cluster on this machine")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "synth",
        help="a synthetic screening cohort with known truth (and optionally four-view DICOM mammograms)",
        description=(
            "Write OUT/cohort.csv: N women in the canonical schema with observed outcome (time, event) and the "
            "generator's true risks (a test bed, not real data). With --images, also write four DICOM views per "
            "woman under OUT/exams/ with manifest.csv and truth.csv."
        ),
    )
    p.add_argument("--n", type=int, required=True, help="number of women")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic for a seed)")
    p.add_argument("--images", action="store_true", help="also write synthetic mammograms as DICOM")
    p.add_argument("--image-size", default="512x416", help="ROWSxCOLUMNS, 64x52 up to 2048x1664 (default 512x416)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for image rendering (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_synth)

    p = sub.add_parser(
        "scan",
        help="list the DICOM files under a folder, one row per file, with a status for each",
        description=(
            "Read the headers of every file under ROOT and write a manifest: ids, laterality, view, size and a "
            "status (bad files are listed with their error, never dropped; so are broken or looping symlinks, "
            "FIFOs, sockets, devices, links to folders and entries that cannot be read, with a status such as "
            "broken_link or not_regular_file). With --exams, also write one row per exam with its four views and "
            "flags."
        ),
    )
    p.add_argument("root", help="folder to scan (recursively)")
    p.add_argument("-o", "--output", help="manifest file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--exams", help="also write the assembled exams (one row per exam) to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_scan)

    p = sub.add_parser(
        "train",
        help="train the image risk model on labelled exams and write a model bundle",
        description=(
            "Train riskmodel.nn.ImageRiskModel on the exams of EXAMS (from 'riskmodel scan --exams') labelled by "
            "COHORT (time, event and optionally density, age). Women are split into train/validation/calibration "
            "sets; the best epoch by validation C-index is kept, per-year calibrators are fitted on the calibration "
            "set, and OUT/bundle is written (safetensors + JSON + SHA-256 manifest). Runs on the GPU when there is "
            "one; launch with 'torchrun --nproc-per-node=N -m riskmodel.cli train ...' for several GPUs."
        ),
    )
    p.add_argument("--cohort", required=True, help="labels: one row per exam with time, event (0/1/2), density, age")
    p.add_argument("--exams", required=True, help="exams table (riskmodel scan --exams)")
    p.add_argument("--out", required=True, help="output folder (training/ logs and checkpoints, bundle/)")
    p.add_argument("--key", default="accession_number",
                   help="exams column matching the cohort (default accession_number)")
    p.add_argument("--label-key", default="exam_id", help="cohort column matching --key (default exam_id)")
    p.add_argument("--image-size", default="512x416", help="ROWSxCOLUMNS (default 512x416)")
    p.add_argument("--voi", default="auto", choices=VOI_MODES,
                   help="apply each file's VOI LUT or window as written (auto), or linearly over the same range "
                        "(linear: vendors' contrast curves dropped); stored in the bundle (default auto)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="network size (riskmodel.nn.PRESETS): resnet18 (default; the ResNet-18 encoder, widths "
                        "64-512, two blocks per stage), small (widths 16-128, one block per stage: the network of "
                        "the recorded synthetic benchmarks, README), tiny (smoke tests)")
    p.add_argument("--tiny", action="store_true", help="the tiny network (smoke tests, CPU); same as --preset tiny")
    p.add_argument("--model-config", help="JSON object of ModelConfig overrides applied on top of the preset, "
                                          "e.g. '{\"agg_layers\": 2}' or '{\"pool\": \"tissue\"}'")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--stage2-epochs", type=int, default=0,
                   help="then freeze the encoder, cache view embeddings and train the aggregator and heads "
                        "for this many epochs (Mirai's two-stage recipe; default 0 = off)")
    p.add_argument("--batch-size", type=int, default=8, help="exams per step per process (default 8)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--patience", type=int, default=3, help="early stopping patience in epochs (0 = off)")
    p.add_argument("--balance", action="store_true", help="class-balance positive years")
    p.add_argument("--augment", action="store_true",
                   help="random top-bottom flips, ±20° rotations and ±10%% gain per view (Mirai-style)")
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"), help="learning-rate schedule")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--calib-fraction", type=float, default=0.15)
    p.add_argument("--calibration", default="isotonic", choices=("isotonic", "platt", "none"))
    p.add_argument("--cache-dir", help="cache of preprocessed views (speeds up later epochs)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/training/checkpoint")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "embed",
        help="score exams with a model bundle: per-year risk and the exam embedding, one row per exam",
        description=(
            "Load BUNDLE (hashes checked), read every exam of EXAMS (from 'riskmodel scan --exams'), and write one "
            "row per exam: exam_id, n_views, status, message, risk_1y..risk_5y (calibrated) and emb_000... "
            "Unreadable views are masked; an exam with no readable view gets status no_views. Several GPUs: "
            "'torchrun --nproc-per-node=N -m riskmodel.cli embed ...' splits the exams across N processes and "
            "writes one output, in table order, equal to one process's."
        ),
    )
    p.add_argument("--bundle", required=True, help="model bundle folder")
    p.add_argument("--manifest", "--exams", dest="exams", required=True,
                   help="exams table from 'riskmodel scan --exams' (csv/parquet)")
    p.add_argument("-o", "--output", help="output file (.parquet, .csv); default: CSV on stdout")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cache-dir", help="cache of preprocessed views")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_embed)

    p = sub.add_parser(
        "fit-hybrid",
        help="fit the fusion survival head (image embedding + risk factors) on top of a trained image bundle",
        description=(
            "Load IMAGE_BUNDLE (from 'riskmodel train'), embed the exam of every woman of COHORT (canonical schema "
            "with time, event and the exam key), encode her risk factors, fit the fusion head and a factors-only "
            "fallback head, and save the hybrid model to OUT (image/ bundle, fusion.json, manifest.json). Score "
            "with 'riskmodel predict --bundle OUT --exams ...'."
        ),
    )
    p.add_argument("--cohort", required=True, help="women: canonical schema + time, event and the exam key column")
    p.add_argument("--exams", required=True, help="exams table (riskmodel scan --exams) or a folder of DICOM files")
    p.add_argument("--image-bundle", required=True, help="trained image model bundle (riskmodel train: OUT/bundle)")
    p.add_argument("--out", required=True, help="output folder for the hybrid model")
    p.add_argument("--head", default="torch", choices=HEADS,
                   help="fusion head: torch additive hazard (default), cox (lifelines, PCA of the embedding), "
                        "xgboost (survival:cox)")
    p.add_argument("--image-features", default="embedding", choices=("embedding", "risk", "embedding+risk"),
                   help="what the head sees of the image: the exam embedding (default), the image network's own "
                        "five-year score (one column; needs far fewer cancers), or both")
    p.add_argument("--factors", help="comma-separated factor groups (age, density, family_history, brca, prs, gail, "
                                     "literature; default: every group with data except literature), e.g. "
                                     "'literature,brca' for one published-relative-risk score plus BRCA indicators")
    p.add_argument("--key", default="exam_id", help="cohort column with each woman's exam key (default exam_id)")
    p.add_argument("--exam-key", default="accession_number",
                   help="exams column holding the same keys (default accession_number)")
    p.add_argument("--epochs", type=int, default=200, help="torch head: maximum epochs (default 200)")
    p.add_argument("--no-early-stopping", action="store_true",
                   help="torch head: train all epochs (needed with very few cancers)")
    p.add_argument("--batch-size", type=int, default=4, help="exams per forward pass (default 4)")
    p.add_argument("--cache-dir", help="cache of preprocessed views")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0, help="DICOM-reading worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a hybrid model already saved at OUT")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_fit_hybrid)

    p = sub.add_parser(
        "recommend",
        help="screening recommendations from a table of risks (riskmodel.recommend_screening)",
        description=(
            "Apply a screening policy to RISKS (the output of 'riskmodel predict', CSV/TSV/Parquet) and write one "
            "row per input row: the input columns, then category, interval_months, modality, supplemental, "
            "chemoprevention_discussion, rationale, policy, policy_version, recommendation_status, "
            "recommendation_message, risk_measure, risk_used. Rows without a valid risk get a status and no "
            "recommendation. The output supports, and does not replace, a clinician's decision (docs/screening.md)."
        ),
    )
    p.add_argument("risks", help="risks table from 'riskmodel predict' (with --keep-input, or give --cohort)")
    p.add_argument("-o", "--output", help="output file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--policy", default="uspstf2024",
                   help="shipped policy (uspstf2024, wisdom, mypebs, acr2023, chemoprevention) or the path of a "
                        "policy file (default: uspstf2024)")
    p.add_argument("--cohort", help="the cohort that was scored, same rows in the same order (for age, brca and "
                                    "to recompute Gail risk at another horizon, e.g. lifetime)")
    p.add_argument("--columns", metavar="THEIR=CANONICAL,...",
                   help="--cohort's columns to read as canonical ones, e.g. Alter=age (names differing from "
                        "canonical ones only in case or separators are matched without it)")
    p.add_argument("--reference", help="for 'top percentile for age' rules: a table of age and risk scored by the "
                                       "same model (default: the women in RISKS)")
    p.add_argument("--fhir", metavar="FILE", help="also write FHIR R4 RiskAssessment resources: .ndjson (one per "
                                                  "line) or .json (a Bundle)")
    p.add_argument("--report", metavar="DIR", help="also write one HTML page per woman into DIR")
    p.add_argument("--pdf", action="store_true", help="with --report: also a one-page PDF per woman")
    p.add_argument("--date", help="assessment date for FHIR and reports (YYYY-MM-DD; default today)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_recommend)

    p = sub.add_parser(
        "benchmark",
        help="run the benchmark suite on synthetic data and write a report",
        description=(
            "Generate a held-out synthetic cohort and mammograms by seed, train or fit Gail, a factors-only Cox "
            "model, the image-only model and the hybrid model, and evaluate them with the oracle (true risk) as the "
            "ceiling: report.md with tables and PNG figures, and results.json. A synthetic test bed, not clinical "
            "performance. 'quick' took 5 min 49 s on 2 CPU cores without a GPU (benchmarks/results/quick: training, "
            "fitting, scoring, evaluation and the speed section, with the DICOMs rendered by an earlier run in "
            "--workdir; 26 min on a busy machine); 'full' is sized for a GPU and a day."
        ),
    )
    p.add_argument("--suite", default="quick", help="quick (default) or full")
    p.add_argument("--out", default="benchmark-report", help="report folder (default ./benchmark-report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="keep images, caches and checkpoints here (default: a temporary folder)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda …")
    p.add_argument("--recorded", help="folder of recorded benchmark results to quote in the speed section "
                                      "(default: benchmarks/results when it exists)")
    p.add_argument("--command-line", help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_benchmark)

    p = sub.add_parser(
        "evaluate",
        help="evaluate risks against observed outcomes in your own cohort",
        description=(
            "Compute the benchmark metrics (Uno's C-index, time-dependent AUC, integrated Brier score, E/O with a "
            "95%% interval, calibration slope and deciles, cancers in the top 10%%/20%%, NRI against a reference, "
            "bootstrap intervals, subgroups) for one or more models' risks on a cohort with follow-up, and write "
            "report.md, PNG figures and results.json. COHORT needs time (years from the assessment) and event "
            "(0 censored, 1 invasive breast cancer, 2 died of other causes); subgroup columns are optional."
        ),
    )
    p.add_argument("--cohort", required=True, help="outcomes table (CSV/TSV/Parquet) with time and event")
    p.add_argument("--risks", action="append", metavar="[NAME=]PATH",
                   help="a model's risks: 'risk' (absolute risk by the horizon) and/or risk_1y … risk_5y, optional "
                        "status (rows not 'ok' are left out), e.g. the output of 'riskmodel predict'; repeat for "
                        "several models")
    p.add_argument("--horizon", type=float, default=5.0, help="years (default 5)")
    p.add_argument("--id", help="column present in the cohort and every risks file to match rows (default: row "
                                "order, and the lengths must agree)")
    p.add_argument("--reference", default="gail", help="model for paired comparisons and NRI (default gail)")
    p.add_argument("--subgroups", help="comma-separated cohort columns (default: race, density, age, brca where "
                                       "present)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200; 0 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="evaluation-report", help="report folder (default ./evaluation-report)")
    p.add_argument("--title", default="Risk model evaluation")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``riskmodel`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `riskmodel predict x.csv | head`
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"riskmodel: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM while predict/embed write (their files are removed)
        print(f"riskmodel: interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
