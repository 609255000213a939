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

The manifest's hashes say the files are the ones the bundle was saved with; they do not say
who saved it. Compare :func:`bundle_digest` with the digest the publisher announces to know
that a bundle is the published one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors
import torch
from safetensors.torch import load as _load_safetensors_bytes
from safetensors.torch import save as _safetensors_bytes

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

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
#: Every file a bundle may hold besides the manifest.
FILES = (WEIGHTS, "config.json", "preprocessing.json", "calibration.json", "metadata.json")
#: Files that may be absent.
OPTIONAL_FILES = ("calibration.json",)

_CHUNK = 1 << 20
#: Largest ``manifest.json`` read (bytes); a manifest of six entries is under 1 kB.
MAX_MANIFEST_BYTES = 1 << 20
#: Largest safetensors JSON header read (bytes); safetensors itself caps it at 100 MB.
MAX_HEADER_BYTES = 100 << 20
#: Bytes per element of each safetensors dtype.
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: A tensor as the safetensors header describes it: (dtype such as ``"F32"``, shape).
TensorSpec = tuple[str, tuple[int, ...]]


class BundleError(ValueError):
    """A bundle cannot be loaded. ``path`` names the file (or folder), ``rule`` the problem.

    ``BundleError(path, rule)`` reads ``"{path}: {rule}"``. Called with one argument (a whole
    message, as code wrapping a bundle may do), ``path`` is ``""`` and ``rule`` the message.
    """

    def __init__(self, path: str | os.PathLike[str], rule: str | None = None):
        if rule is None:
            path, rule = "", str(path)
        self.path, self.rule = str(path), rule
        super().__init__(f"{self.path}: {rule}" if self.path else rule)

    def __reduce__(self):
        return (type(self), (self.path, self.rule))


class BundleIntegrityError(BundleError):
    """The files differ from the manifest: a hash or size mismatch (``expected`` and ``actual``
    hold the two SHA-256 hex digests), a listed file missing, or a file not in the manifest."""

    def __init__(self, path: str | os.PathLike[str], rule: str | None = None, expected: str | None = None,
                 actual: str | None = None):
        self.expected = expected
        self.actual = actual
        super().__init__(path, rule)

    def __reduce__(self):
        return (type(self), (self.path, self.rule, self.expected, self.actual))


class BundleFormatError(BundleError):
    """Not a bundle this riskmodel reads: not a folder, no manifest, invalid JSON, an unknown
    format version, or weights that are not safetensors."""


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


# ---------------------------------------------------------------------------------------
# JSON


def _jsonable(obj: Any, where: str) -> Any:
    """A copy of ``obj`` with only JSON types; numpy scalars/arrays become numbers/lists and
    tuples become lists. ``ValueError``/``TypeError`` naming the key path otherwise."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if not math.isfinite(x):
            raise ValueError(f"{where}: {x} is not allowed (JSON has no NaN or infinity)")
        return x
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; JSON object keys must be str")
            out[k] = _jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be stored in JSON "
                    "(use str, int, float, bool, None, lists and dicts with str keys)")


def _dump_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_json(data: bytes, path: Path) -> dict[str, Any]:
    """Strict JSON object from bytes, or :class:`BundleFormatError` naming the file."""
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_strict_pairs, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleFormatError(path, f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise BundleFormatError(path, f"expected a JSON object at the top level, got {type(obj).__name__}")
    return obj


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _mismatch(path: Path, entry: Mapping[str, Any], actual: str, size: int) -> BundleIntegrityError:
    return BundleIntegrityError(
        path, f"does not match manifest.json: expected sha256 {entry['sha256']} ({entry['size']} bytes), "
              f"got sha256 {actual} ({size} bytes); the file was changed or damaged",
        expected=entry["sha256"], actual=actual)


def _lstat_listed(path: Path, expected_size: int | None = None) -> os.stat_result:
    """``lstat`` of a file of a saved model: it must be a regular file, not a symbolic link, and
    (when ``expected_size`` is given) have that size — checked before a byte is read.

    Raises:
        BundleIntegrityError: missing, a symbolic link, not a regular file, or another size.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise BundleIntegrityError(path, "missing; manifest.json lists it") from None
    if path.is_symlink():
        raise BundleIntegrityError(path, "is a symbolic link; a saved model holds only regular files and folders "
                                         "(links are refused, so nothing outside the folder is read)")
    if not path.is_file():
        raise BundleIntegrityError(path, "listed in manifest.json but is not a regular file")
    if expected_size is not None and st.st_size != expected_size:
        raise BundleIntegrityError(path, f"does not match manifest.json: expected {expected_size} bytes, the file "
                                         f"has {st.st_size} bytes (not read); the file was changed or damaged")
    return st


