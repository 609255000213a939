"""Parse a DICOM file safely: file meta, capped inflation of deflated data sets, truncation checks, the pixel element.

pydicom accepts a file cut short without complaint, so the lengths are checked here: the meta
group against its group length, every element value against its declared length, the end of the
file against a partial element header, encapsulated fragments against the sequence delimiter.
:func:`read_dataset` is the entry point (used by :func:`~riskmodel.imaging.dicom.inspect_header`
and :func:`~riskmodel.imaging.dicom.read_mammogram`); pydicom is imported on the first call.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskmodel.imaging.dicom.budget import PIXEL_BUDGET_ENV
from riskmodel.imaging.dicom.tags import transfer_syntax
from riskmodel.imaging.errors import (
    DicomError,
    DicomReadError,
    NotDicomError,
    PixelBudgetError,
    TruncatedDicomError,
    is_resource_error,
)

#: (7FE0,0010) Pixel Data.
PIXEL_TAG = 0x7FE00010
#: (7FE0,0008) Float and (7FE0,0009) Double Float Pixel Data.
FLOAT_PIXEL_TAGS = (0x7FE00008, 0x7FE00009)
#: The undefined length of an element or item (encapsulated pixel data, sequences).
UNDEFINED_LENGTH = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


#: How much a Deflated Explicit VR Little Endian data set may inflate to beyond the pixel budget
#: (its other elements: 64 MiB, far above any real header).
METADATA_ALLOWANCE_BYTES = 64 * 2**20

#: Bytes of the compressed frame read to find its own dimensions (JPEG 2000 SIZ, JPEG SOF):
#: JP2 header boxes and JPEG APPn segments come first.
_STREAM_HEAD_BYTES = 2**20

_DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass
class PixelElement:
    """Where the Pixel Data element is and how long it is, in bytes."""

    tag: int  # (7FE0,0010) Pixel Data, or a float pixel data tag
    offset: int  # file offset of the value
    declared: int  # declared length (0xFFFFFFFF = encapsulated)
    available: int  # bytes of value actually in the file (native), or total fragment bytes
    frame_head: bytes = b""  # encapsulated: the first bytes of the frame (fragments after the offset table)
    first_fragment: int = 0  # encapsulated: length of the first fragment after the offset table


def read_dataset(path: Path, header_only: bool,
                  budget: int) -> tuple[Any, PixelElement | None, DicomError | None]:
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
            deflated_pixel = None
            try:
                ds, deflated_pixel = _dcmread(fp, path, header_only, budget)
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
        deflated = transfer_syntax(ds) == _DEFLATED  # offsets refer to the inflated stream
        try:
            problem = _check_meta_length(ds, head, size, had_transfer_syntax, path) or _check_declared_lengths(ds, path)
            if eof and problem is None:
                problem = TruncatedDicomError(path, f"file is cut short: {eof[0]}")
            if problem is None and not deflated and not (header_only and size - pos >= 8) and PIXEL_TAG not in ds:
                problem = _check_tail(ds, size, _meta_end(ds, head), path)
        except Exception as e:  # an element pydicom converts only when it is first accessed, e.g. an unknown VR
            problem = DicomReadError(path, f"pydicom could not read a header element: {type(e).__name__}: {e}")
        pixel = None
        if problem is None and not header_only and not deflated and PIXEL_TAG in ds:
            raw = ds.get_item(PIXEL_TAG)
            if getattr(raw, "length", None) == UNDEFINED_LENGTH and getattr(raw, "value_tell", None) is not None:
                try:  # the same fragment check as in header mode, so scan and read agree
                    pixel = _walk_fragments(fp, raw.value_tell, size, path)
                except DicomError as e:
                    problem = e
        if deflated and header_only:
            return ds, deflated_pixel, problem
        if not header_only or problem is not None or deflated:
            return ds, pixel, problem
        try:
            return ds, _locate_pixel_element(fp, pos, size, ds, path), None
        except DicomError as e:
            return ds, None, e


def _dcmread(fp, path: Path, header_only: bool, budget: int) -> tuple[Any, PixelElement | None]:
    """``pydicom.dcmread(fp, stop_before_pixels=header_only)``, except that a Deflated Explicit VR
    Little Endian data set is inflated here with a cap (pydicom inflates the whole stream at once,
    however large): in full by :func:`_inflate`, or with ``header_only`` through
    :class:`_InflatingReader`, which holds only the elements before the pixel data and checks the
    rest of the stream as it passes (cap, truncation). Returns the dataset and, for a deflated
    header-only read, the pixel element found in the inflated stream (else None)."""
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
        return pydicom.dcmread(fp, stop_before_pixels=header_only), None
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO

    cap = budget + METADATA_ALLOWANCE_BYTES
    pixel = None
    if header_only:  # hold only the elements before the pixel data; check the rest of the stream as it passes
        reader = _InflatingReader(fp, cap, path)
        seen: list[tuple[int, int]] = []

        def at_pixel_data(tag: Any, vr: Any, length: int) -> bool:
            if int(tag) in (PIXEL_TAG, *FLOAT_PIXEL_TAGS):
                seen.append((int(tag), int(length)))
                return True
            return False

        dataset = read_dataset(reader, False, True, stop_when=at_pixel_data)
        value_offset = reader.tell() + 12  # explicit VR little endian OB/OW/OF/OD: tag, VR, 2 reserved, length
        total = reader.drain()
        if seen:  # offsets in the inflated stream; what the header mode's checks read
            pixel = PixelElement(seen[0][0], value_offset, seen[0][1], max(total - value_offset, 0))
    else:
        dataset = read_dataset(DicomBytesIO(_inflate(fp, cap, path)), False, True)
    ds = FileDataset(str(path), dataset, preamble, meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds, pixel


def _budget_error(path: Path, cap: int) -> PixelBudgetError:
    return PixelBudgetError(
        path, f"the deflated data set inflates to more than {cap} bytes (the pixel budget plus "
              f"{METADATA_ALLOWANCE_BYTES} bytes for the other elements); raise the pixel budget "
              f"({PIXEL_BUDGET_ENV} or pixel_budget=) if the file is genuine")


def _cut_short(path: Path) -> TruncatedDicomError:
    return TruncatedDicomError(path, "file is cut short: its deflated data set ends before the end of the deflate "
                                     "stream")


#: Inflated bytes produced per step (bounds what a header-only read holds beside the header).
_INFLATE_STEP = 4 * 2**20


class _InflatingReader:
    """A read-only, seekable view of a raw deflate stream that inflates only as far as it is read.

    What has been read is kept (pydicom seeks back a few bytes), so memory is the part read so far;
    :meth:`drain` inflates the rest without keeping it, so a header-only read still checks the
    whole stream's length against ``cap`` (PixelBudgetError) and its end (TruncatedDicomError), as a
    full read does, while holding only the header.
    """

    def __init__(self, fp: Any, cap: int, path: Path):
        self._fp, self._cap, self._path = fp, cap, path
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buf = bytearray()
        self._pos = 0
        self._total = 0  # bytes inflated, kept or not

    def _step(self) -> bytes:
        """The next piece of inflated output (≤ :data:`_INFLATE_STEP` bytes); b"" at the end of the stream."""
        if self._inflater.eof:
            return b""
        data = self._inflater.unconsumed_tail or self._fp.read(2**20)
        if not data:
            raise _cut_short(self._path)
        try:
            out = self._inflater.decompress(data, min(_INFLATE_STEP, self._cap + 1 - self._total))
        except zlib.error as e:
            raise DicomReadError(self._path, f"the deflated data set is corrupt: {e}") from None
        self._total += len(out)
        if self._total > self._cap:
            raise _budget_error(self._path, self._cap)
        return out

    def _fill(self, upto: int) -> None:
        while len(self._buf) < upto and not self._inflater.eof:
            self._buf += self._step()

    def read(self, n: int = -1) -> bytes:
        self._fill(self._cap + 1 if n is None or n < 0 else self._pos + n)
        end = len(self._buf) if n is None or n < 0 else self._pos + n
        data = bytes(self._buf[self._pos:end])
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:
            self._fill(self._cap + 1)
        target = offset + (0, self._pos, len(self._buf))[whence]
        self._fill(target)
        self._pos = max(0, min(target, len(self._buf)))
        return self._pos

    def drain(self) -> int:
        """Inflate the rest of the stream, discarding it (cap and truncation checked, nothing more held);
        returns the stream's whole inflated length in bytes."""
        self._buf = bytearray(self._buf[:self._pos])
        while not self._inflater.eof:
            self._step()
        return self._total


