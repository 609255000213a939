"""Hyperparameters of Mirai's two released modules, read from the ``args`` the pickles carry.

Mirai (Yala et al. 2021) builds its image encoder and its view transformer from an ``argparse.Namespace``.
The importer (:mod:`riskmodel.mirai.importer`) copies the JSON-able part of each module's ``args`` into
``config.json`` as ``encoder_args`` and ``transformer_args``. This module turns those dicts into small frozen
dataclasses, applying the defaults of Mirai's own argument parser (``onconet/utils/parsing.py``) for keys
that are absent, and refusing, with the key named, any setting whose layers this port does not implement.

Torch-free on purpose: configs can be checked without loading the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "POOL_NAMES",
    "RISK_FACTOR_NUM_CLASSES",
    "EncoderConfig",
    "HeadConfig",
    "MiraiConfigError",
    "TransformerConfig",
]

#: Mirai's 34 risk-factor keys in the released order (``risk_factor_keys`` of ``configs/mirai_full.json``) and
#: the width of each key's one-hot/binary block, as ``RiskFactorVectorizer`` (``onconet/utils/risk_factors.py``)
#: derives it from the feature names. The widths sum to 100. ``p_grantmother`` is Mirai's own spelling.
RISK_FACTOR_NUM_CLASSES: dict[str, int] = {
    "density": 4,
    "binary_family_history": 1,
    "binary_biopsy_benign": 1,
    "binary_biopsy_LCIS": 1,
    "binary_biopsy_atypical_hyperplasia": 1,
    "age": 6,
    "menarche_age": 5,
    "menopause_age": 5,
    "first_pregnancy_age": 6,
    "prior_hist": 1,
    "race": 13,
    "parous": 1,
    "menopausal_status": 4,
    "weight": 7,
    "height": 7,
    "ovarian_cancer": 1,
    "ovarian_cancer_age": 6,
    "ashkenazi": 1,
    "brca": 4,
    "mom_bc_cancer_history": 1,
    "m_aunt_bc_cancer_history": 1,
    "p_aunt_bc_cancer_history": 1,
    "m_grandmother_bc_cancer_history": 1,
    "p_grantmother_bc_cancer_history": 1,
    "sister_bc_cancer_history": 1,
    "mom_oc_cancer_history": 1,
    "m_aunt_oc_cancer_history": 1,
    "p_aunt_oc_cancer_history": 1,
    "m_grandmother_oc_cancer_history": 1,
    "p_grantmother_oc_cancer_history": 1,
    "sister_oc_cancer_history": 1,
    "hrt_type": 3,
    "hrt_duration": 5,
    "hrt_years_ago_stopped": 5,
}

#: Pools Mirai's released configs search over (``pool_name`` in ``configs/mirai_base.json``/``mirai_full.json``).
POOL_NAMES: tuple[str, ...] = ("GlobalMaxPool", "Simple_AttentionPool", "GlobalAvgPool")

#: Flags of Mirai's parser that add or replace layers this port does not implement; each must be false.
_UNSUPPORTED_FLAGS: tuple[str, ...] = (
    "deep_risk_factor_pool",
    "use_spatial_transformer",
    "replace_bn_with_gn",
    "predict_birads",
    "pred_both_sides",
)


class MiraiConfigError(ValueError):
    """A Mirai config dict names a setting this port cannot build (the message names the key)."""


def _flag(args: Mapping[str, Any], key: str, where: str) -> bool:
    value = args.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MiraiConfigError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _int(args: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = args.get(key, default)
    if value is None:
        raise MiraiConfigError(f"{where}.{key} is required (an integer) and missing")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MiraiConfigError(f"{where}.{key} must be a positive integer, got {value!r}")
    return value


def _probability(args: Mapping[str, Any], key: str, where: str) -> float:
    value = args.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise MiraiConfigError(f"{where}.{key} must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_unsupported(args: Mapping[str, Any], where: str) -> None:
    for key in _UNSUPPORTED_FLAGS:
        if _flag(args, key, where):
            raise MiraiConfigError(f"{where}.{key} is true: this Mirai port does not implement that layer")
    if _flag(args, "use_region_annotation", where) and args.get("region_annotation_loss_type") == "pred_region":
        raise MiraiConfigError(f"{where}.use_region_annotation with pred_region adds a layer this port lacks")


def _pool_name(args: Mapping[str, Any], where: str) -> str:
    name = args.get("pool_name")
    if name not in POOL_NAMES:
        raise MiraiConfigError(f"{where}.pool_name must be one of {list(POOL_NAMES)}, got {name!r}")
    return str(name)


def _risk_factor_keys(args: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Keys as a tuple; Mirai stores them as a list (parsed) or one space-separated string (inference config)."""
    raw = args.get("risk_factor_keys", list(RISK_FACTOR_NUM_CLASSES))
    keys = tuple(raw.split()) if isinstance(raw, str) else tuple(raw)
    unknown = [k for k in keys if k not in RISK_FACTOR_NUM_CLASSES]
    if unknown:
        raise MiraiConfigError(f"{where}.risk_factor_keys has keys Mirai's released model does not use: {unknown}")
    return keys


