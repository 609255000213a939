"""Intervals of ages or risks written as text, with brackets saying whether each bound is included."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

__all__ = ["FULL_RISK", "Interval"]

_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])\s*$")


@dataclass(frozen=True)
class Interval:
    """An interval of numbers with inclusive or exclusive bounds.

    >>> r = Interval.parse("[1.3%, 6%)", percent=True)
    >>> r.lo, r.hi, r.contains(0.013), r.contains(0.06)
    (0.013, 0.06, True, False)
    """

    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool
    text: str = ""

    @classmethod
    def parse(cls, text: object, *, percent: bool = False) -> Interval:
        """Read ``"[a, b)"``-style text; ``percent``: the values are risks (``%`` or a probability)."""
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not an interval like \"[40, 75)\"")
        m = _INTERVAL.match(text)
        if m is None:
            raise ValueError(f"{text!r} is not an interval like \"[40, 75)\" (brackets: [ ] include, ( ) exclude)")
        lo, hi = (_number(v, percent=percent) for v in (m.group(2), m.group(3)))
        if not lo <= hi:
            raise ValueError(f"{text!r}: the lower bound is above the upper bound")
        closed = (m.group(1) == "[", m.group(4) == "]")
        if math.isinf(lo) or (math.isinf(hi) and closed[1]):
            raise ValueError(f"{text!r}: only an open upper bound may be infinite")
        if lo == hi and not all(closed):
            raise ValueError(f"{text!r}: empty interval")
        return cls(lo, hi, closed[0], closed[1], text.strip())

    def contains(self, x: Any) -> Any:
        """Elementwise membership of ``x`` (a float or an array; NaN is never inside)."""
        x = np.asarray(x, dtype=np.float64)
        above = x >= self.lo if self.lo_closed else x > self.lo
        below = x <= self.hi if self.hi_closed else x < self.hi
        out = above & below
        return bool(out) if out.ndim == 0 else out

    def __str__(self) -> str:
        return self.text or f"{'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_closed else ')'}"


def _number(text: str, *, percent: bool) -> float:
    t = text.strip().lower()
    if t in ("inf", "+inf", "infinity"):
        return math.inf
    is_pct = t.endswith("%")
    if is_pct and not percent:
        raise ValueError(f"{text!r}: a percentage is only allowed for risks")
    try:
        value = Decimal(t.rstrip("%").strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if is_pct:
        value = value / 100
    out = float(value)
    if percent and not 0.0 <= out <= 1.0:
        raise ValueError(f"{text!r}: a risk must be in [0%, 100%] (a probability in [0, 1])")
    if not percent and out < 0:
        raise ValueError(f"{text!r}: an age must be >= 0 years")
    return out


FULL_RISK = Interval(0.0, 1.0, True, True, "[0%, 100%]")
