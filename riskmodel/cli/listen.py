"""``riskmodel listen``: run the DICOM node (a Storage SCP that scores each study and reports it as an SR)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from riskmodel.cli.options import UsageError, add_device


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "listen",
        help="run a DICOM node: receive mammograms (C-STORE), score each study, write results and a DICOM SR",
        description=(
            "A DICOM Storage SCP. Accepts C-ECHO and Digital Mammography X-Ray Image Storage - For Presentation; "
            "refuses every other SOP class (status 0x0122). Each instance is written to OUT/store/ and journalled "
            "before it is acknowledged. A study is scored once its four standard views are in, or --quiet-seconds "
            "after its last instance (missing views masked and said). Per study: a row appended to "
            "OUT/results.csv, a FHIR RiskAssessment in OUT/fhir/, a Comprehensive SR in OUT/sr/ (sent to "
            "--forward). SIGTERM finishes the study in hand and exits; a restart resumes pending studies. "
            "See docs/dicom-node.md."
        ),
    )
    p.add_argument("--port", type=int, default=11112, help="TCP port to listen on (default 11112; 0: any free)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer "
                                                       "only; another address needs --allow-ae)")
    p.add_argument("--allow-ae", metavar="AE", nargs="+", default=None,
                   help="calling AE titles accepted (e.g. the PACS's); associations from any other are rejected. "
                        "Required to listen beyond this computer")
    p.add_argument("--ae-title", default="RISKMODEL", help="this node's AE title; callers must use it (default "
                                                            "RISKMODEL)")
    p.add_argument("--bundle", required=True, help="saved model folder: image-only bundle, hybrid model, or any "
                                                    "kind the model registry loads")
    p.add_argument("--out", required=True, help="output folder (store/, journal.jsonl, results.csv, sr/, fhir/)")
    p.add_argument("--cohort", help="table of risk factors, one row per woman, matched to each study by exam_id = "
                                    "AccessionNumber or id = PatientID (needed by hybrid models)")
    p.add_argument("--policy", help="screening policy for the recommendation in the SR and FHIR (name or file)")
    p.add_argument("--forward", metavar="HOST:PORT:AE", help="send each SR by C-STORE to this AE")
    p.add_argument("--quiet-seconds", type=float, default=30.0,
                   help="score a study missing views this many seconds after its last instance (default 30)")
    add_device(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load the model, start the node, serve until SIGTERM or Ctrl-C."""
    from riskmodel.node.scoring import StudyScorer
    from riskmodel.node.scp import DicomNode, parse_forward
    from riskmodel.serve.binding import is_loopback
    from riskmodel.tables import read_table

    if not Path(args.bundle).is_dir():
        raise UsageError(f"--bundle {args.bundle}: no such folder")
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port {args.port}: must be from 0 to 65535")
    if not is_loopback(args.host) and not args.allow_ae:
        raise UsageError(f"--host {args.host}: listening beyond this computer needs --allow-ae with the calling AE "
                         "titles of the PACS or modalities that may send (see docs/dicom-node.md)")
    forward = parse_forward(args.forward) if args.forward else None
    cohort = read_table(args.cohort) if args.cohort else None
    scorer = StudyScorer(Path(args.bundle), cohort=cohort, policy=args.policy, device=args.device)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s riskmodel listen: %(message)s")
    for noisy in ("pynetdicom", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    node = DicomNode(args.out, scorer, ae_title=args.ae_title, host=args.host, port=args.port,
                     quiet_seconds=args.quiet_seconds, forward=forward, allowed_callers=args.allow_ae)
    signal.signal(signal.SIGTERM, node.request_stop)
    signal.signal(signal.SIGINT, node.request_stop)
    node.serve_forever()
    return 0
