"""DICOM ingestion for mammography: files → manifest → exams → tensors.

The data flow, one stage per module::

    folder of files ─► scan_dicoms        (exams.py: one row per file, status "ok" or an error name)
                    ─► assemble_exams     (exams.py: one row per exam, a path per view in VIEW_ORDER, flags)
                    ─► ExamDataset        (dataset.py: (4, 1, H, W) float32 + mask per exam, cached)
    one file        ─► read_mammogram     (dicom/: canonical float32 image in [0, 1] + metadata)

Errors form one hierarchy rooted at :class:`DicomError` (a ``ValueError``); see
:mod:`riskmodel.imaging.errors`. pydicom is imported when a file is first read; torch only when
:class:`ExamDataset` is first used.

>>> from riskmodel.imaging import VIEW_ORDER
>>> VIEW_ORDER
('L-CC', 'L-MLO', 'R-CC', 'R-MLO')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riskmodel.imaging.dicom import PIXEL_BUDGET_BYTES, VIEW_FAMILY, Mammogram, read_mammogram
from riskmodel.imaging.errors import (
    DecoderMissingError,
    DicomError,
    DicomReadError,
    MetadataError,
    NoPixelDataError,
    NotDicomError,
    NotMammogramError,
    PixelBudgetError,
    TruncatedDicomError,
    UnsupportedImageError,
)
from riskmodel.imaging.exams import VIEW_ORDER, assemble_exams, resolve_view_paths, scan_dicoms, upgrade_exams

if TYPE_CHECKING:
    from riskmodel.imaging.dataset import ExamDataset

__all__ = [
    "PIXEL_BUDGET_BYTES",
    "VIEW_FAMILY",
    "VIEW_ORDER",
    "DecoderMissingError",
    "DicomError",
    "DicomReadError",
    "ExamDataset",
    "Mammogram",
    "MetadataError",
    "NoPixelDataError",
    "NotDicomError",
    "NotMammogramError",
    "PixelBudgetError",
    "TruncatedDicomError",
    "UnsupportedImageError",
    "assemble_exams",
    "read_mammogram",
    "resolve_view_paths",
    "scan_dicoms",
    "upgrade_exams",
]


def __getattr__(name: str) -> Any:
    # ExamDataset subclasses torch's Dataset: import torch only when it is asked for.
    if name == "ExamDataset":
        from riskmodel.imaging.dataset import ExamDataset

        return ExamDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
