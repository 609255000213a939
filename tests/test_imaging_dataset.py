"""ExamDataset: shapes, mask, resize rule, per-view error isolation and the on-disk cache."""

import errno

import numpy as np
import pandas as pd
import pytest
import torch
from imaging_fixtures import write_exam, write_mg

from riskmodel.imaging import VIEW_ORDER, ExamDataset, assemble_exams, read_mammogram, scan_dicoms
from riskmodel.imaging.dataset import fit_to_size
from riskmodel.imaging.dicom import pixels as dicom_module

SIZE = (32, 24)


@pytest.fixture
def exams(tmp_path):
    """Exam P001 complete; exam P002 without R-MLO and with a truncated L-CC."""
    write_exam(tmp_path / "data", patient_id="P001", study_uid="1.2.1")
    b = write_exam(tmp_path / "data", patient_id="P002", study_uid="1.2.2", views=("L-CC", "L-MLO", "R-CC"),
                   accession="ACC002")
    return assemble_exams(scan_dicoms(tmp_path / "data")), b


@pytest.fixture
def counted(monkeypatch):
    """Count read_mammogram calls made by the dataset."""
    calls = []
    real = dicom_module.read_mammogram

    def spy(path, **kw):
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(dicom_module, "read_mammogram", spy)
    return calls


def test_item_shapes_and_mask(exams):
    table, _ = exams
    ds = ExamDataset(table, image_size=SIZE)
    assert len(ds) == 2
    item = ds[0]
    assert item["images"].shape == (4, 1, 32, 24) and item["images"].dtype == torch.float32
    assert item["mask"].dtype == torch.bool and item["mask"].tolist() == [True] * 4
    assert item["exam_id"] == "ACC001" and item["errors"] == ""  # the exams table's exam_id (its accession number)
    second = ds[1]
    assert second["mask"].tolist() == [True, True, True, False]
    assert second["images"][3].abs().sum() == 0
    # each view is exactly the canonical image, resized by the documented rule
    for i, slot in enumerate(VIEW_ORDER):
        expected = fit_to_size(read_mammogram(table.loc[0, slot]).pixels, SIZE)
        assert torch.equal(item["images"][i, 0], torch.from_numpy(expected))


def test_fit_to_size_keeps_aspect_and_pads_away_from_chest_wall():
    img = np.zeros((48, 64), np.float32)
    img[:, :20] = 1.0  # tissue against the chest wall
    out = fit_to_size(img, (32, 24))  # scale = min(32/48, 24/64) = 0.375 → 18 × 24
    assert out.shape == (32, 24) and out.dtype == np.float32
    rows = np.flatnonzero(out.sum(axis=1))
    assert rows.tolist() == list(range(7, 25))  # 18 rows, centred: (32 - 18) // 2 = 7
    assert out[7:25, 0].min() > 0.99  # chest wall still at column 0
    assert out[:, 10:].max() < 1e-6
    wide = fit_to_size(img, (96, 200))  # scale = min(2, 3.125) = 2 → 96 × 128, padded on the right
    assert np.flatnonzero(wide.sum(axis=0)).max() < 128 and wide[:, 128:].max() == 0
    assert np.allclose(wide[:, :38], 1.0) and wide[0, 50] == 0.0
    same = fit_to_size(img, (48, 64))
    assert np.array_equal(same, img)
    assert 0.0 <= fit_to_size(np.random.default_rng(0).random((100, 80)), (13, 11)).min()


def test_downscaling_is_antialiased():
    # White noise averaged over 32 × 32 blocks has std ≈ 0.29 / 32; plain bilinear would
    # average only 2 × 2 pixels (std ≈ 0.14).
    noise = np.random.default_rng(0).random((256, 256)).astype(np.float32)
    out = fit_to_size(noise, (8, 8))
    assert abs(out.mean() - 0.5) < 0.02 and out.std() < 0.03


def test_a_corrupt_view_only_masks_itself(exams):
    table, b = exams
    data = b["L-CC"].read_bytes()
    b["L-CC"].write_bytes(data[:-700])
    item = ExamDataset(table, image_size=SIZE)[1]
    assert item["mask"].tolist() == [False, True, True, False]
    assert item["images"][0].abs().sum() == 0 and item["images"][1].abs().sum() > 0
    assert item["errors"].startswith("L-CC: TruncatedDicomError: ")
    assert str(b["L-CC"]) in item["errors"]


