"""read_mammogram: pixel values, vendor quirks, orientation, metadata and every error class."""

import pickle

import numpy as np
import pytest
from imaging_fixtures import mg_dataset, phantom, to_stored, write_mg

from riskmodel.imaging import (
    DecoderMissingError,
    DicomError,
    DicomReadError,
    MetadataError,
    NoPixelDataError,
    NotDicomError,
    NotMammogramError,
    TruncatedDicomError,
    UnsupportedImageError,
    read_mammogram,
)
from riskmodel.imaging.dicom import chest_wall_side, inspect_header, normalise_view

DENSITY = phantom()
STORED = to_stored(DENSITY)  # canonical (chest wall at column 0), 12 bits


def minmax(stored):
    s = stored.astype(np.float64)
    return (s - s.min()) / (s.max() - s.min())


def linear(x, c, w):
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window, output in [0, 1]."""
    x = x.astype(np.float64)
    y = (x - (c - 0.5)) / (w - 1) + 0.5
    y[x <= c - 0.5 - (w - 1) / 2] = 0.0
    y[x > c - 0.5 + (w - 1) / 2] = 1.0
    return y


EXPECTED = minmax(STORED)


# -- values -----------------------------------------------------------------------------------


def test_minmax_monochrome2_left_cc(tmp_path):
    path, stored = write_mg(tmp_path / "a.dcm")
    assert np.array_equal(stored, STORED)
    m = read_mammogram(path)
    assert m.pixels.dtype == np.float32 and m.pixels.shape == (48, 64)
    np.testing.assert_allclose(m.pixels, EXPECTED, atol=1e-6)
    assert m.pixels.min() == 0.0 and m.pixels.max() == 1.0
    assert m.pixels[0, -1] == 0.0  # background corner on the nipple side
    assert (m.laterality, m.view, m.view_family, m.flipped, m.voi) == ("L", "CC", "CC", False, "minmax")
    assert m.orientation_source == "pixels"


def test_monochrome1_is_inverted_so_background_is_zero(tmp_path):
    path, stored = write_mg(tmp_path / "m1.dcm", photometric="MONOCHROME1")
    assert stored[0, -1] == 4095  # background stored bright
    m = read_mammogram(path)
    assert m.photometric_interpretation == "MONOCHROME1"
    np.testing.assert_allclose(m.pixels, EXPECTED, atol=1e-6)
    assert m.pixels[0, -1] == 0.0


@pytest.mark.parametrize("bits", [12, 14, 16])
def test_bits_stored(tmp_path, bits):
    path, stored = write_mg(tmp_path / "b.dcm", bits_stored=bits)
    assert stored.max() > 2 ** (bits - 1)  # really uses the top bit
    m = read_mammogram(path)
    assert m.bits_stored == bits
    np.testing.assert_allclose(m.pixels, minmax(stored), atol=1e-6)


def test_bits_above_bits_stored_are_ignored(tmp_path):
    # Old GE/overlay practice: garbage in the bits above BitsStored.
    path, _ = write_mg(tmp_path / "hb.dcm", stored=STORED | np.uint16(0xF000))
    np.testing.assert_allclose(read_mammogram(path).pixels, EXPECTED, atol=1e-6)


def test_window_linear_uses_first_of_multiple_values(tmp_path):
    path, _ = write_mg(tmp_path / "w.dcm", window=([1500, 900], [1200, 400]))
    m = read_mammogram(path)
    assert m.voi == "window:LINEAR"
    expected = linear(STORED, 1500, 1200)
    np.testing.assert_allclose(m.pixels, expected, atol=1e-6)
    assert not np.allclose(m.pixels, linear(STORED, 900, 400), atol=1e-3)
    # a stored value right at the centre maps to ~0.5
    assert abs(linear(np.array([1500]), 1500, 1200)[0] - 0.5004) < 1e-3


def test_window_linear_exact(tmp_path):
    path, _ = write_mg(tmp_path / "we.dcm", window=(1500, 1200), voi_function="LINEAR_EXACT")
    m = read_mammogram(path)
    x = STORED.astype(np.float64)
    expected = np.clip((x - 1500) / 1200 + 0.5, 0, 1)
    assert m.voi == "window:LINEAR_EXACT"
    np.testing.assert_allclose(m.pixels, expected, atol=1e-6)


def test_window_sigmoid(tmp_path):
    path, _ = write_mg(tmp_path / "ws.dcm", window=(1500, 1200), voi_function="SIGMOID")
    m = read_mammogram(path)
    x = STORED.astype(np.float64)
    expected = 1 / (1 + np.exp(-4 * (x - 1500) / 1200))
    assert m.voi == "window:SIGMOID"
    np.testing.assert_allclose(m.pixels, expected, atol=1e-6)


@pytest.mark.parametrize("lut_vr", ["OW", "US"])
def test_voi_lut_sequence_wins_over_window_and_is_scaled_by_its_own_range(tmp_path, lut_vr):
    # GE style: LUTDescriptor says 16 bits, the table only reaches 2047.
    table = np.arange(4096) // 2
    path, _ = write_mg(tmp_path / "lut.dcm", voi_lut=(0, table.tolist(), 16), lut_vr=lut_vr, window=(1500, 1200))
    m = read_mammogram(path)
    assert m.voi == "voi_lut"
    np.testing.assert_allclose(m.pixels, (STORED // 2) / 2047, atol=1e-6)


def test_linear_voi_mode_draws_a_straight_line_over_the_lut_input_range(tmp_path):
    # a sigmoid-like table over stored values 1000..3047 (GE style): "linear" keeps the range, not the curve
    x = np.linspace(-3, 3, 2048)
    table = np.rint(4095 * (np.tanh(x) + 1) / 2).astype(int)
    path, _ = write_mg(tmp_path / "lutlin.dcm", voi_lut=(1000, table.tolist(), 12))
    curved, linear = read_mammogram(path), read_mammogram(path, voi="linear")
    assert (curved.voi, linear.voi) == ("voi_lut", "voi_lut_range")
    expected = np.clip(STORED.astype(np.float64) - 1000, 0, 2047) / 2047
    np.testing.assert_allclose(linear.pixels, expected, atol=1e-6)
    assert np.abs(curved.pixels - linear.pixels).max() > 0.05  # the curve was really dropped
    # a falling table inverts, and so does its straight line
    path, _ = write_mg(tmp_path / "lutfall.dcm", voi_lut=(1000, table[::-1].tolist(), 12))
    falling = read_mammogram(path, voi="linear")
    unmirrored = falling.pixels[:, ::-1] if falling.flipped else falling.pixels  # bright background: mirrored
    np.testing.assert_allclose(unmirrored, 1 - expected, atol=1e-6)


def test_linear_voi_mode_applies_a_sigmoid_window_linearly(tmp_path):
    path, _ = write_mg(tmp_path / "ws.dcm", window=(1500, 1200), voi_function="SIGMOID")
    m = read_mammogram(path, voi="linear")
    plain, _ = write_mg(tmp_path / "wl.dcm", window=(1500, 1200), voi_function="LINEAR")
    assert m.voi == "window:LINEAR"
    np.testing.assert_array_equal(m.pixels, read_mammogram(plain).pixels)
    assert read_mammogram(path).voi == "window:SIGMOID"  # the file itself is not changed by the read


def test_linear_voi_mode_leaves_min_max_images_alone_and_rejects_unknown_modes(tmp_path):
    path, _ = write_mg(tmp_path / "mm.dcm")
    np.testing.assert_array_equal(read_mammogram(path, voi="linear").pixels, read_mammogram(path).pixels)
    with pytest.raises(ValueError, match="voi must be one of"):
        read_mammogram(path, voi="sigmoid")


def test_voi_lut_with_first_mapped_value(tmp_path):
    # entries map stored values 1000..3047; below clamps to the first entry, above to the last
    table = np.linspace(0, 4095, 2048).round().astype(int)
    path, _ = write_mg(tmp_path / "lut2.dcm", voi_lut=(1000, table.tolist(), 12))
    m = read_mammogram(path)
    index = np.clip(STORED.astype(int) - 1000, 0, 2047)
    np.testing.assert_allclose(m.pixels, table[index] / 4095, atol=1e-6)


def test_rescale_slope_intercept_then_window_in_rescaled_units(tmp_path):
    path, _ = write_mg(tmp_path / "rs.dcm", rescale=(2.0, -100.0), window=(2900, 2400))
    m = read_mammogram(path)
    np.testing.assert_allclose(m.pixels, linear(STORED * 2.0 - 100.0, 2900, 2400), atol=1e-6)


def test_rescale_with_minmax_is_invariant(tmp_path):
    path, _ = write_mg(tmp_path / "rs2.dcm", rescale=(0.5, 10.0))
    np.testing.assert_allclose(read_mammogram(path).pixels, EXPECTED, atol=1e-6)


def test_invalid_window_falls_back_to_minmax(tmp_path):
    path, _ = write_mg(tmp_path / "w0.dcm", window=(1500, 0))
    m = read_mammogram(path)
    assert m.voi == "minmax"
    np.testing.assert_allclose(m.pixels, EXPECTED, atol=1e-6)


@pytest.mark.parametrize("compress", ["rle", "j2k"])
def test_compressed_round_trip(tmp_path, compress):
    pytest.importorskip("openjpeg") if compress == "j2k" else None
    path, _ = write_mg(tmp_path / "c.dcm", laterality="R", compress=compress, photometric="MONOCHROME1")
    m = read_mammogram(path)
    assert m.transfer_syntax == {"rle": "1.2.840.10008.1.2.5", "j2k": "1.2.840.10008.1.2.4.90"}[compress]
    assert m.flipped
    np.testing.assert_allclose(m.pixels, EXPECTED, atol=1e-6)


# -- orientation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("laterality", "stored_flipped"), [("L", False), ("R", True), ("L", True), ("R", False)])
def test_canonical_orientation_whatever_the_storage(tmp_path, laterality, stored_flipped):
    path, stored = write_mg(tmp_path / "o.dcm", laterality=laterality, stored_flipped=stored_flipped)
    assert np.array_equal(stored, STORED[:, ::-1] if stored_flipped else STORED)
    m = read_mammogram(path)
    assert m.flipped is stored_flipped
    np.testing.assert_allclose(m.pixels, EXPECTED, atol=1e-6)
    assert m.pixels[:, :16].mean() > 5 * m.pixels[:, -16:].mean()  # chest wall at column 0


def test_pixels_win_over_a_contradicting_patient_orientation(tmp_path):
    # Stored mirrored, but PatientOrientation still claims A (chest wall at column 0).
    path, _ = write_mg(tmp_path / "po.dcm", laterality="L", stored_flipped=True, patient_orientation=["A", "R"])
    m = read_mammogram(path)
    assert m.flipped and m.orientation_source == "pixels"


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("stored_flipped", [False, True])
def test_orientation_robust_to_noise_and_a_bright_marker(tmp_path, seed, stored_flipped):
    density = phantom(seed=seed, noise=0.08)
    density[2:8, -12:-2] = 1.0  # burned-in label on the nipple side
    path, _ = write_mg(tmp_path / "n.dcm", density, stored_flipped=stored_flipped)
    m = read_mammogram(path)
    assert m.flipped is stored_flipped
    assert m.orientation_source == "pixels"


def _ambiguous_stored():
    # Same profile in every column: the pixels cannot tell the chest wall side.
    return np.repeat(np.linspace(100, 3000, 48).astype(np.uint16)[:, None], 64, axis=1)


@pytest.mark.parametrize(("orientation", "laterality", "flipped", "source"), [
    (["P", "L"], "R", True, "PatientOrientation"),
    (["A", "R"], "R", False, "PatientOrientation"),
    (None, "R", True, "laterality"),
    (None, "L", False, "laterality"),
])
def test_ambiguous_pixels_fall_back_to_tags(tmp_path, orientation, laterality, flipped, source):
    path, _ = write_mg(tmp_path / "amb.dcm", stored=_ambiguous_stored(), laterality=laterality,
                      patient_orientation=orientation)
    m = read_mammogram(path)
    assert (m.flipped, m.orientation_source) == (flipped, source)


def test_chest_wall_side_rule():
    img = np.zeros((10, 40))
    img[:, :10] = 0.5
    assert chest_wall_side(img) == "left"
    assert chest_wall_side(img[:, ::-1]) == "right"
    img[:, -10:] = 0.47  # within 10 % of each other
    assert chest_wall_side(img) == ""
    assert chest_wall_side(np.zeros((5, 5))) == ""


# -- laterality and view ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
@pytest.mark.parametrize(("position", "view", "family"), [
    ("MLO", "MLO", "MLO"), ("ML", "ML", "MLO"), ("LM", "LM", "MLO"), ("XCCL", "XCCL", "CC"),
    ("cc ", "CC", "CC"), ("R-MLO", "MLO", "MLO"), ("FB", "FB", "other"),
])
def test_view_position_spellings(tmp_path, position, view, family):
    path, _ = write_mg(tmp_path / "v.dcm", view=None, extra={"ViewPosition": position})
    m = read_mammogram(path)
    assert (m.view, m.view_family, m.view_source) == (view, family, "ViewPosition")


@pytest.mark.parametrize(("view", "scheme"), [("MLO", "SCT"), ("MLO", "SRT"), ("CC", "SRT"), ("XCCL", "SCT")])
def test_view_code_sequence_only(tmp_path, view, scheme):
    path, _ = write_mg(tmp_path / "vc.dcm", view=view, view_tags=("ViewCodeSequence",), view_code_scheme=scheme)
    m = read_mammogram(path)
    assert (m.view, m.view_source) == (view, "ViewCodeSequence")


def test_ml_in_view_position_with_mlo_code_reads_as_mlo(tmp_path):
    path, _ = write_mg(tmp_path / "ml.dcm", view="MLO", view_tags=("ViewCodeSequence",),
                       extra={"ViewPosition": "ML"})
    m = read_mammogram(path)
    assert (m.view, m.view_source) == ("MLO", "ViewCodeSequence")


def test_view_families_in_conflict_raise(tmp_path):
    path, _ = write_mg(tmp_path / "vx.dcm", view="MLO", view_tags=("ViewCodeSequence",), extra={"ViewPosition": "CC"})
    with pytest.raises(MetadataError, match="ViewPosition says CC but ViewCodeSequence says MLO"):
        read_mammogram(path)


def test_fuji_view_and_side_in_acquisition_device_processing_description(tmp_path):
    path, _ = write_mg(tmp_path / "fuji.dcm", laterality="R", laterality_tag="none", view=None,
                       extra={"AcquisitionDeviceProcessingDescription": "R MLO"})
    m = read_mammogram(path)
    assert (m.laterality, m.view) == ("R", "MLO")
    assert m.laterality_source == m.view_source == "AcquisitionDeviceProcessingDescription"


def test_view_modifiers_are_read(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path, _ = write_mg(tmp_path / "mod.dcm")
    import pydicom

    ds = pydicom.dcmread(path)
    mod = Dataset()
    mod.CodeValue, mod.CodingSchemeDesignator, mod.CodeMeaning = "399055006", "SCT", "Spot Compression"
    ds.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence([mod])
    ds.save_as(path)
    assert read_mammogram(path).view_modifiers == ("spot compression",)


def _anatomy(code, scheme):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, scheme, "breast"
    return Sequence([item])


def _frame_laterality(side):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    anatomy = Dataset()
    anatomy.FrameLaterality = side
    group = Dataset()
    group.FrameAnatomySequence = Sequence([anatomy])
    return Sequence([group])


@pytest.mark.parametrize(("tags", "side", "source"), [
    ({"ImageLaterality": "R"}, "R", "ImageLaterality"),
    ({"Laterality": "R"}, "R", "Laterality"),
    ({"ImageLaterality": "R", "Laterality": "R"}, "R", "ImageLaterality"),
    ({"ImageLaterality": "B", "SeriesDescription": "R CC"}, "R", "SeriesDescription"),
    ({"SharedFunctionalGroupsSequence": "frame"}, "R", "FrameLaterality"),
    ({"AnatomicRegionSequence": ("73056007", "SCT")}, "R", "AnatomicRegionSequence"),
    ({"AnatomicRegionSequence": ("T-04030", "SRT")}, "L", "AnatomicRegionSequence"),
    ({"ViewPosition": "RCC"}, "R", "ViewPosition"),
    ({"SeriesDescription": "RIGHT CC"}, "R", "SeriesDescription"),
    ({"ProtocolName": "Screening LCC"}, "L", "ProtocolName"),
])
def test_laterality_fallbacks(tmp_path, tags, side, source):
    extra = dict(tags)
    if extra.get("SharedFunctionalGroupsSequence") == "frame":
        extra["SharedFunctionalGroupsSequence"] = _frame_laterality(side)
    if "AnatomicRegionSequence" in extra:
        extra["AnatomicRegionSequence"] = _anatomy(*extra["AnatomicRegionSequence"])
    path, _ = write_mg(tmp_path / "lat.dcm", laterality=side, laterality_tag="none", extra=extra)
    m = read_mammogram(path)
    assert (m.laterality, m.laterality_source) == (side, source)
    assert m.flipped is (side == "R")


def test_laterality_tags_in_conflict_raise(tmp_path):
    path, _ = write_mg(tmp_path / "lc.dcm", extra={"Laterality": "R"})
    with pytest.raises(MetadataError, match="ImageLaterality is L but Laterality is R"):
        read_mammogram(path)


def test_no_laterality_or_no_view_raises(tmp_path):
    path, _ = write_mg(tmp_path / "nl.dcm", laterality_tag="none")
    with pytest.raises(MetadataError, match="laterality unknown"):
        read_mammogram(path)
    path, _ = write_mg(tmp_path / "nv.dcm", view=None)
    with pytest.raises(MetadataError, match="view unknown"):
        read_mammogram(path)


def test_normalise_view():
    assert [normalise_view(v) for v in ("MLO", "ml", "L CC", "RIGHTMLO", "XCCM", "AP", "")] == [
        "MLO", "ML", "CC", "MLO", "XCCM", "", ""]


# -- metadata ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_metadata(tmp_path):
    path, _ = write_mg(tmp_path / "md.dcm", laterality="R", view="MLO", patient_id="PX", accession="A9",
                       study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5", acquisition_time="10:30:00.5",
                       manufacturer="GE MEDICAL SYSTEMS", instance_number=7)
    m = read_mammogram(path)
    assert (m.patient_id, m.accession_number, m.study_uid, m.series_uid, m.sop_uid) == (
        "PX", "A9", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert m.acquisition_datetime == "20240105103000.500000"
    assert m.study_date == "20240105"
    assert m.manufacturer == "GE MEDICAL SYSTEMS"
    assert m.instance_number == 7
    assert m.pixel_spacing == (0.07, 0.07)
    assert m.transfer_syntax == "1.2.840.10008.1.2.1"
    assert m.path == str(path)
    assert m.shape == (48, 64)


def test_for_processing_is_read_and_flagged(tmp_path):
    path, _ = write_mg(tmp_path / "fp.dcm", presentation_intent="FOR PROCESSING")
    assert read_mammogram(path).presentation_intent == "FOR PROCESSING"
    # without PresentationIntentType the SOP class tells
    path, _ = write_mg(tmp_path / "fp2.dcm", presentation_intent=None)
    assert read_mammogram(path).presentation_intent == "FOR PRESENTATION"


def test_raw_dataset_without_preamble_is_read(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset

    ds = mg_dataset(STORED)
    ds.preamble = None
    ds.file_meta = FileMetaDataset()
    path = tmp_path / "raw.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True)  # no preamble, no meta
    assert path.read_bytes()[:2] == b"\x08\x00"
    np.testing.assert_allclose(read_mammogram(path).pixels, EXPECTED, atol=1e-6)


# -- errors -----------------------------------------------------------------------------------


def test_not_dicom(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("patient list\n")
    with pytest.raises(NotDicomError, match=r"notes\.txt") as info:
        read_mammogram(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DicomError)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(NotDicomError, match="empty file"):
        read_mammogram(empty)


@pytest.mark.parametrize("cut", [1000, 6000])
def test_truncated_inside_pixel_data_or_header(tmp_path, cut):
    path, _ = write_mg(tmp_path / "t.dcm")
    data = path.read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data[:len(data) - cut])  # 6144 bytes of pixels: 6000 cuts inside them, 1000 too
    with pytest.raises(TruncatedDicomError, match=r"cut\.dcm: .*(cut short|shorter)"):
        read_mammogram(bad)
    bad.write_bytes(data[:400])  # inside the header
    with pytest.raises(TruncatedDicomError, match="cut short"):
        read_mammogram(bad)


def test_truncated_compressed(tmp_path):
    path, _ = write_mg(tmp_path / "r.dcm", compress="rle")
    data = path.read_bytes()
    path.write_bytes(data[:-300])
    with pytest.raises(TruncatedDicomError):
        read_mammogram(path)


def test_pixel_data_shorter_than_rows_times_columns(tmp_path):
    ds = mg_dataset(STORED)
    ds.PixelData = STORED[:40].tobytes()  # a consistent element, but 40 of 48 rows
    path = tmp_path / "short.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(TruncatedDicomError, match="shorter than the 6144 bytes"):
        read_mammogram(path)


def test_no_pixel_data(tmp_path):
    path = tmp_path / "np.dcm"
    mg_dataset(STORED, pixel_data=False).save_as(path, enforce_file_format=True)
    with pytest.raises(NoPixelDataError, match=r"np\.dcm: no \(7FE0,0010\) Pixel Data"):
        read_mammogram(path)


def test_not_a_mammogram(tmp_path):
    path, _ = write_mg(tmp_path / "ct.dcm", modality="CT")
    with pytest.raises(NotMammogramError, match="Modality is 'CT'"):
        read_mammogram(path)
    path, _ = write_mg(tmp_path / "nomod.dcm", extra={"Modality": None})
    with pytest.raises(NotMammogramError, match="missing"):
        read_mammogram(path)


@pytest.fixture
def no_rle_decoder(monkeypatch):
    """Simulate an install where no plugin can decode RLE Lossless."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import RLELossless

    monkeypatch.setattr(get_decoder(RLELossless), "_available", {})


