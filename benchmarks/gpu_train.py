"""Image model throughput: training and inference images/s, and the fraction of peak FLOP/s.

On CUDA (bf16 autocast) the default is Mirai's 2048×1664 and the default ResNet-18 config; on
CPU (float32) a tiny size and config, so the script runs anywhere. ``--cpu-inference`` also
measures the library's inference path on the CPU at 512×416 and 2048×1664 (batch 1, the
default ResNet-18 encoder) as a fraction of the CPU's nominal fp32 peak
(cores × GHz × 32 FLOP/cycle: two 256-bit FMA units).

Usage::

    python benchmarks/gpu_train.py                       # CUDA: 2048x1664; CPU: tiny
    python benchmarks/gpu_train.py --cpu-inference       # add CPU inference at 512x416 and 2048x1664
    python benchmarks/gpu_train.py --size 1024x832 --batch-size 4 --peak-tflops 989

Writes ``benchmarks/results/gpu_train_<device>.json`` with the date and the device name.
FLOPs are counted with ``torch.utils.flop_counter`` on one view's forward pass; a training step
is counted as 3× the forward FLOPs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path

import torch

import riskmodel
from riskmodel.benchmarking.speed import cpu_encoder_inference, cpu_peak_gflops, forward_flops
from riskmodel.benchmarking.speed import images_per_second as measure
from riskmodel.nn import ImageRiskModel, ModelConfig, tiny_config

RESULTS = Path(__file__).parent / "results"
#: Dense BF16 tensor-core peak (NVIDIA data sheets), TFLOP/s; override with --peak-tflops.
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", help="ROWSxCOLUMNS (default: 2048x1664 on CUDA, 128x104 on CPU)")
    parser.add_argument("--batch-size", type=int, help="exams per step (default: 2 on CUDA, 2 on CPU)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="tiny config (default on CPU)")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--peak-tflops", type=float, help="device peak for the fraction (default: data sheet)")
    parser.add_argument("--cpu-inference", action="store_true", help="also CPU inference at 512x416, 2048x1664")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size = _size(args.size) if args.size else ((2048, 1664) if cuda else (128, 104))
    batch = args.batch_size or 2
    tiny = args.tiny or not cuda
    config = (tiny_config if tiny else ModelConfig)(image_size=size, gradient_checkpointing=args.checkpointing,
                                                    channels_last=args.channels_last)
    torch.manual_seed(0)
    model = ImageRiskModel(config).to(device)
    flops = forward_flops(model, size)
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    peak = args.peak_tflops
    if peak is None and cuda:
        peak = next((v for k, v in GPU_PEAK_TFLOPS.items() if k in name), None)
    if peak is None and not cuda:
        cpu = cpu_peak_gflops()
        peak = None if cpu is None else cpu / 1000
    report: dict = {
        "benchmark": "gpu_train",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": name, "device_type": device.type, "torch": torch.__version__, "riskmodel": riskmodel.__version__,
        "precision": "bf16 autocast" if cuda else "fp32", "config": "tiny" if tiny else "default (ResNet-18)",
        "image_size": list(size), "batch_exams": batch, "gradient_checkpointing": args.checkpointing,
        "forward_gflops_per_view": round(flops / 1e9, 3), "peak_tflops": peak,
        "command": "python benchmarks/gpu_train.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k.replace('_', '-')}"
            for k, v in vars(args).items() if v not in (None, False)),
    }
    for mode in ("train", "inference"):
        rate = measure(model, size, batch, args.steps, device, train=mode == "train")
        achieved = rate * flops * (3 if mode == "train" else 1) / 1e12
        report[mode] = {"images_per_second": round(rate, 2), "achieved_tflops": round(achieved, 4),
                        "fraction_of_peak": None if not peak else round(achieved / peak, 4)}
    if args.cpu_inference:
        report["cpu_inference"] = cpu_encoder_inference()
    print(json.dumps(report, indent=2))
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        tag = "cuda_" + name.replace(" ", "_") if cuda else "cpu"
        (RESULTS / f"gpu_train_{tag}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    main()
