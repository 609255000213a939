"""Read Mirai's pickled snapshots without running them: a restricted unpickler and torch's two file formats.

Mirai (Yala et al. 2021) ships its trained model as whole ``nn.Module`` objects written by ``torch.save``
(classes under ``onconet.models.*``) and its calibrator as a plain pickle. ``pickle.load`` / ``torch.load``
would import ``onconet`` and run whatever the file names — any function, ``os.system`` included. Here:

* :class:`RestrictedUnpickler` resolves a global only if it is on an explicit allowlist; anything else raises
  :class:`ForbiddenGlobalError` naming it (``posix.system``, ``builtins.eval`` …) before it is called.
* Every allowlisted class (``onconet.*`` modules, ``torch.nn`` layers, ``argparse.Namespace``, Mirai's calibrator)
  becomes an inert :class:`ObjectRecord`: a new object of a class defined here that only stores the state the
  pickle gives it. No code of the original class runs, and the original class is never imported.
* Tensors are rebuilt from the bytes of the file by :func:`read_torch_file` (``torch.frombuffer`` +
  ``as_strided``), never by ``torch.load``. Both ``torch.save`` formats are read: the zip format (torch ≥ 1.6:
  ``<archive>/data.pkl`` + ``<archive>/data/<key>``) and the legacy format (torch < 1.6, which wrote Mirai's
  2019–2020 snapshots: a sequence of pickles — magic number, protocol, system info, the object, the storage keys —
  followed by each storage's raw bytes).
* Memory is bounded before decoding: sizes are checked against the file (and a caller's limit) first.

Only numpy's own reconstruction functions (for the plain numeric arrays and scalars a pickled
``args``/calibrator holds), ``collections.OrderedDict`` and a few builtins run; all of them only build data.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "ALLOWED_CLASSES",
    "ForbiddenGlobalError",
    "ModuleRecord",
    "NamespaceRecord",
    "ObjectRecord",
    "RestrictedUnpickler",
    "SnapshotFormatError",
    "TensorRecord",
    "read_pickle",
    "read_torch_file",
]


class SnapshotFormatError(ValueError):
    """A snapshot is not a file this reader understands (the message names the file and the rule broken)."""


class ForbiddenGlobalError(pickle.UnpicklingError, ValueError):
    """The pickle names a global that is not on the allowlist; ``name`` is its ``module.qualname``. A ValueError
    too, so front doors report it as bad input (the CLI: exit 2)."""

    def __init__(self, name: str, where: str = ""):
        self.name = name
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}refused global {name!r}: not on the allowlist of Mirai snapshot classes "
                         "and functions; nothing in the file was run")


# ---------------------------------------------------------------------------------------
# Inert records


class ObjectRecord:
    """An inert stand-in for an object of an allowlisted class: it stores the pickled state, nothing else.

    Subclasses are made per original class by :func:`record_type`; ``module`` and ``qualname`` name it.
    ``state`` is what the pickle passed to ``__setstate__`` (usually the object's ``__dict__``).
    """

    module: str = ""
    qualname: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE with the class: keep the arguments as data
        self.state: Any = None
        self.args = args
        self.kwargs = kwargs

    def __new__(cls, *args: Any, **kwargs: Any) -> ObjectRecord:  # NEWOBJ: cls.__new__(cls, *args)
        obj = super().__new__(cls)
        obj.state, obj.args, obj.kwargs = None, args, kwargs
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    @property
    def attrs(self) -> dict[str, Any]:
        """The object's attributes (its pickled ``__dict__``; a ``(dict, slots)`` state is merged)."""
        s = self.state
        if isinstance(s, tuple) and len(s) == 2 and all(x is None or isinstance(x, dict) for x in s):
            return {**(s[0] or {}), **(s[1] or {})}
        return dict(s) if isinstance(s, dict) else {}

    @property
    def fullname(self) -> str:
        return f"{self.module}.{self.qualname}"

    def __repr__(self) -> str:
        return f"<record of {self.fullname}>"


class ModuleRecord(ObjectRecord):
    """A pickled ``torch.nn.Module`` (an ``onconet`` model or a ``torch.nn`` layer), as data."""

    def _dict(self, key: str) -> dict[str, Any]:
        d = self.attrs.get(key)
        return dict(d) if isinstance(d, dict) else {}

    @property
    def parameters(self) -> dict[str, TensorRecord | None]:
        return self._dict("_parameters")

    @property
    def buffers(self) -> dict[str, TensorRecord | None]:
        return self._dict("_buffers")

    @property
    def children(self) -> dict[str, ModuleRecord | None]:
        return self._dict("_modules")

    def named_tensors(self, prefix: str = "") -> Iterator[tuple[str, TensorRecord]]:
        """``(name, tensor)`` in ``nn.Module.state_dict()`` order and naming: own parameters, own persistent
        buffers, then each child's with ``"child."`` prefixed; ``None`` entries are skipped as torch does."""
        non_persistent = self.attrs.get("_non_persistent_buffers_set") or set()
        for name, t in self.parameters.items():
            if t is not None:
                yield prefix + name, _as_tensor_record(t, f"{self.fullname} parameter {name!r}")
        for name, t in self.buffers.items():
            if t is not None and name not in non_persistent:
                yield prefix + name, _as_tensor_record(t, f"{self.fullname} buffer {name!r}")
        for name, child in self.children.items():
            if child is None:
                continue
            if not isinstance(child, ModuleRecord):
                raise SnapshotFormatError(f"{self.fullname}: child {name!r} is a {type(child).__name__}, "
                                          "not a module")
            yield from child.named_tensors(f"{prefix}{name}.")


class NamespaceRecord(ObjectRecord):
    """A pickled ``argparse.Namespace`` (Mirai's ``args``): its attributes are :attr:`attrs`."""


_RECORD_TYPES: dict[tuple[str, str], type[ObjectRecord]] = {}


def record_type(module: str, qualname: str, base: type[ObjectRecord]) -> type[ObjectRecord]:
    """The record class standing in for ``module.qualname`` (one per name, so ``isinstance`` checks work)."""
    key = (module, qualname)
    if key not in _RECORD_TYPES:
        _RECORD_TYPES[key] = type(qualname.rsplit(".", 1)[-1], (base,), {"module": module, "qualname": qualname})
    return _RECORD_TYPES[key]


@dataclass
class StorageRef:
    """A torch storage named by the pickle: ``numel`` elements of ``dtype``; ``data`` is filled from the file."""

    key: str
    dtype: torch.dtype
    numel: int
    data: torch.Tensor | None = None  # 1-D, the storage's elements
    root: StorageRef | None = None  # legacy views: the storage this one is a slice of
    root_offset: int = 0

    def flat(self) -> torch.Tensor:
        if self.root is not None:
            return self.root.flat()[self.root_offset:self.root_offset + self.numel]
        if self.data is None:
            raise SnapshotFormatError(f"storage {self.key!r}: no data for it in the file")
        return self.data


@dataclass
class TensorRecord:
    """A tensor named by the pickle (``_rebuild_tensor_v2``): a strided view of a storage, built by :meth:`tensor`."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    requires_grad: bool = False
    is_parameter: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def tensor(self) -> torch.Tensor:
        """A new contiguous CPU tensor with the pickled values.

        Raises:
            SnapshotFormatError: the view reaches outside its storage, or the storage has no data in the file.
        """
        flat = self.storage.flat()
        if any(s < 0 for s in self.size) or any(st < 0 for st in self.stride) or self.offset < 0:
            raise SnapshotFormatError(f"tensor of storage {self.storage.key!r}: negative size, stride or offset")
        if any(s == 0 for s in self.size):
            return torch.empty(self.size, dtype=flat.dtype)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride, strict=True))
        if last >= flat.numel():
            raise SnapshotFormatError(f"tensor of storage {self.storage.key!r}: size {self.size}, stride "
                                      f"{self.stride}, offset {self.offset} reach element {last}, but the "
                                      f"storage has {flat.numel()}")
        return flat.as_strided(self.size, self.stride, self.offset).clone()


def _as_tensor_record(t: Any, where: str) -> TensorRecord:
    if not isinstance(t, TensorRecord):
        raise SnapshotFormatError(f"{where}: expected a tensor, got {type(t).__name__}")
    return t


# ---------------------------------------------------------------------------------------
# The allowlist

#: ``onconet`` classes (module → class names) that may appear in Mirai's snapshots, each read as a record.
#: Taken from ``onconet/models`` of reginabarzilaygroup/Mirai: the image encoder (``CustomResnet`` holding a
#: ``ResNet``), the view transformer (``AllImageTransformer``), their blocks, pools and hazard layer, the
#: wrappers Mirai's loader unwraps, and the calibrator class of release v0.8.0.
ONCONET_CLASSES: dict[str, tuple[str, ...]] = {
    "onconet.models.custom_resnet": ("CustomResnet",),
    "onconet.models.resnet_base": ("ResNet", "Downsampler"),
    "onconet.models.blocks.basic_block": ("BasicBlock",),
    "onconet.models.blocks.bottleneck": ("Bottleneck",),
    "onconet.models.hiddens_transfomer": ("AllImageTransformer", "Transformer", "TransformerLayer",
                                          "MultiHead_Attention"),
    "onconet.models.cumulative_probability_layer": ("Cumulative_Probability_Layer",),
    "onconet.models.pools.risk_factor_pool": ("RiskFactorPool",),
    "onconet.models.pools.deep_risk_factor_pool": ("RiskFactorPool",),
    "onconet.models.pools.max_pool": ("GlobalMaxPool",),
    "onconet.models.pools.average_pool": ("GlobalAvgPool",),
    "onconet.models.pools.attention_pool": ("Simple_AttentionPool", "AttentionPool2d"),
    "onconet.models.mirai_full": ("MiraiFull",),
    "onconet.models.factory": ("ModelWrapper", "ModelNOP"),
    "onconet.models.discriminator": ("Discriminator",),
    "onconet.models.calibrator": ("MiraiCalibrator",),
}

#: ``torch.nn`` layers (module → class names) read as records when they appear as children.
TORCH_NN_CLASSES: dict[str, tuple[str, ...]] = {
    "torch.nn.modules.conv": ("Conv1d", "Conv2d"),
    "torch.nn.modules.batchnorm": ("BatchNorm1d", "BatchNorm2d"),
    "torch.nn.modules.linear": ("Linear", "Identity"),
    "torch.nn.modules.activation": ("ReLU", "Softmax", "Sigmoid", "Tanh"),
    "torch.nn.modules.pooling": ("MaxPool2d", "AvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d"),
    "torch.nn.modules.dropout": ("Dropout",),
    "torch.nn.modules.normalization": ("LayerNorm", "GroupNorm"),
    "torch.nn.modules.sparse": ("Embedding",),
    "torch.nn.modules.container": ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"),
    "torch.nn.parallel.data_parallel": ("DataParallel",),
}

#: Every class read as a record, as ``"module.qualname"`` (for documentation and tests).
ALLOWED_CLASSES: frozenset[str] = frozenset(
    [f"{m}.{c}" for table in (ONCONET_CLASSES, TORCH_NN_CLASSES) for m, cs in table.items() for c in cs]
    + ["argparse.Namespace"])

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class StorageType:
    """What a ``torch.FloatStorage`` (etc.) global resolves to: just its element dtype."""

    dtype: torch.dtype


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    backward_hooks: Any = None, metadata: Any = None) -> TensorRecord:
    """Data-only counterpart of ``torch._utils._rebuild_tensor(_v2)``."""
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError(f"tensor rebuild: expected a storage, got {type(storage).__name__}")
    if not (isinstance(offset, int) and all(isinstance(x, int) for x in (*size, *stride)) and len(size) == len(stride)):
        raise pickle.UnpicklingError("tensor rebuild: offset, size and stride must be integers of equal rank")
    if backward_hooks:
        raise pickle.UnpicklingError("tensor rebuild: the tensor carries backward hooks; refused")
    return TensorRecord(storage, offset, tuple(size), tuple(stride), bool(requires_grad))


def _rebuild_parameter(data: Any, requires_grad: Any = True, backward_hooks: Any = None,
                       *state: Any) -> TensorRecord:
    """Data-only counterpart of ``torch._utils._rebuild_parameter(_with_state)`` and ``Parameter(data, rg)``."""
    if not isinstance(data, TensorRecord):
        raise pickle.UnpicklingError(f"parameter rebuild: expected a tensor, got {type(data).__name__}")
    if backward_hooks:
        raise pickle.UnpicklingError("parameter rebuild: the parameter carries backward hooks; refused")
    data.requires_grad, data.is_parameter = bool(requires_grad), True
    return data


def _torch_device(*args: Any) -> str:
    return ":".join(str(a) for a in args)


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes``: only str → bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode: only (str, 'latin1') as pickle writes bytes is allowed")
    return text.encode("latin1")


def _numpy_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise pickle.UnpicklingError("numpy _reconstruct: only numpy.ndarray is allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("numpy dtype with Python objects refused")
    return dt


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError("numpy scalar: only numeric scalars are allowed")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _ordered_dict(*args: Any) -> OrderedDict:
    return OrderedDict(*args)


_FUNCTIONS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,
    ("torch", "device"): _torch_device,
    ("torch", "Size"): tuple,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray,
    **{(m, "_reconstruct"): _numpy_reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _numpy_scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    **{("torch", name): StorageType(dt) for name, dt in _STORAGE_DTYPES.items()},
    ("torch.storage", "UntypedStorage"): StorageType(torch.uint8),
    ("torch", "UntypedStorage"): StorageType(torch.uint8),
}


def resolve_global(module: str, name: str) -> Any:
    """What an allowed global ``module.name`` stands for, or :class:`ForbiddenGlobalError`.

    Protocol-2 pickles name builtins by their Python 2 module ``__builtin__``; both spellings are accepted."""
    if module == "__builtin__":
        module = "builtins"
    if (module, name) in _FUNCTIONS:
        return _FUNCTIONS[(module, name)]
    if module == "argparse" and name == "Namespace":
        return record_type(module, name, NamespaceRecord)
    for table, base in ((ONCONET_CLASSES, ModuleRecord), (TORCH_NN_CLASSES, ModuleRecord)):
        if name in table.get(module, ()):
            if (module, name) == ("onconet.models.calibrator", "MiraiCalibrator"):
                base = ObjectRecord
            return record_type(module, name, base)
    raise ForbiddenGlobalError(f"{module}.{name}")


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only allowlisted globals (see :func:`resolve_global`).

    Args:
        file: a binary file object.
        persistent_load: called with each persistent id (torch's storage records); None refuses them.
        where: file name used in error messages.
    """

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, *,
                 persistent_load: Callable[[Any], Any] | None = None, where: str = ""):
        super().__init__(file, encoding="latin1")
        self._where = where
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return resolve_global(module, name)
        except ForbiddenGlobalError as e:
            raise ForbiddenGlobalError(e.name, self._where) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError(f"{self._where}: unexpected persistent id in a plain pickle")
        return self._persistent(pid)