def test_decoder_missing(tmp_path, no_rle_decoder):
    path, _ = write_mg(tmp_path / "rle.dcm", compress=None)
    # write compressed with the real encoder, then read without a decoder
    import pydicom
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(path)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.save_as(path)
    with pytest.raises(DecoderMissingError, match=r"rle\.dcm: no installed decoder for transfer syntax RLE Lossless "
                                                  r"\(1\.2\.840\.10008\.1\.2\.5\).*pip install pylibjpeg") as info:
        read_mammogram(path)
    assert info.value.transfer_syntax == "1.2.840.10008.1.2.5"


def test_decoder_missing_for_jpeg_lossless_names_the_package(tmp_path, monkeypatch):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLosslessSV1

    monkeypatch.setattr(get_decoder(JPEGLosslessSV1), "_available", {})
    path, _ = write_mg(tmp_path / "jl.dcm", compress="rle")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1  # the fragments are never decoded
    ds.save_as(path)
    with pytest.raises(DecoderMissingError, match=r"JPEG Lossless.*pip install pylibjpeg pylibjpeg-libjpeg"):
        read_mammogram(path)


def test_corrupt_compressed_stream_is_a_read_error(tmp_path):
    path, _ = write_mg(tmp_path / "bad.dcm", compress="rle")
    data = bytearray(path.read_bytes())
    item = data.rfind(b"\xfe\xff\x00\xe0")  # the one fragment item; its value starts with the RLE header
    header = bytes(data[item + 8:item + 72])
    data[item + 72:item + 72 + 256] = b"\x7f" * 256  # segment data: literal runs that overflow the rows
    path.write_bytes(bytes(data))
    with pytest.raises(DicomReadError, match=r"bad\.dcm: pixel data could not be decoded"):
        read_mammogram(path)
    data[item + 8:item + 72] = b"\xff" * 64  # the RLE header itself: refused before decoding, and by the scan
    path.write_bytes(bytes(data))
    with pytest.raises(DicomReadError, match=r"bad\.dcm: the RLE header declares 4294967295 segments; "
                                             r"SamplesPerPixel × BitsAllocated / 8 needs 2"):
        read_mammogram(path)
    assert "RLE header declares" in str(inspect_header(path)[1])
    data[item + 8:item + 72] = header[:4] + header[8:12] + header[4:8] + header[12:]  # offsets out of order
    path.write_bytes(bytes(data))
    with pytest.raises(DicomReadError, match=r"RLE segment offsets \[\d+, 64\] must start at 64"):
        read_mammogram(path)


