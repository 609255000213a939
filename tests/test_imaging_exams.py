"""scan_dicoms (one row per file, bad files listed) and assemble_exams (slot rules and flags)."""

import os

import numpy as np
import pandas as pd
import pytest
from imaging_fixtures import mg_dataset, phantom, to_stored, write_exam, write_mg

import riskmodel.imaging as im
from riskmodel.imaging import VIEW_ORDER, assemble_exams, read_mammogram, scan_dicoms
from riskmodel.imaging.exams import MANIFEST_COLUMNS

STUDY_A = "1.2.826.0.1.3680043.10.1.1"
STUDY_B = "1.2.826.0.1.3680043.10.1.2"


@pytest.fixture
def tree(tmp_path):
    """Exam A complete; exam B with its R-MLO truncated and L-MLO missing; junk around."""
    a = write_exam(tmp_path, patient_id="P001", study_uid=STUDY_A)
    b = write_exam(tmp_path, patient_id="P002", study_uid=STUDY_B, views=("L-CC", "R-CC", "R-MLO"), accession="0002")
    data = b["R-MLO"].read_bytes()
    b["R-MLO"].write_bytes(data[:-500])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "DICOMDIR").write_bytes(b"\0" * 10)
    write_mg(tmp_path / "sub" / "ct.dcm", modality="CT", patient_id="P009", study_uid="9.9")
    return tmp_path, a, b


def test_scan_lists_every_file_sorted_with_status(tree):
    root, a, b = tree
    manifest = scan_dicoms(root)
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    assert manifest["path"].tolist() == files
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    status = dict(zip(manifest["path"], manifest["status"], strict=False))
    assert status[str(root / "notes.txt")] == "NotDicomError"
    assert status[str(root / "sub" / "deeper" / "DICOMDIR")] == "NotDicomError"
    assert status[str(root / "sub" / "ct.dcm")] == "NotMammogramError"
    assert status[str(b["R-MLO"])] == "TruncatedDicomError"
    assert sum(s == "ok" for s in status.values()) == 6
    ok = manifest[manifest["status"] == "ok"]
    assert (ok["error"] == "").all()
    bad = manifest[manifest["status"] != "ok"]
    assert all(p in e for p, e in zip(bad["path"], bad["error"], strict=False))
    # the truncated file's header was readable: it keeps its identity
    row = manifest.set_index("path").loc[str(b["R-MLO"])]
    assert (row["patient_id"], row["study_uid"], row["laterality"], row["view"]) == ("P002", STUDY_B, "R", "MLO")
    assert "Pixel Data declares 6144 bytes, the file holds 5644" in row["error"]
    assert str(manifest["rows"].dtype) == "Int64"
    assert manifest.set_index("path").loc[str(a["L-CC"]), "rows"] == 48


def test_scan_status_matches_read_mammogram(tree):
    root, _, _ = tree
    for path, status in scan_dicoms(root)[["path", "status"]].itertuples(index=False):
        try:
            read_mammogram(path)
            got = "ok"
        except im.DicomError as e:
            got = type(e).__name__
        assert got == status, path


def test_scan_detects_truncation_without_decoding(tmp_path):
    p1, _ = write_mg(tmp_path / "rle.dcm", compress="rle")
    p1.write_bytes(p1.read_bytes()[:-300])
    p2, _ = write_mg(tmp_path / "head.dcm", sop_uid="1.2.3.4", series_uid="1.2.3.5")
    p2.write_bytes(p2.read_bytes()[:345])  # 5 of the 8 bytes of SOPInstanceUID "1.2.3.4"
    ds = mg_dataset(to_stored(phantom()))
    ds.PixelData = to_stored(phantom())[:40].tobytes()
    ds.save_as(tmp_path / "short.dcm", enforce_file_format=True)
    m = scan_dicoms(tmp_path).set_index("path")
    assert m.loc[str(p1), "status"] == "TruncatedDicomError"
    assert "fragment" in m.loc[str(p1), "error"]
    # the header before the cut is intact: the file can still be flagged on its exam
    assert tuple(m.loc[str(p1), ["patient_id", "study_uid", "laterality", "view"]]) == (
        "P001", "1.2.826.0.1.3680043.10.1.1", "L", "CC")
    assert m.loc[str(p2), "status"] == "TruncatedDicomError"
    assert "element (0008,0018) declares 8 bytes but the file holds 5" in m.loc[str(p2), "error"]
    assert m.loc[str(p2), "sop_uid"] == ""  # the cut value is dropped, not shown half-read
    assert m.loc[str(tmp_path / "short.dcm"), "status"] == "TruncatedDicomError"


