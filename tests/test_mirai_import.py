"""Importing Mirai's released snapshots without running them (riskmodel.mirai, issue 19 item 1).

The fixtures are made at test time in Mirai's format: stub ``nn.Module`` classes registered under onconet's real
module paths (``onconet.models.custom_resnet.CustomResnet`` …) are saved whole with ``torch.save`` — in both the
zip format and the legacy format that torch < 1.6 wrote (Mirai's 2019/2020 snapshots) — and the calibrator as a
pickled ``{year index: MiraiCalibrator}`` dict, under the release's file names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import types
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from riskmodel.bundle import load_bundle
from riskmodel.mirai import ForbiddenGlobalError, MiraiCalibration, SnapshotFormatError, import_mirai
from riskmodel.mirai.importer import CALIBRATOR_FILE, ENCODER_FILE, TRANSFORMER_FILE, bundle_calibration
from riskmodel.mirai.unpickle import read_pickle, read_torch_file

# Mirai's own calibrator regression table (reginabarzilaygroup/Mirai,
# tests/test_data/Mirai_pred_rf_callibrator_mar12_2022_values.csv): raw p → calibrated years 1..5, as the released
# calibrator computes them. Rows 0.0 and 1.0 fix each year's map; the others check it.
MIRAI_TABLE = {
    0.0: [0.0009656829748302858, 0.002195863426448437, 0.004252875683294407, 0.005943782234353749,
          0.00835403326704449],
    0.1: [0.0016235936779426588, 0.0035154170784687097, 0.006507441506215397, 0.009034652959320794,
          0.012295098262924867],
    0.37: [0.006581475316628801, 0.012457104732864668, 0.020358019054376397, 0.027688616073861323,
           0.034489581087773565],
    0.5: [0.01286106171737225, 0.02276615920385831, 0.03496525612021615, 0.046964153384153356, 0.0560182296954256],
    1.0: [0.14937591697734848, 0.19782882382519795, 0.2351024568765523, 0.2888270239873966, 0.294788903538591],
}

# ---------------------------------------------------------------------------------------
# Stub onconet classes (module paths as in onconet/models of Mirai)

ONCONET = ("onconet", "onconet.models", "onconet.models.custom_resnet", "onconet.models.resnet_base",
           "onconet.models.hiddens_transfomer", "onconet.models.cumulative_probability_layer",
           "onconet.models.pools", "onconet.models.pools.risk_factor_pool", "onconet.models.pools.max_pool",
           "onconet.models.blocks", "onconet.models.blocks.basic_block", "onconet.models.calibrator")


def _register(cls: type, module: str) -> type:
    cls.__module__ = module
    cls.__qualname__ = cls.__name__
    setattr(sys.modules[module], cls.__name__, cls)
    return cls


class Cumulative_Probability_Layer(nn.Module):
    def __init__(self, d: int, args: argparse.Namespace):
        super().__init__()
        self.args = args
        self.hazard_fc = nn.Linear(d, 5)
        self.base_hazard_fc = nn.Linear(d, 1)
        self.relu = nn.ReLU(inplace=True)
        self.register_parameter("upper_triagular_mask", nn.Parameter(torch.triu(torch.ones(5, 5)),
                                                                     requires_grad=False))


class GlobalMaxPool(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.args = args


class RiskFactorPool(nn.Module):
    def __init__(self, args: argparse.Namespace, d: int):
        super().__init__()
        self.args = args
        self.internal_pool = GlobalMaxPool(args)
        self.dropout = nn.Dropout(0.0)
        self.density_fc = nn.Linear(d, 4)


class BasicBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)


class ResNet(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.args = args
        self.downsampler = nn.Sequential(nn.Conv2d(3, 4, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(4))
        self.layer1_0 = BasicBlock(4)
        self.all_blocks = ["downsampler", "layer1_0"]
        self.gpu_to_layer_assignments = np.array_split(self.all_blocks, 1)  # numpy arrays, as Mirai's ResNet has
        self.pool = RiskFactorPool(args, 4)
        self.prob_of_failure_layer = Cumulative_Probability_Layer(4 + 3, args)


class CustomResnet(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self._model = ResNet(args)


class MultiHead_Attention(nn.Module):
    def __init__(self, h: int):
        super().__init__()
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)


class AllImageTransformer(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.args = args
        h = args.transfomer_hidden_dim
        self.projection_layer = nn.Linear(args.precomputed_hidden_dim, h)
        self.mask_embedding = nn.Embedding(2, args.precomputed_hidden_dim, padding_idx=1)
        self.register_parameter("kept_images_vec", nn.Parameter(torch.ones(1, 4, 1), requires_grad=False))
        self.attention = MultiHead_Attention(h)
        self.norm = nn.LayerNorm(h)
        self.pool = RiskFactorPool(args, h)
        self.prob_of_failure_layer = Cumulative_Probability_Layer(h + 3, args)


class MiraiCalibrator:
    """The attributes Mirai's calibrator objects carry (no behaviour needed: the importer never calls it)."""

    def __init__(self, slope: float, offset: float, cal_slope: float, cal_offset: float):
        self.base_estimator_slope = np.array([slope])  # LogisticRegression.coef_[0]: shape (1,)
        self.base_estimator_offset = np.float64(offset)
        self.calibrator_slope = np.float64(cal_slope)
        self.calibrator_offset = np.float64(cal_offset)


