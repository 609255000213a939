"""From a folder of files to a manifest (one row per file) to exams (one row per 4-view study).

:func:`scan_dicoms` lists every entry under a folder with a status: ``"ok"`` or the
class name of the :class:`~riskmodel.imaging.errors.DicomError` that
:func:`~riskmodel.imaging.read_mammogram` would raise before decoding for a regular file, or one
of :data:`FILE_STATUSES` for an entry that is not a readable regular file (a broken symlink, a
FIFO, a device, a socket, a link to a folder, a file or folder it may not read). Bad files stay
in the manifest with their message; nothing is dropped.

:func:`assemble_exams` groups the manifest by exam (PatientID + StudyInstanceUID) and picks one
file per slot of :data:`VIEW_ORDER`; the rules are in its docstring and in ``docs/imaging.md``.
Each exam's ``exam_id`` is the key a cohort's ``exam_id`` holds (:func:`exam_ids`: the
AccessionNumber, else the StudyInstanceUID); :func:`upgrade_exams` converts a table written
before that, whose ``exam_id`` was ``"<patient_id>/<study_uid>"``.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel.imaging.dicom import inspect_header
from riskmodel.imaging.errors import is_resource_error

__all__ = ["EXAMS_COLUMNS", "FILE_STATUSES", "MANIFEST_COLUMNS", "SLOT_VIEWS", "VIEW_ORDER", "ExamsFormatWarning",
           "assemble_exams", "exam_ids", "resolve_view_paths", "scan_dicoms", "upgrade_exams"]

#: The four standard views, in the order every exam-level output uses.
VIEW_ORDER: tuple[str, ...] = ("L-CC", "L-MLO", "R-CC", "R-MLO")

#: Views that may fill a slot of each family, in order of preference: the exact view, then
#: substitutes (flagged ``substitute:``).
SLOT_VIEWS: dict[str, tuple[str, ...]] = {"CC": ("CC", "XCC", "XCCL", "XCCM"), "MLO": ("MLO", "ML", "LM", "LMO")}

#: View modifiers (CID 4015) that make an image unfit for a standard slot: it images part of
#: the breast only.
EXCLUDING_MODIFIERS = frozenset({"spot compression", "magnification"})

#: Columns of :func:`assemble_exams`' output, in order.
EXAMS_COLUMNS: tuple[str, ...] = ("exam_id", "study_key", "patient_id", "study_uid", "accession_number", "study_date",
                                  *VIEW_ORDER, "n_views", "flags")

#: Columns of :func:`scan_dicoms`' output, in order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "status", "error", "patient_id", "study_uid", "series_uid", "sop_uid", "accession_number",
    "laterality", "view", "view_family", "view_modifiers", "rows", "columns", "manufacturer",
    "photometric_interpretation", "presentation_intent", "transfer_syntax", "study_date", "acquisition_datetime",
    "instance_number",
)
_INT_COLUMNS = ("rows", "columns", "instance_number")

#: Statuses of :func:`scan_dicoms` rows that are not a regular file it could open (no DICOM is read
#: from them): ``broken_link`` (a symbolic link to nothing, or a link loop), ``not_regular_file``
#: (a FIFO, socket, character or block device: never opened, a FIFO would block),
#: ``directory_link`` (a symbolic link to a folder: not followed) and ``unreadable`` (no
#: permission, or another error while looking at the file or listing a folder).
FILE_STATUSES: tuple[str, ...] = ("broken_link", "not_regular_file", "directory_link", "unreadable")

_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _os_error(e: OSError) -> str:
    if is_resource_error(e):  # out of file descriptors or memory: the scan's problem, not this file's
        raise e
    return e.strerror or str(e)


def _check_entry(path: Path) -> tuple[str, str] | None:
    """``None`` if ``path`` is a regular file (or a link to one) that can be opened for reading,
    else ``(status, message)`` with a status of :data:`FILE_STATUSES`.

    Only ``lstat``/``stat`` look at the entry before it is known to be a regular file, and the
    readability check opens with ``O_NONBLOCK``, so a FIFO is never waited on.

    Raises:
        OSError, MemoryError: a resource error (:func:`~riskmodel.imaging.errors.is_resource_error`).
    """
    try:
        info = os.lstat(path)
    except OSError as e:
        return "unreadable", f"cannot look at the entry: {_os_error(e)}"
    where = ""
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(path)
        except OSError as e:
            return "unreadable", f"cannot read the symbolic link: {_os_error(e)}"
        where = f" (a symbolic link to {target})"
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return "broken_link", f"symbolic link to {target}, which does not exist"
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "broken_link", f"symbolic link loop: {target} leads back to a link on the same path"
            return "unreadable", f"cannot follow the symbolic link to {target}: {_os_error(e)}"
        if stat.S_ISDIR(info.st_mode):
            return "directory_link", (f"symbolic link to the folder {target}, not followed (scan that folder itself "
                                      "to include its files)")
    for test, kind in _FILE_KINDS:
        if test(info.st_mode):
            return "not_regular_file", f"{kind}{where}, not a regular file; not opened"
    if not stat.S_ISREG(info.st_mode):
        return "not_regular_file", f"not a regular file (mode {info.st_mode:#o}){where}; not opened"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        return "unreadable", f"cannot open the file{where}: {_os_error(e)}"
    os.close(fd)
    return None


def _walk(root: Path) -> list[tuple[Path, tuple[str, str] | None]]:
    """Every entry under ``root`` except the folders walked into, each with :func:`_check_entry`'s
    verdict; a folder that cannot be listed is an entry with status ``unreadable``."""
    if not root.is_dir():
        return [(root, _check_entry(root))]
    entries: list[tuple[Path, tuple[str, str] | None]] = []

    def unlisted(e: OSError) -> None:
        entries.append((Path(e.filename or root), ("unreadable", f"cannot list the folder: {_os_error(e)}")))

    for folder, dirs, files in os.walk(root, followlinks=False, onerror=unlisted):
        for name in dirs + files:
            path = Path(folder) / name
            if name in dirs and not path.is_symlink():
                continue  # a real folder: os.walk goes into it
            entries.append((path, _check_entry(path)))
    return entries


def scan_dicoms(root: str | os.PathLike[str], pixel_budget: int | None = None, *,
                progress: bool = False) -> pd.DataFrame:
    """One row per file under ``root`` (recursively), sorted by path; nothing is left out.

    Regular files (and symbolic links to them) are checked as DICOM. Every other entry is a row
    too, with a status of :data:`FILE_STATUSES` and a message: a broken link or link loop
    (``broken_link``), a FIFO, socket or device (``not_regular_file``, never opened), a link to a
    folder (``directory_link``, not followed), a file that cannot be opened or a folder that
    cannot be listed (``unreadable``).

    Headers are read with ``stop_before_pixels``; pixels are never decoded, so a file whose
    compressed stream is corrupt inside is reported ``ok`` here and fails only when read.
    Truncation is still detected from lengths: for native pixel data the declared length
    against the bytes left in the file and against Rows × Columns × BitsAllocated / 8, for
    encapsulated data the fragment items against the file size.

    Args:
        root: a folder (searched recursively, following no directory symlinks) or a single file.
        pixel_budget: bytes of decoded pixel data a file may declare, as in
            :func:`~riskmodel.imaging.read_mammogram` (None: the ``RISKMODEL_PIXEL_BUDGET``
            environment variable, else :data:`~riskmodel.imaging.PIXEL_BUDGET_BYTES`).
        progress: show a progress bar (tqdm, on stderr) over the files.

    Returns:
        DataFrame with :data:`MANIFEST_COLUMNS`: ``path`` (str), ``status`` (``"ok"``, an error
        class name such as ``"TruncatedDicomError"``, or one of :data:`FILE_STATUSES`), ``error``
        (the message, starting with the path; ``""`` when ok),
        the identification tags as strings (``""`` when absent or unreadable), ``laterality``
        (``L``/``R``), ``view`` and ``view_family`` (see :data:`~riskmodel.imaging.VIEW_FAMILY`),
        ``view_modifiers`` (``;``-joined), ``rows``/``columns``/``instance_number`` (nullable Int64)
        and ``acquisition_datetime`` (``YYYYMMDDHHMMSS.ffffff``). Bad files keep whatever header
        fields could be read.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        OSError, MemoryError: a resource error (out of file descriptors or memory), which would
            otherwise misreport good files.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    rows = []
    entries = sorted(_walk(root), key=lambda entry: str(entry[0]))
    if progress:
        from tqdm import tqdm

        entries = tqdm(entries, desc="scanning DICOM headers", unit="file")
    for path, problem in entries:
        if problem is None:
            fields, error = inspect_header(path, pixel_budget)
            status, message = ("ok", "") if error is None else (type(error).__name__, str(error))
        else:
            fields, (status, rule) = {}, problem
            message = f"{path}: {rule}"
        row = {c: fields.get(c) for c in MANIFEST_COLUMNS}
        row["path"], row["status"], row["error"] = str(path), status, message
        row["view_modifiers"] = ";".join(fields.get("view_modifiers") or ())
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    for c in MANIFEST_COLUMNS:
        if c in _INT_COLUMNS:
            frame[c] = frame[c].astype("Int64")
        elif c not in ("path", "status", "error"):
            frame[c] = frame[c].fillna("").astype(object)
    return frame


