"""A torch Dataset over exams: four canonical, resized views per item, with an on-disk cache.

Each item of :class:`ExamDataset` is a dict::

    {"images": float32 tensor (4, 1, H, W) in VIEW_ORDER, values in [0, 1],
     "mask":   bool tensor (4,), False where a view is missing or unreadable (its image is zeros),
     "exam_id": str,
     "errors":  str, "" or "<slot>: <ErrorClass>: <message>" entries joined by "; "}

**Resize rule** (:func:`fit_to_size`): keep the aspect ratio and fit the canonical image inside
H × W (scale = min(H/h, W/w)); resample with ``torch.nn.functional.interpolate`` (bilinear,
``antialias=True``, which low-pass filters when downscaling); put the result against column 0
(the chest wall) and centre it vertically; the rest is zeros (background), i.e. padding goes away
from the chest wall.

**Cache**: with ``cache_dir``, each view's resized array is stored as
``<cache_dir>/<k[:2]>/<k>.npy`` (float32, shape (H, W)), where ``k`` is the SHA-256 of the
absolute path, file size, mtime (ns), slot, image size, VOI mode and :data:`PREPROCESSING_VERSION`.
Files are written to a temporary name and renamed (atomic on POSIX), loaded with
``np.load(allow_pickle=False)``, and a :class:`~riskmodel.imaging.errors.DicomError` is cached
as ``<k>.err`` (text), so a later epoch neither decodes DICOM nor retries a known-bad file. Only a
DicomError (a property of the file) is cached: an OSError (a missing file, no permission) is
reported for the view but not cached, and a resource error
(:func:`~riskmodel.imaging.errors.is_resource_error`: ``MemoryError``, ENOMEM, EMFILE, ENOSPC,
``KeyboardInterrupt``) propagates out of ``__getitem__`` and is never cached, so a retry reads
the file again. Changing the file (size or mtime), the
image size or the VOI mode gives a new key; an unreadable cache entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from riskmodel.imaging.dicom import pixels as dicom
from riskmodel.imaging.errors import DicomError, MetadataError, is_resource_error
from riskmodel.imaging.exams import VIEW_ORDER

__all__ = ["PREPROCESSING_VERSION", "ExamDataset", "fit_to_size"]

#: Bump when read_mammogram's output or fit_to_size changes: it is part of every cache key.
PREPROCESSING_VERSION = "2"  # 2: images blank after the VOI step are refused (were cached as images)


def fit_to_size(pixels: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Resize a canonical image to fit inside ``image_size`` and pad it (see module docstring).

    Args:
        pixels: float array of shape ``(h, w)``, chest wall at column 0.
        image_size: ``(H, W)`` in pixels.

    Returns:
        float32 array of shape ``(H, W)`` in [0, 1]: the resized image occupies columns
        ``0 … round(w·s)-1`` and rows centred vertically, where ``s = min(H/h, W/w)``.

    >>> fit_to_size(np.ones((4, 2), np.float32), (8, 8)).sum(axis=0).tolist()
    [8.0, 8.0, 8.0, 8.0, 0.0, 0.0, 0.0, 0.0]
    """
    height, width = image_size
    h, w = pixels.shape
    scale = min(height / h, width / w)
    nh = min(height, max(1, round(h * scale)))
    nw = min(width, max(1, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    out = np.zeros((height, width), dtype=np.float32)
    top = (height - nh) // 2
    out[top:top + nh, :nw] = x[0, 0].clamp_(0.0, 1.0).numpy()
    return out


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) != ""


class ExamDataset(Dataset):
    """Map-style dataset over the rows of :func:`riskmodel.imaging.assemble_exams`' output.

    Args:
        exams: a DataFrame with ``exam_id`` and one path column per slot of :data:`VIEW_ORDER`
            (NaN/None/"" = missing view).
        image_size: ``(H, W)`` of every view, in pixels. The default is Mirai's 2048 × 1664.
        cache_dir: folder for the preprocessed-array cache, created if needed; None = no cache.
        voi: how each file's VOI LUT or window is applied, one of
            :data:`~riskmodel.imaging.dicom.VOI_MODES` (see :func:`~riskmodel.imaging.read_mammogram`).

    A view that cannot be read (any :class:`~riskmodel.imaging.errors.DicomError` or OSError), or
    whose file says another side or view family than its slot, comes back as zeros with
    ``mask`` False and its error in ``errors``; the other views and exams are unaffected.
    A resource error (out of memory, too many open files, no space left) is not the file's
    fault: it propagates, and nothing is cached.
    """

    def __init__(self, exams: pd.DataFrame, image_size: tuple[int, int] = (2048, 1664),
                 cache_dir: str | os.PathLike[str] | None = None, voi: str = "auto"):
        missing = [c for c in ("exam_id", *VIEW_ORDER) if c not in exams]
        if missing:
            raise ValueError(f"exams lacks column(s) {missing}; build it with assemble_exams()")
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (H, W) with positive sizes, got {image_size!r}")
        if voi not in dicom.VOI_MODES:
            raise ValueError(f"voi must be one of {dicom.VOI_MODES}, got {voi!r}")
        self.voi = voi
        self.exams = exams.reset_index(drop=True)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.exams)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.exams.iloc[index]
        height, width = self.image_size
        images = np.zeros((len(VIEW_ORDER), 1, height, width), dtype=np.float32)
        mask = np.zeros(len(VIEW_ORDER), dtype=bool)
        errors = []
        for i, slot in enumerate(VIEW_ORDER):
            path = row[slot]
            if not _is_path(path):
                continue
            array, error = self.load_view(str(path), slot)
            if error:
                errors.append(f"{slot}: {error}")
            else:
                images[i, 0] = array
                mask[i] = True
        return {"images": torch.from_numpy(images), "mask": torch.from_numpy(mask),
                "exam_id": str(row["exam_id"]), "errors": "; ".join(errors)}

    # -- one view ---------------------------------------------------------------------------

    def load_view(self, path: str, slot: str) -> tuple[np.ndarray | None, str]:
        """The preprocessed ``(H, W)`` float32 array of one file in ``slot``, and ``""``; or
        ``(None, "<ErrorClass>: <message>")``. Uses and fills the cache (DicomErrors only).

        Raises:
            MemoryError, OSError: a resource error (:func:`~riskmodel.imaging.errors.is_resource_error`),
                unchanged and not cached.
        """
        key = self._key(path, slot)
        if key is not None:
            cached = self._cache_get(key)
            if cached is not None:
                return cached
        try:
            m = dicom.read_mammogram(path, voi=self.voi)
            side, family = slot.split("-")
            if (m.laterality, m.view_family) != (side, family):
                raise MetadataError(path, f"the file is a {m.laterality}-{m.view} image, not a {slot} view")
            result: tuple[np.ndarray | None, str] = (fit_to_size(m.pixels, self.image_size), "")
        except DicomError as e:  # a property of the file: cached
            result = (None, f"{type(e).__name__}: {e}")
        except OSError as e:  # possibly transient (network share, permissions): not cached
            if is_resource_error(e):  # ENOMEM, EMFILE, ENOSPC…: the run's problem, not this view's
                raise
            return None, f"{type(e).__name__}: {e}"
        if key is not None:
            self._cache_put(key, result)
        return result

    def _key(self, path: str, slot: str) -> str | None:
        if self.cache_dir is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None  # reported by the read itself; nothing worth caching
        ident = [os.path.abspath(path), st.st_size, st.st_mtime_ns, slot, list(self.image_size),
                 PREPROCESSING_VERSION]
        if self.voi != "auto":  # "auto" keys are those written before the option existed
            ident.append(self.voi)
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    def _cache_paths(self, key: str) -> tuple[Path, Path]:
        assert self.cache_dir is not None
        folder = self.cache_dir / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.err"

    def _cache_get(self, key: str) -> tuple[np.ndarray | None, str] | None:
        npy, err = self._cache_paths(key)
        try:
            if err.exists():
                return None, err.read_text(encoding="utf-8")
            if npy.exists():
                array = np.load(npy, allow_pickle=False)
                if array.shape == self.image_size and array.dtype == np.float32:
                    return array, ""
        except (OSError, ValueError, EOFError, UnicodeDecodeError):
            pass  # a damaged entry: recompute and overwrite it
        return None

    def _cache_put(self, key: str, result: tuple[np.ndarray | None, str]) -> None:
        npy, err = self._cache_paths(key)
        npy.parent.mkdir(parents=True, exist_ok=True)
        array, error = result
        target = npy if array is not None else err
        fd, tmp = tempfile.mkstemp(dir=npy.parent, prefix=f".{key[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                if array is not None:
                    np.save(fh, array, allow_pickle=False)
                else:
                    fh.write(error.encode("utf-8"))
            os.replace(tmp, target)
        except OSError:
            Path(tmp).unlink(missing_ok=True)  # a cache that cannot be written is not an error
