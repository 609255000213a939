"""Hostile DICOM files: decompression and deflate bombs, compressed streams that contradict the
header, header values only a decoder would refuse, and failures deep inside pydicom. Each file is
built here, at test time. The bombs run the reader in a subprocess under a 2 GB address-space
limit: the refusal must come well inside it, and the exam's other views must still be read."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from imaging_fixtures import mg_dataset, phantom, to_stored, write_exam, write_mg

from riskmodel.imaging import DicomReadError, PixelBudgetError, TruncatedDicomError, read_mammogram, scan_dicoms
from riskmodel.imaging.dicom import PIXEL_BUDGET_BYTES, PIXEL_BUDGET_ENV, inspect_header, resolve_pixel_budget

ROOT = Path(__file__).resolve().parents[1]
SIDE = 60000  # Rows = Columns of the bombs: 7.2 GB of 16-bit pixels
LIMIT = 2 * 2**30


def run_limited(paths, limit=LIMIT):
    """read_mammogram and inspect_header on each path in a subprocess limited to ``limit`` bytes
    of address space; returns {path: [read outcome, scan outcome, seconds]} where an outcome is
    "ok" or "<ErrorClass>: <message>", plus the subprocess's peak RSS in MB under "peak_mb" (0 where
    /proc is missing)."""
    code = textwrap.dedent(f"""
        import json, resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        from riskmodel.imaging import read_mammogram
        from riskmodel.imaging.dicom import inspect_header
        out = {{}}
        for p in sys.argv[1:]:
            t = time.perf_counter()
            try:
                read_mammogram(p)
                read = "ok"
            except Exception as e:
                read = f"{{type(e).__name__}}: {{e}}"
            error = inspect_header(p)[1]
            scan = "ok" if error is None else f"{{type(error).__name__}}: {{error}}"
            out[p] = [read, scan, time.perf_counter() - t]
        # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's (pytest's) peak across exec
        hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
        out["peak_mb"] = int(hwm[0].split()[1]) / 1024 if hwm else 0.0
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    env.pop(PIXEL_BUDGET_ENV, None)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def encapsulated(path, transfer_syntax, frame, rows=48, columns=64):
    """An MG file whose one frame is ``frame`` (bytes), Rows × Columns as given."""
    from pydicom.encaps import encapsulate

    ds = mg_dataset(to_stored(phantom(rows, columns)))
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def rle_bomb(path):
    """A real RLE file whose Rows and Columns are then set to 60000: a few KB on disk."""
    import pydicom

    path, _ = write_mg(path, compress="rle")
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = SIDE
    ds.save_as(path)
    return path


def j2k_codestream(folder, width, height):
    """A real JPEG 2000 codestream of the 64 × 48 phantom whose SIZ marker then says width × height."""
    import pydicom
    from pydicom.encaps import generate_frames

    path, _ = write_mg(Path(folder) / "j2k_source.dcm", compress="j2k")
    ds = pydicom.dcmread(path)
    path.unlink()
    stream = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    assert stream[:4] == b"\xff\x4f\xff\x51"
    stream[8:16] = struct.pack(">II", width, height)  # Xsiz, Ysiz (XOsiz = YOsiz = 0)
    return bytes(stream)


def jp2(codestream):
    """The codestream wrapped in the JP2 file format: signature, ftyp, then the jp2c box."""
    signature = struct.pack(">I4s", 12, b"jP  ") + b"\r\n\x87\n"
    file_type = struct.pack(">I4s4sI4s", 20, b"ftyp", b"jp2 ", 0, b"jp2 ")
    return signature + file_type + struct.pack(">I4s", 8 + len(codestream), b"jp2c") + codestream


def jpeg_stream(width, height, marker=0xC3):
    """SOI, an APP0 segment, a start of frame (``marker``) for width × height, SOS, filler, EOI."""
    sof = struct.pack(">BBHBHHB", 0xFF, marker, 11, 16, height, width, 1) + b"\x01\x11\x00"
    return (b"\xff\xd8\xff\xe0\x00\x06JFIF" + sof + b"\xff\xda\x00\x08\x01\x01\x00\x01\x00\x00" + bytes(2000)
            + b"\xff\xd9")


