"""Exam scoring under torchrun: 2 CPU processes (gloo) write one output equal to one process's."""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel.distributed.exams import rank_rows

HERE = Path(__file__).parent
VIEWS = ["L-CC", "L-MLO", "R-CC", "R-MLO"]


@pytest.fixture(scope="module")
def exams_and_bundle(tmp_path_factory):
    """An untrained tiny image model bundle and 7 synthetic exams (one without any readable view)."""
    import torch

    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.inference import save_image_model
    from riskmodel.nn import ImageRiskModel, tiny_config
    from riskmodel.synthetic import make_cohort, write_exams

    root = tmp_path_factory.mktemp("exams")
    torch.manual_seed(0)
    save_image_model(root / "bundle", ImageRiskModel(tiny_config(image_size=(64, 52))),
                     preprocessing={"image_size": [64, 52], "view_order": VIEWS})
    write_exams(make_cohort(7, seed=1), root / "dicoms", image_size=(64, 52), seed=1)
    exams = assemble_exams(scan_dicoms(root / "dicoms"))
    exams.loc[2, VIEWS] = None
    exams.to_csv(root / "exams.csv", index=False)
    return root


def embed(root: Path, out: Path, *extra: str, processes: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    args = ["-m", "riskmodel.cli", "embed", "--bundle", str(root / "bundle"), "--exams", str(root / "exams.csv"),
            "-o", str(out), "--device", "cpu", *extra]
    launch = [sys.executable]
    if processes > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return subprocess.run(launch + args, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("n", "batch", "world"), [(7, 2, 2), (10, 4, 2), (3, 4, 2), (9, 1, 4), (0, 3, 2)])
def test_ranks_take_contiguous_runs_of_whole_batches(n, batch, world):
    spans = [rank_rows(n, batch, r, world) for r in range(world)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # in order, no gap, no overlap
    assert all(start % batch == 0 or start == n for start, _ in spans)


def test_two_gloo_processes_write_the_single_process_output(exams_and_bundle, tmp_path):
    root = exams_and_bundle
    single = embed(root, tmp_path / "single.parquet", "--batch-size", "2")
    assert single.returncode == 0, single.stderr[-3000:]
    run = embed(root, tmp_path / "ranks.parquet", "--batch-size", "2", processes=2)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "embedded 7 exams (6 ok) on 2 processes" in run.stderr
    a, b = pd.read_parquet(tmp_path / "single.parquet"), pd.read_parquet(tmp_path / "ranks.parquet")
    pd.testing.assert_frame_equal(b, a, check_exact=True)
    assert b["exam_id"].tolist() == pd.read_csv(root / "exams.csv")["exam_id"].tolist()
    assert b["status"].tolist()[2] == "no_views" and np.isfinite(b.filter(like="emb_").to_numpy()[[0, 6]]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranks.parquet", "single.parquet"]  # shards removed


def test_a_failure_stops_every_process_and_writes_nothing(exams_and_bundle, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(exams_and_bundle, root)
    config = root / "bundle" / "config.json"
    config.write_text(config.read_text().replace('"n_years": 5', '"n_years": 4'))  # fails its SHA-256 check
    out = tmp_path / "out" / "emb.csv"
    run = embed(root, out, processes=2)
    assert run.returncode != 0
    assert run.stderr.count("riskmodel: error:") == 2 and "config.json" in run.stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
