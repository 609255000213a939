"""``riskmodel predict`` in chunks: the same output as scoring the whole file, written atomically."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import riskmodel
import riskmodel.distributed
from riskmodel import cli
from riskmodel.distributed.streaming import AtomicWriter, ChunkedTable
from riskmodel.synthetic import make_cohort

REF = Path(__file__).parent / "data" / "bcra_example.csv"


def messy_cohort(n: int = 60) -> pd.DataFrame:
    """Rows that break rules, and columns whose type changes from one 7-row chunk to the next."""
    data = make_cohort(n, seed=11).iloc[:, :13].astype({"race": object, "prs": object, "nulliparous": object})
    data["id"] = np.arange(1, n + 1).astype(object)
    data.loc[40, "id"] = None  # integers in the first chunks, a blank later: float for the whole file
    data.loc[2, "age"] = 130.0
    data.loc[9, "race"] = "asian"  # the only text of the column, in the second chunk
    data.loc[10, "race"] = 12  # a bad code in the same chunk (text there, a number elsewhere)
    data.loc[30, "race"] = 13  # a bad code in a chunk without text
    data.loc[16, "nulliparous"] = "maybe"
    data.loc[22, ["age_at_menarche", "age_at_first_birth"]] = [15.0, 12.0]
    data.loc[28:34, "prs"] = "high"  # a whole chunk (rows 28-34) of text in a numeric column
    data["years"] = np.where(np.arange(n) % 5 == 0, "lifetime", "5")
    data.loc[3, "years"] = "-1"
    return data


def run(*argv) -> None:
    assert cli.main([str(a) for a in argv]) == 0


@pytest.mark.parametrize("chunk", [7, 13])
def test_streamed_csv_equals_whole_file(tmp_path, chunk):
    src = tmp_path / "cohort.csv"
    messy_cohort().to_csv(src, index=False)
    streamed, whole = tmp_path / "streamed.csv", tmp_path / "whole.csv"
    common = ["--horizon", "years", "--details", "--keep-input", "-q"]
    run("predict", src, "-o", streamed, "--chunk-rows", chunk, *common)
    run("predict", src, "-o", whole, "--chunk-rows", 10**6, *common)
    assert streamed.read_bytes() == whole.read_bytes()
    # ... and both are predict_risk on the file read whole by pandas.
    got = pd.read_csv(streamed, float_precision="round_trip", keep_default_na=False, na_values=[""])
    want = riskmodel.predict_risk(pd.read_csv(src, low_memory=False, float_precision="round_trip"), horizon="years",
                                  details=True)
    np.testing.assert_array_equal(got["risk"].to_numpy(), want["risk"].to_numpy())
    assert got["status"].tolist() == want["status"].tolist()
    assert got["message"].fillna("").tolist() == want["message"].tolist()
    assert got["message"][10] == "race='12': not a code 1–11 or a name in riskmodel.schema.RACE_NAMES"
    assert (got["status"][28:35] == "invalid").all() and got["id"].tolist()[:2] == [1.0, 2.0]


def test_streamed_parquet_equals_whole_file(tmp_path):
    data = messy_cohort()
    data["prs"] = data["prs"].map(str)
    data["race"] = data["race"].map(str)
    data["nulliparous"] = data["nulliparous"].map(str)
    src = tmp_path / "cohort.parquet"
    table = pa.Table.from_pandas(data.assign(id=pd.array(data["id"], dtype="Int64")), preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), src, row_group_size=10)  # as another tool writes it
    out = tmp_path / "out.parquet"
    run("predict", src, "-o", out, "--chunk-rows", 7, "--horizon", "years", "--keep-input", "-q")
    got = pd.read_parquet(out)
    whole = pd.read_parquet(src)
    assert whole["id"].dtype == np.float64  # an integer column with a missing value somewhere
    want = riskmodel.predict_risk(whole, horizon="years")
    pd.testing.assert_frame_equal(got[list(want.columns)], want, check_exact=True)
    # The id column is an identifier: its integers come back as their text (never 1.0), the blank as missing.
    ids = [None if pd.isna(v) else str(int(v)) for v in whole["id"]]
    assert got["id"].tolist() == ids
    pd.testing.assert_frame_equal(got[list(whole.columns)], whole.assign(id=pd.Series(ids, dtype=object)),
                                  check_exact=True)
    assert len(pq.ParquetFile(out).metadata.to_dict()["row_groups"]) == 9  # written chunk by chunk


def test_tsv_and_compressed_output(tmp_path):
    src = tmp_path / "cohort.tsv"
    messy_cohort().to_csv(src, sep="\t", index=False)
    run("predict", src, "-o", tmp_path / "a.csv.gz", "--chunk-rows", 6, "-q")
    run("predict", src, "-o", tmp_path / "b.tsv", "-q")
    a = pd.read_csv(tmp_path / "a.csv.gz", float_precision="round_trip")
    b = pd.read_csv(tmp_path / "b.tsv", sep="\t", float_precision="round_trip")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(a) == 60


def test_an_interrupted_run_leaves_no_file_under_the_final_name(tmp_path, monkeypatch, capsys):
    src = tmp_path / "cohort.csv"
    messy_cohort().to_csv(src, index=False)
    out = tmp_path / "risks.parquet"
    real, calls = riskmodel.distributed.predict_part, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # header check, then chunks 1 and 2 are written
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(riskmodel.distributed, "predict_part", interrupted)
    assert cli.main(["predict", str(src), "-o", str(out), "--chunk-rows", "7", "-q"]) == 130
    assert os.listdir(tmp_path) == ["cohort.csv"]
    # An earlier output under that name is left as it was.
    out.write_text("previous results")
    calls.clear()
    assert cli.main(["predict", str(src), "-o", str(out), "--chunk-rows", "7", "-q"]) == 130
    assert out.read_text() == "previous results" and sorted(os.listdir(tmp_path)) == ["cohort.csv", "risks.parquet"]
    assert "riskmodel: interrupted" in capsys.readouterr().err


def test_whole_column_error_found_across_chunks(tmp_path, capsys):
    data = messy_cohort().assign(prs=None).astype({"prs": object})
    data.loc[[40, 45], "prs"] = ["high", "low"]  # no number anywhere in the column
    src = tmp_path / "cohort.csv"
    data.to_csv(src, index=False)
    with pytest.raises(riskmodel.SchemaError) as whole:
        riskmodel.predict_risk(pd.read_csv(src))
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "o.csv"), "--chunk-rows", "7", "-q"]) == 2
    assert f"riskmodel: error: {whole.value}" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["cohort.csv"]


def test_bcra_layout_streams_and_names_rows_of_the_whole_file(tmp_path, capsys):
    ref = pd.read_csv(REF).iloc[:, :9]
    src = tmp_path / "bcra.csv"
    ref.to_csv(src, index=False)
    run("predict", src, "-o", tmp_path / "a.csv", "--layout", "bcra", "--chunk-rows", 3, "--details", "-q")
    run("predict", src, "-o", tmp_path / "b.csv", "--layout", "bcra", "--details", "-q")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    bad = ref.astype({"AgeMen": object})
    bad.loc[len(bad) - 2, "AgeMen"] = "twelve"
    bad.to_csv(src, index=False)
    assert cli.main(["predict", str(src), "--layout", "bcra", "--chunk-rows", "3", "-q"]) == 2
    assert f"row {len(bad) - 2} has 'twelve'" in capsys.readouterr().err


def test_progress_bar_counts_rows_and_stdin_still_works(tmp_path, capsys, monkeypatch):
    src = tmp_path / "cohort.csv"
    messy_cohort().to_csv(src, index=False)
    monkeypatch.setattr(cli, "PROGRESS_MIN_ROWS", 10)
    run("predict", src, "-o", tmp_path / "o.csv", "--chunk-rows", 4)
    err = capsys.readouterr().err
    assert "60/60" in err and "scored 60 rows with gail" in err
    monkeypatch.setattr("sys.stdin", open(src))
    run("predict", "-", "-q")
    assert capsys.readouterr().out == (tmp_path / "o.csv").read_text()


def test_chunked_table_types_columns_as_a_whole_file_read(tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("a,b,c,d\n1,True,x,1\n2,False,y,2\n3,,z,x\n4,True,,2.5\n")
    chunks = list(ChunkedTable(str(src), "csv", 2))
    whole = pd.read_csv(src, low_memory=False)
    pd.testing.assert_frame_equal(pd.concat(chunks), whole, check_exact=True)
    assert [list(c.index) for c in chunks] == [[0, 1], [2, 3]]
    assert chunks[0]["b"].tolist() == [True, False] and chunks[0]["d"].tolist() == ["1", "2"]


def test_atomic_writer_aborts_cleanly(tmp_path):
    with pytest.raises(RuntimeError), AtomicWriter(str(tmp_path / "x.csv"), "csv") as out:
        out.write(pd.DataFrame({"a": [1]}))
        raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("argv", "text"), [
    (["--chunk-rows", "0"], "--chunk-rows 0"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler is for --engine dask"),
    (["--engine", "dask", "--layout", "bcra"], "--engine pandas"),
])
def test_option_errors(tmp_path, capsys, argv, text):
    src = tmp_path / "cohort.csv"
    messy_cohort().to_csv(src, index=False)
    assert cli.main(["predict", str(src), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err


def test_dask_engine_writes_what_the_pandas_engine_writes(tmp_path, capsys):
    src = tmp_path / "cohort.csv"
    # Dask infers column types from the first block: text columns show text there, ids have no blank.
    data = messy_cohort(200).assign(id=np.arange(200))
    data.loc[1, "prs"] = "high"
    data.to_csv(src, index=False)
    run("predict", src, "-o", tmp_path / "dask.csv", "--engine", "dask", "--workers", 2, "--chunk-rows", 40,
        "--horizon", "years", "--keep-input")
    assert "on Dask (2 workers)" in capsys.readouterr().err
    run("predict", src, "-o", tmp_path / "pandas.csv", "--horizon", "years", "--keep-input", "-q")
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["cohort.csv", "dask.csv", "pandas.csv"]
