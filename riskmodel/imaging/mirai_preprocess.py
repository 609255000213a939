"""Mirai's image preprocessing, step for step: DICOM → 16-bit image → (3, 2048, 1664) normalised tensor.

Mirai (Yala et al. 2021; code ``reginabarzilaygroup/Mirai``, package ``onconet`` 0.14) turns each DICOM
file into a 16-bit grayscale image in one of two ways, then applies its test-time transforms. This
module reproduces both from the library's bounded reader (:func:`~riskmodel.imaging.dicom.pixels.decode_checked`:
the pixel budget is checked before anything is decoded). Presets (:data:`MIRAI_PRESETS`):

``"dcmtk"`` — what Mirai's default path gets from DCMTK's ``dcmj2pnm +on2 --grayscale`` (16-bit PNG):

* ``'GE'`` in Manufacturer (a case-sensitive substring test, as Mirai's) and a non-empty VOI LUT
  Sequence → ``--use-voi-lut 1``: the first VOI LUT, its output scaled from the LUT's bit depth
  (LUTDescriptor[2]) to 16 bits as DCMTK scales it;
* ``'C-View'`` in SeriesDescription and a non-empty VOI LUT Sequence → ``+Ww 540 580``: a fixed linear
  window, centre 540, width 580;
* otherwise ``--min-max-window``: a linear window over the image's own range after the modality
  transform, centre ``(min + max + 1) / 2``, width ``max - min + 1``.

  DCMTK's arithmetic is followed exactly: the modality rescale truncates to integers; the window is
  ``trunc(offset + value × gradient)`` with DCMTK's offset and gradient; MONOCHROME1 is rendered
  inverted (DCMTK swaps the output range).

``"pydicom"`` — Mirai's ``--use-pydicom`` path (``dicom_to_arr``, ``window_method="minmax"``): pydicom's
modality LUT, then for GE files with a VOI LUT the LUT's values multiplied by ``2**(16 - bits)``, else a
min–max linear window (or SIGMOID when VOILUTFunction says so), truncated to uint16. Mirai's code
leaves MONOCHROME1 images inverted (dark tissue on a white background); this preset inverts them
(``65535 - value``) and says so in :attr:`MiraiView.notes`.

Then, for both (Mirai's ``test_image_transformers`` ``scale_2d, align_to_left`` and
``test_tensor_transformers`` ``force_num_chan_2d, normalize_2d`` with ``mirai_trained.json``):

1. resize to ``size`` = (rows, columns), default (2048, 1664) (its ``img_size [1664, 2048]`` is
   width, height), with Pillow's bilinear filter on the 32-bit integer image, no crop, no padding;
2. ``align_to_left``: mirror left–right when the left quarter of the columns (``columns - 3 × columns
   // 4`` of them) holds more signal than the right quarter, so that the breast always lies on the
   right half with the nipple pointing left;
3. three identical channels, ``(x - 7047.99) / 12005.5`` in float32.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskmodel.imaging.dicom.pixels import DecodedImage, decode_checked
from riskmodel.imaging.dicom.tags import tag_items, tag_text
from riskmodel.imaging.errors import DicomError, MetadataError, UnsupportedImageError

__all__ = [
    "MIRAI_C_VIEW_WINDOW",
    "MIRAI_MEAN",
    "MIRAI_PRESETS",
    "MIRAI_SIZE",
    "MIRAI_STD",
    "MiraiPreset",
    "MiraiView",
    "align_to_left",
    "dcmj2pnm_reference",
    "mirai_dcmj2pnm_args",
    "mirai_image16",
    "mirai_tensor",
    "preprocess_view",
]

#: Mirai's input, (rows, columns): ``img_size [1664, 2048]`` in ``mirai_trained.json`` is (width, height).
MIRAI_SIZE = (2048, 1664)
#: ``img_mean`` and ``img_std`` of ``mirai_trained.json`` (on the 0..65535 scale of the 16-bit image).
MIRAI_MEAN = 7047.99
MIRAI_STD = 12005.5
#: The window ``dcmj2pnm +Ww`` gets for C-View (synthesised 2D) images in Mirai: (centre, width).
MIRAI_C_VIEW_WINDOW = (540.0, 580.0)
#: The 16-bit output range of ``dcmj2pnm +on2`` and of Mirai's pydicom path.
OUT_MAX = 65535


@dataclass(frozen=True)
class MiraiPreset:
    """One way of turning a decoded file into Mirai's 16-bit image.

    Attributes:
        name: the key in :data:`MIRAI_PRESETS`.
        description: one line: what Mirai runs for it.
        convert: ``(decoded) -> (image, notes)``: uint16 array of the file's shape, and what the
            conversion did that a user should know.
    """

    name: str
    description: str
    convert: Callable[[DecodedImage], tuple[np.ndarray, tuple[str, ...]]] = field(repr=False)


@dataclass(frozen=True, eq=False)
class MiraiView:
    """One view preprocessed as Mirai preprocesses it.

    Attributes:
        tensor: float32 array of shape ``(3, rows, columns)`` (default ``(3, 2048, 1664)``): resized,
            aligned, ``(x - MIRAI_MEAN) / MIRAI_STD``, the same in all three channels.
        laterality: ``"L"`` or ``"R"``, from the header (the library's reader).
        view: ``"CC"`` or ``"MLO"`` (an ``ML`` view counts as MLO, as in Mirai).
        notes: what was done that a user should know (e.g. ``"MONOCHROME1 inverted"``).
        preset: the preset used.
        flipped: True if ``align_to_left`` mirrored the resized image.
        path: the file read (``"<bytes>"`` for bytes).
    """

    tensor: np.ndarray = field(repr=False)
    laterality: str
    view: str
    notes: tuple[str, ...]
    preset: str
    flipped: bool
    path: str


# --------------------------------------------------------------------------------------------------
# Which branch Mirai's code takes


def _has_voi_lut(ds: Any) -> bool:
    """(0028,3010) VOI LUT Sequence present with at least one item (Mirai's ``voi_lut_exists``)."""
    return len(tag_items(ds, "VOILUTSequence")) > 0


def _is_ge_with_lut(ds: Any) -> bool:
    """Mirai's test: the substring ``'GE'`` (case-sensitive) in Manufacturer, and a VOI LUT."""
    return "GE" in tag_text(ds, "Manufacturer") and _has_voi_lut(ds)


def _is_c_view_with_lut(ds: Any) -> bool:
    """Mirai's test: ``'C-View'`` in SeriesDescription (case-sensitive), and a VOI LUT."""
    return "C-View" in tag_text(ds, "SeriesDescription") and _has_voi_lut(ds)


def _lut_table(ds: Any, path: Path) -> tuple[np.ndarray, int, int]:
    """The first VOI LUT: ``(table, first mapped value, bits)``; table as int64 of LUTDescriptor[0] entries."""
    item = ds.VOILUTSequence[0]
    try:
        entries, first, bits = (int(v) for v in item.LUTDescriptor)
    except Exception as e:
        raise UnsupportedImageError(path, f"VOI LUT Sequence item 1 has an unusable LUTDescriptor: {e}") from None
    entries = entries or 2**16
    raw = item.LUTData
    if isinstance(raw, bytes | bytearray):
        table = np.frombuffer(raw, dtype="<u2" if ds.is_little_endian is not False else ">u2")
    else:
        table = np.atleast_1d(np.asarray(raw))
    table = table.astype(np.int64)
    if table.size < entries or not 1 <= bits <= 16:
        raise UnsupportedImageError(path, f"VOI LUT Sequence item 1: LUTDescriptor {[entries, first, bits]} does not "
                                          f"match its {table.size} LUT Data values (or bits not in 1..16)")
    return table[:entries], first, bits


def _modality(decoded: DecodedImage) -> np.ndarray:
    """pydicom's modality LUT (Rescale Slope/Intercept or Modality LUT Sequence), float64."""
    from pydicom.pixels import apply_modality_lut

    return np.asarray(apply_modality_lut(decoded.stored, decoded.dataset), dtype=np.float64)


def _refuse_blank(values: np.ndarray, path: Path, what: str) -> None:
    """A constant image carries nothing: Mirai would feed a uniform tensor; refuse it with a clear error."""
    if values.size == 0 or float(values.min()) == float(values.max()):
        raise UnsupportedImageError(path, f"blank image: every pixel has the value {float(values.flat[0]):g} "
                                          f"{what}; Mirai's window would map it to one grey level")


# --------------------------------------------------------------------------------------------------
# DCMTK (dcmj2pnm +on2) arithmetic


def _dcmtk_intermediate(decoded: DecodedImage) -> np.ndarray:
    """DCMTK's intermediate values: stored values through Rescale Slope/Intercept, truncated toward zero
    to integers (DCMTK's intermediate representation is integral); a Modality LUT Sequence is applied as
    pydicom applies it. float64 holding integers."""
    ds = decoded.dataset
    if tag_items(ds, "ModalityLUTSequence"):
        return np.trunc(_modality(decoded))
    x = decoded.stored.astype(np.float64)
    slope = float(ds.RescaleSlope) if tag_text(ds, "RescaleSlope") else 1.0
    intercept = float(ds.RescaleIntercept) if tag_text(ds, "RescaleIntercept") else 0.0
    if slope == 1.0 and intercept == 0.0:
        return x
    return np.trunc(x * slope + intercept) if slope != 1.0 else np.trunc(x + intercept)


def _dcmtk_window(x: np.ndarray, center: float, width: float, inverse: bool) -> np.ndarray:
    """DCMTK's linear VOI window to 16 bits (no presentation LUT, no display function).

    ``out = trunc(offset + x × gradient)`` between the borders ``center - 0.5 ∓ (width - 1) / 2``,
    ``low`` at or below the left border, ``high`` above the right one; ``low, high = 0, 65535``
    (swapped for MONOCHROME1). The same floating-point operations in the same order as DCMTK.
    """
    low, high = (float(OUT_MAX), 0.0) if inverse else (0.0, float(OUT_MAX))
    width_1 = width - 1.0
    left, right = center - 0.5 - width_1 / 2, center - 0.5 + width_1 / 2
    outrange = high - low
    if width_1 == 0:
        offset = gradient = 0.0
    else:
        offset = high - ((center - 0.5) / width_1 + 0.5) * outrange
        gradient = outrange / width_1
    out = np.trunc(offset + x * gradient)
    out = np.where(x <= left, low, np.where(x > right, high, out))
    return out.astype(np.uint16)


def _dcmtk_sigmoid(x: np.ndarray, center: float, width: float, inverse: bool) -> np.ndarray:
    """DCMTK's SIGMOID VOI function to 16 bits: ``s = 65535 / (1 + exp(-4 (x - center) / width))``, then
    ``trunc(s)``, or ``trunc(65535 - s)`` for MONOCHROME1 (checked against dcmj2pnm 3.6.7)."""
    s = float(OUT_MAX) / (1 + np.exp(-4 * (x - center) / width))
    return np.trunc(float(OUT_MAX) - s if inverse else s).astype(np.uint16)


def _dcmtk_voi_lut(x: np.ndarray, table: np.ndarray, first: int, bits: int, inverse: bool) -> np.ndarray:
    """DCMTK's VOI LUT to 16 bits: ``trunc(low + LUT[x] × (high - low + 1) / 2**bits)``, inputs clamped to the
    table's first/last entry."""
    low, high = (float(OUT_MAX), 0.0) if inverse else (0.0, float(OUT_MAX))
    gradient = (high - low + 1.0) / float(2**bits)
    index = np.clip(x, first, first + table.size - 1).astype(np.int64) - first
    values = np.trunc(low + table.astype(np.float64) * gradient)
    return values[index].astype(np.uint16)


def _dcmtk_convert(decoded: DecodedImage) -> tuple[np.ndarray, tuple[str, ...]]:
    """The ``"dcmtk"`` preset: the 16-bit image ``dcmj2pnm`` writes with Mirai's arguments."""
    ds, path = decoded.dataset, decoded.path
    inverse = tag_text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1"
    notes: list[str] = []
    x = _dcmtk_intermediate(decoded)
    _refuse_blank(x, path, "after the modality transform")
    if _is_ge_with_lut(ds):
        table, first, bits = _lut_table(ds, path)
        out = _dcmtk_voi_lut(x, table, first, bits, inverse)
        notes.append(f"GE VOI LUT applied (dcmj2pnm --use-voi-lut 1; {table.size} entries, {bits} bits)")
    else:
        if _is_c_view_with_lut(ds):
            center, width = MIRAI_C_VIEW_WINDOW
            notes.append("C-View window 540/580 applied (dcmj2pnm +Ww 540 580)")
        else:
            lo, hi = float(x.min()), float(x.max())
            center, width = (lo + hi + 1) / 2, hi - lo + 1
        if tag_text(ds, "VOILUTFunction").upper() == "SIGMOID":  # DCMTK keeps the file's VOI LUT Function
            out = _dcmtk_sigmoid(x, center, width, inverse)
            notes.append("window applied with VOILUTFunction SIGMOID (as DCMTK does)")
        else:
            out = _dcmtk_window(x, center, width, inverse)
    if inverse:
        notes.append("MONOCHROME1 inverted (as dcmj2pnm renders it)")
    if any(0x6000 <= (tag >> 16) <= 0x601E and (tag & 0xFFFF) == 0x3000 for tag in ds.keys()):
        notes.append("overlay planes present: dcmj2pnm burns them into the image, this preset does not")
    return out, tuple(notes)


# --------------------------------------------------------------------------------------------------
# Mirai's pydicom path (onconet.utils.dicom.dicom_to_arr, window_method="minmax")


def _pydicom_voi_lut(image: np.ndarray, table: np.ndarray, first: int, bits: int, path: Path) -> np.ndarray:
    """GE branch: the VOI LUT on ``image`` cast to uint16, then ``× 2**(16 - bits)``; a product above 65535
    (which Mirai's uint16 arithmetic would wrap) is an error."""
    x = image.astype(np.uint16).astype(np.int64)
    index = np.clip(np.where(x >= first, x - first, 0), 0, table.size - 1)
    out = table[index] * 2 ** (16 - bits)
    if out.size and int(out.max()) > OUT_MAX:
        raise UnsupportedImageError(path, f"VOI LUT values exceed its {bits} bits (LUTDescriptor[2]): "
                                          f"× 2**{16 - bits} overflows 16 bits")
    return out.astype(np.uint16)


def _pydicom_window(image: np.ndarray, function: str, path: Path) -> np.ndarray:
    """Min–max window as Mirai's ``apply_windowing`` computes it (LINEAR or SIGMOID), truncated to uint16."""
    lo, hi = float(image.min()), float(image.max())
    center, width = (lo + hi + 1) / 2, hi - lo + 1
    if function == "LINEAR":
        c, w = center - 0.5, width - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            y = ((image - c) / w + 0.5) * OUT_MAX
        y = np.where(image <= c - w / 2, 0.0, np.where(image > c + w / 2, float(OUT_MAX), y))
    elif function == "SIGMOID":
        y = OUT_MAX / (1 + np.exp(-4 * (image - center) / width))
    else:
        raise UnsupportedImageError(path, f"VOILUTFunction {function!r}: Mirai's pydicom path takes only LINEAR or "
                                          "SIGMOID (use the 'dcmtk' preset)")
    return np.trunc(y).astype(np.uint16)


def _pydicom_convert(decoded: DecodedImage) -> tuple[np.ndarray, tuple[str, ...]]:
    """The ``"pydicom"`` preset: Mirai's ``dicom_to_arr(window_method="minmax")``, MONOCHROME1 inverted."""
    ds, path = decoded.dataset, decoded.path
    image = _modality(decoded)
    _refuse_blank(image, path, "after the modality LUT")
    notes: list[str] = []
    if "GE" in tag_text(ds, "Manufacturer") and "VOILUTSequence" in ds:
        table, first, bits = _lut_table(ds, path)
        out = _pydicom_voi_lut(image, table, first, bits, path)
        notes.append(f"GE VOI LUT applied (× 2**{16 - bits}, as Mirai's pydicom path)")
    else:
        function = tag_text(ds, "VOILUTFunction").upper() or "LINEAR"
        out = _pydicom_window(image, function, path)
        if function != "LINEAR":
            notes.append(f"min-max window with VOILUTFunction {function}")
    if tag_text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1":
        out = (OUT_MAX - out.astype(np.int64)).astype(np.uint16)
        notes.append("MONOCHROME1 inverted (Mirai's pydicom path does not invert it)")
    return out, tuple(notes)


#: The presets, by name.
MIRAI_PRESETS: dict[str, MiraiPreset] = {
    "dcmtk": MiraiPreset("dcmtk", "Mirai's default: dcmj2pnm +on2 --grayscale with --min-max-window, the GE VOI LUT "
                                  "(--use-voi-lut 1) or the C-View window (+Ww 540 580)", _dcmtk_convert),
    "pydicom": MiraiPreset("pydicom", "Mirai's --use-pydicom path (dicom_to_arr, window_method='minmax'), "
                                      "MONOCHROME1 inverted", _pydicom_convert),
}


# --------------------------------------------------------------------------------------------------
# Resize, align, normalise


def align_to_left(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Mirai's ``align_to_left`` on a ``(rows, columns)`` image: mirror it when the left ``columns - 3 × columns
    // 4`` columns sum to more than the right ``columns - 3 × columns // 4`` (ties: no mirror).

    Returns ``(image, flipped)``.
    """
    cols = image.shape[1]
    edge = cols - (cols * 3) // 4
    left = float(image[:, :edge].sum(dtype=np.float64))
    right = float(image[:, cols - edge:].sum(dtype=np.float64))
    if left > right:
        return image[:, ::-1], True
    return image, False


def mirai_tensor(image16: np.ndarray, size: tuple[int, int] = MIRAI_SIZE) -> tuple[np.ndarray, bool]:
    """Mirai's test transforms on a 16-bit image: bilinear resize to ``size`` (rows, columns), align to left,
    three channels, ``(x - MIRAI_MEAN) / MIRAI_STD``.

    Args:
        image16: ``(rows, columns)`` integer image in 0..65535.
        size: output (rows, columns), each ≥ 1.

    Returns:
        ``(tensor, flipped)``: float32 ``(3, size[0], size[1])`` and whether align_to_left mirrored it.
    """
    from PIL import Image

    rows, cols = (int(v) for v in size)
    if rows < 1 or cols < 1:
        raise ValueError(f"size must be (rows, columns) with both ≥ 1, got {size!r}")
    pil = Image.fromarray(np.ascontiguousarray(image16, dtype=np.int32), mode="I")
    resized = np.asarray(pil.resize((cols, rows), Image.Resampling.BILINEAR), dtype=np.int32)
    aligned, flipped = align_to_left(resized)
    one = (aligned.astype(np.float32) - np.float32(MIRAI_MEAN)) / np.float32(MIRAI_STD)
    return np.ascontiguousarray(np.broadcast_to(one, (3, rows, cols)), dtype=np.float32), flipped


# --------------------------------------------------------------------------------------------------
# The reference: DCMTK itself


def mirai_dcmj2pnm_args(ds: Any) -> list[str]:
    """The ``dcmj2pnm`` options Mirai's ``dicom_to_image_dcmtk`` passes for this dataset (before the two paths)."""
    if _is_ge_with_lut(ds):
        return ["+on2", "--use-voi-lut", "1", "--grayscale"]
    if _is_c_view_with_lut(ds):
        return ["+on2", "--grayscale", "+Ww", *(f"{v:g}" for v in MIRAI_C_VIEW_WINDOW)]
    return ["+on2", "--min-max-window", "--grayscale"]


def dcmj2pnm_reference(path: str | os.PathLike[str], workdir: str | os.PathLike[str],
                       executable: str = "dcmj2pnm", timeout_s: float = 120.0) -> tuple[np.ndarray, list[str]]:
    """Run DCMTK's ``dcmj2pnm`` on ``path`` with Mirai's arguments; for verifying the ``"dcmtk"`` preset.

    DCMTK's free build has no JPEG 2000 decoder: a compressed file is first written uncompressed to
    ``workdir`` (pixel values unchanged). Only for files the library's reader accepts (it is called
    after :func:`mirai_image16`, which checks them).

    Returns:
        ``(image, command)``: the 16-bit PNG as a uint16 ``(rows, columns)`` array and the command run.

    Raises:
        RuntimeError: ``dcmj2pnm`` failed (its stderr in the message).
    """
    import pydicom
    from PIL import Image

    src, work = Path(path), Path(workdir)
    ds = pydicom.dcmread(src)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
        src = work / f"{src.stem}.uncompressed.dcm"
        ds.save_as(src, enforce_file_format=True)
    png = work / f"{Path(path).stem}.png"
    command = [executable, *mirai_dcmj2pnm_args(ds), str(src), str(png)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0 or not png.exists():
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    with Image.open(png) as im:
        image = np.asarray(im).astype(np.uint16)
    return image, command


# --------------------------------------------------------------------------------------------------
# Entry points


def _mirai_view_name(decoded: DecodedImage) -> tuple[str, tuple[str, ...]]:
    """CC → CC; MLO or ML → MLO (Mirai's ``get_dicom_info`` maps ML to the MLO slot); others refused."""
    if decoded.view == "CC":
        return "CC", ()
    if decoded.view == "MLO":
        return "MLO", ()
    if decoded.view == "ML":
        return "MLO", ("ML view used as MLO (as Mirai does)",)
    raise MetadataError(decoded.path, f"view {decoded.view} (from {decoded.view_source}): Mirai takes only CC and "
                                      "MLO views (ML counts as MLO)")


def _decode_input(path_or_bytes: str | os.PathLike[str] | bytes, pixel_budget: int | None) -> DecodedImage:
    """Decode a path, or bytes through a private temporary file; errors then name ``<bytes>``."""
    if not isinstance(path_or_bytes, bytes | bytearray | memoryview):
        return decode_checked(path_or_bytes, pixel_budget)
    with tempfile.TemporaryDirectory(prefix="riskmodel-mirai-") as folder:
        tmp = Path(folder) / "input.dcm"
        tmp.write_bytes(bytes(path_or_bytes))
        try:
            decoded = decode_checked(tmp, pixel_budget)
        except DicomError as e:
            e.path = "<bytes>"
            e.args = (f"<bytes>: {e.rule}",)
            raise
    return DecodedImage(decoded.dataset, decoded.stored, decoded.laterality, decoded.laterality_source,
                        decoded.view, decoded.view_source, decoded.fields, Path("<bytes>"))


def _preset(name: str) -> MiraiPreset:
    if name not in MIRAI_PRESETS:
        raise ValueError(f"preset must be one of {sorted(MIRAI_PRESETS)}, got {name!r}")
    return MIRAI_PRESETS[name]


def mirai_image16(path_or_bytes: str | os.PathLike[str] | bytes, preset: str = "dcmtk",
                  pixel_budget: int | None = None) -> tuple[np.ndarray, DecodedImage, tuple[str, ...]]:
    """The 16-bit image a preset makes of one file, before resizing (what ``dcmj2pnm`` would write).

    Returns:
        ``(image, decoded, notes)``: uint16 ``(rows, columns)``, the decoded file, the preset's notes.

    Raises:
        ValueError: unknown ``preset``.
        DicomError: the library's reader refused the file (message names the file and rule).
    """
    chosen = _preset(preset)
    decoded = _decode_input(path_or_bytes, pixel_budget)
    image, notes = chosen.convert(decoded)
    return image, decoded, notes


def preprocess_view(path_or_bytes: str | os.PathLike[str] | bytes, preset: str = "dcmtk",
                    size: tuple[int, int] = MIRAI_SIZE, pixel_budget: int | None = None) -> MiraiView:
    """One DICOM file → Mirai's input tensor for that view.

    Args:
        path_or_bytes: a DICOM file path, or its bytes.
        preset: a key of :data:`MIRAI_PRESETS` (``"dcmtk"``, Mirai's default, or ``"pydicom"``).
        size: output (rows, columns); Mirai's is :data:`MIRAI_SIZE` (2048, 1664). Smaller sizes are for tests.
        pixel_budget: as :func:`~riskmodel.imaging.dicom.read_mammogram` (checked before decoding).

    Returns:
        A :class:`MiraiView`: ``tensor`` float32 ``(3, *size)``, laterality, view (CC/MLO), notes.

    Raises:
        ValueError: unknown preset or bad size.
        DicomError: a file the library's reader refuses (not DICOM, cut short, over budget, not MG, …), a
            view Mirai cannot use (:class:`MetadataError`), or a blank image (:class:`UnsupportedImageError`).
    """
    _preset(preset)
    if len(size) != 2 or min(int(v) for v in size) < 1:
        raise ValueError(f"size must be (rows, columns) with both ≥ 1, got {size!r}")
    image, decoded, notes = mirai_image16(path_or_bytes, preset, pixel_budget)
    view, view_notes = _mirai_view_name(decoded)
    tensor, flipped = mirai_tensor(image, size)
    return MiraiView(tensor=tensor, laterality=decoded.laterality, view=view, notes=notes + view_notes,
                     preset=preset, flipped=flipped, path=str(decoded.path))