def read_listed(path: Path, entry: Mapping[str, Any], verify: bool = True) -> bytes:
    """The bytes of a file listed in a manifest (``entry``: ``{"sha256", "size"}``): its size is
    checked with ``stat`` before it is read, and (``verify``) its SHA-256 after.

    Raises:
        BundleIntegrityError: missing, a symbolic link, not a regular file, a size or hash mismatch.
    """
    _lstat_listed(path, entry["size"])
    with open(path, "rb") as f:
        data = f.read(entry["size"] + 1)  # never more than the manifest says (+1 to see growth)
    if len(data) != entry["size"] or verify:
        actual = _sha256(data)
        if len(data) != entry["size"] or actual != entry["sha256"]:
            raise _mismatch(path, entry, actual, len(data))
    return data


def read_json_file(path: Path, limit: int, what: str) -> dict[str, Any]:
    """A small JSON object file (a manifest): no symbolic link, at most ``limit`` bytes, strict JSON.

    Raises:
        BundleFormatError: missing, a link, larger than ``limit``, or not a JSON object.
    """
    if path.is_symlink():
        raise BundleFormatError(path, "is a symbolic link; a saved model holds only regular files and folders")
    if not path.is_file():
        raise BundleFormatError(path, f"missing; {what}")
    size = path.stat().st_size
    if size > limit:
        raise BundleFormatError(path, f"is {size} bytes; a manifest is at most {limit} bytes (not read)")
    return _parse_json(path.read_bytes()[:limit + 1], path)


def check_folder_entries(folder: Path, files: set[str], folders: frozenset[str] = frozenset()) -> None:
    """Every entry of ``folder`` must be one of ``files`` (a regular file) or ``folders`` (a folder),
    and none may be a symbolic link. One rule for image bundles and saved hybrid models.

    Raises:
        BundleIntegrityError: an unexpected entry, a symbolic link, or an entry of the wrong kind.
    """
    allowed = ", ".join([*sorted(files), *(f"{d}/" for d in sorted(folders))])
    for p in sorted(folder.iterdir()):
        if p.name not in files and p.name not in folders:
            raise BundleIntegrityError(p, f"unexpected file, not listed in manifest.json; the folder holds only "
                                          f"{allowed}. It was not loaded; remove it")
        if p.is_symlink():
            raise BundleIntegrityError(p, "is a symbolic link; a saved model holds only regular files and folders "
                                          "(links are refused, so nothing outside the folder is read)")
        if p.name in files and not p.is_file():
            raise BundleIntegrityError(p, "listed in manifest.json but is not a regular file")
        if p.name in folders and not p.is_dir():
            raise BundleIntegrityError(p, "must be a folder")


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
    header = _parse_json(data[8:8 + n], path)
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
# Saving


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
        "user": _jsonable(dict(user or {}), "metadata"),
    }


