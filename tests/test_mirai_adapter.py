"""Mirai behind the model protocol (riskmodel.mirai.adapter) and its risk factors (riskmodel.mirai.risk_factors).

A small seeded MiraiModel (tests/test_mirai_model.py's config, every weight perturbed) is saved as the bundle
``import_mirai`` writes (same files, config kind "mirai", Mirai's calibration), and scored on tiny synthetic
exams. Expected values come from MiraiModel.forward on the same preprocessed views (the whole network in one
call), never from the adapter's own path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from imaging_fixtures import write_exam
from test_mirai_model import make_model, small_config

import riskmodel
from riskmodel.bundle import save_bundle
from riskmodel.imaging import assemble_exams, scan_dicoms
from riskmodel.mirai.calibrator import MiraiCalibration, YearParameters
from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES
from riskmodel.mirai.risk_factors import RISK_FACTOR_KEYS, encode_risk_factors

SIZE = (64, 52)  # small (height, width) so tests run fast; Mirai reads 2048 x 1664


def calibration() -> MiraiCalibration:
    """Per-year parameters near Mirai's released ones (slopes negative: calibrated risk rises with raw)."""
    return MiraiCalibration(tuple(YearParameters(1.0 + 0.1 * k, -0.5, -4.0 + 0.3 * k, 3.0 - 0.2 * k)
                                  for k in range(5)))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    model = make_model(seed=3)
    config = {**small_config(), "calibration": calibration().to_dict(), "sources": {}}
    out = tmp_path_factory.mktemp("mirai") / "bundle"
    preprocessing = {"kind": "mirai", "img_size": [SIZE[1], SIZE[0]]}  # Mirai's (width, height)
    return save_bundle(out, model.state_dict(), config=config, preprocessing=preprocessing,
                       metadata={"imported_from": "test"})


