"""Sample efficiency of the image model: C-index by training cancers, image effect size and seed.

A test bed, not clinical evidence: cohort, images and outcomes come from ``riskmodel.synthetic``.

Design (issue 22)
-----------------
* One synthetic population per ``(seed, effect)`` (:func:`~riskmodel.synthetic.make_cohort`, image factor at
  ``effect`` per SD): ``--pool`` women for a case-enriched image-training set (``--controls`` controls per
  case, ``--max-cancers`` cases) and a validation set (``--val-cases``), ``--fusion`` women for the hybrid and
  ``--test`` test women. Rendering every test woman would cost most of the CPU budget, so the fusion and test
  parts are case-control samples: every cancer within 5 years plus ``--eval-controls`` non-cases per cancer,
  each non-case weighted by the inverse of its sampling fraction (see :func:`c5`).
* Each ``(seed, effect)`` cohort's DICOMs are rendered once at the quick suite's image size and read into an
  on-disk cache once; the training sets for the sizes in ``--cancers`` are nested: the first ``k`` cases of
  the shuffled enriched set with their first ``controls × k`` controls.
* Each cell trains the quick suite's network (``small`` preset, average pooling) with a recipe
  (``--recipe``, :data:`RECIPES`), keeps the epoch its ``select`` names (the best validation C-index, or the
  last epoch), then scores (the other rule's weights are scored too, ``c_index_5y_{best,last}_epoch``):
  - ``image_only``: the network's five-year score;
  - ``hybrid``: a Cox head (:class:`~riskmodel.fusion.CoxHead`) on the factors
    (:class:`~riskmodel.fusion.FactorEncoder`, every group) plus the image score ``log(-log(1 - risk_5y))``,
    fitted on the fusion sample (the quick suite's hybrid without calibration; the head is fitted unweighted,
    which for a rare cancer estimates the same hazard ratios as on the unselected women, up to noise);
  - ``factors_cox``: the same Cox head without the image score;
  - the generator's truth: ``truth_image_visible`` (log density multiplier + log(HR)·image factor: all the
    pixels carry), ``truth_factors`` (``true_risk_5y_no_image``) and ``truth_full`` (``true_risk_5y``).
  C-index: Harrell's, truncated at 5 years, with the sampling weights: an estimate of the C-index on the
  ``--test`` unselected women (the truths are scored the same way on the same women, so gaps are paired).
* The recorded grid trains with one torch thread (``--threads 1``): in this session's probe runs on the
  shared 2-core machine (one core busy with another job), torch's default two threads made an epoch of 450
  exams take 65 s against 8 s with one thread (probe runs, not recorded; each cell's time is).
* ``results`` holds one entry per cell and seed (with its training time); ``summary`` the mean and sample SD
  over seeds per ``(recipe, effect, cancers)``. The JSON is rewritten after every cell, and ``--resume``
  skips the cells a results file with the same settings already holds, so a stopped run loses nothing.

Usage::

    python benchmarks/image_sample_efficiency.py --workdir /tmp/ise --threads 1 [--seeds 0 1 2]
        [--effects 3 2 1.5] [--cancers 150 300 600] [--recipe last16 quick ...] [--epochs 8] [--resume]
        [--results FILE]
    python benchmarks/image_sample_efficiency.py --merge A.json B.json [--results OUT.json]  # side-by-side runs
    python benchmarks/image_sample_efficiency.py --table [--results FILE]

Writes ``benchmarks/results/image_sample_efficiency.json`` and ``image_sample_efficiency.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from _report import machine_info, utc_now
from image_vs_gail import warm_cache

from riskmodel.benchmarking.suite import SUITES, enriched, image_visible_log_hazard, render
from riskmodel.nn import ImageRiskModel, ModelConfig
from riskmodel.training import LabelledExams, TrainConfig, predict, train

RESULTS = Path(__file__).parent / "results" / "image_sample_efficiency.json"
HORIZON = 5.0

#: Training recipes compared by the grid: :class:`~riskmodel.training.TrainConfig` overrides of the quick
#: suite's recipe. ``quick``: the suite's (epochs from ``--epochs``, lr 1e-3, augmentation, cosine schedule,
#: auxiliary density/age weight 0.2). ``balanced``: the same with case weighting (positive years weighted
#: by negatives/positives). ``aux``: the auxiliary density and age targets at weight 1.0. ``e16`` / ``e24``:
#: 16 / 24 epochs (the cosine schedule spans them). ``last8`` / ``last16`` / ``last24``: 8 / 16 / 24 epochs
#: keeping the last epoch's weights (``select="last"``) instead of the best validation epoch's: the 60-case validation
#: C-index is too noisy to choose an epoch by. ``last16_stem1`` / ``last16_tissue``: ``last16`` with a
#: network change (a ``"model"`` entry overrides :class:`~riskmodel.nn.ModelConfig` fields): the stem
#: convolution at stride 1 (the fine texture that carries the image factor is a few pixels across and the
#: default stem halves it before the max-pool halves it again), or pooling over the breast's tissue only.
#: ``last16`` is the quick suite's recipe since this grid.
RECIPES: dict[str, dict[str, Any]] = {
    "quick": {},
    "balanced": {"balance": True},
    "aux": {"aux_weight": 1.0},
    "e16": {"epochs": 16},
    "e24": {"epochs": 24},
    "last8": {"select": "last"},
    "last16": {"epochs": 16, "select": "last"},
    "last24": {"epochs": 24, "select": "last"},
    "last16_stem1": {"epochs": 16, "select": "last", "model": {"stem_stride": 1}},
    "last16_tissue": {"epochs": 16, "select": "last", "model": {"pool": "tissue"}},
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--effects", type=float, nargs="+", default=[3.0, 2.0, 1.5],
                   help="image HR per SD, run in this order (all seeds of one effect, then the next)")
    p.add_argument("--cancers", type=int, nargs="+", default=[150, 300, 600], help="training cancers (nested)")
    p.add_argument("--max-cancers", type=int, default=600,
                   help="cases in each cohort's enriched training set, of which --cancers take nested subsets "
                        "(keep it fixed across runs that share a --workdir and a results file)")
    p.add_argument("--recipe", nargs="+", default=["quick"], choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--controls", type=int, default=2, help="controls per case in training and validation")
    p.add_argument("--val-cases", type=int, default=60)
    p.add_argument("--test", type=int, default=10_000,
                   help="unselected test women; their cancers and --eval-controls controls per cancer are rendered")
    p.add_argument("--fusion", type=int, default=6_000,
                   help="unselected women for the hybrid's Cox head (sampled like the test women)")
    p.add_argument("--eval-controls", type=int, default=3, help="controls per cancer in the test and fusion samples")
    p.add_argument("--pool", type=int, default=60_000, help="women simulated for the training part")
    p.add_argument("--jobs", type=int, default=2, help="processes rendering and caching the exams")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for training and scoring (0: torch's default)")
    p.add_argument("--workdir", help="rendered images and caches (kept: reruns reuse them)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--resume", action="store_true", help="keep the cells the results file already holds")
    p.add_argument("--merge", nargs="+", metavar="FILE",
                   help="merge these results files (same settings, e.g. written by processes run side by side) "
                        "into --results (kept cells first) and redraw its figure; run nothing")
    p.add_argument("--table", action="store_true",
                   help="print the results file's summary as a markdown table (and redraw its figure); run nothing")
    return p


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a cell's result depends on besides (recipe, seed, effect, cancers): must match for --resume."""
    conf = SUITES["quick"]
    return {"image_size": list(conf.image_size), "voi": conf.voi, "model": conf.to_dict()["model"],
            "epochs": args.epochs, "batch_size": conf.batch_size, "lr": conf.lr, "augment": conf.augment,
            "schedule": conf.schedule, "controls": args.controls, "val_cases": args.val_cases, "test": args.test,
            "fusion": args.fusion, "eval_controls": args.eval_controls, "pool": args.pool,
            "max_cancers": args.max_cancers}


