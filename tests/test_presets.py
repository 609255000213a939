"""Named network sizes (``riskmodel.nn.PRESETS``), ``riskmodel train --preset``, and the benchmarks' network.

The README quotes image-model results that were produced by the ``small`` network (widths 16–128, one
block per stage), not by ResNet-18: these tests pin that the preset is exactly that network, that the
benchmark scripts build it by name, and that ``riskmodel train`` accepts it.
"""

import argparse
import importlib
import json
from pathlib import Path

import pytest

from riskmodel import cli
from riskmodel.cli.train import model_config
from riskmodel.nn import PRESETS, ImageRiskModel, ModelConfig, preset_config, tiny_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# The network every recorded synthetic image-model run used, as the benchmark code wrote it out before
# the presets existed (benchmarks/image_vs_gail.py and riskmodel/benchmarking/suite.py at 8a7f68b).
RECORDED_SMALL = {"widths": (16, 32, 64, 128), "blocks": (1, 1, 1, 1), "agg_heads": 4, "agg_dropout": 0.1}


def _stages(model: ImageRiskModel) -> list[tuple[int, int]]:
    """``(BasicBlocks, output channels)`` of each encoder stage of a built model."""
    return [(len(stage), stage[-1].conv2.out_channels) for stage in model.encoder.stages]


@pytest.mark.parametrize(("name", "widths", "blocks", "heads", "params"), [
    ("resnet18", (64, 128, 256, 512), 2, 8, 12_755_915),
    ("small", (16, 32, 64, 128), 1, 4, 409_403),
    ("tiny", (8, 16, 16, 32), 1, 2, 31_715),
])
def test_each_preset_builds_the_documented_network(name, widths, blocks, heads, params):
    model = ImageRiskModel(preset_config(name, image_size=(64, 52)))
    assert _stages(model) == [(blocks, w) for w in widths]
    assert model.config.agg_heads == heads and model.config.embedding_dim == widths[-1]
    assert sum(p.numel() for p in model.parameters()) == params  # the counts quoted in docs/training.md


def test_resnet18_is_the_default_and_tiny_config_is_the_tiny_preset():
    assert preset_config("resnet18") == ModelConfig()
    assert tiny_config() == preset_config("tiny", image_size=(64, 52))
    assert tiny_config().norm == "group" and tiny_config(norm="batch").norm == "batch"


def test_overrides_apply_on_top_of_a_preset():
    config = preset_config("small", pool="tissue", image_size=(256, 208))
    assert (config.widths, config.pool, config.image_size) == ((16, 32, 64, 128), "tissue", (256, 208))
    assert preset_config("small", widths=(8, 8, 8, 8)).widths == (8, 8, 8, 8)


def test_an_unknown_preset_is_an_error_listing_the_presets():
    with pytest.raises(ValueError, match=r"unknown model preset 'resnet50': choose one of resnet18, small, tiny"):
        preset_config("resnet50")


def _train_args(*extra: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["train", "--cohort", "c.csv", "--exams", "e.csv", "--out", "run", *extra])


def test_train_preset_option_builds_that_network():
    config, meta = model_config(_train_args("--preset", "small"), (256, 208))
    assert config == ModelConfig(**RECORDED_SMALL, image_size=(256, 208))
    assert meta == {"preset": "small", "overrides": {}}
    config, meta = model_config(_train_args("--preset", "small", "--model-config", '{"pool": "tissue"}'),
                                     (256, 208))
    assert config == ModelConfig(**RECORDED_SMALL, image_size=(256, 208), pool="tissue")
    assert meta == {"preset": "small", "overrides": {"pool": "tissue"}}


def test_train_without_preset_is_resnet18_and_tiny_is_the_tiny_preset():
    assert model_config(_train_args(), (512, 416)) == (ModelConfig(), {"preset": "resnet18", "overrides": {}})
    config, meta = model_config(_train_args("--tiny"), (64, 52))
    assert config == tiny_config() and meta["preset"] == "tiny"
    assert model_config(_train_args("--tiny", "--preset", "tiny"), (64, 52))[0] == tiny_config()


def test_train_preset_conflicts_and_unknown_names_are_clear_errors(capsys):
    with pytest.raises(cli.UsageError, match=r"--tiny is the same as --preset tiny: give --preset small or --tiny"):
        model_config(_train_args("--tiny", "--preset", "small"), (64, 52))
    with pytest.raises(SystemExit) as exc:
        _train_args("--preset", "resnet50")
    assert exc.value.code == 2
    assert "invalid choice: 'resnet50' (choose from 'resnet18', 'small', 'tiny')" in capsys.readouterr().err


def _recorded_image_vs_gail() -> list[Path]:
    return sorted(RESULTS.glob("image_vs_gail*.json"))


def test_every_recorded_image_vs_gail_run_is_rebuilt_as_the_small_preset(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    ivg = importlib.import_module("image_vs_gail")
    files = _recorded_image_vs_gail()
    assert len(files) >= 7
    for path in files:
        record = json.loads(path.read_text())
        args = ivg.build_parser().parse_args(record["command"].split()[2:])
        old = ModelConfig(**RECORDED_SMALL, image_size=tuple(record["data"]["image_size"]), norm=args.norm,
                          pool=args.view_pool)
        assert ivg.model_config(args) == old, path.name  # the same network, field for field


def test_the_suites_networks_are_named_presets_with_the_recorded_settings():
    from riskmodel.benchmarking import SUITES

    recorded = json.loads((RESULTS / "quick" / "results.json").read_text())["provenance"]["config"]
    assert SUITES["quick"].to_dict() == recorded  # the quick suite's record is unchanged, key for key
    assert SUITES["quick"].model == {**PRESETS["small"], "pool": "avg"}
    assert ModelConfig(**SUITES["full"].model) == preset_config("resnet18", pool="avg") == ModelConfig(pool="avg")