def _text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    return frame[name].astype(object).where(frame[name].notna(), "").astype(str).str.strip()


def _rank(row: pd.Series, family_order: tuple[str, ...]) -> tuple:
    """Sort key of a slot candidate, best first (rules (1)–(6) of :func:`assemble_exams`)."""
    intent = {"FOR PRESENTATION": 0, "": 1}.get(row["presentation_intent"].upper(), 2)
    inst = row["instance_number"]
    inst_key = -float(inst) if inst is not None and not pd.isna(inst) else float("inf")
    when = "".join(ch for ch in row["acquisition_datetime"] if ch.isdigit())
    when_key = -int(when) if when else 0  # exact integer: latest first
    return (family_order.index(row["view"]), bool(row["view_modifiers"]), intent, when == "", when_key, inst_key,
            row["path"])


def _flag_text(text: str) -> str:
    return text.replace(";", ",")


class ExamsFormatWarning(UserWarning):
    """An exams table in the format written before ``exam_id`` became the cohort's join key was converted."""


def exam_ids(accession: pd.Series | list[str], study_uid: pd.Series | list[str]) -> tuple[list[str], list[list[str]]]:
    """Each exam's ``exam_id`` (the key a cohort's ``exam_id`` names it by) and the flags that say how it was made.

    The ``exam_id`` is the AccessionNumber, what a hospital's RIS or a registry export names an
    exam by. Where that is blank, the StudyInstanceUID (unique to the study by the DICOM
    standard), flagged ``exam_id_from_study_uid``; where both are blank, ``""``, flagged
    ``no_exam_id`` (no woman can be matched to it). A key held by several exams is flagged
    ``duplicate_exam_id`` on each of them: a woman whose key it is gets no exam (status
    ``no_exam``, the message names the clash) rather than one of them picked by a guess.

    Args:
        accession, study_uid: ``(n,)`` the exams' AccessionNumber and StudyInstanceUID as text
            (``""`` when absent).

    Returns:
        ``(ids, flags)``: ``n`` keys, and for each exam a list of the flags above (maybe empty).

    >>> exam_ids(["A1", "", "", "A1"], ["1.2", "1.3", "", "1.4"])
    (['A1', '1.3', '', 'A1'], [['duplicate_exam_id'], ['exam_id_from_study_uid'], ['no_exam_id'], \
['duplicate_exam_id']])
    """
    ids: list[str] = []
    flags: list[list[str]] = []
    for acc, uid in zip(accession, study_uid, strict=True):
        acc, uid = str(acc).strip(), str(uid).strip()
        ids.append(acc or uid)
        flags.append([] if acc else ["exam_id_from_study_uid"] if uid else ["no_exam_id"])
    counts = pd.Series(ids, dtype=object).value_counts()
    for key, own in zip(ids, flags, strict=True):
        if key and counts[key] > 1:
            own.append("duplicate_exam_id")
    return ids, flags


