"""The DICOM application entity: a Storage SCP that journals, groups, scores and reports.

:class:`DicomNode` accepts C-ECHO and Digital Mammography X-Ray Image Storage – For Presentation;
any other storage SOP class (For Processing, CT, …) is refused with the DIMSE status 0x0122
"Refused: SOP Class Not Supported" and logged with the caller's AE title. A received instance is
written to the store and journalled **before** the success status goes back. Instances are grouped
by StudyInstanceUID; a study is scored (one at a time, on a worker thread) as soon as its four
standard views are in, or ``quiet_seconds`` after its last new instance. pynetdicom is imported
when a node is built, not with this package.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskmodel.imaging.dicom import PIXEL_BUDGET_BYTES, inspect_header
from riskmodel.node.scoring import StudyScorer
from riskmodel.node.store import NodeStore

__all__ = ["MG_FOR_PRESENTATION", "MG_FOR_PROCESSING", "STATUS", "DicomNode", "Forward", "parse_forward"]

LOG = logging.getLogger("riskmodel.node")
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
#: DIMSE statuses the node answers with.
STATUS = {"success": 0x0000, "sop_class_not_supported": 0x0122, "out_of_resources": 0xA700,
          "cannot_understand": 0xC000}
#: The four standard views whose arrival completes a study.
STANDARD_VIEWS = frozenset({"L-CC", "L-MLO", "R-CC", "R-MLO"})
#: Largest instance accepted (bytes): the reader's pixel budget plus room for the header.
MAX_INSTANCE_BYTES = PIXEL_BUDGET_BYTES + (64 << 20)


@dataclass(frozen=True)
class Forward:
    """Where SRs are sent by C-STORE (``--forward HOST:PORT:AE``)."""

    host: str
    port: int
    ae_title: str


def parse_forward(text: str) -> Forward:
    """``"HOST:PORT:AE"`` → :class:`Forward` (ValueError naming the rule broken)."""
    parts = str(text).rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise ValueError(f"--forward {text!r}: expected HOST:PORT:AE, e.g. pacs.local:104:PACS")
    if not parts[1].isdigit() or not 0 < int(parts[1]) < 65536:
        raise ValueError(f"--forward {text!r}: PORT must be a number from 1 to 65535")
    if len(parts[2]) > 16:
        raise ValueError(f"--forward {text!r}: an AE title has at most 16 characters")
    return Forward(parts[0], int(parts[1]), parts[2])


@dataclass
class _Study:
    last: float
    slots: set[str] = field(default_factory=set)
    busy: bool = False


class DicomNode:
    """A running node (see the module docstring).

    Args:
        out: the output folder (:class:`~riskmodel.node.store.NodeStore` layout).
        scorer: the loaded model and what to write with each result.
        ae_title: this node's AE title; associations must call it.
        host, port: where to listen (port 0: any free port, see :attr:`port`).
        quiet_seconds: a study missing views is scored this long after its last new instance.
        forward: where to send each SR, or None.
        allowed_callers: calling AE titles whose associations are accepted; None: any caller (for a
            node listening on loopback only, as ``riskmodel listen`` requires then).
    """

    def __init__(self, out: str | Path, scorer: StudyScorer, *, ae_title: str = "RISKMODEL", host: str = "127.0.0.1",
                 port: int = 11112, quiet_seconds: float = 30.0, forward: Forward | None = None,
                 allowed_callers: Sequence[str] | None = None):
        if not 0 < len(ae_title) <= 16:
            raise ValueError(f"--ae-title {ae_title!r}: an AE title has 1 to 16 characters")
        if quiet_seconds < 0:
            raise ValueError(f"--quiet-seconds {quiet_seconds}: must be >= 0")
        self.store = NodeStore(out)
        self.scorer = scorer
        self.ae_title, self.host, self.port = ae_title, host, int(port)
        self.quiet_seconds = float(quiet_seconds)
        self.forward = forward
        self.allowed_callers = None if allowed_callers is None else [str(a) for a in allowed_callers]
        self._studies: dict[str, _Study] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._server: Any = None
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Resume pending studies from the journal, start the worker, then listen (returns at once)."""
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
        from pynetdicom.sop_class import Verification

        _config.STORE_RECV_CHUNKED_DATASET = True  # received data sets go to a file, never wholly to memory
        self._resume()
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = True
        if self.allowed_callers is not None:
            ae.require_calling_aet = self.allowed_callers
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            syntaxes = ALL_TRANSFER_SYNTAXES if context.abstract_syntax == MG_FOR_PRESENTATION else None
            ae.add_supported_context(context.abstract_syntax, syntaxes or context.transfer_syntax)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)]
        self._worker = threading.Thread(target=self._work, name="riskmodel-node-worker", daemon=True)
        self._worker.start()
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = int(self._server.server_address[1])
        LOG.info("listening as %s on %s:%d (quiet period %gs), results in %s", self.ae_title, self.host, self.port,
                 self.quiet_seconds, self.store.root)

    def stop(self) -> None:
        """Stop listening, let the worker finish the study in hand, and return."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        LOG.info("stopped; %d studies pending for the next start", len(self.store.pending()))

    def serve_forever(self) -> None:
        """:meth:`start`, then block until :meth:`request_stop` (SIGTERM, Ctrl-C), then :meth:`stop`."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()

    def request_stop(self, *_: Any) -> None:
        """Ask :meth:`serve_forever` to stop (safe from a signal handler)."""
        self._stop.set()
        self._wake.set()

    def idle(self) -> bool:
        """True when no study is waiting to be scored."""
        with self._lock:
            return not self._studies

    # ------------------------------------------------------------------ receiving

    def _on_echo(self, event: Any) -> int:
        return STATUS["success"]

    def _refuse(self, event: Any, status: str, why: str, **fields: Any) -> int:
        calling = str(event.assoc.requestor.ae_title).strip()
        LOG.warning("refused C-STORE from AE %r (%s): %s", calling, event.assoc.requestor.address, why)
        self.store.log("refused", calling_ae=calling, status=status, reason=why, **fields)
        return STATUS[status]

    def _on_store(self, event: Any) -> int:
        sop_class = str(event.context.abstract_syntax)
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        if sop_class != MG_FOR_PRESENTATION:
            name = "Digital Mammography For Processing" if sop_class == MG_FOR_PROCESSING else sop_class
            return self._refuse(event, "sop_class_not_supported", f"SOP class {name} is not accepted (only "
                                f"Digital Mammography X-Ray Image Storage - For Presentation)", sop_uid=sop_uid)
        path = Path(event.dataset_path)
        size = path.stat().st_size
        if size > MAX_INSTANCE_BYTES:
            return self._refuse(event, "out_of_resources", f"{size} bytes is over the limit of {MAX_INSTANCE_BYTES}",
                                sop_uid=sop_uid)
        fields, error = inspect_header(path)
        study = str(fields.get("study_uid") or "").strip()
        if not study:
            return self._refuse(event, "cannot_understand", f"no StudyInstanceUID could be read ({error})",
                                sop_uid=sop_uid)
        slot = f"{fields.get('laterality', '')}-{fields.get('view_family', '')}" if error is None else ""
        kept, duplicate = self.store.keep(path, study, sop_uid)
        calling = str(event.assoc.requestor.ae_title).strip()
        self.store.log("received", study_uid=study, sop_uid=sop_uid, path=str(kept.relative_to(self.store.root)),
                       calling_ae=calling, slot=slot, duplicate=duplicate,
                       error=None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            LOG.warning("instance %s of study %s from AE %r is unreadable and will be masked: %s", sop_uid, study,
                        calling, error)
        if not duplicate:
            with self._lock:
                state = self._studies.setdefault(study, _Study(last=time.time()))
                state.last = time.time()
                if slot:
                    state.slots.add(slot)
            self._wake.set()
        return STATUS["success"]

    def _resume(self) -> None:
        """Pending studies of the journal, with their views; their quiet period starts again now (the
        sender may have been cut off by the stop and resend the rest)."""
        pending = self.store.pending()
        now = time.time()
        for e in self.store.events():
            study = str(e.get("study_uid", ""))
            if e.get("event") == "received" and study in pending:
                state = self._studies.setdefault(study, _Study(last=now))
                if e.get("slot"):
                    state.slots.add(str(e["slot"]))
        if pending:
            LOG.info("resuming %d pending studies from the journal", len(pending))

    # ------------------------------------------------------------------ scoring

    def _due(self) -> str | None:
        now = time.time()
        with self._lock:
            for study, state in self._studies.items():
                if not state.busy and (STANDARD_VIEWS <= state.slots or now - state.last >= self.quiet_seconds):
                    state.busy = True
                    return study
        return None

    def _work(self) -> None:
        while not self._stop.is_set():
            study = self._due()
            if study is None:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            self._score(study)

    def _score(self, study: str) -> None:
        with self._lock:
            started = self._studies[study].last
        try:
            result = self.scorer.score(self.store, study)
        except Exception as exc:  # a failure to write stays with this study; it is retried later
            LOG.exception("study %s: could not write its result: %s", study, exc)
            with self._lock:
                self._studies[study].busy = False
                self._studies[study].last = time.time()
            return
        self.store.log("scored", study_uid=study, status=result["status"], views_used=result["views_used"])
        LOG.info("study %s: %s, views %s", study, result["status"], ";".join(result["views_used"]) or "none")
        with self._lock:
            state = self._studies[study]
            if state.last == started:
                del self._studies[study]
            else:  # new instances arrived while scoring: score again after them
                state.busy = False
                self.store.log("reopened", study_uid=study)
        if self.forward is not None and result.get("sr_path"):
            self._send(Path(result["sr_path"]), study)

    def _send(self, path: Path, study: str) -> None:
        from pynetdicom import AE
        from pynetdicom.sop_class import ComprehensiveSRStorage

        ae = AE(ae_title=self.ae_title)
        ae.add_requested_context(ComprehensiveSRStorage)
        fwd = self.forward
        assoc = ae.associate(fwd.host, fwd.port, ae_title=fwd.ae_title)
        status = None
        if assoc.is_established:
            try:
                reply = assoc.send_c_store(path)
                status = int(reply.Status) if reply else None
            finally:
                assoc.release()
        ok = status == 0
        self.store.log("forwarded", study_uid=study, to=f"{fwd.host}:{fwd.port}:{fwd.ae_title}", status=status, ok=ok)
        if not ok:
            LOG.warning("study %s: SR not accepted by %s:%d:%s (status %s)", study, fwd.host, fwd.port,
                        fwd.ae_title, status)
