"""The CLI's table boundary: identifiers kept as text, the input never overwritten, malformed rows flagged."""

import io
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskmodel import cli
from riskmodel.cli.evaluate import risk_table
from riskmodel.distributed.streaming import AtomicWriter, malformed_rows

IDS = "id,exam_id,age,race\n00123,0000001,50,white\n,0000002,50,white\nNA,0000003,50,white\n7,4,40,white\n"


def read_out(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.mark.parametrize("chunk", [1, 1000])
@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_ids_are_read_as_text(tmp_path, fmt, chunk):
    src = tmp_path / f"ids.{fmt}"
    src.write_text(IDS if fmt == "csv" else IDS.replace(",", "\t"))
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(src), "-o", str(out), "--keep-input", "--chunk-rows", str(chunk), "-q"]) == 0
    got = read_out(out)
    assert got["id"].tolist() == ["00123", "", "NA", "7"]
    assert got["exam_id"].tolist() == ["0000001", "0000002", "0000003", "4"]
    assert (got["status"] == "ok").all()


def test_ids_from_stdin_and_parquet(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(IDS))
    assert cli.main(["predict", "-", "-q"]) == 0
    assert pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)["id"].tolist() == [
        "00123", "", "NA", "7"]
    # An integer id column with a missing cell: pandas would make it 1.0, 2.0 …
    src = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([1, None, 30], pa.int64()), "age": [50, 50, 40],
                             "race": ["white"] * 3}), src)
    for chunk in ("1", "1000"):
        out = tmp_path / f"out{chunk}.csv"
        assert cli.main(["predict", str(src), "-o", str(out), "--chunk-rows", chunk, "-q"]) == 0
        assert read_out(out)["id"].tolist() == ["1", "", "30"]
    assert cli.read_table(str(src))["id"].tolist() == ["1", None, "30"]


def test_ids_on_dask(tmp_path):
    src = tmp_path / "ids.csv"
    src.write_text(IDS)
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(src), "-o", str(out), "--engine", "dask", "--workers", "1", "-q"]) == 0
    assert read_out(out)["id"].tolist() == ["00123", "", "NA", "7"]


def test_evaluate_id_column_keeps_zeros(tmp_path):
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("pid,time,event\n001,5,0\n01,5,1\n1,5,0\n")
    risks = tmp_path / "risks.csv"
    risks.write_text("pid,risk\n1,0.01\n01,0.05\n001,0.02\n")  # 001, 01 and 1 are three women
    frame = risk_table(f"m={risks}", 3, cli.read_table(str(cohort), text=("pid",)), "pid")[1]
    assert frame["risk"].tolist() == [0.02, 0.05, 0.01]


@pytest.mark.parametrize("spelling", ["same", "absolute", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(tmp_path, capsys, monkeypatch, spelling):
    src = tmp_path / "cohort.csv"
    src.write_text(IDS)
    monkeypatch.chdir(tmp_path)
    target = {"same": "cohort.csv", "absolute": str(tmp_path / "sub" / ".." / "cohort.csv")}.get(spelling)
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        os.symlink(src, tmp_path / "link.csv")
        target = "link.csv"
    elif spelling == "hardlink":
        os.link(src, tmp_path / "hard.csv")
        target = "hard.csv"
    assert cli.main(["predict", "cohort.csv", "-o", target, "-q"]) == 2
    err = capsys.readouterr().err
    assert "is the input" in err and len(err.strip().splitlines()) == 1
    assert src.read_text() == IDS
    assert not [p for p in tmp_path.rglob("*.partial")]


def test_output_folder_and_input_folder_are_refused(tmp_path, capsys):
    src = tmp_path / "cohort.csv"
    src.write_text(IDS)
    (tmp_path / "out.csv").mkdir()
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "out.csv"), "-q"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*.partial")]
    assert cli.main(["predict", str(tmp_path / "out.csv"), "-q"]) == 2
    assert "is a folder, not a table" in capsys.readouterr().err


def test_atomic_writer_leaves_nothing_when_commit_fails(tmp_path, monkeypatch):
    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt), AtomicWriter(str(tmp_path / "out.csv"), "csv") as out:
        out.write(pd.DataFrame({"a": [1]}))
    assert os.listdir(tmp_path) == []


def test_short_rows_and_nul_bytes_are_flagged(tmp_path):
    src = tmp_path / "q.csv"
    src.write_bytes(b'id,age,race,n_biopsies\n1,50,white,0\n2,50\n\n"3\n",50,white,0\n4\x005,50,white,1\n6,50,white,\n')
    for chunk in ("1", "1000"):
        out = tmp_path / f"out{chunk}.csv"
        assert cli.main(["predict", str(src), "-o", str(out), "--chunk-rows", chunk, "-q"]) == 0
        got = read_out(out)
        assert got["status"].tolist() == ["ok", "invalid", "ok", "invalid", "ok"]
        assert got["message"][1].startswith("2 field(s) where the header has 4")
        assert got["message"][3].startswith("column 'id' holds a NUL byte") and got["risk"][3] == ""
        assert got["risk"][1] == "" and got["risk"][4] != ""  # a blank last cell is not a short row


def test_malformed_rows_in_memory_and_compressed(tmp_path):
    import gzip

    text = b"a\tb\n1\t2\n3\n"
    assert malformed_rows(text, "tsv") == {1: "1 field(s) where the header has 2; the row is not scored"}
    path = tmp_path / "x.tsv.gz"
    path.write_bytes(gzip.compress(text))
    assert list(malformed_rows(str(path), "tsv")) == [1]
    assert malformed_rows(b"a,b\n1,2\n", "csv") == {}


def test_semicolon_file_gets_a_hint(tmp_path, capsys, monkeypatch):
    src = tmp_path / "semi.csv"
    src.write_text("id;age;race\n1;50;white\n")
    assert cli.main(["predict", str(src), "-q"]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and "separated by ';'" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(src.read_text()))
    assert cli.main(["predict", "-", "-q"]) == 2
    assert "stdin: the header is one column" in capsys.readouterr().err


def test_closing_line_gives_the_top_reasons(tmp_path, capsys):
    src = tmp_path / "r.csv"
    src.write_text("id,age,race\n1,130,white\n2,130,white\n3,,white\n4,50,martian\n5,50,white\n")
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "out.csv")]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("riskmodel: scored 5 rows with gail (invalid 3, missing 1, ok 1)")
    assert "; top reasons: " in err and "(2 rows)" in err and "other message(s)" in err
    assert len(err.splitlines()) == 1
