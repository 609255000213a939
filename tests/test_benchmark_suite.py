"""The benchmark suite end to end on a micro configuration (the real `quick` run is a benchmark, not a test)."""

import dataclasses
import json

import pytest

from riskmodel.benchmarking import SUITES, SuiteConfig, run_suite
from riskmodel.cli import main


@pytest.mark.slow
def test_micro_suite_writes_a_full_report(tmp_path):
    conf = SuiteConfig(name="micro", pool=5000, test=1000, image_train_cases=30, val_cases=10, fusion_train=2000,
                       image_size=(64, 52), epochs=1, n_boot=5, jobs=2, speed=False, image_hr=2.0)
    results = run_suite(conf, tmp_path / "report", workdir=tmp_path / "work", progress=False)
    models = results["models"]
    assert set(models) == {"gail", "factors_cox", "image_only", "hybrid", "oracle"}
    assert results["reference"] == "gail"
    # Gail does not score carriers; the others score every test woman.
    carriers = results["provenance"]["data"]["test_carriers"]
    assert models["gail"]["n"] + models["gail"]["n_not_scored"] == 1000
    assert models["oracle"]["n"] == 1000 and models["hybrid"]["n"] == 1000
    assert models["gail"]["n_not_scored"] >= carriers
    # The oracle is the ceiling on this synthetic population.
    assert models["oracle"]["c_index"] > models["gail"]["c_index"]
    # The unselected fusion sample keeps the population's incidence, so the factors model is not far off.
    assert 0.4 < models["factors_cox"]["eo"] < 2.5
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Synthetic test bed, not clinical performance" in text and "## Subgroups" in text
    # The report states the effect size it ran at: in its title, its generator line and its command.
    assert "micro suite, image factor HR 2 per SD" in text.splitlines()[0]
    assert "latent image factor HR 2.0 per SD" in text and "--image-hr 2 --train-cancers 30" in text
    assert results["provenance"]["config"]["image_hr"] == 2.0
    assert json.loads((tmp_path / "report" / "results.json").read_text())["provenance"]["suite"] == "micro"
    for png in ("calibration.png", "auc.png", "risk_distributions.png", "subgroups.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000


def test_suites_and_cli_errors(capsys):
    assert set(SUITES) == {"quick", "full"}
    assert SUITES["full"].image_size[0] > SUITES["quick"].image_size[0]
    assert main(["benchmark", "--suite", "huge"]) == 2
    assert "choose one of ['full', 'quick']" in capsys.readouterr().err


def test_cli_image_hr_and_train_cancers_reach_the_suite(monkeypatch, tmp_path):
    import riskmodel.benchmarking as benchmarking

    seen = {}

    def fake_run_suite(conf, out, **kwargs):
        seen["conf"], seen["kwargs"] = conf, kwargs
        return {}

    monkeypatch.setattr(benchmarking, "run_suite", fake_run_suite)
    assert main(["benchmark", "--image-hr", "1.5", "--train-cancers", "150", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    conf = seen["conf"]
    assert conf.image_hr == 1.5 and conf.image_train_cases == 150
    # Everything else is the quick suite's.
    assert conf == dataclasses.replace(SUITES["quick"], image_hr=1.5, image_train_cases=150)
    assert main(["benchmark", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert seen["conf"] == SUITES["quick"]


@pytest.mark.parametrize(("args", "message"), [
    (["--image-hr", "0"], "--image-hr 0.0: must be a finite hazard ratio > 0 (per SD)"),
    (["--image-hr", "nan"], "--image-hr nan: must be a finite hazard ratio > 0"),
    (["--image-hr", "-2"], "--image-hr -2.0: must be a finite"),
    (["--train-cancers", "0"], "--train-cancers 0: must be at least 1"),
])
def test_cli_rejects_bad_image_hr_and_train_cancers(args, message, capsys):
    assert main(["benchmark", *args]) == 2
    assert message in capsys.readouterr().err
