"""This library's Mirai port against Mirai's own code, on the same seeded model and the same inputs.

Mirai's source is checked out OUTSIDE this repository and given with ``--mirai-src``; nothing of it is copied.
For each configuration of the released grid (H, heads, pool: only the release's pickle says which one it is) the
script builds Mirai's encoder and transformer with Mirai's own factory, perturbs every parameter and BatchNorm
buffer (seeded), saves them as Mirai saves snapshots (``torch.save`` of the module) plus a calibrator pickle of
Mirai's ``MiraiCalibrator`` objects, imports that folder with ``riskmodel import-mirai`` (a subprocess; the
restricted unpickler), and compares per-year raw and calibrated probabilities of Mirai's ``MiraiFull`` forward +
calibrator with :class:`riskmodel.mirai.model.MiraiModel` on identical input tensors: several exams at a small
size and one at Mirai's full 2048×1664. The patches Mirai's code needed here are listed in the JSON.

Usage::

    git --git-dir=MIRAI_GIT archive HEAD | tar -x -C /tmp/mirai-src
    python benchmarks/mirai_parity.py --mirai-src /tmp/mirai-src [--exams 4] [--size 256x208] [--full-exams 1]
        [--golden tests/data/mirai_parity_golden.json]

Writes ``benchmarks/results/mirai_parity.json`` and (``--golden``) the CI golden numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _mirai_harness import (
    PATCHES,
    build_mirai,
    calibrators,
    load_onconet,
    mirai_batch,
    mirai_exam_from_dicom,
    mirai_full,
    save_release,
    seed_weights,
)
from _report import machine_info, publish, utc_now
from mirai_seeded import golden_images, golden_risk_factors  # tests/ (on sys.path via _mirai_harness)

from riskmodel.bundle import load_bundle
from riskmodel.mirai.config import RISK_FACTOR_NUM_CLASSES
from riskmodel.mirai.importer import bundle_calibration
from riskmodel.mirai.model import MiraiModel

RESULTS = Path(__file__).parent / "results" / "mirai_parity.json"
RAW_TARGET = 1e-5  # max |Δ| on raw probabilities, identical input tensors (issue 19)
E2E_TARGET = 1e-4  # max |Δ| end to end from DICOM files (issue 19)
#: (H, heads, pool) of Mirai's transformer search grid (configs/mirai_full.json); the first is run at full size.
GRID = ((512, 8, "GlobalMaxPool"), (1024, 16, "GlobalMaxPool"), (512, 8, "Simple_AttentionPool"),
        (512, 8, "GlobalAvgPool"))
#: View order of the exam: Mirai's CSV order R-CC, R-MLO, L-CC, L-MLO (view 0 = CC, side 0 = R).
VIEWS, SIDES = [0, 1, 0, 1], [0, 0, 1, 1]


def import_bundle(release: Path, out: Path) -> tuple[MiraiModel, object]:
    """``riskmodel import-mirai release --out out`` (the CLI's entry point) in a subprocess, then our model and
    calibration from the bundle."""
    cli = [sys.executable, "-c", "import sys; from riskmodel.cli import main; sys.exit(main(sys.argv[1:]))"]
    subprocess.run([*cli, "import-mirai", str(release), "--out", str(out), "--quiet"], check=True)
    bundle = load_bundle(out)
    return MiraiModel.from_bundle_parts(bundle.config, bundle.state_dict), bundle_calibration(bundle.config)


def mirai_predict(full: torch.nn.Module, cal: dict, images: torch.Tensor, risk_factors: torch.Tensor | None = None,
                  views: list[int] = VIEWS, sides: list[int] = SIDES) -> tuple[np.ndarray, np.ndarray]:
    """Mirai's inference as ``process_image_joint`` does it, per exam: ``sigmoid(logit)``, then each year's
    ``calibrator[i].predict_proba(p).flatten()[1]``. ``risk_factors`` (B, 100) go in as Mirai's per-key list."""
    batch = mirai_batch(images, views, sides)
    rf = None
    if risk_factors is not None:
        rf = list(torch.split(risk_factors, list(RISK_FACTOR_NUM_CLASSES.values()), dim=1))
    with torch.no_grad():
        logit, _, _ = full(batch["x"], rf, batch)
    raw = torch.sigmoid(logit).numpy().astype(np.float64)
    calibrated = np.array([[cal[k].predict_proba(raw[i, k].reshape(-1, 1)).flatten()[1] for k in sorted(cal)]
                           for i in range(len(raw))])
    return raw, calibrated


def ours_predict(model: MiraiModel, calibration, images: torch.Tensor, risk_factors: torch.Tensor | None = None,
                 views: list[int] = VIEWS, sides: list[int] = SIDES) -> tuple[np.ndarray, np.ndarray]:
    """This library's port on the same tensors: raw probabilities and Mirai's per-year calibration."""
    with torch.no_grad():
        out = model(images, view_seq=torch.tensor(views).expand(len(images), 4),
                    side_seq=torch.tensor(sides).expand(len(images), 4), risk_factors=risk_factors)
    raw = out.probabilities.numpy().astype(np.float64)
    return raw, calibration.predict(raw)


def compare(mirai: tuple[np.ndarray, np.ndarray], ours: tuple[np.ndarray, np.ndarray],
            target: float = RAW_TARGET) -> dict:
    raw_diff = float(np.abs(mirai[0] - ours[0]).max())
    cal_diff = float(np.abs(mirai[1] - ours[1]).max())
    return {"max_abs_diff_raw": raw_diff, "max_abs_diff_calibrated": cal_diff, "target": target,
            "pass": raw_diff <= target and cal_diff <= target,
            "mirai_raw": mirai[0].round(8).tolist(), "ours_raw": ours[0].round(8).tolist(),
            "mirai_calibrated": mirai[1].round(8).tolist(), "ours_calibrated": ours[1].round(8).tolist()}


def build_release(work: Path, index: int, hidden: int, heads: int, pool: str, seed: int):
    """Mirai's modules for one grid configuration, seeded, saved as a release and imported: returns
    (release folder, Mirai's calibrators, our model, our calibration)."""
    encoder, transformer = build_mirai(hidden, heads, pool)
    seed_weights(encoder, "encoder.", seed + 10 * index)
    seed_weights(transformer, "transformer.", seed + 10 * index)
    cal = calibrators(seed + 10 * index)
    release = save_release(work / f"release{index}", encoder, transformer, cal)
    ours, calibration = import_bundle(release, work / f"bundle{index}")
    return release, cal, ours, calibration


def run_config(work: Path, index: int, hidden: int, heads: int, pool: str, shapes: list[tuple[int, tuple]],
               seed: int) -> dict:
    """One grid configuration: build, seed, save, import, compare for each (exams, size) in ``shapes``."""
    release, cal, ours, calibration = build_release(work, index, hidden, heads, pool, seed)
    full = mirai_full(release)
    result: dict = {"transformer_hidden_dim": hidden, "num_heads": heads, "pool_name": pool, "runs": []}
    for n, size in shapes:
        images = golden_images(n, size, seed + index)
        t0 = time.perf_counter()
        theirs = mirai_predict(full, cal, images)
        t1 = time.perf_counter()
        mine = ours_predict(ours, calibration, images)
        t2 = time.perf_counter()
        result["runs"].append({"exams": n, "size_hw": list(size), **compare(theirs, mine),
                               "seconds_mirai": round(t1 - t0, 2), "seconds_ours": round(t2 - t1, 2)})
    n, size = shapes[0]
    images = golden_images(n, size, seed + index)
    # The comparison can fail: the same exam with the sides swapped must not match Mirai's numbers.
    swapped = ours_predict(ours, calibration, images, sides=[1 - s for s in SIDES])
    result["sensitivity_sides_swapped_max_abs_diff_raw"] = float(
        np.abs(swapped[0] - np.array(result["runs"][0]["mirai_raw"])).max())
    if index == 0:  # supplied risk factors: Mirai's use_pred_risk_factors_if_unk rule (not set in its release)
        rf = golden_risk_factors(n, RISK_FACTOR_NUM_CLASSES.values(), seed + index)
        theirs = mirai_predict(mirai_full(release, if_unk=True), cal, images, rf)
        result["supplied_risk_factors"] = {"exams": n, "size_hw": list(size), "keys_supplied_fraction": 0.5,
                                           **compare(theirs, ours_predict(ours, calibration, images, rf))}
    return result


def _uncompressed(paths: list[Path], folder: Path) -> list[Path]:
    """Compressed files rewritten uncompressed (same pixel values): Debian's DCMTK has no JPEG 2000 decoder, so
    Mirai's dcmj2pnm call would write nothing for the GE style's JPEG 2000 files. Others are kept as they are."""
    import pydicom

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        ds = pydicom.dcmread(path)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress()
            path = folder / path.name
            ds.save_as(path)
        out.append(path)
    return out


def end_to_end(work: Path, release: Path, cal: dict, ours: MiraiModel, calibration, size: tuple[int, int],
               women: int, seed: int) -> dict:
    """Synthetic DICOM exams (every vendor style of ``riskmodel.synthetic``) through Mirai's own DCMTK and pydicom
    paths and its model, against ``preprocess_view`` (presets "dcmtk"/"pydicom") and the port."""
    from riskmodel.imaging.mirai_preprocess import preprocess_view
    from riskmodel.mirai.model import SIDE_CODES, VIEW_CODES
    from riskmodel.synthetic.mammogram import VENDORS, write_exams

    full = mirai_full(release)
    out: dict = {"size_hw": list(size), "target_max_abs_diff": E2E_TARGET,
                 "note": ("compressed files (GE style: JPEG 2000) are rewritten uncompressed for both sides, as "
                          "Debian's dcmj2pnm cannot decode JPEG 2000; rows whose by_design list is not empty "
                          "differ on purpose (the pydicom preset inverts MONOCHROME1; Mirai's pydicom path "
                          "does not)"),
                 "vendors": {}}
    for vendor in VENDORS:
        cohort = pd.DataFrame({"id": [f"{vendor}{i}" for i in range(women)],
                               "exam_id": [f"{vendor}{i}x" for i in range(women)], "age": [55] * women,
                               "density": list("bcda")[:women]})
        manifest = write_exams(cohort, work / "dicom" / vendor, image_size=(512, 416), seed=seed, vendors=(vendor,))
        exams = [_uncompressed([work / "dicom" / vendor / p for p in group["path"]], work / "dicom" / "plain")
                 for _, group in manifest.groupby("exam_id")]
        for preset, dcmtk in (("dcmtk", True), ("pydicom", False)):
            rows = []
            for paths in exams:
                try:
                    theirs_x, views, sides = mirai_exam_from_dicom(paths, dcmtk, size)
                except Exception as e:  # Mirai's own code failing is a result to record
                    rows.append({"mirai_error": f"{type(e).__name__}: {e}"[:300]})
                    continue
                mine = [preprocess_view(p, preset=preset, size=size) for p in paths]
                ours_x = torch.from_numpy(np.stack([v.tensor for v in mine]))[None]
                codes_equal = ([VIEW_CODES[v.view] for v in mine] == views
                               and [SIDE_CODES[v.laterality] for v in mine] == sides)
                theirs = mirai_predict(full, cal, theirs_x, views=views, sides=sides)
                mine_p = ours_predict(ours, calibration, ours_x, views=views, sides=sides)
                notes = sorted({n for v in mine for n in v.notes})
                by_design = [n for n in notes if n.startswith("MONOCHROME1 inverted (Mirai's pydicom")]
                rows.append({"tensor_max_abs_diff": float((theirs_x - ours_x).abs().max()),
                             "view_side_codes_equal": codes_equal, **compare(theirs, mine_p, E2E_TARGET),
                             "notes": notes, "by_design": by_design})
            out["vendors"].setdefault(vendor, {})[preset] = rows
    return out


#: The CI golden models: small transformers (Mirai's full ResNet-18 encoder), inputs of GOLDEN_SIZE.
GOLDEN_MODELS = ((32, 4, "GlobalMaxPool"), (32, 4, "Simple_AttentionPool"))
GOLDEN_SIZE, GOLDEN_EXAMS = (64, 52), 2


def golden(work: Path, seed: int, command: str) -> dict:
    """Golden numbers from Mirai's code for the seeded models ``tests/test_mirai_parity_golden.py`` rebuilds."""
    out: dict = {"what": "per-year probabilities computed by Mirai's own code (MiraiFull + MiraiCalibrator) for "
                         "the seeded models of tests/mirai_seeded.py; CI rebuilds the same weights from their names "
                         "and checks riskmodel's port against these numbers",
                 "command": command, "seed": seed, "exams": GOLDEN_EXAMS, "size_hw": list(GOLDEN_SIZE),
                 "views": VIEWS, "sides": SIDES, "torch": torch.__version__, "models": []}
    for i, (hidden, heads, pool) in enumerate(GOLDEN_MODELS):
        index = 100 + i
        release, cal, _, _ = build_release(work, index, hidden, heads, pool, seed)
        bundle = load_bundle(work / f"bundle{index}")
        images = golden_images(GOLDEN_EXAMS, GOLDEN_SIZE, seed)
        rf = golden_risk_factors(GOLDEN_EXAMS, RISK_FACTOR_NUM_CLASSES.values(), seed)
        raw, calibrated = mirai_predict(mirai_full(release), cal, images)
        rf_raw, rf_calibrated = mirai_predict(mirai_full(release, if_unk=True), cal, images, rf)
        out["models"].append({
            "transformer_hidden_dim": hidden, "num_heads": heads, "pool_name": pool, "weights_seed": seed + 10 * index,
            "encoder_args": bundle.config["encoder_args"], "transformer_args": bundle.config["transformer_args"],
            "state_layout": [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
                             for k, v in bundle.state_dict.items()],
            "calibrators": [[float(c.base_estimator_slope[0]), float(c.base_estimator_offset),
                             float(c.calibrator_slope), float(c.calibrator_offset)] for _, c in sorted(cal.items())],
            "raw": raw.tolist(), "calibrated": calibrated.tolist(),
            "supplied_risk_factors": {"raw": rf_raw.tolist(), "calibrated": rf_calibrated.tolist()},
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirai-src", required=True, help="Mirai's source checkout (outside this repository)")
    parser.add_argument("--exams", type=int, default=4, help="exams per configuration at --size")
    parser.add_argument("--size", default="256x208", help="small input size HxW")
    parser.add_argument("--full-exams", type=int, default=1, help="exams at 2048x1664 (first configuration)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--e2e-size", default="256x208", help="input HxW of the end-to-end DICOM comparison")
    parser.add_argument("--e2e-women", type=int, default=1, help="synthetic exams per vendor style (0: skip)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--golden", help="also write the CI golden numbers to this JSON "
                                         "(tests/data/mirai_parity_golden.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    onconet = load_onconet(args.mirai_src)
    report: dict = {
        "benchmark": "mirai_parity",
        "date": utc_now(),
        "command": f"python benchmarks/mirai_parity.py --mirai-src MIRAI_SRC --exams {args.exams} --size "
                   f"{args.size} --full-exams {args.full_exams} --seed {args.seed} --threads {args.threads} "
                   f"--e2e-size {args.e2e_size} --e2e-women {args.e2e_women}",
        "machine": machine_info(),
        "mirai_source": {"onconet_version": getattr(onconet, "__version__", None),
                         "commit": _commit(Path(args.mirai_src))},
        "what": "Mirai's own MiraiFull forward + MiraiCalibrator vs riskmodel's port of the bundle imported by "
                "`riskmodel import-mirai` from the same torch.save'd modules; identical input tensors; released "
                "inference settings (risk factors predicted from the images, use_pred_risk_factors_at_test)",
        "weights": "seeded (tests/mirai_seeded.py: every parameter and BatchNorm buffer set from a hash of its name); "
                   "NOT the released weights",
        "patches": PATCHES,
        "configs": [],
    }
    with tempfile.TemporaryDirectory(prefix="mirai-parity-") as tmp:
        if args.golden:
            command = (f"python benchmarks/mirai_parity.py --mirai-src MIRAI_SRC --seed {args.seed} "
                       f"--golden {args.golden}")
            Path(args.golden).write_text(json.dumps(golden(Path(tmp), args.seed, command), indent=1) + "\n")
        for i, (hidden, heads, pool) in enumerate(GRID):
            shapes = [(args.exams, size)]
            if i == 0 and args.full_exams:
                shapes.append((args.full_exams, (2048, 1664)))
            report["configs"].append(run_config(Path(tmp), i, hidden, heads, pool, shapes, args.seed))
        if args.e2e_women:
            release, cal, ours, calibration = build_release(Path(tmp), 50, *GRID[0], args.seed)
            e2e_size = tuple(int(v) for v in args.e2e_size.split("x"))
            report["end_to_end"] = end_to_end(Path(tmp), release, cal, ours, calibration, e2e_size,
                                              args.e2e_women, args.seed)
    runs = [r for c in report["configs"] for r in c["runs"]]
    runs += [c["supplied_risk_factors"] for c in report["configs"] if "supplied_risk_factors" in c]
    report["summary"] = {"max_abs_diff_raw": max(r["max_abs_diff_raw"] for r in runs),
                         "max_abs_diff_calibrated": max(r["max_abs_diff_calibrated"] for r in runs),
                         "all_pass": all(r["pass"] for r in runs)}
    if "end_to_end" in report:
        rows = [r for v in report["end_to_end"]["vendors"].values() for p in v.values() for r in p]
        compared = [r for r in rows if "mirai_error" not in r and not r["by_design"]]
        report["summary"]["end_to_end"] = {
            "exams_compared": len(compared), "max_abs_diff_raw": max(r["max_abs_diff_raw"] for r in compared),
            "max_abs_diff_calibrated": max(r["max_abs_diff_calibrated"] for r in compared),
            "all_pass": all(r["pass"] and r["view_side_codes_equal"] for r in compared),
            "differ_by_design": sum(bool(r.get("by_design")) for r in rows),
            "mirai_could_not_read": sorted({r["mirai_error"] for r in rows if "mirai_error" in r})}
    publish(report, RESULTS, write=not args.no_write)


def _commit(src: Path) -> str | None:
    """The checkout's commit when it is a git work tree (an archive export has none)."""
    try:
        return subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


if __name__ == "__main__":
    main()