def test_unsupported_images(tmp_path):
    path, _ = write_mg(tmp_path / "rgb.dcm", extra={"PhotometricInterpretation": "RGB"})
    with pytest.raises(UnsupportedImageError, match="RGB"):
        read_mammogram(path)
    path, _ = write_mg(tmp_path / "mf.dcm", extra={"NumberOfFrames": 2})
    with pytest.raises(UnsupportedImageError, match="2 frames"):
        read_mammogram(path)
    path, _ = write_mg(tmp_path / "blank.dcm", stored=np.full((48, 64), 7, np.uint16))
    with pytest.raises(UnsupportedImageError, match="blank image"):
        read_mammogram(path)


def test_errors_pickle_with_their_fields():
    e = DecoderMissingError("/x.dcm", "no decoder", "1.2.840.10008.1.2.4.70")
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), str(back), back.transfer_syntax, back.path) == (
        DecoderMissingError, "/x.dcm: no decoder", "1.2.840.10008.1.2.4.70", "/x.dcm")
    assert str(pickle.loads(pickle.dumps(TruncatedDicomError("/y", "cut")))) == "/y: cut"


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_mammogram(tmp_path / "nope.dcm")


@pytest.mark.parametrize(("window", "shown"), [
    ((1500, 1e300), "single value 0.5"),  # the case: a constant image was accepted
    ((1500, 1e9), "within 3.8"),  # not constant, but less than one 16-bit grey level
    ((40000, 10), "single value 0"),  # a window far above every pixel value
    ((-1e300, 10), "single value 1"),
])
@pytest.mark.parametrize("voi", ["auto", "linear"])
def test_an_image_blank_after_the_window_is_refused(tmp_path, window, shown, voi):
    path, _ = write_mg(tmp_path / "wide.dcm", window=window)
    with pytest.raises(UnsupportedImageError, match="blank image after the VOI step") as raised:
        read_mammogram(path, voi=voi)
    message = str(raised.value)
    assert message.startswith(str(path)) and shown in message
    assert f"width {float(window[1])}" in message and f"center {float(window[0])}" in message


def test_a_wide_but_usable_window_is_still_read(tmp_path):
    path, _ = write_mg(tmp_path / "w.dcm", window=(1500, 1e6))  # 4095 stored values span 1/244 of it
    m = read_mammogram(path)
    assert m.voi == "window:LINEAR" and m.pixels.max() - m.pixels.min() > 2**-16


@pytest.mark.parametrize("voi", ["auto", "linear"])
def test_a_voi_lut_that_maps_every_pixel_to_one_value_is_refused(tmp_path, voi):
    # the LUT covers stored values 5000..5002; every pixel (0..4095) clamps to its first entry
    path, _ = write_mg(tmp_path / "flat.dcm", voi_lut=(5000, [0, 1000, 4095], 12))
    with pytest.raises(UnsupportedImageError, match=r"blank image after the VOI step: the VOI LUT "
                                                    r"\(LUTDescriptor \[3, 5000, 12\].* single value 0"):
        read_mammogram(path, voi=voi)
