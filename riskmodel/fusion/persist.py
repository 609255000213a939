"""The saved form of a hybrid model: a folder, checked completely before anything is built.

The folder (written by :func:`write_hybrid`, behind :meth:`riskmodel.fusion.HybridModel.save`)::

    image/          the image model: a riskmodel.bundle (safetensors + JSON + its own manifest)
    fusion.json     the fusion state (HybridModel.to_dict): FactorEncoder, head and factors-only head,
                    recalibrator, matching keys, plus the image bundle's digest and the user's metadata
    manifest.json   format tag and version, SHA-256 and size of fusion.json, and "image": "image"

:func:`read_hybrid` (behind :func:`riskmodel.fusion.load_hybrid`) checks, in order: the manifest
(:data:`FOLDER_FORMAT`, the rules of every saved kind in :mod:`riskmodel.jsonstate`: format,
version, the files it lists; at most 1 MiB); the folder holds nothing but ``manifest.json``,
``fusion.json`` and ``image/``, and no symbolic link; fusion.json's size (by ``stat``, before it is
read) and SHA-256; fusion.json is strict JSON of the fusion state's format; the image bundle
(:func:`riskmodel.load_image_model`, which verifies its own manifest and contents); the image
bundle's digest against the one recorded in fusion.json. Nothing is pickled. Rebuilding the
estimator from the checked state (shapes, finite and bounded numbers) is
:func:`riskmodel.fusion.load_hybrid`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskmodel.jsonstate import (
    MANIFEST,
    BundleFormatError,
    BundleIntegrityError,
    FolderFormat,
    dump_json,
    jsonable,
    manifest_digest,
    parse_json,
    prepare_target,
    read_listed,
    staged_folder,
    write_file,
)

__all__ = ["FOLDER_FORMAT", "FORMAT", "FORMAT_VERSION", "FUSION", "IMAGE", "STATE_FORMAT", "SavedHybrid",
           "read_hybrid", "write_hybrid"]

#: The ``format`` tag and version of a saved hybrid model's ``manifest.json``.
FORMAT = "riskmodel-hybrid"
FORMAT_VERSION = 1
#: The ``format`` tag of ``fusion.json`` (:meth:`HybridModel.to_dict`); its version is :data:`FORMAT_VERSION`.
STATE_FORMAT = "riskmodel.fusion.HybridModel"
FUSION = "fusion.json"
IMAGE = "image"

#: What a saved hybrid model's folder and manifest hold.
FOLDER_FORMAT = FolderFormat(
    format=FORMAT, version=FORMAT_VERSION, kind="saved hybrid model", files=(FUSION,), folders=(IMAGE,),
    fields={"image": IMAGE}, saved_by="HybridModel.save",
    hints={"riskmodel-bundle": "this is an image bundle: load it with riskmodel.load_image_model"})


@dataclass
class SavedHybrid:
    """A saved hybrid model's checked contents.

    Attributes:
        state: fusion.json, parsed (``format`` and ``format_version`` checked).
        image: the image model, loaded and verified (an ``ImageRiskPredictor``).
        digest: the folder's digest (:func:`riskmodel.jsonstate.manifest_digest` of its manifest).
        path: the folder.
        state_path: ``path / "fusion.json"``, for messages about the state.
    """

    state: dict[str, Any]
    image: Any
    digest: str
    path: Path
    state_path: Path


def write_hybrid(path: str | os.PathLike[str], state: dict[str, Any], image_model: Any, *, overwrite: bool = False,
                 metadata: dict[str, Any] | None = None) -> Path:
    """Write a saved hybrid model's folder at ``path`` and return it.

    Args:
        path: the folder to create; it may exist only if empty or, with ``overwrite=True``, if it
            holds a saved hybrid model and nothing else.
        state: the fusion state (:meth:`HybridModel.to_dict`), JSON-safe.
        image_model: the image model (``ImageRiskPredictor``), saved as the ``image/`` bundle.
        overwrite: replace a saved hybrid model.
        metadata: free-form JSON metadata stored in ``fusion.json`` under ``"metadata"``.

    The folder is written next to ``path`` under a temporary name and then renamed.

    Raises:
        FileExistsError: ``path`` exists and may not be replaced.
    """
    from riskmodel.bundle import bundle_digest  # torch, deferred

    path = Path(path)
    prepare_target(path, overwrite, {MANIFEST, FUSION}, "a saved hybrid model", folders=frozenset({IMAGE}))
    with staged_folder(path) as tmp:
        image_model.save(tmp / IMAGE)
        state = dict(state)
        state["image_bundle_digest"] = bundle_digest(tmp / IMAGE)
        state["metadata"] = jsonable(dict(metadata or {}), "metadata")
        data = dump_json(state)
        write_file(tmp / FUSION, data)
        write_file(tmp / MANIFEST, dump_json(FOLDER_FORMAT.manifest({FUSION: data})))
    return path


def read_hybrid(path: str | os.PathLike[str], *, device: str = "auto") -> SavedHybrid:
    """Check the saved hybrid model's folder ``path`` (in the order of the module docstring) and load
    its parts, the image model on ``device``. Raises the errors :func:`riskmodel.fusion.load_hybrid`
    documents: ``BundleIntegrityError`` (a file changed, missing or unexpected, another image
    bundle) or ``BundleFormatError`` (not a saved hybrid model, unreadable contents)."""
    from riskmodel.bundle import bundle_digest  # torch, deferred
    from riskmodel.mirai.adapter import load_image_bundle

    folder = Path(path)
    manifest = FOLDER_FORMAT.open(folder)
    fpath = folder / FUSION
    state = parse_json(read_listed(fpath, manifest["files"][FUSION]), fpath)
    if state.get("format") != STATE_FORMAT or state.get("format_version") != FORMAT_VERSION:
        raise BundleFormatError(fpath, f"not a {STATE_FORMAT} state of version {FORMAT_VERSION}")
    image = load_image_bundle(folder / IMAGE, device=device)  # riskmodel's image bundle or an imported Mirai
    digest = bundle_digest(folder / IMAGE, verify=False)  # the loader has just verified every file
    if digest != state.get("image_bundle_digest"):
        raise BundleIntegrityError(folder / IMAGE, "is not the image bundle this fusion head was fitted on "
                                                   f"(digest {digest}, fusion.json expects "
                                                   f"{state.get('image_bundle_digest')})")
    return SavedHybrid(state=state, image=image, digest=manifest_digest(manifest), path=folder, state_path=fpath)
