"""The riskmodel command: formats, exit codes, one output row per input row."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from riskmodel import cli

EXAMPLE = Path(__file__).parents[1] / "examples" / "example_cohort.csv"
REF = Path(__file__).parent / "data" / "bcra_example.csv"


def test_predict_csv_to_parquet(tmp_path, capsys):
    out = tmp_path / "risks.parquet"
    assert cli.main(["predict", str(EXAMPLE), "-o", str(out)]) == 0
    got = pd.read_parquet(out)
    cohort = pd.read_csv(EXAMPLE)
    assert got["id"].tolist() == cohort["id"].tolist()
    assert {"risk", "status", "message", "model", "horizon"} <= set(got.columns)
    assert "scored 20 rows" in capsys.readouterr().err


def test_predict_parquet_to_csv_lifetime_keep_input(tmp_path):
    src = tmp_path / "cohort.parquet"
    pd.read_csv(EXAMPLE).to_parquet(src)
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(src), "-o", str(out), "--horizon", "lifetime", "--keep-input", "-q"]) == 0
    got = pd.read_csv(out)
    assert "age_at_menarche" in got.columns and len(got) == 20
    ok = got["status"] == "ok"
    assert (got.loc[ok, "horizon"] == 90 - got.loc[ok, "age"]).all()


def test_stdout_when_no_output(capsys):
    assert cli.main(["predict", str(EXAMPLE), "-q"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "id,risk,status,message,model,horizon"
    assert len(text.splitlines()) == 21


def test_bcra_layout_is_exactly_r(tmp_path):
    ref = pd.read_csv(REF, float_precision="round_trip", keep_default_na=False, na_values=[])
    src = tmp_path / "bcra.csv"
    ref[["ID", "T1", "T2", "N_Biop", "HypPlas", "AgeMen", "Age1st", "N_Rels", "Race"]].to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert cli.main(["predict", str(src), "-o", str(out), "--layout", "bcra", "-q", "--keep-input"]) == 0
    got = pd.read_csv(out, float_precision="round_trip")
    assert got["ID"].tolist() == ref["ID"].tolist() and "HypPlas" in got.columns
    r = pd.to_numeric(ref["abs_risk"].replace("NA", float("nan"))) / 100
    assert got["risk"].isna().tolist() == r.isna().tolist()
    pd.testing.assert_series_equal(got["risk"], r, check_names=False, rtol=1e-12)
    assert (got.loc[r.isna(), "status"] == "invalid").all() and got.loc[r.isna(), "message"].str.len().gt(0).all()
    assert "Requirement A" in got.loc[1, "message"] and "Race" in got.loc[0, "message"]


def test_bcra_layout_rejects_horizon(tmp_path, capsys):
    src = tmp_path / "bcra.csv"
    pd.read_csv(REF).iloc[:, :9].to_csv(src, index=False)
    assert cli.main(["predict", str(src), "--layout", "bcra", "--horizon", "5"]) == 2
    assert "--horizon does not apply" in capsys.readouterr().err


def test_duplicate_csv_column_is_an_error(tmp_path, capsys):
    src = tmp_path / "dup.csv"
    src.write_text("age,race,age\n50,1,51\n")
    assert cli.main(["predict", str(src)]) == 2
    assert "'age' appears more than once" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "args", "text"),
    [
        (None, ["predict", "missing.csv"], "no such file"),
        ("x.json", ["predict", "{src}"], "unknown file type"),
        ("x.csv", ["predict", "{src}"], "'age'"),
        ("x.parquet", ["predict", "{src}"], "cannot read as parquet"),
        ("ok.csv", ["predict", "{src}", "--horizon", "-3"], "--horizon"),
        ("ok.csv", ["predict", "{src}", "--horizon", "nosuchcol"], "column"),
    ],
)
def test_unusable_input_exits_2_with_one_line(tmp_path, capsys, make, args, text):
    src = tmp_path / (make or "none")
    if make == "ok.csv":
        pd.read_csv(EXAMPLE).to_csv(src, index=False)
    elif make is not None:
        src.write_text("race,n_biopsies\n1,0\n")
    argv = [a.format(src=src) for a in args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("riskmodel: error:") and text in err
    assert "Traceback" not in err


def test_progress_bar_on_large_input(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_MIN_ROWS", 10)
    monkeypatch.setattr(cli, "CHUNK_ROWS", 7)
    out = tmp_path / "o.csv"
    assert cli.main(["predict", str(EXAMPLE), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "scoring" in err and "20/20" in err
    got = pd.read_csv(out)
    assert got["id"].tolist() == pd.read_csv(EXAMPLE)["id"].tolist()
    whole = tmp_path / "w.csv"
    cli.main(["predict", str(EXAMPLE), "-o", str(whole), "-q"])
    pd.testing.assert_frame_equal(got, pd.read_csv(whole))


def test_help_documents_every_command():
    run = subprocess.run([sys.executable, "-m", "riskmodel.cli", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "predict" in run.stdout
    sub = subprocess.run([sys.executable, "-m", "riskmodel.cli", "predict", "--help"], capture_output=True, text=True)
    for option in ("--output", "--model", "--horizon", "--layout", "--details", "--keep-input", "--quiet"):
        assert option in sub.stdout


def test_duplicate_bcra_column_is_an_error(tmp_path, capsys):
    src = tmp_path / "dup.csv"
    src.write_text("ID,T1,T1,T2,N_Biop,HypPlas,AgeMen,Age1st,N_Rels,Race\n1,40,41,45,99,99,12,25,1,1\n")
    assert cli.main(["predict", str(src), "--layout", "bcra"]) == 2
    assert "'T1' appears more than once" in capsys.readouterr().err


def test_synth_then_scan(tmp_path, capsys):
    out = tmp_path / "syn"
    assert cli.main(["synth", "--n", "3", "--out", str(out), "--images", "--image-size", "96x80", "--seed", "2"]) == 0
    cohort = pd.read_csv(out / "cohort.csv")
    assert len(cohort) == 3 and {"true_risk_5y", "time", "event"} <= set(cohort.columns)
    assert len(pd.read_csv(out / "exams" / "manifest.csv")) == 12
    manifest, exams = tmp_path / "m.csv", tmp_path / "e.csv"
    assert cli.main(["scan", str(out / "exams"), "-o", str(manifest), "--exams", str(exams)]) == 0
    scanned = pd.read_csv(manifest)
    assert (scanned["status"] == "ok").sum() == 12 and len(scanned) == 15  # + manifest, truth and lesions .csv
    assert len(pd.read_csv(exams)) == 3
    assert "scanned 15 files (12 ok)" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "text"), [
    (["synth", "--n", "0", "--out", "{tmp}"], "--n 0"),
    (["synth", "--n", "2", "--out", "{tmp}", "--images", "--image-size", "big"], "--image-size"),
    (["synth", "--n", "2", "--out", "{tmp}", "--images", "--image-size", "10x10"], "image_size"),
    (["scan", "{tmp}/nowhere"], "no such folder"),
])
def test_synth_scan_usage_errors(tmp_path, capsys, argv, text):
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err