def _loads(data: bytes | io.BytesIO, where: str, persistent_load: Callable[[Any], Any] | None = None) -> Any:
    f = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    try:
        return RestrictedUnpickler(f, persistent_load=persistent_load, where=where).load()
    except ForbiddenGlobalError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error, MemoryError, RecursionError) as e:
        raise SnapshotFormatError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None


def read_pickle(data: bytes, where: str) -> Any:
    """A plain pickle (Mirai's calibrator) read with :class:`RestrictedUnpickler`; records for classes."""
    return _loads(data, where)


# ---------------------------------------------------------------------------------------
# torch.save files

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _from_bytes(buf: bytes, dtype: torch.dtype, little_endian: bool) -> torch.Tensor:
    """1-D tensor of ``dtype`` over a copy of ``buf`` (byte-swapped when the file is big-endian)."""
    if not buf:
        return torch.empty(0, dtype=dtype)
    t = torch.frombuffer(bytearray(buf), dtype=dtype)
    if not little_endian and _element_size(dtype) > 1:
        t = torch.frombuffer(bytearray(t.view(torch.uint8).view(-1, _element_size(dtype)).flip(1)
                                       .contiguous().numpy().tobytes()), dtype=dtype)
    return t


def _storage_pid(pid: Any, where: str) -> tuple[StorageType, str, int, Any]:
    """``(storage type, key, numel, view metadata)`` from a torch storage persistent id."""
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
        raise SnapshotFormatError(f"{where}: unexpected persistent id {str(pid)[:80]!r}")
    stype, key, _location, numel = pid[1:5]
    if not isinstance(stype, StorageType) or not isinstance(numel, int) or numel < 0:
        raise SnapshotFormatError(f"{where}: bad storage record {str(pid)[:80]!r}")
    return stype, str(key), numel, pid[5] if len(pid) == 6 else None


