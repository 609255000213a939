"""Synthetic four-view screening mammograms written as real DICOM files.

:func:`write_exams` renders, for each woman of a cohort, the four standard views (L-CC, L-MLO,
R-CC, R-MLO) and writes each as a Digital Mammography (MG, For Presentation) DICOM file with
the tags real archives carry, in the styles of several vendors (intensity ranges, bit depths,
MONOCHROME1/2, window vs VOI LUT sequence, modality rescale, "ML" vs "MLO", laterality in
different tags, mirrored storage, RLE and JPEG 2000 compression).

What the pixels carry (and nothing else — no text, no pixel codes):

* a breast silhouette on the chest-wall side, a pectoral muscle on MLO views;
* fibroglandular texture whose dense fraction matches the woman's BI-RADS density;
* the latent ``image_factor`` as a subtle parenchymal pattern: the amplitude of fine-scale
  texture inside dense tissue grows with it (log-linearly), in both breasts;
* left/right asymmetry (independent texture and small size differences per breast);
* optionally, for women whose cancer arises within ``lesion_years``, a faint mass in one breast,
  seen on both views of that breast.

Rendering happens in a canonical frame (float "tissue density" in [0, 1], chest wall at
column 0); each vendor style then maps it to stored values. Sizes: any ``(H, W)`` from 64×52 up
to Mirai's 2048×1664 (the texture scales with the image).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["LESION_CONTRAST", "LESION_RADIUS_SIGMAS", "VENDORS", "VIEWS", "RenderedView", "VendorStyle",
           "lesion_geometry", "lesion_mask", "render_view", "render_woman", "write_exams"]

#: The four views of a screening exam, in the order the library uses everywhere.
VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
#: Target dense fraction of the breast area per BI-RADS category (a–d). A rendering
#: choice for the test bed (BI-RADS 5th edition describes a–d qualitatively, not by percent).
DENSE_FRACTION = {"a": 0.08, "b": 0.28, "c": 0.58, "d": 0.85}
#: View codes (DICOM CID 4014, SNOMED-RT designators) written into ViewCodeSequence.
VIEW_CODES = {"CC": ("R-10242", "cranio-caudal"), "MLO": ("R-10226", "medio-lateral oblique"),
              "ML": ("R-10224", "medio-lateral")}
MIN_SIZE, MAX_SIZE = (64, 52), (2048, 1664)
#: The lesion's radius in ``lesions.csv``, in SDs of its Gaussian profile: at 2 SD the mass adds
#: 0.14 · e⁻² ≈ 0.019 to the tissue value, about twice the pixel noise (SD 0.008).
LESION_RADIUS_SIGMAS = 2.0

#: The mass's default peak over the tissue value (intensity units of the [0, 1] canonical image):
#: faint, about a third of the dense-tissue step (0.42). ``write_exams(lesion_contrast=...)`` changes it.
LESION_CONTRAST = 0.14


@dataclass(frozen=True)
class VendorStyle:
    """How one vendor style stores the canonical image.

    Attributes:
        manufacturer, model: the Manufacturer and ManufacturerModelName tags.
        bits_stored: BitsStored (12–16); values use ``[offset, offset + span]`` of that range.
        photometric: "MONOCHROME2" (high = bright) or "MONOCHROME1" (high = dark).
        voi: "window" (WindowCenter/Width) or "lut" (a VOI LUT Sequence).
        rescale: (slope, intercept) of the modality LUT, or None for no rescale tags.
        mlo_name: what ViewPosition says for an MLO view ("MLO", or "ML" as some archives write it;
            the view code sequence still says MLO); None = no ViewPosition, only the code.
        laterality_tag: "ImageLaterality" or "Laterality" (series-level only).
        mirror_prob: probability that an image is stored mirrored relative to the convention.
        transfer_syntax: "explicit", "rle" or "j2k" (J2K falls back to RLE without an encoder).
        pixel_spacing: mm per pixel at 2048×1664 (scaled with the rendered size).
    """

    manufacturer: str
    model: str
    bits_stored: int
    photometric: str
    voi: str
    rescale: tuple[float, float] | None
    mlo_name: str | None
    laterality_tag: str
    mirror_prob: float
    transfer_syntax: str
    pixel_spacing: float
    offset_frac: float
    span_frac: float


VENDORS: dict[str, VendorStyle] = {
    "hologic": VendorStyle("HOLOGIC, Inc.", "Selenia Dimensions", 14, "MONOCHROME2", "window", None, "MLO",
                           "ImageLaterality", 0.0, "explicit", 0.07, 0.02, 0.60),
    "ge": VendorStyle("GE MEDICAL SYSTEMS", "Senographe Pristina", 14, "MONOCHROME1", "lut", None, "MLO",
                      "ImageLaterality", 0.0, "j2k", 0.10, 0.10, 0.50),
    "fuji": VendorStyle("FUJIFILM Corporation", "FDR MS-3500", 12, "MONOCHROME1", "window", None, None,
                        "Laterality", 0.5, "rle", 0.05, 0.05, 0.85),
    "siemens": VendorStyle("SIEMENS", "MAMMOMAT Revelation", 16, "MONOCHROME2", "window", (0.5, -200.0), "ML",
                           "ImageLaterality", 0.0, "explicit", 0.085, 0.05, 0.70),
}


@lru_cache(maxsize=32)
def _upsample_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix of cubic-convolution weights (Keys, a = −0.5), rows summing to 1."""
    x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    d = np.abs(x[:, None] - np.arange(n_in)[None, :])
    a = -0.5
    w = np.where(d <= 1, (a + 2) * d**3 - (a + 3) * d**2 + 1,
                 np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0))
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, grid: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Standard-normal noise on a coarse ``grid``, upsampled bicubically to ``size`` (float32, SD ≈ 1)."""
    small = rng.standard_normal(grid, dtype=np.float32)
    big = _upsample_matrix(size[0], grid[0]) @ small @ _upsample_matrix(size[1], grid[1]).T
    return big / max(float(big.std()), 1e-6)


def _silhouette(h: int, w: int, view: str, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Breast mask (soft, float32 in [0, 1]) and normalised radius (0 at chest wall centre, 1 at skin)."""
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    depth = w * rng.uniform(0.62, 0.78) * scale
    if view == "CC":
        centre, half = h * rng.uniform(0.46, 0.54), h * rng.uniform(0.36, 0.43) * scale
    else:  # MLO: taller, lower, with the axillary tail at the top
        centre, half = h * rng.uniform(0.52, 0.60), h * rng.uniform(0.44, 0.48) * scale
    radius = np.sqrt((cols / depth) ** 2 + ((rows - centre) / half) ** 2)
    edge = 3.0 / max(depth, 1.0)
    mask = np.clip((1.0 - radius) / edge, 0.0, 1.0)
    return mask.astype(np.float32), np.minimum(radius, 1.5).astype(np.float32)