def nested(train_set: pd.DataFrame, k: int, controls: int) -> pd.DataFrame:
    """The first ``k`` cases (cancer within 5 years) of the shuffled enriched set and its first ``controls × k``
    controls, in the set's order: the sets for increasing ``k`` are nested."""
    case = (train_set["event"] == 1) & (train_set["time"] <= HORIZON)
    if int(case.sum()) < k:
        raise ValueError(f"--cancers {k}: the enriched training set has only {int(case.sum())} cases")
    keep = (case & (case.cumsum() <= k)) | (~case & ((~case).cumsum() <= controls * k))
    return train_set[keep.to_numpy()]


def c5(frame: pd.DataFrame, score: np.ndarray) -> float:
    """Harrell's C-index truncated at 5 years, each pair weighted by its women's ``weight``.

    A pair is comparable when woman ``i`` has a cancer within 5 years and woman ``j`` is followed longer
    (``time_j > time_i``); it is concordant when ``score_i > score_j`` (ties count ½). With inverse
    sampling-fraction weights on a case-control sample this estimates the C-index of the unselected
    women it was drawn from.
    """
    t, w = frame["time"].to_numpy(dtype=float), frame["weight"].to_numpy(dtype=float)
    score = np.asarray(score, dtype=float)
    cases = np.flatnonzero(is_case(frame))
    if not len(cases):
        raise ValueError("no cancer within 5 years: the C-index is undefined")
    comparable = t[None, :] > t[cases][:, None]  # (cases, women)
    diff = score[cases][:, None] - score[None, :]
    pair_w = comparable * w[None, :] * w[cases][:, None]
    good = (diff > 0) + 0.5 * (diff == 0)
    return round(float((pair_w * good).sum() / pair_w.sum()), 4)