def _read_zip_format(data: bytes, where: str, max_bytes: int) -> Any:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise SnapshotFormatError(f"{where}: not a readable zip ({e})") from None
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise SnapshotFormatError(f"{where}: the zip expands to {total} bytes, more than the limit of "
                                      f"{max_bytes}; not read")
        pkls = [i.filename for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
        if len(pkls) != 1:
            raise SnapshotFormatError(f"{where}: a torch.save zip holds exactly one data.pkl, found {len(pkls)}")
        prefix = pkls[0][: -len("data.pkl")]
        names = {i.filename for i in infos}
        little = True
        if prefix + "byteorder" in names:
            little = zf.read(prefix + "byteorder").strip() != b"big"
        storages: dict[str, StorageRef] = {}

        def persistent_load(pid: Any) -> StorageRef:
            stype, key, numel, _ = _storage_pid(pid, where)
            if key not in storages:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise SnapshotFormatError(f"{where}: storage {key!r} has no entry {entry!r}")
                info = zf.getinfo(entry)
                nbytes = numel * _element_size(stype.dtype)
                if info.file_size != nbytes:
                    raise SnapshotFormatError(f"{where}: storage {key!r} should hold {nbytes} bytes "
                                              f"({numel} × {stype.dtype}), the entry has {info.file_size}")
                storages[key] = StorageRef(key, stype.dtype, numel, _from_bytes(zf.read(entry), stype.dtype, little))
            return storages[key]

        return _loads(zf.read(pkls[0]), where, persistent_load)


def _read_legacy_format(data: bytes, where: str) -> Any:
    f = io.BytesIO(data)
    magic = _loads(f, where)
    if magic != _LEGACY_MAGIC:
        raise SnapshotFormatError(f"{where}: not a torch.save file (no zip signature and no legacy magic number)")
    protocol = _loads(f, where)
    if protocol != _LEGACY_PROTOCOL:
        raise SnapshotFormatError(f"{where}: legacy torch.save protocol {protocol!r} is not supported "
                                  f"(expected {_LEGACY_PROTOCOL})")
    sys_info = _loads(f, where)
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    storages: dict[str, StorageRef] = {}

    def persistent_load(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            # ('module', class, source file, source): legacy files name each nn.Module class with its source
            # text; the class was already resolved (as a record type) by find_class; the source is ignored.
            return pid[1]
        stype, key, numel, view = _storage_pid(pid, where)
        if key not in storages:
            storages[key] = StorageRef(key, stype.dtype, numel)
        root = storages[key]
        if view is None:
            return root
        view_key, offset, view_size = view
        if str(view_key) not in storages:
            storages[str(view_key)] = StorageRef(str(view_key), stype.dtype, int(view_size), root=root,
                                                 root_offset=int(offset))
        return storages[str(view_key)]

    obj = _loads(f, where, persistent_load)
    keys = _loads(f, where)
    if not isinstance(keys, list):
        raise SnapshotFormatError(f"{where}: storage key list missing")
    for key in keys:
        ref = storages.get(str(key))
        if ref is None or ref.root is not None:
            raise SnapshotFormatError(f"{where}: storage key {key!r} was not named by the pickle")
        head = f.read(8)
        if len(head) != 8:
            raise SnapshotFormatError(f"{where}: file ends before storage {key!r}")
        (numel,) = struct.unpack("<q" if little else ">q", head)
        if numel != ref.numel:
            raise SnapshotFormatError(f"{where}: storage {key!r} says {numel} elements, the pickle {ref.numel}")
        nbytes = numel * _element_size(ref.dtype)
        remaining = len(data) - f.tell()
        if nbytes > remaining:
            raise SnapshotFormatError(f"{where}: storage {key!r} needs {nbytes} bytes, only {remaining} left")
        ref.data = _from_bytes(f.read(nbytes), ref.dtype, little)
    return obj


def read_torch_file(data: bytes, where: str, *, max_bytes: int = 4 << 30) -> Any:
    """The object a ``torch.save`` file holds, with modules as :class:`ModuleRecord` and tensors as
    :class:`TensorRecord` — never running the file. ``data`` is the whole file (its size bounds the memory used;
    a zip's expanded size is checked against ``max_bytes`` before anything is decompressed).

    Raises:
        ForbiddenGlobalError: the pickle names a global not on the allowlist (nothing has been called).
        SnapshotFormatError: not a torch.save file, or inconsistent (sizes, storages).
    """
    if data[:4] == b"PK\x03\x04":
        return _read_zip_format(data, where, max_bytes)
    if data[:2] == b"\x80\x02" or data[:1] == b"\x80":
        return _read_legacy_format(data, where)
    if len(data) > 262 and data[257:262] == b"ustar":
        raise SnapshotFormatError(f"{where}: a tar-format torch.save file (torch < 0.4) is not supported")
    raise SnapshotFormatError(f"{where}: not a torch.save file (neither a zip nor a pickle)")
