"""The DICOM reader on real files written by others: every file pydicom's wheel ships, and
``pydicom-data``'s files when that package is installed.

None of these files is a mammogram, so nearly all are refused at the Modality check; the point is
*how*. To push their real pixel encodings (JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big endian,
odd bit depths, colour, multi-frame, VOI LUTs…) through the decoders and the VOI step as well,
each file with Pixel Data is also rewritten by pydicom with ``Modality`` ``MG``,
``ImageLaterality`` ``L`` and ``ViewPosition`` ``CC`` (everything else, pixel data and transfer
syntax included, as it was) into a temporary folder: the ``… as MG`` sources. Each file is
given to :func:`riskmodel.imaging.read_mammogram` and to :func:`riskmodel.imaging.scan_dicoms`,
and each outcome is one of:

* ``read``: an image came back (``scan``: status ``ok``);
* ``refused``: a :class:`~riskmodel.imaging.errors.DicomError` subclass whose message names the
  file and states a rule (``scan``: a row with such a status and message);
* ``unclear``: anything else, i.e. another exception type, an empty message, or a scan that
  raised or gave an unknown status. The target is 0.

Files are found offline: the wheel's own ``pydicom/data/test_files`` folder (not
``pydicom.data.get_testdata_files``, which tries to download pydicom-data's files) and, if
the ``pydicom-data`` distribution is installed, its ``data_store/data`` files. Nothing is
downloaded.

Per file: outcome, error class and message, and the read's wall time and peak traced memory
(``tracemalloc``: Python and numpy allocations). The largest files that were read (decoded), and
the one with the largest traced peak, are also read in a child process each, for their peak
resident set size (``VmHWM``, reset after the imports) above the child's RSS before the read.

Usage::

    python benchmarks/real_dicom_files.py [--no-write] [--largest 3]

Writes ``benchmarks/results/real_dicom_files.json``. ``tests/test_real_dicom_files.py`` runs
:func:`check_file` over the wheel's files and asserts 0 unclear outcomes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "real_dicom_files.json"
OUTCOMES = ("read", "refused", "unclear")


def wheel_files() -> list[Path]:
    """Every regular file in the installed pydicom's ``data/test_files`` folder, sorted."""
    import pydicom.data

    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix != ".py")


def pydicom_data_files() -> list[Path]:
    """Every data file of the ``pydicom-data`` distribution if it is installed (else ``[]``): the
    files it lists under ``data_store/data`` in its installed-files record."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("pydicom-data")
    except PackageNotFoundError:
        return []
    files = (Path(str(dist.locate_file(f))) for f in dist.files or () if tuple(f.parts[:2]) == ("data_store", "data"))
    return sorted(p for p in files if p.is_file() and not p.is_symlink() and p.suffix not in (".py", ".pyc")
                  and p.name != "hashes.json")


def as_mammogram(path: Path, folder: Path) -> Path | None:
    """A copy of ``path`` in ``folder`` relabelled as a left CC mammogram (Modality, ImageLaterality,
    ViewPosition set; all else kept), or None if pydicom cannot read it, it has no Pixel Data,
    or pydicom cannot write it back."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
            if "PixelData" not in ds:
                return None
            ds.Modality, ds.ImageLaterality, ds.ViewPosition = "MG", "L", "CC"
            out = folder / f"{len(list(folder.iterdir())):04d}_{path.name}"
            ds.save_as(out)
        except Exception:  # not a dataset pydicom can round-trip: reported as not relabelled
            return None
    return out


def _refusal(error: BaseException, path: Path) -> tuple[str, str]:
    """``("refused", class)`` if ``error`` is a DicomError naming ``path`` with a rule, else unclear."""
    from riskmodel.imaging import DicomError

    if isinstance(error, DicomError) and error.rule.strip() and error.path == str(path):
        return "refused", type(error).__name__
    return "unclear", type(error).__name__


