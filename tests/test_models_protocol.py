"""The RiskModel protocol: Gail, an image-only bundle and a hybrid through one `predict_risk`; user models; registry."""

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import riskmodel
from riskmodel.bundle import BundleFormatError
from riskmodel.fusion import HybridModel, TorchHazardHead
from riskmodel.imaging import assemble_exams, scan_dicoms
from riskmodel.inference import ImageRiskPredictor, save_image_model
from riskmodel.models import RiskModel, registry
from riskmodel.models.core import score_cohort
from riskmodel.models.registry import MODELS, register, register_folder, resolve
from riskmodel.nn import ImageRiskModel, tiny_config
from riskmodel.synthetic import make_cohort, write_exams

N = 12
RISKS = [f"risk_{k}y" for k in range(1, 6)]
BASE = ["risk", "status", "message", "model", "horizon"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    cohort = make_cohort(N, seed=5)
    cohort.loc[:3, "event"] = 1
    cohort.loc[:3, "time"] = [0.5, 1.5, 2.5, 3.5]
    write_exams(cohort, root / "dicom", image_size=(64, 52), seed=2)
    exams = assemble_exams(scan_dicoms(root / "dicom"))
    torch.manual_seed(0)
    image = ImageRiskPredictor(ImageRiskModel(tiny_config()), {"image_size": [64, 52], "view_order":
                                                              ["L-CC", "L-MLO", "R-CC", "R-MLO"]}, device="cpu")
    save_image_model(root / "bundle", image.model, preprocessing=image.preprocessing)
    HybridModel(image, head=TorchHazardHead(hidden=0, epochs=5, early_stopping=False)).fit(cohort, exams).save(
        root / "hybrid")
    women = cohort.drop(columns=[c for c in cohort.columns if c.startswith("true_")
                                 or c in ("time", "event", "image_factor")])
    return {"root": root, "women": women, "exams": exams}


class ConstantHazard:
    """A user-written model: breast-cancer hazard ``rate`` per year, at most 10 years."""

    name = "constant"
    required_columns = ("age",)
    output_columns = ("rate",)
    max_horizon = 10.0
    inputs = ()

    def __init__(self, rate: float = 0.01, checks_horizon: bool = True):
        self.rate, self.checks_horizon = rate, checks_horizon

    def prepare(self, data, **inputs):
        return {"weight": np.ones(len(data))}  # a per-row array: sliced with each chunk

    def assess(self, cohort, years, *, weight):
        if self.checks_horizon:
            cohort.flag(years > self.max_horizon, "out_of_range", "horizon={h}: at most 10 years", h=years)
        risk = np.where(cohort.ok, -np.expm1(-self.rate * weight * years), np.nan)
        return {"risk": risk, "rate": np.full(len(cohort), self.rate), "detail": weight}


def test_gail_an_image_bundle_and_a_hybrid_are_each_a_risk_model(saved):
    root = saved["root"]
    for model in ("gail", root / "bundle", str(root / "hybrid")):
        assert isinstance(resolve(model, device="cpu"), RiskModel)
    assert resolve(root / "bundle", device="cpu").name == "image"
    assert resolve(root / "hybrid", device="cpu").name == "hybrid"
    assert isinstance(ConstantHazard(), riskmodel.RiskModel)


def test_an_image_bundle_is_scored_by_predict_risk_through_each_womans_exam(saved):
    root, women, exams = saved["root"], saved["women"].copy(), saved["exams"]
    women.index = [f"w{i}" for i in range(N)][::-1]
    out = riskmodel.predict_risk(women, model=root / "bundle", exams=exams, device="cpu")
    assert list(out.columns) == [*BASE, *RISKS] and out.index.equals(women.index)
    assert (out["status"] == "ok").all() and (out["model"] == "image").all()
    # risk_ky are the bundle's own per-exam risks, joined through the cohort's exam_id = the exams' exam_id
    direct = riskmodel.load_image_model(root / "bundle", device="cpu").predict(exams).set_index("exam_id")
    expected = direct.loc[women["exam_id"].astype(str), RISKS].to_numpy()
    np.testing.assert_array_equal(out[RISKS].to_numpy(), expected)
    np.testing.assert_array_equal(out["risk"], out["risk_5y"])


def test_image_only_horizons_missing_exams_and_details(saved):
    root, exams = saved["root"], saved["exams"]
    women = saved["women"].head(6).copy()
    women["exam_id"] = women["exam_id"].astype(object)
    women.loc[4, "exam_id"] = "NOPE"
    women.loc[5, "exam_id"] = None
    women["h"] = [3, 2.5, 7, "lifetime", 5, 5]
    out = riskmodel.predict_risk(women, model=str(root / "bundle"), exams=exams, horizon="h", details=True,
                                 device="cpu")
    assert out["status"].tolist() == ["ok", "ok", "out_of_range", "out_of_range", "no_exam", "no_exam"]
    assert "at most 5 years" in out.loc[2, "message"]
    assert out.loc[4, "message"] == "exam_id='NOPE': no exam with that exam_id in the exams table"
    assert "exam_id: missing" in out.loc[5, "message"]
    assert out["risk"].iloc[2:].isna().all() and out[RISKS].iloc[2:].isna().all().all()
    assert out.loc[0, "risk"] == out.loc[0, "risk_3y"]
    assert out.loc[1, "risk_2y"] < out.loc[1, "risk"] < out.loc[1, "risk_3y"]
    # only rows that can be scored are matched to an exam (and only their exams are read)
    assert out["exam_used"].tolist() == [*exams["exam_id"].head(2), "", "", "", ""]
    assert out["n_views"].tolist() == [4, 4, 0, 0, 0, 0]
    # an encoding made once is reused, with the same risks
    predictor = resolve(root / "bundle", device="cpu")
    again = riskmodel.predict_risk(women, model=predictor, exams=predictor.encode_exams(exams), horizon="h")
    pd.testing.assert_series_equal(again["risk"], out["risk"])
    with pytest.raises(ValueError, match="no factors-only fallback"):
        riskmodel.predict_risk(women, model=predictor, exams=exams, fallback="factors")
    with pytest.raises(ValueError, match="pass exams="):
        riskmodel.predict_risk(women, model=predictor)


def test_the_hybrid_through_predict_risk_equals_its_own_predict(saved):
    root, women, exams = saved["root"], saved["women"], saved["exams"]
    hybrid = resolve(root / "hybrid", device="cpu")
    out = riskmodel.predict_risk(women, model=hybrid, exams=exams, horizon=2.5, details=True)
    pd.testing.assert_frame_equal(out, hybrid.predict(women, exams, horizon=2.5))
    assert "fitted on" in repr(hybrid) and "HybridModel" in repr(hybrid)


def test_a_user_written_model_is_scored_by_the_core(saved):
    women = saved["women"]
    out = riskmodel.predict_risk(women, model=ConstantHazard(0.02), horizon=[5.0] * (N - 1) + [12.0], chunk_size=5)
    assert list(out.columns) == [*BASE, "rate"] and (out["model"] == "constant").all()
    np.testing.assert_allclose(out["risk"].iloc[:-1], -np.expm1(-0.1))
    assert out["status"].iloc[-1] == "out_of_range" and np.isnan(out["risk"].iloc[-1])
    detailed = riskmodel.predict_risk(women, model=ConstantHazard(0.02), details=True)
    assert list(detailed.columns) == [*BASE, "rate", "detail"]
    # a model that does not check its max_horizon: the core flags what it left ok
    lax = score_cohort(ConstantHazard(checks_horizon=False), women.head(2), 12.0, weight=np.ones(2))
    assert lax["status"].tolist() == ["out_of_range"] * 2 and lax["risk"].isna().all()
    assert "the constant model projects at most 10 years" in lax.loc[0, "message"]


def test_objects_that_are_not_risk_models_are_refused_by_name(saved):
    class NoAssess:
        name = "half"
        required_columns = ("age",)
        output_columns = ()
        max_horizon = None
        inputs = ()

        def prepare(self, data, **inputs):
            return {}

    with pytest.raises(TypeError, match=r"NoAssess object is not a riskmodel\.RiskModel: it lacks assess"):
        riskmodel.predict_risk(saved["women"], model=NoAssess())
    with pytest.raises(TypeError, match="lacks name, required_columns, output_columns, max_horizon, inputs, prepare, "
                                        "assess"):
        riskmodel.predict_risk(saved["women"], model=object())

    class BadArrays(ConstantHazard):
        def assess(self, cohort, years, *, weight):
            return {"risk": np.zeros(len(cohort) + 1), "rate": np.zeros(len(cohort))}

    with pytest.raises(ValueError, match=r"assess\(\) returned 'risk' with shape"):
        riskmodel.predict_risk(saved["women"], model=BadArrays())


def test_a_model_written_for_the_score_contract_still_works(saved):
    class Legacy:
        name = "legacy"
        required_columns = ("age",)

        def score(self, cohort, horizon):
            return SimpleNamespace(risk=np.where(cohort.ok, 0.01 * horizon, np.nan))

    out = riskmodel.predict_risk(saved["women"], model=Legacy(), horizon=2)
    np.testing.assert_allclose(out["risk"], 0.02)
    assert isinstance(resolve(Legacy()), RiskModel)


def test_register_and_resolve_names_and_folders(saved, monkeypatch, tmp_path):
    monkeypatch.setitem(MODELS, "constant", "")
    monkeypatch.setitem(registry._FACTORIES, "constant", None)
    register("constant", lambda: ConstantHazard(0.03), "a constant hazard of 3% a year")
    assert riskmodel.MODELS["constant"] == "a constant hazard of 3% a year"
    out = riskmodel.predict_risk(saved["women"], model="constant", horizon=1)
    np.testing.assert_allclose(out["risk"], -np.expm1(-0.03))
    with pytest.raises(ValueError, match="unknown model 'nope'; available: gail, hybrid, constant"):
        resolve("nope")
    with pytest.raises(ValueError, match="trained hybrid model"):
        resolve("hybrid")
    # folders are recognised by their manifest's format; anything else is refused, naming the known kinds
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "manifest.json").write_text(json.dumps({"format": "mirai-pickle"}))
    with pytest.raises(BundleFormatError, match=r"'mirai-pickle' is not a kind of saved model.*riskmodel-bundle.*"
                                                r"riskmodel-hybrid"):
        riskmodel.predict_risk(saved["women"], model=tmp_path / "other", exams=saved["exams"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleFormatError, match=r"manifest\.json: missing; a saved model folder has a manifest"):
        resolve(str(tmp_path / "empty"))
    with pytest.raises(BundleFormatError, match="does not exist"):
        resolve(tmp_path / "nowhere")
    monkeypatch.setitem(registry.FOLDER_KINDS, "mirai-pickle", None)
    register_folder("mirai-pickle", lambda path, device="auto": ConstantHazard(0.05), "a test kind")
    assert resolve(tmp_path / "other").rate == 0.05


def test_the_api_and_fusion_distributed_models_do_not_import_each_other():
    """predict_risk sits above the models: nothing below it imports riskmodel.api (regression: HybridModel.predict
    imported api.predict_risk, api imported fusion's private _check_fallback, dask_engine imported api._load_model)."""
    package = Path(riskmodel.__file__).parent
    below = [package / "fusion" / "hybrid.py", package / "inference.py", *sorted((package / "models").glob("*.py")),
             *sorted((package / "distributed").glob("*.py")), package / "gail" / "model.py"]
    for path in [*below, package / "api.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("riskmodel"):
                names = [a.name for a in node.names]
                assert node.module != "riskmodel", f"{path.name} imports the package root"
                assert path.name == "api.py" or node.module != "riskmodel.api", f"{path.name} imports riskmodel.api"
                if path.name in ("api.py", "core.py", "registry.py", "dask_engine.py", "parts.py"):
                    assert not [n for n in names if n.startswith("_")], f"{path.name} imports private {names}"


def test_gail_average_risk_is_computed_only_with_details(monkeypatch):
    import riskmodel.gail.model as gail_model
    from riskmodel.models.base import LazyColumns

    calls = []
    real = gail_model.absolute_risk

    def counting(*args, **kwargs):
        calls.append(kwargs.get("avg_white", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(gail_model, "absolute_risk", counting)
    df = pd.DataFrame({"age": [45.0, 60.0, 15.0], "race": [1, 2, 1], "n_biopsies": [1, 0, 0],
                       "first_degree_relatives": [1, 0, 0]})
    plain = riskmodel.predict_risk(df)
    assert calls == [False] and "average_risk" not in plain
    calls.clear()
    detailed = riskmodel.predict_risk(df, details=True)
    assert calls == [False, True]
    np.testing.assert_array_equal(detailed["risk"], plain["risk"])
    assert detailed["average_risk"].notna().tolist() == [True, True, False]  # the out-of-range row is not scored
    assert 0 < detailed["average_risk"].iloc[0] < detailed["risk"].iloc[0]  # a biopsy and a relative raise her risk
    with pytest.raises(KeyError):
        LazyColumns({"risk": np.zeros(1)})["nothing"]