def test_a_file_in_the_wrong_slot_is_rejected(exams):
    table, _ = exams
    swapped = table.copy()
    swapped.loc[0, "L-CC"], swapped.loc[0, "R-CC"] = table.loc[0, "R-CC"], table.loc[0, "L-CC"]
    item = ExamDataset(swapped, image_size=SIZE)[0]
    assert item["mask"].tolist() == [False, True, False, True]
    assert "L-CC: MetadataError" in item["errors"] and "is a R-CC image, not a L-CC view" in item["errors"]


def test_second_epoch_reads_only_the_cache(exams, tmp_path, counted):
    table, b = exams
    b["L-MLO"].write_bytes(b"garbage")  # a bad view: its error is cached too
    cache = tmp_path / "cache"
    ds = ExamDataset(table, image_size=SIZE, cache_dir=cache)
    first = [ds[i] for i in range(len(ds))]
    assert len(counted) == 7  # 4 + 3 present views
    second = [ds[i] for i in range(len(ds))]
    assert len(counted) == 7  # no DICOM read at all
    for x, y in zip(first, second, strict=False):
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["mask"], y["mask"])
        assert x["errors"] == y["errors"]
    assert second[1]["mask"].tolist() == [True, False, True, False]
    assert "NotDicomError" in second[1]["errors"]
    # a fresh dataset over the same cache does not read either
    ExamDataset(table, image_size=SIZE, cache_dir=cache)[0]
    assert len(counted) == 7
    npys = sorted(cache.rglob("*.npy"))
    assert len(npys) == 6 and len(list(cache.rglob("*.err"))) == 1
    assert not list(cache.rglob("*.tmp"))
    arr = np.load(npys[0], allow_pickle=False)
    assert arr.shape == SIZE and arr.dtype == np.float32