def parse_block_layout(raw: Any, where: str = "encoder_args") -> tuple[tuple[tuple[str, int], ...], ...]:
    """Mirai's ``block_layout`` as ``((block_name, repeats), ...)`` per ResNet stage.

    Accepts the raw command-line form (``"BasicBlock,2 BasicBlock,2 ..."`` or a list of ``"BasicBlock,2"``
    strings, stages separated by spaces and blocks within a stage by ``-``) and the parsed form the pickled
    ``args`` hold (a list of lists of ``[name, repeats]``). Only ``BasicBlock`` is implemented.
    """
    stages_raw = raw.split() if isinstance(raw, str) else raw
    if not isinstance(stages_raw, (list, tuple)) or len(stages_raw) != 4:
        raise MiraiConfigError(f"{where}.block_layout must list 4 ResNet stages, got {raw!r}")
    stages = []
    for stage in stages_raw:
        specs = [s.split(",") for s in stage.split("-")] if isinstance(stage, str) else stage
        parsed = []
        for spec in specs:
            if len(spec) != 2:
                raise MiraiConfigError(f"{where}.block_layout has a malformed block {spec!r}")
            name, repeats = spec[0], int(spec[1])
            if name != "BasicBlock" or repeats < 1:
                raise MiraiConfigError(f"{where}.block_layout: only BasicBlock stages are implemented, got {spec!r}")
            parsed.append((str(name), repeats))
        stages.append(tuple(parsed))
    return tuple(stages)


@dataclass(frozen=True)
class HeadConfig:
    """Settings shared by both modules' heads (risk-factor pool, fc, cumulative-probability layer)."""

    pool_name: str
    use_risk_factors: bool
    pred_risk_factors: bool
    risk_factor_keys: tuple[str, ...]
    num_classes: int
    survival_analysis_setup: bool
    max_followup: int
    make_probs_indep: bool
    dropout: float

    @property
    def rf_dim(self) -> int:
        """Length of the risk-factor vector (100 for Mirai's 34 keys); 0 without the risk-factor pool."""
        return sum(RISK_FACTOR_NUM_CLASSES[k] for k in self.risk_factor_keys) if self.use_risk_factors else 0

    @staticmethod
    def head_kwargs(args: Mapping[str, Any], where: str) -> dict[str, Any]:
        _check_unsupported(args, where)
        return {
            "pool_name": _pool_name(args, where),
            "use_risk_factors": _flag(args, "use_risk_factors", where),
            "pred_risk_factors": _flag(args, "pred_risk_factors", where),
            "risk_factor_keys": _risk_factor_keys(args, where),
            # Mirai's mammography datasets all set num_classes = 2; only the unused fc layer's shape depends on it.
            "num_classes": _int(args, "num_classes", where, 2),
            "survival_analysis_setup": _flag(args, "survival_analysis_setup", where),
            "max_followup": _int(args, "max_followup", where, 5),
            "make_probs_indep": _flag(args, "make_probs_indep", where),
            "dropout": _probability(args, "dropout", where),
        }


@dataclass(frozen=True)
class EncoderConfig(HeadConfig):
    """Mirai's image encoder (``custom_resnet`` over ``resnet_base.ResNet``)."""

    block_layout: tuple[tuple[tuple[str, int], ...], ...] = ()
    block_widening_factor: int = 1
    num_chan: int = 3

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> EncoderConfig:
        """Build from the encoder pickle's ``args`` (a dict); absent keys take Mirai's parser defaults."""
        where = "encoder_args"
        if "block_layout" not in args:
            raise MiraiConfigError(f"{where}.block_layout is required and missing")
        return cls(
            **cls.head_kwargs(args, where),
            block_layout=parse_block_layout(args["block_layout"], where),
            block_widening_factor=_int(args, "block_widening_factor", where, 1),
            num_chan=_int(args, "num_chan", where, 3),
        )

    @property
    def stage_widths(self) -> tuple[int, ...]:
        """Channels of the 4 ResNet stages: 64·w, then doubled per stage up to 1024 (64, 128, 256, 512)."""
        widths = [max(64 * self.block_widening_factor, self.num_chan)]
        for _ in self.block_layout[1:]:
            widths.append(min(widths[-1] * 2, 1024))
        return tuple(widths)

    @property
    def image_dim(self) -> int:
        """Per-view image feature length (Mirai's ``img_only_dim``; 512 for ResNet-18)."""
        return self.stage_widths[-1]


@dataclass(frozen=True)
class TransformerConfig(HeadConfig):
    """Mirai's view-aggregation transformer (``hiddens_transfomer.AllImageTransformer``)."""

    precomputed_hidden_dim: int = 512
    hidden_dim: int = 512
    num_heads: int = 8
    num_layers: int = 1
    num_images: int = 4
    pred_missing_mammos: bool = False
    mask_prob: float = 0.0

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> TransformerConfig:
        """Build from the transformer pickle's ``args``; ``transfomer_hidden_dim`` (Mirai's spelling) is H.

        ``hidden_dim`` in the pickled args is H + 100 after the risk-factor pool rewrote it, so H is read from
        ``transfomer_hidden_dim`` only.
        """
        where = "transformer_args"
        hidden = _int(args, "transfomer_hidden_dim", where)
        heads = _int(args, "num_heads", where)
        if hidden % heads:
            raise MiraiConfigError(f"{where}.transfomer_hidden_dim={hidden} is not divisible by num_heads={heads}")
        return cls(
            **cls.head_kwargs(args, where),
            precomputed_hidden_dim=_int(args, "precomputed_hidden_dim", where, 512),
            hidden_dim=hidden,
            num_heads=heads,
            num_layers=_int(args, "num_layers", where),
            num_images=_int(args, "num_images", where, 4),
            pred_missing_mammos=_flag(args, "pred_missing_mammos", where),
            mask_prob=_probability(args, "mask_prob", where),
        )
