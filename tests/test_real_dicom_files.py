"""read_mammogram and scan_dicoms on real DICOM files written by others: every file pydicom's wheel
ships, as it is and relabelled as a left CC mammogram (so that its pixel encoding reaches the
decoders and the VOI step). Each outcome must be an image or a DicomError naming the file and a
rule; no other exception (``benchmarks/real_dicom_files.py`` holds the classification and also
covers ``pydicom-data`` when installed)."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[1] / "benchmarks" / "real_dicom_files.py"


@pytest.fixture(scope="module")
def survey_module():
    spec = importlib.util.spec_from_file_location("real_dicom_files", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_ships_files_and_nothing_is_downloaded(survey_module):
    import pydicom.data

    files = survey_module.wheel_files()
    assert len(files) > 100  # pydicom 3.0 ships about 180
    inside = Path(pydicom.data.__file__).parent / "test_files"
    assert all(inside in p.parents for p in files)


@pytest.mark.parametrize("relabel", [False, True], ids=["as shipped", "relabelled as MG"])
def test_no_unclear_exception_on_pydicom_files(survey_module, tmp_path, relabel):
    files = survey_module.wheel_files()
    if relabel:
        files = [c for c in (survey_module.as_mammogram(p, tmp_path) for p in files) if c is not None]
        assert len(files) > 50  # the files with pixel data
    rows = survey_module.survey(files, "pydicom wheel", memory=False)
    counts = survey_module.summary(rows)
    unclear = [(r["path"], r["read_class"], r["message"], r.get("scan_message")) for r in rows
               if "unclear" in (r["read"], r["scan"])]
    assert unclear == [], unclear
    assert counts["read_mammogram"]["unclear"] == counts["scan_dicoms"]["unclear"] == 0
    assert counts["read_ok_but_scan_refused"] == 0  # scan never refuses a file the reader reads
    if relabel:  # real pixel encodings are decoded, not all refused
        assert counts["read_mammogram"]["read"] > 20
        assert {"UnsupportedImageError"} <= set(counts["read_refusals"])  # colour, multi-frame
    else:
        assert counts["read_mammogram"]["read"] == 0  # none is a mammogram
        assert counts["read_refusals"]["NotMammogramError"] > 100


def test_the_classification_calls_a_bare_exception_unclear(survey_module, tmp_path, monkeypatch):
    """The check can fail: an exception that is not a DicomError is counted as unclear."""
    import riskmodel.imaging.dicom as dicom_module

    files = [c for c in (survey_module.as_mammogram(p, tmp_path) for p in survey_module.wheel_files()[:40])
             if c is not None]

    def broken(*args, **kw):
        raise IndexError("list index out of range")

    monkeypatch.setattr(dicom_module, "read_mammogram", broken)
    monkeypatch.setattr("riskmodel.imaging.read_mammogram", broken)
    rows = survey_module.survey(files, "test", memory=False)
    assert rows and all(r["read"] == "unclear" and r["read_class"] == "IndexError" for r in rows)
