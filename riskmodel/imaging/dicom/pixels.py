"""One file → a :class:`Mammogram`: decode, modality LUT and VOI to [0, 1]; :func:`read_mammogram` runs it all.

:func:`read_mammogram` parses (:mod:`.parse`) and checks (:mod:`.checks`) the file, then decodes the pixels, maps
them to [0, 1] (modality LUT, VOI, MONOCHROME1) and orients them (:mod:`.orient`).

The steps, their order and the rules of each are in the :mod:`riskmodel.imaging.dicom` docstring.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskmodel.imaging.dicom.budget import resolve_pixel_budget
from riskmodel.imaging.dicom.checks import RLE_LOSSLESS, check_object, decoder_message
from riskmodel.imaging.dicom.metadata import VIEW_FAMILY, header_fields
from riskmodel.imaging.dicom.orient import orient
from riskmodel.imaging.dicom.parse import read_dataset
from riskmodel.imaging.dicom.tags import tag_int, tag_items, tag_text, transfer_syntax
from riskmodel.imaging.errors import (
    DecoderMissingError,
    DicomError,
    DicomReadError,
    TruncatedDicomError,
    UnsupportedImageError,
    is_resource_error,
)

#: How :func:`read_mammogram` applies the VOI step: as written (``"auto"``) or linearised.
VOI_MODES = ("auto", "linear")

#: An image whose values after the VOI step span less than this (on the [0, 1] output scale, i.e.
#: less than one grey level of a 16-bit display) is blank: :func:`read_mammogram` refuses it.
MIN_VOI_RANGE = 2.0**-16


@dataclass(frozen=True, eq=False)
class Mammogram:
    """One mammogram in the canonical orientation, with the metadata the pipeline uses.

    Attributes:
        pixels: float32 array of shape ``(rows, columns)`` in [0, 1]; higher = denser tissue,
            background near 0; chest wall at column 0, the breast pointing to increasing column.
        laterality: ``"L"`` or ``"R"``.
        view: normalised view code: ``CC``, ``MLO``, ``ML``, ``LM``, ``LMO``, ``XCC``, ``XCCL``,
            ``XCCM``, ``FB``, ``SIO``, ``ISO``, ``CV``, ``AT`` or ``SPECIMEN``.
        view_family: ``"CC"``, ``"MLO"`` or ``"other"`` (see :data:`VIEW_FAMILY`).
        flipped: True if the stored image was mirrored left–right to reach the canonical
            orientation (usual for right breasts, whose chest wall is stored on the right).
        path: the file read.
        pixel_spacing: (row, column) spacing in mm: PixelSpacing, else ImagerPixelSpacing (at the
            detector); None if neither is present.
        voi: the VOI step applied: ``"voi_lut"``, ``"window:LINEAR"``, ``"window:LINEAR_EXACT"``,
            ``"window:SIGMOID"`` or ``"minmax"``; with ``voi="linear"``, ``"voi_lut_range"`` (a
            straight line over the LUT's input range) or ``"window:LINEAR"``.
        orientation_source: ``"pixels"``, or the fallback used when the pixels were ambiguous:
            ``"PatientOrientation"`` or ``"laterality"``.
        laterality_source, view_source: the tag each was read from.
        view_modifiers: CID 4015 modifiers (e.g. ``("spot compression",)``), empty if none.
        acquisition_datetime: ``YYYYMMDDHHMMSS.ffffff`` from AcquisitionDateTime, else
            AcquisitionDate/Time, else ContentDate/Time; empty if none.

    The other attributes are the DICOM values as strings (empty when absent), except
    ``bits_stored`` and ``instance_number`` (int, or None when absent).
    """

    pixels: np.ndarray = field(repr=False)
    laterality: str
    view: str
    view_family: str
    flipped: bool
    path: str
    manufacturer: str = ""
    model: str = ""
    pixel_spacing: tuple[float, float] | None = None
    photometric_interpretation: str = ""
    presentation_intent: str = ""
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    accession_number: str = ""
    study_date: str = ""
    acquisition_datetime: str = ""
    instance_number: int | None = None
    transfer_syntax: str = ""
    bits_stored: int | None = None
    voi: str = ""
    orientation_source: str = ""
    laterality_source: str = ""
    view_source: str = ""
    view_modifiers: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of :attr:`pixels`."""
        return self.pixels.shape  # type: ignore[return-value]


def _decode(ds: Any, path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except DicomError:
        raise
    except BaseException as e:
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit
        if type(e).__name__ != "PanicException" and is_resource_error(e):  # e.g. MemoryError: propagates
            raise
        # pylibjpeg-rle's Rust code panics (a BaseException) on runs that overflow the frame.
        msg = str(e)
        if transfer_syntax(ds) == RLE_LOSSLESS and "out of bounds" in msg:
            raise DicomReadError(path, f"corrupt RLE pixel data: a segment decodes to more than the "
                                       f"{tag_int(ds, 'Rows')} × {tag_int(ds, 'Columns')} values Rows × Columns allow "
                                       f"({type(e).__name__}: {msg})") from None
        if "less than expected" in msg or "shorter than" in msg:
            raise TruncatedDicomError(path, f"pixel data is shorter than declared: {msg}") from None
        if "missing dependencies" in msg or "no pixel data plugins" in msg:  # lost a race with the pre-check
            ts = transfer_syntax(ds)
            raise DecoderMissingError(path, f"no working decoder for {decoder_message(ts)}: {msg}", ts) from None
        raise DicomReadError(path, f"pixel data could not be decoded: {type(e).__name__}: {msg}") from None
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise UnsupportedImageError(path, f"decoded pixel array has shape {arr.shape}, expected (rows, columns)")
    return arr


def _to_unit_range(arr: np.ndarray, ds: Any, path: Path, voi_mode: str = "auto") -> tuple[np.ndarray, str]:
    """Steps 4–6: modality LUT, VOI (``voi_mode``: see the :mod:`riskmodel.imaging.dicom` docstring), scaling to
    [0, 1], MONOCHROME1 inversion. float64 out."""
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    x = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise UnsupportedImageError(path, "pixel values are not finite after the modality LUT")
    if lo == hi:
        raise UnsupportedImageError(path, f"blank image: every pixel has the value {lo:g} after the modality LUT")
    y: np.ndarray | None = None
    voi = "minmax"
    if tag_items(ds, "VOILUTSequence"):
        try:
            item = ds.VOILUTSequence[0]
            entries = int(item.LUTDescriptor[0]) or 2**16
            first = int(item.LUTDescriptor[1])
            # The LUT's own output range: GE writes 16 in LUTDescriptor[2] for 12-bit tables.
            table = np.asarray(apply_voi(np.arange(first, first + entries, dtype=np.int64), ds, 0), np.float64)
            t_lo, t_hi = float(table.min()), float(table.max())
            if t_hi > t_lo and voi_mode == "linear":
                y = (np.clip(x, first, first + entries - 1) - first) / max(entries - 1, 1)
                if table[-1] < table[0]:  # a falling table inverts: so does its straight line
                    y = 1.0 - y
                voi = "voi_lut_range"
            elif t_hi > t_lo:
                # LUT input is an integer index: round the modality output to it, and clip it to the
                # table first (pydicom casts to uint16 before clipping, so 70000 would wrap around).
                lut_in = np.clip(np.rint(x), first, first + entries - 1).astype(np.int64)
                y = (np.asarray(apply_voi(lut_in, ds, 0), dtype=np.float64) - t_lo) / (t_hi - t_lo)
                voi = "voi_lut"
        except Exception as e:  # an unusable LUT: fall through to the window or min–max
            if is_resource_error(e):
                raise
            y = None
    if y is None and "WindowCenter" in ds and "WindowWidth" in ds:
        function = (tag_text(ds, "VOILUTFunction").upper() or "LINEAR")
        window_ds = ds
        if voi_mode == "linear" and function != "LINEAR":
            window_ds = copy.copy(ds)  # shallow: the pixel data is not copied
            window_ds.VOILUTFunction = function = "LINEAR"
        try:
            # The output range of pydicom's windowing depends on BitsStored, the rescale and the
            # function; probe it with -inf/+inf stand-ins rather than re-deriving it.
            with np.errstate(over="ignore"):
                ends = apply_windowing(np.array([-1e300, 1e300]), window_ds, 0)
                w = apply_windowing(x.copy(), window_ds, 0)
            w_lo, w_hi = float(ends[0]), float(ends[1])
            if w_hi != w_lo and np.isfinite(w_lo) and np.isfinite(w_hi):
                y = (np.asarray(w, dtype=np.float64) - w_lo) / (w_hi - w_lo)
                voi = f"window:{function}"
        except Exception as e:  # width <= 0, non-numeric values: fall back to min–max
            if is_resource_error(e):
                raise
            y = None
    if y is None:
        y = (x - lo) / (hi - lo)
    np.clip(y, 0.0, 1.0, out=y)
    _check_not_blank(y, ds, path, voi)
    if tag_text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1":
        y = 1.0 - y
    return y, voi


def _voi_description(ds: Any, voi: str) -> str:
    """The VOI transform ``voi`` (a ``Mammogram.voi`` value) with the file's values, for messages."""
    if voi.startswith("window:"):
        return (f"window center {tag_text(ds, 'WindowCenter')} / width {tag_text(ds, 'WindowWidth')} "
                f"({voi.removeprefix('window:')})")
    if voi.startswith("voi_lut"):
        try:
            descriptor = [int(v) for v in ds.VOILUTSequence[0].LUTDescriptor]
        except Exception:
            descriptor = "unreadable"
        return f"the VOI LUT (LUTDescriptor {descriptor}{', applied linearly' if voi == 'voi_lut_range' else ''})"
    return "the min-max scaling"


def _check_not_blank(y: np.ndarray, ds: Any, path: Path, voi: str) -> None:
    """Refuse an image the VOI step left blank: NaN values, or a range below :data:`MIN_VOI_RANGE`.

    Args:
        y: the image after the VOI step and clipping, values in [0, 1] (NaN if the transform made any).
        voi: the transform applied (``Mammogram.voi``), named in the message with the file's values.

    Raises:
        UnsupportedImageError: naming the file, the transform and its values, and what it gave.
    """
    lo, hi = float(y.min()), float(y.max())  # NaN if any value is NaN
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo >= MIN_VOI_RANGE:
        return
    if not (np.isfinite(lo) and np.isfinite(hi)):
        result = "values that are not finite"
    elif hi == lo:
        result = f"the single value {lo:g} (on a 0..1 scale)"
    else:
        result = f"values within {hi - lo:.3g} of each other (less than 1/65536 of the 0..1 scale)"
    raise UnsupportedImageError(
        path, f"blank image after the VOI step: {_voi_description(ds, voi)} maps every pixel to {result}")


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A checked, decoded file before any intensity transform (what :func:`decode_checked` returns).

    Attributes:
        dataset: the pydicom Dataset (pixel data included).
        stored: the decoded stored values, shape ``(rows, columns)``, as pydicom gives them (bits above
            BitsStored masked, signed per PixelRepresentation).
        laterality, laterality_source, view, view_source: as in :class:`Mammogram`.
        fields: the identification fields of :func:`~riskmodel.imaging.dicom.metadata.header_fields`.
        path: the file read.
    """

    dataset: Any
    stored: np.ndarray = field(repr=False)
    laterality: str
    laterality_source: str
    view: str
    view_source: str
    fields: dict
    path: Path


@contextmanager
def _as_read_error(path: Path) -> Iterator[None]:
    """Turn what pydicom raises on a header value it only chokes on when converted into a DicomReadError."""
    try:
        yield
    except DicomError:
        raise
    except Exception as e:
        if is_resource_error(e):
            raise
        raise DicomReadError(path, f"pydicom could not read the file: {type(e).__name__}: {e}") from None


def decode_checked(path: str | os.PathLike[str], pixel_budget: int | None = None) -> DecodedImage:
    """Steps 1–3 of :func:`read_mammogram`: parse, check (pixel budget first) and decode, nothing more.

    For readers that apply their own intensity transform (e.g. Mirai's presets in
    :mod:`riskmodel.imaging.mirai_preprocess`). Nothing is decoded before the checks pass.

    Raises:
        DicomError: as :func:`read_mammogram`.
    """
    budget = resolve_pixel_budget(pixel_budget)
    path = Path(path)
    ds, pixel, problem = read_dataset(path, header_only=False, budget=budget)
    if problem is not None:
        raise problem
    with _as_read_error(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings about vendor values (e.g. "cc " as CS)
            fields = header_fields(ds, path)
            laterality, lat_source, view, view_source = check_object(ds, path, pixel, header_only=False,
                                                                      budget=budget)
        arr = _decode(ds, path)
    return DecodedImage(ds, arr, laterality, lat_source, view, view_source, fields, path)


def read_mammogram(path: str | os.PathLike[str], voi: str = "auto", pixel_budget: int | None = None) -> Mammogram:
    """Read one MG DICOM file into a :class:`Mammogram` (steps in the :mod:`riskmodel.imaging.dicom` docstring).

    Args:
        path: the DICOM file.
        voi: one of :data:`VOI_MODES`: ``"auto"`` applies the file's VOI LUT or window as
            written; ``"linear"`` maps the same range of interest linearly (package docstring,
            step 5).
        pixel_budget: the most bytes of decoded pixel data the file may declare (Rows ×
            Columns × frames × samples × BitsAllocated / 8); None: :func:`resolve_pixel_budget`
            (the ``RISKMODEL_PIXEL_BUDGET`` environment variable, else
            :data:`PIXEL_BUDGET_BYTES`). A deflated data set may inflate to this plus
            :data:`METADATA_ALLOWANCE_BYTES`.

    Raises:
        ValueError: ``voi`` is not one of :data:`VOI_MODES`, or ``pixel_budget`` is not a
            positive integer.
        DicomError: one of its subclasses, whose message names the file and the rule broken.
            A file that passes every check but whose pixels pydicom cannot decode raises
            :class:`~riskmodel.imaging.errors.DicomReadError`.
        OSError: the file cannot be opened (missing, no permission).

    Known blind spot: JPEG 2000 has no checksum, and openjpeg decodes some corrupted
    codestreams without an error; such damage cannot be detected here.
    """
    if voi not in VOI_MODES:
        raise ValueError(f"voi must be one of {VOI_MODES}, got {voi!r}")
    decoded = decode_checked(path, pixel_budget)
    ds, path, laterality = decoded.dataset, decoded.path, decoded.laterality
    with _as_read_error(path):
        y, applied = _to_unit_range(decoded.stored, ds, path, voi)
        pixels, flipped, orientation_source = orient(y, ds, laterality)
    fields = dict(decoded.fields)
    fields.pop("rows")
    fields.pop("columns")
    return Mammogram(
        pixels=pixels, laterality=laterality, view=decoded.view, view_family=VIEW_FAMILY[decoded.view],
        flipped=flipped, path=str(path), voi=applied, orientation_source=orientation_source,
        laterality_source=decoded.laterality_source, view_source=decoded.view_source, **fields)
