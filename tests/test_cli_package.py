"""The CLI is a thin shell: its workflows are library functions a Python user calls with the same result.

* ``riskmodel.distributed.files.predict_file`` writes what ``riskmodel predict`` writes and returns its counts;
* ``riskmodel.training.recipe.train_image_model`` trains the bundle ``riskmodel train`` trains, bit for bit;
* ``riskmodel.tables`` reads and writes the tables of every front door;
* the command starts without torch, dask or lifelines.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel import cli
from riskmodel.cli import options
from riskmodel.distributed.files import FileRun, predict_file
from riskmodel.synthetic import make_cohort
from riskmodel.tables import ParameterError, check_output, read_table, table_format, write_table

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "example_cohort.csv"


def test_import_and_help_load_no_torch_dask_or_lifelines():
    code = ("import sys, riskmodel.cli as c, contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    c.main(['--help'])\n"
            "for name in ('predict', 'train', 'embed', 'fit-hybrid', 'evaluate', 'benchmark'):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        c.main([name, '--help'])\n"
            "print(sorted(m for m in ('torch', 'dask', 'distributed', 'lifelines', 'xgboost', 'matplotlib') "
            "if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_predict_on_a_file_loads_no_torch_dask_or_lifelines(tmp_path):
    # Issue 25: a file job's start-up pays only for what Gail needs.
    code = ("import sys, riskmodel.cli as c\n"
            f"code = c.main(['predict', '-q', {str(EXAMPLE)!r}, '-o', {str(tmp_path / 'o.csv')!r}])\n"
            "print(code, sorted(m for m in ('torch', 'dask', 'distributed', 'lifelines', 'xgboost', 'matplotlib', "
            "'sksurv') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("[]"), run.stdout
    assert (tmp_path / "o.csv").stat().st_size > 0


def test_library_modules_never_import_the_cli():
    offenders = []
    for path in (ROOT / "riskmodel").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "riskmodel").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # imports inside functions included
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[:2] == ["riskmodel", "cli"]]
    assert offenders == []


def test_predict_file_writes_what_the_command_writes_and_returns_its_counts(tmp_path, capsys):
    src = tmp_path / "cohort.csv"
    data = pd.read_csv(EXAMPLE)
    data.loc[3, "age"] = 130  # a rule broken: one row gets a status, the others are scored
    data.to_csv(src, index=False)
    run = predict_file(str(src), str(tmp_path / "lib.csv"), horizon="lifetime", chunk_rows=7, keep_input=True)
    assert isinstance(run, FileRun) and run.n_rows == len(data)
    direct = __import__("riskmodel").predict_risk(data, horizon="lifetime")
    assert run.counts == direct["status"].value_counts(sort=False).to_dict() and run.counts["invalid"] >= 1
    assert run.match is not None and "age" in run.match.used and any("130" in m for m in run.reasons)
    assert cli.main(["predict", str(src), "-o", str(tmp_path / "cli.csv"), "--horizon", "lifetime",
                     "--keep-input"]) == 0
    assert (tmp_path / "lib.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    err = capsys.readouterr().err
    assert f"scored {len(data)} rows with gail (ok {run.counts['ok']}, " in err
    got = pd.read_csv(tmp_path / "lib.csv")
    np.testing.assert_allclose(got["risk"].to_numpy(), direct["risk"].to_numpy(), rtol=1e-13)  # CSV's digits
    assert got["status"].tolist() == direct["status"].tolist()


def test_predict_file_bcra_layout_and_parameter_errors(tmp_path):
    ref = Path(__file__).parent / "data" / "bcra_example.csv"
    run = predict_file(str(ref), str(tmp_path / "b.csv"), layout="bcra")
    assert run.model == "gail (BCRA layout)" and run.n_rows == len(pd.read_csv(ref))
    assert list(pd.read_csv(tmp_path / "b.csv").columns[:2]) == ["ID", "risk"]
    with pytest.raises(ParameterError, match=r"^horizon='nope': not a number, 'lifetime' or a column") as info:
        predict_file(str(EXAMPLE), str(tmp_path / "x.csv"), horizon="nope")
    assert (info.value.parameter, info.value.value) == ("horizon", "nope")
    assert options.flag_message(info.value) == "--horizon nope: not a number, 'lifetime' or a column of the input"
    with pytest.raises(ParameterError, match=r"^output=.*: is the input"):
        predict_file(str(EXAMPLE), str(EXAMPLE))
    with pytest.raises(ParameterError, match=r"^chunk_rows=0: must be at least 1"):
        predict_file(str(EXAMPLE), str(tmp_path / "x.csv"), chunk_rows=0)
    assert not (tmp_path / "x.csv").exists()


def test_tables_read_identifiers_as_text_and_refuse_unusable_paths(tmp_path):
    src = tmp_path / "t.tsv"
    src.write_text("exam_id\tage\n007\t50\nNA\t\n")
    frame = read_table(str(src))
    assert frame["exam_id"].tolist() == ["007", "NA"] and frame["age"].isna().tolist() == [False, True]
    write_table(frame, str(tmp_path / "out" / "t.parquet"))
    assert read_table(str(tmp_path / "out" / "t.parquet"))["exam_id"].tolist() == ["007", "NA"]
    assert table_format("x.TSV.gz") == "tsv"
    with pytest.raises(ValueError, match=r"x\.xlsx: unknown file type"):
        table_format("x.xlsx")
    with pytest.raises(ValueError, match="no such file"):
        read_table(str(tmp_path / "missing.csv"))
    with pytest.raises(ParameterError, match="is a folder") as info:
        check_output(str(tmp_path), str(src))
    assert options.flag_message(info.value).startswith(f"-o {tmp_path}: is a folder")


def test_python_m_riskmodel_cli_runs_the_command(tmp_path):
    run = subprocess.run([sys.executable, "-m", "riskmodel.cli", "predict", str(EXAMPLE), "-q"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.startswith("id,risk,status,message,model,horizon")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Twelve synthetic women with four 64x52 DICOM views each, scanned into an exams table."""
    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.synthetic import write_exams

    root = tmp_path_factory.mktemp("recipe")
    cohort = make_cohort(12, seed=3)
    cohort.to_csv(root / "cohort.csv", index=False)
    write_exams(cohort, root / "exams", image_size=(64, 52), seed=3)
    assemble_exams(scan_dicoms(root / "exams")).to_csv(root / "exams.csv", index=False)
    return root


