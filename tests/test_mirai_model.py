"""Mirai architecture port (riskmodel.mirai.model): names, shapes, hazard layer, masking, round trip.

The expected state_dict names are derived by reading Mirai's source (reginabarzilaygroup/Mirai, onconet 0.14.1):
- encoder: onconet/models/custom_resnet.py (``self._model = ResNet(...)``), onconet/models/resnet_base.py
  (``downsampler``; blocks added as ``'layer1_{}'`` / ``'layer{}_'.format(indx)+'{}'``; ``pool``, ``fc``,
  ``prob_of_failure_layer``; ``Downsampler.conv1/bn1``; ``_make_layer``'s ``downsample`` Sequential(conv, BN)),
  onconet/models/blocks/basic_block.py (``conv1``, ``conv2``, ``bn1``, ``bn2``, ``downsample``);
- transformer: onconet/models/hiddens_transfomer.py (``projection_layer``, ``mask_embedding``,
  ``kept_images_vec``, ``transformer`` with ``time_embed``/``view_embed``/``side_embed``/``embed_add_fc``/
  ``embed_scale_fc``/``transformer_layer_{i}`` → ``multihead_attention.{query,value,key,aggregate_fc}``,
  ``layernorm_attn``, ``fc1``, ``fc2``, ``layernorm_fc``; ``pred_masked_img_fc``, ``pool``, ``fc``,
  ``prob_of_failure_layer``);
- onconet/models/pools/risk_factor_pool.py (``internal_pool``, ``'{}_fc'.format(key)`` per key, Linear(H, n_k));
- onconet/models/cumulative_probability_layer.py (``hazard_fc``, ``base_hazard_fc``, ``upper_triagular_mask``).
"""

from __future__ import annotations

import math

import pytest
import torch

from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES, MiraiConfigError
from riskmodel.mirai.hazard import CumulativeProbabilityLayer
from riskmodel.mirai.model import MiraiModel

H = 32  # transformer width for the small config (Mirai's grid: 512 or 1024)


def small_config(pool: str = "GlobalMaxPool") -> dict:
    head = {"use_risk_factors": True, "pred_risk_factors": True, "survival_analysis_setup": True, "max_followup": 5}
    return {
        "kind": "mirai",
        "encoder_args": {"block_layout": ["BasicBlock,2"] * 4, "pool_name": "GlobalMaxPool", **head},
        "transformer_args": {"transfomer_hidden_dim": H, "num_heads": 4, "num_layers": 1, "pool_name": pool,
                             "num_images": 4, "dropout": 0.0, **head},
    }


def make_model(seed: int = 0, pool: str = "GlobalMaxPool") -> MiraiModel:
    torch.manual_seed(seed)
    model = MiraiModel.from_config(small_config(pool)).eval()
    with torch.no_grad():  # perturb every parameter and BatchNorm buffer so no layer is an identity
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not name.endswith("upper_triagular_mask"):
                var = name.endswith("running_var")
                noise = torch.rand_like(tensor) * 0.2 if var else torch.randn_like(tensor) * 0.05
                tensor.add_(noise)
    return model


def images(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 4, 3, 40, 32, generator=torch.Generator().manual_seed(seed))