def render_view(
    h: int,
    w: int,
    view: str,
    density: str,
    image_factor: float,
    rng: np.random.Generator,
    *,
    image_effect: float = 0.25,
    lesion: tuple[float, float] | None = None,
    breast_scale: float = 1.0,
    dense_shift: float = 0.0,
    lesion_contrast: float = LESION_CONTRAST,
    lesion_scale: float = 1.0,
) -> np.ndarray:
    """Render one view in the canonical frame.

    Args:
        h, w: image size in pixels.
        view: "CC" or "MLO".
        density: BI-RADS category "a"–"d".
        image_factor: the latent image-only factor (SD units).
        rng: the breast's random generator (texture, shape).
        image_effect: log-amplitude of the fine texture per SD of ``image_factor``.
        lesion: (depth, height) of a faint mass as fractions of (breast depth, image height), or None.
        breast_scale: size multiplier (asymmetry between breasts).
        dense_shift: change in dense fraction (asymmetry between breasts).
        lesion_contrast: the mass's peak added to the tissue value (intensity units of the [0, 1]
            image; the default :data:`LESION_CONTRAST` = 0.14 is faint against dense tissue's 0.42).
        lesion_scale: multiplier of the mass's σ (default 1: σ = 2.2 % of ``w``), see :func:`lesion_geometry`.

    Returns:
        Float32 array of shape ``(h, w)`` in [0, 1]: 0 background, higher = denser tissue;
        chest wall at column 0.
    """
    mask, radius = _silhouette(h, w, view, rng, breast_scale)
    inside = mask > 0.5
    # Dense tissue: smooth field, more of it near the centre of the breast, thresholded to the target fraction.
    coarse = (_smooth_noise(rng, (max(h // 48, 4), max(w // 48, 4)), (h, w))
              + 0.45 * _smooth_noise(rng, (max(h // 16, 6), max(w // 16, 6)), (h, w)) - 1.2 * radius)
    target = float(np.clip(DENSE_FRACTION[density] + dense_shift, 0.02, 0.97))
    sample = coarse[inside][:: max(1, int(inside.sum()) // 20000)]
    threshold = np.quantile(sample, 1.0 - target) if sample.size else 0.0
    dense = 1.0 / (1.0 + np.exp(-(coarse - threshold) / 0.15))
    # Parenchymal pattern: fine-scale texture whose amplitude carries the latent image factor.
    fine = _smooth_noise(rng, (max(h // 6, 8), max(w // 6, 8)), (h, w))
    amplitude = 0.045 * np.exp(image_effect * float(np.clip(image_factor, -4, 4)))
    thickness = np.sqrt(np.clip(1.0 - radius, 0.0, 1.0))  # thinner towards the skin line
    tissue = 0.16 + 0.10 * thickness + 0.42 * dense + amplitude * fine * (0.25 + dense)
    if view == "MLO":  # pectoral muscle: a bright triangle at the top of the chest wall
        rows = np.arange(h, dtype=np.float32)[:, None] / h
        cols = np.arange(w, dtype=np.float32)[None, :] / w
        top = rng.uniform(0.18, 0.26)
        muscle = np.clip((top * (1.0 - rows / 0.55) - cols) / 0.01, 0.0, 1.0)
        tissue = np.maximum(tissue, 0.78 * muscle)
    if lesion is not None:
        rows = np.arange(h, dtype=np.float32)[:, None]
        cols = np.arange(w, dtype=np.float32)[None, :]
        cy, cx, sigma = lesion_geometry(h, w, lesion, lesion_scale)
        tissue = tissue + lesion_contrast * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))
    image = mask * tissue + rng.normal(0.0, 0.008, (h, w)).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def lesion_geometry(h: int, w: int, lesion: tuple[float, float], scale: float = 1.0) -> tuple[float, float, float]:
    """Where :func:`render_view` draws a mass: ``(row, column, sigma)`` in pixels of the canonical
    ``(h, w)`` frame (chest wall at column 0), for ``lesion`` = (depth, height) fractions; σ is
    ``scale`` · 2.2 % of ``w``.

    >>> lesion_geometry(1000, 500, (0.5, 0.5))
    (500.0, 150.0, 11.0)
    >>> lesion_geometry(1000, 500, (0.5, 0.5), scale=2.0)
    (500.0, 150.0, 22.0)
    """
    return float(lesion[1] * h), float(lesion[0] * w * 0.6), float(0.022 * w * scale)


def lesion_mask(shape: tuple[int, int], row: float, col: float, radius: float) -> np.ndarray:
    """Boolean ``shape`` mask of the disc of ``radius`` pixels around pixel ``(row, col)`` (a
    ``lesions.csv`` row: same grid, same orientation as the DICOM file's stored pixels).

    >>> int(lesion_mask((5, 5), 2, 2, 1).sum())
    5
    """
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    return (rows - row) ** 2 + (cols - col) ** 2 <= radius**2


def _stored(canonical: np.ndarray, style: VendorStyle) -> tuple[np.ndarray, dict]:
    """Map canonical [0, 1] values to the vendor's stored integers and the display tags."""
    top = 2**style.bits_stored - 1
    offset, span = style.offset_frac * top, style.span_frac * top
    values = canonical if style.photometric == "MONOCHROME2" else 1.0 - canonical
    raw = offset + values * span
    lo_out, hi_out = offset, offset + span
    if style.rescale is not None:  # the window is given in modality (rescaled) units
        slope, intercept = style.rescale
        lo_out, hi_out = offset * slope + intercept, (offset + span) * slope + intercept
    stored = np.clip(np.rint(raw), 0, top).astype(np.uint16)
    tags: dict = {}
    if style.voi == "window":
        tags["WindowCenter"] = round((lo_out + hi_out) / 2, 1)
        tags["WindowWidth"] = round(hi_out - lo_out, 1)
    else:  # a monotone sigmoid-like VOI LUT over the stored range, as GE writes
        first = int(lo_out)
        n = int(hi_out - lo_out) + 1
        x = np.linspace(-3.0, 3.0, n)
        lut = np.rint(4095 * (np.tanh(x * 0.8) - np.tanh(-2.4)) / (2 * np.tanh(2.4))).clip(0, 4095)
        tags["VOILUT"] = (n, first, lut.astype(np.uint16))
    return stored, tags


def _dataset(pixels: np.ndarray, style: VendorStyle, tags: dict, meta: dict):
    """A pydicom FileDataset for one image (uncompressed; compression is applied by the caller)."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    fm.MediaStorageSOPInstanceUID = meta["sop_uid"]
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=fm, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MG_FOR_PRESENTATION, meta["sop_uid"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = meta["study_uid"], meta["series_uid"]
    ds.PatientID, ds.PatientName, ds.PatientSex = meta["patient_id"], f"SYNTHETIC^{meta['patient_id']}", "F"
    ds.PatientAge = f"{int(meta['age']):03d}Y"
    ds.AccessionNumber = meta["accession"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = meta["date"]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", meta["series_number"], meta["instance_number"]
    ds.Modality = "MG"
    ds.Manufacturer, ds.ManufacturerModelName = style.manufacturer, style.model
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "BREAST"
    ds.BreastImplantPresent = "NO"
    laterality, view = meta["laterality"], meta["view"]
    setattr(ds, style.laterality_tag, laterality)
    view_name = view if view == "CC" or style.mlo_name is None else style.mlo_name
    if style.mlo_name is not None:
        ds.ViewPosition = view_name
    code, meaning = VIEW_CODES[view]  # the code is right even where ViewPosition says "ML" for an MLO
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SRT", meaning
    ds.ViewCodeSequence = Sequence([item])
    ds.SeriesDescription = f"{laterality} {view_name}"
    col_dir = "P" if meta["chest_wall_right"] else "A"
    ds.PatientOrientation = [col_dir, ("F" if view == "MLO" else ("L" if laterality == "R" else "R"))]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, style.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, style.bits_stored, style.bits_stored - 1
    ds.PixelRepresentation = 0
    spacing = round(style.pixel_spacing * MAX_SIZE[0] / pixels.shape[0], 5)
    ds.PixelSpacing = ds.ImagerPixelSpacing = [spacing, spacing]
    if style.rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = style.rescale[0], style.rescale[1], "US"
    if "VOILUT" in tags:
        n, first, lut = tags["VOILUT"]
        voi = Dataset()
        voi.LUTDescriptor = [n, first, 16]
        voi.LUTExplanation = "NORMAL"
        voi.add_new(0x00283006, "OW", lut.astype("<u2").tobytes())  # LUTData as 16-bit words
        ds.VOILUTSequence = Sequence([voi])
    else:
        ds.WindowCenter, ds.WindowWidth = tags["WindowCenter"], tags["WindowWidth"]
        ds.VOILUTFunction = "LINEAR"
    ds.PixelData = pixels.tobytes()
    return ds


def _compress(ds, pixels: np.ndarray, kind: str) -> str:
    """Compress in place where an encoder is installed; returns the transfer syntax used."""
    from pydicom.pixels.encoders import JPEG2000LosslessEncoder, RLELosslessEncoder
    from pydicom.uid import JPEG2000Lossless, RLELossless

    if kind == "j2k" and JPEG2000LosslessEncoder.is_available:
        ds.compress(JPEG2000Lossless, pixels, generate_instance_uid=False)
        return str(JPEG2000Lossless)
    if kind in ("j2k", "rle"):
        plugin = "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else "pydicom"
        ds.compress(RLELossless, pixels, encoding_plugin=plugin, generate_instance_uid=False)
        return str(RLELossless)
    return str(ds.file_meta.TransferSyntaxUID)


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in parts])


@dataclass
class RenderedView:
    """One rendered view before it is written: the canonical image and how it will be stored."""

    side: str
    view: str
    canonical: np.ndarray  # (H, W) float32 in [0, 1], chest wall at column 0
    chest_wall_right: bool  # stored mirrored (chest wall at the last column)
    style_key: str
    lesion_side: str
    date: str
    lesion: tuple[float, float, float] | None = None  # (row, column, sigma) in canonical pixels, if drawn here


def render_woman(row: dict, size: tuple[int, int], seed: int, opts: dict) -> list[RenderedView]:
    """Render the four views of one woman (``row`` needs ``_index``, ``density``, optional ``image_factor``,
    ``event``, ``time``). Deterministic in ``(seed, row["_index"])``."""
    h, w = size
    ss = np.random.SeedSequence([seed, int(row["_index"])])
    rng_exam, *rng_breast = (np.random.default_rng(s) for s in ss.spawn(3))
    vendor_key = opts["vendors"][int(rng_exam.integers(len(opts["vendors"])))]
    style = VENDORS[vendor_key]
    date = (dt.date(2018, 1, 1) + dt.timedelta(days=int(rng_exam.integers(0, 5 * 365)))).strftime("%Y%m%d")
    lesion_side = ""
    lesion_pos = None
    if opts["lesions"] and row.get("event") == 1 and row.get("time", np.inf) <= opts["lesion_years"]:
        lesion_side = "LR"[int(rng_exam.integers(2))]
        lesion_pos = (float(rng_exam.uniform(0.25, 0.75)), float(rng_exam.uniform(0.35, 0.65)))
    density = str(row["density"]).lower()
    factor = float(row.get("image_factor", 0.0))
    if not np.isfinite(factor):
        factor = 0.0
    views = []
    for side_index, side in enumerate("LR"):
        rng = rng_breast[side_index]
        scale, shift = float(rng.uniform(0.95, 1.05)), float(rng.normal(0.0, 0.03))
        state = rng.bit_generator.state
        for view in ("CC", "MLO"):
            rng.bit_generator.state = state  # both views of a breast share its texture draw
            canonical = render_view(
                h, w, view, density, factor, rng, image_effect=opts["image_effect"],
                lesion=lesion_pos if side == lesion_side else None, breast_scale=scale, dense_shift=shift,
                lesion_contrast=opts["lesion_contrast"], lesion_scale=opts["lesion_scale"],
            )
            # Convention: right breasts are stored with the chest wall on the right; some vendors mirror.
            chest_right = (side == "R") != bool(rng_exam.random() < style.mirror_prob)
            drawn = lesion_pos is not None and side == lesion_side
            where = lesion_geometry(h, w, lesion_pos, opts["lesion_scale"]) if drawn else None
            views.append(RenderedView(side, view, canonical, chest_right, vendor_key, lesion_side, date, where))
    return views


def _write_woman(row: dict, out_dir: str, size: tuple[int, int], seed: int, opts: dict) -> list[dict]:
    """Render and write one woman's four views; returns one manifest record per file."""
    h, w = size
    study_uid = _uid(seed, row["id"], row["exam_id"], "study")
    records = []
    for instance, rv in enumerate(render_woman(row, size, seed, opts), start=1):
        style = VENDORS[rv.style_key]
        stored_canonical = rv.canonical[:, ::-1] if rv.chest_wall_right else rv.canonical
        pixels, tags = _stored(stored_canonical, style)
        pixels = np.ascontiguousarray(pixels)
        meta = {
            "patient_id": row["id"], "accession": row["exam_id"], "age": row["age"], "date": rv.date,
            "study_uid": study_uid, "series_uid": _uid(seed, row["id"], row["exam_id"], rv.side, rv.view, "series"),
            "sop_uid": _uid(seed, row["id"], row["exam_id"], rv.side, rv.view, "sop"),
            "laterality": rv.side, "view": rv.view, "chest_wall_right": rv.chest_wall_right,
            "series_number": instance, "instance_number": 1,
        }
        ds = _dataset(pixels, style, tags, meta)
        syntax = _compress(ds, pixels, style.transfer_syntax)
        rel = Path(str(row["id"])) / f"{row['exam_id']}_{rv.side}_{rv.view}.dcm"
        path = Path(out_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        records.append({
            "id": row["id"], "exam_id": row["exam_id"], "path": str(rel), "laterality": rv.side, "view": rv.view,
            "vendor": rv.style_key, "manufacturer": style.manufacturer,
            "photometric_interpretation": style.photometric,
            "transfer_syntax": syntax, "bits_stored": style.bits_stored, "rows": h, "columns": w,
            "stored_chest_wall_right": rv.chest_wall_right, "study_uid": study_uid, "sop_uid": meta["sop_uid"],
            "_lesion_side": rv.lesion_side, **_lesion_record(rv, w),
        })
    return records


def _lesion_record(rv: RenderedView, w: int) -> dict:
    """The ``lesions.csv`` fields of one view: its mass in the stored pixel grid (NaN when none)."""
    if rv.lesion is None:
        return {"_lesion_row": np.nan, "_lesion_col": np.nan, "_lesion_sigma": np.nan}
    row, col, sigma = rv.lesion
    return {"_lesion_row": row, "_lesion_col": (w - 1) - col if rv.chest_wall_right else col, "_lesion_sigma": sigma}


def _options(vendors: tuple[str, ...], image_effect: float, lesions: bool, lesion_years: float,
             lesion_contrast: float = LESION_CONTRAST, lesion_scale: float = 1.0) -> dict:
    unknown = [v for v in vendors if v not in VENDORS]
    if unknown or not vendors:
        raise ValueError(f"vendors={vendors!r}: choose from {sorted(VENDORS)}")
    if not (np.isfinite(lesion_contrast) and 0.0 < lesion_contrast <= 1.0):
        raise ValueError(f"lesion_contrast={lesion_contrast!r}: must be in (0, 1] (the mass's peak over the tissue "
                         "value, intensity units of the [0, 1] image)")
    if not (np.isfinite(lesion_scale) and 0.25 <= lesion_scale <= 5.0):
        raise ValueError(f"lesion_scale={lesion_scale!r}: must be in [0.25, 5] (multiplier of the mass's sigma, "
                         "2.2 % of the image width at 1)")
    return {"vendors": tuple(vendors), "image_effect": image_effect, "lesions": lesions, "lesion_years": lesion_years,
            "lesion_contrast": float(lesion_contrast), "lesion_scale": float(lesion_scale)}


#: What an ``id`` or ``exam_id`` must look like to name a folder or file under ``out_dir``: letters,
#: digits, ``.``, ``_`` and ``-``, starting with a letter or digit (so never ``..`` or a hidden or
#: absolute name), at most 128 characters.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _check_path_ids(cohort: pd.DataFrame) -> None:
    """Refuse an ``id`` or ``exam_id`` that is not a safe path component (:data:`SAFE_NAME`)."""
    for column in ("id", "exam_id"):
        for index, value in cohort[column].items():
            if not SAFE_NAME.fullmatch(str(value)):
                raise ValueError(f"{column}: row {index!r} has {str(value)!r}, which cannot name a file or folder "
                                 f"under out_dir (allowed: letters, digits, '.', '_', '-', starting with a letter or "
                                 "digit, at most 128 characters); nothing was written")


def write_exams(
    cohort: pd.DataFrame,
    out_dir: str | Path,
    image_size: tuple[int, int] = (512, 416),
    seed: int = 0,
    *,
    vendors: tuple[str, ...] = tuple(VENDORS),
    image_effect: float = 0.25,
    lesions: bool = True,
    lesion_years: float = 2.0,
    lesion_contrast: float = LESION_CONTRAST,
    lesion_scale: float = 1.0,
    n_jobs: int = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """Write four-view synthetic mammograms (DICOM) for every woman of ``cohort``.

    Args:
        cohort: one row per woman with ``id``, ``exam_id``, ``age``, ``density`` (a–d) and,
            optionally, ``image_factor`` (latent, SD units; 0 if absent), ``event`` and ``time``
            (for lesions), as :func:`riskmodel.synthetic.make_cohort` returns.
        out_dir: folder to write to: ``<id>/<exam_id>_<side>_<view>.dcm`` (``id`` and ``exam_id``
            must be safe file names, :data:`SAFE_NAME`; others are refused, never mapped), plus
            ``manifest.csv`` (one row per image) and ``truth.csv`` (one row per exam: lesion
            side, density, image factor — kept apart so pipelines do not read the truth), and
            ``lesions.csv``: one row per view showing a mass (``exam_id``, ``id``, ``path``,
            ``laterality``, ``view``, ``row``, ``col``, ``sigma``, ``radius`` in pixels of the file's
            stored grid and orientation; ``radius`` = :data:`LESION_RADIUS_SIGMAS` · ``sigma``;
            rasterise with :func:`lesion_mask`), with a header even when no view has one.
        image_size: (rows, columns), from 64×52 up to 2048×1664.
        seed: output is a deterministic function of ``seed`` and the cohort rows.
        vendors: vendor styles to draw from (keys of :data:`VENDORS`), one per exam.
        image_effect: log-amplitude of the parenchymal texture per SD of ``image_factor``.
        lesions: draw a faint mass for women with ``event == 1`` and ``time <= lesion_years``.
        lesion_contrast: the mass's peak over the tissue value (intensity units of the [0, 1]
            canonical image, before the vendor's stored encoding), in (0, 1]; default
            :data:`LESION_CONTRAST` (0.14, faint). Its position, size and ``lesions.csv`` do not change.
        lesion_scale: multiplier of the mass's σ (2.2 % of the width at the default 1), in
            [0.25, 5]; ``lesions.csv`` gives the scaled ``sigma`` and ``radius``.
        n_jobs: worker processes (joblib); the output does not depend on it.
        progress: show a progress bar (tqdm, on stderr) over the women.

    Raises:
        ValueError: a bad ``image_size``, ``lesion_contrast`` or ``lesion_scale``, missing column, unknown vendor or
            density, or an ``id`` / ``exam_id`` that is not a safe file name (the message names the
            column and row).

    Returns:
        The manifest: one row per image with ``id``, ``exam_id``, ``path`` (relative to
        ``out_dir``), ``laterality``, ``view``, ``vendor``, ``manufacturer``,
        ``photometric_interpretation``, ``transfer_syntax``, ``bits_stored``, ``rows``,
        ``columns``, ``stored_chest_wall_right``, ``study_uid``, ``sop_uid``.
    """
    h, w = (int(v) for v in image_size)
    if not (MIN_SIZE[0] <= h <= MAX_SIZE[0] and MIN_SIZE[1] <= w <= MAX_SIZE[1]):
        raise ValueError(f"image_size={image_size}: rows must be in [{MIN_SIZE[0]}, {MAX_SIZE[0]}] and columns in "
                         f"[{MIN_SIZE[1]}, {MAX_SIZE[1]}]")
    missing = [c for c in ("id", "exam_id", "age", "density") if c not in cohort.columns]
    if missing:
        raise ValueError(f"cohort is missing column(s) {missing}; make_cohort() provides them")
    _check_path_ids(cohort)
    opts = _options(tuple(vendors), image_effect, lesions, lesion_years, lesion_contrast, lesion_scale)
    bad_density = ~cohort["density"].astype(str).str.lower().isin(list(DENSE_FRACTION))
    if bad_density.any():
        raise ValueError(f"density: row {cohort.index[bad_density.to_numpy()][0]!r} has "
                         f"{cohort['density'][bad_density].iloc[0]!r}; expected a, b, c or d")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = cohort.reset_index(drop=True).assign(_index=np.arange(len(cohort))).to_dict("records")
    todo = rows
    if progress:
        from tqdm import tqdm

        todo = tqdm(rows, desc="rendering mammograms", unit="woman")
    if n_jobs == 1 or len(rows) < 8:
        per_woman = [_write_woman(r, str(out), (h, w), seed, opts) for r in todo]
    else:
        from joblib import Parallel, delayed

        per_woman = Parallel(n_jobs=n_jobs)(delayed(_write_woman)(r, str(out), (h, w), seed, opts) for r in todo)
    records = [rec for woman in per_woman for rec in woman]
    manifest = pd.DataFrame.from_records(records)
    truth = (manifest.groupby("exam_id", sort=False)
             .agg(id=("id", "first"), lesion_side=("_lesion_side", "first")).reset_index())
    extra = [c for c in ("density", "image_factor") if c in cohort.columns]
    truth = truth.merge(cohort[["exam_id", *extra]], on="exam_id", how="left")
    has = manifest["_lesion_row"].notna()
    lesions = manifest.loc[has, ["exam_id", "id", "path", "laterality", "view"]].assign(
        row=manifest.loc[has, "_lesion_row"], col=manifest.loc[has, "_lesion_col"],
        sigma=manifest.loc[has, "_lesion_sigma"], radius=LESION_RADIUS_SIGMAS * manifest.loc[has, "_lesion_sigma"])
    manifest = manifest.drop(columns=["_lesion_side", "_lesion_row", "_lesion_col", "_lesion_sigma"])
    manifest.to_csv(out / "manifest.csv", index=False)
    truth.to_csv(out / "truth.csv", index=False)
    lesions.to_csv(out / "lesions.csv", index=False)
    return manifest
