"""Mirai's preprocessing presets (riskmodel.imaging.mirai_preprocess): shapes, vendor styles, MONOCHROME1,
align-to-left, hostile input, and the "dcmtk" preset against Debian's dcmj2pnm with Mirai's arguments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import require_executable
from imaging_fixtures import phantom, write_mg

from riskmodel.imaging.errors import MetadataError, NotDicomError, PixelBudgetError, UnsupportedImageError
from riskmodel.imaging.mirai_preprocess import (
    MIRAI_MEAN,
    MIRAI_PRESETS,
    MIRAI_STD,
    align_to_left,
    dcmj2pnm_reference,
    mirai_dcmj2pnm_args,
    mirai_image16,
    preprocess_view,
)
from riskmodel.synthetic.mammogram import VENDORS, write_exams

SMALL = (64, 52)


@pytest.fixture(scope="module")
def vendor_files(tmp_path_factory) -> dict[str, list]:
    """Four views per synthetic vendor style, 96 × 80."""
    root = tmp_path_factory.mktemp("mirai_vendors")
    out = {}
    for vendor in VENDORS:
        cohort = pd.DataFrame({"id": [vendor], "exam_id": [f"{vendor}1"], "age": [55], "density": ["c"]})
        manifest = write_exams(cohort, root, image_size=(96, 80), vendors=(vendor,))
        out[vendor] = [root / p for p in manifest["path"]]
    return out


@pytest.fixture(scope="module")
def special_files(tmp_path_factory) -> dict:
    """Files for the branches the generator does not write: C-View, SIGMOID, rescale + MONOCHROME1, GE 12-bit LUT."""
    root = tmp_path_factory.mktemp("mirai_special")
    d = phantom(96, 80, seed=1, noise=0.02)
    lut = list(np.rint(np.linspace(0, 4095, 4096) ** 1.1 / 4095**0.1).astype(int))
    cases = {
        "cview": dict(voi_lut=(0, lut, 12), extra={"SeriesDescription": "L CC C-View"}),
        "sigmoid_m1": dict(window=(2000, 3000), voi_function="SIGMOID", photometric="MONOCHROME1"),
        "sigmoid": dict(window=(2000, 3000), voi_function="SIGMOID"),
        "rescale_m1": dict(photometric="MONOCHROME1", rescale=(1.5, -100.0)),
        "rescale_negative": dict(rescale=(0.37, -900.0)),
        "ge_12bit_m1": dict(voi_lut=(0, lut, 12), manufacturer="GE MEDICAL SYSTEMS", photometric="MONOCHROME1"),
    }
    return {k: write_mg(root / f"{k}.dcm", d, **kw)[0] for k, kw in cases.items()}


@pytest.mark.parametrize("preset", sorted(MIRAI_PRESETS))
def test_every_vendor_style_gives_mirai_tensors(vendor_files, preset):
    for vendor, paths in vendor_files.items():
        seen = set()
        for path in paths:
            v = preprocess_view(path, preset=preset, size=SMALL)
            assert v.tensor.shape == (3, *SMALL) and v.tensor.dtype == np.float32, vendor
            assert np.array_equal(v.tensor[0], v.tensor[1]) and np.array_equal(v.tensor[0], v.tensor[2])
            raw = v.tensor[0].astype(np.float64) * MIRAI_STD + MIRAI_MEAN  # back on the 16-bit scale
            assert raw.min() > -0.5 and raw.max() < 65535.5, vendor
            assert np.allclose(raw, np.rint(raw), atol=0.02), vendor  # resized values are integers, as in Pillow 'I'
            seen.add((v.laterality, v.view))
        assert seen == {("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")}, vendor


def test_default_size_is_mirai_input(vendor_files):
    v = preprocess_view(vendor_files["hologic"][0].read_bytes())
    assert v.tensor.shape == (3, 2048, 1664) and v.path == "<bytes>"


def test_pydicom_preset_inverts_monochrome1_and_says_so(tmp_path):
    d = phantom(96, 80, seed=3, noise=0.01)
    m1, _ = write_mg(tmp_path / "m1.dcm", d, photometric="MONOCHROME1")
    m2, _ = write_mg(tmp_path / "m2.dcm", d, photometric="MONOCHROME2")
    a, _, notes = mirai_image16(m1, "pydicom")
    b, _, _ = mirai_image16(m2, "pydicom")
    # Stored M1 = top - M2: after the min-max window and the inversion the two differ by truncation only.
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert any("MONOCHROME1 inverted" in n for n in notes)
    assert int(a[0, -1]) < 100 and int(a[48, 0]) > 30000  # background dark, chest wall bright


def test_right_view_stored_mirrored_is_aligned_like_the_left(tmp_path):
    d = phantom(96, 80, seed=4)
    left, _ = write_mg(tmp_path / "l.dcm", d, laterality="L")  # chest wall at column 0
    right, _ = write_mg(tmp_path / "r.dcm", d, laterality="R")  # stored mirrored: chest wall at the last column
    for preset in MIRAI_PRESETS:
        vl, vr = preprocess_view(left, preset, size=SMALL), preprocess_view(right, preset, size=SMALL)
        assert (vl.laterality, vr.laterality) == ("L", "R")
        assert vl.flipped and not vr.flipped  # Mirai puts the breast on the right, nipple pointing left
        # Mirrored inputs give the same aligned tensor, up to Pillow's resampling grid (a few 16-bit levels).
        assert np.abs(vl.tensor - vr.tensor).max() * MIRAI_STD <= 4
        half = SMALL[1] // 2
        assert vl.tensor[0][:, half:].sum() > vl.tensor[0][:, :half].sum()


def test_align_to_left_uses_quarters_and_keeps_ties():
    image = np.zeros((4, 1664), np.int32)
    image[:, 415] = 5  # inside the left 416 columns
    assert align_to_left(image)[1]
    image[:, 1248] = 5  # the right quarter starts at column 1248 = 3 * 1664 // 4: a tie
    assert not align_to_left(image)[1]
    image[:, 1247] = 50  # outside both quarters: ignored
    assert not align_to_left(image)[1]


def test_ge_lut_pydicom_path_scales_by_bits(special_files):
    image, decoded, notes = mirai_image16(special_files["ge_12bit_m1"], "pydicom")
    table = np.asarray(decoded.dataset.VOILUTSequence[0].LUTData
                       if not isinstance(decoded.dataset.VOILUTSequence[0].LUTData, bytes)
                       else np.frombuffer(decoded.dataset.VOILUTSequence[0].LUTData, "<u2"), dtype=np.int64)
    expected = 65535 - table[np.clip(decoded.stored.astype(np.int64), 0, table.size - 1)] * 16
    assert np.array_equal(image.astype(np.int64), expected)
    assert any("× 2**4" in n for n in notes)


def test_mirai_branch_arguments(special_files, vendor_files):
    import pydicom

    assert mirai_dcmj2pnm_args(pydicom.dcmread(special_files["cview"])) == [
        "+on2", "--grayscale", "+Ww", "540", "580"]
    assert mirai_dcmj2pnm_args(pydicom.dcmread(vendor_files["ge"][0])) == ["+on2", "--use-voi-lut", "1", "--grayscale"]
    assert mirai_dcmj2pnm_args(pydicom.dcmread(vendor_files["hologic"][0])) == [
        "+on2", "--min-max-window", "--grayscale"]


def test_hostile_and_unusable_input_raise_the_library_errors(tmp_path):
    with pytest.raises(NotDicomError, match="<bytes>"):
        preprocess_view(b"not a dicom file at all" * 10)
    big, _ = write_mg(tmp_path / "big.dcm", phantom(96, 80))
    with pytest.raises(PixelBudgetError):
        preprocess_view(big, pixel_budget=1000)  # 96 × 80 × 2 bytes declared: refused before decoding
    spot, _ = write_mg(tmp_path / "xccl.dcm", phantom(96, 80), view="XCCL")
    with pytest.raises(MetadataError, match="Mirai takes only CC and MLO"):
        preprocess_view(spot, size=SMALL)
    flat, _ = write_mg(tmp_path / "flat.dcm", stored=np.full((96, 80), 700, np.uint16))
    for preset in MIRAI_PRESETS:
        with pytest.raises(UnsupportedImageError, match="blank image"):
            preprocess_view(flat, preset, size=SMALL)
    with pytest.raises(ValueError, match="preset must be one of"):
        preprocess_view(big, preset="dcmj2pnm")
    with pytest.raises(ValueError, match="size"):
        preprocess_view(big, size=(0, 10))


def test_ml_view_counts_as_mlo(tmp_path):
    path, _ = write_mg(tmp_path / "ml.dcm", phantom(96, 80), view="ML")
    v = preprocess_view(path, size=SMALL)
    assert v.view == "MLO" and any("ML view" in n for n in v.notes)


def test_dcmtk_preset_equals_dcmj2pnm(vendor_files, special_files, tmp_path):
    """The 16-bit image before resizing equals dcmj2pnm's with Mirai's arguments, pixel for pixel, on every
    synthetic vendor style and on the C-View, SIGMOID, rescale and GE 12-bit LUT branches."""
    require_executable("dcmj2pnm")
    files = [p for paths in vendor_files.values() for p in paths[:2]] + list(special_files.values())
    for path in files:
        ours, _, _ = mirai_image16(path, "dcmtk")
        ref, command = dcmj2pnm_reference(path, tmp_path)
        assert ref.shape == ours.shape
        assert np.array_equal(ref, ours), (path.name, command, int(np.abs(ref.astype(int) - ours).max()))
