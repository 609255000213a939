"""The synthetic mammogram writer: real DICOM, vendor styles, determinism, what the pixels carry."""

import hashlib
import re

import numpy as np
import pandas as pd
import pydicom
import pytest

from riskmodel.synthetic.mammogram import (
    DENSE_FRACTION,
    LESION_CONTRAST,
    VENDORS,
    lesion_geometry,
    lesion_mask,
    render_view,
    write_exams,
)

SIZE = (128, 104)


def _cohort(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"P{i:03d}" for i in range(n)],
        "exam_id": [f"X{i:03d}" for i in range(n)],
        "age": np.linspace(40, 74, n),
        "density": list("abcd" * n)[:n],
        "image_factor": np.linspace(-1.5, 1.5, n),
        "event": [1, 0] * (n // 2),
        "time": [0.8, 5.0] * (n // 2),
    })


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("exams")
    manifest = write_exams(_cohort(), out, image_size=SIZE, seed=7)
    return out, manifest


def test_four_views_per_woman_and_manifest(written):
    out, manifest = written
    assert len(manifest) == 32
    assert (manifest.groupby("exam_id").size() == 4).all()
    views = set(zip(manifest["laterality"], manifest["view"], strict=True))
    assert views == {("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")}
    on_disk = pd.read_csv(out / "manifest.csv")
    assert on_disk["path"].tolist() == manifest["path"].tolist()
    truth = pd.read_csv(out / "truth.csv", keep_default_na=False)
    assert "lesion_side" in truth.columns and "lesion_side" not in manifest.columns


def test_dicom_tags_real_files_carry(written):
    out, manifest = written
    for rec in manifest.itertuples():
        ds = pydicom.dcmread(out / rec.path)
        assert ds.Modality == "MG" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.PatientID == rec.id and ds.AccessionNumber == rec.exam_id
        assert ds.StudyInstanceUID == rec.study_uid and ds.SOPInstanceUID == rec.sop_uid
        assert 12 <= ds.BitsStored <= 16 and ds.PhotometricInterpretation in ("MONOCHROME1", "MONOCHROME2")
        assert ("WindowCenter" in ds) != ("VOILUTSequence" in ds)
        laterality = ds.get("ImageLaterality") or ds.get("Laterality")
        assert laterality == rec.laterality
        assert ds.ViewCodeSequence[0].CodeValue in ("R-10242", "R-10226", "R-10224")
        assert ds.PatientAge.endswith("Y") and len(ds.StudyDate) == 8 and ds.PixelSpacing[0] > 0
        pixels = ds.pixel_array
        assert pixels.shape == SIZE and pixels.max() < 2**ds.BitsStored


def test_every_vendor_style_and_compression(tmp_path):
    seen = {}
    for i, vendor in enumerate(VENDORS):
        manifest = write_exams(_cohort(2), tmp_path / vendor, image_size=SIZE, seed=i, vendors=(vendor,))
        ds = pydicom.dcmread(tmp_path / vendor / manifest["path"].iloc[1])
        seen[vendor] = (ds.Manufacturer, ds.file_meta.TransferSyntaxUID.name, ds.get("ViewPosition"))
    assert seen["ge"][1].startswith("JPEG 2000") and seen["fuji"][1] == "RLE Lossless"
    assert seen["siemens"][2] == "ML" and seen["fuji"][2] is None and seen["hologic"][2] == "MLO"
    assert len({m for m, _, _ in seen.values()}) == len(VENDORS)


