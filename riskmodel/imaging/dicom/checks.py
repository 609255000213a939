"""Check a parsed object before any pixel is decoded: modality, frame, pixel budget, lengths, decoder, stream header.

:func:`check_object` is step 2 of :func:`~riskmodel.imaging.dicom.read_mammogram`;
:func:`inspect_header` runs the same checks on a header alone (what
:func:`~riskmodel.imaging.scan_dicoms` calls for every file).
"""

from __future__ import annotations

import itertools
import os
import struct
import warnings
from pathlib import Path
from typing import Any

from riskmodel.imaging.dicom.budget import PIXEL_BUDGET_ENV, resolve_pixel_budget
from riskmodel.imaging.dicom.metadata import VIEW_FAMILY, find_laterality, find_view, header_fields
from riskmodel.imaging.dicom.parse import (
    FLOAT_PIXEL_TAGS,
    PIXEL_TAG,
    UNDEFINED_LENGTH,
    PixelElement,
    read_dataset,
)
from riskmodel.imaging.dicom.tags import tag_int, tag_items, tag_text, transfer_syntax
from riskmodel.imaging.errors import (
    DecoderMissingError,
    DicomError,
    DicomReadError,
    NoPixelDataError,
    NotMammogramError,
    PixelBudgetError,
    TruncatedDicomError,
    UnsupportedImageError,
    is_resource_error,
)

#: What to install for each compressed transfer syntax (used in DecoderMissingError messages).
_DECODER_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pip install pillow  (or: pip install pylibjpeg pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.51": "pip install pylibjpeg pylibjpeg-libjpeg  (or: pip install python-gdcm)",
    "1.2.840.10008.1.2.4.57": "pip install pylibjpeg pylibjpeg-libjpeg  (or: pip install python-gdcm)",
    "1.2.840.10008.1.2.4.70": "pip install pylibjpeg pylibjpeg-libjpeg  (or: pip install python-gdcm)",
    "1.2.840.10008.1.2.4.80": "pip install pylibjpeg pylibjpeg-libjpeg  (or: pip install pyjpegls, python-gdcm)",
    "1.2.840.10008.1.2.4.81": "pip install pylibjpeg pylibjpeg-libjpeg  (or: pip install pyjpegls, python-gdcm)",
    "1.2.840.10008.1.2.4.90": "pip install pylibjpeg pylibjpeg-openjpeg  (or: pip install pillow, python-gdcm)",
    "1.2.840.10008.1.2.4.91": "pip install pylibjpeg pylibjpeg-openjpeg  (or: pip install pillow, python-gdcm)",
    "1.2.840.10008.1.2.4.201": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pip install pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pip install pylibjpeg pylibjpeg-rle",
}


#: The RLE Lossless transfer syntax.
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
_J2K_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in (90, 91, 92, 93, 201, 202, 203))
#: JPEG (ISO 10918, all processes incl. the retired ones) and JPEG-LS transfer syntaxes.
_JPEG_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in (*range(50, 71), 80, 81))
#: JPEG start-of-frame markers (C0–CF except DHT C4, JPG C8, DAC CC) and JPEG-LS SOF55 (F7).
_SOF_MARKERS = frozenset({*range(0xC0, 0xD0), 0xF7}) - {0xC4, 0xC8, 0xCC}
#: JPEG markers without a length field: TEM, RST0–7, SOI.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})


