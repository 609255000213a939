"""Speed measurements for the benchmark suite's speed section: Gail, DICOM reading, the image encoder.

Each function measures on the machine it runs on and returns plain numbers; :func:`machine_info`
says which machine that was. Recorded results of the standalone scripts in ``benchmarks/``
(GPU runs among them) are read by :func:`recorded_results`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict[str, Any]:
    """CPU count, processor, accelerator and library versions of this process."""
    import pandas as pd
    import torch

    from riskmodel.version import __version__

    info: dict[str, Any] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                            "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                            "torch": torch.__version__, "riskmodel": __version__,
                            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return info


def gail_rows_per_second(n: int = 200_000, seed: int = 0) -> dict[str, float]:
    """``riskmodel.predict_risk`` (Gail) rows/s at five years and to age 90, on ``n`` synthetic women."""
    from riskmodel.api import predict_risk
    from riskmodel.synthetic import make_cohort

    cohort = make_cohort(n, seed=seed)
    cohort = cohort[cohort["brca"] == "negative"].reset_index(drop=True)
    out = {"rows": len(cohort)}
    for name, horizon in (("five_year", 5), ("lifetime", "lifetime")):
        predict_risk(cohort.iloc[:1000], horizon=horizon)  # warm-up
        start = time.perf_counter()
        predict_risk(cohort, horizon=horizon)
        out[f"{name}_rows_per_second"] = round(len(cohort) / (time.perf_counter() - start))
    return out


def forward_flops(model: Any, size: tuple[int, int]) -> float:
    """FLOPs of one view through the image encoder (the aggregator and heads are negligible)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, model.config.in_channels, *size, device=next(model.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.encoder(x)
    return float(counter.get_total_flops())


def cpu_peak_gflops() -> float | None:
    """Nominal fp32 peak of this process's CPU threads: threads × GHz × 32 (None if the clock is unknown).

    32 FLOP/cycle = two 256-bit FMA units (AVX2); a CPU with AVX-512 may do more.
    """
    import torch

    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    except OSError:
        return None
    if not mhz:
        return None
    return torch.get_num_threads() * (sum(mhz) / len(mhz) / 1000) * 32


def images_per_second(model: Any, size: tuple[int, int], batch: int, steps: int, device: Any, train: bool) -> float:
    """Views per second of ``model`` on random exams ``(batch, 4, C, H, W)``: ``steps`` timed steps after 2 warm-ups.

    Training steps use AdamW and bf16 autocast on CUDA; inference runs under ``inference_mode``.
    """
    import torch

    images = torch.rand(batch, 4, model.config.in_channels, *size, device=device)
    mask = torch.ones(batch, 4, dtype=torch.bool, device=device)
    labels = torch.zeros(batch, model.config.n_years, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4) if train else None
    cuda = torch.device(device).type == "cuda"
    cast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    model.train(train)

    def step() -> None:
        with cast:
            out = model(images, mask)
        if train:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out["logits"].float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    with torch.enable_grad() if train else torch.inference_mode():
        for _ in range(2):
            step()
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
    return batch * 4 * steps / (time.perf_counter() - start)


def cpu_encoder_inference(sizes: tuple[tuple[int, int], ...] = ((512, 416), (2048, 1664))) -> dict[str, Any]:
    """Inference views/s of the default (ResNet-18) image model on the CPU, batch 1, per size.

    Returns:
        ``threads``, ``nominal_peak_gflops`` and, per ``"HxW"``, ``views_per_second``,
        ``gflops_per_view``, ``achieved_gflops`` and ``fraction_of_peak``.
    """
    import torch

    from riskmodel.nn import ImageRiskModel, ModelConfig

    peak = cpu_peak_gflops()
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "nominal_peak_gflops": peak}
    for size in sizes:
        torch.manual_seed(0)
        model = ImageRiskModel(ModelConfig(image_size=size))
        flops = forward_flops(model, size)
        rate = images_per_second(model, size, 1, 2 if size[0] > 1000 else 5, torch.device("cpu"), train=False)
        gflops = rate * flops / 1e9
        out[f"{size[0]}x{size[1]}"] = {"views_per_second": round(rate, 3), "gflops_per_view": round(flops / 1e9, 2),
                                       "achieved_gflops": round(gflops, 1),
                                       "fraction_of_peak": None if not peak else round(gflops / peak, 3)}
    return out


def dicom_read_rate(exams: Any, image_size: tuple[int, int], limit: int = 200) -> dict[str, float]:
    """Read + preprocess rate (views/s) of the first ``limit`` exams of an exams table, no cache.

    Args:
        exams: output of :func:`riskmodel.imaging.assemble_exams`.
        image_size: ``(H, W)`` the views are resized to.
    """
    from riskmodel.imaging import ExamDataset

    ds = ExamDataset(exams.iloc[:limit], image_size=image_size)
    start = time.perf_counter()
    views = 0
    for i in range(len(ds)):
        views += int(ds[i]["mask"].sum())
    seconds = time.perf_counter() - start
    return {"views": views, "views_per_second": round(views / max(seconds, 1e-9), 1)}


def recorded_results(folder: str | Path) -> dict[str, Any]:
    """The JSON results of the standalone benchmark scripts found in ``folder`` (``benchmarks/results``).

    Returns:
        File stem → parsed JSON, for ``gail_throughput``, ``imaging_throughput``,
        ``synthetic_cohort`` and every ``gpu_train_*``; missing files are left out.
    """
    folder = Path(folder)
    out: dict[str, Any] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        if path.stem in ("gail_throughput", "imaging_throughput", "synthetic_cohort") or path.stem.startswith(
                "gpu_train"):
            try:
                out[path.stem] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
    return out
