"""`riskmodel evaluate`: a site's own cohort and risks files → report, with clear errors."""

import json

import numpy as np
import pandas as pd
import pytest

from riskmodel.cli import main
from riskmodel.synthetic import make_cohort


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    cohort = make_cohort(6000, seed=4)
    cohort.to_csv(d / "outcomes.csv", index=False)
    pd.DataFrame({"id": cohort["id"], "risk": cohort["true_risk_5y"]}).to_csv(d / "truth.csv", index=False)
    shuffled = pd.DataFrame({"id": cohort["id"], "risk": np.random.default_rng(0).uniform(0, 0.05, len(cohort))})
    shuffled.sample(frac=1.0, random_state=1).to_csv(d / "noise.csv", index=False)
    return d, cohort


def test_evaluate_two_models_by_id(files, capsys):
    d, cohort = files
    out = d / "report"
    code = main(["evaluate", "--cohort", str(d / "outcomes.csv"), "--risks", f"truth={d / 'truth.csv'}",
                 "--risks", f"noise={d / 'noise.csv'}", "--id", "id", "--reference", "noise", "--bootstrap", "10",
                 "--out", str(out), "--no-plots"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["reference"] == "noise"
    assert results["models"]["truth"]["c_index"] > 0.7 > results["models"]["noise"]["c_index"]
    assert results["models"]["truth"]["n"] == len(cohort)
    assert "truth: n=6000" in capsys.readouterr().err
    assert "Compared with noise" in (out / "report.md").read_text()


def test_evaluate_errors(files, capsys):
    d, _ = files
    short = d / "short.csv"
    pd.read_csv(d / "truth.csv").iloc[:10].to_csv(short, index=False)
    assert main(["evaluate", "--cohort", str(d / "outcomes.csv"), "--risks", str(short), "--out", str(d / "x")]) == 2
    assert "10 rows but the cohort has 6000" in capsys.readouterr().err
    assert main(["evaluate", "--cohort", str(d / "outcomes.csv"), "--risks", str(d / "truth.csv"), "--id", "nope",
                 "--out", str(d / "x")]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "--cohort", str(d / "outcomes.csv"), "--out", str(d / "x")]) == 2
    assert "--risks" in capsys.readouterr().err
    assert main(["evaluate", "--cohort", str(d / "outcomes.csv"), "--risks", str(d / "truth.csv"), "--subgroups",
                 "zzz", "--out", str(d / "x")]) == 2
    assert "no column 'zzz'" in capsys.readouterr().err
