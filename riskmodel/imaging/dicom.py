"""Read one mammogram: DICOM file → canonical float32 image in [0, 1] plus its metadata.

:func:`read_mammogram` runs these steps, in this order, and raises a
:class:`~riskmodel.imaging.errors.DicomError` subclass naming the file and the rule at the
first one that fails:

1. **Parse** the file with pydicom (``NotDicomError``, ``TruncatedDicomError``,
   ``DicomReadError``). A file without the ``DICM`` prefix is re-read with ``force=True`` only
   if its first bytes look like a DICOM group 0002 or 0008 tag. pydicom accepts a file cut short
   without complaint, so the lengths are checked here: the meta group against its group length,
   every element value against its declared length, the end of the file against a partial
   element header, encapsulated fragments against the sequence delimiter.
2. **Check the object**: Modality must be ``MG`` (``NotMammogramError``); Pixel Data must be
   present (``NoPixelDataError``); one frame, one sample, MONOCHROME1/2
   (``UnsupportedImageError``); the pixel data must be as long as declared
   (``TruncatedDicomError``); a compressed transfer syntax needs an installed decoder
   (``DecoderMissingError``); laterality and view must be known (``MetadataError``).
3. **Decode** with pydicom's pixel plugins (bits above BitsStored are masked by pydicom).
4. **Modality LUT**: ``pydicom.pixels.apply_modality_lut`` (Rescale Slope/Intercept or a
   Modality LUT Sequence).
5. **VOI**: the first item of the VOI LUT Sequence if there is one (``apply_voi``), else the first
   Window Center/Width pair with its VOI LUT Function LINEAR / LINEAR_EXACT / SIGMOID
   (``apply_windowing``), else the min–max of the image's own values. The output is scaled to
   [0, 1] by the range of that transform (the LUT's own min…max, the window's output range).
   An unusable LUT or window (e.g. width 0) falls back to the next option; ``Mammogram.voi``
   records which one was applied. An image whose values are all equal after the modality LUT is
   an ``UnsupportedImageError``, and so is one that the VOI step leaves blank: a window or LUT
   that maps every pixel to one value, or to values spanning less than :data:`MIN_VOI_RANGE`
   (e.g. WindowWidth 1e300, a window far outside the pixel values, a LUT flat over them), or
   to NaN. That is ``voi="auto"``, the default. ``voi="linear"`` keeps the
   vendor's range of interest but drops its contrast curve: a VOI LUT Sequence becomes a
   straight line over the LUT's input range (``first`` … ``first + entries - 1``; reversed if the
   table falls), and a window is applied LINEAR whatever VOI LUT Function says. Display LUTs
   differ by vendor (GE writes sigmoid-like tables; Mirai's reference conversion, DCMTK's
   ``--min-max-window``, ignores them), and a non-linear curve changes the contrast of fine
   texture with the brightness around it; ``"linear"`` gives images whose contrast means the
   same on every vendor's files.
6. **MONOCHROME1** is inverted (``1 - x``) after the VOI step (PS3.3 C.7.6.3), so higher always
   means denser tissue and the background is near 0.
7. **Orientation** (:func:`chest_wall_side`): the image is mirrored left–right, if needed, so that
   the chest wall is at column 0 and the breast points to increasing column index. The decision
   comes from the pixels, not the tags; only when the pixels are ambiguous does it fall back to
   PatientOrientation and then to the display convention (right breasts stored mirrored).

FOR PROCESSING images are read like any other; ``presentation_intent`` says which they are, and
:func:`riskmodel.imaging.assemble_exams` prefers FOR PRESENTATION images.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskmodel.imaging.errors import (
    DecoderMissingError,
    DicomError,
    DicomReadError,
    MetadataError,
    NoPixelDataError,
    NotDicomError,
    NotMammogramError,
    PixelBudgetError,
    TruncatedDicomError,
    UnsupportedImageError,
    is_resource_error,
)

__all__ = [
    "LATERALITIES",
    "METADATA_ALLOWANCE_BYTES",
    "PIXEL_BUDGET_BYTES",
    "PIXEL_BUDGET_ENV",
    "VIEW_FAMILY",
    "VOI_MODES",
    "Mammogram",
    "chest_wall_side",
    "inspect_header",
    "normalise_view",
    "read_mammogram",
    "resolve_pixel_budget",
]

#: The two sides. ``B`` (both) and ``U`` (unpaired) in ImageLaterality are not usable for a view.
LATERALITIES = ("L", "R")

#: Normalised view code → family. ``CC`` and ``MLO`` families fill the four standard slots (the
#: exact view first, the others as flagged substitutes); ``other`` views never do. ML/LM/LMO are
#: true-lateral or reverse-oblique projections of the same sagittal plane as MLO; XCC/XCCL/XCCM
#: are exaggerated CCs. FB (caudo-cranial), SIO/ISO (other obliques), CV (cleavage), AT (axillary
#: tail) and SPECIMEN image something else.
VIEW_FAMILY: dict[str, str] = {
    "CC": "CC", "XCC": "CC", "XCCL": "CC", "XCCM": "CC",
    "MLO": "MLO", "ML": "MLO", "LM": "MLO", "LMO": "MLO",
    "FB": "other", "SIO": "other", "ISO": "other", "CV": "other", "AT": "other", "SPECIMEN": "other",
}

#: CID 4014 "View for Mammography": SNOMED CT ids (scheme SCT) and their legacy SNOMED-RT ids
#: (schemes SRT / SNM3), as written in (0054,0220) View Code Sequence.
VIEW_CODES: dict[str, str] = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399192008": "XCCL", "R-1024A": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM",
    "R-102CF": "XCC",
    "399196006": "FB", "R-10244": "FB",
    "399188001": "SIO", "R-102D0": "SIO",
    "441555000": "ISO", "R-40AAA": "ISO",
    "127457009": "SPECIMEN", "G-8310": "SPECIMEN",
}

#: CID 4015 "View Modifier for Mammography" (View Modifier Code Sequence), SCT and SRT ids.
VIEW_MODIFIER_CODES: dict[str, str] = {
    "399161006": "cleavage", "R-102D2": "cleavage",
    "399011000": "axillary tail", "R-102D1": "axillary tail",
    "399197002": "rolled lateral", "R-102D3": "rolled lateral",
    "399226006": "rolled medial", "R-102D4": "rolled medial",
    "414493004": "rolled inferior", "R-102CA": "rolled inferior",
    "415670009": "rolled superior", "R-102C9": "rolled superior",
    "399209000": "implant displaced", "R-102D5": "implant displaced",
    "399163009": "magnification", "R-102D6": "magnification",
    "399055006": "spot compression", "R-102D7": "spot compression",
    "399110001": "tangential", "R-102C2": "tangential",
    "442581004": "nipple in profile", "R-40AB3": "nipple in profile",
    "441752004": "anterior compression", "P2-00161": "anterior compression",
    "442593008": "infra-mammary fold", "R-40ABE": "infra-mammary fold",
    "442580003": "axillary tissue", "R-40AB2": "axillary tissue",
}

#: Anatomic region codes that carry a side: SCT left/right breast and their SRT ids.
_BREAST_SIDE_CODES = {"80248007": "L", "T-04030": "L", "73056007": "R", "T-04020": "R"}

#: Spellings of a view in ViewPosition and free text, after upper-casing and dropping
#: everything that is not a letter or digit.
_VIEW_ALIASES: dict[str, str] = {
    **{v: v for v in VIEW_FAMILY},
    "CRANIOCAUDAL": "CC", "MEDIOLATERALOBLIQUE": "MLO", "OBLIQUE": "MLO", "MEDIOLATERAL": "ML",
    "LATEROMEDIAL": "LM", "LATEROMEDIALOBLIQUE": "LMO", "CAUDOCRANIAL": "FB", "XCCLATERAL": "XCCL",
}
#: Views recognised inside free text (descriptions): not CV / AT, which also mean other things
#: there (Hologic "C-View" is a synthesised 2D image).
_TEXT_VIEWS = ("CC", "MLO", "ML", "LM", "LMO", "XCC", "XCCL", "XCCM", "FB", "SIO", "ISO")
_SIDE_WORDS = {"L": "L", "R": "R", "LEFT": "L", "RIGHT": "R", "LT": "L", "RT": "R"}
#: Free-text tags read, in this order, when no coded tag gives the laterality or the view.
_TEXT_TAGS = ("ViewPosition", "AcquisitionDeviceProcessingDescription", "SeriesDescription", "ProtocolName",
              "ImageComments")

_MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
_MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
_DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
_DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"

_PIXEL_TAG = 0x7FE00010
_FLOAT_PIXEL_TAGS = (0x7FE00008, 0x7FE00009)
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}

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

#: The pixel budget: the most bytes of decoded pixel data (Rows × Columns × frames × samples ×
#: BitsAllocated / 8) a file may declare before anything is decoded. 8192 × 6144 pixels at 16
#: bits (96 MiB, 50.3 Mpixel): above the largest mammography detectors in use (24 × 30 cm at
#: 50 µm, Fujifilm: 4728 × 5928; CR plates at 43.75 µm: 5486 × 6857; Hologic 3328 × 4096), with
#: room for a 24 × 30 cm plate at 40 µm (6000 × 7500). Raise it with the ``pixel_budget``
#: argument of :func:`read_mammogram` / :func:`inspect_header`, or the environment variable
#: :data:`PIXEL_BUDGET_ENV` (read at each call, so DataLoader workers and the CLI see it).
PIXEL_BUDGET_BYTES = 8192 * 6144 * 2

#: Environment variable that overrides :data:`PIXEL_BUDGET_BYTES` (an integer number of bytes).
PIXEL_BUDGET_ENV = "RISKMODEL_PIXEL_BUDGET"

#: How much a Deflated Explicit VR Little Endian data set may inflate to beyond the pixel budget
#: (its other elements: 64 MiB, far above any real header).
METADATA_ALLOWANCE_BYTES = 64 * 2**20

#: Bytes of the compressed frame read to find its own dimensions (JPEG 2000 SIZ, JPEG SOF):
#: JP2 header boxes and JPEG APPn segments come first.
_STREAM_HEAD_BYTES = 2**20

_DEFLATED = "1.2.840.10008.1.2.1.99"
_RLE = "1.2.840.10008.1.2.5"
_J2K_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in (90, 91, 92, 93, 201, 202, 203))
#: JPEG (ISO 10918, all processes incl. the retired ones) and JPEG-LS transfer syntaxes.
_JPEG_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in (*range(50, 71), 80, 81))
#: JPEG start-of-frame markers (C0–CF except DHT C4, JPG C8, DAC CC) and JPEG-LS SOF55 (F7).
_SOF_MARKERS = frozenset({*range(0xC0, 0xD0), 0xF7}) - {0xC4, 0xC8, 0xCC}
#: JPEG markers without a length field: TEM, RST0–7, SOI.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})


def resolve_pixel_budget(value: int | None = None) -> int:
    """The pixel budget in bytes: ``value`` if given, else the :data:`PIXEL_BUDGET_ENV`
    environment variable if set, else :data:`PIXEL_BUDGET_BYTES`.

    Raises:
        ValueError: the value (or the environment variable) is not a positive integer.
    """
    source = "pixel_budget"
    if value is None:
        env = os.environ.get(PIXEL_BUDGET_ENV, "").strip()
        if not env:
            return PIXEL_BUDGET_BYTES
        source = f"environment variable {PIXEL_BUDGET_ENV}"
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{source} must be a positive integer number of bytes, got {env!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{source} must be a positive integer number of bytes, got {value!r}")
    return value


#: Relative difference between the two edge strips below which the pixels do not decide the
#: orientation (see :func:`chest_wall_side`).
ORIENTATION_MIN_CONTRAST = 0.10

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


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass
class _PixelElement:
    """Where the Pixel Data element is and how long it is, in bytes."""

    tag: int  # (7FE0,0010) Pixel Data, or a float pixel data tag
    offset: int  # file offset of the value
    declared: int  # declared length (0xFFFFFFFF = encapsulated)
    available: int  # bytes of value actually in the file (native), or total fragment bytes
    frame_head: bytes = b""  # encapsulated: the first bytes of the frame (fragments after the offset table)
    first_fragment: int = 0  # encapsulated: length of the first fragment after the offset table


def _read_dataset(path: Path, header_only: bool,
                  budget: int) -> tuple[Any, _PixelElement | None, DicomError | None]:
    """Parse ``path``; with ``header_only`` stop before the pixel data but locate it.

    Returns ``(dataset, pixel_element, problem)``. The pixel element is located in
    ``header_only`` mode, and for encapsulated pixel data in full mode too (its ``frame_head``
    is what the stream-dimension check reads). A deflated data set is inflated by
    :func:`_inflate`, never beyond ``budget`` + :data:`METADATA_ALLOWANCE_BYTES` bytes, and
    always read in full. ``problem`` is a DicomError found
    after a successful parse (the file is cut short, the fragments are malformed): the dataset
    is still returned, without the cut element, so that a manifest can show whose file it is.
    Errors that leave nothing to read (not DICOM, unparseable) are raised.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    size = path.stat().st_size  # OSError (missing file, no permission) is not a DICOM problem: let it through
    if size == 0:
        raise NotDicomError(path, "empty file (0 bytes)")
    with open(path, "rb") as fp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        head = fp.read(132)
        fp.seek(0)
        try:
            try:
                ds = _dcmread(fp, path, header_only, budget)
            except InvalidDicomError:
                # Raw datasets without preamble/meta: only if the file starts like one.
                if head[:2] not in (b"\x02\x00", b"\x08\x00"):
                    raise
                fp.seek(0)
                ds = pydicom.dcmread(fp, stop_before_pixels=header_only, force=True)
                if len(ds) == 0 or not any(t in ds for t in ("SOPClassUID", "Modality", "StudyInstanceUID")):
                    raise NotDicomError(path, "no DICM prefix and not a readable raw DICOM dataset") from None
            pos = fp.tell()
            had_transfer_syntax = "TransferSyntaxUID" in getattr(ds, "file_meta", {})
            _ensure_transfer_syntax(ds)
        except InvalidDicomError as e:
            raise NotDicomError(path, f"not a DICOM file ({e})") from None
        except DicomError:
            raise
        except RecursionError:
            raise DicomReadError(path, "sequences are nested too deeply to parse (Python's recursion limit was "
                                       "reached; a mammogram header nests a few levels)") from None
        except (EOFError, struct.error) as e:  # struct.error: a fixed-size field ran out of bytes
            raise TruncatedDicomError(path, f"file is cut short inside a data element header ({e})") from None
        except Exception as e:  # pydicom raises many types on malformed input
            if is_resource_error(e):  # out of memory, file descriptors…: not the file's fault
                raise
            if head[128:132] == b"DICM" and size < 144:  # cut inside the meta group length element
                raise TruncatedDicomError(path, f"file is cut short inside the file meta information ({size} "
                                                "bytes)") from None
            raise DicomReadError(path, f"pydicom could not parse the file: {type(e).__name__}: {e}") from None
        eof = [str(w.message) for w in caught if "end of file" in str(w.message).lower()]
        deflated = _transfer_syntax(ds) == _DEFLATED  # offsets refer to the inflated stream
        try:
            problem = _check_meta_length(ds, head, size, had_transfer_syntax, path) or _check_declared_lengths(ds, path)
            if eof and problem is None:
                problem = TruncatedDicomError(path, f"file is cut short: {eof[0]}")
            if problem is None and not deflated and not (header_only and size - pos >= 8) and _PIXEL_TAG not in ds:
                problem = _check_tail(ds, size, _meta_end(ds, head), path)
        except Exception as e:  # an element pydicom converts only when it is first accessed, e.g. an unknown VR
            problem = DicomReadError(path, f"pydicom could not read a header element: {type(e).__name__}: {e}")
        pixel = None
        if problem is None and not header_only and not deflated and _PIXEL_TAG in ds:
            raw = ds.get_item(_PIXEL_TAG)
            if getattr(raw, "length", None) == _UNDEFINED and getattr(raw, "value_tell", None) is not None:
                try:  # the same fragment check as in header mode, so scan and read agree
                    pixel = _walk_fragments(fp, raw.value_tell, size, path)
                except DicomError as e:
                    problem = e
        if not header_only or problem is not None or deflated:
            return ds, pixel, problem
        try:
            return ds, _locate_pixel_element(fp, pos, size, ds, path), None
        except DicomError as e:
            return ds, None, e


