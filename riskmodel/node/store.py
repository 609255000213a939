"""The node's folder: received instances, the journal, and the results file, all written atomically.

Layout under ``DIR`` (the ``--out`` folder)::

    store/<StudyInstanceUID>/<SOPInstanceUID>.dcm   every accepted instance (an ordinary DICOM folder:
                                                    ``riskmodel scan`` and ``predict --exams`` read it)
    journal.jsonl                                   one JSON line per event: received, scored
    results.csv                                     one row per scored study
    sr/<StudyInstanceUID>.dcm                       the Comprehensive SR of each result
    fhir/<StudyInstanceUID>.json                    the FHIR RiskAssessment of each result

An instance is renamed into ``store/`` and its ``received`` line is flushed to disk before the node
acknowledges it, so an acknowledged instance survives a crash; on start, every study with a
``received`` line after its last ``scored`` line is pending again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from riskmodel.jsonstate import sha256_bytes

__all__ = ["RESULT_COLUMNS", "NodeStore", "safe_uid"]

#: Columns of ``results.csv``, in order.
RESULT_COLUMNS = ("study_uid", "accession_number", "patient_id", "risk_1y", "risk_2y", "risk_3y", "risk_4y",
                  "risk_5y", "views_used", "status", "message", "model", "bundle_digest", "scored_at")

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def safe_uid(uid: str) -> str:
    """``uid`` itself when it is a valid DICOM UID (digits and dots, at most 64 characters), else
    ``"x"`` + the first 32 hex digits of its SHA-256: a file name that cannot escape its folder."""
    text = str(uid).strip().rstrip("\0")
    if _UID.match(text) and len(text) <= 64:
        return text
    return "x" + sha256_bytes(text.encode("utf-8", "replace"))[:32]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class NodeStore:
    """The ``--out`` folder of a node (see the module docstring); safe to use from several threads."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.received = self.root / "store"
        self.sr_dir = self.root / "sr"
        self.fhir_dir = self.root / "fhir"
        self.journal = self.root / "journal.jsonl"
        self.results = self.root / "results.csv"
        for folder in (self.received, self.sr_dir, self.fhir_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def study_dir(self, study_uid: str) -> Path:
        """Folder of one study's received instances."""
        return self.received / safe_uid(study_uid)

    def instance_path(self, study_uid: str, sop_uid: str) -> Path:
        """Where an instance is kept (a duplicate send lands on the same file)."""
        return self.study_dir(study_uid) / f"{safe_uid(sop_uid)}.dcm"

    def keep(self, source: Path, study_uid: str, sop_uid: str) -> tuple[Path, bool]:
        """Copy the received file ``source`` into the store (flushed, renamed into place).

        Returns ``(path, duplicate)``: ``duplicate`` is True when an instance with this SOP
        Instance UID was already stored (it is replaced by the new copy).
        """
        target = self.instance_path(study_uid, sop_uid)
        duplicate = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        with open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return target, duplicate

    def log(self, event: str, **fields: Any) -> None:
        """Append one line ``{"event": event, "time": ..., **fields}`` to the journal, flushed to disk."""
        line = json.dumps({"event": event, "time": time.time(), **fields}, sort_keys=True) + "\n"
        with self._lock, open(self.journal, "a", encoding="utf-8") as fp:
            fp.write(line)
            fp.flush()
            os.fsync(fp.fileno())

    def events(self) -> list[dict[str, Any]]:
        """The journal's lines, in order (a torn last line from a crash is skipped)."""
        if not self.journal.exists():
            return []
        out = []
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def pending(self) -> dict[str, float]:
        """Studies with an instance received after their last result: ``{study_uid: last receipt time}``."""
        last: dict[str, float] = {}
        for e in self.events():
            study = str(e.get("study_uid", ""))
            if e.get("event") == "received" and not e.get("duplicate"):
                last[study] = float(e.get("time", 0.0))
            elif e.get("event") == "scored":
                last.pop(study, None)
        return last

    def append_result(self, row: Mapping[str, Any]) -> None:
        """Append one row to ``results.csv`` (header first if the file is new) in one ``write`` of
        an ``O_APPEND`` descriptor, flushed: a reader never sees half a row."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        with self._lock:
            new = not self.results.exists() or self.results.stat().st_size == 0
            if new:
                writer.writerow(RESULT_COLUMNS)
            writer.writerow([_cell(row.get(c)) for c in RESULT_COLUMNS])
            fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, buf.getvalue().encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else repr(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ";".join(str(v) for v in value)
    return str(value)
