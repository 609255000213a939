"""Read one tag's value without raising: text, int, sequence items, code value, transfer syntax.

Every module of the reader reads header values through these, so that a missing or malformed
value gives '' / None / [] instead of an exception deep inside pydicom.
"""

from __future__ import annotations

from typing import Any


def transfer_syntax(ds: Any) -> str:
    """The data set's TransferSyntaxUID (from its file meta information) as text; '' when absent."""
    return str(ds.file_meta.get("TransferSyntaxUID", ""))


def tag_text(ds: Any, keyword: str) -> str:
    """A tag's value as stripped text ('' when absent or unreadable); multi-valued → first value."""
    try:
        value = ds.get(keyword, None)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    return str(value).strip()


def tag_int(ds: Any, keyword: str) -> int | None:
    """A tag's value as an int; None when absent, empty or not a number."""
    try:
        value = ds.get(keyword, None)
        return None if value in (None, "") else int(value)
    except Exception:
        return None


def code_value(item: Any) -> str:
    """CodeValue (or LongCodeValue) of a code sequence item."""
    return tag_text(item, "CodeValue") or tag_text(item, "LongCodeValue")


def tag_items(ds: Any, keyword: str) -> list:
    """The items of a sequence tag as a list; [] when absent, empty or unreadable."""
    try:
        seq = ds.get(keyword, None)
        return list(seq) if seq else []
    except Exception:
        return []