def _dcmread(fp, path: Path, header_only: bool, budget: int) -> Any:
    """``pydicom.dcmread(fp, stop_before_pixels=header_only)``, except that a Deflated Explicit VR
    Little Endian data set is inflated here, by :func:`_inflate`, with a cap (pydicom inflates
    the whole stream at once, however large), and then read in full."""
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    try:
        preamble = read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        deflated = str(meta.get("TransferSyntaxUID", "")) == _DEFLATED
    except Exception:  # no DICM prefix, a broken meta group: dcmread reports it below
        deflated = False
    if not deflated:
        fp.seek(0)
        return pydicom.dcmread(fp, stop_before_pixels=header_only)
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO

    dataset = read_dataset(DicomBytesIO(_inflate(fp, budget + METADATA_ALLOWANCE_BYTES, path)), False, True)
    ds = FileDataset(str(path), dataset, preamble, meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _inflate(fp, cap: int, path: Path) -> bytes:
    """Inflate the raw deflate stream from ``fp``'s position to its end, 1 MiB of input and at most
    16 MiB of output at a time, never holding more than ``cap`` + 1 inflated bytes. PixelBudgetError beyond ``cap``,
    TruncatedDicomError if the stream stops before its final block, DicomReadError if it is
    corrupt."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    chunks: list[bytes] = []  # joined once at the end: a growing bytearray would copy itself
    n = 0
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail or fp.read(2**20)
            if not data:
                raise TruncatedDicomError(path, "file is cut short: its deflated data set ends before the end of "
                                                "the deflate stream")
            chunks.append(inflater.decompress(data, min(2**24, cap + 1 - n)))  # ≤ 16 MiB a step
            n += len(chunks[-1])
            if n > cap:
                raise PixelBudgetError(
                    path, f"the deflated data set inflates to more than {cap} bytes (the pixel budget plus "
                          f"{METADATA_ALLOWANCE_BYTES} bytes for the other elements); raise the pixel budget "
                          f"({PIXEL_BUDGET_ENV} or pixel_budget=) if the file is genuine")
    except zlib.error as e:
        raise DicomReadError(path, f"the deflated data set is corrupt: {e}") from None
    return b"".join(chunks)


def _meta_end(ds: Any, head: bytes) -> int:
    """File offset where the dataset starts: after the preamble, "DICM" and the meta group."""
    if head[128:132] != b"DICM":
        return 0
    try:
        group_length = int(ds.file_meta.get("FileMetaInformationGroupLength", 0) or 0)
    except (AttributeError, TypeError, ValueError):
        group_length = 0
    return 132 + 12 + group_length  # preamble, "DICM", the group length element itself, the group


def _check_meta_length(ds: Any, head: bytes, size: int, had_transfer_syntax: bool,
                       path: Path) -> DicomError | None:
    """The error if a file with the "DICM" prefix ends inside its File Meta Information group
    (or, complete, has no TransferSyntaxUID there)."""
    if head[128:132] != b"DICM":
        return None
    end = _meta_end(ds, head)
    if size < end or (end == 144 and not had_transfer_syntax):
        return TruncatedDicomError(path, f"file is cut short inside the file meta information ({size} bytes)")
    if not had_transfer_syntax:
        return DicomReadError(path, "the file meta information has no (0002,0010) TransferSyntaxUID")
    return None


def _check_tail(ds: Any, size: int, start: int, path: Path) -> TruncatedDicomError | None:
    """The error if the file ends a few bytes into an element header after the last complete
    element (or after the meta group, at ``start``): pydicom then stops silently, as if the
    dataset had ended there."""
    last_tell, last_end = -1, start
    for tag in ds.keys():
        raw = ds.get_item(tag)
        tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
        if tell is not None and length is not None and tell > last_tell:
            last_tell, last_end = tell, (None if length == _UNDEFINED else tell + length)
    if last_end is not None and 0 < size - last_end < 12:
        return TruncatedDicomError(path, f"file is cut short: it ends {size - last_end} byte(s) into the header of "
                                         "a data element")
    return None


def _check_declared_lengths(ds: Any, path: Path) -> TruncatedDicomError | None:
    """The error if a top-level element (pixel data excepted) holds fewer bytes than its declared
    length (pydicom reads a value cut by the end of the file without complaint); the cut element
    is removed from ``ds``."""
    for container in (getattr(ds, "file_meta", None), ds):
        if container is None:
            continue
        for tag in list(container.keys()):
            if tag == _PIXEL_TAG:
                continue
            raw = container.get_item(tag)
            length = getattr(raw, "length", None)
            value = getattr(raw, "value", None)
            if isinstance(value, bytes) and length is not None and length != _UNDEFINED and len(value) < length:
                del container[tag]
                return TruncatedDicomError(
                    path, f"file is cut short: element {tag} declares {length} bytes but the file holds {len(value)}")
    return None


def _ensure_transfer_syntax(ds: Any) -> None:
    """Raw datasets read with ``force=True`` have no TransferSyntaxUID: infer it from the encoding."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _transfer_syntax(ds: Any) -> str:
    return str(ds.file_meta.get("TransferSyntaxUID", ""))


def _locate_pixel_element(fp, pos: int, size: int, ds: Any, path: Path) -> _PixelElement | None:
    """Parse the element header at ``pos`` (where ``stop_before_pixels`` left the file).

    For native data returns the declared length and the bytes left in the file; for
    encapsulated data walks the fragment items to the sequence delimiter (seeks only) and raises
    TruncatedDicomError if the file ends first.
    """
    if size - pos < 8:
        return None
    implicit, little = ds.original_encoding
    end = "<" if little else ">"
    fp.seek(pos)
    head = fp.read(12)
    group, elem = struct.unpack(end + "HH", head[:4])
    tag = group << 16 | elem
    if tag != _PIXEL_TAG and tag not in _FLOAT_PIXEL_TAGS:
        return None
    if implicit:
        (length,), header = struct.unpack(end + "I", head[4:8]), 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise TruncatedDicomError(path, "file is cut short inside the Pixel Data element header")
        (length,), header = struct.unpack(end + "I", head[8:12]), 12
    else:
        (length,), header = struct.unpack(end + "H", head[6:8]), 8
    start = pos + header
    if tag != _PIXEL_TAG:
        return _PixelElement(tag, start, length, max(0, size - start))
    if length != _UNDEFINED:
        return _PixelElement(tag, start, length, max(0, min(length, size - start)))
    return _walk_fragments(fp, start, size, path)


def _walk_fragments(fp, start: int, size: int, path: Path) -> _PixelElement:
    """Follow the items (FFFE,E000) of encapsulated pixel data from ``start`` to the sequence
    delimiter (FFFE,E0DD), seeking over their values. Returns the pixel element with the total
    fragment bytes, the first :data:`_STREAM_HEAD_BYTES` of the frame (the fragments after the
    basic offset table, joined) and the first fragment's length. TruncatedDicomError if the
    file ends first, DicomReadError on any other tag."""
    p, total, n = start, 0, 0
    head, first_fragment = bytearray(), 0
    while True:
        fp.seek(p)
        item = fp.read(8)
        if len(item) < 8:
            raise TruncatedDicomError(
                path, f"file is cut short: encapsulated pixel data ends after {n} fragment(s) without its "
                      "sequence delimiter")
        g, e, item_length = struct.unpack("<HHI", item)  # always little endian
        if (g, e) == (0xFFFE, 0xE0DD):
            return _PixelElement(_PIXEL_TAG, start, _UNDEFINED, total, bytes(head), first_fragment)
        if (g, e) != (0xFFFE, 0xE000) or item_length == _UNDEFINED:
            raise DicomReadError(path, f"malformed encapsulated pixel data: unexpected tag ({g:04X},{e:04X}) at "
                                       f"byte {p}")
        if p + 8 + item_length > size:
            raise TruncatedDicomError(
                path, f"file is cut short: pixel data fragment {n} declares {item_length} bytes, the file holds "
                      f"{size - p - 8}")
        if n >= 1 and len(head) < _STREAM_HEAD_BYTES:  # item 0 is the basic offset table
            first_fragment = item_length if n == 1 else first_fragment
            head += fp.read(min(item_length, _STREAM_HEAD_BYTES - len(head)))
        p += 8 + item_length
        total += item_length
        n += 1


# ---------------------------------------------------------------------------------------------
# Metadata


def _text(ds: Any, keyword: str) -> str:
    """A tag's value as stripped text ('' when absent or unreadable); multi-valued → first value."""
    try:
        value = ds.get(keyword, None)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    return str(value).strip()


def _int(ds: Any, keyword: str) -> int | None:
    try:
        value = ds.get(keyword, None)
        return None if value in (None, "") else int(value)
    except Exception:
        return None


def _datetime(date: str, time: str) -> str:
    """DICOM DA + TM → ``YYYYMMDDHHMMSS.ffffff`` (sorts as text); '' without a date."""
    date = re.sub(r"[^0-9]", "", date)
    if len(date) != 8:
        return ""
    time = time.replace(":", "").strip()
    main, _, frac = time.partition(".")
    main = re.sub(r"[^0-9]", "", main)[:6].ljust(6, "0")
    frac = re.sub(r"[^0-9]", "", frac)[:6].ljust(6, "0")
    return f"{date}{main}.{frac}"


def _acquisition_datetime(ds: Any) -> str:
    dt = _text(ds, "AcquisitionDateTime")
    if dt:
        dt = re.split(r"[+&-]", dt, maxsplit=1)[0]
        out = _datetime(dt[:8], dt[8:])
        if out:
            return out
    return _datetime(_text(ds, "AcquisitionDate"), _text(ds, "AcquisitionTime")) or _datetime(
        _text(ds, "ContentDate"), _text(ds, "ContentTime"))


def _presentation_intent(ds: Any) -> str:
    """PresentationIntentType, else inferred from the SOP class (MG/DX For Presentation/Processing)."""
    intent = _text(ds, "PresentationIntentType").upper()
    if intent:
        return intent
    sop_class = _text(ds, "SOPClassUID") or _text(getattr(ds, "file_meta", {}), "MediaStorageSOPClassUID")
    if sop_class in (_MG_FOR_PRESENTATION, _DX_FOR_PRESENTATION):
        return "FOR PRESENTATION"
    if sop_class in (_MG_FOR_PROCESSING, _DX_FOR_PROCESSING):
        return "FOR PROCESSING"
    return ""


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = ds.get(keyword, None)
            if value is not None and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
                return float(value[0]), float(value[1])
        except Exception:
            continue
    return None


def _code(item: Any) -> str:
    """CodeValue (or LongCodeValue) of a code sequence item."""
    return _text(item, "CodeValue") or _text(item, "LongCodeValue")


def _items(ds: Any, keyword: str) -> list:
    try:
        seq = ds.get(keyword, None)
        return list(seq) if seq else []
    except Exception:
        return []


def _view_modifiers(ds: Any) -> tuple[str, ...]:
    """CID 4015 modifiers, from inside the View Code Sequence item and at top level."""
    out: list[str] = []
    for view_item in _items(ds, "ViewCodeSequence"):
        for item in _items(view_item, "ViewModifierCodeSequence"):
            out.append(VIEW_MODIFIER_CODES.get(_code(item), _text(item, "CodeMeaning").lower() or "unknown"))
    for item in _items(ds, "ViewModifierCodeSequence"):
        out.append(VIEW_MODIFIER_CODES.get(_code(item), _text(item, "CodeMeaning").lower() or "unknown"))
    return tuple(dict.fromkeys(out))


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^A-Z0-9]+", text.upper()) if t]