def test_scan_reports_missing_decoder(tmp_path, monkeypatch):
    from pydicom.pixels import get_decoder
    from pydicom.uid import RLELossless

    write_mg(tmp_path / "rle.dcm", compress="rle")
    monkeypatch.setattr(get_decoder(RLELossless), "_available", {})
    m = scan_dicoms(tmp_path)
    assert m.loc[0, "status"] == "DecoderMissingError"
    assert "pip install" in m.loc[0, "error"]


def test_scan_single_file_and_missing_root(tmp_path):
    path, _ = write_mg(tmp_path / "one.dcm")
    m = scan_dicoms(path)
    assert len(m) == 1 and m.loc[0, "status"] == "ok"
    assert (m.loc[0, "laterality"], m.loc[0, "view"], m.loc[0, "view_family"]) == ("L", "CC", "CC")
    with pytest.raises(FileNotFoundError):
        scan_dicoms(tmp_path / "nowhere")


def test_scan_then_assemble_end_to_end(tree):
    root, a, b = tree
    exams = assemble_exams(scan_dicoms(root))
    assert exams["study_key"].tolist() == [f"P001/{STUDY_A}", f"P002/{STUDY_B}"]  # no exam for the CT study
    assert exams["exam_id"].tolist() == ["ACC001", "0002"]  # the accession numbers (as text): the cohort's join key
    first, second = exams.iloc[0], exams.iloc[1]
    assert [first[s] for s in VIEW_ORDER] == [str(a[s]) for s in VIEW_ORDER]
    assert (first["n_views"], first["flags"], first["accession_number"]) == (4, "", "ACC001")
    assert second["L-CC"] == str(b["L-CC"]) and second["R-CC"] == str(b["R-CC"])
    assert pd.isna(second["L-MLO"]) and pd.isna(second["R-MLO"])
    assert second["n_views"] == 2
    name = os.path.basename(b["R-MLO"])
    assert second["flags"] == f"missing:L-MLO;missing:R-MLO;bad_file:TruncatedDicomError:{name}"
    assert list(exams.columns) == ["exam_id", "study_key", "patient_id", "study_uid", "accession_number", "study_date",
                                   *VIEW_ORDER, "n_views", "flags"]


# -- assemble rules on hand-made manifests ----------------------------------------------------


def manifest(*rows, **defaults):
    base = {"status": "ok", "patient_id": "P1", "study_uid": "1.1", "accession_number": "A1",
            "study_date": "20240101", "presentation_intent": "FOR PRESENTATION", "acquisition_datetime": "",
            "instance_number": None, "view_modifiers": ""}
    base.update(defaults)
    return pd.DataFrame([{**base, **r} for r in rows])


def four(prefix="", **kw):
    return [dict(path=f"{prefix}{s}.dcm", laterality=s[0], view=s[2:], **kw) for s in VIEW_ORDER]


def test_complete_exam_has_no_flags():
    exams = assemble_exams(manifest(*four()))
    assert len(exams) == 1
    assert exams.loc[0, "flags"] == "" and exams.loc[0, "n_views"] == 4
    assert (exams.loc[0, "exam_id"], exams.loc[0, "study_key"]) == ("A1", "P1/1.1")


def test_duplicate_prefers_for_presentation_even_if_older():
    rows = [*four(), dict(path="zz.dcm", laterality="L", view="CC", presentation_intent="FOR PROCESSING",
                          acquisition_datetime="20240101120000.000000")]
    rows[0]["acquisition_datetime"] = "20240101080000.000000"
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "L-CC"] == "L-CC.dcm"
    assert exams.loc[0, "flags"] == "duplicate:L-CC"