def _digest(folder) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_for_a_seed(tmp_path):
    a = write_exams(_cohort(4), tmp_path / "a", image_size=SIZE, seed=3)
    b = write_exams(_cohort(4), tmp_path / "b", image_size=SIZE, seed=3)
    write_exams(_cohort(4), tmp_path / "c", image_size=SIZE, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_parallel_output_identical(tmp_path):
    write_exams(_cohort(8), tmp_path / "one", image_size=SIZE, seed=5, n_jobs=1)
    write_exams(_cohort(8), tmp_path / "two", image_size=SIZE, seed=5, n_jobs=2)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


def _breast_stats(img: np.ndarray) -> tuple[float, float]:
    """Mean brightness of the breast, and the SD of its fine (< ~7 px) band inside the breast."""
    from scipy.ndimage import uniform_filter

    inside = img > 0.05
    core = uniform_filter(inside.astype(float), 9) > 0.999
    band = img - uniform_filter(img, 7)
    return float(img[inside].mean()), float(band[core].std())


def _mean_stat(density: str, factor: float, which: int) -> float:
    imgs = (render_view(256, 208, "CC", density, factor, np.random.default_rng(s)) for s in range(6))
    return float(np.mean([_breast_stats(img)[which] for img in imgs]))


def test_density_raises_brightness_and_image_factor_raises_fine_texture():
    means = [_mean_stat(d, 0.0, 0) for d in DENSE_FRACTION]
    assert means == sorted(means) and means[0] < means[-1] - 0.1
    texture = [_mean_stat("c", f, 1) for f in (-2.0, 0.0, 2.0)]
    assert texture[0] < texture[1] < texture[2] and texture[2] > 1.3 * texture[0]


def test_canonical_frame():
    img = render_view(256, 208, "MLO", "b", 0.0, np.random.default_rng(0))
    assert img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
    assert img[:, :20].mean() > 3 * img[:, -20:].mean()  # chest wall at column 0, background far side
    assert img[-5:, -40:].mean() < 0.05


def test_lesion_only_for_early_cancers(written):
    out, _ = written
    truth = pd.read_csv(out / "truth.csv", keep_default_na=False).set_index("exam_id")
    cohort = _cohort().set_index("exam_id")
    early = (cohort["event"] == 1) & (cohort["time"] <= 2.0)
    assert (truth.loc[early.index[early], "lesion_side"].isin(["L", "R"])).all()
    assert (truth.loc[early.index[~early], "lesion_side"] == "").all()


def test_lesion_is_faint_but_present():
    base = render_view(256, 208, "CC", "a", 0.0, np.random.default_rng(1))
    with_lesion = render_view(256, 208, "CC", "a", 0.0, np.random.default_rng(1), lesion=(0.5, 0.5))
    diff = with_lesion - base
    assert 0.05 < diff.max() < 0.2 and (np.abs(diff) > 0.01).mean() < 0.05


def test_lesion_contrast_scales_the_mass_and_nothing_else():
    h, w, where = 128, 104, (0.5, 0.5)
    faint = render_view(h, w, "CC", "c", 0.5, np.random.default_rng(3), lesion=where)
    bright = render_view(h, w, "CC", "c", 0.5, np.random.default_rng(3), lesion=where, lesion_contrast=0.45)
    cy, cx, sigma = lesion_geometry(h, w, where)
    rows, cols = np.mgrid[:h, :w]
    gauss = np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))
    diff = bright.astype(np.float64) - faint
    unclipped = bright < 1.0
    np.testing.assert_allclose(diff[unclipped], (0.45 - 0.14) * gauss[unclipped], atol=2e-6)
    disc = lesion_mask((h, w), cy, cx, 2.0 * sigma)  # the lesions.csv radius (2 sigma)
    assert diff[disc].mean() > 0.1 and diff[~disc].max() <= (0.45 - 0.14) * np.exp(-2.0) + 1e-6
    assert np.abs(diff[gauss < 1e-9]).max() < 1e-7  # far from the mass: the same pixels (float32 rounding)


def test_default_lesion_contrast_renders_the_same_pixels_as_before():
    assert LESION_CONTRAST == 0.14
    default = render_view(128, 104, "CC", "c", 0.5, np.random.default_rng(3), lesion=(0.5, 0.5))
    explicit = render_view(128, 104, "CC", "c", 0.5, np.random.default_rng(3), lesion=(0.5, 0.5),
                           lesion_contrast=0.14)
    assert np.array_equal(default, explicit)
    # Pinned from the generator before lesion_contrast existed (commit 864e216): pixel sum and the mass's centre.
    assert float(default.astype(np.float64).sum()) == pytest.approx(2394.23605876438, abs=1e-3)
    assert float(default[64, 31]) == pytest.approx(0.78354037, abs=1e-6)


