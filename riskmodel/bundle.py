"""Model bundles: a trained model as a folder of safetensors and JSON, with a hash manifest.

A bundle is a folder holding exactly these files::

    weights.safetensors   the state dict (tensor name → tensor), safetensors format
    config.json           architecture config (a JSON object, e.g. ModelConfig.to_dict())
    preprocessing.json    how images must be prepared (image size, view order, version, …)
    calibration.json      optional: YearlyCalibrator.to_dict() (riskmodel.calibration)
    metadata.json         library name and version, creation time (UTC), torch version, and
                          the user's free-form metadata (training data, metrics, …) under "user"
    manifest.json         format tag and version, and the SHA-256 and size of every other file

Security properties (Mirai ships its weights and calibrators as pickled modules, which run
code on load and break when a class is renamed; a bundle avoids both):

* nothing is unpickled: tensors are read by ``safetensors`` (a JSON header plus raw bytes),
  everything else is JSON; this module never calls ``pickle`` or ``torch.load``;
* the manifest is read and checked *before* any other file is parsed: every file must be
  listed, every listed file must be present, and (with ``verify=True``, the default) its
  size and SHA-256 must match. A file not in the manifest, such as a ``.pkl`` or ``.pt``
  dropped into the folder, is an error, never loaded;
* nothing in the folder may be a symbolic link, and each file's size (``stat``) is compared with
  the manifest before the file is read, so memory is bounded by the sizes the manifest states;
* each file is read once: the bytes that are hashed are the bytes that are parsed;
* JSON is parsed strictly (no NaN/Infinity, no duplicate keys, objects only at the top);
* the safetensors header is parsed here (length capped) and its tensor names, dtypes and shapes
  are offered to the caller's ``check`` before any tensor is decoded; every floating-point
  tensor must be finite.

Errors::

    BundleError (ValueError)      .path names the file (or folder), .rule the problem
    ├── BundleIntegrityError      hash or size mismatch, file missing, unexpected file
    └── BundleFormatError         not a folder, no manifest, bad JSON, unknown format version,
                                  weights not in safetensors format

The manifest, the folder checks, the strict JSON and the error classes are those of every saved kind
(:mod:`riskmodel.jsonstate`, :data:`FOLDER_FORMAT`); the error classes are importable from here too.

The manifest's hashes say the files are the ones the bundle was saved with; they do not say
who saved it. Compare :func:`bundle_digest` with the digest the publisher announces to know
that a bundle is the published one.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors
import torch
from safetensors.torch import load as _load_safetensors_bytes
from safetensors.torch import save as _safetensors_bytes

from riskmodel.jsonstate import (
    MANIFEST,
    BundleError,
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

if TYPE_CHECKING:
    from riskmodel.calibration import YearlyCalibrator

__all__ = [
    "FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "OPTIONAL_FILES",
    "Bundle",
    "BundleError",
    "BundleFormatError",
    "BundleIntegrityError",
    "bundle_digest",
    "load_bundle",
    "save_bundle",
    "verify_bundle",
]

#: The ``format`` tag and version written in ``manifest.json``.
FORMAT = "riskmodel-bundle"
FORMAT_VERSION = 1

WEIGHTS = "weights.safetensors"
#: Every file a bundle may hold besides the manifest.
FILES = (WEIGHTS, "config.json", "preprocessing.json", "calibration.json", "metadata.json")
#: Files that may be absent.
OPTIONAL_FILES = ("calibration.json",)
#: What a bundle folder and its manifest hold (MANIFEST and MAX_MANIFEST_BYTES: riskmodel.jsonstate).
FOLDER_FORMAT = FolderFormat(format=FORMAT, version=FORMAT_VERSION, kind="bundle", files=FILES,
                             optional=OPTIONAL_FILES)

#: Largest safetensors JSON header read (bytes); safetensors itself caps it at 100 MB.
MAX_HEADER_BYTES = 100 << 20
#: Bytes per element of each safetensors dtype.
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: A tensor as the safetensors header describes it: (dtype such as ``"F32"``, shape).
TensorSpec = tuple[str, tuple[int, ...]]


@dataclass
class Bundle:
    """A loaded bundle.

    Attributes:
        state_dict: tensor name → CPU tensor, as saved.
        config: architecture config (``config.json``).
        preprocessing: preprocessing settings (``preprocessing.json``).
        calibration: ``YearlyCalibrator.to_dict()`` output, or None if the bundle has none.
        metadata: ``metadata.json``: ``library``, ``library_version``, ``created_utc``,
            ``torch_version``, ``safetensors_version`` and the user's dict under ``user``.
        path: the bundle folder.
        digest: :func:`bundle_digest` of the bundle.
        tensors: tensor name → ``(dtype, shape)`` from the safetensors header (dtype as safetensors
            names it, e.g. ``"F32"``), in the saved order; filled before any tensor is decoded.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    calibration: dict[str, Any] | None
    metadata: dict[str, Any]
    path: Path
    digest: str = ""
    tensors: dict[str, TensorSpec] = field(default_factory=dict)

    def calibrator(self) -> YearlyCalibrator | None:
        """The bundle's :class:`~riskmodel.calibration.YearlyCalibrator`, or None."""
        from riskmodel.calibration import YearlyCalibrator

        return None if self.calibration is None else YearlyCalibrator.from_dict(self.calibration)