def test_duplicate_prefers_latest_acquisition_then_instance_then_path():
    rows = [*four(), dict(path="late.dcm", laterality="L", view="CC", acquisition_datetime="20240101120000.000000")]
    rows[0]["acquisition_datetime"] = "20240101115959.999999"
    assert assemble_exams(manifest(*rows)).loc[0, "L-CC"] == "late.dcm"
    rows = [*four(), dict(path="b.dcm", laterality="L", view="CC", instance_number=9)]
    rows[0]["instance_number"] = 3
    assert assemble_exams(manifest(*rows)).loc[0, "L-CC"] == "b.dcm"
    rows = [*four(), dict(path="A.dcm", laterality="L", view="CC")]
    assert assemble_exams(manifest(*rows)).loc[0, "L-CC"] == "A.dcm"  # "A.dcm" < "L-CC.dcm"
    # an image with a known time beats one without
    rows = [*four(), dict(path="A.dcm", laterality="L", view="CC")]
    rows[0]["acquisition_datetime"] = "19990101000000.000000"
    assert assemble_exams(manifest(*rows)).loc[0, "L-CC"] == "L-CC.dcm"


def test_for_processing_only_is_used_and_flagged():
    rows = four()
    rows[3]["presentation_intent"] = "FOR PROCESSING"
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "R-MLO"] == "R-MLO.dcm"
    assert exams.loc[0, "flags"] == "for_processing:R-MLO"


def test_missing_view_is_kept_nan_and_flagged():
    exams = assemble_exams(manifest(*four()[:3]))
    assert pd.isna(exams.loc[0, "R-MLO"]) and exams.loc[0, "n_views"] == 3
    assert exams.loc[0, "flags"] == "missing:R-MLO"


def test_substitutes_and_extra_views():
    rows = [*four()[:3], dict(path="rml.dcm", laterality="R", view="ML"),
            dict(path="rlm.dcm", laterality="R", view="LM")]
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "R-MLO"] == "rml.dcm"  # ML before LM
    assert exams.loc[0, "flags"] == "substitute:R-MLO=ML;extra_view:R-LM"
    # with the real MLO present the ML is an extra view, not a duplicate
    rows = [*four(), dict(path="rml.dcm", laterality="R", view="ML"), dict(path="lx.dcm", laterality="L", view="XCCL")]
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "R-MLO"] == "R-MLO.dcm"
    assert exams.loc[0, "flags"] == "extra_view:L-XCCL;extra_view:R-ML"
    rows = [*four()[1:], dict(path="lx.dcm", laterality="L", view="XCCL")]
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "L-CC"] == "lx.dcm" and exams.loc[0, "flags"] == "substitute:L-CC=XCCL"


def test_spot_compression_never_fills_a_slot():
    rows = four()
    rows[0]["view_modifiers"] = "spot compression"
    exams = assemble_exams(manifest(*rows))
    assert pd.isna(exams.loc[0, "L-CC"])
    assert exams.loc[0, "flags"] == "missing:L-CC;extra_view:L-CC"
    rows = [*four(), dict(path="id.dcm", laterality="L", view="CC", view_modifiers="implant displaced")]
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "L-CC"] == "L-CC.dcm"  # the plain view first
    rows[0]["status"] = "TruncatedDicomError"
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "L-CC"] == "id.dcm"
    assert exams.loc[0, "flags"] == "modifier:L-CC=implant displaced;bad_file:TruncatedDicomError:L-CC.dcm"


def test_bad_files_never_enter_an_exam_but_are_flagged():
    rows = four()
    rows[1]["status"] = "DecoderMissingError"
    exams = assemble_exams(manifest(*rows))
    assert pd.isna(exams.loc[0, "L-MLO"])
    assert exams.loc[0, "flags"] == "missing:L-MLO;bad_file:DecoderMissingError:L-MLO.dcm"
    # an exam whose files are all bad still appears (all views missing); other modalities do not
    rows = [dict(r, status="TruncatedDicomError") for r in four()]
    rows.append(dict(path="ct.dcm", laterality="", view="", status="NotMammogramError", study_uid="7.7"))
    rows.append(dict(path="junk.txt", laterality="", view="", status="NotDicomError", patient_id="", study_uid=""))
    exams = assemble_exams(manifest(*rows))
    assert exams["study_key"].tolist() == ["P1/1.1"]
    assert exams.loc[0, "n_views"] == 0
    assert exams.loc[0, "flags"].count("bad_file:") == 4


