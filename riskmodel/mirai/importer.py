"""Import Mirai's released snapshots into a verified riskmodel bundle, without running any pickle.

Mirai's fork (``reginabarzilaygroup/Mirai``) publishes its trained model as the GitHub release asset
``snapshots.zip`` (v0.8.0), holding :data:`ENCODER_FILE`, :data:`TRANSFORMER_FILE` and :data:`CALIBRATOR_FILE`.
:func:`import_mirai` reads them with :mod:`riskmodel.mirai.unpickle` (allowlisted globals only, tensors rebuilt
from bytes) and writes a bundle (:func:`riskmodel.bundle.save_bundle`)::

    weights.safetensors   every parameter and buffer, named as the onconet module's state_dict() names it,
                          prefixed "encoder." (image encoder) and "transformer." (view transformer)
    config.json           {"kind": "mirai", "encoder_args": {...}, "transformer_args": {...},
                           "encoder_class", "transformer_class", "args_skipped", "calibration": {...},
                           "sources": {release file name: sha256}}
    preprocessing.json    Mirai's image settings found in the encoder's args (img_size, img_mean, img_std, …)
    metadata.json         user metadata: {"imported_from": "Mirai", "sources": {...}, "archive": {...}}

``config["calibration"]`` is :meth:`riskmodel.mirai.calibrator.MiraiCalibration.to_dict` (four numbers per year).
It is not the bundle's ``calibration.json``: that file must be a :class:`riskmodel.calibration.YearlyCalibrator`,
whose methods (isotonic, Platt on the logit) cannot express Mirai's map, and whose ``predict`` makes risks
non-decreasing over the years, which Mirai does not.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from riskmodel.bundle import save_bundle
from riskmodel.mirai.calibrator import MiraiCalibration
from riskmodel.mirai.unpickle import (
    ModuleRecord,
    NamespaceRecord,
    ObjectRecord,
    SnapshotFormatError,
    read_pickle,
    read_torch_file,
)

__all__ = ["CALIBRATOR_FILE", "ENCODER_FILE", "RELEASE_FILES", "TRANSFORMER_FILE", "import_mirai"]

#: The image encoder (ResNet-18 variant with its risk-factor pool and hazard head), ``torch.save`` of the module.
ENCODER_FILE = "mgh_mammo_MIRAI_Base_May20_2019.p"
#: The view transformer (``AllImageTransformer``), ``torch.save`` of the module.
TRANSFORMER_FILE = "mgh_mammo_cancer_MIRAI_Transformer_Jan13_2020.p"
#: Per-year calibrators, a plain pickle of ``{0..4: MiraiCalibrator}``.
CALIBRATOR_FILE = "calibrators/Mirai_calibrator_mar12_2022.p"
RELEASE_FILES = (ENCODER_FILE, TRANSFORMER_FILE, CALIBRATOR_FILE)

#: Largest snapshot file read (bytes); Mirai's are tens of megabytes.
MAX_FILE_BYTES = 2 << 30
#: Encoder ``args`` copied into ``preprocessing.json`` when present.
PREPROCESSING_ARGS = ("img_size", "img_mean", "img_std", "num_chan", "test_image_transformers",
                      "test_tensor_transformers", "num_images", "min_num_images", "max_followup")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_regular(path: Path, limit: int) -> bytes:
    if path.is_symlink() or not path.is_file():
        raise SnapshotFormatError(f"{path}: missing or not a regular file (symbolic links are refused)")
    size = path.stat().st_size
    if size > limit:
        raise SnapshotFormatError(f"{path}: {size} bytes, more than the limit of {limit}; not read")
    with open(path, "rb") as f:
        return f.read(limit + 1)


def _read_sources(snapshots: Path, limit: int) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The three release files' bytes (by release name) from a folder or ``snapshots.zip``, and a note on the
    archive (its SHA-256 when a zip). A zip's entries may sit under one top folder; each name must match once."""
    if snapshots.is_dir():
        return {name: _read_regular(snapshots / name, limit) for name in RELEASE_FILES}, {}
    data = _read_regular(snapshots, limit * len(RELEASE_FILES))
    try:
        zf = zipfile.ZipFile(snapshots)
    except zipfile.BadZipFile:
        raise SnapshotFormatError(f"{snapshots}: neither a folder nor a zip (expected the release's snapshots.zip "
                                  f"or a folder holding {', '.join(RELEASE_FILES)})") from None
    out: dict[str, bytes] = {}
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for name in RELEASE_FILES:
            hits = [i for i in infos if i.filename == name or i.filename.endswith("/" + name)]
            if len(hits) != 1:
                what = "no entry" if not hits else f"{len(hits)} entries ({', '.join(i.filename for i in hits)})"
                raise SnapshotFormatError(f"{snapshots}: {what} named {name!r}; the release zip holds each of "
                                          f"{', '.join(RELEASE_FILES)} once")
            if hits[0].file_size > limit:
                raise SnapshotFormatError(f"{snapshots}: {hits[0].filename} expands to {hits[0].file_size} bytes, "
                                          f"more than the limit of {limit}; not read")
            out[name] = zf.read(hits[0])
    return out, {"file": snapshots.name, "sha256": _sha256(data)}