@pytest.fixture(scope="module")
def exams(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("dicoms")
    write_exam(root, patient_id="P1", study_uid="1.2.3.1001", accession="A1")
    write_exam(root, patient_id="P2", study_uid="1.2.3.1002", accession="A2", views=("L-CC", "L-MLO", "R-CC"))
    return assemble_exams(scan_dicoms(root))


def load(bundle: Path, **kw):
    from riskmodel.mirai import load_mirai_bundle

    return load_mirai_bundle(bundle, device="cpu", **kw)


def expected(model, exam: pd.Series, factors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(raw, calibrated) year 1..5 from MiraiModel.forward on the exam's views, in one call."""
    from riskmodel.imaging.mirai_preprocess import preprocess_view

    slots = ("L-CC", "L-MLO", "R-CC", "R-MLO")
    present = [isinstance(exam[s], str) and exam[s] != "" for s in slots]
    x = np.zeros((4, 3, *SIZE), np.float32)
    for i, s in enumerate(slots):
        if present[i]:
            x[i] = preprocess_view(exam[s], preset="dcmtk", size=SIZE).tensor
    rf = None if factors is None else torch.from_numpy(factors[None].astype(np.float32))
    with torch.no_grad():
        out = model(torch.from_numpy(x)[None], torch.tensor([present]), view_seq=torch.tensor([[0, 1, 0, 1]]),
                    side_seq=torch.tensor([[1, 1, 0, 0]]), risk_factors=rf)
    raw = out.probabilities.double().numpy()
    return raw[0], calibration().predict(raw)[0]


def cohort() -> pd.DataFrame:
    return pd.DataFrame({"age": [52.7, 61.0], "race": [3, np.nan], "density": ["c", np.nan], "brca": ["BRCA1", None],
                         "age_at_menarche": [13, np.nan], "atypical_hyperplasia": [0, np.nan],
                         "prs": [1.2, np.nan], "exam_id": ["A1", "A2"]})


# ---------------------------------------------------------------------------- risk factors


def test_risk_factor_vector_by_hand():
    cols = {"age": np.array([52.7, 30.0]), "race": np.array([3.0, 4.0]), "density": np.array([3.0, np.nan]),
            "brca": np.array([1.0, 0.0]), "age_at_menarche": np.array([13.0, 35.0]),
            "age_at_first_birth": np.array([28.0, np.nan]), "nulliparous": np.array([0.0, 1.0]),
            "atypical_hyperplasia": np.array([1.0, 0.0]), "first_degree_relatives": np.array([2.0, 0.0]),
            "prs": np.array([0.5, np.nan])}
    rf = encode_risk_factors(cols, 2)
    assert len(RISK_FACTOR_KEYS) == 34 and rf.vectors.shape == (2, 100)

    def block(row: int, key: str) -> list[float]:
        start = sum(RISK_FACTOR_NUM_CLASSES[k] for k in RISK_FACTOR_KEYS[:RISK_FACTOR_KEYS.index(key)])
        return rf.vectors[row, start:start + RISK_FACTOR_NUM_CLASSES[key]].tolist()

    assert block(0, "age") == [0, 0, 1, 0, 0, 0]  # 52 in (50, 60]
    assert block(1, "age") == [1, 0, 0, 0, 0, 0]
    assert block(0, "race") == [0] * 7 + [1] + [0] * 5  # BCRAT 3 (Hispanic, US-born) -> Mirai 8 Hispanic
    assert block(1, "race") == [0] * 13  # BCRAT 4 has no single Mirai code
    assert block(0, "density") == [0, 0, 1, 0] and block(1, "density") == [0] * 4
    assert block(0, "brca") == [0, 0, 1, 0] and block(1, "brca") == [0, 1, 0, 0]  # BRCA1; negative
    assert block(0, "menarche_age") == [0, 0, 1, 0, 0]  # 13 in (12, 14]
    assert block(1, "menarche_age") == [0] * 5  # after the exam age: Mirai reads it as not yet happened
    assert block(0, "first_pregnancy_age") == [0, 0, 1, 0, 0, 0] and block(0, "parous") == [1]
    assert block(1, "parous") == [0]
    assert block(0, "binary_biopsy_atypical_hyperplasia") == [1] and block(0, "binary_family_history") == [1]
    assert block(1, "weight") == [0] * 7  # no canonical column: always predicted
    assert rf.supplied.sum(axis=1).tolist() == [9, 2]
    assert rf.supplied_names()[1] == "age,brca"
    assert "prs" in rf.notes[0] and "not used by Mirai" in rf.notes[0]
    assert "atypical_hyperplasia" in rf.notes[1] and "nulliparous" in rf.notes[1] and "race=4" in rf.notes[1]


def test_risk_factor_names_split_the_34_keys():
    rf = encode_risk_factors({"age": np.array([45.0]), "density": np.array([2.0])}, 1)
    supplied, predicted = rf.supplied_names()[0].split(","), rf.predicted_names()[0].split(",")
    assert supplied == ["density", "age"]
    assert sorted(supplied + predicted) == sorted(RISK_FACTOR_KEYS)


# ---------------------------------------------------------------------------- the model


def test_predict_risk_uses_supplied_factors_and_masks_missing_views(bundle, exams):
    out = riskmodel.predict_risk(cohort(), model=load(bundle), exams=exams, horizon=5)
    mirai = load(bundle)
    assert list(out["status"]) == ["ok", "ok"]
    assert list(out["views_used"]) == ["L-CC,L-MLO,R-CC,R-MLO", "L-CC,L-MLO,R-CC"]
    assert out.loc[1, "factors_supplied"] == "age"
    assert "density" in out.loc[0, "factors_supplied"].split(",") and "weight" in out.loc[0, "factors_predicted"]
    assert "prs" in out.loc[0, "message"] and "R-MLO" in out.loc[1, "message"]
    cols = {c: riskmodel.schema.validate(cohort()).column(c) for c in cohort().columns if c != "exam_id"}
    factors = encode_risk_factors(cols, 2)
    by_exam = exams.set_index("accession_number")
    for row, acc in enumerate(["A1", "A2"]):
        cal = expected(mirai.model, by_exam.loc[acc], factors.vectors[row])[1]
        got = out.loc[row, [f"risk_{k}y" for k in range(1, 6)]].to_numpy(float)
        np.testing.assert_allclose(got, cal, rtol=0, atol=1e-6)
        assert out.loc[row, "risk"] == pytest.approx(cal[4])
    image_only = expected(mirai.model, by_exam.loc["A1"], None)[1]
    assert np.abs(out.loc[0, [f"risk_{k}y" for k in range(1, 6)]].to_numpy(float) - image_only).max() > 1e-6


def test_image_only_rows_equal_mirais_released_inference(bundle, exams):
    women = pd.DataFrame({"exam_id": ["A1"]})
    out = riskmodel.predict_risk(women, model=load(bundle), exams=exams, horizon=3)
    off = riskmodel.predict_risk(cohort().iloc[:1], model=load(bundle, use_risk_factors=False), exams=exams)
    raw, cal = expected(load(bundle).model, exams.set_index("accession_number").loc["A1"], None)
    np.testing.assert_allclose(out.loc[0, ["risk_1y", "risk_2y", "risk_3y"]].to_numpy(float), cal[:3], atol=1e-6)
    np.testing.assert_allclose(off.loc[0, ["risk_1y", "risk_5y"]].to_numpy(float), cal[[0, 4]], atol=1e-6)
    assert off.loc[0, "factors_supplied"] == "" and len(out.loc[0, "factors_predicted"].split(",")) == 34
    enc = load(bundle).encode(exams)
    row = list(exams["accession_number"]).index("A1")
    np.testing.assert_allclose(enc.raw_risk[row], raw, atol=1e-6)
    assert enc.embedding.shape == (2, 32) and np.isfinite(enc.density_proba).all()


def test_monotone_option_is_off_by_default(bundle, exams):
    mirai, mono = load(bundle), load(bundle, monotone=True)
    raw = np.array([[0.9, 0.1, 0.1, 0.1, 0.1]])
    assert np.all(np.diff(mono.calibrate(raw), axis=1) >= 0)
    np.testing.assert_allclose(mirai.calibrate(raw), calibration().predict(raw))
    assert np.any(np.diff(mirai.calibrate(raw), axis=1) < 0)  # Mirai calibrates each year on its own


def test_unknown_preset_is_refused_and_pydicom_preset_is_used(bundle, exams):
    with pytest.raises(ValueError, match="preset='dicom': Mirai's preprocessing presets are"):
        load(bundle, preset="dicom")
    enc = load(bundle, preset="pydicom").encode(exams)
    assert list(enc.n_views) == [4, 3] and np.isfinite(enc.risk).all()


def test_registry_loads_a_mirai_bundle_by_folder(bundle, exams):
    from riskmodel.mirai.adapter import MiraiRiskModel

    model = riskmodel.models.registry.resolve(str(bundle), device="cpu")
    assert isinstance(model, MiraiRiskModel) and model.name == "mirai" and model.max_horizon == 5
    assert model.inputs == ("exams",)
    assert {"views_used", "factors_supplied", "factors_predicted", "risk_5y"} <= set(model.output_columns)


def test_tampered_mirai_bundle_is_refused(bundle, tmp_path):
    import shutil

    from riskmodel.bundle import BundleError

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / "config.json").write_text((copy / "config.json").read_text().replace('"mirai"', '"mirai" '))
    with pytest.raises(BundleError):
        load(copy)


# ---------------------------------------------------------------------------- every front door


def test_cli_predict_and_embed_score_a_mirai_bundle(bundle, exams, tmp_path, capsys):
    from riskmodel import cli

    exams.to_csv(tmp_path / "exams.csv", index=False)
    cohort().to_csv(tmp_path / "women.csv", index=False)
    assert cli.main(["predict", str(tmp_path / "women.csv"), "--bundle", str(bundle), "--exams",
                     str(tmp_path / "exams.csv"), "-o", str(tmp_path / "risk.csv"), "--device", "cpu"]) == 0
    assert "mirai model" in capsys.readouterr().err
    out = pd.read_csv(tmp_path / "risk.csv", keep_default_na=False)
    direct = riskmodel.predict_risk(cohort(), model=load(bundle), exams=exams)
    np.testing.assert_allclose(out["risk"].astype(float), direct["risk"], atol=1e-9)
    assert list(out["views_used"]) == list(direct["views_used"])
    assert list(out["factors_supplied"]) == list(direct["factors_supplied"])
    assert cli.main(["embed", "--bundle", str(bundle), "--exams", str(tmp_path / "exams.csv"), "-o",
                     str(tmp_path / "emb.csv"), "--device", "cpu", "-q"]) == 0
    emb = pd.read_csv(tmp_path / "emb.csv")
    enc = load(bundle).encode(exams)
    np.testing.assert_allclose(emb[[f"emb_{i:03d}" for i in range(32)]].to_numpy(), enc.embedding, atol=1e-5)
    np.testing.assert_allclose(emb["risk_5y"], enc.risk[:, 4], atol=1e-9)


def test_predict_file_without_the_key_column_names_it(bundle, exams, tmp_path):
    from riskmodel.distributed.files import predict_file

    cohort().drop(columns="exam_id").to_csv(tmp_path / "women.csv", index=False)
    with pytest.raises(ValueError, match="no column 'exam_id'; the mirai model finds each woman's exam"):
        predict_file(str(tmp_path / "women.csv"), str(tmp_path / "o.csv"), model=str(bundle), exams=exams)


@pytest.mark.slow  # fits a fusion head and reloads it (about 40 s on a loaded 2-core machine)
def test_hybrid_model_on_mirai_fits_saves_and_recalibrates(bundle, tmp_path):
    from riskmodel.fusion import HybridModel, TorchHazardHead, load_hybrid
    from riskmodel.synthetic import make_cohort, write_exams

    women = make_cohort(10, seed=5)
    women.loc[[1, 4, 7], ["event", "time"]] = [[1, 1.5], [1, 2.5], [1, 0.8]]
    write_exams(women, tmp_path / "dicom", image_size=(64, 52), seed=2)
    exams = assemble_exams(scan_dicoms(tmp_path / "dicom"))
    mirai = load(bundle)
    encoded = mirai.encode_exams(exams)  # Mirai runs once per model object; the hybrid reuses its encoding
    hybrid = HybridModel(mirai, head=TorchHazardHead(hidden=0, epochs=5, early_stopping=False),
                         factors=["age", "density", "brca", "prs"])  # what Mirai itself lacks: PRS, BRCA
    hybrid.fit(women, encoded)
    assert hybrid.embedding_dim == 32
    before = hybrid.predict(women, encoded)
    assert (before["status"] == "ok").all()
    hybrid.save(tmp_path / "hybrid")
    again = load_hybrid(tmp_path / "hybrid", device="cpu")
    assert type(again.image_model).__name__ == "MiraiRiskModel"
    encoded = again.image_model.encode_exams(exams)
    pd.testing.assert_frame_equal(again.predict(women, encoded), before)
    site = pd.DataFrame({"age_lo": [20.0, 50.0, 65.0], "age_hi": [50.0, 65.0, 95.0], "rate_per_100k": [80, 250, 400]})
    again.recalibrate(women, encoded, site)
    after = again.predict(women, encoded)
    assert after["risk_5y"].mean() < before["risk_5y"].mean()  # enriched labels: recalibration lowers the baseline


def test_saved_options_come_back_and_a_configless_model_is_not_saved(bundle, exams, tmp_path):
    from riskmodel.mirai.adapter import MiraiRiskModel

    mirai = load(bundle, preset="pydicom", monotone=True, use_risk_factors=False)
    again = load(mirai.save(tmp_path / "copy"))
    assert (again.preset, again.monotone, again.use_risk_factors, again.image_size) == ("pydicom", True, False, SIZE)
    with pytest.raises(ValueError, match="no Mirai bundle config"):
        MiraiRiskModel(mirai.model, device="cpu").save(tmp_path / "bare")
