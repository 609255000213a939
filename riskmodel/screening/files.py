"""Writing outputs so that a failure leaves nothing behind: a file or a folder of pages appears
under its final name only once it is complete (a temporary name next to it, then a rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["staged_into", "write_atomically"]


def _umask_mode(path: Path, mode: int) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would (tempfile makes them private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def write_atomically(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file next to ``path`` and rename it into place; on any
    failure the temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        _umask_mode(Path(tmp), 0o666)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def staged_into(target: Path) -> Iterator[Path]:
    """A temporary folder next to ``target`` to write into; on leaving the block without an error its
    files are moved into ``target`` (created if needed), else it is deleted and ``target`` is untouched.

    Unlike :func:`riskmodel.jsonstate.staged_folder`, which replaces a saved model's whole folder,
    this adds pages to a folder that may already hold others (a clinic's report folder)."""
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target}: exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial"))
    try:
        yield tmp
        _umask_mode(tmp, 0o777)
        if not target.exists():
            os.replace(tmp, target)
            return
        for entry in sorted(tmp.iterdir()):
            os.replace(entry, target / entry.name)
        tmp.rmdir()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
