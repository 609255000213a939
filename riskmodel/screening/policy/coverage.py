"""The checks a loaded policy must pass as a whole: thresholds cover every age and risk once, and every
category has one schedule per age."""

from __future__ import annotations

import itertools
import math

from riskmodel.screening.policy.definition import Policy
from riskmodel.screening.policy.interval import Interval


def _probe_ages(scope: Interval, windows: list[Interval]) -> list[tuple[float, float, float, bool]]:
    """One age per piece of ``scope`` cut at every window bound: each bound itself (a point) and a
    point inside each open piece between bounds, as ``(age, piece_lo, piece_hi, is_point)``."""
    cuts = sorted({scope.lo, scope.hi, *(b for w in windows for b in (w.lo, w.hi))} - {math.inf})
    cuts = [c for c in cuts if scope.lo <= c <= scope.hi]
    probes: list[tuple[float, float, float, bool]] = []
    for i, c in enumerate(cuts):
        probes.append((c, c, c, True))
        nxt = cuts[i + 1] if i + 1 < len(cuts) else (scope.hi if math.isinf(scope.hi) else None)
        if nxt is not None and nxt > c:
            probes.append((c + 1.0 if math.isinf(nxt) else (c + nxt) / 2, c, nxt, False))
    return [p for p in probes if scope.contains(p[0])]


def _first_problem(probes: list[tuple[float, float, float, bool]], check) -> tuple[str, str] | None:
    """The first problem ``check(age)`` reports, with the run of ages it holds for, in words."""
    for i, probe in enumerate(probes):
        problem = check(probe[0])
        if problem is None:
            continue
        j = i
        while j + 1 < len(probes) and check(probes[j + 1][0]) == problem:
            j += 1
        first, last = probe, probes[j]
        if i == j and first[3]:
            return problem, f"at age {first[0]:g}"
        lo = f"{'[' if first[3] else '('}{first[1]:g}"
        hi = f"{last[2]:g}{']' if last[3] else ')'}"
        return problem, f"at ages {lo}, {hi}"
    return None


def check_thresholds(policy: Policy, fail) -> None:
    """Raise ``fail(rule)`` unless, at every age of the policy, its thresholds cover risks 0–100 % once each
    (no gap, no overlap) and every threshold's ages lie inside the policy's ages."""
    for t in policy.thresholds:
        if not any(t.ages.contains(p[0]) for p in _probe_ages(policy.ages, [t.ages])):
            raise fail(f"[[threshold]] #{t.index + 1}: ages {t.ages} lie outside the policy's ages {policy.ages}")

    def check(age: float) -> str | None:
        rules = sorted((t for t in policy.thresholds if t.ages.contains(age)),
                       key=lambda t: (t.risk.lo, not t.risk.lo_closed))
        if not rules:
            return "thresholds leave a gap {where}: no [[threshold]] covers these ages"
        first, last = rules[0], rules[-1]
        if first.risk.lo > 0 or not first.risk.lo_closed:
            return (f"thresholds leave a gap {{where}}: risk from 0% up to {_pct(first.risk.lo)} "
                    f"({'excluded' if first.risk.lo_closed else 'included'}) is in no category")
        for a, b in itertools.pairwise(rules):
            touch = b.risk.lo == a.risk.hi
            if b.risk.lo < a.risk.hi or (touch and a.risk.hi_closed and b.risk.lo_closed):
                return (f"thresholds overlap {{where}}: {a.category!r} {a.risk} and {b.category!r} {b.risk} "
                        f"both contain {_pct(b.risk.lo)}")
            if b.risk.lo > a.risk.hi or (touch and not a.risk.hi_closed and not b.risk.lo_closed):
                return (f"thresholds leave a gap {{where}}: risk between {a.category!r} {a.risk} and "
                        f"{b.category!r} {b.risk} is in no category")
        if last.risk.hi < 1:
            return (f"thresholds leave a gap {{where}}: risk from {_pct(last.risk.hi)} up to 100% is in no "
                    "category (end the last interval with 100%])")
        if not last.risk.hi_closed:
            return "thresholds leave a gap {where}: a risk of 100% is in no category (end the last interval with 100%])"
        return None

    found = _first_problem(_probe_ages(policy.ages, [t.ages for t in policy.thresholds]), check)
    if found is not None:
        raise fail(found[0].format(where=found[1]))


def check_schedules(policy: Policy, fail) -> None:
    """Raise ``fail(rule)`` unless every category is reached (by a threshold or an upgrade) and has exactly
    one schedule at every age of the policy."""
    for cat in policy.categories:
        own = [s for s in policy.schedules if s.category == cat.id]
        reachable = any(t.category == cat.id for t in policy.thresholds) or any(
            u.category == cat.id for u in policy.upgrades)
        if not reachable:
            raise fail(f"category {cat.id!r} is never reached: no [[threshold]] or [[upgrade]] leads to it")

        def check(age: float, own=own, cat=cat) -> str | None:
            hits = [s for s in own if s.ages.contains(age)]
            if not hits:
                return f"category {cat.id!r} has no [[schedule]] {{where}}"
            if len(hits) > 1:
                return f"category {cat.id!r} has overlapping [[schedule]]s {{where}}: " + " and ".join(
                    str(s.ages) for s in hits)
            return None

        found = _first_problem(_probe_ages(policy.ages, [s.ages for s in own]), check)
        if found is not None:
            raise fail(found[0].format(where=found[1]))


def _pct(p: float) -> str:
    """A probability as a short percentage (``0.0166`` → ``'1.66%'``)."""
    return f"{p * 100:.10g}%"
