"""What a header says about the image: laterality, view and its modifiers, identification and acquisition fields.

Coded tags come first, free-text descriptions last; :func:`find_laterality` and
:func:`find_view` raise :class:`~riskmodel.imaging.errors.MetadataError` when the side or view is
unknown or contradictory, :func:`header_fields` never raises.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from riskmodel.imaging.dicom.tags import code_value, tag_int, tag_items, tag_text, transfer_syntax
from riskmodel.imaging.errors import MetadataError

#: The two sides. ``B`` (both) and ``U`` (unpaired) in ImageLaterality are not usable for a view.
LATERALITIES = ("L", "R")

#: Normalised view code → family. ``CC`` and ``MLO`` families fill the four standard slots (the
#: exact view first, the others as flagged substitutes); ``other`` views never do. ML/LM/LMO are
#: true-lateral or reverse-oblique projections of the same sagittal plane as MLO; XCC/XCCL/XCCM
#: are exaggerated CCs. FB (caudo-cranial), SIO/ISO (other obliques), CV (cleavage), AT (axillary
#: tail) and SPECIMEN image something else.
VIEW_FAMILY: dict[str, str] = {
    "CC": "CC", "XCC": "CC", "XCCL": "CC", "XCCM": "CC",
    "MLO": "MLO", "ML": "MLO", "LM": "MLO", "LMO": "MLO",
    "FB": "other", "SIO": "other", "ISO": "other", "CV": "other", "AT": "other", "SPECIMEN": "other",
}

#: CID 4014 "View for Mammography": SNOMED CT ids (scheme SCT) and their legacy SNOMED-RT ids
#: (schemes SRT / SNM3), as written in (0054,0220) View Code Sequence.
VIEW_CODES: dict[str, str] = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399192008": "XCCL", "R-1024A": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM",
    "R-102CF": "XCC",
    "399196006": "FB", "R-10244": "FB",
    "399188001": "SIO", "R-102D0": "SIO",
    "441555000": "ISO", "R-40AAA": "ISO",
    "127457009": "SPECIMEN", "G-8310": "SPECIMEN",
}

#: CID 4015 "View Modifier for Mammography" (View Modifier Code Sequence), SCT and SRT ids.
VIEW_MODIFIER_CODES: dict[str, str] = {
    "399161006": "cleavage", "R-102D2": "cleavage",
    "399011000": "axillary tail", "R-102D1": "axillary tail",
    "399197002": "rolled lateral", "R-102D3": "rolled lateral",
    "399226006": "rolled medial", "R-102D4": "rolled medial",
    "414493004": "rolled inferior", "R-102CA": "rolled inferior",
    "415670009": "rolled superior", "R-102C9": "rolled superior",
    "399209000": "implant displaced", "R-102D5": "implant displaced",
    "399163009": "magnification", "R-102D6": "magnification",
    "399055006": "spot compression", "R-102D7": "spot compression",
    "399110001": "tangential", "R-102C2": "tangential",
    "442581004": "nipple in profile", "R-40AB3": "nipple in profile",
    "441752004": "anterior compression", "P2-00161": "anterior compression",
    "442593008": "infra-mammary fold", "R-40ABE": "infra-mammary fold",
    "442580003": "axillary tissue", "R-40AB2": "axillary tissue",
}

#: Anatomic region codes that carry a side: SCT left/right breast and their SRT ids.
_BREAST_SIDE_CODES = {"80248007": "L", "T-04030": "L", "73056007": "R", "T-04020": "R"}

#: Spellings of a view in ViewPosition and free text, after upper-casing and dropping
#: everything that is not a letter or digit.
_VIEW_ALIASES: dict[str, str] = {
    **{v: v for v in VIEW_FAMILY},
    "CRANIOCAUDAL": "CC", "MEDIOLATERALOBLIQUE": "MLO", "OBLIQUE": "MLO", "MEDIOLATERAL": "ML",
    "LATEROMEDIAL": "LM", "LATEROMEDIALOBLIQUE": "LMO", "CAUDOCRANIAL": "FB", "XCCLATERAL": "XCCL",
}
#: Views recognised inside free text (descriptions): not CV / AT, which also mean other things
#: there (Hologic "C-View" is a synthesised 2D image).
_TEXT_VIEWS = ("CC", "MLO", "ML", "LM", "LMO", "XCC", "XCCL", "XCCM", "FB", "SIO", "ISO")
_SIDE_WORDS = {"L": "L", "R": "R", "LEFT": "L", "RIGHT": "R", "LT": "L", "RT": "R"}
#: Free-text tags read, in this order, when no coded tag gives the laterality or the view.
_TEXT_TAGS = ("ViewPosition", "AcquisitionDeviceProcessingDescription", "SeriesDescription", "ProtocolName",
              "ImageComments")

_MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
_MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
_DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
_DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"


def _datetime(date: str, time: str) -> str:
    """DICOM DA + TM → ``YYYYMMDDHHMMSS.ffffff`` (sorts as text); '' without a date."""
    date = re.sub(r"[^0-9]", "", date)
    if len(date) != 8:
        return ""
    time = time.replace(":", "").strip()
    main, _, frac = time.partition(".")
    main = re.sub(r"[^0-9]", "", main)[:6].ljust(6, "0")
    frac = re.sub(r"[^0-9]", "", frac)[:6].ljust(6, "0")
    return f"{date}{main}.{frac}"


def _acquisition_datetime(ds: Any) -> str:
    dt = tag_text(ds, "AcquisitionDateTime")
    if dt:
        dt = re.split(r"[+&-]", dt, maxsplit=1)[0]
        out = _datetime(dt[:8], dt[8:])
        if out:
            return out
    return _datetime(tag_text(ds, "AcquisitionDate"), tag_text(ds, "AcquisitionTime")) or _datetime(
        tag_text(ds, "ContentDate"), tag_text(ds, "ContentTime"))


def _presentation_intent(ds: Any) -> str:
    """PresentationIntentType, else inferred from the SOP class (MG/DX For Presentation/Processing)."""
    intent = tag_text(ds, "PresentationIntentType").upper()
    if intent:
        return intent
    sop_class = tag_text(ds, "SOPClassUID") or tag_text(getattr(ds, "file_meta", {}), "MediaStorageSOPClassUID")
    if sop_class in (_MG_FOR_PRESENTATION, _DX_FOR_PRESENTATION):
        return "FOR PRESENTATION"
    if sop_class in (_MG_FOR_PROCESSING, _DX_FOR_PROCESSING):
        return "FOR PROCESSING"
    return ""


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = ds.get(keyword, None)
            if value is not None and len(value) == 2 and float(value[0]) > 0 and float(value[1]) > 0:
                return float(value[0]), float(value[1])
        except Exception:
            continue
    return None


def _view_modifiers(ds: Any) -> tuple[str, ...]:
    """CID 4015 modifiers, from inside the View Code Sequence item and at top level."""
    out: list[str] = []
    for view_item in tag_items(ds, "ViewCodeSequence"):
        for item in tag_items(view_item, "ViewModifierCodeSequence"):
            out.append(VIEW_MODIFIER_CODES.get(code_value(item), tag_text(item, "CodeMeaning").lower() or "unknown"))
    for item in tag_items(ds, "ViewModifierCodeSequence"):
        out.append(VIEW_MODIFIER_CODES.get(code_value(item), tag_text(item, "CodeMeaning").lower() or "unknown"))
    return tuple(dict.fromkeys(out))


def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^A-Z0-9]+", text.upper()) if t]


def _parse_text(text: str) -> tuple[set[str], set[str]]:
    """Sides and views named in free text: ``"L CC"``, ``"RMLO"``, ``"LEFT MLO"``, ``"R-XCCL"``."""
    sides: set[str] = set()
    views: set[str] = set()
    tokens = _tokens(text)
    squashed = "".join(tokens)
    for phrase in ("MEDIOLATERALOBLIQUE", "LATEROMEDIALOBLIQUE", "CRANIOCAUDAL"):
        if phrase in squashed:
            views.add(_VIEW_ALIASES[phrase])
    for tok in tokens:
        if tok in _SIDE_WORDS:
            sides.add(_SIDE_WORDS[tok])
        elif tok in _TEXT_VIEWS:
            views.add(tok)
        elif tok[0] in "LR" and tok[1:] in _TEXT_VIEWS:
            sides.add(tok[0])
            views.add(tok[1:])
        elif tok.startswith(("LEFT", "RIGHT")) and tok.removeprefix("LEFT").removeprefix("RIGHT") in _TEXT_VIEWS:
            sides.add(tok[0])
            views.add(tok.removeprefix("LEFT").removeprefix("RIGHT"))
    return sides, views


def normalise_view(value: str) -> str:
    """A ViewPosition spelling → normalised view code ('' if not recognised).

    Case, spaces, hyphens and a leading side letter are ignored.

    >>> normalise_view("mlo"), normalise_view("R-CC"), normalise_view("XCCL"), normalise_view("AP")
    ('MLO', 'CC', 'XCCL', '')
    """
    key = "".join(_tokens(value))
    if key in _VIEW_ALIASES:
        return _VIEW_ALIASES[key]
    if key[:1] in ("L", "R") and key[1:] in _VIEW_ALIASES:
        return _VIEW_ALIASES[key[1:]]
    for side in ("LEFT", "RIGHT"):
        if key.startswith(side) and key[len(side):] in _VIEW_ALIASES:
            return _VIEW_ALIASES[key[len(side):]]
    return ""


def find_laterality(ds: Any, path: Path | str) -> tuple[str, str]:
    """(side, source). ImageLaterality, Laterality, FrameLaterality, a left/right-breast anatomic
    code, then side tokens in free text (:data:`_TEXT_TAGS`). ImageLaterality and Laterality
    naming different sides is a MetadataError."""
    image = tag_text(ds, "ImageLaterality").upper()[:1]
    series = tag_text(ds, "Laterality").upper()[:1]
    if image in LATERALITIES and series in LATERALITIES and image != series:
        raise MetadataError(path, f"ImageLaterality is {image} but Laterality is {series}")
    if image in LATERALITIES:
        return image, "ImageLaterality"
    if series in LATERALITIES:
        return series, "Laterality"
    for group in tag_items(ds, "SharedFunctionalGroupsSequence"):
        for anatomy in tag_items(group, "FrameAnatomySequence"):
            side = tag_text(anatomy, "FrameLaterality").upper()[:1]
            if side in LATERALITIES:
                return side, "FrameLaterality"
    for keyword in ("AnatomicRegionSequence", "PrimaryAnatomicStructureSequence"):
        for item in tag_items(ds, keyword):
            side = _BREAST_SIDE_CODES.get(code_value(item), "")
            if side:
                return side, keyword
    for keyword in _TEXT_TAGS:
        sides, _ = _parse_text(tag_text(ds, keyword))
        if len(sides) == 1:
            return sides.pop(), keyword
    raise MetadataError(path, "laterality unknown: no L/R in ImageLaterality, Laterality, FrameLaterality, "
                              "AnatomicRegionSequence or the description tags")


def find_view(ds: Any, path: Path | str) -> tuple[str, str]:
    """(view, source). ViewPosition, then View Code Sequence, then free text. If ViewPosition
    and the code name different views of one family (e.g. ``ML`` and MLO), the code wins; of
    different families, MetadataError."""
    position = normalise_view(tag_text(ds, "ViewPosition"))
    coded = ""
    for item in tag_items(ds, "ViewCodeSequence")[:1]:
        coded = VIEW_CODES.get(code_value(item), "")
        if not coded:
            meaning = "".join(_tokens(tag_text(item, "CodeMeaning")))
            coded = {"CRANIOCAUDAL": "CC", "MEDIOLATERALOBLIQUE": "MLO", "MEDIALLATERAL": "ML",
                     "MEDIOLATERAL": "ML", "LATEROMEDIAL": "LM"}.get(meaning, "")
    if position and coded and position != coded:
        if VIEW_FAMILY[position] != VIEW_FAMILY[coded]:
            raise MetadataError(path, f"ViewPosition says {position} but ViewCodeSequence says {coded}")
        return coded, "ViewCodeSequence"
    if position:
        return position, "ViewPosition"
    if coded:
        return coded, "ViewCodeSequence"
    for keyword in _TEXT_TAGS[1:]:
        _, views = _parse_text(tag_text(ds, keyword))
        if len(views) == 1:
            return views.pop(), keyword
    raise MetadataError(path, "view unknown: no recognised ViewPosition, ViewCodeSequence code or view in the "
                              "description tags")


def header_fields(ds: Any, path: Path) -> dict[str, Any]:
    """Identification and acquisition fields, best effort (never raises)."""
    return {
        "patient_id": tag_text(ds, "PatientID"),
        "study_uid": tag_text(ds, "StudyInstanceUID"),
        "series_uid": tag_text(ds, "SeriesInstanceUID"),
        "sop_uid": tag_text(ds, "SOPInstanceUID"),
        "accession_number": tag_text(ds, "AccessionNumber"),
        "rows": tag_int(ds, "Rows"),
        "columns": tag_int(ds, "Columns"),
        "manufacturer": tag_text(ds, "Manufacturer"),
        "model": tag_text(ds, "ManufacturerModelName"),
        "photometric_interpretation": tag_text(ds, "PhotometricInterpretation").upper(),
        "presentation_intent": _presentation_intent(ds),
        "transfer_syntax": transfer_syntax(ds),
        "study_date": tag_text(ds, "StudyDate"),
        "acquisition_datetime": _acquisition_datetime(ds),
        "instance_number": tag_int(ds, "InstanceNumber"),
        "bits_stored": tag_int(ds, "BitsStored"),
        "pixel_spacing": _pixel_spacing(ds),
        "view_modifiers": _view_modifiers(ds),
    }
