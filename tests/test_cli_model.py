"""End to end on CPU: synth → scan → train (tiny) → bundle → embed / load_image_model; tampering is refused."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import riskmodel
from riskmodel import cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    assert cli.main(["synth", "--n", "40", "--out", str(root / "syn"), "--images", "--image-size", "64x52",
                     "--seed", "1", "-q"]) == 0
    assert cli.main(["scan", str(root / "syn" / "exams"), "-o", str(root / "manifest.csv"), "--exams",
                     str(root / "exams.csv"), "-q"]) == 0
    assert cli.main(["train", "--cohort", str(root / "syn" / "cohort.csv"), "--exams", str(root / "exams.csv"),
                     "--out", str(root / "run"), "--tiny", "--image-size", "64x52", "--epochs", "2",
                     "--stage2-epochs", "2", "--batch-size", "4", "--device", "cpu", "--voi", "linear", "-q"]) == 0
    return root


def test_training_writes_a_verified_bundle_and_logs(trained):
    bundle = trained / "run" / "bundle"
    assert {p.name for p in bundle.iterdir()} >= {"weights.safetensors", "config.json", "preprocessing.json",
                                                  "metadata.json", "manifest.json"}
    log = pd.read_csv(trained / "run" / "training" / "metrics.csv")
    assert list(log["epoch"]) == [1, 2]
    assert list(pd.read_csv(trained / "run" / "training_stage2" / "metrics.csv")["epoch"]) == [1, 2]
    model = riskmodel.load_image_model(bundle, device="cpu")
    assert model.preprocessing["image_size"] == [64, 52] and model.n_years == 5
    assert model.preprocessing["voi"] == "linear"
    assert model.metadata["training"]["model"] == {"preset": "tiny", "overrides": {}}  # --tiny = --preset tiny


def test_the_bundle_voi_mode_is_applied_and_checked(trained, tmp_path):
    from riskmodel.bundle import BundleFormatError
    from riskmodel.inference import ImageRiskPredictor, save_image_model

    exams = pd.read_csv(trained / "exams.csv")
    manifest = pd.read_csv(trained / "manifest.csv")
    lut_files = set(manifest.loc[manifest["manufacturer"].fillna("").str.startswith("GE"), "path"])
    has_lut = exams[["L-CC", "L-MLO", "R-CC", "R-MLO"]].isin(lut_files).any(axis=1).to_numpy()
    assert 0 < has_lut.sum() < len(exams)
    linear = riskmodel.load_image_model(trained / "run" / "bundle", device="cpu")
    auto = ImageRiskPredictor(linear.model, {**linear.preprocessing, "voi": "auto"}, device="cpu")
    a, b = linear.predict(exams)["risk_5y"].to_numpy(), auto.predict(exams)["risk_5y"].to_numpy()
    np.testing.assert_allclose(a[~has_lut], b[~has_lut], rtol=1e-5)  # window files: same either way
    assert np.abs(a[has_lut] - b[has_lut]).max() > 0  # LUT files: read linearly only by the bundle's mode
    save_image_model(tmp_path / "bad", linear.model, preprocessing={**linear.preprocessing, "voi": "sigmoid"})
    with pytest.raises(BundleFormatError, match=r"preprocessing\.json: voi must be one of .*'sigmoid'"):
        riskmodel.load_image_model(tmp_path / "bad", device="cpu")
    save_image_model(tmp_path / "bad2", linear.model, preprocessing={**linear.preprocessing, "image_size": [64]})
    with pytest.raises(BundleFormatError, match=r"preprocessing\.json: image_size must be"):
        riskmodel.load_image_model(tmp_path / "bad2", device="cpu")


def test_image_preprocessing_is_what_training_writes_and_rejects_bad_settings(trained):
    from riskmodel.inference import image_preprocessing

    model = riskmodel.load_image_model(trained / "run" / "bundle", device="cpu")
    written = {k: v for k, v in model.preprocessing.items() if k != "preprocessing_version"}
    assert written == image_preprocessing((64, 52), voi="linear")
    assert image_preprocessing([64, 52])["voi"] == "auto"
    with pytest.raises(ValueError, match="voi must be one of"):
        image_preprocessing((64, 52), voi="sigmoid")
    for size in ((64,), (64, 0), (64.5, 52)):
        with pytest.raises(ValueError, match="image_size must be"):
            image_preprocessing(size)


def test_embed_one_row_per_exam(trained, capsys):
    out = trained / "emb.parquet"
    assert cli.main(["embed", "--bundle", str(trained / "run" / "bundle"), "--manifest", str(trained / "exams.csv"),
                     "-o", str(out), "--device", "cpu", "-q"]) == 0
    emb = pd.read_parquet(out)
    exams = pd.read_csv(trained / "exams.csv")
    assert emb["exam_id"].tolist() == exams["exam_id"].tolist()
    risk = emb[[f"risk_{k}y" for k in range(1, 6)]].to_numpy()
    assert (emb["status"] == "ok").all() and (np.diff(risk, axis=1) >= 0).all() and ((0 <= risk) & (risk <= 1)).all()
    assert sum(c.startswith("emb_") for c in emb.columns) == 32
    direct = riskmodel.load_image_model(trained / "run" / "bundle", device="cpu").predict(exams)
    np.testing.assert_allclose(direct["risk_5y"].to_numpy(), emb["risk_5y"].to_numpy(), rtol=1e-5)


def test_an_exam_without_readable_views_is_reported(trained):
    exams = pd.read_csv(trained / "exams.csv").head(3)
    exams.loc[1, ["L-CC", "L-MLO", "R-CC", "R-MLO"]] = np.nan
    out = riskmodel.load_image_model(trained / "run" / "bundle", device="cpu").predict(exams)
    assert out["status"].tolist() == ["ok", "no_views", "ok"] and np.isnan(out.loc[1, "risk_5y"])


def test_tampered_bundle_is_refused(trained, tmp_path, capsys):
    bad = tmp_path / "bundle"
    shutil.copytree(trained / "run" / "bundle", bad)
    config = bad / "config.json"
    config.write_text(config.read_text().replace('"n_years": 5', '"n_years": 4'))
    assert cli.main(["embed", "--bundle", str(bad), "--exams", str(trained / "exams.csv"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and len(err.strip().splitlines()) == 1


def test_embed_carries_the_cohort_key_and_fails_when_no_exam_is_readable(trained, tmp_path, capsys):
    out = tmp_path / "emb.csv"
    assert cli.main(["embed", "--bundle", str(trained / "run" / "bundle"), "--exams", str(trained / "exams.csv"),
                     "-o", str(out), "--device", "cpu", "-q"]) == 0
    emb = pd.read_csv(out, dtype=str)
    cohort = pd.read_csv(trained / "syn" / "cohort.csv", dtype=str)
    joined = cohort.merge(emb, left_on="exam_id", right_on="accession_number", how="inner")
    assert len(joined) == len(emb) == len(cohort)  # every woman joins to her exam through the cohort's exam_id
    broken = pd.read_csv(trained / "exams.csv").head(3)
    broken[["L-CC", "L-MLO", "R-CC", "R-MLO"]] = np.nan
    broken.to_csv(tmp_path / "broken.csv", index=False)
    capsys.readouterr()
    assert cli.main(["embed", "--bundle", str(trained / "run" / "bundle"), "--exams", str(tmp_path / "broken.csv"),
                     "-o", str(tmp_path / "none.csv"), "--device", "cpu", "-q"]) == 1
    assert "none of the 3 exams" in capsys.readouterr().err


def test_relative_view_paths_are_read_from_the_table_folder(trained, tmp_path, monkeypatch):
    """synth writes manifest.csv beside the images with paths relative to it; embed reads it from another folder."""
    manifest = pd.read_csv(trained / "syn" / "exams" / "manifest.csv")
    first = manifest.groupby("exam_id", sort=False).head(4).head(4)
    row = {"exam_id": "e1", "accession_number": first["exam_id"].iloc[0]}
    row.update({f"{r.laterality}-{r.view}": r.path for r in first.itertuples()})
    table = trained / "syn" / "exams" / "relative.csv"
    pd.DataFrame([row]).to_csv(table, index=False)
    assert not Path(row["L-CC"]).is_absolute()
    monkeypatch.chdir(tmp_path)  # neither the table's folder nor the images'
    assert cli.main(["embed", "--bundle", str(trained / "run" / "bundle"), "--exams", str(table), "-o", "out.csv",
                     "--device", "cpu", "-q"]) == 0
    assert pd.read_csv("out.csv")["n_views"].tolist() == [4]


def test_embed_over_three_exams_survives_a_decompression_bomb_view(trained, tmp_path):
    """One exam holds an 8 KB RLE view whose header says 60000 × 60000 (7.2 GB decoded): under a
    3 GB address-space limit every exam gets its row, the bomb costs only its own view."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    import pydicom
    from pydicom.uid import RLELossless

    exams = pd.read_csv(trained / "exams.csv").head(3)
    ds = pydicom.dcmread(exams.loc[1, "R-MLO"])
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    ds.compress(RLELossless)
    ds.Rows = ds.Columns = 60000
    bomb = tmp_path / "bomb.dcm"
    ds.save_as(bomb)
    assert bomb.stat().st_size < 20_000
    exams.loc[1, "R-MLO"] = str(bomb)
    exams.to_csv(tmp_path / "exams.csv", index=False)
    limit = 3 * 2**30
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        from riskmodel import cli
        sys.exit(cli.main(sys.argv[1:]))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, "embed", "--bundle", str(trained / "run" / "bundle"),
                           "--exams", str(tmp_path / "exams.csv"), "-o", str(tmp_path / "emb.csv"), "--device", "cpu",
                           "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    emb = pd.read_csv(tmp_path / "emb.csv")
    assert emb["exam_id"].tolist() == exams["exam_id"].tolist() and (emb["status"] == "ok").all()
    assert emb["n_views"].tolist() == [4, 3, 4] and emb["risk_5y"].notna().all()
    assert "R-MLO: PixelBudgetError" in emb.loc[1, "message"] and "60000 × 60000" in emb.loc[1, "message"]
    json.dumps(emb.loc[1, "message"])  # a plain, one-line string
