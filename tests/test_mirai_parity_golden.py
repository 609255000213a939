"""The Mirai port against numbers Mirai's own code produced (issue 19, "Verify against Mirai's own code", CI part).

``tests/data/mirai_parity_golden.json`` was written by ``benchmarks/mirai_parity.py --golden`` (its ``command``
says how): Mirai's factory built two models (Mirai's ResNet-18 encoder; transformer H = 32, 4 heads, max and
attention pool), every tensor was set by :func:`mirai_seeded.seeded_state` from its name, the modules were saved
whole with ``torch.save`` and Mirai's ``MiraiFull`` + ``MiraiCalibrator`` computed per-year probabilities. Here,
without Mirai's code, the same release is rebuilt with stub classes under onconet's module paths (the fixture
machinery of ``tests/test_mirai_import.py``), imported with :func:`riskmodel.mirai.import_mirai`, and run.
"""

from __future__ import annotations

import argparse
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mirai_seeded import golden_images, golden_risk_factors, seeded_state
from test_mirai_import import MiraiCalibrator, _register, onconet_stubs  # noqa: F401  (fixture used by name)
from torch import nn

from riskmodel.bundle import load_bundle
from riskmodel.mirai import import_mirai
from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES
from riskmodel.mirai.importer import CALIBRATOR_FILE, ENCODER_FILE, TRANSFORMER_FILE, bundle_calibration
from riskmodel.mirai.model import MiraiModel

GOLDEN = json.loads((Path(__file__).parent / "data" / "mirai_parity_golden.json").read_text())
TOLERANCE = 1e-5  # issue 19's target for identical input tensors
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _fill(module: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Hang ``state`` (dotted names) on ``module``: a ``Sequential`` per intermediate name, BatchNorm statistics
    as buffers, everything else as parameters (as in Mirai's modules)."""
    for name, tensor in state.items():
        *path, leaf = name.split(".")
        node = module
        for part in path:
            if part not in node._modules:
                node.add_module(part, nn.Sequential())
            node = node._modules[part]
        if leaf in BUFFERS:
            node.register_buffer(leaf, tensor)
        else:
            node.register_parameter(leaf, nn.Parameter(tensor, requires_grad=False))
    return module


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class ResNet(nn.Module):
    """``onconet.models.resnet_base.ResNet``: carries the encoder's ``args``."""

    def __init__(self, args: argparse.Namespace, state: dict[str, torch.Tensor]):
        super().__init__()
        self.args = args
        _fill(self, state)


class CustomResnet(nn.Module):
    """``onconet.models.custom_resnet.CustomResnet``: the ResNet as ``_model``."""

    def __init__(self, args: argparse.Namespace, state: dict[str, torch.Tensor]):
        super().__init__()
        self._model = ResNet(args, _strip(state, "_model."))


class AllImageTransformer(nn.Module):
    """``onconet.models.hiddens_transfomer.AllImageTransformer``."""

    def __init__(self, args: argparse.Namespace, state: dict[str, torch.Tensor]):
        super().__init__()
        self.args = args
        _fill(self, state)


def _release(folder: Path, golden: dict) -> dict[str, torch.Tensor]:
    """Write the seeded release in Mirai's format; return the seeded state (bundle names)."""
    _register(ResNet, "onconet.models.resnet_base")
    _register(CustomResnet, "onconet.models.custom_resnet")
    _register(AllImageTransformer, "onconet.models.hiddens_transfomer")
    layout = [(name, tuple(shape), getattr(torch, dtype)) for name, shape, dtype in golden["state_layout"]]
    state = seeded_state(layout, golden["weights_seed"])
    encoder = CustomResnet(argparse.Namespace(**golden["encoder_args"]), _strip(state, "encoder."))
    transformer = AllImageTransformer(argparse.Namespace(**golden["transformer_args"]), _strip(state, "transformer."))
    (folder / "calibrators").mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(encoder, folder / ENCODER_FILE)
        torch.save(transformer, folder / TRANSFORMER_FILE)
    cal = {k: MiraiCalibrator(*params) for k, params in enumerate(golden["calibrators"])}
    (folder / CALIBRATOR_FILE).write_bytes(pickle.dumps(cal))
    return state


def _run(model: MiraiModel, images: torch.Tensor, sides: list[int], risk_factors=None) -> np.ndarray:
    n = len(images)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is many times faster on a shared machine
    try:
        with torch.no_grad():
            out = model(images, view_seq=torch.tensor(GOLDEN["views"]).expand(n, 4),
                        side_seq=torch.tensor(sides).expand(n, 4), risk_factors=risk_factors)
    finally:
        torch.set_num_threads(threads)
    return out.probabilities.double().numpy()


def test_golden_file_says_where_its_numbers_came_from():
    assert GOLDEN["command"].startswith("python benchmarks/mirai_parity.py --mirai-src")
    assert "Mirai's own code" in GOLDEN["what"]
    assert [m["pool_name"] for m in GOLDEN["models"]] == ["GlobalMaxPool", "Simple_AttentionPool"]
    for m in GOLDEN["models"]:
        raw = np.array(m["raw"])
        assert raw.shape == (GOLDEN["exams"], 5) and np.all(np.diff(raw, axis=1) >= 0)  # cumulative over years


@pytest.mark.parametrize("golden", GOLDEN["models"], ids=[m["pool_name"] for m in GOLDEN["models"]])
def test_port_gives_the_numbers_mirai_gave(tmp_path, onconet_stubs, golden):  # noqa: F811
    state = _release(tmp_path / "release", golden)
    bundle = load_bundle(import_mirai(tmp_path / "release", tmp_path / "bundle"))
    for name, tensor in state.items():  # the fixture holds exactly the weights Mirai's model had
        assert torch.equal(bundle.state_dict[name], tensor), name
    model = MiraiModel.from_bundle_parts(bundle.config, bundle.state_dict)
    calibration = bundle_calibration(bundle.config)
    images = golden_images(GOLDEN["exams"], tuple(GOLDEN["size_hw"]), GOLDEN["seed"])

    raw = _run(model, images, GOLDEN["sides"])
    np.testing.assert_allclose(raw, golden["raw"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(calibration.predict(raw), golden["calibrated"], rtol=0, atol=TOLERANCE)

    rf = golden_risk_factors(GOLDEN["exams"], RISK_FACTOR_NUM_CLASSES.values(), GOLDEN["seed"])
    rf_raw = _run(model, images, GOLDEN["sides"], rf)
    supplied = golden["supplied_risk_factors"]
    np.testing.assert_allclose(rf_raw, supplied["raw"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(calibration.predict(rf_raw), supplied["calibrated"], rtol=0, atol=TOLERANCE)

    # The golden numbers can tell a wrong port: the same exam read with left and right swapped misses them.
    swapped = _run(model, images, [1 - s for s in GOLDEN["sides"]])
    assert np.abs(swapped - np.array(golden["raw"])).max() > 100 * TOLERANCE
