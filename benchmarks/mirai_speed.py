"""CPU seconds and peak memory per four-view exam at Mirai's input size: this library's port beside Mirai's own code.

Mirai's source is checked out OUTSIDE this repository (``--mirai-src``; patched at run time, see
``benchmarks/_mirai_harness.py``). The parent process builds Mirai's model (released encoder; transformer H = 512,
8 heads, max pool) with seeded weights, saves it as Mirai saves snapshots and imports it with the restricted
importer; then each implementation runs in its own fresh process (so its peak RSS is its own):

* ``mirai``: Mirai's ``MiraiFull`` loaded by Mirai's code, called as its ``process_image_joint`` calls it
  (autograd left on: Mirai's inference does not use ``torch.no_grad``);
* ``mirai-no-grad``: the same under ``torch.no_grad()`` (what the port does), to separate that effect;
* ``ours``: :class:`riskmodel.mirai.model.MiraiModel` from the bundle, under ``torch.inference_mode()``.

Each process times ``--exams`` single-exam forwards (the first also reported on its own: it includes one-time
set-up) and one batch of ``--batch`` exams, and reports peak RSS (``ru_maxrss``). Inputs are identical, so the
outputs are compared too. A GPU section runs only when CUDA is available.

Usage::

    python benchmarks/mirai_speed.py --mirai-src /tmp/mirai-src [--exams 2] [--batch 2] [--threads 2]

Writes ``benchmarks/results/mirai_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _mirai_harness import (
    build_mirai,
    calibrators,
    load_onconet,
    mirai_batch,
    mirai_full,
    save_release,
    seed_weights,
)
from _report import machine_info, publish, utc_now
from mirai_seeded import golden_images  # tests/ (on sys.path via _mirai_harness)

RESULTS = Path(__file__).parent / "results" / "mirai_speed.json"
FULL_SIZE = (2048, 1664)
VIEWS, SIDES = [0, 1, 0, 1], [0, 0, 1, 1]
KINDS = ("mirai", "mirai-no-grad", "ours")


def _rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load(kind: str, release: Path, bundle: Path, src: str):
    """A function images (B, 4, 3, H, W) → raw probabilities (B, 5), for one implementation."""
    if kind == "ours":
        from riskmodel.bundle import load_bundle
        from riskmodel.mirai.model import MiraiModel

        b = load_bundle(bundle)
        model = MiraiModel.from_bundle_parts(b.config, b.state_dict)

        def ours(images: torch.Tensor) -> np.ndarray:
            n = len(images)
            with torch.inference_mode():
                out = model(images, view_seq=torch.tensor(VIEWS).expand(n, 4),
                            side_seq=torch.tensor(SIDES).expand(n, 4))
            return out.probabilities.numpy()

        return ours
    load_onconet(src)
    full = mirai_full(release)

    def mirai(images: torch.Tensor) -> np.ndarray:
        batch = mirai_batch(images, VIEWS, SIDES)
        if kind == "mirai-no-grad":
            with torch.no_grad():
                logit, _, _ = full(batch["x"], None, batch)
        else:
            logit, _, _ = full(batch["x"], None, batch)
        return torch.sigmoid(logit).detach().numpy()

    return mirai


def child(args: argparse.Namespace) -> None:
    """Time one implementation in this (fresh) process and print a JSON line."""
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    rss_start = _rss_mib()
    t0 = time.perf_counter()
    predict = _load(args.child, Path(args.release), Path(args.bundle), args.mirai_src)
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mib()
    exams, outputs = [], []
    for i in range(args.exams):
        images = golden_images(1, size, 1000 + i)
        w, c = time.perf_counter(), time.process_time()
        outputs.append(predict(images))
        exams.append({"wall_s": round(time.perf_counter() - w, 2), "cpu_s": round(time.process_time() - c, 2)})
    batch = {}
    if args.batch > 1:
        images = golden_images(args.batch, size, 2000)
        w, c = time.perf_counter(), time.process_time()
        predict(images)
        wall = time.perf_counter() - w
        batch = {"exams": args.batch, "wall_s": round(wall, 2), "cpu_s": round(time.process_time() - c, 2),
                 "exams_per_s": round(args.batch / wall, 4)}
    print(json.dumps({"kind": args.child, "threads": torch.get_num_threads(), "load_s": round(load_s, 2),
                      "rss_start_mib": round(rss_start, 1), "rss_after_load_mib": round(rss_loaded, 1),
                      "peak_rss_mib": round(_rss_mib(), 1),
                      "peak_rss_above_start_mib": round(_rss_mib() - rss_start, 1), "exams": exams, "batch": batch,
                      "raw": np.concatenate(outputs).tolist()}))


def _spawn(kind: str, args: argparse.Namespace, release: Path, bundle: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--release", str(release), "--bundle", str(bundle),
           "--mirai-src", args.mirai_src, "--exams", str(args.exams), "--batch", str(args.batch),
           "--threads", str(args.threads), "--size", args.size]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def gpu_section() -> dict:
    if not torch.cuda.is_available():
        return {"available": False, "note": "no CUDA device on this machine; bf16/fp32 exams/s not measured"}
    return {"available": True, "note": "not measured by this script version"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirai-src", required=True, help="Mirai's source checkout (outside this repository)")
    parser.add_argument("--exams", type=int, default=2, help="single-exam forwards per implementation")
    parser.add_argument("--batch", type=int, default=2, help="exams in the batch-throughput forward (1: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="x".join(map(str, FULL_SIZE)), help="input HxW (Mirai's: 2048x1664)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--release", help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from mirai_parity import import_bundle

    load_onconet(args.mirai_src)
    report: dict = {
        "benchmark": "mirai_speed",
        "date": utc_now(),
        "command": f"python benchmarks/mirai_speed.py --mirai-src MIRAI_SRC --exams {args.exams} --batch "
                   f"{args.batch} --threads {args.threads} --size {args.size}",
        "machine": machine_info(),
        "load_note": "2-core machine shared with other jobs (and with benchmarks/mirai_parity.py) during this run: "
                     "wall times are noisy and long; CPU seconds are less affected. "
                     "Seeded weights, not the released ones (same architecture/cost).",
        "model": "Mirai released encoder (ResNet-18 variant) + transformer H=512, 8 heads, GlobalMaxPool",
    }
    with tempfile.TemporaryDirectory(prefix="mirai-speed-") as tmp:
        encoder, transformer = build_mirai(512, 8, "GlobalMaxPool")
        seed_weights(encoder, "encoder.", 7)
        seed_weights(transformer, "transformer.", 7)
        release = save_release(Path(tmp) / "release", encoder, transformer, calibrators(7))
        del encoder, transformer
        import_bundle(release, Path(tmp) / "bundle")
        results = {kind: _spawn(kind, args, release, Path(tmp) / "bundle") for kind in KINDS}
    raw = {k: np.array(v.pop("raw")) for k, v in results.items()}
    report["results"] = results
    report["max_abs_diff_raw_ours_vs_mirai"] = float(np.abs(raw["ours"] - raw["mirai"]).max())
    report["gpu"] = gpu_section()
    publish(report, RESULTS, write=not args.no_write)


if __name__ == "__main__":
    main()