def test_train_image_model_is_the_train_command(labelled, tmp_path):
    from safetensors.numpy import load_file

    from riskmodel.imaging import resolve_view_paths
    from riskmodel.inference import load_image_model
    from riskmodel.training.recipe import train_image_model

    args = ["--tiny", "--image-size", "64x52", "--epochs", "1", "--stage2-epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--val-fraction", "0.25", "--calib-fraction", "0.25", "--seed", "2", "-q"]
    assert cli.main(["train", "--cohort", str(labelled / "cohort.csv"), "--exams", str(labelled / "exams.csv"),
                     "--out", str(tmp_path / "cli"), *args]) == 0
    exams = resolve_view_paths(read_table(str(labelled / "exams.csv")), str(labelled / "exams.csv"))
    run = train_image_model(read_table(str(labelled / "cohort.csv"), text=("exam_id",)), exams, tmp_path / "lib",
                            preset="tiny", image_size=(64, 52), epochs=1, stage2_epochs=1, batch_size=4,
                            device="cpu", val_fraction=0.25, calib_fraction=0.25, seed=2, progress=False,
                            sources={"cohort": str(labelled / "cohort.csv"), "exams": str(labelled / "exams.csv")})
    assert run.bundle == tmp_path / "lib" / "bundle" and sum(run.sizes.values()) == 12
    assert (tmp_path / "lib" / "training_stage2" / "metrics.csv").is_file()
    cli_weights = load_file(tmp_path / "cli" / "bundle" / "weights.safetensors")
    lib_weights = load_file(run.bundle / "weights.safetensors")
    assert cli_weights.keys() == lib_weights.keys()
    for name, value in cli_weights.items():
        np.testing.assert_array_equal(value, lib_weights[name], err_msg=name)
    meta = [json.loads((p / "bundle" / "metadata.json").read_text()) for p in (tmp_path / "cli", tmp_path / "lib")]
    for m in meta:
        m.pop("created_utc")
    assert meta[0] == meta[1]
    loaded = load_image_model(run.bundle, device="cpu").metadata
    assert loaded["training"]["model"] == {"preset": "tiny", "overrides": {}}
    assert loaded["calibration"] == run.calibration and loaded["training"]["n_calib"] == run.sizes["calib"]


def test_train_image_model_names_a_missing_column():
    from riskmodel.training.recipe import train_image_model

    with pytest.raises(ParameterError, match=r"^cohort: missing column\(s\) \['event'\]") as info:
        train_image_model(pd.DataFrame({"exam_id": ["a"], "time": [1.0]}), pd.DataFrame({"accession_number": ["a"]}),
                          "unused")
    assert options.flag_message(info.value) == "--cohort: missing column(s) ['event']"