def _parse_text(text: str) -> tuple[set[str], set[str]]:
    """Sides and views named in free text: ``"L CC"``, ``"RMLO"``, ``"LEFT MLO"``, ``"R-XCCL"``."""
    sides: set[str] = set()
    views: set[str] = set()
    tokens = _tokens(text)
    squashed = "".join(tokens)
    for phrase in ("MEDIOLATERALOBLIQUE", "LATEROMEDIALOBLIQUE", "CRANIOCAUDAL"):
        if phrase in squashed:
            views.add(_VIEW_ALIASES[phrase])
    for tok in tokens:
        if tok in _SIDE_WORDS:
            sides.add(_SIDE_WORDS[tok])
        elif tok in _TEXT_VIEWS:
            views.add(tok)
        elif tok[0] in "LR" and tok[1:] in _TEXT_VIEWS:
            sides.add(tok[0])
            views.add(tok[1:])
        elif tok.startswith(("LEFT", "RIGHT")) and tok.removeprefix("LEFT").removeprefix("RIGHT") in _TEXT_VIEWS:
            sides.add(tok[0])
            views.add(tok.removeprefix("LEFT").removeprefix("RIGHT"))
    return sides, views


def normalise_view(value: str) -> str:
    """A ViewPosition spelling → normalised view code ('' if not recognised).

    Case, spaces, hyphens and a leading side letter are ignored.

    >>> normalise_view("mlo"), normalise_view("R-CC"), normalise_view("XCCL"), normalise_view("AP")
    ('MLO', 'CC', 'XCCL', '')
    """
    key = "".join(_tokens(value))
    if key in _VIEW_ALIASES:
        return _VIEW_ALIASES[key]
    if key[:1] in ("L", "R") and key[1:] in _VIEW_ALIASES:
        return _VIEW_ALIASES[key[1:]]
    for side in ("LEFT", "RIGHT"):
        if key.startswith(side) and key[len(side):] in _VIEW_ALIASES:
            return _VIEW_ALIASES[key[len(side):]]
    return ""