def test_cache_key_follows_file_and_size(exams, tmp_path, counted):
    table, b = exams
    cache = tmp_path / "cache"
    ExamDataset(table, image_size=SIZE, cache_dir=cache)[1]
    assert len(counted) == 3
    write_mg(b["R-CC"], laterality="R", view="CC", patient_id="P002", study_uid="1.2.2", stored_flipped=False)
    import os

    st = os.stat(b["R-CC"])
    os.utime(b["R-CC"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    item = ExamDataset(table, image_size=SIZE, cache_dir=cache)[1]
    assert counted[3:] == [str(b["R-CC"])]  # only the changed file is read again
    assert item["mask"][2]
    ExamDataset(table, image_size=(16, 16), cache_dir=cache)[1]
    assert len(counted) == 7  # another image size: another key
    ExamDataset(table, image_size=(16, 16), cache_dir=cache, voi="linear")[1]
    assert len(counted) == 10  # another VOI mode: another key


def test_linear_voi_mode_reaches_the_reader(tmp_path):
    x = np.linspace(-3, 3, 2048)
    table_lut = np.rint(4095 * (np.tanh(x) + 1) / 2).astype(int).tolist()
    path, _ = write_mg(tmp_path / "lut.dcm", voi_lut=(1000, table_lut, 12))
    table = pd.DataFrame({"exam_id": ["E1"], "L-CC": [str(path)], "L-MLO": [None], "R-CC": [None], "R-MLO": [None]})
    curved = ExamDataset(table, image_size=SIZE)[0]["images"][0, 0].numpy()
    linear = ExamDataset(table, image_size=SIZE, voi="linear")[0]["images"][0, 0].numpy()
    np.testing.assert_allclose(linear, fit_to_size(read_mammogram(path, voi="linear").pixels, SIZE))
    assert np.abs(curved - linear).max() > 0.05
    with pytest.raises(ValueError, match="voi must be one of"):
        ExamDataset(table, voi="LINEAR")


def test_damaged_cache_entry_is_recomputed(exams, tmp_path, counted):
    table, _ = exams
    cache = tmp_path / "cache"
    ref = ExamDataset(table, image_size=SIZE, cache_dir=cache)[0]
    for npy in cache.rglob("*.npy"):
        npy.write_bytes(npy.read_bytes()[:50])
    again = ExamDataset(table, image_size=SIZE, cache_dir=cache)[0]
    assert torch.equal(ref["images"], again["images"])
    assert len(counted) == 8


def test_dataloader_collates(exams):
    table, _ = exams
    loader = torch.utils.data.DataLoader(ExamDataset(table, image_size=SIZE), batch_size=2)
    batch = next(iter(loader))
    assert batch["images"].shape == (2, 4, 1, 32, 24)
    assert batch["mask"].shape == (2, 4)
    assert batch["exam_id"] == ["ACC001", "ACC002"]


def test_missing_paths_in_every_form(tmp_path):
    table = pd.DataFrame({"exam_id": ["e"], "L-CC": [np.nan], "L-MLO": [None], "R-CC": [""], "R-MLO": [float("nan")]})
    item = ExamDataset(table, image_size=SIZE)[0]
    assert not item["mask"].any() and item["errors"] == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="R-MLO"):
        ExamDataset(pd.DataFrame({"exam_id": [], "L-CC": [], "L-MLO": [], "R-CC": []}))
    table = pd.DataFrame(columns=["exam_id", *VIEW_ORDER])
    with pytest.raises(ValueError, match="image_size"):
        ExamDataset(table, image_size=(0, 10))


def test_import_does_not_load_torch_or_pydicom():
    import subprocess
    import sys

    code = ("import sys, riskmodel; before = {m: m in sys.modules for m in ('torch', 'pydicom')}; "
            "import riskmodel.imaging; print(*[before[m] or m not in sys.modules for m in ('torch', 'pydicom')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_a_vanished_file_is_masked_and_not_cached(exams, tmp_path):
    table, b = exams
    b["R-CC"].unlink()
    cache = tmp_path / "cache"
    item = ExamDataset(table, image_size=SIZE, cache_dir=cache)[1]
    assert item["mask"].tolist() == [True, True, False, False]
    assert item["errors"].startswith("R-CC: FileNotFoundError")
    assert not list(cache.rglob("*.err"))


@pytest.mark.parametrize("error", [MemoryError("out of memory"), OSError(errno.ENOMEM, "Cannot allocate memory"),
                                   OSError(errno.EMFILE, "Too many open files")], ids=repr)
def test_a_transient_resource_error_propagates_and_is_not_cached(exams, tmp_path, monkeypatch, error):
    """A resource error inside the reader is not the file's fault: it reaches the caller unchanged
    (not wrapped in a DicomError, not cached as ``.err``), and a retry reads the file."""
    table, _ = exams
    real = dicom_module._to_unit_range
    failures = [error]

    def flaky(*args, **kw):  # fails once, inside read_mammogram (where a real MemoryError happens)
        if failures:
            raise failures.pop()
        return real(*args, **kw)

    monkeypatch.setattr(dicom_module, "_to_unit_range", flaky)
    cache = tmp_path / "cache"
    ds = ExamDataset(table, image_size=SIZE, cache_dir=cache)
    with pytest.raises(type(error)) as raised:
        ds[0]
    assert raised.value is error
    assert not list(cache.rglob("*.err"))
    item = ds[0]  # the retry succeeds
    assert item["mask"].tolist() == [True] * 4 and item["errors"] == ""
    assert not list(cache.rglob("*.err")) and len(list(cache.rglob("*.npy"))) == 4


def test_a_file_fault_is_still_cached_after_the_resource_rule(exams, tmp_path, monkeypatch):
    """The other side of the rule: a DicomError raised at the same place is cached once."""
    table, _ = exams

    def broken(*args, **kw):
        raise ValueError("bad LUT")

    monkeypatch.setattr(dicom_module, "_to_unit_range", broken)
    cache = tmp_path / "cache"
    item = ExamDataset(table, image_size=SIZE, cache_dir=cache)[0]
    assert item["mask"].tolist() == [False] * 4 and "DicomReadError" in item["errors"] and "bad LUT" in item["errors"]
    assert len(list(cache.rglob("*.err"))) == 4


def test_a_view_blank_after_its_window_is_masked_and_cached_as_bad(exams, tmp_path):
    """Issue 17 item 6 through the dataset: the constant image a 1e300-wide window gives was an
    ok view; now it is a refused one (PREPROCESSING_VERSION is 2, so no cache entry written before
    still holds it as an image)."""
    table, _ = exams
    path = table.loc[0, "L-CC"]
    write_mg(path, window=(1500, 1e300), laterality="L", view="CC", patient_id="P001", study_uid="1.2.1")
    cache = tmp_path / "cache"
    item = ExamDataset(table, image_size=SIZE, cache_dir=cache)[0]
    assert item["mask"].tolist() == [False, True, True, True]
    assert item["errors"].startswith("L-CC: UnsupportedImageError") and "width 1e+300" in item["errors"]
    assert len(list(cache.rglob("*.err"))) == 1
