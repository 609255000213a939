"""Mirai's own golden demo, run here: the real release weights on the fork's demo exam give Mirai's numbers.

Mirai's fork (reginabarzilaygroup/Mirai, tests/test_predict.py ``test_demo_data``) expects, for the four DICOMs of
its release asset ``mirai_demo_data.zip`` (v0.8.0) and the weights of ``snapshots.zip`` (v0.8.0),
Year 1–5 = 0.0298, 0.0483, 0.0684, 0.09, 0.1016 (rounded to 4 decimals, calibration included). Neither asset
can be downloaded here or shipped with riskmodel, so this test is skipped unless:

    RISKMODEL_MIRAI_SNAPSHOTS=/path/to/snapshots.zip          (or the unzipped folder)
    RISKMODEL_MIRAI_DEMO=/path/to/mirai_demo_data             (folder with ccl1.dcm ccr1.dcm mlol2.dcm mlor2.dcm,
                                                               or the zip)
    pytest tests/test_mirai_golden_demo.py

It imports the snapshots with ``import_mirai`` (no pickle is run), reads the four views with the default
preprocessing preset (``dcmtk``, Mirai's default DCMTK path) at Mirai's 2048 x 1664, and compares (CPU: about a
minute).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SNAPSHOTS = os.environ.get("RISKMODEL_MIRAI_SNAPSHOTS")
DEMO = os.environ.get("RISKMODEL_MIRAI_DEMO")
#: The demo exam's files, as Mirai's test names them.
DEMO_FILES = {"L-CC": "ccl1.dcm", "R-CC": "ccr1.dcm", "L-MLO": "mlol2.dcm", "R-MLO": "mlor2.dcm"}
#: Mirai's expected Year 1..5 (its test compares values rounded to 4 decimals).
EXPECTED = (0.0298, 0.0483, 0.0684, 0.09, 0.1016)

pytestmark = pytest.mark.skipif(
    not (SNAPSHOTS and DEMO),
    reason="needs Mirai's real release: set RISKMODEL_MIRAI_SNAPSHOTS (snapshots.zip) and RISKMODEL_MIRAI_DEMO "
           "(mirai_demo_data folder or zip); see docs/mirai.md",
)


def _demo_folder(tmp_path: Path) -> Path:
    src = Path(DEMO)
    if src.is_dir():
        return src
    with zipfile.ZipFile(src) as z:
        z.extractall(tmp_path / "demo")
    found = sorted((tmp_path / "demo").rglob(DEMO_FILES["L-CC"]))
    assert found, f"{src}: no {DEMO_FILES['L-CC']} inside"
    return found[0].parent


@pytest.mark.slow
def test_mirai_golden_demo(tmp_path):
    from riskmodel.mirai import import_mirai, load_mirai_bundle

    bundle = import_mirai(SNAPSHOTS, tmp_path / "mirai")
    model = load_mirai_bundle(bundle, device="auto")
    folder = _demo_folder(tmp_path)
    exams = pd.DataFrame([{"exam_id": "demo", **{slot: str(folder / name) for slot, name in DEMO_FILES.items()}}])
    enc = model.encode(exams)
    assert enc.n_views[0] == 4, enc.message[0]
    got = enc.risk[0]
    print("riskmodel Year 1-5:", np.round(got, 6).tolist(), "Mirai:", EXPECTED)
    np.testing.assert_allclose(np.round(got, 4), EXPECTED, rtol=0, atol=1e-4 + 1e-12)