def image_score(risk5: np.ndarray) -> np.ndarray:
    """``log(-log(1 - risk_5y))``: the network's five-year risk on the log cumulative-hazard scale."""
    return np.log(-np.log1p(-np.clip(risk5.astype(np.float64), 1e-9, 1 - 1e-9)))


class Cohort:
    """One ``(seed, effect)`` cohort: its women, rendered exams and datasets (built once, reused by every cell).

    Attributes:
        test, fusion: case-enriched samples (every cancer within 5 years of an unselected part, plus
            ``controls`` non-cases per case) with ``weight``: 1 for cases, the inverse sampling fraction for
            controls (so weighted pair counts are those of the unselected part).
        train_set: the enriched image-training set with ``--max-cancers`` cases, shuffled.
    """

    def __init__(self, args: argparse.Namespace, seed: int, effect: float):
        from riskmodel.synthetic import make_cohort

        conf = dataclasses.replace(SUITES["quick"], image_hr=effect, controls=args.controls)
        self.conf, self.seed, self.effect = conf, seed, effect
        rng = np.random.default_rng(seed)
        population = make_cohort(args.pool + args.fusion + args.test, seed=seed, image_hr_per_sd=effect)
        pool = population.iloc[: args.pool]
        self.fusion = weighted_sample(population.iloc[args.pool: args.pool + args.fusion], args.eval_controls, rng)
        self.test = weighted_sample(population.iloc[args.pool + args.fusion:], args.eval_controls, rng)
        self.train_set = enriched(pool, args.max_cancers, args.controls, rng)
        val = enriched(pool.drop(self.train_set.index), args.val_cases, args.controls, rng)
        work = Path(args.workdir) / f"seed{seed}_hr{effect:g}"
        size = tuple(conf.image_size)
        t0 = time.perf_counter()
        frames = {name: render(df, work / name, size, seed + i, args.jobs, reuse=True)
                  for i, (name, df) in enumerate((("train", self.train_set), ("val", val), ("fusion", self.fusion),
                                                  ("test", self.test)))}
        self.frames = frames
        self.labels = population.set_index(population["exam_id"].astype(str))
        self.cache = str(work / "cache")
        self.data = {name: self.dataset(frames[name]) for name in ("val", "fusion", "test")}
        for name in ("train", "val", "fusion", "test"):
            warm_cache(self.dataset(frames[name]).images, args.jobs)
        self.render_seconds = round(time.perf_counter() - t0, 1)
        self.factors = factor_matrices(self.fusion, self.test)

    def dataset(self, frame: pd.DataFrame) -> LabelledExams:
        return LabelledExams(frame, self.labels, key="accession_number", image_size=tuple(self.conf.image_size),
                             cache_dir=self.cache, voi=self.conf.voi)

    def training_set(self, k: int) -> tuple[LabelledExams, int]:
        subset = nested(self.train_set, k, self.conf.controls)
        frame = self.frames["train"].set_index("accession_number").loc[subset["exam_id"].astype(str)].reset_index()
        return self.dataset(frame), len(subset)