def prepare_target(path: Path, overwrite: bool, files: set[str], what: str, folders: frozenset[str] = frozenset()
                   ) -> None:
    """Check that ``path`` may receive a saved model folder, and create its parent.

    It may be absent, an empty folder, or (with ``overwrite``) a folder holding only the
    ``files`` (plain files) and ``folders`` of ``what`` — so nothing else is ever deleted.
    """
    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise FileExistsError(f"{path}: exists and is not a folder; not replaced")
        if any(path.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{path}: folder exists and is not empty; pass overwrite=True to replace {what}")
            ours = all(not p.is_symlink() and ((p.name in files and p.is_file()) or (p.name in folders and p.is_dir()))
                       for p in path.iterdir())
            if not ours:
                raise FileExistsError(f"{path}: folder holds files that are not part of {what}; refusing to delete "
                                      "it even with overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` with mode 0666 less the umask (0644 with the usual
    umask 022): the one mode of every file of a bundle, a saved hybrid model and a checkpoint."""
    with open(path, "wb") as f:
        f.write(data)


@contextmanager
def staged_folder(path: Path) -> Iterator[Path]:
    """Yield a new sibling folder to write into; when the block succeeds it replaces ``path``.

    The files are fsynced, the previous content of ``path`` is moved aside and deleted only after
    the new folder is in place, and on any error the new folder is removed and the previous
    content restored — a failed save never leaves a half-written model.
    """
    # mkdir (not tempfile.mkdtemp, which makes the folder private) so the umask applies.
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    old: Path | None = None
    try:
        yield tmp
        for p in tmp.iterdir():
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if path.exists():
            if any(path.iterdir()):
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
                old.mkdir()
                os.replace(path, old / "previous")
            else:
                path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old / "previous", path)  # put the previous model back
        raise
    finally:
        if old is not None and path.exists():  # otherwise keep the previous model for recovery
            shutil.rmtree(old, ignore_errors=True)


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
        "config.json": _jsonable(dict(config), "config"),
        "preprocessing.json": _jsonable(dict(preprocessing), "preprocessing"),
        "metadata.json": _metadata(metadata),
    }
    if calibration is not None:
        from riskmodel.calibration import YearlyCalibrator

        if not isinstance(calibration, Mapping):
            raise TypeError(f"calibration: expected a dict (YearlyCalibrator.to_dict()), got "
                            f"{type(calibration).__name__}")
        docs["calibration.json"] = _jsonable(dict(calibration), "calibration")
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
            write_file(tmp / name, _dump_json(obj))
        files = {}
        for name in sorted(p.name for p in tmp.iterdir()):
            data = (tmp / name).read_bytes()
            files[name] = {"sha256": _sha256(data), "size": len(data)}
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "hash": "sha256", "files": files}
        write_file(tmp / MANIFEST, _dump_json(manifest))
    return path


# ---------------------------------------------------------------------------------------
# Loading


def _read_manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise BundleFormatError(folder, f"{what}; a bundle is a folder")
    mpath = folder / MANIFEST
    manifest = read_json_file(mpath, MAX_MANIFEST_BYTES, "every bundle has a manifest.json listing its files and "
                                                         "hashes")
    if manifest.get("format") != FORMAT:
        raise BundleFormatError(mpath, f"'format' must be {FORMAT!r}, got {manifest.get('format')!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleFormatError(mpath, f"format_version {version!r} is not supported; this riskmodel reads "
                                       f"version {FORMAT_VERSION} (a newer riskmodel may read it)")
    if manifest.get("hash") != "sha256":
        raise BundleFormatError(mpath, f"'hash' must be 'sha256', got {manifest.get('hash')!r}")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleFormatError(mpath, "'files' must be an object mapping file names to {sha256, size}")
    for name, entry in files.items():
        if name not in FILES:
            raise BundleFormatError(mpath, f"lists {name!r}, which is not a bundle file (allowed: {', '.join(FILES)})")
        ok = (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
              and all(c in "0123456789abcdef" for c in entry["sha256"])
              and isinstance(entry.get("size"), int) and not isinstance(entry.get("size"), bool)
              and entry["size"] >= 0)
        if not ok:
            raise BundleFormatError(mpath, f"entry for {name!r} must be {{'sha256': 64 lowercase hex digits, "
                                           f"'size': bytes}}, got {entry!r}")
    for name in FILES:
        if name not in files and name not in OPTIONAL_FILES:
            raise BundleFormatError(mpath, f"does not list {name!r}, which every bundle has")
    return manifest


def _check_file_set(folder: Path, files: Mapping[str, Any]) -> None:
    check_folder_entries(folder, {*files, MANIFEST})
    for name in files:
        _lstat_listed(folder / name, files[name]["size"])  # missing, or a size other than the manifest's


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


def _digest(manifest: Mapping[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sha256(canonical.encode("ascii"))


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
    manifest = _read_manifest(folder)
    files = manifest["files"]
    _check_file_set(folder, files)
    raw = _read_verified(folder, files, verify)

    docs = {name: _parse_json(raw[name], folder / name) for name in files if name.endswith(".json")}
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
                    calibration=calibration, metadata=docs["metadata.json"], path=folder, digest=_digest(manifest),
                    tensors=specs)
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
    folder = Path(path)
    manifest = _read_manifest(folder)
    _check_file_set(folder, manifest["files"])
    if verify:
        for name, entry in manifest["files"].items():
            actual, size = _sha256_file(folder / name)  # streamed: nothing is parsed
            if size != entry["size"] or actual != entry["sha256"]:
                raise _mismatch(folder / name, entry, actual, size)
    return _digest(manifest)
