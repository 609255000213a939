"""riskmodel.nn: shapes, monotone risks, masking of absent views, slot dependence, trainability,
gradient checkpointing, norm variants, config round-trip and validation."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from riskmodel.nn import AdditiveHazardHead, ImageEncoder, ImageRiskModel, ModelConfig, ViewAggregator, tiny_config

H, W = 64, 52


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one intra-op thread is as fast unloaded and far faster on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(seed: int = 0, **overrides) -> ImageRiskModel:
    torch.manual_seed(seed)
    return ImageRiskModel(tiny_config(**overrides))


def make_batch(batch: int, seed: int = 0, size: tuple[int, int] = (H, W), p_present: float = 0.75):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 4, 1, *size, generator=g)
    mask = torch.rand(batch, 4, generator=g) < p_present
    mask[0] = True  # at least one complete exam
    images[~mask] = 0.0  # what ExamDataset gives for a missing view
    return images, mask


# -- shapes and ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 52), (96, 80)])
def test_output_shapes(size):
    model = make_model().eval()
    images, mask = make_batch(3, size=size)
    out = model(images, mask)
    assert set(out) == {"logits", "risk", "embedding", "view_embeddings", "density_logits", "age"}
    assert out["logits"].shape == out["risk"].shape == (3, 5)
    assert out["embedding"].shape == (3, 32)
    assert out["view_embeddings"].shape == (3, 4, 32)
    assert out["density_logits"].shape == (3, 4)
    assert out["age"].shape == (3,)
    assert all(v.dtype == torch.float32 for v in out.values())


def test_aux_heads_optional_and_years():
    out = make_model(aux_density=False, aux_age=False, n_years=3).eval()(*make_batch(2))
    assert set(out) == {"logits", "risk", "embedding", "view_embeddings"}
    assert out["risk"].shape == (2, 3)


@pytest.mark.parametrize("size", [(32, 32), (64, 52), (97, 81)])
def test_encoder_any_size_and_projection(size):
    torch.manual_seed(0)
    encoder = ImageEncoder(tiny_config(embed_dim=24, agg_heads=4)).eval()
    assert encoder(torch.rand(5, 1, *size)).shape == (5, 24)
    with pytest.raises(ValueError, match="expected"):
        encoder(torch.rand(5, 3, *size))


@pytest.mark.parametrize("seed", range(5))
def test_risk_in_unit_interval_and_monotone_in_years(seed):
    model = make_model(seed).eval()
    images, mask = make_batch(6, seed=seed)
    images = images * 4.0 - 1.0  # well outside [0, 1] too: monotonicity is structural
    out = model(images, mask)
    risk, logits = out["risk"], out["logits"]
    assert ((risk >= 0) & (risk <= 1)).all()
    assert (logits.diff(dim=1) >= 0).all()
    assert (risk.diff(dim=1) >= 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_hazard_head_monotone_and_mirai_formula(seed):
    torch.manual_seed(seed)
    head = AdditiveHazardHead(16, 5)
    z = torch.randn(64, 16) * 10.0
    logits = head(z)
    assert (logits.diff(dim=1) >= 0).all()
    # logit_k = b + sum_{j<=k} relu(h_j), written with Mirai's upper-triangular mask
    expected = head.base(z) + torch.relu(head.hazard(z)) @ torch.triu(torch.ones(5, 5))
    torch.testing.assert_close(logits, expected)


# -- missing views ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["group", "batch"])
@pytest.mark.parametrize("train", [False, True])
def test_absent_view_is_masked_not_zero_filled(norm, train):
    model = make_model(norm=norm).train(train)
    images, mask = make_batch(4, seed=1)
    mask[1] = torch.tensor([True, False, True, False])
    clean = images.clone()
    clean[~mask] = 0.0
    garbage = images.clone()
    garbage[~mask] = torch.randn_like(garbage[~mask]) * 100.0
    nans = images.clone()
    nans[~mask] = float("nan")
    ref = model(clean, mask)
    for other in (garbage, nans):
        out = model(other, mask)
        for key in ref:
            assert torch.equal(ref[key], out[key]), key
    assert (ref["view_embeddings"][~mask] == 0).all()


def test_aggregator_ignores_absent_tokens():
    model = make_model().eval()
    images, mask = make_batch(4, seed=2)
    mask[2] = torch.tensor([False, True, True, True])
    tokens = model.encode_views(images, mask)
    noisy = tokens.clone()
    noisy[~mask] = torch.randn_like(noisy[~mask]) * 100.0
    noisy[2, 0] = float("inf")
    assert torch.equal(model(view_embeddings=tokens, mask=mask)["logits"],
                       model(view_embeddings=noisy, mask=mask)["logits"])


@pytest.mark.parametrize("train", [False, True])
def test_absent_view_equals_dropping_its_token(train):
    """Masking a slot is the same as running the transformer on the present tokens only."""
    model = make_model().train(train)
    agg = model.aggregator
    tokens = torch.randn(3, 4, 32)
    mask = torch.tensor([[True, True, True, True], [True, False, True, True], [False, True, False, True]])
    out = agg(tokens, mask)
    slot = agg.family_embedding(agg.family_index) + agg.side_embedding(agg.side_index)
    for b in range(3):
        x = (tokens[b] + slot)[mask[b]][None]
        torch.testing.assert_close(out[b], agg.transformer(x)[0].mean(dim=0))


def test_encoder_sees_only_present_views():
    model = make_model().eval()
    images, mask = make_batch(5, seed=3)
    images[~mask] = float("nan")
    seen = []
    handle = model.encoder.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().clone()))
    try:
        out = model(images, mask)
    finally:
        handle.remove()
    assert len(seen) == 1  # one gathered encoder batch per forward
    assert seen[0].shape[0] == int(mask.sum()) < mask.numel()
    assert torch.isfinite(seen[0]).all()
    torch.testing.assert_close(seen[0], images[mask])
    assert torch.isfinite(out["logits"]).all()


@pytest.mark.parametrize("train", [False, True])
def test_exam_without_views_is_finite(train):
    model = make_model().train(train)
    images, mask = make_batch(3, seed=4)
    mask[1] = False
    seen = []
    handle = model.aggregator.transformer.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["src_key_padding_mask"]), with_kwargs=True)
    try:
        out = model(images, mask)
    finally:
        handle.remove()
    # no all-masked attention row is passed on (NaN softmax on older torch)
    assert len(seen) == 1 and not seen[0].all(dim=1).any()
    for key, value in out.items():
        assert torch.isfinite(value).all(), key
    assert (out["embedding"][1] == 0).all()
    if train:
        out["logits"].sum().backward()
        for name, p in model.named_parameters():
            assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_batch_with_no_view_at_all():
    model = make_model().train()
    images = torch.full((2, 4, 1, H, W), float("nan"))
    calls = []
    handle = model.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = model(images, torch.zeros(2, 4, dtype=torch.bool))
    finally:
        handle.remove()
    assert not calls
    assert all(torch.isfinite(v).all() for v in out.values())
    out["logits"].sum().backward()
    # the encoder is tied into the graph with zero gradient (DDP sees it used)
    assert all(p.grad is not None and (p.grad == 0).all() for p in model.encoder.parameters())


# -- slot identity ------------------------------------------------------------------------------------------


def test_swapping_left_and_right_cc_changes_output():
    model = make_model().eval()
    images, mask = make_batch(2, seed=5, p_present=1.0)
    swapped = images[:, [2, 1, 0, 3]]  # L-CC <-> R-CC
    a = model(images, mask)["logits"]
    b = model(swapped, mask)["logits"]
    assert (a - b).abs().max() > 1e-4
    # ... and that is due to the slot embeddings: without them the aggregator is permutation-invariant
    with torch.no_grad():
        model.aggregator.family_embedding.weight.zero_()
        model.aggregator.side_embedding.weight.zero_()
    torch.testing.assert_close(model(images, mask)["logits"], model(swapped, mask)["logits"])


# -- training ----------------------------------------------------------------------------------------------


def masked_bce(logits: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
    """Mirai's loss: BCE-with-logits weighted by the follow-up mask, summed and divided by its sum."""
    loss = F.binary_cross_entropy_with_logits(logits, y, weight=y_mask, reduction="sum")
    return loss / y_mask.sum()