def test_train_aux_weight_reaches_the_loss_and_the_bundle(labelled, tmp_path):
    """``--aux-weight`` (``train_image_model(aux_weight=...)``) weights the density/age losses: 0 and 2 train
    different networks from the same seed, and the bundle records the weight."""
    from safetensors.numpy import load_file

    from riskmodel.inference import load_image_model

    args = ["--cohort", str(labelled / "cohort.csv"), "--exams", str(labelled / "exams.csv"), "--tiny",
            "--image-size", "64x52", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--val-fraction", "0",
            "--calibration", "none", "--seed", "2", "-q"]
    weights = {}
    for w in ("0", "2"):
        assert cli.main(["train", *args, "--out", str(tmp_path / w), "--aux-weight", w]) == 0
        bundle = tmp_path / w / "bundle"
        assert load_image_model(bundle, device="cpu").metadata["training"]["config"]["aux_weight"] == float(w)
        weights[w] = load_file(bundle / "weights.safetensors")
    assert any(not np.array_equal(weights["0"][k], weights["2"][k]) for k in weights["0"])


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_train_rejects_a_bad_aux_weight(value, capsys):
    assert cli.main(["train", "--cohort", "c.csv", "--exams", "e.csv", "--out", "o", "--aux-weight", value]) == 2
    assert f"--aux-weight {float(value)}: must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("select", ["best", "last"])
def test_train_select_picks_the_weights_the_bundle_keeps(labelled, tmp_path, select):
    """``--select best`` bundles the best validation epoch's weights (``training/best.safetensors``),
    ``--select last`` the last epoch's (``training/checkpoint``); the bundle records the choice."""
    from safetensors.numpy import load_file

    from riskmodel.inference import load_image_model

    assert cli.main(["train", "--cohort", str(labelled / "cohort.csv"), "--exams", str(labelled / "exams.csv"),
                     "--tiny", "--image-size", "64x52", "--epochs", "2", "--batch-size", "4",
                     "--device", "cpu", "--val-fraction", "0.25", "--calib-fraction", "0", "--calibration", "none",
                     "--patience", "0", "--seed", "2", "--select", select, "--out", str(tmp_path), "-q"]) == 0
    training = load_image_model(tmp_path / "bundle", device="cpu").metadata["training"]
    assert training["config"]["select"] == select  # TrainConfig got it (tests/test_training.py: what it does)
    kept = load_file(tmp_path / "bundle" / "weights.safetensors")
    path = {"best": tmp_path / "training" / "best.safetensors",
            "last": tmp_path / "training" / "checkpoint" / "model.safetensors"}[select]
    assert all(np.array_equal(kept[k], v) for k, v in load_file(path).items())


def test_train_command_defaults_are_train_image_models():
    """``riskmodel train`` and ``train_image_model`` share one recipe: the sample-efficiency grid's (16 epochs,
    cosine schedule, augmentation, no early stopping, the last epoch kept)."""
    import argparse
    import inspect

    from riskmodel.cli import train as train_cli
    from riskmodel.training.recipe import train_image_model

    sub = argparse.ArgumentParser().add_subparsers()
    args = train_cli.add_parser(sub).parse_args(["--cohort", "c.csv", "--exams", "e.csv", "--out", "o"])
    defaults = {k: p.default for k, p in inspect.signature(train_image_model).parameters.items()}
    for name in ("epochs", "patience", "augment", "schedule", "select", "lr", "batch_size", "aux_weight"):
        assert getattr(args, name) == defaults[name], name
    assert (defaults["epochs"], defaults["select"], defaults["patience"]) == (16, "last", 0)
    assert train_cli.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args(
        ["--cohort", "c", "--exams", "e", "--out", "o", "--no-augment"]).augment is False


def test_train_refuses_an_exam_on_two_rows(tmp_path):
    from riskmodel.tables import ParameterError
    from riskmodel.training.recipe import train_image_model

    cohort = pd.DataFrame({"exam_id": ["a", "b"], "time": [1.0, 2.0], "event": [0, 1]})
    exams = pd.DataFrame({"exam_id": ["a", "b", "a"], "accession_number": ["a", "b", "a"]})
    with pytest.raises(ParameterError, match=r"exam_id 'a' is on 2 rows \(rows \[0, 2\]"):
        train_image_model(cohort, exams, tmp_path / "run")
    assert not (tmp_path / "run").exists()