def _unwrap(obj: Any, where: str) -> ModuleRecord:
    """The model module as Mirai's ``load_model`` finds it: ``{'model': m}`` → ``m``; ``DataParallel`` → ``.module``."""
    if isinstance(obj, dict) and "model" in obj:
        obj = obj["model"]
    if isinstance(obj, ModuleRecord) and obj.fullname == "torch.nn.parallel.data_parallel.DataParallel":
        obj = obj.children.get("module")
    if not isinstance(obj, ModuleRecord) or not obj.module.startswith("onconet."):
        got = obj.fullname if isinstance(obj, ObjectRecord) else type(obj).__name__
        raise SnapshotFormatError(f"{where}: expected a pickled onconet model, got {got}")
    return obj


def _model_args(model: ModuleRecord, where: str) -> NamespaceRecord:
    """The module's ``args`` Namespace, or (the encoder's ``CustomResnet``) that of its ``_model`` child."""
    for m in (model, model.children.get("_model")):
        args = m.attrs.get("args") if isinstance(m, ModuleRecord) else None
        if isinstance(args, NamespaceRecord):
            return args
    raise SnapshotFormatError(f"{where}: {model.fullname} carries no argparse.Namespace 'args' (nor does its "
                              "'_model'); the hyperparameters of the released model are only there")


def _json_value(v: Any) -> tuple[bool, Any]:
    """``(True, JSON value)`` for str/bool/int/finite float/None and lists, tuples and str-keyed dicts of them."""
    if v is None or isinstance(v, (bool, str, int)):
        return True, v
    if isinstance(v, float):
        return math.isfinite(v), v
    if isinstance(v, (list, tuple)):
        items = [_json_value(x) for x in v]
        return all(ok for ok, _ in items), [x for _, x in items]
    if isinstance(v, dict):
        items = {k: _json_value(x) for k, x in v.items()}
        ok = all(isinstance(k, str) for k in v) and all(ok for ok, _ in items.values())
        return ok, {k: x for k, (_, x) in items.items()}
    return False, None


def _args_json(args: NamespaceRecord) -> tuple[dict[str, Any], list[str]]:
    """JSON-able attributes of a Namespace (sorted) and the names of those left out."""
    out, skipped = {}, []
    for k in sorted(args.attrs):
        ok, v = _json_value(args.attrs[k])
        if ok:
            out[k] = v
        else:
            skipped.append(k)
    return out, skipped


def _state_dict(model: ModuleRecord, prefix: str, where: str) -> dict[str, torch.Tensor]:
    try:
        return {name: t.tensor() for name, t in model.named_tensors(prefix)}
    except SnapshotFormatError as e:
        raise SnapshotFormatError(f"{where}: {e}") from None


def import_mirai(snapshots: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False,
                 max_file_bytes: int = MAX_FILE_BYTES) -> Path:
    """Convert Mirai's released snapshots into a bundle at ``out`` and return its path. Nothing is unpickled by
    ``pickle.load`` or ``torch.load``: see :mod:`riskmodel.mirai.unpickle`.

    Args:
        snapshots: the release's ``snapshots.zip``, or a folder holding :data:`RELEASE_FILES` under their names.
        out: the bundle folder to write (see :func:`riskmodel.bundle.save_bundle`).
        overwrite: replace an existing bundle at ``out``.
        max_file_bytes: largest snapshot file read (bytes); checked before reading.

    Raises:
        riskmodel.mirai.unpickle.ForbiddenGlobalError: a file names a global outside the allowlist (the message
            names the file and the global; nothing in it ran).
        riskmodel.mirai.unpickle.SnapshotFormatError: a file is missing, too large, or not in Mirai's format.
        ValueError: the calibrator is not Mirai's per-year dict.
        FileExistsError: ``out`` exists (see :func:`~riskmodel.bundle.save_bundle`).
    """
    src = Path(snapshots)
    files, archive = _read_sources(src, max_file_bytes)
    sources = {name: _sha256(data) for name, data in files.items()}
    state: dict[str, torch.Tensor] = {}
    config: dict[str, Any] = {"kind": "mirai"}
    skipped: dict[str, list[str]] = {}
    for part, name in (("encoder", ENCODER_FILE), ("transformer", TRANSFORMER_FILE)):
        where = f"{src}: {name}"
        model = _unwrap(read_torch_file(files[name], where, max_bytes=max_file_bytes), where)
        args, skipped[part] = _args_json(_model_args(model, where))
        config[f"{part}_args"] = args
        config[f"{part}_class"] = model.fullname
        state.update(_state_dict(model, f"{part}.", where))
    where = f"{src}: {CALIBRATOR_FILE}"
    calibration = MiraiCalibration.from_pickled(read_pickle(files[CALIBRATOR_FILE], where), where)
    config["args_skipped"] = skipped
    config["calibration"] = calibration.to_dict()
    config["sources"] = sources
    enc = config["encoder_args"]
    preprocessing = {"kind": "mirai", "from": f"{ENCODER_FILE} args",
                     **{k: enc[k] for k in PREPROCESSING_ARGS if k in enc}}
    metadata = {"imported_from": "Mirai (reginabarzilaygroup/Mirai release snapshots)", "sources": sources,
                "archive": archive}
    return save_bundle(out, state, config=config, preprocessing=preprocessing, metadata=metadata,
                       overwrite=overwrite)


def bundle_calibration(config: Mapping[str, Any]) -> MiraiCalibration:
    """The :class:`MiraiCalibration` an imported bundle's ``config.json`` holds."""
    return MiraiCalibration.from_dict(config.get("calibration"))
