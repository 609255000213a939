"""The DICOM node (``riskmodel listen``) driven by real clients on loopback: pynetdicom's SCU and DCMTK.

Each node is a ``riskmodel listen`` process on a free port with a tiny untrained image bundle; every
wait is bounded. The scenarios: a full exam (DCMTK ``echoscu``/``storescu``), an exam missing a view
(scored after a short quiet period), CT and For Processing refused (0x0122, logged with the caller's
AE title), a truncated file, a duplicate send, a restart between two views, ``--forward`` to a second
SCP; the SR read back holds the numbers of ``results.csv`` and of ``predict_risk`` on the same exam.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_executable
from imaging_fixtures import MG_FOR_PROCESSING, mg_dataset, phantom, to_stored, write_exam

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

REPO = Path(__file__).resolve().parent.parent
VIEWS = ["L-CC", "L-MLO", "R-CC", "R-MLO"]
WAIT = 90.0  # seconds: the most any test waits for a node (the machine may be loaded)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """An untrained tiny image-only bundle (64 × 52 images)."""
    import torch

    from riskmodel.inference import save_image_model
    from riskmodel.nn import ImageRiskModel, tiny_config

    root = tmp_path_factory.mktemp("node_bundle")
    torch.manual_seed(0)
    return save_image_model(root / "bundle", ImageRiskModel(tiny_config(image_size=(64, 52))),
                            preprocessing={"image_size": [64, 52], "view_order": VIEWS})


def exam(root: Path, n: int, views=VIEWS, **kw) -> dict[str, Path]:
    """Four (or ``views``) MG files of study ``1.2.826.0.1.3680043.10.9.<n>``, patient P<n>, accession A<n>."""
    return write_exam(root, patient_id=f"P{n:03d}", study_uid=f"1.2.826.0.1.3680043.10.9.{n}", views=views,
                      accession=f"A{n:03d}", extra={"PatientAge": "055Y"}, **kw)


class Node:
    """A ``riskmodel listen`` process and its folder."""

    def __init__(self, out: Path, proc: subprocess.Popen, port: int, log: Path):
        self.out, self.proc, self.port, self.log = out, proc, port, log

    def rows(self) -> pd.DataFrame:
        path = self.out / "results.csv"
        if not path.exists():
            return pd.DataFrame()
        return pd.read_csv(path, dtype={"accession_number": str, "patient_id": str, "study_uid": str},
                           keep_default_na=False, na_values=[""])

    def wait_rows(self, n: int, timeout: float = WAIT) -> pd.DataFrame:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = self.rows()
            if len(rows) >= n:
                return rows
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"{len(self.rows())} result rows after {timeout}s, expected {n}\n"
                             + self.log.read_text()[-3000:])

    def journal(self) -> list[dict]:
        return [json.loads(line) for line in (self.out / "journal.jsonl").read_text().splitlines()]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=WAIT)


@contextmanager
def listen(bundle: Path, out: Path, *extra: str, quiet: float = 60.0):
    """Start ``riskmodel listen`` on a free loopback port; wait until it answers C-ECHO; SIGTERM it at the end."""
    port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.{port}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as fp:
        proc = subprocess.Popen([sys.executable, "-m", "riskmodel.cli", "listen", "--host", "127.0.0.1", "--port",
                                 str(port), "--bundle", str(bundle), "--out", str(out), "--quiet-seconds", str(quiet),
                                 "--device", "cpu", *extra], stdout=fp, stderr=subprocess.STDOUT, env=env)
    node = Node(out, proc, port, log)
    try:
        end = time.monotonic() + WAIT
        while echo(port) != 0:
            assert proc.poll() is None and time.monotonic() < end, log.read_text()[-3000:]
            time.sleep(0.2)
        yield node
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def echo(port: int) -> int | None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title="RISKMODEL")
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if status else None
    finally:
        assoc.release()


def send(port: int, items, ae_title: str = "TESTSCU", abort: bool = False) -> list[int | None]:
    """C-STORE each file path or dataset of ``items`` in one association; their DIMSE statuses.
    With ``abort`` the association is aborted (A-ABORT, as a client that drops) instead of released."""
    from pydicom import dcmread
    from pynetdicom import AE
    from pynetdicom.sop_class import (
        CTImageStorage,
        DigitalMammographyXRayImageStorageForPresentation,
        DigitalMammographyXRayImageStorageForProcessing,
    )

    datasets = [dcmread(item) if isinstance(item, Path) else item for item in items]
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 30
    for context in (DigitalMammographyXRayImageStorageForProcessing, CTImageStorage):
        ae.add_requested_context(context)
    for syntax in sorted({str(ds.file_meta.TransferSyntaxUID) for ds in datasets}):  # compressed vendors too
        ae.add_requested_context(DigitalMammographyXRayImageStorageForPresentation, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="RISKMODEL")
    assert assoc.is_established
    try:
        out = []
        for ds in datasets:
            reply = assoc.send_c_store(ds)
            out.append(int(reply.Status) if reply else None)
        return out
    finally:
        assoc.abort() if abort else assoc.release()


def sr_values(path: Path) -> dict:
    from pydicom import dcmread

    from riskmodel.node.sr import read_sr

    return read_sr(dcmread(path))


def risks(row: pd.Series) -> np.ndarray:
    return row[[f"risk_{k}y" for k in range(1, 6)]].to_numpy(dtype=float)


# ---------------------------------------------------------------------------------------------- tests


def test_listen_is_a_subcommand_that_imports_no_pynetdicom_until_run():
    code = ("import sys, riskmodel.cli; p = riskmodel.cli.build_parser(); "
            "p.parse_args(['listen', '--bundle', 'b', '--out', 'o']); "
            "print(any(m.split('.')[0] in ('pynetdicom', 'torch', 'highdicom') for m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_bad_options_are_one_line_errors(bundle, tmp_path):
    from riskmodel.cli import main

    assert main(["listen", "--bundle", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert main(["listen", "--bundle", str(bundle), "--out", str(tmp_path / "o"), "--forward", "host:x:AE"]) == 2
    assert main(["listen", "--bundle", str(bundle), "--out", str(tmp_path / "o"), "--policy", "nope"]) == 2


def test_listening_beyond_this_computer_needs_the_callers_named(bundle, tmp_path):
    from riskmodel.cli import main

    assert main(["listen", "--bundle", str(bundle), "--out", str(tmp_path / "o"), "--host", "0.0.0.0"]) == 2
    assert not (tmp_path / "o").exists()


def test_only_the_allowed_calling_ae_titles_may_associate(bundle, tmp_path):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    from riskmodel.node.scoring import StudyScorer
    from riskmodel.node.scp import DicomNode

    node = DicomNode(tmp_path / "o", StudyScorer(bundle), port=0, allowed_callers=["PACS"])
    node.start()
    try:
        def echo_from(title: str) -> bool:
            scu = AE(ae_title=title)
            scu.add_requested_context(Verification)
            assoc = scu.associate("127.0.0.1", node.port, ae_title="RISKMODEL")
            ok = assoc.is_established
            if ok:
                assoc.release()
            return ok

        assert echo_from("PACS") and not echo_from("INTRUDER")
    finally:
        node.stop()


def test_safe_uid_keeps_uids_and_hashes_anything_else():
    from riskmodel.node.store import safe_uid

    assert safe_uid("1.2.840.5") == "1.2.840.5"
    for hostile in ("../../etc/passwd", "1.2/../3", "", "1." * 40):
        name = safe_uid(hostile)
        assert name.startswith("x") and len(name) == 33 and "/" not in name and "." not in name


def test_full_exam_via_dcmtk_then_refusals_duplicates_and_forward(bundle, tmp_path):
    """echoscu + storescu send a full exam: scored at once (not after the 60 s quiet period); its SR
    (also forwarded to a second SCP) holds the numbers of results.csv and of predict_risk on the store."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ComprehensiveSRStorage

    echoscu, storescu = require_executable("echoscu"), require_executable("storescu")
    files = exam(tmp_path / "in", 1)
    forwarded = []

    def on_store(event):
        forwarded.append(event.dataset)
        return 0x0000

    sink = AE(ae_title="FWDSCP")
    sink.add_supported_context(ComprehensiveSRStorage)
    sink_port = free_port()
    server = sink.start_server(("127.0.0.1", sink_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        with listen(bundle, tmp_path / "out", "--forward", f"127.0.0.1:{sink_port}:FWDSCP", "--policy",
                    "uspstf2024") as node:
            ok = subprocess.run([echoscu, "-aet", "DCMTKSCU", "-aec", "RISKMODEL", "127.0.0.1", str(node.port)],
                                capture_output=True, text=True, timeout=60)
            assert ok.returncode == 0, ok.stderr
            sent = subprocess.run([storescu, "-aet", "DCMTKSCU", "-aec", "RISKMODEL", "127.0.0.1", str(node.port),
                                   *map(str, files.values())], capture_output=True, text=True, timeout=120)
            assert sent.returncode == 0, sent.stderr
            row = node.wait_rows(1, timeout=45).iloc[0]  # well before the 60 s quiet period

            # refusals: CT and For Processing get 0x0122 and are logged with the caller's AE title
            ct = mg_dataset(to_stored(phantom()), modality="CT", study_uid="1.2.826.0.1.3680043.10.9.77")
            ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            proc = mg_dataset(to_stored(phantom()), presentation_intent="FOR PROCESSING",
                              study_uid="1.2.826.0.1.3680043.10.9.78")
            assert proc.SOPClassUID == MG_FOR_PROCESSING
            assert send(node.port, [ct, proc], ae_title="CTSCANNER") == [0x0122, 0x0122]

            # a duplicate send of the whole exam: acknowledged, journalled, not scored again
            assert send(node.port, list(files.values())) == [0] * 4
            end = time.monotonic() + 30
            while len(forwarded) < 1 and time.monotonic() < end:
                time.sleep(0.1)
            time.sleep(1.0)
            assert node.stop() == 0
            journal = node.journal()
    finally:
        server.shutdown()

    rows = node.rows()
    assert len(rows) == 1  # the duplicate send made no second row
    assert row["status"] == "ok" and row["views_used"] == "L-CC;L-MLO;R-CC;R-MLO" and row["model"] == "image"
    assert (row["study_uid"], row["accession_number"], row["patient_id"]) == ("1.2.826.0.1.3680043.10.9.1", "A001",
                                                                              "P001")
    from riskmodel.jsonstate import MANIFEST, manifest_digest

    assert row["bundle_digest"] == manifest_digest(json.loads((bundle / MANIFEST).read_text()))
    refused = [e for e in journal if e["event"] == "refused"]
    assert [e["calling_ae"] for e in refused] == ["CTSCANNER", "CTSCANNER"] and refused[0]["status"] == \
        "sop_class_not_supported"
    assert "CTSCANNER" in node.log.read_text() and "For Processing" in node.log.read_text()
    assert sum(e["event"] == "received" and e["duplicate"] for e in journal) == 4
    assert sum(e["event"] == "received" and e["calling_ae"] == "DCMTKSCU" for e in journal) == 4
    assert not any(Path(tmp_path / "out" / "store").glob("*/.*.tmp"))

    # the SR holds the numbers of results.csv (Decimal String: 16 characters) and of predict_risk
    import riskmodel

    sr = sr_values(next((tmp_path / "out" / "sr").iterdir()))
    assert sr["bundle_digest"] == row["bundle_digest"] and sr["views_used"] == row["views_used"]
    assert sr["recommendation"].startswith("uspstf2024")
    np.testing.assert_allclose([sr[f"risk_{k}y"] for k in range(1, 6)], risks(row), rtol=1e-9)
    direct = riskmodel.predict_risk(pd.DataFrame({"exam_id": ["A001"]}), model=str(bundle),
                                    exams=tmp_path / "out" / "store", device="cpu")
    np.testing.assert_allclose(risks(direct.iloc[0]), risks(row), rtol=1e-6)
    fhir = json.loads(next((tmp_path / "out" / "fhir").iterdir()).read_text())
    assert fhir["resourceType"] == "RiskAssessment" and fhir["status"] == "final"

    # forwarded to the second SCP: the same SR
    assert len(forwarded) == 1
    from riskmodel.node.sr import read_sr

    got = read_sr(forwarded[0])
    np.testing.assert_allclose([got[f"risk_{k}y"] for k in range(1, 6)], risks(row), rtol=1e-9)
    assert forwarded[0].StudyInstanceUID == "1.2.826.0.1.3680043.10.9.1" and forwarded[0].PatientID == "P001"
    assert any(e["event"] == "forwarded" and e["ok"] for e in journal)


def test_missing_view_and_truncated_file_are_scored_after_the_quiet_period(bundle, tmp_path):
    from pydicom import dcmread

    three = exam(tmp_path / "in", 2, views=VIEWS[:3])
    full = exam(tmp_path / "in", 3)
    cut = dcmread(full["R-MLO"])
    cut.PixelData = cut.PixelData[: len(cut.PixelData) // 2]  # the pixel data cut in half
    good = exam(tmp_path / "in", 4)
    with listen(bundle, tmp_path / "out", quiet=1.5) as node:
        t0 = time.monotonic()
        assert send(node.port, [*three.values(), *[full[v] for v in VIEWS[:3]], cut, *good.values()]) == [0] * 11
        dropped = exam(tmp_path / "in", 7)
        assert send(node.port, [dropped["L-CC"], dropped["R-CC"]], abort=True) == [0, 0]  # then the client drops
        rows = node.wait_rows(4).set_index("study_uid")
        waited = time.monotonic() - t0
        assert node.stop() == 0
    assert waited >= 1.5
    missing = rows.loc["1.2.826.0.1.3680043.10.9.2"]
    assert missing["status"] == "ok" and missing["views_used"] == "L-CC;L-MLO;R-CC"
    assert "missing views masked: R-MLO" in missing["message"]
    truncated = rows.loc["1.2.826.0.1.3680043.10.9.3"]
    assert truncated["status"] == "ok" and truncated["views_used"] == "L-CC;L-MLO;R-CC"
    assert "bad_file:TruncatedDicomError" in truncated["message"]
    other = rows.loc["1.2.826.0.1.3680043.10.9.4"]  # the same association, untouched
    assert other["status"] == "ok" and other["views_used"] == "L-CC;L-MLO;R-CC;R-MLO" and pd.isna(other["message"])
    assert np.isfinite(risks(missing)).all() and np.isfinite(risks(truncated)).all()
    assert rows.loc["1.2.826.0.1.3680043.10.9.7", "views_used"] == "L-CC;R-CC"  # kept despite the abort
    assert len(list((tmp_path / "out" / "sr").iterdir())) == 4


def test_restart_between_two_views_resumes_pending_studies(bundle, tmp_path):
    """Study 5 gets two views, study 6 one; SIGTERM; after the restart study 5 gets its other two views
    (scored once, as complete) and study 6, pending in the journal, is scored after its quiet period
    without any new instance."""
    files, lone = exam(tmp_path / "in", 5), exam(tmp_path / "in", 6, views=["L-CC"])
    out = tmp_path / "out"
    with listen(bundle, out) as node:
        assert send(node.port, [files["L-CC"], files["L-MLO"], lone["L-CC"]]) == [0, 0, 0]
        assert node.stop() == 0
    assert node.rows().empty and len(list((out / "store").glob("*/*.dcm"))) == 3
    with listen(bundle, out, quiet=8) as again:  # the quiet period restarts with the node
        assert send(again.port, [files["R-CC"], files["R-MLO"]]) == [0, 0]
        rows = again.wait_rows(2).set_index("study_uid")
        assert again.stop() == 0
    assert len(again.rows()) == 2
    assert rows.loc["1.2.826.0.1.3680043.10.9.5", "views_used"] == "L-CC;L-MLO;R-CC;R-MLO"
    resumed = rows.loc["1.2.826.0.1.3680043.10.9.6"]
    assert resumed["views_used"] == "L-CC" and "missing views masked: L-MLO, R-CC, R-MLO" in resumed["message"]

    # the store is an ordinary folder: riskmodel scan reads it
    from riskmodel.cli import main

    assert main(["scan", str(out / "store"), "-o", str(tmp_path / "m.csv"), "--exams", str(tmp_path / "e.csv"),
                 "--quiet"]) == 0
    exams = pd.read_csv(tmp_path / "e.csv").set_index("study_uid")
    assert exams.loc["1.2.826.0.1.3680043.10.9.5", "n_views"] == 4 and len(exams) == 2


def test_a_hybrid_bundle_takes_the_factors_from_cohort_matched_by_accession(bundle, tmp_path):
    """A hybrid model folder with --cohort: the study's row is found by exam_id = AccessionNumber; the
    result equals predict_risk and `riskmodel predict --exams` run on the node's store."""
    import riskmodel
    from riskmodel.cli import main
    from riskmodel.fusion import HybridModel, TorchHazardHead
    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.synthetic import make_cohort, write_exams

    cohort = make_cohort(12, seed=5)
    cohort.loc[:3, "event"] = 1
    cohort.loc[:3, "time"] = [0.5, 1.5, 2.5, 3.5]
    manifest = write_exams(cohort, tmp_path / "dicom", image_size=(64, 52), seed=2)
    exams = assemble_exams(scan_dicoms(tmp_path / "dicom"))
    HybridModel(riskmodel.load_image_model(bundle, device="cpu"),
                head=TorchHazardHead(hidden=0, epochs=5, early_stopping=False)).fit(cohort, exams).save(
        tmp_path / "hybrid")
    women = cohort.drop(columns=[c for c in cohort.columns if c.startswith("true_")
                                 or c in ("time", "event", "image_factor")])
    women.to_csv(tmp_path / "women.csv", index=False)
    sent = women.iloc[[2]].reset_index(drop=True)
    files = [tmp_path / "dicom" / p for p in manifest.loc[manifest["exam_id"] == sent.loc[0, "exam_id"], "path"]]
    with listen(tmp_path / "hybrid", tmp_path / "out", "--cohort", str(tmp_path / "women.csv")) as node:
        assert send(node.port, files) == [0] * 4
        row = node.wait_rows(1).iloc[0]
        assert node.stop() == 0
    assert row["model"] == "hybrid" and row["status"] == "ok" and row["accession_number"] == sent.loc[0, "exam_id"]
    direct = riskmodel.predict_risk(sent, model=str(tmp_path / "hybrid"), exams=tmp_path / "out" / "store",
                                    device="cpu")
    np.testing.assert_allclose(risks(direct.iloc[0]), risks(row), rtol=1e-6)
    sent.to_csv(tmp_path / "one.csv", index=False)
    assert main(["predict", str(tmp_path / "one.csv"), "--bundle", str(tmp_path / "hybrid"), "--exams",
                 str(tmp_path / "out" / "store"), "--device", "cpu", "-o", str(tmp_path / "cli.csv")]) == 0
    np.testing.assert_allclose(risks(pd.read_csv(tmp_path / "cli.csv").iloc[0]), risks(row), rtol=1e-6)


def test_sigterm_as_an_exam_arrives_loses_no_study(bundle, tmp_path):
    """SIGTERM right after the fourth view is acknowledged: the node exits 0 having either scored the study
    (the study in hand is finished) or left it pending in its journal, which a restart then scores: one row."""
    out = tmp_path / "node"
    files = exam(tmp_path / "in", 7)
    with listen(bundle, out) as node:
        assert send(node.port, list(files.values())) == [0, 0, 0, 0]
        assert node.stop() == 0
        before = len(node.rows())
    assert before in (0, 1)
    if before == 0:  # stopped before scoring began: the restart resumes it
        with listen(bundle, out, quiet=60.0) as again:
            rows = again.wait_rows(1)
    else:
        rows = node.rows()
    assert len(rows) == 1 and rows["status"].iat[0] == "ok" and rows["views_used"].iat[0].count("-") == 4