def deflate_bomb(path, size=300 * 2**20):
    """A Deflated Explicit VR Little Endian MG file holding a ``size``-byte private element of
    zeros: about 300 KB on disk. Written as a stream, so the test never holds ``size`` bytes."""
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = mg_dataset(to_stored(phantom()))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    low, high = Dataset(), Dataset()
    for elem in ds:
        (low if elem.tag.group < 0x0009 else high).add(elem)

    def encode(d, meta=False):
        buf = DicomBytesIO()
        buf.is_little_endian, buf.is_implicit_VR = True, False
        write_file_meta_info(buf, d, enforce_standard=True) if meta else write_dataset(buf, d)
        return buf.getvalue()

    creator = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 14) + b"RISKMODEL TEST"
    private = struct.pack("<HH2sHI", 0x0009, 0x1000, b"OB", 0, size)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(2**20)
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + encode(ds.file_meta, meta=True))
        f.write(z.compress(encode(low) + creator + private))
        for _ in range(size // len(zeros)):
            f.write(z.compress(zeros))
        f.write(z.compress(encode(high)) + z.flush())
    return Path(path)


def exam_with(tmp_path, bomb_writer):
    """A 4-view exam whose R-MLO is replaced by ``bomb_writer(path)``; returns its paths."""
    views = write_exam(tmp_path / "exam", compress="rle")
    bomb_writer(views["R-MLO"])
    return views


# -- decompression bombs ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rle", "j2k", "jp2", "jpeg"])
def test_bombs_are_refused_before_decoding_and_cost_one_view(tmp_path, kind):
    writers = {
        "rle": rle_bomb,
        "j2k": lambda p: encapsulated(p, "1.2.840.10008.1.2.4.90", j2k_codestream(p.parent, SIDE, SIDE)),
        "jp2": lambda p: encapsulated(p, "1.2.840.10008.1.2.4.90", jp2(j2k_codestream(p.parent, SIDE, SIDE))),
        "jpeg": lambda p: encapsulated(p, "1.2.840.10008.1.2.4.70", jpeg_stream(SIDE, SIDE)),
    }
    views = exam_with(tmp_path, writers[kind])
    assert views["R-MLO"].stat().st_size < 20_000
    out = run_limited(views.values())
    bomb = out.pop(str(views["R-MLO"]))
    peak = out.pop("peak_mb")
    if kind == "rle":  # the header itself is over the budget
        expected = (rf"PixelBudgetError: .*R-MLO\.dcm: Rows × Columns × frames × samples = {SIDE} × {SIDE} × 1 × 1 "
                    rf"at 16 bits is {SIDE * SIDE * 2} bytes of pixel data, over the pixel budget")
    else:  # the header says 48 × 64, the compressed stream says 60000 × 60000
        what = "JPEG 2000 codestream \\(SIZ marker\\)" if kind != "jpeg" else "JPEG start of frame \\(marker FFC3\\)"
        expected = (rf"DicomReadError: .*R-MLO\.dcm: the {what} declares {SIDE} × {SIDE} pixels with 1 component\(s\), "
                    r"but Rows × Columns are 48 × 64")
    import re

    assert re.match(expected, bomb[0]) and bomb[1] == bomb[0], bomb
    assert bomb[2] < 2.0 and peak < 600
    assert [v[:2] for v in out.values()] == [["ok", "ok"]] * 3  # the exam's other views are read


def test_a_stream_that_agrees_with_its_header_is_read(tmp_path):
    path = encapsulated(tmp_path / "j2k.dcm", "1.2.840.10008.1.2.4.90", j2k_codestream(tmp_path, 64, 48))
    assert read_mammogram(path).shape == (48, 64) and inspect_header(path)[1] is None
    path = encapsulated(tmp_path / "jp2.dcm", "1.2.840.10008.1.2.4.90", jp2(j2k_codestream(tmp_path, 64, 48)))
    assert inspect_header(path)[1] is None  # (openjpeg wants a jp2h box before decoding it)


@pytest.mark.parametrize("stream, message", [
    (jpeg_stream(64, 60, marker=0xC3), r"JPEG start of frame \(marker FFC3\) declares 60 × 64 pixels"),
    (jpeg_stream(64, 48, marker=0xF7)[:2] + jpeg_stream(52, 48, marker=0xF7)[2:],
     r"JPEG start of frame \(marker FFF7\) declares 48 × 52 pixels"),  # JPEG-LS SOF55
    (b"\xff\xd8\xff\xda\x00\x08" + bytes(100), r"reaches marker FFDA before any start-of-frame marker"),
    (b"\x00" * 64, r"does not start with SOI"),
])
def test_jpeg_start_of_frame_must_match_the_header(tmp_path, stream, message):
    ts = "1.2.840.10008.1.2.4.80" if b"\xff\xf7" in stream else "1.2.840.10008.1.2.4.70"
    path = encapsulated(tmp_path / "j.dcm", ts, stream)
    with pytest.raises(DicomReadError, match=message):
        read_mammogram(path)
    with pytest.raises(DicomReadError) as read:
        read_mammogram(path)
    assert str(inspect_header(path)[1]) == str(read.value)


def test_j2k_components_and_offsets_are_compared(tmp_path):
    stream = bytearray(j2k_codestream(tmp_path, 64, 48))
    stream[40:42] = struct.pack(">H", 3)  # Csiz: three components for a one-sample image
    path = encapsulated(tmp_path / "c.dcm", "1.2.840.10008.1.2.4.90", bytes(stream))
    with pytest.raises(DicomReadError, match=r"declares 48 × 64 pixels with 3 component\(s\)"):
        read_mammogram(path)
    path = encapsulated(tmp_path / "g.dcm", "1.2.840.10008.1.2.4.90", b"\xff\x4f\xff\x90" + bytes(60))
    with pytest.raises(DicomReadError, match=r"does not start with SOC \(FF4F\) and a SIZ \(FF51\)"):
        read_mammogram(path)


# -- the pixel budget ------------------------------------------------------------------------


def test_pixel_budget_default_keyword_and_environment(tmp_path, monkeypatch):
    path, _ = write_mg(tmp_path / "a.dcm")  # 48 × 64 × 16 bits = 6144 bytes
    monkeypatch.delenv(PIXEL_BUDGET_ENV, raising=False)
    assert resolve_pixel_budget() == PIXEL_BUDGET_BYTES == 8192 * 6144 * 2
    assert read_mammogram(path, pixel_budget=6144).shape == (48, 64)
    with pytest.raises(PixelBudgetError, match=r"48 × 64 × 1 × 1 at 16 bits is 6144 bytes .* budget of 6143 bytes"):
        read_mammogram(path, pixel_budget=6143)
    assert type(inspect_header(path, pixel_budget=6143)[1]) is PixelBudgetError
    monkeypatch.setenv(PIXEL_BUDGET_ENV, "6143")
    assert scan_dicoms(tmp_path)["status"].tolist() == ["PixelBudgetError"]
    with pytest.raises(PixelBudgetError):
        read_mammogram(path)
    assert read_mammogram(path, pixel_budget=10**6).shape == (48, 64)  # the keyword wins
    monkeypatch.setenv(PIXEL_BUDGET_ENV, "lots")
    with pytest.raises(ValueError, match=f"{PIXEL_BUDGET_ENV} must be a positive integer"):
        read_mammogram(path)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="pixel_budget must be a positive integer"):
            read_mammogram(path, pixel_budget=bad)