class Evil:
    """Runs a shell command when unpickled (what a malicious snapshot does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture()
def onconet_stubs(monkeypatch):
    for name in ONCONET:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    placement = {Cumulative_Probability_Layer: "onconet.models.cumulative_probability_layer",
                 GlobalMaxPool: "onconet.models.pools.max_pool",
                 RiskFactorPool: "onconet.models.pools.risk_factor_pool",
                 BasicBlock: "onconet.models.blocks.basic_block",
                 ResNet: "onconet.models.resnet_base", CustomResnet: "onconet.models.custom_resnet",
                 MultiHead_Attention: "onconet.models.hiddens_transfomer",
                 AllImageTransformer: "onconet.models.hiddens_transfomer",
                 MiraiCalibrator: "onconet.models.calibrator"}
    for cls, module in placement.items():
        _register(cls, module)
    yield


def _args(**kw) -> argparse.Namespace:
    base = dict(img_size=[1664, 2048], img_mean=[7047.99], img_std=[12005.5], num_chan=3, max_followup=5,
                pool_name="GlobalMaxPool", risk_factor_key_to_num_class={"density": 4}, dropout=0.0,
                device=torch.device("cpu"), lr=float("inf"))
    return argparse.Namespace(**{**base, **kw})


def _perturb(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
            else:
                t.fill_(7)
    return model


def _calibrators() -> dict[int, MiraiCalibrator]:
    """Per-year calibrators fitted exactly to rows 0.0 and 1.0 of Mirai's table: 1/(1+exp(A p + B)) there."""
    out = {}
    for k in range(5):
        b = np.log(1 / MIRAI_TABLE[0.0][k] - 1)
        a = np.log(1 / MIRAI_TABLE[1.0][k] - 1) - b
        # split A p + B as calibrator_slope · (slope · p + offset) + calibrator_offset, all four non-trivial
        out[k] = MiraiCalibrator(a / -2.0, 0.3, -2.0, b + 0.6)
    return out


def _write_release(folder: Path, legacy: bool) -> tuple[nn.Module, nn.Module]:
    enc = _perturb(CustomResnet(_args()).eval(), 1)
    tr = _perturb(AllImageTransformer(_args(transfomer_hidden_dim=6, precomputed_hidden_dim=4)).eval(), 2)
    (folder / "calibrators").mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy save warns that it cannot find the stubs' source
        torch.save(enc, folder / ENCODER_FILE, _use_new_zipfile_serialization=not legacy)
        torch.save(tr, folder / TRANSFORMER_FILE, _use_new_zipfile_serialization=not legacy)
    (folder / CALIBRATOR_FILE).write_bytes(pickle.dumps(_calibrators(), protocol=2))
    return enc, tr


# ---------------------------------------------------------------------------------------
# Import


