"""Progress bars on long steps (synth's rendering, scan's headers, evaluate's bootstrap) and the
evaluate summary with too few cancers."""

import numpy as np

from riskmodel import cli
from riskmodel.evaluation import evaluate_risks
from riskmodel.imaging import scan_dicoms
from riskmodel.synthetic import make_cohort, write_exams


def test_rendering_and_scanning_show_progress_bars(tmp_path, capsys):
    cohort = make_cohort(2, seed=0)
    write_exams(cohort, tmp_path / "exams", image_size=(64, 52), progress=True)
    assert "rendering mammograms" in capsys.readouterr().err
    manifest = scan_dicoms(tmp_path / "exams", progress=True)
    err = capsys.readouterr().err
    assert "scanning DICOM headers" in err and f"{len(manifest)}/{len(manifest)}" in err
    scan_dicoms(tmp_path / "exams")
    assert capsys.readouterr().err == ""  # off by default


def test_bootstrap_shows_a_progress_bar(capsys):
    cohort = make_cohort(300, seed=1)
    evaluate_risks(cohort, {"truth": cohort["true_risk_5y"].to_numpy()}, n_boot=12, progress=True)
    assert "bootstrap (truth)" in capsys.readouterr().err


def test_evaluate_summary_with_too_few_cancers_shows_a_dash(tmp_path, capsys):
    cohort = make_cohort(300, seed=3)
    cohort.loc[cohort.index[np.flatnonzero(cohort["event"].to_numpy() == 1)], "event"] = 0
    cohort.to_csv(tmp_path / "c.csv", index=False)
    cohort[["true_risk_5y"]].rename(columns={"true_risk_5y": "risk"}).to_csv(tmp_path / "r.csv", index=False)
    assert cli.main(["evaluate", "--cohort", str(tmp_path / "c.csv"), "--risks", f"truth={tmp_path / 'r.csv'}",
                     "--bootstrap", "0", "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "truth: n=300 cancers=0 C=– E/O=–" in err and "nan" not in err