def _add_flags(existing: str, more: list[str]) -> str:
    return ";".join([existing, *more] if existing else more)


def upgrade_exams(exams: pd.DataFrame, source: str = "the exams table") -> pd.DataFrame:
    """``exams`` as it is, or converted when written by riskmodel before ``exam_id`` was the join key.

    Such a table (from ``riskmodel scan --exams`` or :func:`assemble_exams` of riskmodel 0.x
    before this change) has no ``study_key`` column, and its ``exam_id`` is
    ``"<patient_id>/<study_uid>"`` on every row. It is converted as a new scan would write it:
    that composite moves to ``study_key`` and ``exam_id`` becomes :func:`exam_ids`' key (the
    accession number, else the StudyInstanceUID), with the same flags; an
    :class:`ExamsFormatWarning` names ``source`` and says so. Any other table is returned unchanged
    (the same object).

    Examples:
        >>> old = pd.DataFrame({"exam_id": ["P1/1.2"], "patient_id": ["P1"], "study_uid": ["1.2"],
        ...                     "accession_number": ["0042"], "flags": [""]})
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     upgrade_exams(old)[["exam_id", "study_key"]].iloc[0].tolist()
        ['0042', 'P1/1.2']
    """
    cols = ("exam_id", "patient_id", "study_uid", "accession_number")
    if "study_key" in exams.columns or not all(c in exams.columns for c in cols) or exams.empty:
        return exams
    text = {c: _text_column(exams, c) for c in cols}
    if not (text["exam_id"] == text["patient_id"] + "/" + text["study_uid"]).all():
        return exams
    ids, flags = exam_ids(text["accession_number"], text["study_uid"])
    out = exams.rename(columns={"exam_id": "study_key"})
    out.insert(0, "exam_id", ids)
    if "flags" in out.columns:
        out["flags"] = [_add_flags(f if isinstance(f, str) else "", more) if more else f
                        for f, more in zip(out["flags"], flags, strict=True)]
    warnings.warn(f"{source}: written by an older riskmodel, whose exam_id was '<patient_id>/<study_uid>'; read "
                  "with exam_id = the accession number (the study UID where it is blank), the old key kept as "
                  "study_key. Re-scan ('riskmodel scan ROOT --exams FILE') to write the current format.",
                  ExamsFormatWarning, stacklevel=2)
    return out