def _expected_pixel_bytes(ds: Any) -> int | None:
    rows, cols = tag_int(ds, "Rows"), tag_int(ds, "Columns")
    bits = tag_int(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    n = rows * cols * (tag_int(ds, "SamplesPerPixel") or 1) * (tag_int(ds, "NumberOfFrames") or 1)
    return (n * bits + 7) // 8


def decoder_message(ts: str) -> str:
    """``transfer syntax <name> (<uid>)`` for messages about a missing or failing decoder."""
    from pydicom.uid import UID

    name = UID(ts).name if ts else "(missing)"
    return f"transfer syntax {name} ({ts})"


def _check_pixel_description(ds: Any, path: Path) -> None:
    """DicomReadError unless SamplesPerPixel, BitsAllocated, BitsStored and PixelRepresentation
    are present with values a decoder accepts (pydicom checks them only when decoding, so the
    scan would pass them)."""
    allocated, stored = tag_int(ds, "BitsAllocated") or 0, tag_int(ds, "BitsStored")
    representation = tag_int(ds, "PixelRepresentation")
    if tag_int(ds, "SamplesPerPixel") is None:
        raise DicomReadError(path, "(0028,0002) SamplesPerPixel is missing or not a number")
    if allocated > 64 or (allocated != 1 and allocated % 8):
        raise DicomReadError(path, f"BitsAllocated is {allocated}; it must be 1 or a multiple of 8 up to 64")
    if stored is None or not 1 <= stored <= allocated:
        raise DicomReadError(path, f"BitsStored is {tag_text(ds, 'BitsStored') or '(missing)'}; it must be between 1 "
                                   f"and BitsAllocated ({allocated})")
    if representation not in (0, 1):
        raise DicomReadError(path, f"PixelRepresentation is {tag_text(ds, 'PixelRepresentation') or '(missing)'}; it "
                                   "must be 0 (unsigned) or 1 (signed)")


def _check_modality_lut(ds: Any, path: Path) -> None:
    """DicomReadError unless the first Modality LUT Sequence item (if any) has a three-value
    LUTDescriptor with 8 or 16 bits per entry and as many LUTData values as it declares (pydicom
    would index past a short table, an IndexError deep inside the modality step)."""
    items = tag_items(ds, "ModalityLUTSequence")
    if not items:
        return
    item = items[0]
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        raw = item["LUTData"].value
    except (AttributeError, KeyError, TypeError, ValueError):
        raise DicomReadError(path, "Modality LUT Sequence item lacks a readable LUTDescriptor or LUTData") from None
    if len(descriptor) != 3 or descriptor[2] not in (8, 16):
        raise DicomReadError(path, f"Modality LUT Sequence LUTDescriptor is {descriptor}; it must be (entries, first "
                                   "mapped value, 8 or 16 bits)")
    entries = descriptor[0] or 2**16
    held = len(raw) // 2 if isinstance(raw, bytes) else len(raw) if hasattr(raw, "__len__") else 1
    if held != entries:
        raise DicomReadError(path, f"Modality LUT Sequence LUTDescriptor declares {entries} entries but LUTData holds "
                                   f"{held}")


def _check_pixel_budget(ds: Any, path: Path, budget: int) -> None:
    """PixelBudgetError if the decoded pixel data would exceed ``budget`` bytes."""
    expected = _expected_pixel_bytes(ds)
    if expected is not None and expected > budget:
        dims = " × ".join(str(tag_int(ds, k) or 1) for k in ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel"))
        raise PixelBudgetError(
            path, f"Rows × Columns × frames × samples = {dims} at {tag_int(ds, 'BitsAllocated')} bits is {expected} "
                  f"bytes of pixel data, over the pixel budget of {budget} bytes; nothing was decoded (raise the "
                  f"budget with {PIXEL_BUDGET_ENV} or pixel_budget= if the file is genuine)")


def _stream_shape(ts: str, head: bytes) -> tuple[str, int, int, int] | None:
    """(what, rows, columns, components) that a compressed frame's own header declares, from its
    first bytes ``head``: the JPEG 2000 SIZ marker segment (raw codestream or inside a JP2
    ``jp2c`` box) or the JPEG / JPEG-LS start-of-frame. None for other transfer syntaxes.
    ValueError, with what is wrong, when the header is not where it must be."""
    if ts in _J2K_SYNTAXES:
        if head[4:12] == b"jP  \r\n\x87\n":  # JP2 file format: the codestream is the jp2c box
            p = 0
            while True:
                if p + 8 > len(head):
                    raise ValueError(f"no jp2c (codestream) box in the first {len(head)} bytes of the JP2 frame")
                box_length, box_type = struct.unpack(">I4s", head[p:p + 8])
                header = 8
                if box_length == 1 and p + 16 <= len(head):
                    box_length, header = struct.unpack(">Q", head[p + 8:p + 16])[0], 16
                if box_type == b"jp2c":
                    head = head[p + header:]
                    break
                if box_length < header:
                    raise ValueError(f"JP2 box {box_type!r} at byte {p} has length {box_length}")
                p += box_length
        if head[:4] != b"\xff\x4f\xff\x51" or len(head) < 42:
            raise ValueError("the JPEG 2000 codestream does not start with SOC (FF4F) and a SIZ (FF51) marker segment")
        xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", head[8:24])
        (components,) = struct.unpack(">H", head[40:42])
        return "JPEG 2000 codestream (SIZ marker)", ysiz - yosiz, xsiz - xosiz, components
    if ts in _JPEG_SYNTAXES:
        if head[:2] != b"\xff\xd8":
            raise ValueError("the JPEG stream does not start with SOI (FFD8)")
        p = 2
        while p + 4 <= len(head) and head[p] == 0xFF:
            marker = head[p + 1]
            if marker == 0xFF or marker in _STANDALONE_MARKERS:  # fill byte, or no length field
                p += 1 if marker == 0xFF else 2
                continue
            if marker in _SOF_MARKERS and p + 10 <= len(head):
                rows, columns, components = struct.unpack(">HHB", head[p + 5:p + 10])
                return f"JPEG start of frame (marker FF{marker:02X})", rows, columns, components
            if marker in (0xDA, 0xD9):
                raise ValueError(f"the JPEG stream reaches marker FF{marker:02X} before any start-of-frame marker")
            p += 2 + struct.unpack(">H", head[p + 2:p + 4])[0]
        raise ValueError(f"no JPEG start-of-frame marker found in the first {len(head)} bytes of the frame")
    return None


def _check_stream(ds: Any, pixel: PixelElement | None, path: Path) -> None:
    """DicomReadError unless the compressed frame's own header agrees with the DICOM header:
    the JPEG 2000 SIZ / JPEG SOF dimensions and components equal Rows, Columns and
    SamplesPerPixel; an RLE header has SamplesPerPixel × BitsAllocated / 8 segments whose
    offsets lie inside the first fragment. Reads only ``pixel.frame_head``."""
    ts = transfer_syntax(ds)
    if pixel is None or pixel.declared != UNDEFINED_LENGTH or not (ts in _J2K_SYNTAXES or ts in _JPEG_SYNTAXES
                                                                   or ts == RLE_LOSSLESS):
        return
    rows, columns, samples = tag_int(ds, "Rows"), tag_int(ds, "Columns"), tag_int(ds, "SamplesPerPixel") or 1
    head = pixel.frame_head
    if ts == RLE_LOSSLESS:
        segments = samples * -(-(tag_int(ds, "BitsAllocated") or 0) // 8)
        if len(head) < 64:
            raise DicomReadError(path, f"the RLE frame is {len(head)} bytes, shorter than its 64-byte header")
        n, *offsets = struct.unpack("<16I", head[:64])
        offsets = offsets[:n] if n <= 15 else offsets
        if n != segments:
            raise DicomReadError(path, f"the RLE header declares {n} segments; SamplesPerPixel × BitsAllocated / 8 "
                                       f"needs {segments}")
        rising = all(a < b for a, b in itertools.pairwise(offsets))
        if offsets[0] != 64 or not rising or offsets[-1] >= pixel.first_fragment:
            raise DicomReadError(path, f"the RLE segment offsets {offsets} must start at 64, increase, and lie "
                                       f"inside the {pixel.first_fragment}-byte fragment")
        return
    try:
        shape = _stream_shape(ts, head)
    except (ValueError, struct.error) as e:
        raise DicomReadError(path, f"the compressed pixel data's own header cannot be read: {e}") from None
    if shape is not None and shape[1:] != (rows, columns, samples):
        what, s_rows, s_columns, s_samples = shape
        raise DicomReadError(
            path, f"the {what} declares {s_rows} × {s_columns} pixels with {s_samples} component(s), but Rows × "
                  f"Columns are {rows} × {columns} with {samples} sample(s) per pixel; nothing was decoded")


def check_object(ds: Any, path: Path, pixel: PixelElement | None, header_only: bool,
                  budget: int) -> tuple[str, str, str, str]:
    """Run the object checks of step 2; returns (laterality, laterality_source, view, view_source).
    ``pixel`` is the located pixel element (header mode), or the encapsulated one in full mode."""
    modality = tag_text(ds, "Modality").upper()
    if modality != "MG":
        shown = f"Modality is {modality!r}" if modality else "Modality (0008,0060) is missing"
        raise NotMammogramError(path, f"{shown}; only MG (mammography) images are read")
    if header_only:
        has_pixels = pixel is not None and pixel.tag == PIXEL_TAG
        float_pixels = pixel is not None and pixel.tag != PIXEL_TAG
    else:
        has_pixels = PIXEL_TAG in ds
        float_pixels = any(t in ds for t in FLOAT_PIXEL_TAGS)
    if float_pixels and not has_pixels:
        raise UnsupportedImageError(path, "float pixel data (7FE0,0008/0009) is not supported")
    if not has_pixels:
        raise NoPixelDataError(path, "no (7FE0,0010) Pixel Data element (a mammogram file without one may have "
                                     "been cut short at an element boundary)")
    samples = tag_int(ds, "SamplesPerPixel") or 1
    photometric = tag_text(ds, "PhotometricInterpretation").upper()
    frames = tag_int(ds, "NumberOfFrames") or 1
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImageError(
            path, f"PhotometricInterpretation {photometric or '(missing)'} with {samples} sample(s) per pixel; "
                  "only MONOCHROME1/MONOCHROME2 grayscale is supported")
    if frames != 1:
        raise UnsupportedImageError(path, f"{frames} frames (tomosynthesis?); only single-frame 2D images are read")
    if not tag_int(ds, "Rows") or not tag_int(ds, "Columns") or not tag_int(ds, "BitsAllocated"):
        raise DicomReadError(path, "Rows, Columns or BitsAllocated is missing or zero")
    _check_pixel_description(ds, path)
    _check_pixel_budget(ds, path, budget)
    _check_modality_lut(ds, path)

    from pydicom.uid import UID

    ts = UID(transfer_syntax(ds))
    expected = _expected_pixel_bytes(ds)
    if header_only:
        assert pixel is not None  # has_pixels
        if pixel.declared != UNDEFINED_LENGTH:
            if pixel.available < pixel.declared:
                raise TruncatedDicomError(path, f"file is cut short: Pixel Data declares {pixel.declared} bytes, "
                                                f"the file holds {pixel.available}")
            native_len = pixel.declared
        else:
            native_len = None
    else:
        raw = ds.get_item(PIXEL_TAG)
        value = getattr(raw, "value", None)
        length = getattr(raw, "length", None)
        if isinstance(value, bytes) and length not in (None, UNDEFINED_LENGTH) and len(value) < length:
            raise TruncatedDicomError(path, f"file is cut short: Pixel Data declares {length} bytes, the file "
                                            f"holds {len(value)}")
        native_len = None if ts.is_encapsulated or not isinstance(value, bytes) else len(value)
    if not ts.is_encapsulated and native_len is not None and expected is not None and native_len < expected:
        raise TruncatedDicomError(
            path, f"pixel data is {native_len} bytes, shorter than the {expected} bytes that Rows × Columns × "
                  "BitsAllocated declare")
    if ts.is_compressed:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise DecoderMissingError(path, f"pydicom has no decoder at all for {decoder_message(ts)}; convert "
                                            "the file to an uncompressed transfer syntax first", str(ts)) from None
        if not decoder.is_available:
            hint = _DECODER_PACKAGES.get(str(ts), "see pydicom's pixel data plugins documentation")
            raise DecoderMissingError(path, f"no installed decoder for {decoder_message(ts)}; install one: {hint}",
                                      str(ts))
        _check_stream(ds, pixel, path)
    laterality, lat_source = find_laterality(ds, path)
    view, view_source = find_view(ds, path)
    return laterality, lat_source, view, view_source


def inspect_header(path: str | os.PathLike[str],
                   pixel_budget: int | None = None) -> tuple[dict[str, Any], DicomError | None]:
    """Read the header of ``path`` (no pixel decoding) and run every check of
    :func:`read_mammogram` that does not need decoded pixels.

    Returns ``(fields, error)``: ``fields`` holds the identification columns of
    :func:`riskmodel.imaging.scan_dicoms` (as much as could be read, empty strings/None
    otherwise) plus ``laterality``, ``view``, ``view_family``; ``error`` is the
    :class:`DicomError` :func:`read_mammogram` would raise before decoding, or None.
    Truncation is detected from lengths alone: the Pixel Data length against the file size and
    against Rows × Columns × BitsAllocated for native data, the fragment items against the file
    size for encapsulated data. The pixel budget (``pixel_budget`` bytes, default
    :func:`resolve_pixel_budget`) and the compressed frame's own dimensions are checked as in
    :func:`read_mammogram`, from the frame's first bytes only.
    """
    budget = resolve_pixel_budget(pixel_budget)
    path = Path(path)
    fields: dict[str, Any] = {"laterality": "", "view": "", "view_family": ""}
    try:
        ds, pixel, problem = read_dataset(path, header_only=True, budget=budget)
    except DicomError as e:
        return fields, e
    except OSError as e:  # vanished, unreadable: still one row in the manifest
        if is_resource_error(e):
            raise
        return fields, DicomReadError(path, f"cannot read the file: {e}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings about vendor values (e.g. "cc " as CS)
        return _inspect(ds, pixel, problem, path, fields, budget)


def _inspect(ds: Any, pixel: PixelElement | None, problem: DicomError | None, path: Path,
             fields: dict[str, Any], budget: int) -> tuple[dict[str, Any], DicomError | None]:
    fields.update(header_fields(ds, path))
    try:
        if problem is not None:
            raise problem
        # Deflated files are read in full by read_dataset: then the pixel data is in ``ds``.
        lat, _, view, _ = check_object(ds, path, pixel, header_only=PIXEL_TAG not in ds, budget=budget)
    except DicomError as e:
        # Still report what can be known about the side and view of a bad file.
        for fn, key in ((find_laterality, "laterality"), (find_view, "view")):
            try:
                fields[key] = fn(ds, path)[0]
            except DicomError:
                pass
        fields["view_family"] = VIEW_FAMILY.get(fields["view"], "")
        return fields, e
    except RecursionError:
        return fields, DicomReadError(path, "sequences are nested too deeply to read (Python's recursion limit was "
                                            "reached; a mammogram header nests a few levels)")
    except Exception as e:  # a malformed value pydicom only chokes on when converted
        if is_resource_error(e):
            raise
        return fields, DicomReadError(path, f"pydicom could not read a header value: {type(e).__name__}: {e}")
    fields.update(laterality=lat, view=view, view_family=VIEW_FAMILY[view])
    return fields, None
