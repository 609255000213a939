"""Synthetic benchmark: are the saliency maps of ``riskmodel.explain`` faithful to what drives risk?

A test bed, not clinical evidence: cohort and images come from ``riskmodel.synthetic``, whose
generator records where it drew each mass (``lesions.csv``).

Design
------
* One synthetic population (``make_cohort``, seed 7, default effects: the latent image factor is
  a fine texture in dense tissue, HR 2.0 per SD). ``write_exams(lesion_years=5)``: every woman
  with a cancer within 5 years gets a mass in one breast (both views of that breast): faint by
  default, brighter with ``--lesion-contrast`` (peak over the tissue value, default 0.14) and wider
  with ``--lesion-scale`` (σ multiplier, default 1); both are recorded under ``data`` and ``model``.
* Training: every 5-year case of the first 70 % of the pool plus one control per case, the
  library's recipe (:func:`riskmodel.training.train_image_model`, preset ``small`` with
  ``--pool-kind`` global pooling (default max), ``--size`` pixels (default 128 × 104), no
  calibration, ``--epochs`` epochs, the epoch with the best validation C-index kept) on the CPU
  with ``--threads`` torch threads (default 1: on the shared 2-core machine an earlier run with
  torch's default two threads took 411 s an epoch of 1,190 exams, one thread 10–19 s). At 128 × 104
  the default mass's Gaussian has σ = 0.022 · 104 ≈ 2.3 px (disc radius 2σ ≈ 4.6 px), peak +0.14
  over tissue of 0.16–0.7.
* Held out: ``--test-cases`` cases (all with a mass) and as many controls from the other 30 %.
* Per held-out case exam, for the 5-year risk and each method of :func:`riskmodel.explain.explain`:
  - **pointing game**: hit when the map's peak over the four views (inside the breast) lies in the
    mass's disc dilated by ``--margin`` pixels (on the DICOM grid); baselines: a uniform random
    map (expected hit rate = the dilated disc's share of the breast, computed exactly) and the
    brightest tissue pixel (intensity only);
  - **deletion AUC**: the model's 5-year risk as the most salient pixels (of the model's input
    views) are set to 0 in 10 % steps, area under risk / risk(0) vs fraction removed; the same
    with a random order (``deletion_auc.random``). Lower = more faithful;
  - **asymmetry**: AUC of the per-view-pair asymmetry score for telling the lesion side's pair
    from the other side's (the score of the lesion-side CC+MLO vs the other side's, per exam);
  - CPU time to explain one exam (both methods, views, asymmetry and view contributions).
* 95 % intervals: Wilson for hit rates, bootstrap over exams (1,000 draws) for AUCs and deletion AUCs.

Usage::

    python benchmarks/explain_faithfulness.py [--work /tmp/explain_bench] [--threads 1] [--size 128x104]
        [--epochs 8] [--test-cases 60] [--max-exams N] [--lesion-contrast 0.14] [--lesion-scale 1]
        [--out benchmarks/results/explain.json] [--doc-figure docs/explain_example.png]

Writes ``--out`` (default ``benchmarks/results/explain.json``), ``<out stem>_examples.png`` beside it
and its first row alone as ``--doc-figure``. A ``--work`` folder rendered with other image or mass
settings is refused (``render_settings.json``). Recorded runs: ``docs/explainability.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _report import machine_info, publish, utc_now

RESULTS = Path(__file__).parent / "results" / "explain.json"
FIGURE = Path(__file__).parent / "results" / "explain_examples.png"
DOC_FIGURE = Path(__file__).parent.parent / "docs" / "explain_example.png"  # the first example alone
HORIZON = 5.0
SEED = 7


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/explain_bench", help="folder for images, the trained bundle and maps")
    p.add_argument("--pool", type=int, default=60_000, help="women simulated")
    p.add_argument("--size", type=_size, default=(128, 104), help="rows x columns of rendering and model, e.g. 128x104")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--augment", action="store_true", help="the recipe's training augmentation")
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"), help="learning-rate schedule")
    p.add_argument("--pool-kind", default="max", choices=("max", "avg", "tissue"),
                   help="the encoder's global pooling (ModelConfig.pool; the small preset's default is max)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training and explaining")
    p.add_argument("--test-cases", type=int, default=60, help="held-out case exams (each with a mass)")
    p.add_argument("--max-exams", type=int, default=None,
                   help="explain only the first N held-out case exams (and N controls for the asymmetry AUC)")
    p.add_argument("--lesion-contrast", type=float, default=0.14,
                   help="the mass's peak over the tissue value (write_exams(lesion_contrast=...); 0.14 = the "
                        "generator's faint default)")
    p.add_argument("--lesion-scale", type=float, default=1.0,
                   help="multiplier of the mass's sigma (write_exams(lesion_scale=...); 1 = 2.2 %% of the width)")
    p.add_argument("--out", default=str(RESULTS),
                   help="results JSON; the example figure goes beside it as <stem>_examples.png")
    p.add_argument("--doc-figure", default=str(DOC_FIGURE), help="where the first example row alone is written")
    p.add_argument("--margin", type=float, default=3.0, help="pointing-game dilation of the mass's disc (pixels)")
    p.add_argument("--steps", type=int, default=16, help="integrated-gradients steps")
    p.add_argument("--from-checkpoint", action="store_true",
                   help="build the bundle from the best weights so far of a training run stopped early (for time)")
    p.add_argument("--no-write", action="store_true", help="print, do not write the results file")
    return p


def _size(text: str) -> tuple[int, int]:
    """``"128x104"`` → ``(128, 104)`` (rows, columns)."""
    try:
        rows, cols = (int(t) for t in text.lower().split("x"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--size must be ROWSxCOLUMNS, e.g. 128x104, got {text!r}") from err
    return rows, cols


def split_cohort(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training women, held-out women): enriched 1:1 case-control sets from two parts of one pool."""
    from riskmodel.benchmarking.suite import enriched
    from riskmodel.synthetic import make_cohort

    pool = make_cohort(args.pool, seed=SEED)
    pool = pool[pool["brca"] == "negative"]  # carriers left out, as in image_vs_gail.py
    cut = int(0.7 * len(pool))
    rng = np.random.default_rng(SEED)
    train = enriched(pool.iloc[:cut], 10**6, 1, rng, HORIZON)
    test = enriched(pool.iloc[cut:], args.test_cases, 1, rng, HORIZON)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def render(cohort: pd.DataFrame, folder: Path, size: tuple[int, int], contrast: float,
           scale: float = 1.0) -> pd.DataFrame:
    """Write the women's exams (masses for every 5-year case) unless already there; the exams table.

    Raises:
        ValueError: ``folder`` holds exams rendered with another size or mass contrast.
    """
    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.synthetic import write_exams

    settings = {"image_size": list(size), "lesion_contrast": contrast, "lesion_scale": scale, "seed": SEED,
                "lesion_years": HORIZON}
    stamp = folder / "render_settings.json"
    if (folder / "lesions.csv").exists():
        found = json.loads(stamp.read_text()) if stamp.exists() else None
        if found != settings:
            raise ValueError(f"{folder} holds exams rendered with {found} (None: not recorded), not {settings}; "
                             "use another --work folder")
    else:
        write_exams(cohort, folder, image_size=size, seed=SEED, lesion_years=HORIZON, lesion_contrast=contrast,
                    lesion_scale=scale)
        stamp.write_text(json.dumps(settings))
    exams = assemble_exams(scan_dicoms(folder))
    return exams.set_index("accession_number").loc[cohort["exam_id"].astype(str)].reset_index()