def test_small_batch_can_be_overfit():
    model = make_model(seed=0).train()
    images, mask = make_batch(8, seed=6)
    # years_to_cancer 0..4 for four exams; four censored negatives with follow-up 1..5 years
    years = torch.tensor([0, 1, 2, 4, 9, 9, 9, 9])
    follow_up = torch.tensor([5, 5, 5, 5, 1, 3, 4, 5])
    k = torch.arange(5)
    y = (k[None] >= years[:, None]).float()
    y_mask = ((years[:, None] < 5) | (k[None] <= follow_up[:, None] - 1)).float()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = masked_bce(model(images, mask)["logits"], y, y_mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_gradient_checkpointing_matches():
    images, mask = make_batch(3, seed=7)
    plain = make_model(seed=1).train()
    ckpt = ImageRiskModel(dataclasses.replace(plain.config, gradient_checkpointing=True)).train()
    ckpt.load_state_dict(plain.state_dict())
    results = []
    for model in (plain, ckpt):
        out = model(images, mask)
        (out["logits"].sum() + out["age"].sum() + out["density_logits"].square().sum()).backward()
        results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (out_a, grads_a), (out_b, grads_b) = results
    for key in out_a:
        torch.testing.assert_close(out_a[key], out_b[key])
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(plain.parameters()))
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_norm_variants_run_and_train(norm):
    model = make_model(norm=norm).train()
    kind = torch.nn.GroupNorm if norm == "group" else torch.nn.BatchNorm2d
    assert any(isinstance(m, kind) for m in model.encoder.modules())
    out = model(*make_batch(2, seed=8))
    out["logits"].mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    assert torch.isfinite(model.eval()(*make_batch(2, seed=9))["risk"]).all()


