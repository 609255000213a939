"""Read one mammogram: DICOM file → canonical float32 image in [0, 1] plus its metadata.

:func:`read_mammogram` runs these steps, in this order, and raises a
:class:`~riskmodel.imaging.errors.DicomError` subclass naming the file and the rule at the
first one that fails:

1. **Parse** the file with pydicom (``NotDicomError``, ``TruncatedDicomError``,
   ``DicomReadError``). A file without the ``DICM`` prefix is re-read with ``force=True`` only
   if its first bytes look like a DICOM group 0002 or 0008 tag. pydicom accepts a file cut short
   without complaint, so the lengths are checked here: the meta group against its group length,
   every element value against its declared length, the end of the file against a partial
   element header, encapsulated fragments against the sequence delimiter.
2. **Check the object**: Modality must be ``MG`` (``NotMammogramError``); Pixel Data must be
   present (``NoPixelDataError``); one frame, one sample, MONOCHROME1/2
   (``UnsupportedImageError``); the pixel data must be as long as declared
   (``TruncatedDicomError``); a compressed transfer syntax needs an installed decoder
   (``DecoderMissingError``); laterality and view must be known (``MetadataError``).
3. **Decode** with pydicom's pixel plugins (bits above BitsStored are masked by pydicom).
4. **Modality LUT**: ``pydicom.pixels.apply_modality_lut`` (Rescale Slope/Intercept or a
   Modality LUT Sequence).
5. **VOI**: the first item of the VOI LUT Sequence if there is one (``apply_voi``), else the first
   Window Center/Width pair with its VOI LUT Function LINEAR / LINEAR_EXACT / SIGMOID
   (``apply_windowing``), else the min–max of the image's own values. The output is scaled to
   [0, 1] by the range of that transform (the LUT's own min…max, the window's output range).
   An unusable LUT or window (e.g. width 0) falls back to the next option; ``Mammogram.voi``
   records which one was applied. An image whose values are all equal after the modality LUT is
   an ``UnsupportedImageError``, and so is one that the VOI step leaves blank: a window or LUT
   that maps every pixel to one value, or to values spanning less than :data:`MIN_VOI_RANGE`
   (e.g. WindowWidth 1e300, a window far outside the pixel values, a LUT flat over them), or
   to NaN. That is ``voi="auto"``, the default. ``voi="linear"`` keeps the
   vendor's range of interest but drops its contrast curve: a VOI LUT Sequence becomes a
   straight line over the LUT's input range (``first`` … ``first + entries - 1``; reversed if the
   table falls), and a window is applied LINEAR whatever VOI LUT Function says. Display LUTs
   differ by vendor (GE writes sigmoid-like tables; Mirai's reference conversion, DCMTK's
   ``--min-max-window``, ignores them), and a non-linear curve changes the contrast of fine
   texture with the brightness around it; ``"linear"`` gives images whose contrast means the
   same on every vendor's files.
6. **MONOCHROME1** is inverted (``1 - x``) after the VOI step (PS3.3 C.7.6.3), so higher always
   means denser tissue and the background is near 0.
7. **Orientation** (:func:`chest_wall_side`): the image is mirrored left–right, if needed, so that
   the chest wall is at column 0 and the breast points to increasing column index. The decision
   comes from the pixels, not the tags; only when the pixels are ambiguous does it fall back to
   PatientOrientation and then to the display convention (right breasts stored mirrored).

FOR PROCESSING images are read like any other; ``presentation_intent`` says which they are, and
:func:`riskmodel.imaging.assemble_exams` prefers FOR PRESENTATION images.

One module per job, in the order the steps run (each imports only the ones above it)::

    tags.py      read one tag's value without raising (text, int, sequence items, transfer syntax)
    budget.py    the pixel budget (PIXEL_BUDGET_BYTES, PIXEL_BUDGET_ENV, resolve_pixel_budget)
    parse.py     step 1: parse the file safely (capped inflation, truncation checks, the pixel element)
    metadata.py  laterality, view, view modifiers, identification fields (VIEW_FAMILY, normalise_view)
    checks.py    step 2: the object checks before decoding; inspect_header (the same checks on a header)
    orient.py    step 7: chest_wall_side and the mirroring
    pixels.py    steps 3-6 and read_mammogram, which runs them all (Mammogram, VOI_MODES)

The public names below are re-exported here: ``from riskmodel.imaging.dicom import read_mammogram``.
"""

from riskmodel.imaging.dicom.budget import PIXEL_BUDGET_BYTES, PIXEL_BUDGET_ENV, resolve_pixel_budget
from riskmodel.imaging.dicom.checks import inspect_header
from riskmodel.imaging.dicom.metadata import (
    LATERALITIES,
    VIEW_CODES,
    VIEW_FAMILY,
    VIEW_MODIFIER_CODES,
    normalise_view,
)
from riskmodel.imaging.dicom.orient import ORIENTATION_MIN_CONTRAST, chest_wall_side
from riskmodel.imaging.dicom.parse import METADATA_ALLOWANCE_BYTES
from riskmodel.imaging.dicom.pixels import MIN_VOI_RANGE, VOI_MODES, Mammogram, read_mammogram

__all__ = [
    "LATERALITIES",
    "METADATA_ALLOWANCE_BYTES",
    "MIN_VOI_RANGE",
    "ORIENTATION_MIN_CONTRAST",
    "PIXEL_BUDGET_BYTES",
    "PIXEL_BUDGET_ENV",
    "VIEW_CODES",
    "VIEW_FAMILY",
    "VIEW_MODIFIER_CODES",
    "VOI_MODES",
    "Mammogram",
    "chest_wall_side",
    "inspect_header",
    "normalise_view",
    "read_mammogram",
    "resolve_pixel_budget",
]
