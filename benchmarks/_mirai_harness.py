"""Run Mirai's own code (``onconet``, checked out outside this repository) beside this library's port.

Shared by ``benchmarks/mirai_parity.py`` and ``benchmarks/mirai_speed.py``. Nothing of Mirai's source is copied
here: :func:`load_onconet` puts a checkout given by the user on ``sys.path`` and applies, at run time, the few
patches Mirai (written for Python 3.8 / torch 1.9 / torchvision 0.10) needs on this environment; each patch is
recorded in :data:`PATCHES` so the results JSON lists it.

:func:`build_mirai` builds Mirai's image encoder (``custom_resnet``) and view transformer (``transformer``) from
Mirai's own argument parser, with seeded random weights (every parameter and BatchNorm buffer perturbed), and
:func:`save_release` writes them the way Mirai saves snapshots (``torch.save`` of the whole module) under the
release's file names, with a calibrator pickle made of Mirai's own ``MiraiCalibrator`` objects.
"""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from riskmodel.mirai.importer import CALIBRATOR_FILE, ENCODER_FILE, TRANSFORMER_FILE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mirai_seeded import hashed_uniform, seeded_state  # the seeded model the CI golden test rebuilds

__all__ = ["PATCHES", "build_mirai", "load_onconet", "mirai_batch", "mirai_full", "save_release", "seed_weights"]

#: What was changed at run time to make Mirai's code run here (filled by :func:`load_onconet`).
PATCHES: list[dict[str, str]] = []

#: Mirai's released risk-factor keys (``onconet/configs/mirai_trained.json``), as its parser receives them.
RISK_FACTOR_KEYS = (
    "density binary_family_history binary_biopsy_benign binary_biopsy_LCIS binary_biopsy_atypical_hyperplasia age "
    "menarche_age menopause_age first_pregnancy_age prior_hist race parous menopausal_status weight height "
    "ovarian_cancer ovarian_cancer_age ashkenazi brca mom_bc_cancer_history m_aunt_bc_cancer_history "
    "p_aunt_bc_cancer_history m_grandmother_bc_cancer_history p_grantmother_bc_cancer_history "
    "sister_bc_cancer_history mom_oc_cancer_history m_aunt_oc_cancer_history p_aunt_oc_cancer_history "
    "m_grandmother_oc_cancer_history p_grantmother_oc_cancer_history sister_oc_cancer_history hrt_type "
    "hrt_duration hrt_years_ago_stopped"
)


def _patch(name: str, why: str) -> None:
    if not any(p["name"] == name for p in PATCHES):
        PATCHES.append({"name": name, "why": why})


def _torchvision_stub() -> types.ModuleType:
    """The part of torchvision 0.10's ``transforms`` that Mirai's test-time pipeline calls, on PIL images and
    tensors, with torchvision 0.10's semantics (Resize: PIL bilinear; ToTensor: 'I' → int32, 'I;16' → int16,
    8-bit → float/255; Normalize: (x − mean)/std per channel)."""
    from PIL import Image

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    ds = types.ModuleType("torchvision.datasets")

    class Resize:
        def __init__(self, size, interpolation=Image.BILINEAR):
            self.size, self.interpolation = size, interpolation

        def __call__(self, img):
            h, w = self.size
            return img.resize((w, h), self.interpolation)

    class ToTensor:
        def __call__(self, pic):
            types_ = {"I": np.int32, "I;16": np.int16, "F": np.float32}
            arr = np.array(pic, types_.get(pic.mode, np.uint8), copy=True)
            t = torch.from_numpy(arr)
            t = t.view(pic.size[1], pic.size[0], len(pic.getbands())).permute(2, 0, 1).contiguous()
            return t.float().div(255) if t.dtype == torch.uint8 else t

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def __call__(self, t):
            mean = torch.as_tensor(self.mean, dtype=t.dtype).view(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=t.dtype).view(-1, 1, 1)
            return (t - mean) / std

    class Lambda:
        def __init__(self, f):
            self.f = f

        def __call__(self, x):
            return self.f(x)

    class Unavailable:
        def __init__(self, *a, **k):
            raise NotImplementedError("not part of the torchvision stand-in (not used at Mirai's test time)")

    for name, obj in {"Resize": Resize, "ToTensor": ToTensor, "Normalize": Normalize, "Lambda": Lambda}.items():
        setattr(tr, name, obj)
    for name in ("RandomCrop", "Grayscale", "RandomHorizontalFlip", "ToPILImage", "Compose"):
        setattr(tr, name, Unavailable)
    tr.functional = fn
    tv.transforms, tv.datasets = tr, ds
    for m in (tv, tr, fn, ds):
        sys.modules[m.__name__] = m
    return tv