def test_channels_last_matches_contiguous():
    images, mask = make_batch(2, seed=10)
    plain = make_model(seed=2).eval()
    cl = ImageRiskModel(dataclasses.replace(plain.config, channels_last=True)).eval()
    cl.load_state_dict(plain.state_dict())
    assert cl.encoder.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(plain(images, mask)["logits"], cl(images, mask)["logits"], rtol=1e-4, atol=1e-5)


# -- two-stage interface -----------------------------------------------------------------------------------


def test_view_embeddings_path_equals_images_path():
    model = make_model().eval()
    images, mask = make_batch(4, seed=11)
    out = model(images, mask)
    cached = model.encode_views(images, mask)
    out2 = model(view_embeddings=cached, mask=mask)
    for key in out:
        assert torch.equal(out[key], out2[key]), key
    torch.testing.assert_close(model.embed(images, mask), out["embedding"])  # no_grad may take the MHA fast path
    assert not model.embed(images, mask).requires_grad


def test_forward_argument_errors():
    model = make_model().eval()
    images, mask = make_batch(2)
    with pytest.raises(ValueError, match="exactly one"):
        model(images, mask, view_embeddings=torch.zeros(2, 4, 32))
    with pytest.raises(ValueError, match="exactly one"):
        model(mask=mask)
    with pytest.raises(ValueError, match="mask"):
        model(images)
    with pytest.raises(ValueError, match="mask"):
        model(images, mask[:, :3])
    with pytest.raises(ValueError, match="view_embeddings"):
        model(view_embeddings=torch.zeros(2, 4, 31), mask=mask)
    with pytest.raises(ValueError, match="images"):
        model(images[:, :3], mask[:, :3])
    with pytest.raises(ValueError, match="floating"):
        model((images * 255).to(torch.uint8), mask)


def test_parameter_groups_partition():
    model = make_model()
    groups = model.parameter_groups()
    enc, head = {id(p) for p in groups["encoder"]}, {id(p) for p in groups["head"]}
    assert enc == {id(p) for p in model.encoder.parameters()}
    assert not enc & head and enc | head == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.aggregator.parameters()} <= head


def test_aggregator_standalone_shapes():
    torch.manual_seed(0)
    agg = ViewAggregator(tiny_config()).eval()
    assert agg(torch.randn(3, 4, 32), torch.ones(3, 4, dtype=torch.bool)).shape == (3, 32)
    with pytest.raises(ValueError):
        agg(torch.randn(3, 3, 32), torch.ones(3, 3, dtype=torch.bool))


