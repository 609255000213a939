"""pyarrow's CSV path (:mod:`riskmodel.distributed.arrow_csv`) gives exactly pandas' chunks, or declines.

Every test compares the chunks of ``ChunkedTable(arrow=True)`` with those of ``ChunkedTable(arrow=False)``
(pandas' reader, ``float_precision="round_trip"``): values, dtypes and row labels, bit for bit.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riskmodel.distributed.files as files
from riskmodel.distributed import arrow_csv
from riskmodel.distributed.files import predict_file
from riskmodel.distributed.streaming import ChunkedTable
from riskmodel.synthetic import make_cohort
from riskmodel.tables import ID_COLUMNS

CELLS = ["", "NA", "nan", "NULL", "None", "1", "-2", "007", "0", "-0", "1.5", "-0.25", "1e5", "2E-03", ".5", "5.",
         "0.1234567890123456789", "73.00281435090078", "True", "false", "TRUE", "yes", "abc", " 5", "+5", "inf",
         "a,b", 'q"r', "x\ny", "é", "123456789012345678", "1.2.3", "--1", "5-"]


def _write(rows: list[list[str]], header: list[str], sep: str = ",") -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def _chunks(path: str, chunk_rows: int, arrow: bool, **kwargs) -> tuple[list[pd.DataFrame], str | None]:
    table = ChunkedTable(path, "csv", chunk_rows, arrow=arrow, **kwargs)
    return list(table), table.arrow_reason


def _assert_same(path: str, chunk_rows: int, **kwargs) -> str | None:
    """Both readers' chunks are equal; returns why the arrow path declined (None: it read the file)."""
    try:
        want, _ = _chunks(path, chunk_rows, False, **kwargs)
    except Exception as exc:  # pandas refuses the file: so must the table whichever path it takes
        with pytest.raises(type(exc)):
            _chunks(path, chunk_rows, True, **kwargs)
        return "pandas refuses"
    got, reason = _chunks(path, chunk_rows, True, **kwargs)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(g, w, check_exact=True)
        for name in w.columns:  # object cells: the same Python types (str, float NaN, bool)
            if w[name].dtype == object:
                assert [type(v) for v in g[name]] == [type(v) for v in w[name]], name
    return reason


@settings(max_examples=200, deadline=None)
@given(columns=st.lists(st.lists(st.sampled_from(CELLS), min_size=12, max_size=12), min_size=1, max_size=4),
       n=st.integers(1, 12), chunk_rows=st.sampled_from([1, 3, 100]))
def test_arrow_chunks_are_pandas_chunks(tmp_path_factory, columns, n, chunk_rows):
    header = ["id"] + [f"c{i}" for i in range(len(columns))]
    rows = [[f"{i:03d}"] + [col[i] for col in columns] for i in range(n)]
    path = tmp_path_factory.mktemp("h") / "t.csv"
    path.write_text(_write(rows, header), encoding="utf-8")
    _assert_same(str(path), chunk_rows, text_columns=ID_COLUMNS)


@pytest.mark.parametrize("cells, kind", [
    (["1", "2", "-3", "007"], "int"),
    (["1", "", "3"], "float"),  # an integer column with a blank: float, as pandas
    (["1.5", "2", "NA", "1e5", ".5", "5."], "float"),
    (["True", "false", "TRUE"], "bool"),
    (["True", "", "false"], "bool_na"),
    (["1", "abc", "2.5", ""], "object"),
    (["", "NA"], "float"),  # nothing but missing cells
])
def test_kinds_follow_pandas(tmp_path, cells, kind):
    path = tmp_path / "k.csv"
    path.write_text(_write([[c] for c in cells] * 5, ["v"]))
    assert _assert_same(str(path), 4) is None
    found = arrow_csv.plan(str(path), ",", ["v"], ["v"], {"v": sorted(pd._libs.parsers.STR_NA_VALUES)}, [], [])
    assert [c.kind for c in found.columns] == [kind]


@pytest.mark.parametrize("cell, why", [
    ("+5", "not a plain number"), (" 5", "not a plain number"), ("inf", "not a plain number"),
    ("123456789012345678", "not a plain number"),
])
def test_numbers_pandas_reads_its_own_way_go_to_pandas(tmp_path, cell, why):
    path = tmp_path / "d.csv"
    path.write_text(_write([["1"], [cell], ["2"]], ["v"]))
    reason = _assert_same(str(path), 2)
    assert reason is not None and why in reason


def test_a_checked_numeric_column_of_text_goes_to_pandas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(_write([["50"], ["fifty"]], ["age"]))
    assert "read as text" in _assert_same(str(path), 1, check_columns=["age"])


def test_malformed_files_go_to_pandas(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("a,b\n1,2\n3\n4,5\n")
    assert _assert_same(str(short), 2).startswith("pyarrow")
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"a,b\n1,x\x00y\n")
    assert "NUL" in _assert_same(str(nul), 2)
    repeated = tmp_path / "rep.csv"
    repeated.write_text("a,a\n1,2\n")
    assert _assert_same(str(repeated), 2) is not None  # pandas renames the second "a.1"