def test_a_mammogram_at_the_largest_detector_size_is_within_budget(tmp_path):
    ds = mg_dataset(np.zeros((2, 2), np.uint16), pixel_data=False)
    ds.Rows, ds.Columns = 7500, 6000  # 24 × 30 cm at 40 µm
    from riskmodel.imaging.dicom.checks import _check_pixel_budget

    _check_pixel_budget(ds, tmp_path / "x.dcm", PIXEL_BUDGET_BYTES)  # no error
    ds.Rows = 9000
    with pytest.raises(PixelBudgetError):
        _check_pixel_budget(ds, tmp_path / "x.dcm", PIXEL_BUDGET_BYTES)


# -- the deflate bomb --------------------------------------------------------------------------


def test_deflate_bomb_is_refused_within_the_cap_and_costs_one_view(tmp_path):
    views = exam_with(tmp_path, deflate_bomb)
    assert views["R-MLO"].stat().st_size < 400_000
    out = run_limited(views.values())
    bomb = out.pop(str(views["R-MLO"]))
    peak = out.pop("peak_mb")
    assert bomb[0].startswith("PixelBudgetError: ") and "the deflated data set inflates to more than" in bomb[0]
    assert bomb[1] == bomb[0] and bomb[2] < 10.0 and peak < 600, (bomb, peak)
    assert [v[:2] for v in out.values()] == [["ok", "ok"]] * 3


