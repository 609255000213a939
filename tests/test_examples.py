"""The scripts in examples/ run and print what they promise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import riskmodel

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


def test_hybrid_quickstart_small_mode(tmp_path):
    env = {**os.environ, "RISKMODEL_EXAMPLE_SMALL": "1"}
    run = subprocess.run([sys.executable, str(EXAMPLES / "hybrid_quickstart.py"), str(tmp_path)], capture_output=True,
                         text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    for text in ("1/4 synthetic cohort: 60 women", "3/4 hybrid model: TorchHazardHead on 48 women",
                 "4/4 predict_risk on 12 held-out women", "density_from_image", "factors-only fallback model"):
        assert text in run.stdout
    assert {p.name for p in (tmp_path / "hybrid").iterdir()} == {"image", "fusion.json", "manifest.json"}
    riskmodel.load_hybrid(tmp_path / "hybrid", device="cpu")  # the saved model verifies and loads
