"""A small pydicom writer for test mammograms (tiny images, 48 × 64 by default).

:func:`phantom` draws a canonical breast (chest wall at column 0) as a density in [0, 1];
:func:`write_mg` stores it the way a vendor might: flipped or not, MONOCHROME1/2, any
BitsStored, rescaled, windowed, with a VOI LUT, with laterality/view in any of the tags the
reader supports, and compressed (RLE, JPEG 2000) or not.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
VIEW_SCT = {"CC": "399162004", "MLO": "399368009", "ML": "399260004", "LM": "399352003", "XCCL": "399192008",
            "FB": "399196006"}
VIEW_SRT = {"CC": "R-10242", "MLO": "R-10226", "ML": "R-10224", "XCCL": "R-1024A"}


def phantom(rows: int = 48, cols: int = 64, seed: int | None = None, noise: float = 0.0) -> np.ndarray:
    """Canonical breast density, shape ``(rows, cols)``, values in [0, 1], chest wall at column 0.

    A half ellipse centred on the left edge (0.7 of the width, 0.9 of the height); inside it the
    density falls from 1 at the chest wall to 0.3 at the skin line, with a vertical gradient so
    that an up–down flip would be visible. Background is 0 (before ``noise``, an optional
    Gaussian standard deviation, clipped to [0, 1]).
    """
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    r = np.hypot(xx / (0.7 * cols), (yy - (rows - 1) / 2) / (0.45 * rows))
    inside = r < 1
    density = np.where(inside, 0.3 + 0.6 * (1 - r) + 0.1 * yy / max(rows - 1, 1), 0.0)
    if noise:
        rng = np.random.default_rng(seed)
        density = density + rng.normal(0.0, noise, density.shape)
    return np.clip(density, 0.0, 1.0)


def to_stored(density: np.ndarray, bits_stored: int = 12) -> np.ndarray:
    """Density → stored integers ``round(density × (2**bits_stored − 1))`` (uint16)."""
    return np.round(density * (2**bits_stored - 1)).astype(np.uint16)


def mg_dataset(
    stored: np.ndarray,
    *,
    laterality: str | None = "L",
    view: str | None = "CC",
    laterality_tag: str = "ImageLaterality",
    view_tags: Seq[str] = ("ViewPosition", "ViewCodeSequence"),
    view_code_scheme: str = "SCT",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    modality: str = "MG",
    presentation_intent: str | None = "FOR PRESENTATION",
    rescale: tuple[float, float] | None = None,
    window: tuple[Any, Any] | None = None,
    voi_function: str | None = None,
    voi_lut: tuple[int, Seq[int], int] | None = None,
    lut_vr: str = "OW",
    patient_id: str = "P001",
    study_uid: str = "1.2.826.0.1.3680043.10.1.1",
    series_uid: str | None = None,
    sop_uid: str | None = None,
    accession: str = "ACC001",
    study_date: str = "20240105",
    acquisition_time: str | None = None,
    instance_number: int | None = 1,
    manufacturer: str = "HOLOGIC, Inc.",
    patient_orientation: Seq[str] | None = None,
    extra: dict[str, Any] | None = None,
    pixel_data: bool = True,
):
    """A pydicom FileDataset for an MG image whose Pixel Data is ``stored`` (uint16) as given.

    ``laterality_tag`` is ``"ImageLaterality"``, ``"Laterality"`` or ``"none"``; ``view_tags``
    any of ``"ViewPosition"``/``"ViewCodeSequence"``; ``window`` is (center, width) with scalars
    or lists; ``voi_lut`` is (first mapped value, LUT entries, bits per entry), its LUT Data
    written with VR ``lut_vr`` (OW or US); ``extra`` sets
    any further keywords (``None`` deletes one).
    """
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = MG_FOR_PROCESSING if presentation_intent == "FOR PROCESSING" else MG_FOR_PRESENTATION
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientID, ds.AccessionNumber, ds.StudyDate = patient_id, accession, study_date
    ds.Modality = modality
    ds.Manufacturer = manufacturer
    if presentation_intent:
        ds.PresentationIntentType = presentation_intent
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if acquisition_time:
        ds.AcquisitionDate, ds.AcquisitionTime = study_date, acquisition_time
    if laterality and laterality_tag != "none":
        setattr(ds, laterality_tag, laterality)
    if view and "ViewPosition" in view_tags:
        ds.ViewPosition = view
    if view and "ViewCodeSequence" in view_tags:
        item = Dataset()
        codes = VIEW_SCT if view_code_scheme == "SCT" else VIEW_SRT
        item.CodeValue, item.CodingSchemeDesignator = codes[view], view_code_scheme
        item.CodeMeaning = view
        ds.ViewCodeSequence = Sequence([item])
    if patient_orientation is not None:
        ds.PatientOrientation = list(patient_orientation)
    ds.ImagerPixelSpacing = [0.07, 0.07]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = rescale[0], rescale[1], "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
        if voi_function:
            ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        first, table, bits = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(table), first, bits]
        if lut_vr == "OW":  # as GE writes it: little-endian 16-bit words
            item.add_new(0x00283006, "OW", np.asarray(table, dtype="<u2").tobytes())
        else:
            item.add_new(0x00283006, "US", [int(v) for v in table])
        ds.VOILUTSequence = Sequence([item])
    for keyword, value in (extra or {}).items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()
    return ds


def write_mg(
    path: str | Path,
    density: np.ndarray | None = None,
    *,
    laterality: str = "L",
    stored_flipped: bool | None = None,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    compress: str | None = None,
    stored: np.ndarray | None = None,
    **kw: Any,
) -> tuple[Path, np.ndarray]:
    """Write an MG file and return ``(path, stored)``.

    ``density`` (canonical, chest wall at column 0; default :func:`phantom`) is stored mirrored
    when ``stored_flipped`` (default: the display convention, mirrored for right breasts),
    inverted for MONOCHROME1, and quantised to ``bits_stored`` bits unless ``stored`` is given.
    ``compress`` is None, ``"rle"`` or ``"j2k"`` (JPEG 2000 lossless; needs pylibjpeg-openjpeg).
    """
    from pydicom.uid import JPEG2000Lossless, RLELossless

    path = Path(path)
    if stored is None:
        density = phantom() if density is None else density
        if stored_flipped is None:
            stored_flipped = laterality == "R"
        image = density[:, ::-1] if stored_flipped else density
        stored = to_stored(image, bits_stored)
        if photometric == "MONOCHROME1":
            stored = (2**bits_stored - 1 - stored).astype(np.uint16)
    ds = mg_dataset(stored, laterality=laterality, photometric=photometric, bits_stored=bits_stored, **kw)
    if compress == "rle":
        ds.compress(RLELossless)
    elif compress == "j2k":
        ds.compress(JPEG2000Lossless)
    elif compress is not None:
        raise ValueError(compress)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path, stored


def write_exam(
    root: str | Path,
    *,
    patient_id: str = "P001",
    study_uid: str = "1.2.826.0.1.3680043.10.1.1",
    views: Seq[str] = ("L-CC", "L-MLO", "R-CC", "R-MLO"),
    **kw: Any,
) -> dict[str, Path]:
    """One file per view (``"L-CC"`` → laterality L, view CC) under ``root/patient_id``."""
    out = {}
    for i, name in enumerate(views):
        side, view = name.split("-")
        out[name] = write_mg(Path(root) / patient_id / f"{study_uid[-4:]}_{name}.dcm", laterality=side, view=view,
                             patient_id=patient_id, study_uid=study_uid, instance_number=i + 1, **kw)[0]
    return out