def check_file(path: Path, memory: bool = False) -> dict[str, Any]:
    """Read ``path`` with ``read_mammogram`` and scan it with ``scan_dicoms``; classify both.

    Returns:
        ``read`` / ``scan``: one of :data:`OUTCOMES`; ``read_class`` / ``scan_status``: the error
        class or ``"ok"``; ``message``: the read's error message (``""`` when read); ``seconds``:
        wall time of the read; ``peak_traced_mb`` (with ``memory``): the read's peak traced
        allocation in MB (a second read under ``tracemalloc``); ``bytes``: the file size.
    """
    from riskmodel.imaging import read_mammogram, scan_dicoms
    from riskmodel.imaging.exams import FILE_STATUSES

    row: dict[str, Any] = {"bytes": path.stat().st_size}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        try:
            m = read_mammogram(path)
            row.update(read="read", read_class="ok", message="", shape=list(m.pixels.shape))
        except Exception as e:  # classified, not hidden: anything not a DicomError is "unclear"
            outcome, name = _refusal(e, path)
            row.update(read=outcome, read_class=name, message=str(e))
        row["seconds"] = round(time.perf_counter() - start, 4)
        if memory:
            tracemalloc.start()
            try:
                read_mammogram(path)
            except Exception:
                pass  # classified above
            row["peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
            tracemalloc.stop()
        try:
            manifest = scan_dicoms(path)
            status, error = str(manifest.loc[0, "status"]), str(manifest.loc[0, "error"])
            clear = len(manifest) == 1 and (status == "ok" or (error.startswith(f"{path}: ") and (
                status in FILE_STATUSES or status.endswith("Error"))))
            row.update(scan=("read" if status == "ok" else "refused") if clear else "unclear", scan_status=status)
            if not clear:
                row["scan_message"] = error
        except Exception as e:
            row.update(scan="unclear", scan_status=type(e).__name__, scan_message=str(e))
    return row


_CHILD = """\
import sys, time, warnings
warnings.simplefilter("ignore")
from riskmodel.imaging import DicomError, read_mammogram
import pydicom.pixels

def hwm():  # peak resident set size so far, kB
    return int(next(x for x in open("/proc/self/status") if x.startswith("VmHWM")).split()[1])

try:  # reset the peak to the current RSS (Linux >= 4.0), so the imports do not count
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
before = hwm()
t = time.perf_counter()
try:
    read_mammogram(sys.argv[1])
except DicomError:
    pass
print(before, hwm(), time.perf_counter() - t)
"""


def _child_rss(path: Path) -> dict[str, float]:
    """Peak resident set size (``VmHWM``, MB) of a fresh child process reading ``path``, and the
    part of it above the child's RSS after its imports; Linux only."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True)
    before, after, seconds = (float(v) for v in out.stdout.split())
    return {"rss_after_imports_mb": round(before / 1024, 1), "peak_rss_mb": round(after / 1024, 1),
            "read_rss_mb": round((after - before) / 1024, 1), "seconds": round(seconds, 4)}


def survey(files: list[Path], source: str, memory: bool = True) -> list[dict[str, Any]]:
    """:func:`check_file` over ``files``, each row tagged with ``source`` and its path."""
    return [{"source": source, "path": str(p), **check_file(p, memory=memory)} for p in files]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of each outcome for ``read_mammogram`` and ``scan_dicoms``, and the refusal classes."""
    return {"files": len(rows),
            "read_mammogram": {o: sum(r["read"] == o for r in rows) for o in OUTCOMES},
            "scan_dicoms": {o: sum(r["scan"] == o for r in rows) for o in OUTCOMES},
            "read_refusals": dict(Counter(r["read_class"] for r in rows if r["read"] == "refused").most_common()),
            "read_ok_but_scan_refused": sum(r["read"] == "read" and r["scan"] != "read" for r in rows)}


def _relabelled_sources(files: dict[str, list[Path]], tmp: Path) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """``files`` plus a ``"<name> as MG"`` source of :func:`as_mammogram` copies for each; and a
    map from each copy to its original."""
    sources, original = dict(files), {}
    for name, paths in files.items():
        folder = tmp / name.replace(" ", "_")
        folder.mkdir()
        copies = [(p, as_mammogram(p, folder)) for p in paths]
        sources[f"{name} as MG"] = [c for _, c in copies if c is not None]
        original.update({str(c): str(p) for p, c in copies if c is not None})
    return sources, original


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import pydicom
    from _report import machine_info, publish, utc_now

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--largest", type=int, default=3,
                   help="decoded files (largest first) also read in a child process for RSS")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    start = time.perf_counter()
    found = {"pydicom wheel": wheel_files(), "pydicom-data": pydicom_data_files()}
    with tempfile.TemporaryDirectory() as tmp:
        sources, original = _relabelled_sources({k: v for k, v in found.items() if v}, Path(tmp))
        rows = [r for name, files in sources.items() for r in survey(files, name)]
        decoded = [r for r in rows if r["read"] == "read"]
        largest = sorted(decoded, key=lambda r: -r["bytes"])[:args.largest]
        hungriest = max(decoded, key=lambda r: r["peak_traced_mb"], default=None)
        if hungriest is not None and hungriest not in largest:
            largest.append(hungriest)
        child = [{"source": r["source"], "path": r["path"], "bytes": r["bytes"], "read": r["read"],
                  "read_class": r["read_class"], **_child_rss(Path(r["path"]))} for r in largest]
    import pydicom.data

    roots = {str(Path(pydicom.data.__file__).parents[2]) + "/"}  # site-packages: "pydicom/data/test_files/…"
    roots |= {str(p.parents[2]) + "/" for p in found["pydicom-data"][:1]}  # "data_store/data/…"
    for r in rows + child:  # name the original file, not the temporary copy; paths from the package root
        if r["path"] in original:
            r["message"] = r.get("message", "").replace(r["path"], "<copy>")
            r["path"] = original[r["path"]]
        for root in roots:
            r["path"] = r["path"].removeprefix(root)
            if "message" in r:
                r["message"] = r["message"].replace(root, "")
    keys = ("source", "path", "bytes", "read", "read_class", "seconds", "peak_traced_mb")
    report = {
        "benchmark": "real_dicom_files", "date": utc_now(), "machine": machine_info(),
        "pydicom": pydicom.__version__, "pydicom_data": _version("pydicom-data") if found["pydicom-data"] else None,
        "command_line": "python benchmarks/real_dicom_files.py " + " ".join(sys.argv[1:]),
        "summary": {name: summary([r for r in rows if r["source"] == name]) for name in sources},
        "total": summary(rows),
        "largest_read_files_child_rss": child,
        "slowest_read": {k: max(rows, key=lambda r: r["seconds"])[k] for k in keys},
        "largest_traced_peak": {k: max(rows, key=lambda r: r["peak_traced_mb"])[k] for k in keys},
        "unclear": [r for r in rows if "unclear" in (r["read"], r["scan"])],
        "files": rows,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    publish(report, args.results, write=not args.no_write)
    if report["unclear"]:
        print(json.dumps(report["unclear"], indent=1), file=sys.stderr)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