def load_onconet(src: str | Path) -> types.ModuleType:
    """Import Mirai's ``onconet`` from the checkout ``src`` (never copied), patched to run here."""
    src = Path(src).resolve()
    if not (src / "onconet" / "models" / "mirai_full.py").is_file():
        raise SystemExit(f"{src}: not a checkout of Mirai (no onconet/models/mirai_full.py)")
    sys.path.insert(0, str(src))
    if importlib.util.find_spec("torchvision") is None:
        _torchvision_stub()
        _patch("sys.modules['torchvision'] stand-in",
               "torchvision is not installed in this venv; Mirai imports it at module level and uses only "
               "transforms.Resize/ToTensor/Normalize/Lambda at test time (re-implemented with 0.10's semantics)")
    original_load = torch.load

    def load_whole_module(*a: Any, **k: Any) -> Any:
        k.setdefault("weights_only", False)
        return original_load(*a, **k)

    torch.load = load_whole_module
    _patch("torch.load(weights_only=False) default for Mirai's load_model",
           "torch >= 2.6 defaults to weights_only=True, which refuses whole pickled modules (Mirai's snapshot "
           "format); only Mirai's code loads the files this run wrote itself")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    onconet = importlib.import_module("onconet")
    for m in ("onconet.models.mirai_full", "onconet.models.custom_resnet", "onconet.models.hiddens_transfomer",
              "onconet.models.calibrator", "onconet.models.pools.factory", "onconet.utils.parsing"):
        importlib.import_module(m)
    for m in ("onconet.models.pools.max_pool", "onconet.models.pools.attention_pool",
              "onconet.models.pools.average_pool", "onconet.models.pools.risk_factor_pool"):
        importlib.import_module(m)
    return onconet


def _empty_metadata() -> list[str]:
    """Empty metadata files: Mirai's ``RiskFactorVectorizer`` (built by every risk-factor pool) reads the
    training metadata JSONs only to fill per-patient factors, none of which are used here."""
    import json
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mirai-metadata-"))
    (folder / "metadata.json").write_text(json.dumps([]))
    (folder / "risk_factors.json").write_text(json.dumps({}))
    _patch("empty --metadata_path/--risk_factor_metadata_path JSON files",
           "Mirai's RiskFactorVectorizer opens its training metadata when a model is built; empty files stand in")
    return ["--metadata_path", str(folder / "metadata.json"),
            "--risk_factor_metadata_path", str(folder / "risk_factors.json")]


def mirai_args(extra: list[str]) -> argparse.Namespace:
    """Mirai's own ``parse_args()`` on an argument list (its parser reads ``sys.argv``)."""
    from onconet.utils import parsing

    saved = sys.argv
    sys.argv = ["mirai", *_empty_metadata(), *extra]
    try:
        args = parsing.parse_args()
    finally:
        sys.argv = saved
    args.num_classes = 2  # set by Mirai's dataset classes (all its mammography datasets use 2), not the parser
    return args