def test_exam_key_is_patient_and_study():
    rows = four("a_") + four("b_", study_uid="1.2") + four("c_", patient_id="P0", study_uid="1.2")
    exams = assemble_exams(manifest(*rows))
    assert exams["study_key"].tolist() == ["P0/1.2", "P1/1.1", "P1/1.2"]
    assert (exams["n_views"] == 4).all()


def test_no_study_uid_and_accession_conflict_are_flagged():
    rows = four(study_uid="")
    rows[2]["accession_number"] = "A2"
    exams = assemble_exams(manifest(*rows))
    assert exams.loc[0, "flags"] == "no_study_uid;accession_conflict"


def test_assemble_is_deterministic_under_row_order():
    rows = four("a_") + four("b_", study_uid="1.2") + [dict(path="dup.dcm", laterality="R", view="CC")]
    m = manifest(*rows)
    ref = assemble_exams(m)
    for seed in range(3):
        shuffled = m.sample(frac=1.0, random_state=seed)
        pd.testing.assert_frame_equal(assemble_exams(shuffled), ref)


def test_assemble_requires_columns():
    with pytest.raises(ValueError, match="laterality"):
        assemble_exams(pd.DataFrame({"path": ["a"], "status": ["ok"], "patient_id": ["p"], "study_uid": ["s"],
                                     "view": ["CC"]}))


def test_manifest_view_family_values():
    assert im.VIEW_FAMILY["ML"] == "MLO" and im.VIEW_FAMILY["XCCL"] == "CC" and im.VIEW_FAMILY["FB"] == "other"
    assert np.all([im.VIEW_FAMILY[v] == "MLO" for v in ("MLO", "ML", "LM", "LMO")])


@pytest.mark.parametrize("compress", [None, "rle"])
def test_no_cut_point_gives_an_image_and_scan_agrees_with_read(tmp_path, compress):
    """Cut a file at every 7th byte: never "ok"; the header check behind scan_dicoms names
    read_mammogram's error; a cut is reported as truncation unless it falls exactly between two
    data elements."""
    from riskmodel.imaging.dicom import inspect_header

    src, _ = write_mg(tmp_path / "src.dcm", compress=compress)
    data = src.read_bytes()
    cut = tmp_path / "cut" / "x.dcm"
    cut.parent.mkdir()
    statuses = {}
    for n in range(1, len(data), 7):
        cut.write_bytes(data[:n])
        status = type(inspect_header(cut)[1]).__name__
        with pytest.raises(im.DicomError) as info:
            read_mammogram(cut)
        assert type(info.value).__name__ == status, n
        statuses[n] = status
    counts = pd.Series(statuses).value_counts()
    assert set(counts.index) <= {"NotDicomError", "TruncatedDicomError", "NotMammogramError", "NoPixelDataError"}
    assert counts["TruncatedDicomError"] > 0.8 * len(statuses)
    assert all(s == "NotDicomError" for n, s in statuses.items() if n < 132)  # inside preamble + "DICM"


def _special_tree(root):
    """One good DICOM file, and beside it every kind of entry that is not a readable regular file."""
    good, _ = write_mg(root / "good.dcm")
    (root / "dangling.dcm").symlink_to(root / "gone.dcm")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "self").symlink_to(root / "self")
    (root / "link_to_good.dcm").symlink_to(good)
    os.mkfifo(root / "pipe.dcm")
    (root / "real_dir").mkdir()
    (root / "dir_link").symlink_to(root / "real_dir", target_is_directory=True)
    write_mg(root / "real_dir" / "inner.dcm", laterality="R")
    return good