@pytest.mark.parametrize("legacy", [False, True], ids=["zip-format", "legacy-format"])
def test_import_reproduces_every_weight_and_hyperparameter(tmp_path, onconet_stubs, legacy):
    enc, tr = _write_release(tmp_path / "snap", legacy)
    out = import_mirai(tmp_path / "snap", tmp_path / "bundle")
    b = load_bundle(out)
    expected = {**{f"encoder.{k}": v for k, v in enc.state_dict().items()},
                **{f"transformer.{k}": v for k, v in tr.state_dict().items()}}
    assert list(b.state_dict) == list(expected)  # state_dict names and order, prefixed
    for name, t in expected.items():
        assert b.state_dict[name].dtype == t.dtype, name
        assert torch.equal(b.state_dict[name], t), name
    assert "encoder._model.layer1_0.bn1.num_batches_tracked" in b.state_dict
    assert "transformer.prob_of_failure_layer.upper_triagular_mask" in b.state_dict
    cfg = b.config
    assert cfg["kind"] == "mirai"
    assert cfg["encoder_class"] == "onconet.models.custom_resnet.CustomResnet"
    assert cfg["transformer_class"] == "onconet.models.hiddens_transfomer.AllImageTransformer"
    assert cfg["encoder_args"]["img_mean"] == [7047.99]
    assert cfg["encoder_args"]["risk_factor_key_to_num_class"] == {"density": 4}
    assert cfg["transformer_args"]["transfomer_hidden_dim"] == 6
    assert cfg["encoder_args"]["device"] == "cpu"  # a torch.device becomes its name
    assert cfg["args_skipped"] == {"encoder": ["lr"], "transformer": ["lr"]}  # inf is not JSON: listed, not kept
    assert b.preprocessing["img_size"] == [1664, 2048] and b.preprocessing["img_std"] == [12005.5]
    for name in (ENCODER_FILE, TRANSFORMER_FILE, CALIBRATOR_FILE):
        digest = hashlib.sha256((tmp_path / "snap" / name).read_bytes()).hexdigest()
        assert cfg["sources"][name] == digest
        assert b.metadata["user"]["sources"][name] == digest


def test_import_from_release_zip(tmp_path, onconet_stubs):
    enc, _ = _write_release(tmp_path / "snap", legacy=True)
    zpath = tmp_path / "snapshots.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in (ENCODER_FILE, TRANSFORMER_FILE, CALIBRATOR_FILE):
            z.write(tmp_path / "snap" / name, name)
    b = load_bundle(import_mirai(zpath, tmp_path / "bundle"))
    key = "encoder._model.downsampler.0.weight"
    assert torch.equal(b.state_dict[key], enc.state_dict()["_model.downsampler.0.weight"])
    assert b.metadata["user"]["archive"] == {"file": "snapshots.zip",
                                             "sha256": hashlib.sha256(zpath.read_bytes()).hexdigest()}


