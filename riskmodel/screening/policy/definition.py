"""What a screening policy is: its vocabulary (measures, modalities, conditions), its parts as frozen
dataclasses, and PolicyError."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from riskmodel.screening.policy.interval import Interval

#: The file format version this module reads (``schema = 1`` in a policy file).
SCHEMA_VERSION = 1

#: Risk measures a policy can use, with the horizon in years (``None``: the policy uses age only).
MEASURES: dict[str, float | str | None] = {
    "five_year": 5.0,
    "ten_year": 10.0,
    "lifetime": "lifetime",
    "none": None,
}

#: Screening modalities a schedule may name, with the words used in rationales and reports.
MODALITIES = {
    "mammography": "mammography (digital mammography or tomosynthesis)",
    "mri": "breast MRI",
    "mammography_and_mri": "mammography and breast MRI",
    "mammography_mri_alternating": "mammography and breast MRI, alternating",
    "none": "no routine screening for now",
    "individual_decision": "an individual decision with her clinician",
    "not_addressed": "screening is not addressed by this policy",
}
#: Modalities that carry no interval (``interval_months`` is NaN for them).
NO_INTERVAL = ("none", "individual_decision", "not_addressed")

#: Supplemental imaging a schedule may add ("" = none).
SUPPLEMENTAL = {"": "none", "mri": "breast MRI", "ultrasound": "breast ultrasound"}

#: Conditions a policy may test, with the canonical column and the words used in messages.
CONDITIONS = {
    "carrier": ("brca", "a BRCA1/2 pathogenic variant"),
    "chest_radiation": ("chest_radiation", "chest radiation therapy"),
    "prior_breast_cancer": ("prior_breast_cancer", "a personal history of breast cancer"),
    "prior_dcis_or_lcis": ("prior_dcis_or_lcis", "a history of DCIS or LCIS"),
    "atypical_hyperplasia": ("atypical_hyperplasia", "atypical hyperplasia on a biopsy"),
}
#: Upgrade rules (``[[upgrade]] when = ...``): a condition above, or the age-specific percentile.
UPGRADES = (*CONDITIONS, "top_percentile_for_age")


class PolicyError(ValueError):
    """A policy file that cannot be used: ``path`` names the file, ``rule`` says what is wrong."""

    def __init__(self, path: str, rule: str):
        self.path = path
        self.rule = rule
        super().__init__(f"policy {path}: {rule}")


@dataclass(frozen=True)
class Source:
    """Where a policy's numbers come from."""

    citation: str
    short: str
    year: int
    url: str = ""


@dataclass(frozen=True)
class Verification:
    """One claim of the policy file and whether it was checked against its primary source."""

    claim: str
    verified: bool
    checked_against: str = ""
    note: str = ""


@dataclass(frozen=True)
class Category:
    """A risk category; ``rank`` orders them from least to most intensive (file order)."""

    id: str
    label: str
    rank: int
    chemoprevention: bool = False


@dataclass(frozen=True)
class Threshold:
    """Women of ``ages`` whose risk is in ``risk`` belong to ``category``."""

    category: str
    ages: Interval
    risk: Interval
    index: int


@dataclass(frozen=True)
class Schedule:
    """What ``category`` means for women of ``ages``."""

    category: str
    ages: Interval
    modality: str
    interval_months: float  # NaN for the modalities in NO_INTERVAL
    supplemental: str
    advice: str


@dataclass(frozen=True)
class Upgrade:
    """A rule that raises a woman's category to ``category`` (never lowers it)."""

    when: str
    category: str
    percentile: float = math.nan  # top_percentile_for_age only: e.g. 97.5
    age_band_years: float = 5.0
    min_reference: int = 200


@dataclass(frozen=True)
class Policy:
    """A validated screening policy (see :func:`load_policy`)."""

    id: str
    title: str
    version: str
    measure: str
    ages: Interval
    source: Source
    categories: tuple[Category, ...]
    thresholds: tuple[Threshold, ...]
    schedules: tuple[Schedule, ...]
    upgrades: tuple[Upgrade, ...] = ()
    not_for: tuple[str, ...] = ()
    verification: tuple[Verification, ...] = ()
    chemoprevention: Policy | None = None
    notes: str = ""
    model_caveats: tuple[tuple[str, str], ...] = ()  # (model name, sentence added to rationales of its risks)
    path: str = ""
    _by_id: dict[str, Category] = field(default_factory=dict, repr=False, compare=False)

    @property
    def verified(self) -> bool:
        """True when every claim listed in the file was checked against its primary source."""
        return bool(self.verification) and all(v.verified for v in self.verification)

    def category(self, category_id: str) -> Category:
        """The category with this id."""
        return self._by_id[category_id]

    @property
    def needs_reference(self) -> bool:
        """True if a rule compares a woman with the others of her age (a "top percentile for age" rule):
        apply such a policy to the whole cohort at once, or pass a reference population."""
        return any(u.when == "top_percentile_for_age" for u in self.upgrades)

    def uses(self, condition: str) -> bool:
        """Whether any rule of the policy looks at ``condition`` (e.g. ``"carrier"``)."""
        return condition in self.not_for or any(u.when == condition for u in self.upgrades)