def test_write_exams_lesion_contrast_changes_only_the_lesion_side(tmp_path, written):
    out, _ = written
    write_exams(_cohort(), tmp_path / "bright", image_size=SIZE, seed=7, lesion_contrast=0.45)
    write_exams(_cohort(), tmp_path / "default", image_size=SIZE, seed=7, lesion_contrast=LESION_CONTRAST)
    assert _digest(tmp_path / "default") == _digest(out)  # the default is 0.14, byte for byte
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "bright" / "lesions.csv"), pd.read_csv(out / "lesions.csv"))
    lesions = pd.read_csv(out / "lesions.csv")
    assert len(lesions) > 0
    changed = {p for p, d in _digest(tmp_path / "bright").items() if p.endswith(".dcm") and _digest(out)[p] != d}
    assert changed == set(lesions["path"])  # exactly the views showing a mass; controls and the other side as before
    for rec in lesions.itertuples():
        a = pydicom.dcmread(out / rec.path).pixel_array.astype(float)
        b = pydicom.dcmread(tmp_path / "bright" / rec.path).pixel_array.astype(float)
        disc = lesion_mask(a.shape, rec.row, rec.col, rec.radius)
        far = ~lesion_mask(a.shape, rec.row, rec.col, 3 * rec.radius)
        assert np.abs(b - a)[disc].mean() > 10 * max(np.abs(b - a)[far].max(), 1.0)


def test_lesion_scale_widens_the_mass_and_lesions_csv_follows(tmp_path, written):
    out, _ = written
    write_exams(_cohort(), tmp_path / "wide", image_size=SIZE, seed=7, lesion_scale=2.0)
    base, wide = pd.read_csv(out / "lesions.csv"), pd.read_csv(tmp_path / "wide" / "lesions.csv")
    np.testing.assert_allclose(wide["sigma"], 2.0 * base["sigma"])
    np.testing.assert_allclose(wide["radius"], 2.0 * wide["sigma"])  # LESION_RADIUS_SIGMAS
    pd.testing.assert_frame_equal(wide[["exam_id", "path", "row", "col"]], base[["exam_id", "path", "row", "col"]])
    h, w = SIZE
    plain = render_view(h, w, "CC", "a", 0.0, np.random.default_rng(2))
    drawn = render_view(h, w, "CC", "a", 0.0, np.random.default_rng(2), lesion=(0.5, 0.5), lesion_scale=2.0)
    cy, cx, sigma = lesion_geometry(h, w, (0.5, 0.5), 2.0)
    diff = drawn.astype(np.float64) - plain
    assert sigma == pytest.approx(2 * 0.022 * w)
    ring = lesion_mask((h, w), cy, cx, 2 * sigma) & ~lesion_mask((h, w), cy, cx, sigma)
    assert diff[ring].mean() > 0.14 * np.exp(-2.0)  # between 1 and 2 new sigmas the mass still adds > its 2-sigma value
    assert diff[~lesion_mask((h, w), cy, cx, 2 * sigma)].max() <= 0.14 * np.exp(-2.0) + 1e-6


@pytest.mark.parametrize("scale", [0.0, 0.1, 6.0, float("nan")])
def test_bad_lesion_scale(tmp_path, scale):
    with pytest.raises(ValueError, match="lesion_scale"):
        write_exams(_cohort(2), tmp_path, image_size=SIZE, lesion_scale=scale)


@pytest.mark.parametrize("contrast", [0.0, -0.1, 1.5, float("nan")])
def test_bad_lesion_contrast(tmp_path, contrast):
    with pytest.raises(ValueError, match="lesion_contrast"):
        write_exams(_cohort(2), tmp_path, image_size=SIZE, lesion_contrast=contrast)


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"image_size": (32, 32)}, "image_size"),
    ({"image_size": (4096, 3328)}, "image_size"),
    ({"vendors": ("agfa",)}, "vendors"),
])
def test_bad_arguments(tmp_path, kwargs, text):
    with pytest.raises(ValueError, match=text):
        write_exams(_cohort(2), tmp_path, **kwargs)


def test_bad_cohort(tmp_path):
    with pytest.raises(ValueError, match="density"):
        write_exams(_cohort(2).assign(density=["a", "e"]), tmp_path, image_size=SIZE)
    with pytest.raises(ValueError, match="exam_id"):
        write_exams(_cohort(2).drop(columns="exam_id"), tmp_path, image_size=SIZE)


@pytest.mark.parametrize(("column", "value"), [("id", "../../escaped"), ("id", "/tmp/abs"), ("exam_id", "a/b"),
                                               ("exam_id", ".."), ("id", ".hidden"), ("exam_id", "")])
def test_ids_that_are_not_safe_file_names_are_refused(tmp_path, column, value):
    cohort = _cohort(2)
    cohort.loc[cohort.index[1], column] = value
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(ValueError, match=rf"{column}: row 1 has {re.escape(repr(value))}, which cannot name a file"):
        write_exams(cohort, out, image_size=SIZE)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written, inside or outside out
