"""Screening policies as data: load a versioned TOML file and check it against the policy schema.

A policy file says which risk measure it uses, how (age, risk) maps to a **category**, what each
category means at each age (a **schedule**: modality, interval, supplemental imaging), which
conditions raise a woman's category (a pathogenic variant; being in the top percentile of risk
for her age) or put her outside the policy, and where every number comes from. The format is
described in ``docs/screening.md``; the shipped files are in ``riskmodel/screening/policies/``.

Intervals are written as text, with brackets saying whether each bound is included:
``"[1.3%, 6%)"`` is 1.3 % ≤ risk < 6 %, ``"[40, 75)"`` is 40 ≤ age < 75 (years), ``inf`` is
allowed as an upper bound. Risks may be given in percent (``1.66%``) or as probabilities
(``0.0166``); both become the same float.

>>> policy = load_policy("wisdom")
>>> policy.measure, str(policy.ages), [c.id for c in policy.categories]
('five_year', '[40, 75)', ['low', 'average', 'elevated', 'highest'])

One module per job: :mod:`.interval` (interval text), :mod:`.definition` (the vocabulary, the
:class:`Policy` dataclasses, :class:`PolicyError`), :mod:`.loading` (:func:`load_policy`,
:func:`list_policies`: reading a file strictly), :mod:`.coverage` (the whole-policy checks:
thresholds without gaps or overlaps, one schedule per category and age). Applying a policy is
:mod:`riskmodel.screening.recommend`.
"""

from riskmodel.screening.policy.definition import (
    CONDITIONS,
    MEASURES,
    MODALITIES,
    NO_INTERVAL,
    SCHEMA_VERSION,
    SUPPLEMENTAL,
    UPGRADES,
    Category,
    Policy,
    PolicyError,
    Schedule,
    Source,
    Threshold,
    Upgrade,
    Verification,
)
from riskmodel.screening.policy.interval import FULL_RISK, Interval
from riskmodel.screening.policy.loading import list_policies, load_policy

__all__ = [
    "CONDITIONS",
    "FULL_RISK",
    "MEASURES",
    "MODALITIES",
    "NO_INTERVAL",
    "SCHEMA_VERSION",
    "SUPPLEMENTAL",
    "UPGRADES",
    "Category",
    "Interval",
    "Policy",
    "PolicyError",
    "Schedule",
    "Source",
    "Threshold",
    "Upgrade",
    "Verification",
    "list_policies",
    "load_policy",
]
