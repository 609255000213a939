"""The scripts in examples/ run and print what they promise."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize(("script", "expected"), [
    ("quickstart.py", ["W001 40.0       1.10", "W012: not_applicable"]),
    ("from_r_bcra.py", ["1.098937", "13.165545", "31.062395"]),
])
def test_example_runs(script, expected):
    run = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for text in expected:
        assert text in run.stdout
