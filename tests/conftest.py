"""Fixtures shared by the test modules: the repository's own example data."""

from __future__ import annotations

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
