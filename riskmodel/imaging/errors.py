"""The errors of the DICOM ingestion pipeline: one hierarchy rooted at :class:`DicomError`.

Every error names the file and the rule it broke, so that ``str(error)`` alone tells a user
what to fix::

    DicomError (ValueError)
    ├── NotDicomError           not a DICOM file (no DICM prefix, not a parseable dataset)
    ├── TruncatedDicomError     the file is cut short, or its pixel data is shorter than declared
    ├── NoPixelDataError        a DICOM object without an image (SR, presentation state, …)
    ├── NotMammogramError       Modality is not MG
    ├── DecoderMissingError     compressed pixel data and no installed decoder for its transfer syntax
    ├── UnsupportedImageError   an MG image this pipeline does not handle (colour, multi-frame, blank, …)
    │   └── PixelBudgetError    more pixel data (or a deflated data set inflating to more) than the budget allows
    ├── MetadataError           laterality or view missing, unrecognised or contradictory
    └── DicomReadError          anything else pydicom raised while reading or decoding

A DicomError is a property of the file: retrying gives the same answer, so it may be cached.
Running out of a resource while reading (:func:`is_resource_error`: ``MemoryError``, an
``OSError`` such as ENOMEM, EMFILE or ENOSPC, ``KeyboardInterrupt``) is not the file's fault: the
reader lets it propagate unchanged, never wrapped in a DicomError, and nothing caches it.

:func:`riskmodel.imaging.scan_dicoms` reports the class name of the error as a file's
``status``, so the names are part of the public interface.
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "RESOURCE_ERRNOS",
    "DecoderMissingError",
    "DicomError",
    "DicomReadError",
    "MetadataError",
    "NoPixelDataError",
    "NotDicomError",
    "NotMammogramError",
    "PixelBudgetError",
    "TruncatedDicomError",
    "UnsupportedImageError",
    "is_resource_error",
]

#: errno values of an OSError that says the machine ran short (memory, file descriptors, buffers,
#: disk space or quota), not that the file is bad.
RESOURCE_ERRNOS: frozenset[int] = frozenset(
    getattr(errno, name) for name in ("ENOMEM", "EMFILE", "ENFILE", "ENOSPC", "EDQUOT", "EAGAIN", "ENOBUFS")
    if hasattr(errno, name))


def is_resource_error(error: BaseException) -> bool:
    """True if ``error`` is a resource or interruption error rather than a fault of the file:
    ``MemoryError``, an ``OSError`` whose errno is in :data:`RESOURCE_ERRNOS`, or anything that is
    not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``). Such errors are transient: they
    propagate and are never cached as a bad file.

    >>> import errno
    >>> is_resource_error(MemoryError()), is_resource_error(OSError(errno.EMFILE, "Too many open files"))
    (True, True)
    >>> is_resource_error(OSError("broken data stream")), is_resource_error(ValueError("bad tag"))
    (False, False)
    """
    if isinstance(error, MemoryError) or not isinstance(error, Exception):
        return True
    return isinstance(error, OSError) and error.errno in RESOURCE_ERRNOS


class DicomError(ValueError):
    """A file cannot be turned into a mammogram. ``path`` names the file, ``rule`` the problem."""

    def __init__(self, path: str | os.PathLike[str], rule: str):
        self.path = str(path)
        self.rule = rule
        super().__init__(f"{self.path}: {rule}")

    def __reduce__(self):  # keep the two-argument constructor picklable (DataLoader workers)
        return (type(self), (self.path, self.rule))


class NotDicomError(DicomError):
    """The file is not DICOM: empty, no ``DICM`` prefix and not a parseable raw dataset."""


class TruncatedDicomError(DicomError):
    """The file ends before a data element it declares does, or the pixel data is shorter than
    Rows × Columns × BitsAllocated / 8 bytes."""


class NoPixelDataError(DicomError):
    """The DICOM object has no (7FE0,0010) Pixel Data."""


class NotMammogramError(DicomError):
    """(0008,0060) Modality is missing or not ``MG``."""


class DecoderMissingError(DicomError):
    """The pixel data is compressed with a transfer syntax no installed pydicom plugin decodes.

    ``transfer_syntax`` is the UID; the message names the packages to install.
    """

    def __init__(self, path: str | os.PathLike[str], rule: str, transfer_syntax: str = ""):
        self.transfer_syntax = transfer_syntax
        super().__init__(path, rule)

    def __reduce__(self):
        return (type(self), (self.path, self.rule, self.transfer_syntax))


class UnsupportedImageError(DicomError):
    """A well-formed MG object this pipeline does not handle: not MONOCHROME1/2, more than one
    sample per pixel, more than one frame (tomosynthesis), or pixel values that are all equal."""


class MetadataError(DicomError):
    """Laterality or view cannot be determined, or two tags contradict each other."""


class DicomReadError(DicomError):
    """Any other failure while pydicom parses or decodes the file; the message carries pydicom's."""


class PixelBudgetError(UnsupportedImageError):
    """The image is larger than the pixel budget: Rows × Columns × frames × samples ×
    BitsAllocated / 8 bytes exceed :data:`riskmodel.imaging.dicom.PIXEL_BUDGET_BYTES` (or the
    ``RISKMODEL_PIXEL_BUDGET`` environment variable, or the ``pixel_budget`` argument), or a
    deflated data set inflates to more than the budget plus the metadata allowance. Raised
    before anything is decoded or inflated past the limit."""