def build_mirai(hidden: int = 512, heads: int = 8, pool: str = "GlobalMaxPool",
                dropout: float = 0.0) -> tuple[nn.Module, nn.Module]:
    """Mirai's image encoder and view transformer, built by Mirai's factory from its released settings
    (``configs/mirai_base.json`` for the encoder; ``configs/mirai_full.json``'s grid for the transformer: H, heads
    and pool are only inside the release's pickle, so they are parameters)."""
    from onconet.models.factory import get_model_by_name

    common = ["--survival_analysis_setup", "--use_risk_factors", "--pred_risk_factors", "--max_followup", "5",
              "--risk_factor_keys", *RISK_FACTOR_KEYS.split(), "--num_chan", "3", "--dropout", str(dropout)]
    enc_args = mirai_args([*common, "--model_name", "custom_resnet", "--pool_name", "GlobalMaxPool",
                           "--block_layout", "BasicBlock,2", "BasicBlock,2", "BasicBlock,2", "BasicBlock,2",
                           "--img_mean", "7047.99", "--img_std", "12005.5", "--img_size", "1664", "2048"])
    enc_args.pretrained_on_imagenet = False
    encoder = get_model_by_name("custom_resnet", False, enc_args)
    tr_args = mirai_args([*common, "--model_name", "transformer", "--use_precomputed_hiddens",
                          "--transfomer_hidden_dim", str(hidden), "--num_heads", str(heads), "--num_layers", "1",
                          "--pool_name", pool, "--num_images", "4", "--min_num_images", "4", "--multi_image"])
    tr_args.precomputed_hidden_dim = encoder._model.args.img_only_dim
    transformer = get_model_by_name("transformer", False, tr_args)
    return encoder.eval(), transformer.eval()


def seed_weights(module: nn.Module, prefix: str, seed: int) -> nn.Module:
    """Seeded weights: every parameter and buffer (BatchNorm running statistics included) set from its name
    ``prefix + name`` by ``tests/mirai_seeded.seeded_state`` (the hazard layer's fixed triangular mask kept)."""
    state = module.state_dict()
    seeded = seeded_state([(prefix + k, tuple(v.shape), v.dtype) for k, v in state.items()], seed)
    module.load_state_dict({k: seeded[prefix + k] for k in state}, strict=True)
    return module


def calibrators(seed: int) -> dict[int, Any]:
    """Per-year ``onconet.models.calibrator.MiraiCalibrator`` objects with seeded, non-trivial parameters of the
    released calibrator's form (slope/offset arrays as sklearn's ``coef_[0]``/``intercept_[0]`` give them)."""
    from onconet.models.calibrator import MiraiCalibrator

    u = hashed_uniform("calibrators", 20, seed).reshape(5, 4)
    return {k: MiraiCalibrator(np.array([2 + 4 * a]), np.float64(-5 + 2 * b), np.float64(-1.5 + c),
                               np.float64(2 * d - 1)) for k, (a, b, c, d) in enumerate(u)}


def save_release(folder: Path, encoder: nn.Module, transformer: nn.Module, cal: dict[int, Any]) -> Path:
    """Write the modules as Mirai saves snapshots (``torch.save(model)``) and the calibrator pickle, under the
    release's names in ``folder``."""
    (folder / "calibrators").mkdir(parents=True, exist_ok=True)
    torch.save(encoder, folder / ENCODER_FILE)
    torch.save(transformer, folder / TRANSFORMER_FILE)
    with open(folder / CALIBRATOR_FILE, "wb") as f:
        pickle.dump(cal, f)
    return folder


def mirai_full(folder: Path, if_unk: bool = False) -> nn.Module:
    """Mirai's inference model (``MiraiFull``) loading the two snapshots from ``folder`` by Mirai's own code, with
    the released inference settings (``use_pred_risk_factors_at_test``); ``if_unk`` adds
    ``--use_pred_risk_factors_if_unk`` (a supplied factor replaces the prediction; not set in the release)."""
    from onconet.models.mirai_full import MiraiFull

    args = mirai_args(["--model_name", "mirai_full", "--img_encoder_snapshot", str(folder / ENCODER_FILE),
                       "--transformer_snapshot", str(folder / TRANSFORMER_FILE), "--pred_risk_factors",
                       "--use_pred_risk_factors_at_test", "--use_risk_factors", "--survival_analysis_setup",
                       "--max_followup", "5", "--num_images", "4", "--min_num_images", "4", "--multi_image",
                       "--risk_factor_keys", *RISK_FACTOR_KEYS.split(),
                       *(["--use_pred_risk_factors_if_unk"] if if_unk else [])])
    return MiraiFull(args).eval()


