"""Write explanations: PNG overlays, raw ``.npy`` maps, a JSON summary and optional DICOM Secondary Captures.

Layout under ``out``::

    summary.json                           one entry per exam (ExamExplanation.summary() + "folder", "files")
    <exam folder>/<slot>_<method>.png      the view (stored orientation, full resolution) with the map overlaid
    <exam folder>/<slot>_<method>.npy      the map, float32 (rows, columns) on the view's DICOM grid
    <exam folder>/<slot>_asymmetry.png/.npy  the view pair's asymmetry map on this view's grid
    <exam folder>/<slot>_<method>_sc.dcm   with dicom_sc: the overlay as a Secondary Capture in the exam's study

The exam folder is the ``exam_id`` when it is a safe file name (letters, digits, ``.``, ``_``, ``-``),
else ``exam_<row>``; ``summary.json`` names it either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from riskmodel.explain.core import ExamExplanation
from riskmodel.synthetic.mammogram import SAFE_NAME

__all__ = ["overlay", "overlays_for_report", "write_explanations"]
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def overlay(pixels: np.ndarray, saliency: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """(rows, columns, 3) uint8 RGB: the grey image with the map in a black-red-yellow-white scale on top.

    The map is scaled to its own [0, max] (so colours compare within one map, not across maps);
    each pixel's opacity is ``alpha`` times its scaled value.
    """
    grey = np.clip(pixels, 0.0, 1.0)[..., None].repeat(3, axis=2)
    peak = float(np.max(saliency)) if saliency.size else 0.0
    s = np.clip(saliency / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(saliency)
    colour = np.stack([np.clip(3 * s, 0, 1), np.clip(3 * s - 1, 0, 1), np.clip(3 * s - 2, 0, 1)], axis=-1)
    a = (alpha * s)[..., None]
    return np.round(255 * ((1 - a) * grey + a * colour)).astype(np.uint8)


def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb, mode="RGB").save(path)


def _secondary_capture(path: Path, rgb: np.ndarray, source: str, description: str) -> None:
    """Write ``rgb`` as a DICOM Secondary Capture in the study of the ``source`` file (patient and study copied)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    src = pydicom.dcmread(source, stop_before_pixels=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    for tag in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName", "ImageLaterality", "Laterality"):
        if tag in src:
            setattr(ds, tag, src.data_element(tag).value)
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.ConversionType, ds.SeriesNumber, ds.InstanceNumber = "OT", "WSD", 9901, 1
    ds.SeriesDescription = ds.ImageComments = description[:64]
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_explanations(explanations: Iterable[ExamExplanation], out: str | Path, *,
                       dicom_sc: bool = False) -> list[dict[str, Any]]:
    """Write each exam's overlays, maps and (with ``dicom_sc``) Secondary Captures, then ``summary.json``.

    Args:
        explanations: from :func:`~riskmodel.explain.iter_explanations` (consumed one at a time).
        out: output folder (created).
        dicom_sc: also write each overlay as a DICOM Secondary Capture.

    Returns:
        The summary entries written to ``out/summary.json`` (one per exam, in order).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for row, ex in enumerate(explanations):
        entry = ex.summary()
        folder = ex.exam_id if SAFE_NAME.fullmatch(str(ex.exam_id)) else f"exam_{row}"
        entry["folder"], entry["files"] = folder, []
        if ex.status == "ok":
            (out / folder).mkdir(exist_ok=True)
            for slot, view in ex.views.items():
                layers = dict(view.maps)
                if view.asymmetry is not None:
                    layers["asymmetry"] = view.asymmetry
                for name, array in layers.items():
                    stem = out / folder / f"{slot}_{name}"
                    np.save(stem.with_suffix(".npy"), array.astype(np.float32), allow_pickle=False)
                    rgb = overlay(view.pixels, array)
                    _png(stem.with_suffix(".png"), rgb)
                    entry["files"] += [f"{folder}/{slot}_{name}.npy", f"{folder}/{slot}_{name}.png"]
                    if dicom_sc:
                        sc = stem.parent / f"{stem.name}_sc.dcm"
                        _secondary_capture(sc, rgb, view.path, f"riskmodel {name} {slot} {ex.year}y")
                        entry["files"].append(f"{folder}/{sc.name}")
        entries.append(entry)
    (out / "summary.json").write_text(json.dumps({"exams": entries}, indent=2) + "\n", encoding="utf-8")
    return entries


def overlays_for_report(out: str | Path, exam_id: str, method: str = "gradcam") -> dict[str, Path]:
    """The hook for a per-woman report: slot → PNG overlay of ``method`` for the exam ``exam_id``, read
    from ``out/summary.json`` (written by :func:`write_explanations`); empty when the exam was not
    explained or had no readable view.
    """
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for entry in summary["exams"]:
        if str(entry["exam_id"]) == str(exam_id) and entry["status"] == "ok":
            return {slot: out / entry["folder"] / f"{slot}_{method}.png" for slot in entry["views"]
                    if f"{entry['folder']}/{slot}_{method}.png" in entry["files"]}
    return {}