def _laterality(ds: Any, path: Path | str) -> tuple[str, str]:
    """(side, source). ImageLaterality, Laterality, FrameLaterality, a left/right-breast anatomic
    code, then side tokens in free text (:data:`_TEXT_TAGS`). ImageLaterality and Laterality
    naming different sides is a MetadataError."""
    image = _text(ds, "ImageLaterality").upper()[:1]
    series = _text(ds, "Laterality").upper()[:1]
    if image in LATERALITIES and series in LATERALITIES and image != series:
        raise MetadataError(path, f"ImageLaterality is {image} but Laterality is {series}")
    if image in LATERALITIES:
        return image, "ImageLaterality"
    if series in LATERALITIES:
        return series, "Laterality"
    for group in _items(ds, "SharedFunctionalGroupsSequence"):
        for anatomy in _items(group, "FrameAnatomySequence"):
            side = _text(anatomy, "FrameLaterality").upper()[:1]
            if side in LATERALITIES:
                return side, "FrameLaterality"
    for keyword in ("AnatomicRegionSequence", "PrimaryAnatomicStructureSequence"):
        for item in _items(ds, keyword):
            side = _BREAST_SIDE_CODES.get(_code(item), "")
            if side:
                return side, keyword
    for keyword in _TEXT_TAGS:
        sides, _ = _parse_text(_text(ds, keyword))
        if len(sides) == 1:
            return sides.pop(), keyword
    raise MetadataError(path, "laterality unknown: no L/R in ImageLaterality, Laterality, FrameLaterality, "
                              "AnatomicRegionSequence or the description tags")