def safetensors_header(data: bytes, path: Path) -> tuple[dict[str, TensorSpec], dict[str, str]]:
    """Tensor names, dtypes and shapes, and the metadata map, from a safetensors file's header.

    The format: 8 bytes of little-endian header length ``n`` (capped at :data:`MAX_HEADER_BYTES`),
    ``n`` bytes of JSON (``name → {dtype, shape, data_offsets}`` and ``__metadata__``), then the
    tensor bytes. Each tensor's byte range must match its dtype and shape, and the ranges must tile
    the data exactly, so the shapes returned are the ones safetensors will decode.

    Returns:
        (name → (dtype, shape) in header order, metadata map).

    Raises:
        BundleFormatError: naming the file and the tensor or field.
    """
    if len(data) < 8:
        raise BundleFormatError(path, "not a valid safetensors file: shorter than its 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES or n > len(data) - 8:
        raise BundleFormatError(path, f"not a valid safetensors file: header length {n} bytes exceeds "
                                      f"{'the file' if n <= MAX_HEADER_BYTES else f'the cap of {MAX_HEADER_BYTES}'}")
    header = parse_json(data[8:8 + n], path)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise BundleFormatError(path, "safetensors header: __metadata__ must map str to str")
    specs: dict[str, TensorSpec] = {}
    ranges = []
    for name, t in header.items():
        ok = (isinstance(t, dict) and t.get("dtype") in _DTYPE_BYTES and isinstance(t.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in t["shape"])
              and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2
              and all(isinstance(o, int) and not isinstance(o, bool) for o in t["data_offsets"]))
        if not ok:
            raise BundleFormatError(path, f"safetensors header: tensor {name!r} must have a known dtype, a shape of "
                                          f"non-negative ints and two data_offsets, got {t!r}")
        begin, end = t["data_offsets"]
        if end - begin != math.prod(t["shape"]) * _DTYPE_BYTES[t["dtype"]]:
            raise BundleFormatError(path, f"safetensors header: tensor {name!r}: data_offsets {t['data_offsets']} "
                                          f"do not hold a {t['dtype']} tensor of shape {t['shape']}")
        specs[name] = (t["dtype"], tuple(t["shape"]))
        ranges.append((begin, end))
    position = 0
    for begin, end in sorted(ranges):
        if begin != position:
            raise BundleFormatError(path, "safetensors header: tensor data ranges overlap or leave gaps")
        position = end
    if position != len(data) - 8 - n:
        raise BundleFormatError(path, f"safetensors header: tensors hold {position} bytes, the file "
                                      f"{len(data) - 8 - n} bytes of data")
    return specs, meta


def check_tensor_shapes(expected: Mapping[str, tuple[int, ...]], actual: Mapping[str, tuple[int, ...]],
                        where: str) -> None:
    """``actual`` must have exactly the tensor names of ``expected``, each with the same shape.

    Args:
        expected: name → shape the architecture implies (e.g. from a model built on the ``meta``
            device, which allocates nothing).
        actual: name → shape found in the file.
        where: prefix of the message (the file and the field).

    Raises:
        ValueError: naming the first missing, unexpected or mis-shaped tensor.
    """
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    if missing or extra:
        raise ValueError(f"{where}: tensors missing {missing[:5]}{' …' if len(missing) > 5 else ''}, unexpected "
                         f"{extra[:5]}{' …' if len(extra) > 5 else ''}")
    for k, shape in expected.items():
        if tuple(actual[k]) != tuple(shape):
            raise ValueError(f"{where}: tensor {k!r} has shape {list(actual[k])}, expected {list(shape)}")


def meta_state(build: Callable[[], torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The state dict of the module ``build()`` makes, built on the ``meta`` device: tensors with
    shapes and dtypes but no memory, however large the architecture."""
    with torch.device("meta"):
        return dict(build().state_dict())


def _check_finite(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    for name, t in state_dict.items():
        if (t.is_floating_point() or t.is_complex()) and t.numel() and not bool(torch.isfinite(t).all()):
            raise BundleFormatError(path, f"tensor {name!r} holds NaN or infinite values")


# ---------------------------------------------------------------------------------------
# Saving (the folder, manifest and JSON conventions: riskmodel.jsonstate)


def _prepare_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that share no memory (safetensors refuses shared storage)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of str → torch.Tensor, got {type(state_dict).__name__}")
    if not state_dict:
        raise ValueError("state_dict: is empty")
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"state_dict: key {name!r} is a {type(name).__name__}, not a str")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}]: a {type(t).__name__}, not a torch.Tensor")
        t = t.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        if t.numel() and (storage.data_ptr() in seen or storage.nbytes() != t.numel() * t.element_size()):
            t = t.clone()  # a view into a larger or shared storage: store its own copy
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _metadata(user: Mapping[str, Any] | None) -> dict[str, Any]:
    from riskmodel.version import __version__

    if user is not None and not isinstance(user, Mapping):
        raise TypeError(f"metadata: expected a dict, got {type(user).__name__}")

    return {
        "library": "riskmodel",
        "library_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "safetensors_version": safetensors.__version__,
        "user": jsonable(dict(user or {}), "metadata"),
    }


def save_bundle(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    config: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    calibration: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bundle folder at ``path`` and return its path.

    Args:
        path: the folder to create. It may exist only if it is empty, or, with
            ``overwrite=True``, if it holds nothing but bundle files (an older bundle);
            any other folder is never deleted.
        state_dict: tensor name → tensor (``model.state_dict()``); tensors are saved as
            contiguous CPU copies, in their own dtype.
        config, preprocessing: dicts with str keys and JSON values (numpy numbers and arrays
            are converted; tuples become lists).
        calibration: ``YearlyCalibrator.to_dict()``, checked by ``YearlyCalibrator.from_dict``.
        metadata: the user's free-form metadata (training data, metrics, …), stored under
            ``"user"`` in ``metadata.json``.
        overwrite: replace an existing bundle.

    The files are written to a temporary folder next to ``path``, which is then renamed, so
    a crash never leaves a half-written bundle at ``path``.

    Raises:
        FileExistsError: ``path`` exists and is not an empty folder (and overwrite is off, or
            it holds files other than a bundle's).
        TypeError, ValueError: an argument cannot be stored (the message names the key).
    """
    path = Path(path)
    tensors = _prepare_tensors(state_dict)
    for name, d in (("config", config), ("preprocessing", preprocessing)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name}: expected a dict, got {type(d).__name__}")
    docs: dict[str, Any] = {
        "config.json": jsonable(dict(config), "config"),
        "preprocessing.json": jsonable(dict(preprocessing), "preprocessing"),
        "metadata.json": _metadata(metadata),
    }
    if calibration is not None:
        from riskmodel.calibration import YearlyCalibrator

        if not isinstance(calibration, Mapping):
            raise TypeError(f"calibration: expected a dict (YearlyCalibrator.to_dict()), got "
                            f"{type(calibration).__name__}")
        docs["calibration.json"] = jsonable(dict(calibration), "calibration")
        YearlyCalibrator.from_dict(docs["calibration.json"])  # ValueError if it is not one

    prepare_target(path, overwrite, {*FILES, MANIFEST}, "a bundle")
    with staged_folder(path) as tmp:
        # safetensors stores tensors sorted by dtype and name; the header keeps the original order.
        # One metadata key only: safetensors writes its metadata map in random order, so two
        # keys would make the same weights give different bytes (and hashes) from run to run.
        # Written by Python like every other file (safetensors' save_file makes 0600 files): all
        # files of a bundle get the same mode, 0666 less the umask (0644 with the usual 022).
        write_file(tmp / WEIGHTS, _safetensors_bytes(tensors, metadata={"riskmodel.order": json.dumps(list(tensors))}))
        for name, obj in docs.items():
            write_file(tmp / name, dump_json(obj))
        manifest = FOLDER_FORMAT.manifest({p.name: p.read_bytes() for p in tmp.iterdir()})
        write_file(tmp / MANIFEST, dump_json(manifest))
    return path


# ---------------------------------------------------------------------------------------
# Loading


def _read_verified(folder: Path, files: Mapping[str, Any], verify: bool) -> dict[str, bytes]:
    """Every listed file's bytes, each checked against the manifest before anything is parsed."""
    return {name: read_listed(folder / name, entry, verify) for name, entry in files.items()}


def _saved_order(meta: Mapping[str, str]) -> list[str] | None:
    """The tensor order recorded by :func:`save_bundle` in the safetensors header metadata, if any."""
    try:
        order = json.loads(meta["riskmodel.order"])
    except (KeyError, ValueError):
        return None
    return order if isinstance(order, list) and all(isinstance(k, str) for k in order) else None


def load_bundle(path: str | os.PathLike[str], *, verify: bool = True,
                check: Callable[[Bundle], None] | None = None) -> Bundle:
    """Load a bundle folder.

    The manifest is read and checked first; then the set of files (nothing missing, nothing
    extra, no symbolic link, each file's size by ``stat``); then (``verify=True``) every file's
    SHA-256; only then is anything else parsed. ``verify=False`` skips the hashing (for a bundle
    just verified) but not the other checks. Tensors are loaded onto the CPU.

    Args:
        path: the bundle folder.
        verify: hash every file.
        check: called with the :class:`Bundle` before any tensor is decoded (``state_dict`` still
            empty, ``tensors`` filled from the safetensors header): raise to refuse the bundle,
            e.g. when the shapes do not fit the architecture ``config`` describes.

    Raises:
        BundleFormatError: not a folder, manifest missing or invalid, unsupported format
            version, a JSON file that is not a JSON object, weights that are not safetensors,
            a floating-point tensor with NaN or infinite values.
        BundleIntegrityError: a file missing, an unexpected file, a symbolic link, a size or
            hash mismatch.
    """
    folder = Path(path)
    manifest = FOLDER_FORMAT.open(folder)
    files = manifest["files"]
    raw = _read_verified(folder, files, verify)

    docs = {name: parse_json(raw[name], folder / name) for name in files if name.endswith(".json")}
    calibration = docs.get("calibration.json")
    if calibration is not None:
        from riskmodel.calibration import YearlyCalibrator

        try:
            YearlyCalibrator.from_dict(calibration)
        except ValueError as e:
            raise BundleFormatError(folder / "calibration.json", str(e)) from None
    specs, meta = safetensors_header(raw[WEIGHTS], folder / WEIGHTS)
    order = _saved_order(meta)
    if order is not None and sorted(order) == sorted(specs):
        specs = {k: specs[k] for k in order}
    bundle = Bundle(state_dict={}, config=docs["config.json"], preprocessing=docs["preprocessing.json"],
                    calibration=calibration, metadata=docs["metadata.json"], path=folder,
                    digest=manifest_digest(manifest), tensors=specs)
    if check is not None:
        check(bundle)
    try:
        state_dict = _load_safetensors_bytes(raw[WEIGHTS])
    except Exception as e:  # safetensors raises its own SafetensorError (and others) on bad input
        raise BundleFormatError(folder / WEIGHTS, f"not a valid safetensors file ({type(e).__name__}: {e})") from None
    bundle.state_dict = {k: state_dict[k] for k in specs} if sorted(specs) == sorted(state_dict) else state_dict
    _check_finite(bundle.state_dict, folder / WEIGHTS)
    return bundle


def verify_bundle(path: str | os.PathLike[str]) -> None:
    """Check a bundle completely (manifest, files, hashes, JSON, safetensors); raise on a problem.

    Raises the same errors as :func:`load_bundle`; returns None if the bundle is sound.
    """
    load_bundle(path, verify=True)


def bundle_digest(path: str | os.PathLike[str], *, verify: bool = True) -> str:
    """SHA-256 (hex) of the bundle's manifest, in canonical JSON (sorted keys, no spaces).

    The manifest holds every file's SHA-256, so the digest identifies the whole bundle: report
    it with predictions to say which model made them. With ``verify=True`` (default) the files
    are first checked against the manifest, so the digest is never given for a damaged bundle.
    Two saves of the same weights differ (``metadata.json`` holds the creation time).
    """
    return FOLDER_FORMAT.digest(path, verify=verify)