def mirai_batch(images: torch.Tensor, view: list[int], side: list[int]) -> dict[str, torch.Tensor]:
    """Mirai's batch dict for ``images`` (B, N, C, H, W): ``x`` (B, C, N, H, W) as ``collate_batch`` builds it, and
    the view/side/time codes."""
    b, n = images.shape[:2]
    view_seq = torch.tensor(view).expand(b, n)
    return {"x": images.transpose(1, 2).contiguous(), "view_seq": view_seq,
            "side_seq": torch.tensor(side).expand(b, n), "time_seq": torch.zeros_like(view_seq)}


def _pillow9_open_mode() -> None:
    """Pillow >= 10 opens dcmj2pnm's 16-bit PNG as mode 'I;16', which torchvision 0.10's ToTensor reads as int16
    (values above 32767 wrap); Mirai's pinned Pillow 9.0 opened it as 'I' (int32). Open such files as 'I'."""
    import onconet.utils.dicom as mirai_dicom
    from PIL import Image

    if getattr(mirai_dicom, "_riskmodel_patched", False):
        return
    opener = mirai_dicom.Image.open

    def open_as_pillow9(path: Any) -> Image.Image:
        img = opener(path)
        return img.convert("I") if img.mode == "I;16" else img

    mirai_dicom.Image = types.SimpleNamespace(**{**vars(Image), "open": open_as_pillow9})
    mirai_dicom._riskmodel_patched = True
    _patch("16-bit PNG opened as mode 'I' (Pillow 9.0's behaviour)",
           "current Pillow opens dcmj2pnm's 16-bit PNG as 'I;16', which torchvision 0.10's ToTensor would read "
           "as int16; Mirai's pinned Pillow 9.0 gave mode 'I' (int32)")


def mirai_exam_from_dicom(paths: list[Path], dcmtk: bool, size_hw: tuple[int, int]) -> tuple[torch.Tensor, list,
                                                                                               list]:
    """Mirai's own DICOM → tensor path for one exam, as its ``run_model``/``process_exam`` do it: view and side
    codes by ``get_dicom_info``; pixels by ``dicom_to_image_dcmtk`` (``dcmj2pnm``; GE VOI-LUT / C-View / min-max
    as its code decides) or ``dicom_to_arr(window_method='minmax', pillow=True)``; then its test transformers
    (scale_2d, align_to_left, ToTensor, force_num_chan_2d, normalize_2d) at ``size_hw``.

    Returns (1, N, 3, H, W) images, view codes, side codes."""
    import tempfile

    import pydicom
    from onconet.transformers import factory as transformer_factory
    from onconet.transformers.basic import ComposeTrans
    from onconet.utils import dicom as mirai_dicom

    _pillow9_open_mode()
    h, w = size_hw
    args = mirai_args(["--img_size", str(w), str(h), "--img_mean", "7047.99", "--img_std", "12005.5",
                       "--num_chan", "3", "--test_image_transformers", "scale_2d", "align_to_left",
                       "--test_tensor_transformers", "force_num_chan_2d", "normalize_2d"])
    transforms = ComposeTrans(transformer_factory.get_transformers(args.test_image_transformers,
                                                                   args.test_tensor_transformers, args))
    images, views, sides = [], [], []
    for path in paths:
        view, side = mirai_dicom.get_dicom_info(pydicom.dcmread(path, stop_before_pixels=True))
        if dcmtk:
            with tempfile.NamedTemporaryFile(suffix=".png") as png:
                image = mirai_dicom.dicom_to_image_dcmtk(str(path), png.name)
                image.load()
        else:
            image = mirai_dicom.dicom_to_arr(pydicom.dcmread(path), window_method="minmax", pillow=True)
        images.append(transforms(image))
        views.append(int(view))
        sides.append(int(side))
    return torch.stack(images).unsqueeze(0), views, sides
