"""The fast file path of ``riskmodel predict`` (issue 25) gives the same bytes as the path it replaced.

The fast path reads only the columns scoring uses (:class:`ChunkedTable` ``read_columns``), validates with
per-distinct-value text operations (:func:`riskmodel.schema.on_distinct_text`, :func:`riskmodel.schema.to_numbers`)
and writes CSV with pyarrow's kernels (:func:`riskmodel.distributed.streaming.csv_text`). Each is compared here
with what it replaced, on inputs chosen to break it.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riskmodel.distributed.files as files
import riskmodel.distributed.streaming as streaming
from riskmodel.distributed.files import predict_file
from riskmodel.distributed.streaming import csv_text
from riskmodel.schema import to_numbers
from riskmodel.synthetic import make_cohort

TEXT = st.text(alphabet=st.sampled_from(list("ab ,;\t\"'\n\r0.-xé")), max_size=6)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30),
       texts=st.lists(st.one_of(st.none(), TEXT), min_size=1, max_size=30), sep=st.sampled_from([",", "\t"]))
def test_csv_text_is_pandas_to_csv(values, texts, sep):
    n = min(len(values), len(texts))
    frame = pd.DataFrame({"id": pd.Series(texts[:n], dtype=object), "risk": np.asarray(values[:n], dtype=np.float64),
                          "n": np.arange(n), "model": "gail"})
    assert csv_text(frame, sep, True) == frame.to_csv(index=False, sep=sep)
    assert csv_text(frame, sep, False) == frame.to_csv(index=False, sep=sep, header=False)


def test_csv_text_declines_what_it_does_not_write_like_pandas():
    assert csv_text(pd.DataFrame({"a": [1.0]}), ",", True) is None  # one column: pandas quotes blanks
    assert csv_text(pd.DataFrame({"a": [True], "b": [1.0]}), ",", True) is None  # booleans
    assert csv_text(pd.DataFrame({"a": [1, "x"], "b": [1.0, 2.0]}), ",", True) is None  # mixed objects


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-10**6, 10**6), TEXT,
                          st.sampled_from(["1", "1.0", "2", " 3 ", "1e3", "inf", "nan", "NA"])), max_size=30))
def test_to_numbers_is_to_numeric_cell_by_cell(cells):
    s = pd.Series(cells, dtype=object)
    expected = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    np.testing.assert_array_equal(to_numbers(s), expected)


def _messy_cohort(n: int = 3000) -> pd.DataFrame:
    """A canonical cohort with junk in every kind of column, renamed and extra columns, and invalid rows."""
    data = make_cohort(n, seed=3).drop(columns=["time", "event"])
    rng = np.random.default_rng(0)
    data = data.astype({c: object for c in ["race", "age", "n_biopsies", "density", "brca", "nulliparous"]})
    pick = rng.choice(n, 60, replace=False)
    data.loc[pick[:10], "race"] = ["Black", "unknown", "white ", "Asian", "x", "99", "", "NA", "2", "Hispanic"]
    data.loc[pick[10:20], "age"] = ["abc", "130", "", "45.5", " 50 ", "1e2", "-3", "NA", "nan", "70"]
    data.loc[pick[20:30], "n_biopsies"] = ["two", "1", "", "99", "3.5", "0", "-1", "NA", "5", "1.0"]
    data.loc[pick[30:40], "density"] = ["Heterogeneously dense", "d", "5", "", "NA", "b", "C", "x", "1", "2"]
    data.loc[pick[40:50], "brca"] = ["Not tested", "BRCA1", "pos", "", "negative", "NA", "2", "x", "0", "1"]
    data.loc[pick[50:60], "nulliparous"] = ["Yes", "no", "1", "0", "", "maybe", "TRUE", "NA", "f", "2"]
    data["horizon_years"] = rng.choice(["5", "lifetime", "10", "", "x", "3.5"], n)
    data["free_text"] = rng.choice(["a,b", 'q"r', "z", ""], n)
    return data.rename(columns={"age": "Age", "first_degree_relatives": "First_Degree_Relatives"})


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
@pytest.mark.parametrize("horizon", [5.0, "horizon_years"])
def test_fast_path_writes_the_same_bytes_as_reading_every_column(tmp_path, monkeypatch, fmt, horizon):
    data = _messy_cohort()
    src = tmp_path / f"cohort.{fmt}"
    if fmt == "parquet":
        data.astype(str).to_parquet(src, index=False)
    else:
        data.to_csv(src, index=False, sep="," if fmt == "csv" else "\t")
    fast = predict_file(str(src), str(tmp_path / "fast.csv"), horizon=horizon, chunk_rows=700)
    read = []
    real = streaming.ChunkedTable.__init__

    def every_column(self, *args, **kwargs):
        read.append((kwargs.get("read_columns"), kwargs.get("categorical_columns", ())))
        kwargs["read_columns"], kwargs["categorical_columns"] = None, ()  # every column, text as text
        real(self, *args, **kwargs)

    monkeypatch.setattr(streaming.ChunkedTable, "__init__", every_column)
    monkeypatch.setattr(streaming, "csv_text", lambda *a: None)  # pandas writes
    slow = predict_file(str(src), str(tmp_path / "slow.csv"), horizon=horizon, chunk_rows=700)
    assert read and read[0][0] is not None and "free_text" not in read[0][0]  # the fast run read fewer columns
    if fmt == "parquet":  # and read the coded text columns as categoricals
        assert set(read[0][1]) == {"race", "density", "brca"}
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
    assert fast.counts == slow.counts and fast.n_rows == slow.n_rows == len(data)
    assert set(fast.counts) - {"ok"}  # the cohort has invalid rows


@pytest.mark.parametrize("chunk_rows", [1, 2, 250_000])
def test_a_row_longer_than_the_header_is_refused_naming_its_line(tmp_path, chunk_rows):
    # pandas drops the extra field of line 3 without a word when it reads one row at a time (chunk_rows=1)
    # or only some columns; otherwise it refuses the file with its own tokenizer message.
    src = tmp_path / "c.csv"
    src.write_text("id,age,race,note\n1,50,white,x\n2,51,white,y,EXTRA\n3,52,white,z\n")
    with pytest.raises(ValueError, match=r"c.csv: cannot read as csv: line 3: 5 fields where the header has 4"):
        predict_file(str(src), str(tmp_path / "o.csv"), chunk_rows=chunk_rows)


def test_read_columns_keeps_each_columns_values_and_types(tmp_path):
    src = tmp_path / "c.csv"
    src.write_text("id,x,age,y\n007,a,50,1\n008,b,x,2\n009,c,,3\n")
    some = pd.concat(streaming.ChunkedTable(str(src), "csv", 2, text_columns=["id"], read_columns=["id", "age"]))
    every = pd.concat(streaming.ChunkedTable(str(src), "csv", 2, text_columns=["id"]))
    pd.testing.assert_frame_equal(some, every[["id", "age"]])


def _peak_bytes(path, chunk_rows: int, whole: bool = False) -> int:
    tracemalloc.start()
    try:
        predict_file(str(path), str(path.with_suffix(".out.csv")), chunk_rows=chunk_rows, whole=whole)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_grows_with_the_chunk_not_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "FIELD_CHECK_BLOCK", 1 << 16)  # files many blocks long, as a large file is
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    make_cohort(20_000, seed=1).to_csv(small, index=False)  # 5 MB: more than a block of the field check
    make_cohort(60_000, seed=1).to_csv(large, index=False)
    peak_small, peak_large = _peak_bytes(small, 2_000), _peak_bytes(large, 2_000)
    assert peak_large < 1.3 * peak_small, (peak_small, peak_large)  # 3x the rows, not 3x the memory
    assert peak_large < 0.5 * _peak_bytes(large, 2_000, whole=True)  # reading the file whole costs more


def test_fast_path_is_used_by_the_command(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(files, "_columns_read", lambda *a: seen.append(a) or ["id", "age", "race"])
    src = tmp_path / "c.csv"
    make_cohort(50, seed=2).to_csv(src, index=False)
    predict_file(str(src), str(tmp_path / "o.csv"))
    assert seen


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunks_scored_in_threads_give_the_same_bytes_in_order(tmp_path, monkeypatch, fmt):
    import threading

    data = _messy_cohort(2000)
    src = tmp_path / f"cohort.{fmt}"
    if fmt == "parquet":
        data.astype(str).to_parquet(src, index=False)
    else:
        data.to_csv(src, index=False)
    names = set()
    real = files.distributed.predict_part

    def recording(*args, **kwargs):
        names.add(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(files.distributed, "predict_part", recording)
    runs = {t: predict_file(str(src), str(tmp_path / f"t{t}.csv"), horizon="horizon_years", chunk_rows=150,
                            threads=t) for t in (1, 3)}
    assert any(name.startswith("riskmodel-score") for name in names)  # scored off the main thread
    assert (tmp_path / "t1.csv").read_bytes() == (tmp_path / "t3.csv").read_bytes()
    assert runs[1].counts == runs[3].counts and runs[3].n_rows == len(data)
    out = pd.read_csv(tmp_path / "t3.csv", dtype={"id": str})
    assert out["id"].tolist() == data["id"].astype(str).tolist()  # every row, in the input's order


def test_a_failing_chunk_in_a_thread_fails_the_run_and_leaves_no_output(tmp_path, monkeypatch):
    src = tmp_path / "c.csv"
    make_cohort(1000, seed=4).to_csv(src, index=False)
    calls = []
    real = files.distributed.predict_part

    def failing(part, *args, **kwargs):
        calls.append(len(part))
        if len(calls) == 3:
            raise RuntimeError("chunk three broke")
        return real(part, *args, **kwargs)

    monkeypatch.setattr(files.distributed, "predict_part", failing)
    with pytest.raises(RuntimeError, match="chunk three broke"):
        predict_file(str(src), str(tmp_path / "out.csv"), chunk_rows=50, threads=2)
    assert not (tmp_path / "out.csv").exists() and list(tmp_path.iterdir()) == [src]
    assert len(calls) < 1000 // 50  # the chunks after the failure were not all scored


@pytest.mark.parametrize("threads", [-1, 1.5, True, 65])
def test_threads_must_be_a_whole_number(tmp_path, threads):
    src = tmp_path / "c.csv"
    make_cohort(5, seed=4).to_csv(src, index=False)
    with pytest.raises(ValueError, match="threads"):
        predict_file(str(src), str(tmp_path / "out.csv"), threads=threads)


def test_parquet_text_columns_read_as_categoricals_hold_the_same_cells(tmp_path):
    data = _messy_cohort(900).astype(str)
    data.loc[::7, "density"] = None
    data["prs"] = np.linspace(-2, 2, len(data))
    src = tmp_path / "c.parquet"
    data.to_parquet(src, index=False)
    plain = pd.concat(streaming.ChunkedTable(str(src), "parquet", 200))
    cats = list(streaming.ChunkedTable(str(src), "parquet", 200, categorical_columns=["density", "brca", "prs"]))
    assert isinstance(cats[0]["density"].dtype, pd.CategoricalDtype)
    assert cats[0]["prs"].dtype == np.float64  # not stored as text: kept as stored
    joined = pd.concat([c.astype({"density": object, "brca": object}) for c in cats])
    assert joined["density"].isna().sum() == plain["density"].isna().sum() > 0
    pd.testing.assert_frame_equal(joined.fillna({"density": "-"}), plain.fillna({"density": "-"}))


def test_the_command_takes_threads_and_refuses_a_negative_count(tmp_path, capsys):
    from riskmodel import cli

    src = tmp_path / "c.csv"
    make_cohort(300, seed=5).to_csv(src, index=False)
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "a.csv"), "--threads", "1", "--chunk-rows", "50",
                     "-q"]) == 0
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "b.csv"), "--chunk-rows", "50", "-q"]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "d.csv"), "--threads", "-1"]) == 2
    assert "--threads -1: must be at least 0" in capsys.readouterr().err
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "d.csv"), "--threads", "2500"]) == 2
    assert "--threads 2500: must be at least 0 (0: automatic) and at most 64" in capsys.readouterr().err
    assert not (tmp_path / "d.csv").exists()
