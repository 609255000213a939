"""Load test of the DICOM node (``riskmodel listen``): K concurrent senders × N studies each, on loopback.

Usage::

    python benchmarks/dicom_node_load.py [--senders 1 4 8] [--studies 2] [--size 2048 1664] [--quiet 30]

Writes ``--studies`` × max(K) synthetic four-view exams (``riskmodel.synthetic.write_exams``, at
``--size``: 2048 × 1664, the generator's largest, about 6.8 MB per uncompressed 16-bit view, close
to a real detector's 2560 × 3328), saves a tiny untrained image bundle (64 × 52 input; the network
is not what is measured), then for each K starts ``riskmodel listen`` on a free loopback port,
runs K threads that each open one association and C-STORE their N studies (files sent without
decoding), waits until every study has its result (bounded), SIGTERMs the node and records:

* studies per minute (studies / time from the first association to the last result);
* latency from the last view of a study received (journal) to its ``scored`` journal line, written
  right after its ``results.csv`` row: p50 and p95, seconds;
* the node's peak resident memory (``VmHWM``, MiB);
* lost studies: every study sent must have exactly one ``results.csv`` row and one SR (0 expected).

Results go to ``benchmarks/results/dicom_node_load.json`` with the machine's description. The
numbers are from whatever machine runs it; on a shared, loaded machine they are a floor, not a
capacity.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine_info, publish, utc_now

RESULTS = Path(__file__).parent / "results" / "dicom_node_load.json"
VIEWS = ["L-CC", "L-MLO", "R-CC", "R-MLO"]
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(root: Path, n_studies: int, size: tuple[int, int]) -> tuple[Path, list[list[Path]]]:
    """The bundle and ``n_studies`` exams (each a list of four files)."""
    import torch

    from riskmodel.inference import save_image_model
    from riskmodel.nn import ImageRiskModel, tiny_config
    from riskmodel.synthetic import make_cohort, write_exams

    torch.manual_seed(0)
    bundle = save_image_model(root / "bundle", ImageRiskModel(tiny_config()),
                              preprocessing={"image_size": [64, 52], "view_order": VIEWS})
    manifest = write_exams(make_cohort(n_studies, seed=3), root / "dicoms", image_size=size, seed=3,
                           vendors=("hologic",), lesions=False)
    exams = [[root / "dicoms" / p for p in g["path"]] for _, g in manifest.groupby("exam_id", sort=False)]
    return bundle, exams


def sender(port: int, studies: list[list[Path]], syntaxes: list[str], errors: list[str]) -> None:
    """One association sending ``studies`` in order (one presentation context per transfer syntax)."""
    try:
        _send(port, studies, syntaxes, errors)
    except Exception as exc:  # recorded in the results, never lost
        errors.append(f"{type(exc).__name__}: {exc}")


def _send(port: int, studies: list[list[Path]], syntaxes: list[str], errors: list[str]) -> None:
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import DigitalMammographyXRayImageStorageForPresentation

    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="LOADSCU")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 300
    for syntax in syntaxes:
        ae.add_requested_context(DigitalMammographyXRayImageStorageForPresentation, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="RISKMODEL")
    if not assoc.is_established:
        errors.append("association refused")
        return
    try:
        for files in studies:
            for f in files:
                reply = assoc.send_c_store(f)
                if not reply or int(reply.Status) != 0:
                    errors.append(f"{f.name}: {reply}")
    finally:
        assoc.release()


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_k(bundle: Path, exams: list[list[Path]], k: int, n: int, out: Path, quiet: float, timeout: float) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(out.parent / f"{out.name}.log", "w")
    node = subprocess.Popen([sys.executable, "-m", "riskmodel.cli", "listen", "--host", "127.0.0.1", "--port",
                             str(port), "--bundle", str(bundle), "--out", str(out), "--quiet-seconds", str(quiet),
                             "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        from pynetdicom import AE
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title="LOADSCU")
        ae.add_requested_context(Verification)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assoc = ae.associate("127.0.0.1", port, ae_title="RISKMODEL")
            if assoc.is_established:
                assoc.release()
                break
            time.sleep(0.3)
        sent = [exams[i * n:(i + 1) * n] for i in range(k)]
        errors: list[str] = []
        start = time.time()
        import pydicom

        syntaxes = sorted({str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                           for group in sent for files in group for f in files})
        threads = [threading.Thread(target=sender, args=(port, s, syntaxes, errors)) for s in sent]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results = out / "results.csv"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if results.exists() and len(results.read_text().splitlines()) - 1 >= k * n:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate row would show here
        peak = peak_mib(node.pid)
    finally:
        node.send_signal(signal.SIGTERM)
        rc = node.wait(timeout=120)
        log.close()
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    last_in: dict[str, float] = {}
    scored: dict[str, float] = {}
    for e in journal:
        if e["event"] == "received":
            last_in[e["study_uid"]] = max(last_in.get(e["study_uid"], 0.0), e["time"])
        elif e["event"] == "scored":
            scored.setdefault(e["study_uid"], e["time"])
    rows = pd.read_csv(out / "results.csv", dtype={"study_uid": str}) if (out / "results.csv").exists() else \
        pd.DataFrame({"study_uid": []})
    import pydicom

    uids = {str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
            for group in sent for files in group}
    counts = rows["study_uid"].value_counts()
    srs = {p.stem for p in (out / "sr").iterdir()}
    lost = sorted(u for u in uids if counts.get(u, 0) != 1 or u not in srs)
    latency = np.array([scored[u] - last_in[u] for u in uids if u in scored and u in last_in])
    wall = (max(scored.values()) - start) if scored else float("nan")
    return {"senders": k, "studies_per_sender": n, "studies": len(uids), "send_errors": errors,
            "node_exit_code": rc, "wall_s": round(wall, 2),
            "studies_per_min": round(len(scored) / wall * 60, 2) if scored else 0.0,
            "latency_last_view_to_result_s": {"p50": round(float(np.percentile(latency, 50)), 3),
                                              "p95": round(float(np.percentile(latency, 95)), 3)}
            if len(latency) else None,
            "node_peak_rss_mib": round(peak, 1), "lost_studies": len(lost), "lost": lost,
            "statuses": rows["status"].value_counts().to_dict() if "status" in rows else {}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--senders", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--studies", type=int, default=2, help="studies per sender")
    ap.add_argument("--size", type=int, nargs=2, default=[2048, 1664], help="rows columns of each view")
    ap.add_argument("--quiet", type=float, default=30.0, help="the node's --quiet-seconds")
    ap.add_argument("--timeout", type=float, default=900.0, help="most seconds to wait for one K's results")
    ap.add_argument("--machine", default="", help="words about the machine and its load, recorded with the results")
    ap.add_argument("--no-write", action="store_true", help="print, do not write the results file")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="dicom_node_load_"))
    try:
        t0 = time.time()
        bundle, exams = prepare(root, max(args.senders) * args.studies, tuple(args.size))
        made = time.time() - t0
        mb = sum(f.stat().st_size for g in exams for f in g) / len(exams) / 2**20
        runs = [run_k(bundle, exams, k, args.studies, root / f"out_k{k}", args.quiet, args.timeout)
                for k in args.senders]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {"benchmark": "dicom_node_load", "when": utc_now(), "machine": machine_info(),
              "machine_note": args.machine,
              "config": {"image_size": args.size, "mib_per_study": round(mb, 1), "bundle": "tiny untrained image "
                         "model, 64x52 input", "quiet_seconds": args.quiet, "transport": "loopback, pynetdicom SCU "
                         "threads, one association per sender", "exam_generation_s": round(made, 1)},
              "runs": runs, "total_lost": sum(r["lost_studies"] for r in runs)}
    publish(report, RESULTS, write=not args.no_write)
    return 0 if report["total_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