def test_quoted_line_breaks_and_separators(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(_write([["1", "a\nb", "2.5"], ["2", "c,d", ""], ["3", 'e"f', "7"]], ["id", "note", "x"]))
    assert _assert_same(str(path), 2, text_columns=ID_COLUMNS) is None


def test_floats_are_read_correctly_rounded(tmp_path):
    # pandas' default parser reads this 1 ulp off; the library reads it as Python's float() does.
    path = tmp_path / "f.csv"
    path.write_text("v\n0.034558419206478605\n1\n")
    (chunk,), _ = _chunks(str(path), 10, True)
    assert chunk["v"].iloc[0] == float("0.034558419206478605")
    assert pd.read_csv(path)["v"].iloc[0] != float("0.034558419206478605")  # the reason for round_trip


def test_messy_cohort_scores_the_same_bytes_by_either_reader(tmp_path, monkeypatch):
    data = make_cohort(2000, seed=5).drop(columns=["time", "event"])
    rng = np.random.default_rng(1)
    data = data.astype({c: object for c in ["race", "density", "brca", "nulliparous", "n_biopsies"]})
    pick = rng.choice(len(data), 50, replace=False)
    data.loc[pick[:10], "race"] = ["Black", "unknown", "white ", "Asian", "x", "99", "", "NA", "2", "Hispanic"]
    data.loc[pick[10:20], "density"] = ["Heterogeneously dense", "d", "5", "", "NA", "b", "C", "x", "1", "2"]
    data.loc[pick[20:30], "brca"] = ["Not tested", "BRCA1", "pos", "", "negative", "NA", "2", "x", "0", "1"]
    data.loc[pick[30:40], "nulliparous"] = ["Yes", "no", "1", "0", "", "maybe", "TRUE", "NA", "f", "2"]
    data.loc[pick[40:50], "n_biopsies"] = ["", "1", "2", "NA", "0", "3", "", "1", "0", "7"]
    data.loc[pick[:5], "age"] = [130.0, 20.0, np.nan, 45.5, -3.0]
    data.loc[pick[5:8], "id"] = ["007", "NA", ""]
    src = tmp_path / "messy.csv"
    data.to_csv(src, index=False)
    used = []
    real = ChunkedTable.arrow_only
    monkeypatch.setattr(ChunkedTable, "arrow_only", classmethod(lambda cls, *a, **k: used.append(1) or
                                                                 real.__func__(cls, *a, **k)))
    fast = predict_file(str(src), str(tmp_path / "fast.csv"), chunk_rows=300, details=True)
    assert used
    monkeypatch.setattr(ChunkedTable, "arrow_only", classmethod(lambda cls, *a, **k: None))
    slow = predict_file(str(src), str(tmp_path / "slow.csv"), chunk_rows=300, details=True)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "slow.csv").read_bytes()
    assert fast.counts == slow.counts and set(fast.counts) - {"ok"}


def test_the_command_takes_the_arrow_path_on_a_canonical_file(tmp_path, monkeypatch):
    src = tmp_path / "c.csv"
    make_cohort(3000, seed=2).to_csv(src, index=False)
    monkeypatch.setattr(files, "field_problems", lambda *a: pytest.fail("the arrow path needs no field check"))
    run = predict_file(str(src), str(tmp_path / "o.csv"), chunk_rows=1000)
    assert run.n_rows == 3000


_PEAK = """
import sys, tracemalloc
import pyarrow as pa
from riskmodel.distributed import arrow_csv
from riskmodel.distributed.files import predict_file
arrow_csv.BLOCK_SIZE = 1 << 16  # files many blocks and row groups long, as a large file is by default
arrow_csv._GROUP_ROWS = 1 << 12
tracemalloc.start()
predict_file(sys.argv[1], sys.argv[1] + ".out.csv", chunk_rows=int(sys.argv[2]))
print(tracemalloc.get_traced_memory()[1] + pa.default_memory_pool().max_memory())
"""


@pytest.mark.slow
def test_arrow_path_memory_grows_with_the_chunk_not_the_file(tmp_path):
    """Peak of Python's and pyarrow's allocations (tracemalloc does not see pyarrow's) in a fresh process."""
    peaks = {}
    for n in (40_000, 240_000):
        path = tmp_path / f"c{n}.csv"
        make_cohort(n, seed=1).to_csv(path, index=False)
        out = subprocess.run([sys.executable, "-c", _PEAK, str(path), "4000"], capture_output=True, text=True,
                             check=True)
        peaks[n] = int(out.stdout.split()[-1])
    # 6x the rows (60 MB of CSV instead of 10 MB): the peak stays. pyarrow's reader holds at most 32 blocks,
    # the first pass a group of rows, the second a chunk, and a chunk each is read ahead and written behind.
    assert peaks[240_000] < 1.3 * peaks[40_000], json.dumps(peaks)