def test_missing_release_file_is_named(tmp_path, onconet_stubs):
    _write_release(tmp_path / "snap", legacy=False)
    (tmp_path / "snap" / TRANSFORMER_FILE).unlink()
    with pytest.raises(SnapshotFormatError, match=TRANSFORMER_FILE):
        import_mirai(tmp_path / "snap", tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


# ---------------------------------------------------------------------------------------
# Calibration against Mirai's own numbers


def test_calibration_reproduces_mirais_regression_table(tmp_path, onconet_stubs):
    _write_release(tmp_path / "snap", legacy=False)
    b = load_bundle(import_mirai(tmp_path / "snap", tmp_path / "bundle"))
    cal = bundle_calibration(b.config)
    assert isinstance(cal, MiraiCalibration) and len(cal.years) == 5
    raw = np.array(sorted(MIRAI_TABLE))
    got = cal.predict(np.repeat(raw[:, None], 5, axis=1))
    want = np.array([MIRAI_TABLE[x] for x in raw])
    # rows 0.1, 0.37, 0.5 are not used to set the parameters: they test the formula (linear in p, 1/(1+exp(z)))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    # each year separately, no monotone adjustment: equal to year-wise application
    assert cal.to_dict()["years"][0]["calibrator_slope"] == -2.0
    assert MiraiCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


# ---------------------------------------------------------------------------------------
# Nothing runs


def test_malicious_pickle_under_release_name_is_refused_and_never_runs(tmp_path, onconet_stubs):
    _write_release(tmp_path / "snap", legacy=False)
    marker = tmp_path / "MARKER"
    torch.save({"model": Evil(marker)}, tmp_path / "snap" / ENCODER_FILE)
    with pytest.raises(ForbiddenGlobalError, match=r"(posix|os|nt)\.system") as e:
        import_mirai(tmp_path / "snap", tmp_path / "bundle")
    assert ENCODER_FILE in str(e.value)
    assert not marker.exists()
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip-format", "legacy-format"])
def test_malicious_module_attribute_is_refused(tmp_path, onconet_stubs, legacy):
    """A real snapshot whose module carries a payload deep inside (an attribute) is refused too."""
    enc, _ = _write_release(tmp_path / "snap", legacy)
    marker = tmp_path / "MARKER"
    enc._model.hook = Evil(marker)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(enc, tmp_path / "snap" / ENCODER_FILE, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ForbiddenGlobalError, match=r"system"):
        import_mirai(tmp_path / "snap", tmp_path / "bundle")
    assert not marker.exists()


def test_malicious_calibrator_is_refused(tmp_path, onconet_stubs):
    _write_release(tmp_path / "snap", legacy=False)
    marker = tmp_path / "MARKER"
    (tmp_path / "snap" / CALIBRATOR_FILE).write_bytes(pickle.dumps({0: Evil(marker)}, protocol=2))
    with pytest.raises(ForbiddenGlobalError, match="system") as e:
        import_mirai(tmp_path / "snap", tmp_path / "bundle")
    assert CALIBRATOR_FILE in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("payload, name", [
    (b"\x80\x02cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.", "builtins.eval"),
    (b"\x80\x02csubprocess\ncall\nX\x02\x00\x00\x00ls\x85R.", "subprocess.call"),
    (b"\x80\x02conconet.models.evil\nThing\n)\x81.", "onconet.models.evil.Thing"),  # unknown onconet class
    (b"\x80\x02ctorch\nload\n.", "torch.load"),
])
def test_unlisted_globals_are_refused_by_name(payload, name):
    with pytest.raises(ForbiddenGlobalError, match=name.replace(".", r"\.")):
        read_pickle(payload, "x.p")


def test_torch_zip_with_unlisted_global_is_refused(tmp_path):
    """A torch.save zip whose data.pkl names a non-allowlisted global: refused before anything is called."""
    marker = tmp_path / "MARKER"
    torch.save({"w": torch.ones(2), "x": Evil(marker)}, tmp_path / "f.pt")
    data = (tmp_path / "f.pt").read_bytes()
    assert data[:4] == b"PK\x03\x04"
    with pytest.raises(ForbiddenGlobalError, match=r"system"):
        read_torch_file(data, "f.pt")
    assert not marker.exists()


def test_plain_tensors_round_trip_without_torch_load(tmp_path):
    """Views, offsets, dtypes, shared storages: the strided rebuild equals torch's own."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    obj = {"view": base[1:, 2:5], "t": base.t(), "half": torch.randn(3, dtype=torch.float16),
           "long": torch.tensor([1, -2], dtype=torch.int64), "bool": torch.tensor([True, False]),
           "empty": torch.empty(0, 3)}
    for legacy in (False, True):
        torch.save(obj, tmp_path / "f.pt", _use_new_zipfile_serialization=not legacy)
        got = read_torch_file((tmp_path / "f.pt").read_bytes(), "f.pt")
        for k, v in obj.items():
            t = got[k].tensor()
            assert t.dtype == v.dtype and torch.equal(t, v), (legacy, k)


def test_truncated_legacy_file_is_a_format_error(tmp_path):
    torch.save({"w": torch.ones(100)}, tmp_path / "f.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "f.pt").read_bytes()
    with pytest.raises(SnapshotFormatError, match=r"f\.pt"):
        read_torch_file(data[:-50], "f.pt")
    with pytest.raises(SnapshotFormatError, match=r"not a torch\.save file"):
        read_torch_file(b"hello world", "f.pt")


def test_cli_import_mirai_refuses_a_missing_source_and_a_malicious_file(tmp_path, capsys):
    """`riskmodel import-mirai`: a missing path and a release file that calls os.system both exit 2, nothing runs."""
    import os
    import pickle

    from riskmodel import cli

    assert cli.main(["import-mirai", str(tmp_path / "nope.zip"), "--out", str(tmp_path / "b")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    src = tmp_path / "snapshots"
    src.mkdir()
    from riskmodel.mirai import RELEASE_FILES

    for name in RELEASE_FILES:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(pickle.dumps(Evil()))
    assert cli.main(["import-mirai", str(src), "--out", str(tmp_path / "b")]) == 2
    assert "system" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "b").exists()