def _view(ds: Any, path: Path | str) -> tuple[str, str]:
    """(view, source). ViewPosition, then View Code Sequence, then free text. If ViewPosition
    and the code name different views of one family (e.g. ``ML`` and MLO), the code wins; of
    different families, MetadataError."""
    position = normalise_view(_text(ds, "ViewPosition"))
    coded = ""
    for item in _items(ds, "ViewCodeSequence")[:1]:
        coded = VIEW_CODES.get(_code(item), "")
        if not coded:
            meaning = "".join(_tokens(_text(item, "CodeMeaning")))
            coded = {"CRANIOCAUDAL": "CC", "MEDIOLATERALOBLIQUE": "MLO", "MEDIALLATERAL": "ML",
                     "MEDIOLATERAL": "ML", "LATEROMEDIAL": "LM"}.get(meaning, "")
    if position and coded and position != coded:
        if VIEW_FAMILY[position] != VIEW_FAMILY[coded]:
            raise MetadataError(path, f"ViewPosition says {position} but ViewCodeSequence says {coded}")
        return coded, "ViewCodeSequence"
    if position:
        return position, "ViewPosition"
    if coded:
        return coded, "ViewCodeSequence"
    for keyword in _TEXT_TAGS[1:]:
        _, views = _parse_text(_text(ds, keyword))
        if len(views) == 1:
            return views.pop(), keyword
    raise MetadataError(path, "view unknown: no recognised ViewPosition, ViewCodeSequence code or view in the "
                              "description tags")


