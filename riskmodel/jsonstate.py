"""JSON state and manifests: the one on-disk convention of every saved kind (torch-free).

Every saved model is a folder (an image bundle, :mod:`riskmodel.bundle`; a hybrid model,
:mod:`riskmodel.fusion.persist`) holding JSON files (and, for an image bundle, safetensors) plus a
``manifest.json`` that lists each file's SHA-256 and size. One :class:`FolderFormat` per kind says
what its manifest must hold; :meth:`FolderFormat.open` checks it and the folder before a byte of
any listed file is read, :func:`read_listed` reads a file no larger than the manifest says and
checks its hash, and :func:`parse_json` parses it strictly. Saving goes through
:func:`prepare_target` (never deletes anything that is not the same kind of saved model) and
:func:`staged_folder` (a failed save never leaves a half-written folder).

JSON is written by :func:`dump_json` after :func:`jsonable` (numpy numbers and arrays become plain
numbers and lists; NaN and infinity are refused) and read by :func:`loads_strict` /
:func:`parse_json`: duplicate keys, ``NaN``, ``Infinity`` and ``-Infinity`` are refused.

>>> loads_strict('{"a": 1, "a": 2}')
Traceback (most recent call last):
ValueError: duplicate key 'a'
>>> loads_strict('{"p": NaN}')
Traceback (most recent call last):
ValueError: NaN is not allowed

Errors::

    BundleError (ValueError)      .path names the file (or folder), .rule the problem
    ├── BundleIntegrityError      hash or size mismatch, file missing, unexpected file, symbolic link
    └── BundleFormatError         not a folder, no manifest, bad JSON, unknown format or version
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MANIFEST",
    "MAX_MANIFEST_BYTES",
    "BundleError",
    "BundleFormatError",
    "BundleIntegrityError",
    "FolderFormat",
    "check_folder_entries",
    "dump_json",
    "jsonable",
    "loads_strict",
    "lstat_listed",
    "manifest_digest",
    "mismatch",
    "parse_json",
    "prepare_target",
    "read_json_file",
    "read_listed",
    "sha256_bytes",
    "sha256_file",
    "staged_folder",
    "write_file",
]

#: The manifest's file name in every saved folder.
MANIFEST = "manifest.json"
#: Largest ``manifest.json`` read (bytes); a manifest of six entries is under 1 kB.
MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")


# ---------------------------------------------------------------------------- errors


class BundleError(ValueError):
    """A saved model cannot be loaded. ``path`` names the file (or folder), ``rule`` the problem.

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
    """Not a saved model this riskmodel reads: not a folder, no manifest, invalid JSON, an unknown
    format version, or weights that are not safetensors."""


# ---------------------------------------------------------------------------- JSON


def jsonable(obj: Any, where: str) -> Any:
    """A copy of ``obj`` with only JSON types; numpy scalars/arrays become numbers/lists and
    tuples become lists. ``ValueError``/``TypeError`` naming the key path (``where[...]``) otherwise.

    >>> jsonable({"w": np.float32(0.5), "ids": (1, 2)}, "config")
    {'w': 0.5, 'ids': [1, 2]}
    """
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
            out[k] = jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), where)
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be stored in JSON "
                    "(use str, int, float, bool, None, lists and dicts with str keys)")


def dump_json(obj: Any) -> bytes:
    """``obj`` (already :func:`jsonable`) as UTF-8 JSON bytes: indented, a final newline, no NaN."""
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


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses duplicate keys and ``NaN``/``Infinity``/``-Infinity``.

    Raises:
        ValueError: not JSON, a duplicate key (``"duplicate key 'a'"``) or a non-finite constant
            (``"NaN is not allowed"``); ``UnicodeDecodeError`` (a ValueError) for bytes that are not UTF-8.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    return json.loads(text, object_pairs_hook=_strict_pairs, parse_constant=_reject_constant)


