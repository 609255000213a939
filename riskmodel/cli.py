"""The ``riskmodel`` command: a thin shell over the public API.

Exit codes: 0 when the input was read and every row has a status (rows that break rules
are reported in the ``status``/``message`` columns), 2 with a one-line message for input
that cannot be used at all (missing file, unknown format, missing column).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from riskmodel import __version__
from riskmodel.api import MODELS, predict_risk

#: Rows per chunk when scoring; the progress bar counts chunks of this size.
CHUNK_ROWS = 100_000
#: Inputs with at least this many rows get a progress bar on stderr (unless --quiet).
PROGRESS_MIN_ROWS = 200_000
_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


class UsageError(Exception):
    """Input the command cannot use at all: reported on one line, exit code 2."""


def _format(path: str) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz"):
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise UsageError(f"{path}: unknown file type; use .csv, .tsv or .parquet")
    return fmt


def read_table(path: str) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file ('-' reads CSV from stdin)."""
    if path == "-":
        return pd.read_csv(sys.stdin)
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file")
    fmt = _format(path)
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except Exception as exc:  # the reader's own message names the problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: cannot read as {fmt}: {first}") from exc


def write_table(frame: pd.DataFrame, path: str | None) -> None:
    """Write CSV, TSV or Parquet by extension; ``None`` or '-' writes CSV to stdout."""
    if path is None or path == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    fmt = _format(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")


def _horizon(value: str) -> float | str:
    if value == "lifetime":
        return value
    try:
        years = float(value)
    except ValueError:
        return value  # a column name; predict_risk checks it
    if not np.isfinite(years) or years <= 0:
        raise UsageError(f"--horizon {value}: must be a positive number of years, 'lifetime' or a column name")
    return years


def _check_duplicates(data: pd.DataFrame, path: str, names: tuple[str, ...]) -> None:
    """pandas renames a repeated CSV header ``age`` to ``age.1``; treat that as the error it is."""
    for name in names:
        if name in data.columns and f"{name}.1" in data.columns:
            raise UsageError(f"{path}: column {name!r} appears more than once")


def _predict_bcra(data: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """BCRA layout: exactly R's absolute.risk, with a status and message for each NA."""
    from riskmodel.gail import bcra_explain

    explained = bcra_explain(data)
    out = pd.DataFrame(
        {
            "risk": explained["AbsRisk"] / 100.0,
            "status": explained["status"],
            "message": explained["message"],
            "model": "gail-bcra",
            "horizon": pd.to_numeric(data["T2"], errors="coerce") - pd.to_numeric(data["T1"], errors="coerce"),
        },
        index=data.index,
    )
    if args.details:
        from riskmodel.gail import bcra_absolute_risk, bcra_relative_risk

        out["average_risk"] = bcra_absolute_risk(data, avg_white=1) / 100.0
        rr = bcra_relative_risk(data)
        out["rr_under50"], out["rr_over50"] = rr["RR_Star1"], rr["RR_Star2"]
    return out


def _exams_source(value: str) -> pd.DataFrame | str:
    """``--exams``: a folder of DICOM files (scanned by predict_risk) or an exams table."""
    from riskmodel.fusion.hybrid import read_exams

    if Path(value).is_dir():
        return value
    if not Path(value).is_file():
        raise UsageError(f"--exams {value}: no such exams table or DICOM folder")
    _format(value)
    try:
        return read_exams(value)
    except ValueError as exc:
        raise UsageError(f"--exams {value}: {exc}") from None


def _hybrid_model(args: argparse.Namespace) -> str | None:
    """The saved hybrid model's folder when --model hybrid / --bundle is used, else None (Gail)."""
    from riskmodel.api import HYBRID_NEEDS_BUNDLE

    if args.bundle is None and args.model != "hybrid":
        for flag, value in (("--exams", args.exams), ("--fallback", args.fallback)):
            if value is not None:
                raise UsageError(f"{flag} is only used with a hybrid model (--bundle HYBRID_DIR)")
        return None
    if args.bundle is None:
        raise UsageError("--model hybrid needs --bundle HYBRID_DIR: " + HYBRID_NEEDS_BUNDLE.split(": ", 1)[1])
    if args.model not in (None, "hybrid"):
        raise UsageError(f"--bundle is a hybrid model; it cannot be used with --model {args.model}")
    if args.layout == "bcra":
        raise UsageError("--layout bcra is for the Gail model; a hybrid model reads the canonical schema")
    if not Path(args.bundle).is_dir():
        raise UsageError(f"--bundle {args.bundle}: no such folder")
    if args.exams is None:
        raise UsageError("a hybrid model reads mammograms: give --exams EXAMS_TABLE_OR_DICOM_DIR")
    return args.bundle


def _predict(args: argparse.Namespace) -> int:
    from riskmodel.gail import BCRA_COLUMNS
    from riskmodel.schema import COLUMNS

    bundle = _hybrid_model(args)
    if args.output not in (None, "-"):
        _format(args.output)
    data = read_table(args.input)
    _check_duplicates(data, args.input, BCRA_COLUMNS if args.layout == "bcra" else tuple(COLUMNS))
    n = len(data)
    show = not args.quiet and n >= PROGRESS_MIN_ROWS
    if args.layout == "bcra":
        if args.horizon is not None:
            raise UsageError("--horizon does not apply with --layout bcra: each row projects from T1 to T2")
        result = _predict_bcra(data, args)
        id_column = "ID"
    else:
        horizon = _horizon(args.horizon or "5")
        if isinstance(horizon, str) and horizon != "lifetime" and horizon not in data.columns:
            raise UsageError(f"--horizon {horizon}: not a number, 'lifetime' or a column of the input")
        if bundle is None:
            result = predict_risk(data, model=args.model or "gail", horizon=horizon, details=args.details,
                                  chunk_size=CHUNK_ROWS, progress=show)
        else:
            from riskmodel.fusion.hybrid import load_hybrid

            model = load_hybrid(bundle, device=args.device)
            if model.key_ not in data.columns:
                raise UsageError(f"{args.input}: no column {model.key_!r}; the hybrid model finds each woman's exam "
                                 f"through it (= exams column {model.exam_key_!r})")
            result = predict_risk(data, model=model, horizon=horizon, exams=_exams_source(args.exams),
                                  fallback=args.fallback or "none", details=args.details, chunk_size=CHUNK_ROWS,
                                  progress=not args.quiet and n >= 1, batch_size=args.batch_size,
                                  cache_dir=args.cache_dir, num_workers=args.workers)
        id_column = "id"
    if args.keep_input:
        clash = [c for c in result.columns if c in data.columns]
        out = pd.concat([data.drop(columns=clash), result], axis=1)
    else:
        front = [c for c in (id_column,) if c in data.columns]
        out = pd.concat([data[front], result], axis=1)
    write_table(out, args.output)
    if not args.quiet:
        counts = out["status"].value_counts()
        summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no rows"
        where = args.output if args.output not in (None, "-") else "stdout"
        model = ("gail (BCRA layout)" if args.layout == "bcra" else f"hybrid model {bundle}" if bundle
                 else args.model or "gail")
        rows = "row" if n == 1 else "rows"
        print(f"riskmodel: scored {n} {rows} with {model} ({summary}) -> {where}", file=sys.stderr)
    return 0


def _image_size(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--image-size {text}: expected ROWSxCOLUMNS, e.g. 512x416") from None
    return rows, cols


def _synth(args: argparse.Namespace) -> int:
    from riskmodel.synthetic import make_cohort

    if args.n < 1:
        raise UsageError(f"--n {args.n}: must be at least 1")
    size = _image_size(args.image_size) if args.images else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cohort = make_cohort(args.n, seed=args.seed)
    write_table(cohort, str(out / "cohort.csv"))
    message = f"riskmodel: wrote {len(cohort)} women to {out / 'cohort.csv'}"
    if args.images:
        from riskmodel.synthetic import write_exams

        manifest = write_exams(cohort, out / "exams", image_size=size, seed=args.seed, n_jobs=args.jobs)
        message += f" and {len(manifest)} DICOM images to {out / 'exams'} (manifest.csv, truth.csv)"
    if not args.quiet:
        print(message, file=sys.stderr)
    return 0


def _scan(args: argparse.Namespace) -> int:
    from riskmodel.imaging import assemble_exams, scan_dicoms

    if not Path(args.root).is_dir():
        raise UsageError(f"{args.root}: no such folder")
    for target in (args.output, args.exams):
        if target not in (None, "-"):
            _format(target)  # an unknown extension is reported before any work
    manifest = scan_dicoms(args.root)
    write_table(manifest, args.output)
    summary = f"{len(manifest)} files ({int((manifest['status'] == 'ok').sum())} ok)"
    if args.exams:
        exams = assemble_exams(manifest)
        write_table(exams, args.exams)
        summary += f", {len(exams)} exams -> {args.exams}"
    if not args.quiet:
        where = args.output if args.output not in (None, "-") else "stdout"
        print(f"riskmodel: scanned {summary}; manifest -> {where}", file=sys.stderr)
    return 0


def _split(keys: pd.Series, fractions: tuple[float, float], seed: int) -> np.ndarray:
    """'train' / 'val' / 'calib' per row, by woman (all exams of a woman in one split)."""
    unique = pd.Index(keys.unique())
    rng = np.random.default_rng(seed)
    u = rng.random(len(unique))
    val, calib = fractions
    part = np.where(u < val, "val", np.where(u < val + calib, "calib", "train"))
    return pd.Series(part, index=unique).loc[keys].to_numpy()


def _train(args: argparse.Namespace) -> int:
    import json

    from riskmodel.calibration import YearlyCalibrator
    from riskmodel.inference import ImageRiskPredictor
    from riskmodel.nn import ImageRiskModel, ModelConfig, tiny_config
    from riskmodel.training import LabelledExams, TrainConfig, predict, train

    cohort, exams = read_table(args.cohort), read_table(args.exams)
    for frame, name, cols in ((cohort, "--cohort", (args.label_key, "time", "event")), (exams, "--exams", (args.key,))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise UsageError(f"{name}: missing column(s) {missing}")
    size = _image_size(args.image_size)
    try:
        overrides = json.loads(args.model_config) if args.model_config else {}
        if not isinstance(overrides, dict):
            raise ValueError("must be a JSON object")
        base = (tiny_config() if args.tiny else ModelConfig()).to_dict()
        config = ModelConfig.from_dict({**base, "image_size": size, **overrides})
    except ValueError as exc:
        raise UsageError(f"--model-config: {exc}") from None
    labels = cohort.set_index(cohort[args.label_key].astype(str))
    exams = exams[exams[args.key].astype(str).isin(labels.index)].reset_index(drop=True)
    if exams.empty:
        raise UsageError(f"no exam's {args.key} matches the cohort's {args.label_key}")
    woman = exams["patient_id"] if "patient_id" in exams else exams[args.key]
    split = _split(woman.astype(str), (args.val_fraction, args.calib_fraction), args.seed)
    data = {part: LabelledExams(exams[split == part].reset_index(drop=True), labels, key=args.key,
                                image_size=size, cache_dir=args.cache_dir, n_years=config.n_years)
            for part in ("train", "val", "calib")}
    torch_seed(args.seed)
    model = ImageRiskModel(config)
    tconf = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        device=args.device, balance=args.balance, patience=args.patience,
                        num_workers=args.workers, progress=not args.quiet)
    out = Path(args.out)
    result = train(model, data["train"], data["val"] if len(data["val"]) else None, tconf, out_dir=out / "training",
                   resume=args.resume)
    if args.stage2_epochs:
        result = _second_stage(model, data, tconf, args, out)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, the main process calibrates and saves
        return 0
    calibrator, calibration_note = None, "not requested"
    if args.calibration != "none" and len(data["calib"]):
        pred = predict(model, data["calib"], batch_size=args.batch_size, device=args.device)
        try:
            calibrator = YearlyCalibrator(method=args.calibration, n_years=config.n_years)
            # IPCW: women censored before year k are represented by those followed longer.
            calibrator.fit(pred["risk"], pred["time"], pred["event"], ipcw=True)
            calibration_note = f"{args.calibration} (IPCW) on {len(data['calib'])} held-out exams"
        except ValueError as exc:  # e.g. no cancer in a year of the calibration split
            calibrator, calibration_note = None, f"not fitted: {exc}"
            print(f"riskmodel: warning: calibration {calibration_note}; the bundle's risks are uncalibrated",
                  file=sys.stderr)
    elif args.calibration != "none":
        calibration_note = "not fitted: the calibration split is empty"
    meta = {"calibration": calibration_note, "training": {
        "cohort": str(args.cohort), "exams": str(args.exams), "n_train": len(data["train"]),
                         "n_val": len(data["val"]), "n_calib": len(data["calib"]), "best_epoch": result.best_epoch,
                         "best_val_metric": result.best_metric, "config": tconf.to_dict()}}
    predictor = ImageRiskPredictor(model, {"image_size": list(size), "view_order": ["L-CC", "L-MLO", "R-CC", "R-MLO"]},
                                   calibrator, meta, device="cpu")
    predictor.save(out / "bundle", overwrite=True)
    if not args.quiet:
        print(f"riskmodel: trained {result.best_epoch} epoch(s) best; bundle -> {out / 'bundle'}", file=sys.stderr)
    return 0


def _second_stage(model, data: dict, tconf, args: argparse.Namespace, out: Path):
    """Mirai's second stage: freeze the encoder, cache per-view embeddings once, train the heads on them."""
    import dataclasses

    import torch

    from riskmodel.training import TensorExams, predict, train

    def cached(part: str):
        if not len(data[part]):
            return None
        pred = predict(model, data[part], batch_size=args.batch_size, device=args.device)
        labels = pd.DataFrame({"time": pred["time"], "event": pred["event"],
                               "density": data[part].labels.density, "age": data[part].labels.age})
        labels["density"] = labels["density"].map({-1: None, 0: "a", 1: "b", 2: "c", 3: "d"})
        return TensorExams(torch.from_numpy(pred["mask"]), labels,
                           view_embeddings=torch.from_numpy(pred["view_embeddings"]), n_years=model.config.n_years)

    stage2 = dataclasses.replace(tconf, epochs=args.stage2_epochs, freeze_encoder=True)
    return train(model, cached("train"), cached("val"), stage2, out_dir=out / "training_stage2")


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def _embed(args: argparse.Namespace) -> int:
    from riskmodel.inference import load_image_model

    if args.output not in (None, "-"):
        _format(args.output)
    exams = read_table(args.exams)
    predictor = load_image_model(args.bundle, device=args.device)
    show = not args.quiet and len(exams) >= 1
    out = predictor.predict(exams, batch_size=args.batch_size, cache_dir=args.cache_dir, embeddings=True,
                            progress=show)
    write_table(out, args.output)
    if not args.quiet:
        ok = int((out["status"] == "ok").sum())
        print(f"riskmodel: embedded {len(out)} exams ({ok} ok) -> {args.output or 'stdout'}", file=sys.stderr)
    return 0


HEADS = ("torch", "cox", "xgboost")


def _fit_hybrid(args: argparse.Namespace) -> int:
    from riskmodel.fusion import CoxHead, HybridModel, TorchHazardHead, XGBoostHead
    from riskmodel.inference import load_image_model

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise UsageError(f"--out {out}: exists and is not an empty folder; pass --overwrite to replace a saved "
                         "hybrid model")
    if not Path(args.image_bundle).is_dir():
        raise UsageError(f"--image-bundle {args.image_bundle}: no such folder")
    cohort = read_table(args.cohort)
    missing = [c for c in ("time", "event", args.key) if c not in cohort.columns]
    if missing:
        raise UsageError(f"--cohort {args.cohort}: missing column(s) {missing}")
    exams = _exams_source(args.exams)
    image = load_image_model(args.image_bundle, device=args.device)
    if args.head == "torch":
        head: object = TorchHazardHead(seed=args.seed, epochs=args.epochs, early_stopping=not args.no_early_stopping)
    elif args.head == "cox":
        head = CoxHead()
    else:
        head = XGBoostHead(seed=args.seed)
    model = HybridModel(image, head=head)
    model.fit(cohort, exams, key=args.key, exam_key=args.exam_key, batch_size=args.batch_size,
              cache_dir=args.cache_dir, num_workers=args.workers, progress=not args.quiet)
    model.save(out, overwrite=args.overwrite,
               metadata={"cohort": str(args.cohort), "exams": str(args.exams), "image_bundle": str(args.image_bundle)})
    if not args.quiet:
        s = model.fit_summary_
        print(f"riskmodel: fitted a {s['head']} fusion head on {s['n_used']} of {s['n_rows']} women "
              f"({s['n_events']} cancers; {s['n_without_exam']} without a usable exam, {s['n_schema_rejected']} "
              f"failing the schema) -> {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``docs/cli.md``)."""
    parser = argparse.ArgumentParser(
        prog="riskmodel",
        description=(
            "Personalized breast-cancer risk prediction. Run 'riskmodel COMMAND --help' for a command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"riskmodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "predict",
        help="absolute risk for every row of a cohort table",
        description=(
            "Score every row of INPUT (CSV, TSV or Parquet; '-' for CSV on stdin) and write one output row per "
            "input row, in order: risk (probability), status, message, model, horizon. Rows that break a rule get "
            "a status and a message and NaN risk; the others are scored. Exit code 0 when the file could be read, "
            "2 (with a one-line message) when it could not be used at all."
        ),
    )
    p.add_argument(
        "input", help="cohort table in the canonical schema (docs/schema.md), or BCRA layout with --layout bcra"
    )
    p.add_argument("-o", "--output", help="output file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--model", default=None, choices=sorted(MODELS),
                   help="risk model (default: gail; hybrid needs --bundle and --exams)")
    p.add_argument("--horizon", default=None,
                   help="years from current age, 'lifetime' (to age 90), or a column name (default: 5; the hybrid "
                        "model projects at most 5 years)")
    p.add_argument("--layout", default="canonical", choices=("canonical", "bcra"),
                   help="input columns: the canonical schema, or R BCRA's (ID, T1, T2, N_Biop, HypPlas, AgeMen, "
                        "Age1st, N_Rels, Race), scored exactly as BCRA's absolute.risk from T1 to T2")
    p.add_argument("--bundle", metavar="HYBRID_DIR",
                   help="a saved hybrid model (riskmodel fit-hybrid); implies --model hybrid")
    p.add_argument("--exams", metavar="EXAMS_TABLE_OR_DICOM_DIR",
                   help="hybrid model: the exams (table from 'riskmodel scan --exams', or a folder of DICOM files)")
    p.add_argument("--fallback", choices=("none", "factors"), default=None,
                   help="hybrid model: a woman without a usable exam gets status no_exam (none, default) or the "
                        "factors-only model's risk (factors)")
    p.add_argument("--batch-size", type=int, default=4, help="hybrid model: exams per forward pass (default 4)")
    p.add_argument("--cache-dir", help="hybrid model: cache of preprocessed views")
    p.add_argument("--device", default="auto", help="hybrid model: auto, cpu, cuda, cuda:1 … (default auto)")
    p.add_argument("--workers", type=int, default=0, help="hybrid model: DICOM-reading worker processes")
    p.add_argument("--details", action="store_true",
                   help="add model-specific columns (Gail: average_risk, rr_*; hybrid: exam_used, n_views, "
                        "imputed, fallback)")
    p.add_argument("--keep-input", action="store_true", help="copy all input columns into the output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary line")
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "synth",
        help="a synthetic screening cohort with known truth (and optionally four-view DICOM mammograms)",
        description=(
            "Write OUT/cohort.csv: N women in the canonical schema with observed outcome (time, event) and the "
            "generator's true risks (a test bed, not real data). With --images, also write four DICOM views per "
            "woman under OUT/exams/ with manifest.csv and truth.csv."
        ),
    )
    p.add_argument("--n", type=int, required=True, help="number of women")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic for a seed)")
    p.add_argument("--images", action="store_true", help="also write synthetic mammograms as DICOM")
    p.add_argument("--image-size", default="512x416", help="ROWSxCOLUMNS, 64x52 up to 2048x1664 (default 512x416)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for image rendering (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_synth)

    p = sub.add_parser(
        "scan",
        help="list the DICOM files under a folder, one row per file, with a status for each",
        description=(
            "Read the headers of every file under ROOT and write a manifest: ids, laterality, view, size and a "
            "status (bad files are listed with their error, never dropped). With --exams, also write one row "
            "per exam with its four views and flags."
        ),
    )
    p.add_argument("root", help="folder to scan (recursively)")
    p.add_argument("-o", "--output", help="manifest file (.csv, .tsv, .parquet); default: CSV on stdout")
    p.add_argument("--exams", help="also write the assembled exams (one row per exam) to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_scan)

    p = sub.add_parser(
        "train",
        help="train the image risk model on labelled exams and write a model bundle",
        description=(
            "Train riskmodel.nn.ImageRiskModel on the exams of EXAMS (from 'riskmodel scan --exams') labelled by "
            "COHORT (time, event and optionally density, age). Women are split into train/validation/calibration "
            "sets; the best epoch by validation C-index is kept, per-year calibrators are fitted on the calibration "
            "set, and OUT/bundle is written (safetensors + JSON + SHA-256 manifest). Runs on the GPU when there is "
            "one; launch with 'torchrun --nproc-per-node=N -m riskmodel.cli train ...' for several GPUs."
        ),
    )
    p.add_argument("--cohort", required=True, help="labels: one row per exam with time, event (0/1/2), density, age")
    p.add_argument("--exams", required=True, help="exams table (riskmodel scan --exams)")
    p.add_argument("--out", required=True, help="output folder (training/ logs and checkpoints, bundle/)")
    p.add_argument("--key", default="accession_number",
                   help="exams column matching the cohort (default accession_number)")
    p.add_argument("--label-key", default="exam_id", help="cohort column matching --key (default exam_id)")
    p.add_argument("--image-size", default="512x416", help="ROWSxCOLUMNS (default 512x416)")
    p.add_argument("--tiny", action="store_true", help="a tiny network (smoke tests, CPU)")
    p.add_argument("--model-config", help="JSON object of ModelConfig overrides, e.g. '{\"agg_layers\": 2}'")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--stage2-epochs", type=int, default=0,
                   help="then freeze the encoder, cache view embeddings and train the aggregator and heads "
                        "for this many epochs (Mirai's two-stage recipe; default 0 = off)")
    p.add_argument("--batch-size", type=int, default=8, help="exams per step per process (default 8)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--patience", type=int, default=3, help="early stopping patience in epochs (0 = off)")
    p.add_argument("--balance", action="store_true", help="class-balance positive years")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--calib-fraction", type=float, default=0.15)
    p.add_argument("--calibration", default="isotonic", choices=("isotonic", "platt", "none"))
    p.add_argument("--cache-dir", help="cache of preprocessed views (speeds up later epochs)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/training/checkpoint")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "embed",
        help="score exams with a model bundle: per-year risk and the exam embedding, one row per exam",
        description=(
            "Load BUNDLE (hashes checked), read every exam of EXAMS (from 'riskmodel scan --exams'), and write one "
            "row per exam: exam_id, n_views, status, message, risk_1y..risk_5y (calibrated) and emb_000... "
            "Unreadable views are masked; an exam with no readable view gets status no_views."
        ),
    )
    p.add_argument("--bundle", required=True, help="model bundle folder")
    p.add_argument("--manifest", "--exams", dest="exams", required=True,
                   help="exams table from 'riskmodel scan --exams' (csv/parquet)")
    p.add_argument("-o", "--output", help="output file (.parquet, .csv); default: CSV on stdout")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cache-dir", help="cache of preprocessed views")
    p.add_argument("--device", default="auto")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_embed)

    p = sub.add_parser(
        "fit-hybrid",
        help="fit the fusion survival head (image embedding + risk factors) on top of a trained image bundle",
        description=(
            "Load IMAGE_BUNDLE (from 'riskmodel train'), embed the exam of every woman of COHORT (canonical schema "
            "with time, event and the exam key), encode her risk factors, fit the fusion head and a factors-only "
            "fallback head, and save the hybrid model to OUT (image/ bundle, fusion.json, manifest.json). Score "
            "with 'riskmodel predict --bundle OUT --exams ...'."
        ),
    )
    p.add_argument("--cohort", required=True, help="women: canonical schema + time, event and the exam key column")
    p.add_argument("--exams", required=True, help="exams table (riskmodel scan --exams) or a folder of DICOM files")
    p.add_argument("--image-bundle", required=True, help="trained image model bundle (riskmodel train: OUT/bundle)")
    p.add_argument("--out", required=True, help="output folder for the hybrid model")
    p.add_argument("--head", default="torch", choices=HEADS,
                   help="fusion head: torch additive hazard (default), cox (lifelines, PCA of the embedding), "
                        "xgboost (survival:cox)")
    p.add_argument("--key", default="exam_id", help="cohort column with each woman's exam key (default exam_id)")
    p.add_argument("--exam-key", default="accession_number",
                   help="exams column holding the same keys (default accession_number)")
    p.add_argument("--epochs", type=int, default=200, help="torch head: maximum epochs (default 200)")
    p.add_argument("--no-early-stopping", action="store_true",
                   help="torch head: train all epochs (needed with very few cancers)")
    p.add_argument("--batch-size", type=int, default=4, help="exams per forward pass (default 4)")
    p.add_argument("--cache-dir", help="cache of preprocessed views")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=0, help="DICOM-reading worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a hybrid model already saved at OUT")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_fit_hybrid)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``riskmodel`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `riskmodel predict x.csv | head`
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"riskmodel: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