def _header_fields(ds: Any, path: Path) -> dict[str, Any]:
    """Identification and acquisition fields, best effort (never raises)."""
    return {
        "patient_id": _text(ds, "PatientID"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "sop_uid": _text(ds, "SOPInstanceUID"),
        "accession_number": _text(ds, "AccessionNumber"),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "manufacturer": _text(ds, "Manufacturer"),
        "model": _text(ds, "ManufacturerModelName"),
        "photometric_interpretation": _text(ds, "PhotometricInterpretation").upper(),
        "presentation_intent": _presentation_intent(ds),
        "transfer_syntax": _transfer_syntax(ds),
        "study_date": _text(ds, "StudyDate"),
        "acquisition_datetime": _acquisition_datetime(ds),
        "instance_number": _int(ds, "InstanceNumber"),
        "bits_stored": _int(ds, "BitsStored"),
        "pixel_spacing": _pixel_spacing(ds),
        "view_modifiers": _view_modifiers(ds),
    }


# ---------------------------------------------------------------------------------------------
# Checks


def _expected_pixel_bytes(ds: Any) -> int | None:
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    n = rows * cols * (_int(ds, "SamplesPerPixel") or 1) * (_int(ds, "NumberOfFrames") or 1)
    return (n * bits + 7) // 8


def _decoder_message(ts: str) -> str:
    from pydicom.uid import UID

    name = UID(ts).name if ts else "(missing)"
    return f"transfer syntax {name} ({ts})"


def _check_pixel_description(ds: Any, path: Path) -> None:
    """DicomReadError unless SamplesPerPixel, BitsAllocated, BitsStored and PixelRepresentation
    are present with values a decoder accepts (pydicom checks them only when decoding, so the
    scan would pass them)."""
    allocated, stored = _int(ds, "BitsAllocated") or 0, _int(ds, "BitsStored")
    representation = _int(ds, "PixelRepresentation")
    if _int(ds, "SamplesPerPixel") is None:
        raise DicomReadError(path, "(0028,0002) SamplesPerPixel is missing or not a number")
    if allocated > 64 or (allocated != 1 and allocated % 8):
        raise DicomReadError(path, f"BitsAllocated is {allocated}; it must be 1 or a multiple of 8 up to 64")
    if stored is None or not 1 <= stored <= allocated:
        raise DicomReadError(path, f"BitsStored is {_text(ds, 'BitsStored') or '(missing)'}; it must be between 1 "
                                   f"and BitsAllocated ({allocated})")
    if representation not in (0, 1):
        raise DicomReadError(path, f"PixelRepresentation is {_text(ds, 'PixelRepresentation') or '(missing)'}; it "
                                   "must be 0 (unsigned) or 1 (signed)")


def _check_modality_lut(ds: Any, path: Path) -> None:
    """DicomReadError unless the first Modality LUT Sequence item (if any) has a three-value
    LUTDescriptor with 8 or 16 bits per entry and as many LUTData values as it declares (pydicom
    would index past a short table, an IndexError deep inside the modality step)."""
    items = _items(ds, "ModalityLUTSequence")
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
        dims = " × ".join(str(_int(ds, k) or 1) for k in ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel"))
        raise PixelBudgetError(
            path, f"Rows × Columns × frames × samples = {dims} at {_int(ds, 'BitsAllocated')} bits is {expected} bytes "
                  f"of pixel data, over the pixel budget of {budget} bytes; nothing was decoded (raise the budget "
                  f"with {PIXEL_BUDGET_ENV} or pixel_budget= if the file is genuine)")


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


def _check_stream(ds: Any, pixel: _PixelElement | None, path: Path) -> None:
    """DicomReadError unless the compressed frame's own header agrees with the DICOM header:
    the JPEG 2000 SIZ / JPEG SOF dimensions and components equal Rows, Columns and
    SamplesPerPixel; an RLE header has SamplesPerPixel × BitsAllocated / 8 segments whose
    offsets lie inside the first fragment. Reads only ``pixel.frame_head``."""
    ts = _transfer_syntax(ds)
    if pixel is None or pixel.declared != _UNDEFINED or not (ts in _J2K_SYNTAXES or ts in _JPEG_SYNTAXES or ts == _RLE):
        return
    rows, columns, samples = _int(ds, "Rows"), _int(ds, "Columns"), _int(ds, "SamplesPerPixel") or 1
    head = pixel.frame_head
    if ts == _RLE:
        segments = samples * -(-(_int(ds, "BitsAllocated") or 0) // 8)
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


def _check_object(ds: Any, path: Path, pixel: _PixelElement | None, header_only: bool,
                  budget: int) -> tuple[str, str, str, str]:
    """Run the object checks of step 2; returns (laterality, laterality_source, view, view_source).
    ``pixel`` is the located pixel element (header mode), or the encapsulated one in full mode."""
    modality = _text(ds, "Modality").upper()
    if modality != "MG":
        shown = f"Modality is {modality!r}" if modality else "Modality (0008,0060) is missing"
        raise NotMammogramError(path, f"{shown}; only MG (mammography) images are read")
    if header_only:
        has_pixels = pixel is not None and pixel.tag == _PIXEL_TAG
        float_pixels = pixel is not None and pixel.tag != _PIXEL_TAG
    else:
        has_pixels = _PIXEL_TAG in ds
        float_pixels = any(t in ds for t in _FLOAT_PIXEL_TAGS)
    if float_pixels and not has_pixels:
        raise UnsupportedImageError(path, "float pixel data (7FE0,0008/0009) is not supported")
    if not has_pixels:
        raise NoPixelDataError(path, "no (7FE0,0010) Pixel Data element (a mammogram file without one may have "
                                     "been cut short at an element boundary)")
    samples = _int(ds, "SamplesPerPixel") or 1
    photometric = _text(ds, "PhotometricInterpretation").upper()
    frames = _int(ds, "NumberOfFrames") or 1
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImageError(
            path, f"PhotometricInterpretation {photometric or '(missing)'} with {samples} sample(s) per pixel; "
                  "only MONOCHROME1/MONOCHROME2 grayscale is supported")
    if frames != 1:
        raise UnsupportedImageError(path, f"{frames} frames (tomosynthesis?); only single-frame 2D images are read")
    if not _int(ds, "Rows") or not _int(ds, "Columns") or not _int(ds, "BitsAllocated"):
        raise DicomReadError(path, "Rows, Columns or BitsAllocated is missing or zero")
    _check_pixel_description(ds, path)
    _check_pixel_budget(ds, path, budget)
    _check_modality_lut(ds, path)

    from pydicom.uid import UID

    ts = UID(_transfer_syntax(ds))
    expected = _expected_pixel_bytes(ds)
    if header_only:
        assert pixel is not None  # has_pixels
        if pixel.declared != _UNDEFINED:
            if pixel.available < pixel.declared:
                raise TruncatedDicomError(path, f"file is cut short: Pixel Data declares {pixel.declared} bytes, "
                                                f"the file holds {pixel.available}")
            native_len = pixel.declared
        else:
            native_len = None
    else:
        raw = ds.get_item(_PIXEL_TAG)
        value = getattr(raw, "value", None)
        length = getattr(raw, "length", None)
        if isinstance(value, bytes) and length not in (None, _UNDEFINED) and len(value) < length:
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
            raise DecoderMissingError(path, f"pydicom has no decoder at all for {_decoder_message(ts)}; convert "
                                            "the file to an uncompressed transfer syntax first", str(ts)) from None
        if not decoder.is_available:
            hint = _DECODER_PACKAGES.get(str(ts), "see pydicom's pixel data plugins documentation")
            raise DecoderMissingError(path, f"no installed decoder for {_decoder_message(ts)}; install one: {hint}",
                                      str(ts))
        _check_stream(ds, pixel, path)
    laterality, lat_source = _laterality(ds, path)
    view, view_source = _view(ds, path)
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
        ds, pixel, problem = _read_dataset(path, header_only=True, budget=budget)
    except DicomError as e:
        return fields, e
    except OSError as e:  # vanished, unreadable: still one row in the manifest
        if is_resource_error(e):
            raise
        return fields, DicomReadError(path, f"cannot read the file: {e}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings about vendor values (e.g. "cc " as CS)
        return _inspect(ds, pixel, problem, path, fields, budget)


def _inspect(ds: Any, pixel: _PixelElement | None, problem: DicomError | None, path: Path,
             fields: dict[str, Any], budget: int) -> tuple[dict[str, Any], DicomError | None]:
    fields.update(_header_fields(ds, path))
    try:
        if problem is not None:
            raise problem
        # Deflated files are read in full by _read_dataset: then the pixel data is in ``ds``.
        lat, _, view, _ = _check_object(ds, path, pixel, header_only=_PIXEL_TAG not in ds, budget=budget)
    except DicomError as e:
        # Still report what can be known about the side and view of a bad file.
        for fn, key in ((_laterality, "laterality"), (_view, "view")):
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


# ---------------------------------------------------------------------------------------------
# Pixels


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
        if _transfer_syntax(ds) == _RLE and "out of bounds" in msg:
            raise DicomReadError(path, f"corrupt RLE pixel data: a segment decodes to more than the "
                                       f"{_int(ds, 'Rows')} × {_int(ds, 'Columns')} values Rows × Columns allow "
                                       f"({type(e).__name__}: {msg})") from None
        if "less than expected" in msg or "shorter than" in msg:
            raise TruncatedDicomError(path, f"pixel data is shorter than declared: {msg}") from None
        if "missing dependencies" in msg or "no pixel data plugins" in msg:  # lost a race with the pre-check
            ts = _transfer_syntax(ds)
            raise DecoderMissingError(path, f"no working decoder for {_decoder_message(ts)}: {msg}", ts) from None
        raise DicomReadError(path, f"pixel data could not be decoded: {type(e).__name__}: {msg}") from None
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise UnsupportedImageError(path, f"decoded pixel array has shape {arr.shape}, expected (rows, columns)")
    return arr


def _to_unit_range(arr: np.ndarray, ds: Any, path: Path, voi_mode: str = "auto") -> tuple[np.ndarray, str]:
    """Steps 4–6: modality LUT, VOI (``voi_mode``: see the module docstring), scaling to [0, 1],
    MONOCHROME1 inversion. float64 out."""
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    x = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise UnsupportedImageError(path, "pixel values are not finite after the modality LUT")
    if lo == hi:
        raise UnsupportedImageError(path, f"blank image: every pixel has the value {lo:g} after the modality LUT")
    y: np.ndarray | None = None
    voi = "minmax"
    if _items(ds, "VOILUTSequence"):
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
        function = (_text(ds, "VOILUTFunction").upper() or "LINEAR")
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
    if _text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1":
        y = 1.0 - y
    return y, voi


def _voi_description(ds: Any, voi: str) -> str:
    """The VOI transform ``voi`` (a ``Mammogram.voi`` value) with the file's values, for messages."""
    if voi.startswith("window:"):
        return (f"window center {_text(ds, 'WindowCenter')} / width {_text(ds, 'WindowWidth')} "
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


def chest_wall_side(pixels: np.ndarray) -> str:
    """Which edge the chest wall is on, from the pixels: ``"left"``, ``"right"`` or ``""``.

    Rule: compare the mean of the left-most and right-most quarter of the columns (float64
    sums). The chest wall side holds tissue over the full height; the nipple side holds the
    rounded tip of the breast and background. The brighter strip is the chest wall. If the two
    means differ by less than :data:`ORIENTATION_MIN_CONTRAST` (10 %) of the larger one, or the
    image is under 2 columns wide, the pixels do not decide and ``""`` is returned.

    Args:
        pixels: array of shape ``(rows, columns)``, higher = denser, background near 0.

    >>> img = np.zeros((4, 8)); img[:, :3] = 1.0
    >>> chest_wall_side(img), chest_wall_side(img[:, ::-1]), chest_wall_side(np.ones((4, 8)))
    ('left', 'right', '')
    """
    cols = pixels.shape[1]
    if cols < 2:
        return ""
    strip = max(1, cols // 4)
    left = float(pixels[:, :strip].mean(dtype=np.float64))
    right = float(pixels[:, -strip:].mean(dtype=np.float64))
    top = max(left, right)
    if top <= 0 or abs(left - right) < ORIENTATION_MIN_CONTRAST * top:
        return ""
    return "left" if left > right else "right"


def _orient(y: np.ndarray, ds: Any, laterality: str) -> tuple[np.ndarray, bool, str]:
    """Mirror so the chest wall is at column 0: pixels first, then PatientOrientation's row
    direction (A = toward the nipple, chest wall at column 0; P = the reverse), then the display
    convention (right breasts stored with the chest wall on the right)."""
    side = chest_wall_side(y)
    source = "pixels"
    if not side:
        row_dir = ""
        try:
            po = ds.get("PatientOrientation", None)
            row_dir = str(po[0]).strip().upper() if po is not None and len(po) >= 1 else ""
        except Exception:
            row_dir = ""
        if row_dir.startswith("A"):
            side, source = "left", "PatientOrientation"
        elif row_dir.startswith("P"):
            side, source = "right", "PatientOrientation"
        else:
            side, source = ("right" if laterality == "R" else "left"), "laterality"
    flipped = side == "right"
    if flipped:
        y = y[:, ::-1]
    return np.ascontiguousarray(y, dtype=np.float32), flipped, source


def read_mammogram(path: str | os.PathLike[str], voi: str = "auto", pixel_budget: int | None = None) -> Mammogram:
    """Read one MG DICOM file into a :class:`Mammogram` (steps in the module docstring).

    Args:
        path: the DICOM file.
        voi: one of :data:`VOI_MODES`: ``"auto"`` applies the file's VOI LUT or window as
            written; ``"linear"`` maps the same range of interest linearly (module docstring,
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
    budget = resolve_pixel_budget(pixel_budget)
    path = Path(path)
    ds, pixel, problem = _read_dataset(path, header_only=False, budget=budget)
    if problem is not None:
        raise problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings about vendor values (e.g. "cc " as CS)
            fields = _header_fields(ds, path)
            laterality, lat_source, view, view_source = _check_object(ds, path, pixel, header_only=False,
                                                                      budget=budget)
        arr = _decode(ds, path)
        y, applied = _to_unit_range(arr, ds, path, voi)
        pixels, flipped, orientation_source = _orient(y, ds, laterality)
    except DicomError:
        raise
    except Exception as e:  # a header value pydicom only chokes on when converted
        if is_resource_error(e):
            raise
        raise DicomReadError(path, f"pydicom could not read the file: {type(e).__name__}: {e}") from None
    fields.pop("rows")
    fields.pop("columns")
    return Mammogram(
        pixels=pixels, laterality=laterality, view=view, view_family=VIEW_FAMILY[view], flipped=flipped,
        path=str(path), voi=applied, orientation_source=orientation_source, laterality_source=lat_source,
        view_source=view_source, **fields)