def parse_json(data: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    """A strict JSON object (:func:`loads_strict`) from ``data``, or :class:`BundleFormatError` naming ``path``.

    >>> parse_json(b'[1]', "x.json")
    Traceback (most recent call last):
    riskmodel.jsonstate.BundleFormatError: x.json: expected a JSON object at the top level, got list
    """
    try:
        obj = loads_strict(data)
    except (ValueError, RecursionError) as e:
        raise BundleFormatError(path, f"not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise BundleFormatError(path, f"expected a JSON object at the top level, got {type(obj).__name__}")
    return obj


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``manifest`` in canonical JSON (sorted keys, no spaces, ASCII): it names the
    whole folder, since the manifest holds every file's SHA-256."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return sha256_bytes(canonical.encode("ascii"))


# ---------------------------------------------------------------------------- files


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of ``data``, 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of the file at ``path``, read in 1 MiB chunks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def mismatch(path: Path, entry: Mapping[str, Any], actual: str, size: int) -> BundleIntegrityError:
    """The error for a file whose SHA-256 or size (``actual``, ``size``) is not its manifest ``entry``."""
    return BundleIntegrityError(
        path, f"does not match manifest.json: expected sha256 {entry['sha256']} ({entry['size']} bytes), "
              f"got sha256 {actual} ({size} bytes); the file was changed or damaged",
        expected=entry["sha256"], actual=actual)


def _refuse_link(path: Path, error: type[BundleError]) -> None:
    if path.is_symlink():
        raise error(path, "is a symbolic link; a saved model holds only regular files and folders "
                          "(links are refused, so nothing outside the folder is read)")


def lstat_listed(path: Path, expected_size: int | None = None) -> os.stat_result:
    """``lstat`` of a file of a saved model: it must be a regular file, not a symbolic link, and
    (when ``expected_size`` is given) have that size — checked before a byte is read.

    Raises:
        BundleIntegrityError: missing, a symbolic link, not a regular file, or another size.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise BundleIntegrityError(path, "missing; manifest.json lists it") from None
    _refuse_link(path, BundleIntegrityError)
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
    lstat_listed(path, entry["size"])
    with open(path, "rb") as f:
        data = f.read(entry["size"] + 1)  # never more than the manifest says (+1 to see growth)
    if len(data) != entry["size"] or verify:
        actual = sha256_bytes(data)
        if len(data) != entry["size"] or actual != entry["sha256"]:
            raise mismatch(path, entry, actual, len(data))
    return data


def read_json_file(path: Path, limit: int, what: str) -> dict[str, Any]:
    """A small JSON object file (a manifest): no symbolic link, at most ``limit`` bytes, strict JSON.

    ``what`` completes the message when the file is missing (``"missing; {what}"``).

    Raises:
        BundleFormatError: missing, a link, larger than ``limit``, or not a JSON object.
    """
    _refuse_link(path, BundleFormatError)
    if not path.is_file():
        raise BundleFormatError(path, f"missing; {what}")
    size = path.stat().st_size
    if size > limit:
        raise BundleFormatError(path, f"is {size} bytes; a manifest is at most {limit} bytes (not read)")
    return parse_json(path.read_bytes()[:limit + 1], path)


def check_folder_entries(folder: Path, files: set[str], folders: frozenset[str] = frozenset()) -> None:
    """Every entry of ``folder`` must be one of ``files`` (a regular file) or ``folders`` (a folder),
    and none may be a symbolic link. One rule for every saved kind.

    Raises:
        BundleIntegrityError: an unexpected entry, a symbolic link, or an entry of the wrong kind.
    """
    allowed = ", ".join([*sorted(files), *(f"{d}/" for d in sorted(folders))])
    for p in sorted(folder.iterdir()):
        if p.name not in files and p.name not in folders:
            raise BundleIntegrityError(p, f"unexpected file, not listed in manifest.json; the folder holds only "
                                          f"{allowed}. It was not loaded; remove it")
        _refuse_link(p, BundleIntegrityError)
        if p.name in files and not p.is_file():
            raise BundleIntegrityError(p, "listed in manifest.json but is not a regular file")
        if p.name in folders and not p.is_dir():
            raise BundleIntegrityError(p, "must be a folder")


# ---------------------------------------------------------------------------- the manifest


def _valid_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
            and set(entry["sha256"]) <= _HEX
            and isinstance(entry.get("size"), int) and not isinstance(entry.get("size"), bool) and entry["size"] >= 0)


@dataclass(frozen=True)
class FolderFormat:
    """What one saved kind's folder and ``manifest.json`` hold.

    The manifest is ``{"format": format, "format_version": version, "hash": "sha256", "files":
    {name: {"sha256": hex, "size": bytes}}, **fields}``. The folder holds ``manifest.json``, the
    files the manifest lists and the sub-folders ``folders`` (each a saved model with its own
    manifest, checked by its own loader), nothing else, and no symbolic link.

    Attributes:
        format, version: the ``format`` tag and the one ``format_version`` this riskmodel reads.
        kind: the saved kind in messages (``"bundle"``, ``"saved hybrid model"``).
        files: the files the manifest may list; ``optional``: those of them that may be absent.
        folders: sub-folders every such folder has.
        fields: further manifest fields and the value each must have.
        hints: another kind's ``format`` tag → what to tell a user who passed that kind.
        saved_by: what writes this kind (e.g. ``"HybridModel.save"``), for messages.
    """

    format: str
    version: int
    kind: str
    files: tuple[str, ...]
    optional: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)
    saved_by: str = ""

    def manifest(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        """The manifest of a folder holding ``files`` (name → the bytes written), names sorted."""
        entries = {name: {"sha256": sha256_bytes(files[name]), "size": len(files[name])} for name in sorted(files)}
        return {"format": self.format, "format_version": self.version, "hash": "sha256", "files": entries,
                **self.fields}

    def read_manifest(self, folder: Path) -> dict[str, Any]:
        """``folder/manifest.json``, checked against this format (nothing else is read).

        Raises:
            BundleFormatError: ``folder`` is not a folder, or the manifest is missing, a link, over
                :data:`MAX_MANIFEST_BYTES`, not strict JSON, of another format or version, or lists
                files it may not (or misses one it must).
        """
        by = f" ({self.saved_by})" if self.saved_by else ""
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise BundleFormatError(folder, f"{what}; a {self.kind} is a folder{by}")
        mpath = folder / MANIFEST
        manifest = read_json_file(mpath, MAX_MANIFEST_BYTES,
                                  f"every {self.kind} has a manifest.json listing its files and hashes{by}")
        tag = manifest.get("format")
        if tag != self.format:
            hint = self.hints.get(tag) if isinstance(tag, str) else None
            raise BundleFormatError(mpath, f"'format' must be {self.format!r}, got {tag!r}"
                                           + (f" ({hint})" if hint else ""))
        version = manifest.get("format_version")
        if version != self.version or isinstance(version, bool):
            raise BundleFormatError(mpath, f"format_version {version!r} is not supported; this riskmodel reads "
                                           f"version {self.version} (a newer riskmodel may read it)")
        if manifest.get("hash") != "sha256":
            raise BundleFormatError(mpath, f"'hash' must be 'sha256', got {manifest.get('hash')!r}")
        for key, value in self.fields.items():
            if manifest.get(key) != value:
                raise BundleFormatError(mpath, f"{key!r} must be {value!r}, got {manifest.get(key)!r}")
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise BundleFormatError(mpath, "'files' must be an object mapping file names to {sha256, size}")
        for name, entry in files.items():
            if name not in self.files:
                raise BundleFormatError(mpath, f"lists {name!r}, which is not a {self.kind} file (allowed: "
                                               f"{', '.join(self.files)})")
            if not _valid_entry(entry):
                raise BundleFormatError(mpath, f"entry for {name!r} must be {{'sha256': 64 lowercase hex digits, "
                                               f"'size': bytes}}, got {entry!r}")
        for name in self.files:
            if name not in files and name not in self.optional:
                raise BundleFormatError(mpath, f"does not list {name!r}, which every {self.kind} has")
        return manifest

    def check_folder(self, folder: Path, manifest: Mapping[str, Any]) -> None:
        """The folder holds exactly the manifest, the files it lists (each of the size it states, by
        ``stat``) and this format's sub-folders; no symbolic link.

        Raises:
            BundleIntegrityError: naming the unexpected, missing, linked or resized entry.
        """
        files = manifest["files"]
        check_folder_entries(folder, {*files, MANIFEST}, frozenset(self.folders))
        for name in files:
            lstat_listed(folder / name, files[name]["size"])
        for name in self.folders:
            if not (folder / name).is_dir():
                raise BundleIntegrityError(folder / name, f"missing or not a folder; every {self.kind} has it")

    def open(self, folder: str | os.PathLike[str]) -> dict[str, Any]:
        """:meth:`read_manifest` then :meth:`check_folder`: everything checked before a listed file is read."""
        folder = Path(folder)
        manifest = self.read_manifest(folder)
        self.check_folder(folder, manifest)
        return manifest

    def digest(self, folder: str | os.PathLike[str], *, verify: bool = True) -> str:
        """:func:`manifest_digest` of the folder's manifest, after :meth:`open` and (``verify``) a
        streamed SHA-256 of every listed file (nothing is parsed), so a damaged folder gets no digest.

        Raises:
            BundleFormatError, BundleIntegrityError: as :meth:`open`, or a file whose hash differs.
        """
        folder = Path(folder)
        manifest = self.open(folder)
        if verify:
            for name, entry in manifest["files"].items():
                actual, size = sha256_file(folder / name)
                if size != entry["size"] or actual != entry["sha256"]:
                    raise mismatch(folder / name, entry, actual, size)
        return manifest_digest(manifest)


# ---------------------------------------------------------------------------- saving


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