def _inflate(fp, cap: int, path: Path) -> bytes:
    """Inflate the raw deflate stream from ``fp``'s position to its end, 1 MiB of input and at most
    4 MiB of output at a time, never holding more than ``cap`` + 1 inflated bytes. PixelBudgetError beyond ``cap``,
    TruncatedDicomError if the stream stops before its final block, DicomReadError if it is
    corrupt."""
    return _InflatingReader(fp, cap, path).read()


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
            last_tell, last_end = tell, (None if length == UNDEFINED_LENGTH else tell + length)
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
            if tag == PIXEL_TAG:
                continue
            raw = container.get_item(tag)
            length = getattr(raw, "length", None)
            value = getattr(raw, "value", None)
            if isinstance(value, bytes) and length is not None and length != UNDEFINED_LENGTH and len(value) < length:
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


def _locate_pixel_element(fp, pos: int, size: int, ds: Any, path: Path) -> PixelElement | None:
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
    if tag != PIXEL_TAG and tag not in FLOAT_PIXEL_TAGS:
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
    if tag != PIXEL_TAG:
        return PixelElement(tag, start, length, max(0, size - start))
    if length != UNDEFINED_LENGTH:
        return PixelElement(tag, start, length, max(0, min(length, size - start)))
    return _walk_fragments(fp, start, size, path)


def _walk_fragments(fp, start: int, size: int, path: Path) -> PixelElement:
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
            return PixelElement(PIXEL_TAG, start, UNDEFINED_LENGTH, total, bytes(head), first_fragment)
        if (g, e) != (0xFFFE, 0xE000) or item_length == UNDEFINED_LENGTH:
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
