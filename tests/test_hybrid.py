"""The hybrid model end to end on tiny data: DICOMs → image embedding + factors → fusion head → absolute risk.

The image model is an untrained tiny network (seeded): its embeddings are fixed random features of the
pixels, which is all the plumbing tests need. Labels are enriched with cancers so the heads have events.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import riskmodel
from riskmodel import cli
from riskmodel.bundle import BundleFormatError, BundleIntegrityError
from riskmodel.fusion import (
    CoxHead,
    FactorEncoder,
    HybridModel,
    IncidenceRecalibrator,
    TorchHazardHead,
    XGBoostHead,
    absolute_risk,
    load_hybrid,
)
from riskmodel.imaging import assemble_exams, scan_dicoms
from riskmodel.inference import ImageRiskPredictor, save_image_model
from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.synthetic import make_cohort, write_exams

N = 30
VIEWS = ["L-CC", "L-MLO", "R-CC", "R-MLO"]
RISKS = [f"risk_{k}y" for k in range(1, 6)]


def small_head() -> TorchHazardHead:
    return TorchHazardHead(hidden=0, epochs=15, early_stopping=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    cohort = make_cohort(N, seed=3)
    rng = np.random.default_rng(0)
    cases = rng.choice(N, 8, replace=False)
    cohort.loc[cases, "event"] = 1
    cohort.loc[cases, "time"] = rng.uniform(0.5, 4.5, cases.size)
    write_exams(cohort, root / "dicom", image_size=(64, 52), seed=1)
    exams = assemble_exams(scan_dicoms(root / "dicom"))
    torch.manual_seed(0)
    image = ImageRiskPredictor(ImageRiskModel(tiny_config()), {"image_size": [64, 52], "view_order": VIEWS},
                               device="cpu")
    save_image_model(root / "image_bundle", image.model, preprocessing=image.preprocessing)
    model = HybridModel(image, head=small_head()).fit(cohort, exams)
    model.save(root / "hybrid")
    cohort.to_csv(root / "cohort.csv", index=False)
    exams.to_csv(root / "exams.csv", index=False)
    return {"root": root, "cohort": cohort, "exams": exams, "image": image, "model": model}


def canonical(cohort: pd.DataFrame) -> pd.DataFrame:
    """What a user scores: the canonical columns (no outcome, no truth)."""
    drop = [c for c in cohort.columns if c.startswith("true_") or c in ("time", "event", "image_factor")]
    return cohort.drop(columns=drop)


def test_fit_predict_one_row_per_input_row_index_kept(data):
    women = canonical(data["cohort"]).sample(frac=1.0, random_state=2)
    women.index = [f"w{i}" for i in range(len(women))][::-1]
    out = data["model"].predict(women, data["exams"])
    assert out.index.equals(women.index)
    assert list(out.columns[:10]) == ["risk", "status", "message", "model", "horizon", *RISKS]
    assert (out["status"] == "ok").all() and (out["message"] == "").all() and (out["model"] == "hybrid").all()
    risk = out[RISKS].to_numpy()
    assert ((risk > 0) & (risk < 1)).all() and (np.diff(risk, axis=1) > 0).all()
    np.testing.assert_array_equal(out["risk"], out["risk_5y"])
    assert (out["n_views"] == 4).all() and not out["fallback"].any()
    s = data["model"].fit_summary_
    assert s["n_used"] == N and s["n_events"] >= 8
    assert len(s["feature_names"]) == 32 + data["model"].encoder_.n_features_out_


def test_risk_at_horizon_interpolates_and_matches_absolute_risk(data):
    women = canonical(data["cohort"]).head(6).copy()
    women["h"] = [1.0, 2.0, 2.5, 3.7, 5.0, 0.4]
    out = data["model"].predict(women, data["exams"], horizon="h")
    yearly = out[RISKS].to_numpy()
    np.testing.assert_allclose(out["risk"].iloc[[0, 1, 4]], yearly[[0, 1, 4], [0, 1, 4]], rtol=1e-12)
    assert out["risk_2y"].iloc[2] < out["risk"].iloc[2] < out["risk_3y"].iloc[2]
    assert out["risk_3y"].iloc[3] < out["risk"].iloc[3] < out["risk_4y"].iloc[3]
    assert 0 < out["risk"].iloc[5] < out["risk_1y"].iloc[5]
    # risk_5y is Gail-mortality absolute risk of the head's cumulative hazard
    m = data["model"]
    enc = m.image_model.encode(data["exams"].head(6))
    x = np.hstack([enc.embedding.astype(np.float64), m.encoder_.transform(women)])
    cum = m.head_.predict_cumulative_hazard(x, (1, 2, 3, 4, 5))
    np.testing.assert_allclose(out["risk_5y"], absolute_risk(cum, women["age"], women["race"])[:, 4], rtol=1e-6)


def test_rows_the_model_cannot_score_keep_a_status(data):
    women = canonical(data["cohort"]).head(5).copy()
    women["age"] = women["age"].astype(object)
    women.loc[0, "age"] = np.nan  # schema: missing
    women.loc[1, "density"] = "z"  # schema: invalid
    women.loc[2, "age"] = 88.0  # beyond age + 5 = 90
    women["prior_breast_cancer"] = [False, False, False, False, True]
    women.loc[5] = women.loc[4].copy()
    women.loc[5, "prior_breast_cancer"] = False
    out = data["model"].predict(women, data["exams"], horizon=[5, 5, 5, 7, 5, 5])
    assert out["status"].tolist() == ["missing", "invalid", "out_of_range", "out_of_range", "not_applicable", "ok"]
    assert "horizon=7" in out.loc[3, "message"] and "ages 20 to 85" in out.loc[2, "message"]
    assert out["risk"].iloc[:5].isna().all() and out[RISKS].iloc[:5].isna().all().all()


def test_woman_without_exam_no_exam_or_factors_fallback(data):
    women = canonical(data["cohort"]).head(4).copy()
    women["exam_id"] = women["exam_id"].astype(object)
    women.loc[1, "exam_id"] = "NOPE"
    women.loc[2, "exam_id"] = None
    out = data["model"].predict(women, data["exams"])
    assert out["status"].tolist() == ["ok", "no_exam", "no_exam", "ok"]
    assert "'NOPE': no exam" in out.loc[1, "message"] and "exam_id: missing" in out.loc[2, "message"]
    assert out.loc[[1, 2], "risk"].isna().all()
    fb = data["model"].predict(women, data["exams"], fallback="factors")
    assert (fb["status"] == "ok").all() and fb["fallback"].tolist() == [False, True, True, False]
    assert fb.loc[[1, 2], "message"].str.contains("factors-only fallback").all()
    np.testing.assert_array_equal(fb.loc[[0, 3], "risk"], out.loc[[0, 3], "risk"])
    m = data["model"]
    cum = m.fallback_head_.predict_cumulative_hazard(m.encoder_.transform(women.loc[[1, 2]]), (1, 2, 3, 4, 5))
    np.testing.assert_allclose(fb.loc[[1, 2], "risk_5y"],
                               absolute_risk(cum, women.loc[[1, 2], "age"], women.loc[[1, 2], "race"])[:, 4])
    with pytest.raises(ValueError, match="fallback="):
        m.predict(women, data["exams"], fallback="gail")


def test_corrupt_dicom_affects_only_that_woman(data, tmp_path):
    women = canonical(data["cohort"]).head(5)
    exams = data["exams"].head(5).copy()
    clean = data["model"].predict(women, exams)
    for i, slots in ((1, VIEWS), (3, ["R-CC"])):
        for slot in slots:
            bad = tmp_path / f"{i}_{slot}.dcm"
            raw = open(exams.loc[i, slot], "rb").read()
            bad.write_bytes(raw[: len(raw) // 3])  # truncated
            exams.loc[i, slot] = str(bad)
    out = data["model"].predict(women, exams)
    assert out["status"].tolist() == ["ok", "no_exam", "ok", "ok", "ok"]
    assert "no readable view" in out.loc[1, "message"] and "TruncatedDicomError" in out.loc[1, "message"]
    assert "3 of 4 views" in out.loc[3, "message"] and "R-CC" in out.loc[3, "message"]
    assert out.loc[3, "n_views"] == 3 and out.loc[3, "risk"] != clean.loc[3, "risk"]
    keep = [0, 2, 4]
    np.testing.assert_allclose(out.loc[keep, RISKS], clean.loc[keep, RISKS], rtol=1e-6)
    assert (out.loc[keep, "message"] == "").all()


def test_missing_density_uses_the_image_models_probabilities(data):
    women = canonical(data["cohort"]).head(4).copy()
    women.loc[[0, 2], "density"] = None
    out = data["model"].predict(women, data["exams"])
    assert out["imputed"].str.contains("density_from_image").tolist() == [True, False, True, False]
    m = data["model"]
    enc = m.image_model.encode(data["exams"].head(4))
    assert np.allclose(enc.density_proba.sum(axis=1), 1.0)
    x_img = m.encoder_.transform(women, density_proba=enc.density_proba)
    x_marg = m.encoder_.transform(women)
    cols = [m.encoder_.feature_names_.index(c) for c in ("density_a", "density_c", "density_d")]
    np.testing.assert_allclose(x_img[[0, 2]][:, cols], enc.density_proba[[0, 2]][:, [0, 2, 3]], rtol=1e-6)
    assert not np.allclose(x_img[[0, 2]][:, cols], x_marg[[0, 2]][:, cols])
    cum = m.head_.predict_cumulative_hazard(np.hstack([enc.embedding.astype(np.float64), x_img]), (1, 2, 3, 4, 5))
    np.testing.assert_allclose(out["risk_5y"], absolute_risk(cum, women["age"], women["race"])[:, 4], rtol=1e-6)
    # a woman without exam and without density: marginal imputation in the fallback
    women.loc[0, "exam_id"] = "NOPE"
    fb = m.predict(women, data["exams"], fallback="factors")
    assert "density_marginal" in fb.loc[0, "imputed"] and "density_from_image" not in fb.loc[0, "imputed"]


def test_save_load_round_trip_gives_identical_predictions(data):
    loaded = load_hybrid(data["root"] / "hybrid", device="cpu")
    women = canonical(data["cohort"])
    women.loc[3, "density"] = None
    a = data["model"].predict(women, data["exams"], horizon=3.5, fallback="factors")
    b = loaded.predict(women, data["exams"], horizon=3.5, fallback="factors")
    pd.testing.assert_frame_equal(a, b)
    assert {p.name for p in (data["root"] / "hybrid").iterdir()} == {"image", "fusion.json", "manifest.json"}
    state = json.loads((data["root"] / "hybrid" / "fusion.json").read_text())
    assert state["factor_encoder"]["format"] == "riskmodel.fusion.FactorEncoder"
    assert state["head"]["format"] == "riskmodel.fusion.TorchHazardHead" and state["recalibrator"] is None
    assert loaded.fit_summary_ == data["model"].fit_summary_ and len(loaded.digest_) == 64
    with pytest.raises(FileExistsError, match="overwrite"):
        data["model"].save(data["root"] / "hybrid")


def test_tampered_or_extended_folders_are_refused(data, tmp_path):
    good = data["root"] / "hybrid"
    bad = tmp_path / "fusion"
    shutil.copytree(good, bad)
    fusion = bad / "fusion.json"
    fusion.write_text(fusion.read_text().replace('"mortality": "gail"', '"mortality": "none"'))
    with pytest.raises(BundleIntegrityError, match=r"fusion\.json: does not match manifest\.json"):
        load_hybrid(bad)
    extra = tmp_path / "extra"
    shutil.copytree(good, extra)
    (extra / "head.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(BundleIntegrityError, match="unexpected file"):
        load_hybrid(extra)
    swapped = tmp_path / "swapped"
    shutil.copytree(good, swapped)
    shutil.rmtree(swapped / "image")
    # A different (valid) image bundle: same weights, other metadata, so other bytes and digest.
    riskmodel.load_image_model(data["root"] / "image_bundle", device="cpu").save(
        swapped / "image", metadata={"note": "another bundle"})
    with pytest.raises(BundleIntegrityError, match="not the image bundle"):
        load_hybrid(swapped)
    weights = tmp_path / "weights"
    shutil.copytree(good, weights)
    (weights / "image" / "config.json").write_text("{}")
    with pytest.raises(BundleIntegrityError, match=r"config\.json"):
        load_hybrid(weights)
    with pytest.raises(BundleFormatError, match="image bundle"):
        load_hybrid(data["root"] / "image_bundle")


def test_predict_risk_with_a_path_a_fitted_model_and_a_dicom_folder(data):
    women = canonical(data["cohort"]).head(5)
    by_path = riskmodel.predict_risk(women, model=str(data["root"] / "hybrid"), exams=data["exams"], device="cpu")
    fitted = riskmodel.predict_risk(women, model=data["model"], exams=data["exams"])
    folder = riskmodel.predict_risk(women, model=data["root"] / "hybrid", exams=data["root"] / "dicom", device="cpu")
    assert list(fitted.columns) == ["risk", "status", "message", "model", "horizon", *RISKS]
    pd.testing.assert_frame_equal(by_path, fitted)
    pd.testing.assert_frame_equal(folder, fitted)
    with pytest.raises(ValueError, match=r"trained hybrid model.*no pretrained weights"):
        riskmodel.predict_risk(women, model="hybrid", exams=data["exams"])
    with pytest.raises(ValueError, match="pass exams="):
        riskmodel.predict_risk(women, model=data["model"])
    with pytest.raises(ValueError, match="does not use them"):
        riskmodel.predict_risk(women, model="gail", exams=data["exams"])
    with pytest.raises(ValueError, match="no column 'exam_id'"):
        riskmodel.predict_risk(women.drop(columns="exam_id"), model=data["model"], exams=data["exams"])


def test_cli_predict_with_bundle_and_exams(data, tmp_path, capsys):
    root = data["root"]
    women = tmp_path / "women.csv"
    canonical(data["cohort"]).head(6).to_csv(women, index=False)
    out = tmp_path / "risk.csv"
    assert cli.main(["predict", str(women), "--bundle", str(root / "hybrid"), "--exams", str(root / "exams.csv"),
                     "--device", "cpu", "-o", str(out), "--horizon", "3", "-q"]) == 0
    got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert got.columns.tolist() == ["id", "risk", "status", "message", "model", "horizon", *RISKS]
    assert (got["status"] == "ok").all() and (got["horizon"] == 3).all()
    direct = data["model"].predict(canonical(data["cohort"]).head(6), data["exams"], horizon=3)
    np.testing.assert_allclose(got["risk"], direct["risk"], rtol=1e-9)
    dicom = tmp_path / "risk2.csv"
    assert cli.main(["predict", str(women), "--model", "hybrid", "--bundle", str(root / "hybrid"), "--exams",
                     str(root / "dicom"), "--device", "cpu", "-o", str(dicom), "--details", "--keep-input", "-q"]) == 0
    kept = pd.read_csv(dicom)
    assert kept["exam_id"].tolist() == canonical(data["cohort"]).head(6)["exam_id"].tolist()  # the input's key
    assert kept["exam_used"].tolist() == data["exams"]["exam_id"].head(6).tolist()
    np.testing.assert_allclose(kept["risk_5y"], got["risk_5y"], rtol=1e-9)
    capsys.readouterr()
    for argv, text in (
        (["--bundle", str(root / "hybrid")], "give --exams"),
        (["--model", "hybrid", "--exams", str(root / "exams.csv")], "needs --bundle"),
        (["--exams", str(root / "exams.csv")], "only used with a hybrid model"),
        (["--bundle", str(root / "hybrid"), "--exams", str(tmp_path / "nope.csv")], "no such exams table"),
        (["--bundle", str(tmp_path), "--exams", str(root / "exams.csv")], "manifest.json"),
    ):
        assert cli.main(["predict", str(women), *argv, "-q"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("riskmodel: error:") and text in err, err


def test_cli_fit_hybrid_then_predict(data, tmp_path, capsys):
    root = data["root"]
    out = tmp_path / "model"
    assert cli.main(["fit-hybrid", "--cohort", str(root / "cohort.csv"), "--exams", str(root / "exams.csv"),
                     "--image-bundle", str(root / "image_bundle"), "--out", str(out), "--head", "cox",
                     "--device", "cpu"]) == 0
    assert "fitted a CoxHead fusion head on 30 of 30 women" in capsys.readouterr().err
    model = load_hybrid(out, device="cpu")
    assert isinstance(model.head_, CoxHead) and model.metadata["image_bundle"] == str(root / "image_bundle")
    res = model.predict(canonical(data["cohort"]).head(3), data["exams"])
    assert (res["status"] == "ok").all()
    assert cli.main(["fit-hybrid", "--cohort", str(root / "cohort.csv"), "--exams", str(root / "exams.csv"),
                     "--image-bundle", str(root / "image_bundle"), "--out", str(out), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    lit = tmp_path / "literature"
    assert cli.main(["fit-hybrid", "--cohort", str(root / "cohort.csv"), "--exams", str(root / "exams.csv"),
                     "--image-bundle", str(root / "image_bundle"), "--out", str(lit), "--head", "cox",
                     "--image-features", "risk", "--factors", "literature, brca", "--device", "cpu", "-q"]) == 0
    assert load_hybrid(lit, device="cpu").encoder_.feature_names_ == ["age_z", "brca1", "brca2", "brca_missing",
                                                                       "literature_log_rr"]
    assert cli.main(["fit-hybrid", "--cohort", str(root / "cohort.csv"), "--exams", str(root / "exams.csv"),
                     "--image-bundle", str(root / "image_bundle"), "--out", str(tmp_path / "x"),
                     "--factors", "literature,bmi", "-q"]) == 2
    assert "unknown group(s) ['bmi']" in capsys.readouterr().err


@pytest.mark.parametrize("head", [CoxHead(n_components=4), XGBoostHead(n_estimators=20, n_jobs=1)])
def test_other_heads_fit_predict_save_load(data, tmp_path, head):
    model = HybridModel(data["image"], head=head).fit(data["cohort"], data["exams"])
    women = canonical(data["cohort"]).head(4)
    out = model.predict(women, data["exams"], fallback="factors")
    assert (out["status"] == "ok").all() and (np.diff(out[RISKS].to_numpy(), axis=1) >= 0).all()
    assert type(model.fallback_head_) is type(head)
    model.save(tmp_path / "m")
    pd.testing.assert_frame_equal(load_hybrid(tmp_path / "m", device="cpu").predict(women, data["exams"]),
                                  model.predict(women, data["exams"]))
    if isinstance(head, CoxHead):
        assert model.head_.embedding_idx_.tolist() == list(range(32)) and model.fallback_head_.embedding_idx_.size == 0


def test_site_recalibration_round_trips(data, tmp_path):
    model = load_hybrid(data["root"] / "hybrid", device="cpu")
    women = canonical(data["cohort"])
    cache = {"cache_dir": tmp_path / "cache"}  # preprocessed views are read once
    before = model.predict(women, data["exams"], **cache)
    site = pd.DataFrame({"age_lo": [20.0, 50.0, 65.0], "age_hi": [50.0, 65.0, 95.0], "rate_per_100k": [80, 250, 400]})
    model.recalibrate(women, data["exams"], site, **cache)
    after = model.predict(women, data["exams"], **cache)
    assert isinstance(model.recalibrator_, IncidenceRecalibrator)
    assert after["risk_5y"].mean() < before["risk_5y"].mean()  # enriched training labels → too high a baseline
    model.save(tmp_path / "m")
    reloaded = load_hybrid(tmp_path / "m", device="cpu")
    pd.testing.assert_frame_equal(reloaded.predict(women, data["exams"], **cache), after)
    narrow = load_hybrid(data["root"] / "hybrid", device="cpu")
    narrow.recalibrate(women, data["exams"], site.iloc[1:], **cache)  # bands start at 50
    got = narrow.predict(women, data["exams"], **cache)
    young = women["age"] < 50
    assert (got.loc[young, "status"] == "out_of_range").all() and (got.loc[~young, "status"] == "ok").all()


def test_factor_encoder_json_round_trip():
    train = make_cohort(200, seed=5)
    enc = FactorEncoder().fit(train)
    text = json.dumps(enc.to_dict(), allow_nan=False)
    back = FactorEncoder.from_dict(json.loads(text))
    test = make_cohort(20, seed=6)
    test.loc[:5, ["density", "brca", "prs", "first_degree_relatives"]] = None
    np.testing.assert_array_equal(back.transform(test), enc.transform(test))
    assert back.feature_names_ == enc.feature_names_ and back.get_params() == enc.get_params()
    broken = enc.to_dict()
    broken["feature_names"] = broken["feature_names"][:-1]
    with pytest.raises(ValueError, match="feature_names"):
        FactorEncoder.from_dict(broken)
    with pytest.raises(ValueError, match="not a FactorEncoder state"):
        FactorEncoder.from_dict({"format": "x"})


@pytest.mark.parametrize("features, width", [("risk", 1), ("embedding+risk", 33)])
def test_image_features_risk_and_both(data, tmp_path, features, width):
    model = HybridModel(data["image"], head=small_head(), image_features=features).fit(data["cohort"], data["exams"])
    assert model.image_dim == width and model.head_.n_features_in_ == width + model.encoder_.n_features_out_
    assert ("image_log_cumhaz_5y" in model.fit_summary_["feature_names"]) and (
        ("emb_000" in model.fit_summary_["feature_names"]) == (features != "risk"))
    women = canonical(data["cohort"]).head(5)
    out = model.predict(women, data["exams"])
    assert (out["status"] == "ok").all() and (np.diff(out[RISKS].to_numpy(), axis=1) >= 0).all()
    # The feature is the network's own, uncalibrated score: a calibrator on the image model must not change it.
    class Flat:
        def predict(self, risk):
            return np.full_like(risk, 0.5)

    image = data["image"]
    calibrated = ImageRiskPredictor(image.model, image.preprocessing, Flat(), device="cpu")
    enc, enc_cal = image.encode(data["exams"].head(3)), calibrated.encode(data["exams"].head(3))
    assert (enc_cal.risk == 0.5).all() and np.array_equal(enc_cal.raw_risk, enc.raw_risk)
    r5 = np.clip(enc.raw_risk[:, -1], 1e-7, 1 - 1e-7)
    assert np.allclose(model._image_block(enc_cal, np.arange(3))[:, -1], np.log(-np.log1p(-r5)))
    model.save(tmp_path / "m")
    loaded = load_hybrid(tmp_path / "m", device="cpu")
    assert loaded.image_features == features
    pd.testing.assert_frame_equal(loaded.predict(women, data["exams"]), out)
    with pytest.raises(ValueError, match="image_features"):
        HybridModel(data["image"], image_features="pixels")


def test_encoded_exams_give_the_same_fit_and_predictions_without_rerunning(data, monkeypatch):
    image = data["image"]
    encoded = image.encode_exams(data["exams"])
    np.testing.assert_array_equal(image.risk_frame(encoded.encoding)[RISKS].to_numpy(),
                                  image.predict(data["exams"])[RISKS].to_numpy())
    women = canonical(data["cohort"])
    expected = data["model"].predict(women, data["exams"])
    calls = []
    monkeypatch.setattr(image, "encode", lambda *a, **k: calls.append(1))
    got = data["model"].predict(women, encoded)
    pd.testing.assert_frame_equal(got, expected)
    torch.manual_seed(0)
    refit = HybridModel(image, head=small_head()).fit(data["cohort"], encoded)
    np.testing.assert_allclose(refit.predict(women, encoded)[RISKS].to_numpy(), expected[RISKS].to_numpy(),
                               rtol=1e-6)
    assert calls == []  # the network never ran again
    # The encoding must come from this model's own predictor and match the table row for row.
    other = ImageRiskPredictor(image.model, image.preprocessing, device="cpu")
    with pytest.raises(ValueError, match="another image model"):
        data["model"].predict(women, riskmodel.inference.EncodedExams(encoded.exams, encoded.encoding, other))
    with pytest.raises(ValueError, match="row for row"):
        riskmodel.inference.EncodedExams(encoded.exams.iloc[::-1], encoded.encoding, image)


def test_encodings_of_chunks_concatenate_to_the_whole(data):
    image = data["image"]
    whole = image.encode(data["exams"])
    n = len(whole)
    parts = [image.encode(data["exams"].iloc[:2]), image.encode(data["exams"].iloc[2:])]
    joined = riskmodel.inference.ExamEncoding.concat(parts)
    for field in ("exam_id", "n_views", "status", "message"):
        np.testing.assert_array_equal(getattr(joined, field), getattr(whole, field))
    for field in ("risk", "raw_risk", "embedding", "density_proba"):
        np.testing.assert_allclose(getattr(joined, field), getattr(whole, field), rtol=1e-5, atol=1e-6)
    assert joined.index.equals(whole.index)
    relabelled = riskmodel.inference.ExamEncoding.concat(parts, index=pd.RangeIndex(10, 10 + n))
    assert list(relabelled.index) == list(range(10, 10 + n))
    with pytest.raises(ValueError, match="no encodings"):
        riskmodel.inference.ExamEncoding.concat([])
    with pytest.raises(ValueError, match=f"index has 1 entries for {n} exams"):
        riskmodel.inference.ExamEncoding.concat(parts, index=pd.Index([0]))
    narrow = riskmodel.inference.ExamEncoding(**{**parts[1].__dict__, "embedding": parts[1].embedding[:, :3]})
    with pytest.raises(ValueError, match="embedding have different widths"):
        riskmodel.inference.ExamEncoding.concat([parts[0], narrow])


def test_cli_exam_keys_with_leading_zeros_match(data, tmp_path):
    """A cohort's exam_id 0000001 is text, as the exams table's accession number: the exam is found."""
    women = canonical(data["cohort"]).head(4)
    women["exam_id"] = women["exam_id"].str.replace("EX", "", regex=False)  # "0000001" …
    exams = data["exams"].copy()
    exams["exam_id"] = exams["accession_number"] = exams["accession_number"].str.replace("EX", "", regex=False)
    women.to_csv(tmp_path / "women.csv", index=False)
    exams.to_csv(tmp_path / "exams.csv", index=False)
    out = tmp_path / "risk.csv"
    assert cli.main(["predict", str(tmp_path / "women.csv"), "--bundle", str(data["root"] / "hybrid"), "--exams",
                     str(tmp_path / "exams.csv"), "--device", "cpu", "-o", str(out), "--keep-input", "-q"]) == 0
    got = pd.read_csv(out, dtype={"exam_id": str})
    assert got["exam_id"].tolist() == women["exam_id"].tolist()
    assert (got["status"] == "ok").all(), got["message"].tolist()


def test_cli_predict_fails_when_no_woman_has_a_usable_exam(data, tmp_path, capsys):
    women = canonical(data["cohort"]).head(3).assign(exam_id="no-such-exam")
    women.to_csv(tmp_path / "women.csv", index=False)
    assert cli.main(["predict", str(tmp_path / "women.csv"), "--bundle", str(data["root"] / "hybrid"), "--exams",
                     str(data["root"] / "exams.csv"), "--device", "cpu", "-o", str(tmp_path / "o.csv"), "-q"]) == 1
    assert "no woman of" in capsys.readouterr().err
    assert (pd.read_csv(tmp_path / "o.csv")["status"] == "no_exam").all()  # the per-row reasons are written


def _tampered_fusion(data, tmp_path, edit, source=None):
    """A copy of a saved hybrid model whose fusion.json was edited and its manifest re-hashed (so only
    the load checks can catch the edit)."""
    import hashlib

    folder = tmp_path / "tampered"
    shutil.copytree(source or data["root"] / "hybrid", folder)
    state = json.loads((folder / "fusion.json").read_text())
    edit(state)
    raw = json.dumps(state).encode()
    (folder / "fusion.json").write_bytes(raw)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["fusion.json"] = {"sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_rehashed_head_of_the_wrong_shape_is_a_clear_error(data, tmp_path, capsys):
    def shrink(state):
        sd = state["head"]["state_dict"]
        key = next(iter(sd))
        sd[key] = sd[key][:-1]

    folder = _tampered_fusion(data, tmp_path, shrink)
    with pytest.raises(BundleFormatError, match=r"fusion\.json: head: cannot rebuild .*TorchHazardHead state_dict: "
                                                r"tensor '.*' has shape \[\d+.*\], expected"):
        load_hybrid(folder, device="cpu")
    women = tmp_path / "women.csv"
    canonical(data["cohort"]).head(2).to_csv(women, index=False)
    code = cli.main(["predict", str(women), "--bundle", str(folder), "--exams", str(data["root"] / "exams.csv"),
                     "--device", "cpu", "-o", str(tmp_path / "out.csv"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "fusion.json: head" in err and "Traceback" not in err


def test_symlinks_and_oversized_files_in_a_saved_hybrid_are_refused(data, tmp_path):
    linked = tmp_path / "linked"
    shutil.copytree(data["root"] / "hybrid", linked)
    shutil.move(linked / "manifest.json", tmp_path / "manifest.json")
    (linked / "manifest.json").symlink_to(tmp_path / "manifest.json")
    with pytest.raises(BundleFormatError, match=r"manifest\.json: is a symbolic link"):
        load_hybrid(linked)
    inner = tmp_path / "inner"
    shutil.copytree(data["root"] / "hybrid", inner)
    shutil.move(inner / "image" / "config.json", tmp_path / "config.json")
    (inner / "image" / "config.json").symlink_to(tmp_path / "config.json")
    with pytest.raises(BundleIntegrityError, match=r"config\.json: is a symbolic link"):
        load_hybrid(inner)
    big = tmp_path / "big"
    shutil.copytree(data["root"] / "hybrid", big)
    with open(big / "fusion.json", "r+b") as f:
        f.truncate(int(1.5e9))  # sparse
    with pytest.raises(BundleIntegrityError, match=r"fusion\.json: does not match manifest\.json: expected \d+ bytes, "
                                                   r"the file has 1500000000 bytes \(not read\)"):
        load_hybrid(big)


@pytest.fixture(scope="module")
def cox_saved(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cox") / "m"
    HybridModel(data["image"], head=CoxHead(n_components=4)).fit(data["cohort"], data["exams"]).save(folder)
    return folder


@pytest.mark.parametrize("field, edit, message", [
    ("head", lambda h: h["coef"].__setitem__(0, 1e300), r"CoxHead: 'coef' holds 1e\+300, beyond ±709\.78"),
    ("head", lambda h: h["baseline_cumhaz"].__setitem__(0, -0.5), "'baseline_cumhaz' must be >= 0 and non-decreasing"),
    ("fallback_head", lambda h: h.__setitem__("baseline_times", h["baseline_times"][::-1]),
     "'baseline_times' must be .* strictly increasing"),
    ("head", lambda h: h.__setitem__("coef", h["coef"][:-1]), r"'coef' has shape \[\d+\], expected"),
])
def test_rehashed_cox_head_with_absurd_numbers_is_refused(data, tmp_path, cox_saved, field, edit, message):
    folder = _tampered_fusion(data, tmp_path, lambda s: edit(s[field]), source=cox_saved)
    with pytest.raises(BundleFormatError, match=rf"fusion\.json: {field}: cannot rebuild .*{message}"):
        load_hybrid(folder, device="cpu")