def _bundle_from_checkpoint(run: Path, size: tuple[int, int], pool: str) -> None:
    """Write ``run/bundle`` from ``run/training/best.safetensors`` (no calibration), as the recipe would have."""
    from safetensors.torch import load_file

    from riskmodel.inference import ImageRiskPredictor, image_preprocessing
    from riskmodel.nn import ImageRiskModel, preset_config

    model = ImageRiskModel(preset_config("small", image_size=size, pool=pool))
    model.load_state_dict(load_file(run / "training" / "best.safetensors"), strict=True)
    ImageRiskPredictor(model.eval(), image_preprocessing(size), None, {"training": "stopped early"},
                       device="cpu").save(run / "bundle")


def prepare(args: argparse.Namespace) -> tuple[Path, pd.DataFrame, pd.DataFrame, dict]:
    """Render both sets and train the model once (reused from ``--work``); (bundle, test cohort, test exams, info)."""
    from riskmodel.training.recipe import train_image_model

    work = Path(args.work)
    train, test = split_cohort(args)
    start = time.perf_counter()
    train_exams = render(train, work / "train_exams", args.size, args.lesion_contrast, args.lesion_scale)
    test_exams = render(test, work / "test_exams", args.size, args.lesion_contrast, args.lesion_scale)
    render_seconds = time.perf_counter() - start
    bundle = work / "run" / "bundle"
    if not bundle.exists() and args.from_checkpoint:
        _bundle_from_checkpoint(work / "run", args.size, args.pool_kind)
    if not bundle.exists():
        train_image_model(train, train_exams, work / "run", preset="small", overrides={"pool": args.pool_kind},
                          image_size=args.size, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, patience=0, augment=args.augment,
                          schedule=args.schedule, calibration="none", val_fraction=0.15, calib_fraction=0.0,
                          cache_dir=work / "cache", device="cpu", seed=SEED, progress=False)
    history = pd.read_csv(work / "run" / "training" / "metrics.csv")
    info = {"epochs_completed": len(history), "best_epoch": int(history["val_c_index"].idxmax()) + 1,
            "best_val_c_index": round(float(history["val_c_index"].max()), 4),
            "val_c_index_by_epoch": [round(float(c), 4) for c in history["val_c_index"]],
            "val_fraction_of_training_women": 0.15,
            "n_train_exams": len(train), "n_train_cases": int(((train.event == 1) & (train.time <= HORIZON)).sum()),
            "train_seconds": round(float(history["seconds"].sum()), 1),
            "render_seconds_this_invocation": round(render_seconds, 1)}
    return bundle, test, test_exams, info


