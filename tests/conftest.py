"""Fixtures shared by the test modules: the repository's own example data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def example_cohort_path() -> Path:
    """``examples/example_cohort.csv``: 20 women in the canonical schema."""
    return REPO / "examples" / "example_cohort.csv"


@pytest.fixture(scope="session")
def bcra_example_path() -> Path:
    """``tests/data/bcra_example.csv``: BCRA 2.1.2's example data with R's outputs."""
    return REPO / "tests" / "data" / "bcra_example.csv"


def require_executable(name: str) -> str:
    """Path of the system program ``name`` (e.g. ``dcmj2pnm``, ``storescu``, ``chromium``) a test drives.

    Skips the test where the program is absent, except under ``RISKMODEL_REQUIRE_TOOLS=1`` (set by
    ``.ci/run``, which installs Debian's ``dcmtk`` and ``chromium``), where its absence fails the test.
    """
    path = shutil.which(name)
    if path is None:
        if os.environ.get("RISKMODEL_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is required (RISKMODEL_REQUIRE_TOOLS=1) but not on PATH")
        pytest.skip(f"{name} not installed (Debian: apt-get install dcmtk / chromium)")
    return path