def test_scan_lists_links_pipes_and_folder_links_with_a_status(tmp_path):
    good = _special_tree(tmp_path)
    manifest = scan_dicoms(tmp_path)  # returns at once: the FIFO is never opened
    status = dict(zip(manifest["path"], manifest["status"], strict=True))
    error = dict(zip(manifest["path"], manifest["error"], strict=True))
    assert manifest["path"].tolist() == sorted(str(tmp_path / n) for n in (
        "good.dcm", "dangling.dcm", "loop_a", "loop_b", "self", "link_to_good.dcm", "pipe.dcm", "dir_link",
        "real_dir/inner.dcm"))
    assert status == {
        str(good): "ok", str(tmp_path / "link_to_good.dcm"): "ok", str(tmp_path / "real_dir" / "inner.dcm"): "ok",
        str(tmp_path / "dangling.dcm"): "broken_link", str(tmp_path / "loop_a"): "broken_link",
        str(tmp_path / "loop_b"): "broken_link", str(tmp_path / "self"): "broken_link",
        str(tmp_path / "pipe.dcm"): "not_regular_file", str(tmp_path / "dir_link"): "directory_link"}
    assert "gone.dcm, which does not exist" in error[str(tmp_path / "dangling.dcm")]
    assert "symbolic link loop" in error[str(tmp_path / "loop_a")]
    assert "named pipe (FIFO)" in error[str(tmp_path / "pipe.dcm")]
    assert "not followed" in error[str(tmp_path / "dir_link")]
    for path, message in error.items():
        assert message == "" if status[path] == "ok" else message.startswith(path + ": ")
    assert set(manifest["status"]) - {"ok"} <= set(im.exams.FILE_STATUSES)
    # such rows carry no identity: they join no exam, and the good files still make theirs
    exams = assemble_exams(manifest)
    assert len(exams) == 1 and exams.loc[0, "L-CC"] in (str(good), str(tmp_path / "link_to_good.dcm"))
    # a single special entry as the root is one row too
    assert scan_dicoms(tmp_path / "pipe.dcm")[["status"]].values.tolist() == [["not_regular_file"]]


def test_scan_lists_a_socket_and_a_device(tmp_path):
    import socket
    import stat

    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        kinds = {str(tmp_path / "s"): "a socket"}
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            try:
                os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
                kinds[str(tmp_path / "null")] = "a character device"
            except OSError:  # a container may forbid mknod even to root
                pass
        m = scan_dicoms(tmp_path)
    finally:
        sock.close()
    assert m["path"].tolist() == sorted(kinds)
    assert (m["status"] == "not_regular_file").all()
    for path, message in zip(m["path"], m["error"], strict=True):
        assert kinds[path] in message and "not opened" in message


def test_scan_lists_files_and_folders_it_may_not_read(tmp_path, monkeypatch):
    good, _ = write_mg(tmp_path / "good.dcm")
    secret, _ = write_mg(tmp_path / "secret.dcm")
    (tmp_path / "closed").mkdir()
    write_mg(tmp_path / "closed" / "hidden.dcm")
    if os.geteuid() != 0:  # a real permission error
        secret.chmod(0)
        (tmp_path / "closed").chmod(0)
    else:  # root reads everything: deny the same two entries as the kernel would
        real_open, real_scandir = os.open, os.scandir

        def deny_open(path, *args, **kw):
            if str(path) == str(secret):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kw)

        def deny_scandir(path="."):
            if str(path) == str(tmp_path / "closed"):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "open", deny_open)
        monkeypatch.setattr(os, "scandir", deny_scandir)
    try:
        m = scan_dicoms(tmp_path).set_index("path")
    finally:
        secret.chmod(0o644)
        (tmp_path / "closed").chmod(0o755)
    assert m["status"].to_dict() == {str(good): "ok", str(secret): "unreadable",
                                     str(tmp_path / "closed"): "unreadable"}
    assert m.loc[str(secret), "error"] == f"{secret}: cannot open the file: Permission denied"
    assert m.loc[str(tmp_path / "closed"), "error"].endswith("cannot list the folder: Permission denied")


def test_scan_lets_a_resource_error_through(tmp_path, monkeypatch):
    import errno

    write_mg(tmp_path / "good.dcm")

    def no_descriptors(*args, **kw):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "open", no_descriptors)
    with pytest.raises(OSError, match="Too many open files"):
        scan_dicoms(tmp_path)