def wilson(hits: int, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson interval of a proportion."""
    if n == 0:
        return [math.nan, math.nan]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(centre - half, 0.0), 4), round(min(centre + half, 1.0), 4)]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann–Whitney AUC (ties count half)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def boot(values: np.ndarray, stat, seed: int = 0, draws: int = 1000) -> list[float]:
    """95 % percentile bootstrap interval of ``stat(values[rows])`` over rows."""
    rng = np.random.default_rng(seed)
    n = len(values)
    out = [stat(values[rng.integers(0, n, n)]) for _ in range(draws)]
    return [round(float(np.nanpercentile(out, 2.5)), 4), round(float(np.nanpercentile(out, 97.5)), 4)]


def exam_arrays(ex, lesions: pd.DataFrame, margin: float) -> dict:
    """The exam's four views side by side on the DICOM grid: maps, the mass's disc, the breast, the image."""
    from riskmodel.synthetic import lesion_mask

    slots = list(ex.views)
    disc = []
    for slot in slots:
        v = ex.views[slot]
        rows = lesions[lesions["path"] == v.path]
        m = np.zeros(v.shape, bool)
        for r in rows.itertuples():
            m |= lesion_mask(v.shape, r.row, r.col, r.radius)
        disc.append(m)
    cat = {name: np.concatenate([ex.views[s].maps[name] for s in slots], axis=1) for name in ex.views[slots[0]].maps}
    image = np.concatenate([ex.views[s].pixels for s in slots], axis=1)
    mask = np.concatenate(disc, axis=1)
    region = image > 0.1  # the breast (background is 0 after the VOI step, tissue ≥ 0.16)
    near = np.zeros_like(mask)
    rr, cc = np.nonzero(mask)
    grid_r, grid_c = np.nonzero(region)
    dist = np.sqrt((grid_r[:, None] - rr[None]) ** 2 + (grid_c[:, None] - cc[None]) ** 2).min(axis=1)
    near[grid_r[dist <= margin], grid_c[dist <= margin]] = True
    return {"maps": cat, "image": image, "mask": mask, "region": region, "random_hit": near.sum() / region.sum()}


def evaluate(args: argparse.Namespace) -> dict:
    """Explain the held-out exams and score the maps (the module docstring's measures)."""
    import torch

    import riskmodel
    from riskmodel.explain import METHODS, deletion_curve, explain
    from riskmodel.explain.core import as_target
    from riskmodel.explain.faithfulness import deletion_auc, peak_hits
    from riskmodel.explain.maps import asymmetry

    torch.set_num_threads(args.threads)
    bundle, test, exams, info = prepare(args)
    model = riskmodel.load_image_model(bundle, device="cpu")
    target, _ = as_target(model)
    lesions = pd.read_csv(Path(args.work) / "test_exams" / "lesions.csv")
    lesions["path"] = [str(Path(args.work) / "test_exams" / p) for p in lesions["path"]]
    case = ((test["event"] == 1) & (test["time"] <= HORIZON)).to_numpy()
    if args.max_exams is not None:  # the first N cases and N controls of the held-out set
        keep = np.sort(np.concatenate([np.flatnonzero(case)[:args.max_exams], np.flatnonzero(~case)[:args.max_exams]]))
        test, exams, case = test.iloc[keep].reset_index(drop=True), exams.iloc[keep].reset_index(drop=True), case[keep]
    risk5 = model.encode(exams).raw_risk[:, 4]
    info["test_auc_5y_case_vs_control"] = round(auc(risk5[case], risk5[~case]), 4)

    def risk_fn(batch: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(batch)[:, :, None]
            return target.risk(x, torch.from_numpy(mask)[None].expand(len(batch), -1))[:, 4].numpy()

    hits = {m: [] for m in (*METHODS, "intensity")}
    deletion: dict[str, list[float]] = {m: [] for m in (*METHODS, "random")}
    random_hit, seconds, lesion_side, other_side, examples = [], [], [], [], []
    case_rows = np.flatnonzero(case)
    for k, i in enumerate(case_rows):
        start = time.perf_counter()
        [ex] = explain(model, exams.iloc[[i]], years=5, methods=METHODS, steps=args.steps)
        seconds.append(time.perf_counter() - start)
        a = exam_arrays(ex, lesions, args.margin)
        for m in METHODS:
            hits[m].append(bool(peak_hits([a["maps"][m]], [a["mask"]], args.margin, [a["region"]])[0]))
            sal = np.stack([ex.views[s].model_maps[m] if s in ex.views else np.zeros(args.size, np.float32)
                            for s in ("L-CC", "L-MLO", "R-CC", "R-MLO")])
            deletion[m].append(deletion_auc(deletion_curve(risk_fn, ex.images, ex.mask, sal)))
        deletion["random"].append(deletion_auc(deletion_curve(risk_fn, ex.images, ex.mask, ex.images, order="random",
                                                              seed=k)))
        hits["intensity"].append(bool(peak_hits([a["image"]], [a["mask"]], args.margin, [a["region"]])[0]))
        random_hit.append(float(a["random_hit"]))
        side = str(lesions.loc[lesions["exam_id"] == exams.iloc[i]["accession_number"], "laterality"].iloc[0])
        lesion_side.append(sum(p["side_score"][side] for p in ex.asymmetry.values()))
        other_side.append(sum(p["side_score"]["LR".replace(side, "")] for p in ex.asymmetry.values()))
        if len(examples) < 3:
            examples.append((ex, side, lesions[lesions["exam_id"] == exams.iloc[i]["accession_number"]]))
    exam_score = {"case": [], "control": []}
    from riskmodel.imaging import ExamDataset

    data = ExamDataset(exams, image_size=target.image_size, voi=target.voi)
    for i in range(len(exams)):
        item = data[i]
        pairs = asymmetry(target, item["images"][None], item["mask"][None])
        exam_score["case" if case[i] else "control"].append(max((p["score"] for p in pairs.values()), default=np.nan))
    n = len(case_rows)
    pos, neg = np.array(lesion_side), np.array(other_side)
    pairs_idx = np.arange(n)
    report = {
        "benchmark": "explain_faithfulness", "created": utc_now(), "machine": machine_info(),
        "note": "synthetic test bed, not clinical performance; 2-core CPU shared with other jobs during the run",
        "torch_threads": args.threads,
        "model": {"preset": "small", "pool": args.pool_kind, "image_size": list(args.size), "epochs": args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr, "augment": args.augment, "schedule": args.schedule,
                  "bundle_calibration": "none", "trained_on_lesion_contrast": args.lesion_contrast,
                  "trained_on_lesion_scale": args.lesion_scale,
                  **info},
        "data": {"n_test_exams": len(exams), "n_case_exams_with_mass": n, "lesion_years": HORIZON,
                 "lesion_contrast": args.lesion_contrast, "lesion_scale": args.lesion_scale,
                 "horizon_years": 5, "margin_pixels": args.margin, "ig_steps": args.steps,
                 "pointing_search": "peak over all four views side by side, inside the breast (pixel > 0.1)"},
        "pointing_game": {m: {"hit_rate": round(float(np.mean(hits[m])), 4), "ci95": wilson(sum(hits[m]), n)}
                          for m in METHODS},
        "deletion_auc": {m: round(float(np.mean(deletion[m])), 4) for m in (*METHODS, "random")},
        "deletion_auc_ci95": {m: boot(np.array(deletion[m]), np.mean) for m in (*METHODS, "random")},
        "asymmetry": {
            "lesion_side_auc": round(auc(pos, neg), 4),
            "lesion_side_auc_ci95": boot(pairs_idx, lambda r: auc(pos[r], neg[r]) if len(r) else np.nan),
            "exam_score_auc_case_vs_control": round(auc(np.array(exam_score["case"]),
                                                         np.array(exam_score["control"])), 4),
        },
        "seconds_per_exam_cpu": {"median": round(float(np.median(seconds)), 2), "max": round(float(np.max(seconds)), 2),
                                 "what": "explain() of one exam: both methods, 4 views, asymmetry, view contributions"},
        "seconds_per_exam_gpu": None,
        "seconds_per_exam_gpu_reason": "no GPU was available to this run (CPU-only machine)",
        "command": command_line(args),
    }
    report["pointing_game"]["random_baseline"] = round(float(np.mean(random_hit)), 4)
    report["pointing_game"]["intensity_baseline"] = round(float(np.mean(hits["intensity"])), 4)
    report["pointing_game"]["intensity_baseline_ci95"] = wilson(sum(hits["intensity"]), n)
    if not args.no_write:
        out = Path(args.out)
        figure(examples, out.with_name(out.stem + "_examples.png"))
        figure(examples[:1], Path(args.doc_figure))
    return report


def command_line(args: argparse.Namespace) -> str:
    """The benchmark's command line for ``args`` (flags as typed; ``--work`` and ``--no-write`` left out)."""
    parts = []
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if key in ("no_write", "work", "doc_figure") or value is None or value is False:
            continue
        if value is True:
            parts.append(flag)
        elif key == "size":
            parts.append(f"{flag} {value[0]}x{value[1]}")
        else:
            parts.append(f"{flag} {value}")
    return "python benchmarks/explain_faithfulness.py " + " ".join(parts)


def figure(examples: list, path: Path) -> None:
    """Rows: example exams' lesion-side CC view; columns: image, Grad-CAM, IG, asymmetry; the mass circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from riskmodel.explain.output import overlay

    fig, axes = plt.subplots(len(examples), 4, figsize=(8, 2.6 * len(examples)), squeeze=False)
    for row, (ex, side, les) in enumerate(examples):
        v = ex.views[f"{side}-CC"]
        r = les[les["path"] == v.path].iloc[0]
        panels = [("image", np.repeat(v.pixels[..., None], 3, axis=2)),
                  ("Grad-CAM", overlay(v.pixels, v.maps["gradcam"])),
                  ("integrated gradients", overlay(v.pixels, v.maps["ig"])),
                  ("asymmetry (CC pair)", overlay(v.pixels, v.asymmetry))]
        for col, (title, rgb) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(rgb)
            ax.add_patch(plt.Circle((r["col"], r["row"]), r["radius"], fill=False, color="cyan", lw=1))
            ax.set_title(f"{title}" + (f"\n{ex.exam_id.split('/')[0]} {side}-CC" if col == 0 else ""), fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = build_parser().parse_args()
    publish(evaluate(args), Path(args.out), write=not args.no_write)


if __name__ == "__main__":
    main()