def assemble_exams(manifest: pd.DataFrame) -> pd.DataFrame:
    """Group a manifest (from :func:`scan_dicoms`) into exams and pick one file per view slot.

    Rules:

    * **Exam key**: ``patient_id`` + ``study_uid`` (both as text; an empty StudyInstanceUID is a
      key of its own and flagged ``no_study_uid``). An exam exists for every key seen on an
      ``ok`` row or on a bad row whose header was readable, except rows that are
      ``NotMammogramError`` (other modalities sharing the folder).
    * **Candidates** for slot ``<side>-<family>`` are the ``ok`` rows of that side whose view is
      in :data:`SLOT_VIEWS` for the family and that carry no spot-compression or magnification
      modifier.
    * **Choice** among candidates, first difference wins: (1) the exact view (CC, MLO) before
      substitutes (XCC, XCCL, XCCM; ML, LM, LMO, in that order); (2) no view modifier before
      some; (3) FOR PRESENTATION, then unknown intent, then FOR PROCESSING; (4) the latest
      acquisition date/time (missing last); (5) the highest InstanceNumber (missing last);
      (6) the smallest path.
    * **Flags** (``;``-joined, in this order): ``missing:<slot>`` (no candidate; the path is
      NaN); ``substitute:<slot>=<view>``; ``for_processing:<slot>``; ``modifier:<slot>=<names>``;
      ``duplicate:<slot>`` (another candidate had the chosen view); ``extra_view:<side>-<view>``
      (an ok image used in no slot, including substitutes that lost to the exact view);
      ``bad_file:<status>:<file name>`` (a bad file with this exam's key); ``no_study_uid``;
      ``accession_conflict`` (several accession numbers among the exam's files; the smallest is used);
      ``exam_id_from_study_uid``, ``no_exam_id``, ``duplicate_exam_id`` (see :func:`exam_ids`).
    * **exam_id** is the key a cohort's ``exam_id`` holds for the woman's exam: the
      AccessionNumber, else the StudyInstanceUID (:func:`exam_ids`); ``study_key`` is the grouping
      key ``"<patient_id>/<study_uid>"``.

    Args:
        manifest: needs ``path``, ``status``, ``patient_id``, ``study_uid``, ``laterality`` and
            ``view``; ``accession_number``, ``study_date``, ``presentation_intent``,
            ``acquisition_datetime``, ``instance_number`` and ``view_modifiers`` are used when
            present.

    Returns:
        One row per exam (:data:`EXAMS_COLUMNS`), sorted by patient_id, study_date, study_uid:
        ``exam_id`` (the join key above), ``study_key`` (``"<patient_id>/<study_uid>"``),
        ``patient_id``, ``study_uid``, ``accession_number``,
        ``study_date``, one path column per slot in :data:`VIEW_ORDER` (NaN when missing),
        ``n_views`` (int) and ``flags`` (``""`` when none).
    """
    required = ("path", "status", "patient_id", "study_uid", "laterality", "view")
    missing = [c for c in required if c not in manifest]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; build it with scan_dicoms()")
    m = pd.DataFrame({c: _text_column(manifest, c) for c in (
        "path", "status", "patient_id", "study_uid", "accession_number", "study_date", "laterality", "view",
        "presentation_intent", "acquisition_datetime", "view_modifiers")})
    m["laterality"] = m["laterality"].str.upper()
    m["view"] = m["view"].str.upper()
    inst = manifest["instance_number"] if "instance_number" in manifest else pd.Series(np.nan, index=manifest.index)
    m["instance_number"] = pd.to_numeric(inst, errors="coerce").astype(object).where(inst.notna(), None)
    m["ok"] = m["status"] == "ok"
    keyed = m["ok"] | ((m["status"] != "NotMammogramError") & ((m["study_uid"] != "") | (m["patient_id"] != "")))

    out_rows = []
    for (patient_id, study_uid), g in m[keyed].groupby(["patient_id", "study_uid"], sort=False):
        ok = g[g["ok"]]
        flags: list[str] = []
        row: dict[str, object] = {"study_key": f"{patient_id}/{study_uid}", "patient_id": patient_id,
                                  "study_uid": study_uid}
        accessions = sorted(set(g["accession_number"]) - {""})
        row["accession_number"] = accessions[0] if accessions else ""
        dates = sorted(set(g["study_date"]) - {""})
        row["study_date"] = dates[0] if dates else ""
        used: set[int] = set()
        late: list[str] = []
        for slot in VIEW_ORDER:
            side, family = slot.split("-")
            order = SLOT_VIEWS[family]
            cand = ok[(ok["laterality"] == side) & ok["view"].isin(order)]
            cand = cand[[not (set(v.split(";")) & EXCLUDING_MODIFIERS) for v in cand["view_modifiers"]]]
            if cand.empty:
                row[slot] = np.nan
                flags.append(f"missing:{slot}")
                continue
            keys = sorted(((_rank(r, order), idx) for idx, r in cand.iterrows()))
            best = keys[0][1]
            chosen = cand.loc[best]
            row[slot] = chosen["path"]
            used.add(best)
            if chosen["view"] != order[0]:
                late.append(f"substitute:{slot}={chosen['view']}")
            if chosen["presentation_intent"].upper() == "FOR PROCESSING":
                late.append(f"for_processing:{slot}")
            if chosen["view_modifiers"]:
                late.append(f"modifier:{slot}={_flag_text(chosen['view_modifiers']).replace(',', '+')}")
            if ((cand["view"] == chosen["view"]).sum()) > 1:
                late.append(f"duplicate:{slot}")
                used.update(cand.index[cand["view"] == chosen["view"]])
        flags += late
        extras = sorted({f"extra_view:{r['laterality'] or '?'}-{r['view'] or '?'}"
                         for idx, r in ok.iterrows() if idx not in used})
        flags += extras
        bad = g[~g["ok"]]
        flags += [f"bad_file:{r['status']}:{_flag_text(os.path.basename(r['path']))}" for _, r in bad.iterrows()]
        if study_uid == "":
            flags.append("no_study_uid")
        if len(accessions) > 1:
            flags.append("accession_conflict")
        row["n_views"] = int(sum(isinstance(row[s], str) for s in VIEW_ORDER))
        row["flags"] = ";".join(flags)
        out_rows.append(row)

    ids, more = exam_ids([r["accession_number"] for r in out_rows], [r["study_uid"] for r in out_rows])
    for row, key, extra in zip(out_rows, ids, more, strict=True):
        row["exam_id"], row["flags"] = key, _add_flags(str(row["flags"]), extra)
    exams = pd.DataFrame(out_rows, columns=list(EXAMS_COLUMNS))
    exams = exams.sort_values(["patient_id", "study_date", "study_uid"], kind="stable").reset_index(drop=True)
    exams["n_views"] = exams["n_views"].astype(int)
    for slot in VIEW_ORDER:
        exams[slot] = exams[slot].astype(object)
    return exams


def resolve_view_paths(exams: pd.DataFrame, table: str | os.PathLike[str]) -> pd.DataFrame:
    """``exams`` read from the file ``table``, with relative view paths made relative to that file's folder.

    A path in an exams table names a file relative to the table, not to the folder a command
    runs in; absolute paths and blank slots are kept as they are.

    Examples:
        >>> t = pd.DataFrame({"exam_id": ["e"], "L-CC": ["a/1.dcm"], "L-MLO": ["/x/2.dcm"], "R-CC": [None],
        ...                   "R-MLO": [""]})
        >>> resolve_view_paths(t, "/data/exams.csv").iloc[0, 1:].tolist()
        ['/data/a/1.dcm', '/x/2.dcm', None, '']
    """
    base = Path(table).parent
    out = exams.copy()
    for slot in VIEW_ORDER:
        if slot in out.columns:
            out[slot] = [str(base / v) if isinstance(v, str) and v.strip() and not Path(v).is_absolute() else v
                         for v in out[slot]]
    return out