def test_small_deflated_files_are_read_and_cut_ones_refused(tmp_path, monkeypatch):
    import pydicom

    from riskmodel.imaging.dicom import parse as dicom

    path, _ = write_mg(tmp_path / "d.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    ds.save_as(path)
    assert inspect_header(path)[1] is None
    assert read_mammogram(path).shape == (48, 64)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(TruncatedDicomError, match="ends before the end of the deflate stream"):
        read_mammogram(cut)
    assert type(inspect_header(cut)[1]) is TruncatedDicomError
    monkeypatch.setattr(dicom, "METADATA_ALLOWANCE_BYTES", 100)  # the cap is the budget + this allowance
    with pytest.raises(PixelBudgetError, match="inflates to more than 6244 bytes"):
        read_mammogram(path, pixel_budget=6144)
    assert "inflates to more than 6244 bytes" in str(inspect_header(path, pixel_budget=6144)[1])


# -- header values only a decoder checks: scan and read agree ----------------------------------


@pytest.mark.parametrize("extra, message", [
    ({"BitsStored": 20, "HighBit": 19}, r"BitsStored is 20; it must be between 1 and BitsAllocated \(16\)"),
    ({"BitsAllocated": 12}, r"BitsAllocated is 12; it must be 1 or a multiple of 8 up to 64"),
    ({"BitsStored": 0}, r"BitsStored is 0"),
    ({"PixelRepresentation": 2}, r"PixelRepresentation is 2; it must be 0 \(unsigned\) or 1 \(signed\)"),
    ({"SamplesPerPixel": None}, r"\(0028,0002\) SamplesPerPixel is missing"),
])
def test_scan_applies_the_bit_depth_checks_of_read(tmp_path, extra, message):
    path, _ = write_mg(tmp_path / "b.dcm", extra=extra)
    with pytest.raises(DicomReadError, match=message) as read:
        read_mammogram(path)
    assert str(inspect_header(path)[1]) == str(read.value)
    assert scan_dicoms(tmp_path)["error"].tolist() == [str(read.value)]


# -- failures deep inside pydicom name their cause ---------------------------------------------


def test_deeply_nested_sequences_name_the_cause(tmp_path):
    path, _ = write_mg(tmp_path / "n.dcm")
    opening = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000,
                                                                                          0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    data = path.read_bytes()
    at = data.rfind(b"\xe0\x7f\x10\x00OW")
    path.write_bytes(data[:at] + opening * 2000 + closing * 2000 + data[at:])
    with pytest.raises(DicomReadError, match="sequences are nested too deeply") as read:
        read_mammogram(path)
    assert "RecursionError" not in str(read.value) and str(inspect_header(path)[1]) == str(read.value)


def test_a_short_modality_lut_names_the_cause(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.LUTDescriptor, item.ModalityLUTType = [4096, 0, 16], "OD"
    item.add_new(0x00283006, "US", [1, 2])
    path, _ = write_mg(tmp_path / "m.dcm", extra={"ModalityLUTSequence": Sequence([item])})
    with pytest.raises(DicomReadError, match=r"LUTDescriptor declares 4096 entries but LUTData holds 2") as read:
        read_mammogram(path)
    assert "IndexError" not in str(read.value) and str(inspect_header(path)[1]) == str(read.value)
    item.add_new(0x00283006, "US", list(range(4096))[::-1])  # a complete table still reads
    path, _ = write_mg(tmp_path / "m.dcm", extra={"ModalityLUTSequence": Sequence([item])})
    assert read_mammogram(path).shape == (48, 64)


def test_rle_runs_that_overflow_the_frame_are_a_read_error(tmp_path):
    path, _ = write_mg(tmp_path / "o.dcm", compress="rle")
    data = bytearray(path.read_bytes())
    item = data.rfind(b"\xfe\xff\x00\xe0")
    start = item + 8 + struct.unpack("<I", data[item + 12:item + 16])[0]  # the first segment
    data[start:start + 6] = b"\x81\x00" * 3  # three runs of 128 zeros where literal runs were: too many bytes
    path.write_bytes(bytes(data))
    with pytest.raises(DicomReadError, match=r"o\.dcm: (corrupt RLE pixel data|pixel data could not be decoded)"):
        read_mammogram(path)


def test_an_unknown_vr_is_a_dicom_error(tmp_path):
    path, _ = write_mg(tmp_path / "v.dcm")
    data = bytearray(path.read_bytes())
    at = data.find(b"\x54\x00\x20\x02SQ")  # ViewCodeSequence's VR becomes one pydicom does not know
    data[at + 4:at + 6] = b"S\xfc"
    path.write_bytes(bytes(data))
    error = inspect_header(path)[1]
    assert isinstance(error, DicomReadError) and "Unknown Value Representation" in str(error)
    with pytest.raises(DicomReadError, match="Unknown Value Representation"):
        read_mammogram(path)


def test_scan_of_a_deflated_file_holds_only_the_header(tmp_path):
    """scan reads a deflated data set's header without holding the inflated pixel data (issue 17, item 2): a
    40 MB image peaks far below its inflated size, and the pixel element is still found and checked."""
    import tracemalloc

    import pydicom

    path, _ = write_mg(tmp_path / "big.dcm", stored=np.zeros((4096, 5120), dtype=np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1.99"
    ds.save_as(path)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    fields, error = inspect_header(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert error is None and fields["rows"] == 4096
    assert peak < 16 * 2**20, peak  # the image inflates to 40 MiB; a 4 MiB step at most is held beside the header