# -- config --------------------------------------------------------------------------------------------------


def test_config_defaults_and_roundtrip():
    default = ModelConfig()
    assert (default.widths, default.blocks, default.norm, default.pool, default.embedding_dim) == (
        (64, 128, 256, 512), (2, 2, 2, 2), "batch", "max", 512)
    for config in (default, tiny_config(), tiny_config(embed_dim=48, agg_heads=4, norm="batch", pool="avg"),
                   tiny_config(norm="group")):
        d = json.loads(json.dumps(config.to_dict()))
        assert set(d) == {f.name for f in dataclasses.fields(ModelConfig)}
        back = ModelConfig.from_dict(d)
        assert back == config and isinstance(back.widths, tuple) and isinstance(back.image_size, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        default.norm = "group"  # type: ignore[misc]


def test_config_unknown_keys_named():
    with pytest.raises(ValueError, match=r"bogus.*zzz|zzz.*bogus"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "bogus": 1, "zzz": 2})
    with pytest.raises(ValueError, match="typo_key"):
        tiny_config(typo_key=1)


@pytest.mark.parametrize("bad", [
    {"in_channels": 0}, {"widths": ()}, {"widths": (8, 16, 0, 32)}, {"blocks": (1, 1, 1)},
    {"stem_stride": 3}, {"norm": "layer"}, {"pool": "attention"}, {"embed_dim": 0}, {"embed_dim": 33},
    {"agg_layers": 0}, {"agg_heads": 3}, {"agg_dropout": 1.0}, {"agg_dropout": -0.1}, {"n_years": 0},
    {"aux_age": 1}, {"gradient_checkpointing": "yes"}, {"image_size": (16, 52)}, {"image_size": (64,)},
    {"channels_last": None}, {"widths": (8.0, 16, 16, 32)},
])
def test_invalid_config_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        tiny_config(**bad)


def test_default_parameter_count():
    model = ImageRiskModel()
    groups = model.parameter_groups()
    assert sum(p.numel() for p in groups["encoder"]) == 11_170_240  # ResNet-18, 1 input channel, no fc
    assert sum(p.numel() for p in model.parameters()) == 12_755_915


def test_tissue_pool_averages_the_breast_only():
    from riskmodel.nn.encoder import tissue_pool

    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 4)
    m = torch.zeros(2, 1, 16, 16)
    m[:, :, :, :8] = 1.0  # tissue in the left half of the input = the left two columns of the map
    np_expected = f[:, :, :, :2].mean(dim=(2, 3))
    torch.testing.assert_close(tissue_pool(f, m), np_expected, atol=1e-3, rtol=1e-3)
    # No tissue at all: the plain average.
    torch.testing.assert_close(tissue_pool(f, torch.zeros(2, 1, 16, 16)), f.mean(dim=(2, 3)))


def test_tissue_pooling_encoder_does_not_depend_on_background_share():
    # The same "breast" (a textured block) on a small and a large dark background: with tissue pooling the
    # pooled features agree far better than with the plain average, which the background dilutes.
    torch.manual_seed(1)
    breast = 0.3 + 0.2 * torch.rand(1, 1, 64, 64)
    small = torch.zeros(1, 1, 64, 96)
    large = torch.zeros(1, 1, 64, 192)
    small[..., :64] = breast
    large[..., :64] = breast
    gaps = {}
    for pool in ("avg", "tissue"):
        torch.manual_seed(2)
        enc = ImageEncoder(ModelConfig(widths=(8, 16), blocks=(1, 1), pool=pool)).eval()
        with torch.no_grad():
            a, b = enc(small), enc(large)
        gaps[pool] = float((a - b).abs().mean() / a.abs().mean())
    assert gaps["tissue"] < 0.25 * gaps["avg"]


def test_tissue_pool_config():
    cfg = ModelConfig(pool="tissue", tissue_threshold=0.1)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="tissue_threshold"):
        ModelConfig(pool="tissue", tissue_threshold=1.5)