def is_case(frame: pd.DataFrame) -> np.ndarray:
    """Breast cancer within 5 years."""
    return ((frame["event"] == 1) & (frame["time"] <= HORIZON)).to_numpy()


def weighted_sample(part: pd.DataFrame, controls: int, rng: np.random.Generator) -> pd.DataFrame:
    """Every case of ``part`` and ``controls`` non-cases per case, with ``weight`` = 1 / sampling fraction."""
    sample = enriched(part, len(part), controls, rng).reset_index(drop=True)
    case = is_case(sample)
    n_non = int((~is_case(part)).sum())
    return sample.assign(weight=np.where(case, 1.0, n_non / max(int((~case).sum()), 1)))


def factor_matrices(fusion: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The :class:`~riskmodel.fusion.FactorEncoder` factors (every group) of the fusion and test women."""
    from riskmodel.fusion import FactorEncoder

    enc = FactorEncoder().fit(fusion)
    return enc.transform(fusion), enc.transform(test)


def cox_c(cohort: Cohort, fusion_extra: np.ndarray | None, test_extra: np.ndarray | None) -> float:
    """Test C-index of a Cox head fitted on the fusion women's factors (plus ``*_extra`` columns)."""
    from riskmodel.fusion import CoxHead

    xf, xt = cohort.factors
    if fusion_extra is not None:
        xf, xt = np.column_stack([xf, fusion_extra]), np.column_stack([xt, test_extra])
    head = CoxHead().fit(xf, cohort.fusion["time"].to_numpy(), cohort.fusion["event"].to_numpy())
    return c5(cohort.test, head.decision_function(xt))


def truths(cohort: Cohort) -> dict[str, float]:
    test = cohort.test
    return {"truth_image_visible": c5(test, image_visible_log_hazard(test, cohort.effect)),
            "truth_factors": c5(test, test["true_risk_5y_no_image"].to_numpy()),
            "truth_full": c5(test, test["true_risk_5y"].to_numpy()),
            "factors_cox": cox_c(cohort, None, None)}


def recipe_configs(recipe: str, conf: Any, epochs: int, seed: int) -> tuple[ModelConfig, TrainConfig]:
    """The network and training settings of ``recipe``: the quick suite's (``conf``, a
    :class:`~riskmodel.benchmarking.suite.SuiteConfig`) with the recipe's overrides, its ``"model"``
    entry applied to the :class:`~riskmodel.nn.ModelConfig`, the rest to the :class:`TrainConfig`."""
    overrides = dict(RECIPES[recipe])
    mconf = ModelConfig(image_size=tuple(conf.image_size), **{**conf.model, **overrides.pop("model", {})})
    tconf = TrainConfig(**{"epochs": epochs, "batch_size": conf.batch_size, "lr": conf.lr, "seed": seed,
                           "device": "cpu", "patience": 0, "progress": False, "augment": conf.augment,
                           "schedule": conf.schedule, **overrides})
    return mconf, tconf


def run_cell(cohort: Cohort, recipe: str, k: int, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Train one model on ``k`` training cancers with ``recipe`` and score it on the test women."""
    conf = cohort.conf
    train_data, n_train = cohort.training_set(k)
    torch.manual_seed(cohort.seed)
    mconf, tconf = recipe_configs(recipe, conf, args.epochs, cohort.seed)
    model = ImageRiskModel(mconf)
    t0 = time.perf_counter()
    result = train(model, train_data, cohort.data["val"], tconf, out_dir=out_dir)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = score_model(cohort, model)
    score_seconds = time.perf_counter() - t0
    # The other selection rule's weights, scored too (not used for the cell; shows what the rule costs).
    other = "last" if tconf.select == "best" else "best"
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(out_dir / ("checkpoint/model.safetensors" if other == "last"
                                                   else "best.safetensors"))))
    return {"recipe": recipe, "seed": cohort.seed, "effect": cohort.effect, "cancers": k, "train_exams": n_train,
            "c_index_5y": c, "select": tconf.select, "epochs": tconf.epochs, "best_epoch": result.best_epoch,
            "best_val_c_index": round(result.best_metric, 4), f"c_index_5y_{other}_epoch": score_model(cohort, model),
            "train_seconds": round(train_seconds, 1), "score_seconds": round(score_seconds, 1)}


def score_model(cohort: Cohort, model: ImageRiskModel) -> dict[str, float]:
    """Test C-index of the network's image score alone (``image_only``) and in the hybrid Cox head (``hybrid``)."""
    scores = {name: image_score(predict(model, cohort.data[name], batch_size=64, device="cpu")["risk"][:, -1])
              for name in ("fusion", "test")}
    return {"image_only": c5(cohort.test, scores["test"]), "hybrid": cox_c(cohort, scores["fusion"], scores["test"])}


def summarise(results: list[dict[str, Any]], truth: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Mean and sample SD over seeds per (recipe, effect, cancers), with the gaps to the truth on the same seeds."""
    rows = []
    for r in results:
        t = truth[f"{r['seed']}/{r['effect']:g}"]
        rows.append({"recipe": r["recipe"], "effect": r["effect"], "cancers": r["cancers"], "seed": r["seed"],
                     "image_only": r["c_index_5y"]["image_only"], "hybrid": r["c_index_5y"]["hybrid"],
                     "factors_cox": t["factors_cox"], "truth_image_visible": t["truth_image_visible"],
                     "truth_full": t["truth_full"], "train_seconds": r["train_seconds"],
                     "image_gap_to_visible": t["truth_image_visible"] - r["c_index_5y"]["image_only"],
                     "hybrid_gap_to_full": t["truth_full"] - r["c_index_5y"]["hybrid"],
                     "hybrid_minus_factors": r["c_index_5y"]["hybrid"] - t["factors_cox"],
                     "image_only_other_selection": other_selection(r)})
    if not rows:
        return []
    df = pd.DataFrame(rows)
    out = []
    for (recipe, effect, k), g in df.groupby(["recipe", "effect", "cancers"], sort=True):
        entry: dict[str, Any] = {"recipe": recipe, "effect": effect, "cancers": int(k), "seeds": sorted(g["seed"])}
        for col in ("image_only", "hybrid", "factors_cox", "truth_image_visible", "truth_full",
                    "image_gap_to_visible", "hybrid_gap_to_full", "hybrid_minus_factors", "train_seconds",
                    "image_only_other_selection"):
            if g[col].isna().any():  # cells recorded before the other selection rule was scored
                continue
            entry[col] = {"mean": round(float(g[col].mean()), 4),
                          "sd": round(float(g[col].std(ddof=1)), 4) if len(g) > 1 else None,
                          "min": round(float(g[col].min()), 4), "max": round(float(g[col].max()), 4)}
        out.append(entry)
    return out


def other_selection(result: dict[str, Any]) -> float:
    """The cell's image-only C with the weights of the other epoch-selection rule (best validation epoch for a
    ``select="last"`` recipe, last epoch for ``"best"``); NaN for cells recorded before both were scored."""
    for key in ("c_index_5y_best_epoch", "c_index_5y_last_epoch"):
        if key in result:
            return result[key]["image_only"]
    return float("nan")


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """The summary as the markdown table of ``docs/training.md``: mean ± SD over seeds (n seeds) per cell."""
    def ms(v: dict[str, Any]) -> str:
        return f"{v['mean']:.3f}" + (f" ± {v['sd']:.3f}" if v["sd"] is not None else "")

    lines = ["| recipe | image HR/SD | training cancers | seeds | image-only C | hybrid C | factors-only Cox C | "
             "image-visible truth C | full truth C | image gap to visible truth | training s | "
             "image-only C, other epoch selection |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in sorted(summary, key=lambda c: (c["recipe"], -c["effect"], c["cancers"])):
        lines.append(f"| {c['recipe']} | {c['effect']:g} | {c['cancers']} | {len(c['seeds'])} | "
                     f"{ms(c['image_only'])} | {ms(c['hybrid'])} | {ms(c['factors_cox'])} | "
                     f"{ms(c['truth_image_visible'])} | {ms(c['truth_full'])} | {ms(c['image_gap_to_visible'])} | "
                     f"{c['train_seconds']['mean']:.0f} | "
                     f"{ms(c['image_only_other_selection']) if 'image_only_other_selection' in c else '–'} |")
    return "\n".join(lines)


def figure(summary: list[dict[str, Any]], path: Path) -> None:
    """C-index against training cancers, one panel per effect size: mean ± SD over seeds per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    effects = sorted({s["effect"] for s in summary})
    recipes = sorted({s["recipe"] for s in summary})  # one colour per recipe in every panel
    colours = {r: plt.get_cmap("tab10")(i % 10) for i, r in enumerate(recipes)}
    fig, axes = plt.subplots(1, len(effects), figsize=(max(4.2 * len(effects), 7.0), 4.4), sharey=True, squeeze=False)
    for ax, effect in zip(axes[0], effects, strict=True):
        cells = [s for s in summary if s["effect"] == effect]
        for recipe in sorted({s["recipe"] for s in cells}):
            rows = sorted((s for s in cells if s["recipe"] == recipe), key=lambda s: s["cancers"])
            x = [s["cancers"] * 1.04 ** recipes.index(recipe) for s in rows]  # recipes side by side
            for key, style in (("image_only", "o-"), ("hybrid", "s--")):
                ax.errorbar(x, [s[key]["mean"] for s in rows], yerr=[s[key]["sd"] or 0 for s in rows], fmt=style,
                            capsize=3, color=colours[recipe], label=f"{key} ({recipe})")
        ax.set_xscale("log")
        ax.set_xticks(sorted({s["cancers"] for s in cells}), [str(v) for v in sorted({s["cancers"] for s in cells})])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        for key, style in (("truth_image_visible", ":"), ("truth_full", "-."), ("factors_cox", "-")):
            level = float(np.mean([s[key]["mean"] for s in cells]))
            ax.axhline(level, ls=style, color="grey", lw=1)
            ax.text(0.01, level, key.replace("_", " "), transform=ax.get_yaxis_transform(), fontsize=7,
                    color="grey", va="bottom")
        ax.set_title(f"image factor HR {effect:g} per SD")
        ax.set_xlabel("training cancers")
    axes[0][0].set_ylabel("C-index at 5 years (test sample, weighted)")
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="lower center", ncol=min(len(handles), 4))
    fig.suptitle("Image-model sample efficiency (synthetic test bed; mean ± SD over seeds;\n"
                 "image-only: circles, solid; hybrid: squares, dashed)", fontsize=9)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * ((len(handles) + 3) // 4), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(path: Path, report: dict[str, Any]) -> None:
    report["summary"] = summarise(report["results"], report["truth"])
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
    if report["summary"]:
        figure(report["summary"], path.with_suffix(".png"))


def merge(reports: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One report holding the cells of ``reports`` (results files of the same settings), in order.

    A cell (recipe, seed, effect, cancers) held by several files must hold the same result in each;
    the cohorts' truths must agree too (they are deterministic in seed and effect).

    Raises:
        ValueError: settings that differ, or a cell / truth two files disagree on (the message names the files).
    """
    out = json.loads(json.dumps(reports[0]))
    out["commands"] = list(out.get("commands", [out["command"]]))
    cells = {(r["recipe"], r["seed"], r["effect"], r["cancers"]): r for r in out["results"]}
    for report, name in zip(reports[1:], names[1:], strict=True):
        if report["settings"] != out["settings"]:
            raise ValueError(f"--merge: {name} was written with other settings than {names[0]}")
        for key, truth in report["truth"].items():
            if out["truth"].setdefault(key, truth) != truth:
                raise ValueError(f"--merge: {name} has another truth for cohort {key} than the files before it")
            out["cohorts"].setdefault(key, report["cohorts"][key])
        for r in report["results"]:
            cell = (r["recipe"], r["seed"], r["effect"], r["cancers"])
            if cell in cells and cells[cell] != r:
                raise ValueError(f"--merge: {name} has another result for cell {cell} than the files before it")
            if cell not in cells:
                cells[cell] = r
                out["results"].append(r)
        out["commands"] += [c for c in report.get("commands", [report["command"]]) if c not in out["commands"]]
        out["recipes"] = {**out.get("recipes", {}), **report.get("recipes", {})}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.table:
        report = json.loads(Path(args.results).read_text())
        summary = summarise(report["results"], report["truth"])  # the file's, or with columns added since
        figure(summary, Path(args.results).with_suffix(".png"))
        print(markdown_table(summary))
        return
    if args.merge:
        reports = [json.loads(Path(f).read_text()) for f in args.merge]
        try:
            merged = merge(reports, args.merge)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        merged["commands"].append("python benchmarks/image_sample_efficiency.py " + shlex.join(
            argv if argv is not None else sys.argv[1:]))
        write(Path(args.results), merged)
        print(markdown_table(merged["summary"]))
        return
    if not args.workdir:
        parser.error("--workdir is required to run the grid")
    if max(args.cancers) > args.max_cancers:
        parser.error(f"--cancers {max(args.cancers)} exceeds --max-cancers {args.max_cancers}")
    if args.threads:
        torch.set_num_threads(args.threads)
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = settings(args)
    report: dict[str, Any] = {
        "benchmark": "image_sample_efficiency (synthetic test bed; not clinical performance)",
        "command": "python benchmarks/image_sample_efficiency.py " + shlex.join(argv if argv is not None
                                                                              else sys.argv[1:]),
        "date": utc_now(), "machine": machine_info(), "settings": config,
        "grid": {"seeds": args.seeds, "effects": args.effects, "cancers": args.cancers, "recipes": args.recipe},
        "recipes": {r: RECIPES[r] for r in args.recipe}, "truth": {}, "cohorts": {}, "results": []}
    if args.resume and path.exists():
        old = json.loads(path.read_text())
        if old.get("settings") != config:
            raise SystemExit(f"--resume: {path} was written with other settings; use another --results")
        report["commands"] = [*old.get("commands", [old["command"]]), report["command"]]
        for key in ("truth", "cohorts", "results"):
            report[key] = old[key]
        report["recipes"] = {**old.get("recipes", {}), **report["recipes"]}  # every recipe the file holds
    done = {(r["recipe"], r["seed"], r["effect"], r["cancers"]) for r in report["results"]}
    # Effect-major, in the order given: a run stopped early has every seed of the first effects.
    for effect in args.effects:
        for seed in args.seeds:
            todo = [(r, k) for k in sorted(args.cancers) for r in args.recipe if (r, seed, effect, k) not in done]
            if not todo:
                continue
            cohort = Cohort(args, seed, effect)
            key = f"{seed}/{effect:g}"
            report["truth"][key] = truths(cohort)
            if key in report["cohorts"]:  # reloaded by a --resume run: keep the first render's time
                report["cohorts"][key].setdefault("reload_seconds", []).append(cohort.render_seconds)
                cohort.render_seconds = report["cohorts"][key]["render_and_cache_seconds"]
            report["cohorts"][key] = {**report["cohorts"].get(key, {}),
                                      "render_and_cache_seconds": cohort.render_seconds,
                                      "test_exams": len(cohort.test),
                                      "test_cancers_5y": int(is_case(cohort.test).sum()),
                                      "fusion_exams": len(cohort.fusion),
                                      "fusion_cancers_5y": int(is_case(cohort.fusion).sum())}
            print(f"[grid] cohort {key}: {report['cohorts'][key]} truth {report['truth'][key]}", flush=True)
            for recipe, k in todo:
                out_dir = Path(args.workdir) / "runs" / f"{recipe}_seed{seed}_hr{effect:g}_k{k}"
                res = run_cell(cohort, recipe, k, args, out_dir)
                report["results"].append(res)
                write(path, report)
                print(f"[grid] {json.dumps(res)}", flush=True)
    write(path, report)


if __name__ == "__main__":
    main()
