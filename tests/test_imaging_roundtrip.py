"""Round trip: synthetic exams → DICOM (every vendor style) → reader, scan, assemble, Dataset."""

import numpy as np
import pandas as pd
import pytest

from riskmodel.imaging import VIEW_ORDER, ExamDataset, assemble_exams, read_mammogram, scan_dicoms
from riskmodel.synthetic import make_cohort, write_exams
from riskmodel.synthetic.mammogram import VENDORS, _options, render_woman

SIZE = (160, 128)


@pytest.fixture(scope="module")
def exams(tmp_path_factory):
    """Three women per vendor style, written separately so every style is covered."""
    root = tmp_path_factory.mktemp("roundtrip")
    cohort = make_cohort(3 * len(VENDORS), seed=11)
    parts = []
    for i, vendor in enumerate(VENDORS):
        women = cohort.iloc[3 * i : 3 * i + 3]
        m = write_exams(women, root / vendor, image_size=SIZE, seed=11, vendors=(vendor,))
        parts.append(m.assign(path=[str(root / vendor / p) for p in m["path"]], seed_row=np.repeat(range(3), 4)))
    return root, cohort, pd.concat(parts, ignore_index=True)


def _canonical(cohort: pd.DataFrame, vendor: str, i: int, row: int) -> dict:
    women = cohort.iloc[3 * i : 3 * i + 3].reset_index(drop=True)
    rec = women.assign(_index=np.arange(len(women))).to_dict("records")[row]
    views = render_woman(rec, SIZE, 11, _options((vendor,), 0.25, True, 2.0))
    return {(v.side, v.view): v.canonical for v in views}


@pytest.mark.parametrize("vendor", list(VENDORS))
def test_reader_recovers_the_canonical_image(exams, vendor):
    _, cohort, manifest = exams
    i = list(VENDORS).index(vendor)
    rows = manifest[manifest["vendor"] == vendor]
    assert len(rows) == 12
    for rec in rows.itertuples():
        img = read_mammogram(rec.path)
        assert img.laterality == rec.laterality
        assert img.view_family == rec.view
        assert img.flipped == bool(rec.stored_chest_wall_right)
        assert img.pixels.dtype == np.float32 and img.pixels.shape == SIZE
        assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0
        truth = _canonical(cohort, vendor, i, rec.seed_row)[(rec.laterality, rec.view)]
        # Same orientation and a monotone intensity mapping inside the breast (GE's VOI LUT is a curve).
        inside = truth > 0.1
        ranks = [np.argsort(np.argsort(a[inside])) for a in (img.pixels, truth)]
        assert np.corrcoef(*ranks)[0, 1] > 0.999
        if VENDORS[vendor].voi == "window":
            assert np.abs(img.pixels - truth).max() < 2e-3  # linear window: exact up to quantisation


def test_scan_and_assemble_give_complete_exams(exams):
    root, cohort, manifest = exams
    (root / "notes.txt").write_text("not a dicom")
    scanned = scan_dicoms(root)
    assert len(scanned) == len(manifest) + 1 + len(VENDORS) * 3  # + notes.txt + manifest/truth/lesions.csv per vendor
    dicoms = scanned[scanned["status"] == "ok"]
    assert len(dicoms) == len(manifest)
    assert set(scanned.loc[scanned["status"] != "ok", "status"]) == {"NotDicomError"}
    assembled = assemble_exams(scanned)
    assert len(assembled) == len(cohort)
    assert (assembled["n_views"] == 4).all()
    assert (assembled["flags"].fillna("") == "").all(), assembled["flags"].tolist()
    assert set(assembled["accession_number"]) == set(cohort["exam_id"])


def test_dataset_over_synthetic_exams(exams, tmp_path):
    root, _, _ = exams
    assembled = assemble_exams(scan_dicoms(root))
    ds = ExamDataset(assembled, image_size=(96, 80), cache_dir=tmp_path / "cache")
    item = ds[0]
    assert item["images"].shape == (4, 1, 96, 80) and item["mask"].all() and item["errors"] == ""
    for k in range(len(VIEW_ORDER)):
        view = item["images"][k, 0].numpy()
        assert view[:, :10].mean() > view[:, -10:].mean()  # chest wall at column 0 for every view


def test_corrupt_file_masks_only_its_view(exams, tmp_path):
    root, _, _ = exams
    assembled = assemble_exams(scan_dicoms(root)).reset_index(drop=True)
    victim = assembled.loc[0, "R-MLO"]
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(open(victim, "rb").read()[:5000])
    assembled.loc[0, "R-MLO"] = str(broken)
    ds = ExamDataset(assembled, image_size=(64, 52))
    first, second = ds[0], ds[1]
    assert first["mask"].tolist() == [True, True, True, False]
    assert "R-MLO" in first["errors"] and float(first["images"][3].abs().sum()) == 0.0
    assert second["mask"].all()
