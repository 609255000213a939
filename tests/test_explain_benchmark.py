"""benchmarks/explain_faithfulness.py: the mass settings reach the command line and a stale --work folder is refused."""

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # the script imports its sibling _report
    try:
        spec = importlib.util.spec_from_file_location("explain_faithfulness", BENCH / "explain_faithfulness.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_command_line_records_the_mass_settings(bench):
    args = bench.build_parser().parse_args(["--lesion-contrast", "0.6", "--lesion-scale", "1.5", "--work", "/tmp/x"])
    line = bench.command_line(args)
    assert "--lesion-contrast 0.6" in line and "--lesion-scale 1.5" in line and "/tmp/x" not in line
    default = bench.build_parser().parse_args([])
    assert default.lesion_contrast == 0.14 and default.lesion_scale == 1.0


def test_work_folder_rendered_with_other_mass_settings_is_refused(bench, tmp_path):
    (tmp_path / "lesions.csv").write_text("exam_id\n")
    (tmp_path / "render_settings.json").write_text(json.dumps(
        {"image_size": [128, 104], "lesion_contrast": 0.14, "lesion_scale": 1.0, "seed": 7, "lesion_years": 5.0}))
    with pytest.raises(ValueError, match="rendered with"):
        bench.render(pd.DataFrame({"exam_id": []}), tmp_path, (128, 104), 0.6, 1.5)
    (tmp_path / "render_settings.json").unlink()  # an older folder without the record: refused too
    with pytest.raises(ValueError, match=r"None: not recorded"):
        bench.render(pd.DataFrame({"exam_id": []}), tmp_path, (128, 104), 0.14, 1.0)