def bn(prefix: str) -> list[str]:
    return [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def expected_names() -> set[str]:
    enc = ["encoder._model.downsampler.conv1.weight", *bn("encoder._model.downsampler.bn1")]
    for stage in range(1, 5):
        for i in range(2):
            b = f"encoder._model.layer{stage}_{i}"
            enc += [f"{b}.conv1.weight", f"{b}.conv2.weight", *bn(f"{b}.bn1"), *bn(f"{b}.bn2")]
            if stage > 1 and i == 0:
                enc += [f"{b}.downsample.0.weight", *bn(f"{b}.downsample.1")]
    heads = []
    for prefix in ("encoder._model", "transformer"):
        heads += [f"{prefix}.pool.{k}_fc.{p}" for k in RISK_FACTOR_NUM_CLASSES for p in ("weight", "bias")]
        heads += [f"{prefix}.fc.weight", f"{prefix}.fc.bias", f"{prefix}.prob_of_failure_layer.upper_triagular_mask"]
        heads += [f"{prefix}.prob_of_failure_layer.{fc}.{p}" for fc in ("hazard_fc", "base_hazard_fc")
                  for p in ("weight", "bias")]
    t = "transformer.transformer"
    layer = f"{t}.transformer_layer_0"
    linear = [f"{layer}.multihead_attention.{n}" for n in ("query", "value", "key", "aggregate_fc")]
    linear += [f"{layer}.{n}" for n in ("layernorm_attn", "fc1", "fc2", "layernorm_fc")]
    linear += [f"{t}.embed_add_fc", f"{t}.embed_scale_fc"]
    linear += ["transformer.projection_layer", "transformer.pred_masked_img_fc"]
    trans = [f"{n}.{p}" for n in linear for p in ("weight", "bias")]
    trans += [f"{t}.{e}_embed.weight" for e in ("time", "view", "side")]
    trans += ["transformer.mask_embedding.weight", "transformer.kept_images_vec"]
    return set(enc + heads + trans)


def test_state_dict_names_match_mirai_source():
    model = MiraiModel.from_config(small_config())
    assert set(model.state_dict()) == expected_names()


def test_state_dict_shapes_follow_mirai_dims():
    sd = MiraiModel.from_config(small_config()).state_dict()
    assert sd["encoder._model.layer4_1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd["encoder._model.fc.weight"].shape == (2, 612)  # fc on 512 image + 100 risk-factor values
    assert sd["encoder._model.pool.race_fc.weight"].shape == (13, 512)
    assert sd["transformer.projection_layer.weight"].shape == (H, 512)
    assert sd["transformer.mask_embedding.weight"].shape == (2, 512)
    assert sd["transformer.kept_images_vec"].shape == (1, 4, 1)
    assert sd["transformer.transformer.time_embed.weight"].shape == (11, 32)
    assert sd["transformer.transformer.view_embed.weight"].shape == (3, 32)
    assert sd["transformer.transformer.embed_scale_fc.weight"].shape == (H, 96)
    assert sd["transformer.pred_masked_img_fc.weight"].shape == (512, H)
    assert sd["transformer.pool.density_fc.weight"].shape == (4, H)
    assert sd["transformer.prob_of_failure_layer.hazard_fc.weight"].shape == (5, H + 100)
    assert sum(RISK_FACTOR_NUM_CLASSES.values()) == 100 and len(RISK_FACTOR_NUM_CLASSES) == 34


@pytest.mark.parametrize("pool", ["GlobalMaxPool", "GlobalAvgPool", "Simple_AttentionPool"])
def test_forward_shapes(pool):
    out = make_model(pool=pool)(images())
    assert out.probabilities.shape == (2, 5) and out.logits.shape == (2, 5)
    assert out.embedding.shape == (2, H) and out.hidden.shape == (2, H + 100)
    assert out.view_features.shape == (2, 4, 512) and out.views_used.all()
    assert out.risk_factors_predicted.shape == (2, 100) and out.risk_factors_known.shape == (2, 34)
    assert torch.all(out.probabilities.diff(dim=1) >= 0)
    assert torch.allclose(out.probabilities, torch.sigmoid(out.logits))


def test_cumulative_probability_layer_by_hand():
    layer = CumulativeProbabilityLayer(2, 5)
    with torch.no_grad():
        layer.hazard_fc.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0.5, 0.5], [2, -1]]))
        layer.hazard_fc.bias.zero_()
        layer.base_hazard_fc.weight.copy_(torch.tensor([[1.0, -1.0]]))
        layer.base_hazard_fc.bias.fill_(-3.0)
    x = torch.tensor([[0.5, 2.0]])
    # hazards ReLU([0.5, 2, -0.5, 1.25, -1]) = [0.5, 2, 0, 1.25, 0]; base = 0.5 - 2 - 3 = -4.5
    expected = [-4.0, -2.0, -2.0, -0.75, -0.75]
    assert layer(x).tolist() == [pytest.approx(expected)]
    assert torch.sigmoid(layer(torch.randn(50, 2))).diff(dim=1).min() >= 0


def test_masked_view_content_is_ignored():
    model = make_model()
    x = images()
    mask = torch.tensor([[True, True, False, True], [False, True, True, True]])
    base = model(x, mask)
    changed = x.clone()
    changed[0, 2] = torch.randn(3, 40, 32) * 100
    changed[1, 0] = 7.0
    again = model(changed, mask)
    assert torch.equal(base.probabilities, again.probabilities)
    assert torch.equal(base.embedding, again.embedding)
    assert base.views_used.tolist() == mask.tolist()
    assert not torch.allclose(base.probabilities, model(x).probabilities)  # the mask does matter
    visible = x.clone()
    visible[0, 1] += 1.0
    assert not torch.equal(base.probabilities[0], model(visible, mask).probabilities[0])


def test_no_view_present_is_refused():
    with pytest.raises(ValueError, match=r"batch index \[1\]"):
        make_model()(images(), torch.tensor([[True, False, False, False], [False] * 4]))


def test_view_order_does_not_matter():
    model = make_model()
    x = images()
    perm = torch.tensor([3, 0, 2, 1])
    view, side = torch.tensor([0, 1, 0, 1]).expand(2, 4), torch.tensor([0, 0, 1, 1]).expand(2, 4)
    a = model(x).probabilities
    b = model(x[:, perm], view_seq=view[:, perm], side_seq=side[:, perm]).probabilities
    assert torch.allclose(a, b, atol=1e-6)


def test_supplied_risk_factors_used_unknown_predicted():
    model = make_model()
    x = images()
    predicted = model(x)
    supplied = torch.zeros(2, 100)
    supplied[0, 0:4] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # density known (BI-RADS 3) for exam 0 only
    out = model(x, risk_factors=supplied)
    assert out.risk_factors_known[:, 0].tolist() == [True, False] and not out.risk_factors_known[:, 1:].any()
    assert torch.equal(out.risk_factors_used[0, :4], supplied[0, :4])
    assert torch.equal(out.risk_factors_used[0, 4:], predicted.risk_factors_predicted[0, 4:])
    assert torch.equal(out.probabilities[1], predicted.probabilities[1])
    assert not torch.equal(out.probabilities[0], predicted.probabilities[0])


def test_deterministic_for_a_seed():
    x = images()
    assert torch.equal(make_model(seed=3)(x).probabilities, make_model(seed=3)(x).probabilities)
    assert not torch.equal(make_model(seed=3)(x).probabilities, make_model(seed=4)(x).probabilities)


def test_from_bundle_parts_round_trip():
    model = make_model(seed=5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = MiraiModel.from_bundle_parts(small_config(), state)
    assert not loaded.training
    x = images()
    assert torch.equal(loaded(x).probabilities, model(x).probabilities)
    old_torch = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert torch.equal(MiraiModel.from_bundle_parts(small_config(), old_torch)(x).probabilities, model(x).probabilities)


def test_from_bundle_parts_refuses_mismatch():
    state = MiraiModel.from_config(small_config()).state_dict()
    missing = {k: v for k, v in state.items() if k != "transformer.fc.bias"}
    with pytest.raises(MiraiConfigError, match=r"transformer\.fc\.bias"):
        MiraiModel.from_bundle_parts(small_config(), missing)
    with pytest.raises(MiraiConfigError, match=r"unexpected.*extra\.weight"):
        MiraiModel.from_bundle_parts(small_config(), {**state, "extra.weight": torch.zeros(1)})
    wrong = dict(state, **{"transformer.fc.bias": torch.zeros(3)})
    with pytest.raises(MiraiConfigError, match="wrong shapes"):
        MiraiModel.from_bundle_parts(small_config(), wrong)


@pytest.mark.parametrize(("section", "key", "value", "match"), [
    ("transformer_args", "pool_name", "DeepPool", "pool_name"),
    ("transformer_args", "deep_risk_factor_pool", True, "deep_risk_factor_pool"),
    ("encoder_args", "block_layout", ["Bottleneck,2"] * 4, "BasicBlock"),
    ("transformer_args", "num_heads", 5, "divisible"),
])
def test_unsupported_config_refused(section, key, value, match):
    cfg = small_config()
    cfg[section][key] = value
    with pytest.raises(MiraiConfigError, match=match):
        MiraiModel.from_config(cfg)


def test_feature_map_size_at_mirai_resolution_rule():
    # Mirai: 2048x1664 → 64x52 feature map (/32, rounded up); check the rule at a small size.
    fmap = make_model().encoder._model.feature_map(torch.zeros(1, 3, 100, 70))
    assert fmap.shape == (1, 512, math.ceil(100 / 32), math.ceil(70 / 32))
